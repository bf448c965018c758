"""The language model: loss definition, state carrying, generation and sampling."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from rnnkit.errors import ConfigError
from rnnkit.models import LanguageModel, sample_next
from rnnkit.models.sampling import RaceNoise
from rnnkit.tasks import LanguageModelTraining
from rnnkit.training import evaluate, evaluate_dynamic


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LanguageModel(11, cell="gru", hidden_size=16, num_layers=2, embedding_dim=8, dropout=0.0).double()


def test_loss_is_mean_cross_entropy_in_nats(model):
    x = torch.randint(0, 11, (3, 9))
    y = torch.randint(0, 11, (3, 9))
    (logits, _), loss = model(x, y)
    manual = -logits.log_softmax(-1).gather(-1, y.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, manual)
    untrained = LanguageModel(11, hidden_size=8, num_layers=1)
    assert abs(untrained(x, y)[1].item() - math.log(11)) < 0.5  # near uniform at init


def test_one_hot_input_is_min_char_rnn():
    torch.manual_seed(0)
    one_hot = LanguageModel(7, cell="rnn", hidden_size=5, num_layers=1, embedding_dim=0, dropout=0.0)
    x = torch.randint(0, 7, (2, 4))
    cell = one_hot.rnn.cells[0]
    manual_h, state = [], None
    for t in range(4):
        ht, state = cell(F.one_hot(x[:, t], 7).float(), state)
        manual_h.append(ht)
    torch.testing.assert_close(one_hot(x)[0].logits, one_hot.head(torch.stack(manual_h, 1)))
    # W_ih's columns act as the embeddings of the tokens (min-char-rnn's Wxh)
    torch.testing.assert_close(cell.project_input(F.one_hot(x, 7).float()),
                               cell.weight_ih.T[x] + cell.bias_ih)


def test_generation_carries_state_like_one_long_forward(model):
    prime = [1, 2, 3]
    out = list(model.generate(prime, 12, temperature=0))
    seq = torch.tensor([prime + out])
    (logits, _), _ = model(seq)
    # greedy generation: each generated token is the argmax of the full forward at that step
    assert logits[0, len(prime) - 1:-1].argmax(-1).tolist() == out


def test_batched_generation_matches_one_prime_at_a_time(model):
    primes = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    batched = torch.stack(list(model.generate(primes, 10, temperature=0)), dim=1)  # (3, 10)
    for prime, row in zip(primes, batched):
        assert list(model.generate(prime, 10, temperature=0)) == row.tolist()
    with pytest.raises(ValueError, match=r"prime must be ids \(T,\) or \(B, T\)"):
        next(model.generate(torch.zeros(2, 0, dtype=torch.long), 1))


class _RecordOps(TorchDispatchMode):
    """Records every aten op run inside it with the shapes of its tensor arguments."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append((str(func), [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_generation_cost_per_token_does_not_grow(cell):
    """The 2,000th token runs exactly the ops, on exactly the shapes, of the 10th:
    the cost per token is independent of how much has been generated."""
    torch.manual_seed(0)
    model = LanguageModel(11, cell=cell, hidden_size=16, num_layers=2, embedding_dim=8)
    tokens = model.generate([1, 2, 3], 2000, generator=torch.Generator().manual_seed(0))
    traces = []
    for i in range(2000):
        if i in (10, 1999):
            with _RecordOps() as record:
                next(tokens)
            traces.append(record.ops)
        else:
            next(tokens)
    assert any(name in op for op, _ in traces[0] for name in ("mm", "linear"))
    assert traces[0] == traces[1]


def test_top_k_one_equals_greedy_and_temperature_zero_is_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 13, generator=g)
    assert torch.equal(sample_next(logits, 1.0, top_k=1, generator=g), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 1.0, top_p=1e-6, generator=g), logits.argmax(-1))


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(probs.log(), 1.0, top_p=0.75, generator=g)) for _ in range(300)}
    assert draws == {0, 1}  # 0.5 < 0.75 needs the second; 0.8 >= 0.75 stops there
    draws = {int(sample_next(probs.log(), 1.0, top_k=3, generator=g)) for _ in range(300)}
    assert draws == {0, 1, 2}


