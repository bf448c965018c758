"""Label smoothing (--label-smoothing ε): in training, each model's cross-entropy is torch's
F.cross_entropy(label_smoothing=ε) of its own logits, which is (1 - ε) times the plain
cross-entropy plus ε times the mean over the K classes of -log p_k (checked by hand too);
in evaluation mode the plain cross-entropy; refused where the loss is no cross-entropy over
labels (CTC, a CRF tagger)."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.data.batches import LabelledBatch, StreamBatch
from rnnkit.data.sequences import IGNORE
from rnnkit.errors import ConfigError
from rnnkit.models import LanguageModel, SequenceClassifier, SequenceTagger
from rnnkit.models.seq2seq import Seq2Seq

EPS = 0.2
SMALL = dict(hidden_size=8, num_layers=1, embedding_dim=4, dropout=0.0, label_smoothing=EPS)


def by_hand(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> torch.Tensor:
    """(1 - ε) (-log p_y) + ε mean_k (-log p_k), averaged over the positions whose target is not IGNORE."""
    logp = logits.log_softmax(-1)
    valid = targets != IGNORE
    nll = -logp[valid].gather(-1, targets[valid][:, None]).squeeze(-1)
    return ((1 - eps) * nll - eps * logp[valid].mean(-1)).mean()


def check(model, loss_of, logits_of, targets):
    """The model's loss in training mode is torch's smoothed cross-entropy of its logits (and the hand
    formula), and differs from the plain one; in evaluation mode it is the plain one."""
    torch.manual_seed(0)
    model.train()
    smoothed = loss_of()
    logits = logits_of().reshape(-1, logits_of().shape[-1])
    flat = targets.reshape(-1)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits, flat, label_smoothing=EPS))
    torch.testing.assert_close(smoothed, by_hand(logits, flat, EPS))
    plain = F.cross_entropy(logits, flat)
    assert abs(smoothed.item() - plain.item()) > 1e-3
    model.eval()
    torch.testing.assert_close(loss_of(), plain)


def test_the_language_model_s_training_loss_is_torch_s_smoothed_cross_entropy():
    torch.manual_seed(0)
    model = LanguageModel(11, cell="gru", **SMALL)
    x, y = torch.randint(0, 11, (3, 7)), torch.randint(0, 11, (3, 7))
    check(model, lambda: model.loss(StreamBatch(x, y))[0], lambda: model(x)[0].logits, y)


def test_the_classifier_s_and_the_tagger_s_training_losses_are_torch_s_smoothed_cross_entropy():
    torch.manual_seed(0)
    x, lengths = torch.randint(1, 20, (4, 6)), torch.tensor([6, 3, 5, 2])
    classifier = SequenceClassifier(20, 3, **SMALL)
    labels = torch.tensor([0, 2, 1, 2])
    check(classifier, lambda: classifier.loss(LabelledBatch(x, lengths, labels))[0],
          lambda: classifier(x, lengths)[0], labels)
    tagger = SequenceTagger(20, 5, **SMALL)
    tags = torch.randint(0, 5, (4, 6)).masked_fill(torch.arange(6)[None, :] >= lengths[:, None], IGNORE)
    check(tagger, lambda: tagger.loss(LabelledBatch(x, lengths, tags))[0], lambda: tagger(x, lengths)[0], tags)


def test_seq2seq_s_token_loss_is_torch_s_smoothed_cross_entropy_over_tokens_and_endings():
    torch.manual_seed(0)
    model = Seq2Seq(9, 6, cell="gru", **SMALL)
    x, x_lengths = torch.randint(0, 9, (3, 5)), torch.tensor([5, 2, 4])
    y_lengths = torch.tensor([4, 1, 3])
    y = torch.randint(0, 6, (3, 4)).masked_fill(torch.arange(4)[None, :] >= y_lengths[:, None], IGNORE)  # padded
    targets = torch.cat([y, y.new_full((3, 1), IGNORE)], dim=1)  # y_1..y_U, </s>, padding
    targets[torch.arange(3), y_lengths] = model.end
    check(model, lambda: model(x, x_lengths, y, y_lengths)[1], lambda: model(x, x_lengths, y)[0], targets)


def test_label_smoothing_must_be_a_fraction_and_applies_only_to_a_cross_entropy_over_labels(
        corpus, tmp_path, cli_here, user_error, tiny_lm_flags):
    with pytest.raises(ConfigError, match="label_smoothing must be in \\[0, 1\\)"):
        LanguageModel(5, label_smoothing=1.0)
    user_error(cli_here("train", corpus, "--out", tmp_path / "a", "--label-smoothing", 1.5, *tiny_lm_flags),
               "label_smoothing must be in [0, 1); got 1.5")
    speech = tmp_path / "speech.tsv"  # never read: the flag is refused first
    speech.write_text("")
    user_error(cli_here("train", speech, "--task", "ctc", "--out", tmp_path / "b", "--label-smoothing", 0.1),
               "--label-smoothing needs --task lm, classify, tag or seq2seq")


def test_with_a_stop_output_only_the_tokens_cross_entropy_is_smoothed_not_the_stop_bernoulli():
    torch.manual_seed(0)
    model = Seq2Seq(9, 6, cell="gru", sequence_end="stop", **SMALL).train()
    x, x_lengths = torch.randint(0, 9, (3, 5)), torch.tensor([5, 2, 4])
    y_lengths = torch.tensor([4, 1, 3])
    valid = torch.arange(4)[None, :] < y_lengths[:, None]  # (B, U)
    y = torch.randint(0, 6, (3, 4)).masked_fill(~valid, IGNORE)
    loss = model(x, x_lengths, y, y_lengths)[1]
    scores = model(x, x_lengths, y)[0]  # (B, U, V + 1): the tokens' logits, then the stop logit
    tokens = F.cross_entropy(scores[..., :-1][valid], y[valid], reduction="sum", label_smoothing=EPS)
    last = (torch.arange(4)[None, :] == (y_lengths - 1)[:, None]).float()
    stop = F.binary_cross_entropy_with_logits(scores[..., -1][valid], last[valid], reduction="sum")
    torch.testing.assert_close(loss, (tokens + stop) / int((y_lengths + 1).sum()))
