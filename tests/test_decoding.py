"""The decoding strategies and their one loop (rnnkit.models.decoding)."""

import pytest
import torch

from rnnkit.models import LanguageModel, Seq2Seq
from rnnkit.models.beam import Beam
from rnnkit.models.decoding import Greedy, Sampling, decode, run


class Chain:
    """A decoder whose scores depend only on the last token: log-probabilities table[token] (C,)."""

    def __init__(self, table: torch.Tensor):
        self.table = table.log_softmax(-1)  # (C, C)

    def __call__(self, tokens, state):
        return self.table[tokens], state, None


class Rows(list):
    def index_select(self, index):
        return Rows(self[i] for i in index.tolist())


def test_the_loop_follows_the_likeliest_path_and_stops_when_every_row_has_ended():
    # 0 -> 1 -> 2 -> 3 (the end); from 2 also 0, less likely
    table = torch.tensor([[0., 5, 0, 0], [0, 0, 5, 0], [3, 0, 0, 5], [0, 0, 0, 5]])
    chain, strategy = Chain(table), Greedy(2, end=3, max_length=10)
    scores, _, _ = chain(torch.tensor([0, 2]), None)
    steps = [t.tolist() for t in run(strategy, chain, Rows([None, None]), scores)]
    assert steps == [[1, 3], [2, 3], [3, 3]]  # row 1 ended at once; row 0 after two tokens
    assert strategy.results()[0] == [[1, 2], []]


def test_greedy_is_beam_search_of_size_one_through_the_same_loop():
    chain = Chain(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)) * 3)
    start = torch.tensor([0, 1, 2, 4])
    greedy, beam = Greedy(4, end=5, max_length=7), Beam(4, 1, end=5, max_length=7)
    list(run(greedy, chain, Rows(range(4)), chain(start, None)[0]))
    list(run(beam, chain, Rows(range(4)), chain(start, None)[0]))
    assert [h[0].tokens for h in beam.results()] == greedy.results()[0]


@pytest.mark.parametrize("kw", [{}, {"attention": "none"}, {"sequence_end": "stop"},
                                {"decoder_recurrence": "output"}])
def test_greedy_equals_beam_of_size_one_on_a_seq2seq_model(kw):
    torch.manual_seed(1)
    model = Seq2Seq(9, 6, cell="gru", hidden_size=6, num_layers=1, embedding_dim=4, **kw).double()
    x = torch.randint(0, 9, (4, 5), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([5, 3, 1, 4])
    tokens, _ = decode(model, x, lengths, Greedy(4, model.end, 8, lengths))
    beam = decode(model, x, lengths, Beam(4, 1, model.end, 8, source_lengths=lengths))
    assert [h[0].tokens for h in beam] == tokens
    assert any(tokens)  # not a trivial case where every output is empty


def test_sampling_with_a_seed_is_reproducible_and_another_seed_samples_otherwise():
    torch.manual_seed(0)
    model = LanguageModel(13, cell="lstm", hidden_size=12, num_layers=1, embedding_dim=5, dropout=0.0)

    def sample(seed, **kw):
        return list(model.generate([1, 2], 40, generator=torch.Generator().manual_seed(seed), **kw))

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    assert sample(7, top_k=3) == sample(7, top_k=3)
    greedy = sample(7, temperature=0)
    assert greedy == sample(8, temperature=0) == sample(7, top_k=1)  # top-1 sampling is greedy


def test_sampling_draws_what_sample_next_draws_step_by_step():
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    strategy = Sampling(5, temperature=0.7, top_k=4, generator=torch.Generator().manual_seed(1))
    tokens = list(run(strategy, lambda t, s: (logits, s, None), None, logits))
    assert len(tokens) == 5 and strategy.done and torch.equal(strategy.results(), torch.stack(tokens, 1))
    top4 = logits.topk(4, dim=-1).indices
    assert all(bool((t[:, None] == top4).any(1).all()) for t in tokens)  # never outside the top k
    assert list(run(Sampling(0), lambda t, s: (logits, s, None), None, logits)) == []