def test_sampling_frequencies_follow_the_softmax_at_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0]]).expand(20000, 3)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next(logits, 2.0, generator=g), minlength=3).float() / 20000
    torch.testing.assert_close(counts, (logits[0] / 2).softmax(-1), atol=0.02, rtol=0)


def test_sampling_at_temperature_one_follows_the_softmax_and_never_draws_minus_infinity():
    logits = torch.tensor([[1.5, 0.0, -1.0, float("-inf")]]).expand(20000, 4)
    g = torch.Generator().manual_seed(1)
    counts = torch.bincount(sample_next(logits, 1.0, generator=g), minlength=4).float() / 20000
    torch.testing.assert_close(counts, logits[0].softmax(-1), atol=0.02, rtol=0)
    assert counts[3] == 0


def test_noise_drawn_ahead_gives_independent_draws_that_follow_the_softmax():
    # batch 1, 20,000 steps: the noise is drawn 256 steps at a time, and a
    # step must never reuse another's (the pairs of successive draws are independent too)
    logits = torch.tensor([[1.0, 0.0, -0.5]])
    noise = RaceNoise(torch.Generator().manual_seed(2))
    draws = torch.cat([sample_next(logits, 1.0, noise=noise) for _ in range(20000)])
    p = logits[0].softmax(-1)
    torch.testing.assert_close(torch.bincount(draws, minlength=3).float() / 20000, p, atol=0.02, rtol=0)
    pairs = torch.bincount(draws[:-1] * 3 + draws[1:], minlength=9).float() / 19999
    torch.testing.assert_close(pairs, torch.outer(p, p).flatten(), atol=0.02, rtol=0)
    assert not torch.equal(draws[:256], draws[256:512])  # a used block is not drawn from again
    # a new shape (another batch size) starts a new block
    assert sample_next(logits.expand(5, 3), 1.0, noise=noise).shape == (5,)


def test_fused_and_explicit_language_models_give_the_same_logits(model):
    x = torch.randint(0, 11, (2, 6))
    fused = model(x)[0].logits
    model.rnn.engine = "explicit"
    torch.testing.assert_close(model(x)[0].logits, fused)


