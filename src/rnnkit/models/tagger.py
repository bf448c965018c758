"""A sequence tagger: one output at every input step (Goodfellow et al. 10.2,
figure 10.3), by default reading the whole sentence both ways.

    o_1..o_T = Encoder(x_1..x_T)                  (B, T, F)
    s_t = W o_t + b                               (B, T, K)  emission scores

Output layer, per ``TaggerConfig.crf``:

- softmax (default): p(y_t | x) = softmax(s_t), each step on its own;
  loss Σ_t -log p(y_t | x) / (tokens);
- linear-chain CRF (Huang et al. 2015, BI-LSTM-CRF): p(y | x) ∝
  exp(Σ_t s_t[y_t] + Σ_t A[y_{t-1}, y_t]), so the tags of neighbours
  constrain each other (I-NP cannot follow B-VP); loss -log p(y | x)
  summed over sentences / tokens; decoding by Viterbi
  (:mod:`rnnkit.layers.crf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import setting, smoothing
from rnnkit.data.batches import LabelledBatch
from rnnkit.data.sequences import IGNORE
from rnnkit.errors import ConfigError
from rnnkit.layers import length_mask
from rnnkit.layers.crf import LinearChainCRF
from rnnkit.layers.dropout import dropout
from rnnkit.models.char_lm import ContextualChars
from rnnkit.models.encoder import Encoder, LinearReadout, WordEncoderConfig, reading_both_ways


@dataclass
class TaggerConfig(WordEncoderConfig):
    """:class:`rnnkit.models.encoder.WordEncoderConfig` and the tagger's output layer."""

    crf: bool = setting("tag: a linear-chain CRF output layer (Viterbi decoding) instead of per-step softmax",
                        default=False)
    char_lm: str | None = setting("tag: FWD,BWD, two character language-model runs (the second trained on "
                                  "reversed text: `rnnkit train --reverse true`) whose states at each word's edges "
                                  "become its features (Akbik et al. 2018)", default=None)
    char_lm_tune: bool = setting("tag: train the --char-lm models with the tagger (default: frozen)", default=False)
    char_lm_spec: dict | None = field(default=None, metadata={"flag": False})  # the two models, from their runs

    def __post_init__(self):
        super().__post_init__()
        if self.encoder == "esn" and self.crf:
            raise ConfigError("a CRF's transitions are trained by gradient steps, and an esn's readout is fitted in "
                              "closed form: drop --crf")


class SequenceTagger(LinearReadout, nn.Module):
    """Args: ``vocab_size`` (V), ``num_labels`` (K tags), ``input_size`` (I, for
    a numeric series: vocab_size 0 and inputs x (B, T, I)), ``alphabet_size``
    (character ids, for ``char_features``: inputs x (B, T, 1 + C)) and the
    fields of :class:`TaggerConfig` as keywords (``bidirectional`` None means True).

    ``forward(x, lengths, targets=None) -> (emission scores (B, T, K), loss)``,
    loss per tag in nats against ``targets`` (B, T) padded with -100 (the CRF's
    negative log-likelihood with ``crf``), None without them; ``loss(batch)``
    the forward pass's loss on a :class:`LabelledBatch`; ``predict(x, lengths)``
    the tag ids (B, T), 0 beyond each length. With ``encoder="esn"`` the head
    is the readout fitted in closed form (``readout_rows``, ``set_readout``).
    """

    def __init__(self, vocab_size: int, num_labels: int, input_size: int | None = None, alphabet_size: int = 0,
                 **config):
        super().__init__()
        self.config = reading_both_ways(config, TaggerConfig)
        self.num_labels = num_labels
        c = self.config
        context = ContextualChars(c.char_lm_spec, c.char_lm_tune) if c.char_lm_spec else None
        self.encoder = Encoder(vocab_size, c, input_size, alphabet_size, c.char_features, context)
        self.head = nn.Linear(self.encoder.output_size, num_labels)
        self.crf = LinearChainCRF(num_labels) if self.config.crf else None

    def forward(self, x: Tensor, lengths: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x (B, T) (or (B, T, I), (B, T, 1 + C)), lengths (B,), targets (B, T) or None -> (emission scores
        (B, T, K), loss or None)."""
        outputs, _ = self.encoder(x, lengths)  # (B, T, F)
        scores = self.head(dropout(outputs, self.config.dropout, self.training))  # (B, T, K)
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # fp32 at least, also under autocast
        if targets is None:
            return scores, None
        if self.crf is None:
            return scores, F.cross_entropy(scores.reshape(-1, self.num_labels), targets.reshape(-1),
                                           ignore_index=IGNORE, label_smoothing=smoothing(self))
        mask = targets != IGNORE  # (B, T), True at valid positions
        return scores, self.crf.nll(scores, targets.clamp(min=0), mask).sum() / mask.sum()

    def loss(self, batch: LabelledBatch, state=None) -> tuple[Tensor, None]:
        """The training contract: a :class:`LabelledBatch` (x, lengths, y) -> (loss per token in nats, no
        carried state)."""
        return self(batch.x, batch.lengths, batch.y)[1], None

    def loss_terms(self, batch) -> int:
        """How many tags :meth:`loss` averages over (padding left out)."""
        return int((batch.y != IGNORE).sum())

    @torch.no_grad()
    def readout_rows(self, batch: LabelledBatch) -> tuple[Tensor, Tensor]:
        """What the readout regresses in a closed-form fit: o_t (n, F) at the n tagged steps past
        each sequence's first ``washout``, and their tags one-hot (n, K)."""
        outputs, _ = self.encoder(batch.x, batch.lengths)  # (B, T, F)
        keep = batch.y != IGNORE  # (B, T): tagged (and not padding)
        keep[:, :self.config.washout] = False
        return outputs[keep], F.one_hot(batch.y[keep], self.num_labels).double()

    @torch.no_grad()
    def predict(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Tag ids (B, T): argmax per step, or the CRF's Viterbi path; 0 beyond each length."""
        scores, _ = self(x, lengths)
        mask = length_mask(lengths, x.shape[1])
        if self.crf is None:
            return scores.argmax(-1).masked_fill(~mask, 0)
        return self.crf.decode(scores, mask)
