"""The model contract every task model keeps: ``forward(...) -> (outputs, loss)``, loss None
without targets, and ``loss(batch)`` the forward pass's loss on the named batch."""

import pytest
import torch

from rnnkit.data.batches import LabelledBatch, PairBatch, StreamBatch
from rnnkit.models import CTCRecognizer, LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger

SMALL = dict(cell="lstm", hidden_size=8, num_layers=1, embedding_dim=6, dropout=0.0)


def padded(B=3, T=7, lengths=(7, 4, 1), high=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randint(1, high, (B, T), generator=g) * (torch.arange(T) < lengths[:, None])
    return x, lengths, g


def lm_case():
    x = torch.randint(0, 20, (3, 9), generator=torch.Generator().manual_seed(0))
    batch = StreamBatch(x, torch.roll(x, -1, 1))
    return LanguageModel(20, **SMALL), batch, (batch.x,), (batch.y,)


def conditioned_case():
    x, lengths, _ = padded()
    return LanguageModel(20, num_conditions=2, **SMALL), LabelledBatch(x, lengths, torch.tensor([0, 1, 1]))


def classifier_case():
    x, lengths, _ = padded()
    batch = LabelledBatch(x, lengths, torch.tensor([2, 0, 1]))
    return SequenceClassifier(20, 3, **SMALL), batch, (x, lengths), (batch.y,)


def tagger_case(crf=False):
    x, lengths, g = padded()
    batch = LabelledBatch(x, lengths, torch.randint(0, 4, x.shape, generator=g).masked_fill(x == 0, -100))
    return SequenceTagger(20, 4, **SMALL, crf=crf), batch, (x, lengths), (batch.y,)


def ctc_case():
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    batch = PairBatch(x, torch.tensor([6, 4]), torch.tensor([[1, 2], [2, -100]]), torch.tensor([2, 1]))
    settings = {k: v for k, v in SMALL.items() if k != "embedding_dim"}
    return CTCRecognizer(3, 3, **settings), batch, (batch.x, batch.x_lengths), (batch.y, batch.y_lengths)


def seq2seq_case(sequence_end="eos"):
    x, lengths, _ = padded()
    batch = PairBatch(x, lengths, torch.tensor([[1, 2, 3], [4, -100, -100], [2, 2, -100]]), torch.tensor([3, 1, 2]))
    model = Seq2Seq(20, 5, **SMALL, sequence_end=sequence_end)
    return model, batch, (batch.x, batch.x_lengths, batch.y), (batch.y_lengths,)


CASES = {"lm": lm_case, "classify": classifier_case, "tag": tagger_case, "tag crf": lambda: tagger_case(True),
         "ctc": ctc_case, "seq2seq eos": seq2seq_case, "seq2seq stop": lambda: seq2seq_case("stop")}


def logits_of(outputs):
    return outputs.logits if isinstance(outputs, tuple) else outputs  # a language model's LMOutput


@pytest.mark.parametrize("name", CASES)
def test_forward_returns_outputs_and_the_loss_that_loss_of_the_batch_is(name):
    torch.manual_seed(0)
    model, batch, inputs, targets = CASES[name]()
    model.eval()
    outputs, loss = model(*inputs, *targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert torch.equal(loss, model.loss(batch)[0])  # the trainer's entry point is the forward pass
    alone, none = model(*inputs)
    assert none is None  # no targets, no loss
    torch.testing.assert_close(logits_of(alone), logits_of(outputs))  # and the same outputs


def test_a_language_model_carries_its_state_in_its_outputs():
    model, batch, _, _ = lm_case()
    (logits, state), loss = model(batch.x, batch.y)
    (first, mid), _ = model(batch.x[:, :4])
    (second, _), _ = model(batch.x[:, 4:], state=mid)
    torch.testing.assert_close(torch.cat([first, second], 1), logits)  # truncated BPTT: the state carries on
    assert len(state) == 2 and state[0].shape == (1, 3, 8)  # (h, c), each (L, B, H)


def test_the_language_model_reads_a_labelled_batch_as_texts_and_refuses_other_kinds():
    model, batch = conditioned_case()
    loss, state = model.loss(batch)
    assert state is None and torch.isfinite(loss)
    assert model.loss_terms(batch) == 6 + 3 + 0
    with pytest.raises(TypeError, match="StreamBatch or a LabelledBatch"):
        model.loss(tuple(batch))


def test_seq2seq_outputs_score_each_step_over_the_tokens_and_the_ending():
    for end, steps in (("eos", 4), ("stop", 3)):
        model, batch, inputs, _ = seq2seq_case(end)
        logits, _ = model.eval()(*inputs)
        assert logits.shape == (3, steps, 6)  # V + 1 columns: </s>, or the stop output's logit