@pytest.mark.parametrize("backend", ["onednn", "default"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru"])
def test_stepper_logits_equal_the_forward_pass_in_fp32_and_bf16(cell, backend, monkeypatch):
    """Generation's prepared steps (table lookup, fused [W_ih | W_hh] products,
    prepacked weights) give the forward pass's logits: in fp32 up to rounding,
    with bf16 weights within bf16's; on either fp32 product backend."""
    from rnnkit.kernels import gemm
    from rnnkit.models.stepping import Stepper

    if backend == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("torch built without oneDNN")
    monkeypatch.setattr(gemm, "_backend", backend)
    torch.manual_seed(0)
    model = LanguageModel(13, cell=cell, hidden_size=32, num_layers=3, embedding_dim=8).eval()
    seq = torch.randint(13, (2, 20))
    reference = model(seq)[0].logits.log_softmax(-1)  # (B, T, V)
    for dtype, tolerance in ((None, 1e-5), (torch.bfloat16, 0.05)):
        stepper = Stepper(model.embed, model.rnn.cells, model.head.weight, model.head.bias, 2, dtype)
        states = [cell.init_state(2) for cell in model.rnn.cells]
        for t in range(seq.shape[1]):
            logits, states = stepper(seq[:, t], states)
            torch.testing.assert_close(logits.log_softmax(-1), reference[:, t], rtol=0, atol=tolerance)


def test_stepper_at_batch_one_keeps_small_weights_dense_and_equals_the_forward_pass():
    # at batch 1 weights under gemm.SMALL_GEMV entries stay as they are (the output layer
    # here), larger fp32 ones (the recurrent matrices, 1024 x 256 and up) are stored
    # transposed for MKL's matrix-vector product: an (O, I) view with strides (1, O)
    from rnnkit.kernels import gemm
    from rnnkit.models.stepping import Stepper

    torch.manual_seed(0)
    model = LanguageModel(13, cell="lstm", hidden_size=256, num_layers=2, embedding_dim=8).eval()
    seq = torch.randint(13, (1, 12))
    reference = model(seq)[0].logits.log_softmax(-1)  # (1, T, V)
    stepper = Stepper(model.embed, model.rnn.cells, model.head.weight, model.head.bias, 1)
    assert model.head.weight.numel() < gemm.SMALL_GEMV and stepper.head_weight.stride() == (256, 1)
    assert stepper.layers[0].weight_hh.shape == (1024, 256) and stepper.layers[0].weight_hh.stride() == (1, 1024)
    states = [cell.init_state(1) for cell in model.rnn.cells]
    for t in range(seq.shape[1]):
        logits, states = stepper(seq[:, t], states)
        torch.testing.assert_close(logits.log_softmax(-1), reference[:, t], rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_layers,dtype", [(1, None), (2, None), (3, None), (2, torch.bfloat16)])
def test_stepper_on_c_steps_equals_the_torch_ops_step_and_leaves_given_states_alone(num_layers, dtype):
    """The LSTM stack on lstm.c's steps (h written into the next product's input) gives the
    steps on torch ops, with fp32 or bf16 weights: also when a state from elsewhere comes in (beam
    search's reordering: the rows swapped), with the states it was given left unchanged."""
    from rnnkit.kernels import native
    from rnnkit.models.stepping import Stepper

    if native.library() is None:
        pytest.skip("no C compiler: the C kernels are not built")
    torch.manual_seed(0)
    model = LanguageModel(13, cell="lstm", hidden_size=24, num_layers=num_layers, embedding_dim=8).eval()
    seq = torch.randint(13, (2, 12))
    on_c = Stepper(model.embed, model.rnn.cells, model.head.weight, model.head.bias, 2, dtype)
    on_torch = Stepper(model.embed, model.rnn.cells, model.head.weight, model.head.bias, 2, dtype)
    on_torch.kernels = None
    assert on_c.kernels is not None
    states_c = states_t = [cell.init_state(2) for cell in model.rnn.cells]
    for t in range(seq.shape[1]):
        if t == 6:  # a state from elsewhere: the two rows swapped
            states_c = [tuple(s.flip(0) for s in state) for state in states_c]
            states_t = [tuple(s.flip(0) for s in state) for state in states_t]
        given = [tuple(s.clone() for s in state) for state in states_c]
        logits_c, new_c = on_c(seq[:, t], states_c)
        logits_t, states_t = on_torch(seq[:, t], states_t)
        torch.testing.assert_close(logits_c, logits_t, rtol=1e-5, atol=1e-6)
        for old, kept in zip(states_c, given):
            assert all(torch.equal(a, b) for a, b in zip(old, kept))
        states_c = new_c
    for (h_c, c_c), (h_t, c_t) in zip(states_c, states_t):
        torch.testing.assert_close(h_c, h_t, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c_c, c_t, rtol=1e-5, atol=1e-6)


def test_bf16_generation_follows_the_fp32_model():
    torch.manual_seed(0)
    model = LanguageModel(13, cell="lstm", hidden_size=32, num_layers=2, embedding_dim=8)
    fp32 = list(model.generate([1, 2, 3], 30, temperature=0))
    bf16 = list(model.generate([1, 2, 3], 30, temperature=0, precision="bf16"))
    assert sum(a == b for a, b in zip(fp32, bf16)) >= 25  # greedy paths may part where two tokens tie
    with pytest.raises(ValueError, match="precision must be one of"):
        next(model.generate([1], 1, precision="int4"))


def test_locked_dropout_keeps_one_mask_per_sequence_for_every_step():
    from rnnkit.layers.dropout import locked_dropout

    torch.manual_seed(0)
    out = locked_dropout(torch.ones(4, 9, 16), 0.5)
    assert bool((out == out[:, :1]).all())  # the same at every step
    assert set(out.unique().tolist()) == {0.0, 2.0} and not bool((out[0] == out[1]).all())


def test_locked_dropout_runs_the_same_on_both_engines():
    """The fused engine runs its layers one at a time to share masks over time;
    with the same random draws it must equal the explicit loop."""
    torch.manual_seed(0)
    fused = LanguageModel(20, cell="lstm", hidden_size=8, num_layers=3, embedding_dim=8, dropout=0.3,
                          locked_dropout=True).double().train()
    explicit = LanguageModel(20, cell="lstm", hidden_size=8, num_layers=3, embedding_dim=8, dropout=0.3,
                             locked_dropout=True, engine="explicit").double().train()
    explicit.load_state_dict(fused.state_dict())
    x = torch.randint(0, 20, (3, 7))
    torch.manual_seed(5)
    (a, sa), _ = fused(x)
    torch.manual_seed(5)
    (b, sb), _ = explicit(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(sa, sb)


def test_embedding_dropout_drops_every_occurrence_of_a_word_together():
    torch.manual_seed(0)
    model = LanguageModel(6, cell="lstm", hidden_size=4, num_layers=1, embedding_dim=4, dropout=0.0,
                          embedding_dropout=0.5).train()
    e = model.embed(torch.tensor([[1, 2, 1, 2, 1, 3, 3, 1]]))[0]  # (T, E)
    dropped = {int(w) for w, row in zip([1, 2, 1, 2, 1, 3, 3, 1], e) if bool((row == 0).all())}
    kept = {1, 2, 3} - dropped
    assert dropped and kept  # this seed drops some words and keeps others
    for w, row in zip([1, 2, 1, 2, 1, 3, 3, 1], e):
        assert bool((row == 0).all()) == (w in dropped)


def test_weight_drop_reaches_the_layer_and_refuses_cells_without_recurrent_weights():
    model = LanguageModel(10, hidden_size=8, embedding_dim=4, weight_drop=0.3)
    assert model.rnn.weight_drop == 0.3
    with pytest.raises(ConfigError, match="weight_drop drops recurrent weights, which mingru has not"):
        LanguageModel(10, cell="mingru", hidden_size=8, embedding_dim=4, weight_drop=0.3)
    with pytest.raises(ConfigError, match=r"weight_drop must be in \[0, 1\); got 1.0"):
        LanguageModel(10, hidden_size=8, embedding_dim=4, weight_drop=1.0)


def test_tied_weights_share_one_matrix_and_survive_a_round_trip(tmp_path):
    from rnnkit import DataConfig, TextData, Trainer, load_run

    with pytest.raises(ConfigError, match="tie_weights needs embedding_dim = hidden_size"):
        LanguageModel(10, hidden_size=8, embedding_dim=4, tie_weights=True)
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 40)
    data = TextData.from_file(corpus, DataConfig(batch_size=4, seq_len=16))
    model = LanguageModel(data.vocab_size, hidden_size=8, embedding_dim=8, num_layers=1, tie_weights=True)
    assert model.head.weight is model.embedding.weight
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in LanguageModel(data.vocab_size, hidden_size=8, embedding_dim=8,
                                             num_layers=1).parameters()) - data.vocab_size * 8
    Trainer(model, data, LanguageModelTraining(max_steps=5, sample_length=0, device="cpu"), out=tmp_path / "run",
            quiet=True).fit()
    loaded, _, _ = load_run(tmp_path / "run")
    assert not loaded.training  # a loaded run scores and samples without dropout
    assert loaded.head.weight is loaded.embedding.weight
    torch.testing.assert_close(loaded.head.weight, model.head.weight)


def test_dynamic_evaluation_at_step_zero_is_the_stream_score_and_leaves_the_model_alone(model):
    ids = torch.randint(0, 11, (301,), generator=torch.Generator().manual_seed(1))
    static = evaluate(model, ids)
    still = evaluate_dynamic(model, ids, lr=0.0, segment_len=20)  # 15 segments, the state carried across
    assert still["tokens"] == static["tokens"] == 300
    assert still["loss"] == pytest.approx(static["loss"], rel=1e-6)  # both sum fp32 losses
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # it learns all the same
        learnt = evaluate_dynamic(model, ids, lr=1.0, segment_len=20)
    assert learnt["loss"] != still["loss"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_dynamic_evaluation_learns_what_repeats_and_scores_each_segment_before_learning_it(model):
    g = torch.Generator().manual_seed(1)
    repeating = torch.randint(0, 11, (7,), generator=g).repeat(60)
    assert evaluate_dynamic(model, repeating, 1.0, 20)["loss"] < 0.6 * evaluate(model, repeating)["loss"]
    # in i.i.d. tokens the past says nothing about the next segment: scoring a segment
    # after learning from it would gain about 0.3 nats here
    noise = torch.randint(0, 11, (400,), generator=g)
    assert evaluate_dynamic(model, noise, 1.0, 20)["loss"] > evaluate(model, noise)["loss"] - 0.02
