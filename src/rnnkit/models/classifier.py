"""A sequence classifier: one output at the end of the sequence
(many-to-one, Goodfellow et al. 10.2.1, figure 10.5).

    o_1..o_T = Encoder(x_1..x_T)                  (B, T, F)
    c = pool(o_1..o_T)                            (B, F)
    p(y | x) = softmax(W c + b)                   (B, K)

Pooling (``ClassifierConfig.pooling``), always over valid positions only:

- ``last``: the final state of the top layer: →h_T, merged with ←h_1 (the
  reverse direction's state after reading the whole sequence) when bidirectional
  (a tdnn encoder: o_T);
- ``mean``: Σ_t o_t / T;
- ``max``: max_t o_t, element-wise;
- ``meanmax``: [Σ_t o_t / T ; max_t o_t], both joined (2F: the average level
  of each unit beside its peak, as a recording's windows read a steady
  rhythm and a brief transient);
- ``attention``: s_t = vᵀ tanh(W_a o_t + b_a), α = softmax_t(s), c = Σ_t α_t o_t
  (additive attention, Bahdanau et al. 2015; as pooling, Yang et al. 2016);
  :meth:`SequenceClassifier.attention_weights` gives α for inspection.

With a ``summary_size`` P > 0 (``--recording-spectrum``, a recording's
windows classified whole) each example also carries a vector s (B, P)
that the recurrent layer does not read (its recording's whole spectrum),
and the head reads it beside the pooled state:

    p(y | x, s) = softmax(W [c ; s] + b)          (B, K)

Adversarial training (``adversarial`` ε > 0; Goodfellow et al. 2015, on
embeddings as Miyato et al. 2017): each example's embeddings e get the
perturbation that increases its loss fastest, r = ε g / ‖g‖₂ with
g = ∇_e L(e) (‖·‖ over the whole sequence), and the loss is
L(e) + L(e + r). Deviation: Miyato et al. also normalise the embeddings
first; here e is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import check_at_least, check_choice, setting, smoothing
from rnnkit.data.batches import LabelledBatch, WindowBatch
from rnnkit.errors import ConfigError
from rnnkit.layers import length_mask, merge_directions
from rnnkit.layers.dropout import dropout
from rnnkit.models.encoder import Encoder, LinearReadout, WordEncoderConfig, reading_both_ways

POOLINGS = ("last", "mean", "max", "meanmax", "attention")


@dataclass
class ClassifierConfig(WordEncoderConfig):
    """:class:`rnnkit.models.encoder.WordEncoderConfig` and how a classifier pools its steps and trains."""

    pooling: str = setting("classify: one vector from all steps by last (state), mean, max, meanmax (mean and max "
                           "joined) or attention",
                           default="max")
    adversarial: float = setting("classify: adversarial training with perturbations of this L2 norm on each "
                                 "example's embeddings (Miyato et al. 2017; 0 = off)", default=0.0)

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "pooling", POOLINGS)
        check_at_least(self, "adversarial", 0.0)
        if self.encoder == "esn" and self.pooling == "attention":
            raise ConfigError("--pooling attention is trained by gradient steps, and an esn's readout is fitted in "
                              "closed form: pool by last, mean or max")


class SequenceClassifier(LinearReadout, nn.Module):
    """Args: ``vocab_size`` (V), ``num_labels`` (K), ``input_size`` (I, for
    vectors), ``alphabet_size`` (character ids, for ``char_features``) and the
    fields of :class:`ClassifierConfig` as keywords (``bidirectional`` None means True).

    ``summary_size`` (P) the width of a vector per example that the head
    reads beside the pooled state (0: none).

    ``forward(x, lengths, targets=None, summary=None) -> (logits (B, K), loss)``
    for ids x (B, T) padded after each sequence and lengths (B,) (and
    ``summary`` (B, P) with ``summary_size``): loss the mean cross-entropy
    against labels ``targets`` (B,), None without them. ``loss(batch)`` is
    the forward pass's loss on a :class:`LabelledBatch` (a :class:`WindowBatch`
    with ``summary_size``; with ``adversarial`` in training, plus the
    adversarial term);
    ``predict(x, lengths)`` the label ids. With ``encoder="esn"`` the head is
    the readout fitted in closed form (``readout_rows``, ``set_readout``), by
    ridge regression of the labels one-hot on c, and the logits are that
    regression's outputs.
    """

    def __init__(self, vocab_size: int, num_labels: int, input_size: int | None = None, alphabet_size: int = 0,
                 summary_size: int = 0, **config):
        super().__init__()
        self.config = reading_both_ways(config, ClassifierConfig)
        if num_labels < 2:
            raise ValueError(f"SequenceClassifier: need at least 2 labels, got {num_labels}")
        if summary_size and self.config.encoder == "esn":
            raise ConfigError("an esn's readout is fitted on the pooled state alone: a summary beside it (--recording-"
                              "spectrum) needs --encoder rnn or tdnn")
        self.num_labels = num_labels
        self.summary_size = summary_size
        self.encoder = Encoder(vocab_size, self.config, input_size, alphabet_size, self.config.char_features)
        F_ = self.encoder.output_size
        if self.config.pooling == "attention":
            self.attn = nn.Linear(F_, F_)
            self.attn_v = nn.Linear(F_, 1, bias=False)
        self.head = nn.Linear((2 * F_ if self.config.pooling == "meanmax" else F_) + summary_size, num_labels)

    def _scores(self, outputs: Tensor, mask: Tensor) -> Tensor:
        """Attention weights α (B, T), zero at padding."""
        s = self.attn_v(torch.tanh(self.attn(outputs))).squeeze(-1)  # (B, T)
        return F.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)

    def pool(self, x: Tensor, lengths: Tensor, e: Tensor | None = None) -> Tensor:
        """ids (B, T), lengths (B,) -> one vector per sequence (B, F), (B, 2F) for meanmax; ``e``
        (B, T, E) replaces the embeddings of x when given."""
        outputs, state = self.encoder.encode(self.encoder.embed(x, lengths) if e is None else e, lengths)  # (B, T, F)
        mask = length_mask(lengths, x.shape[1])  # (B, T), True = valid
        kind = self.config.pooling
        if kind == "last" and state is None:  # a tdnn: the output at the last valid step
            return outputs[torch.arange(len(x), device=x.device), lengths - 1]
        if kind == "last":
            h = state[0]  # (L*D, B, H), each direction's state at its sequence's end
            if self.config.bidirectional:
                return merge_directions(h[-2], h[-1], self.config.merge)
            return h[-1]
        if kind == "attention":
            return torch.einsum("bt,btf->bf", self._scores(outputs, mask), outputs)
        if kind in ("mean", "meanmax"):
            mean = outputs.sum(1) / lengths[:, None].to(outputs.dtype)  # (B, F); padding's outputs are zero
            if kind == "mean":
                return mean
        peak = outputs.masked_fill(~mask[..., None], float("-inf")).amax(1)  # (B, F)
        return peak if kind == "max" else torch.cat([mean, peak], dim=-1)  # (B, F) or (B, 2F)

    def forward(self, x: Tensor, lengths: Tensor, targets: Tensor | None = None,
                e: Tensor | None = None, summary: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(logits (B, K) in fp32 at least (also under bf16 autocast), the mean cross-entropy against
        ``targets`` (B,) or None); ``e`` (B, T, E) replaces the embedding of x (the adversarial term's);
        ``summary`` (B, P) is read beside the pooled state, given exactly when ``summary_size`` P > 0."""
        c = self.pool(x, lengths, e)  # (B, F)
        if self.summary_size or summary is not None:
            if summary is None or summary.shape != (len(x), self.summary_size):
                raise ValueError(f"SequenceClassifier: expected a summary of shape ({len(x)}, {self.summary_size}), "
                                 f"got {None if summary is None else tuple(summary.shape)}")
            c = torch.cat([c, summary.to(c.dtype)], dim=-1)  # (B, F + P)
        logits = self.head(dropout(c, self.config.dropout, self.training))  # (B, K)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return logits, None if targets is None else F.cross_entropy(logits, targets, label_smoothing=smoothing(self))

    def loss(self, batch: LabelledBatch | WindowBatch, state=None) -> tuple[Tensor, None]:
        """The training contract: a :class:`LabelledBatch` (x, lengths, y) or :class:`WindowBatch` (x, lengths,
        y, summary) -> (mean cross-entropy, no carried state); with ``adversarial`` in training, plus the loss
        on adversarial embeddings."""
        x, lengths, y, s = batch.x, batch.lengths, batch.y, getattr(batch, "summary", None)
        eps = self.config.adversarial
        if not (eps and self.training and torch.is_grad_enabled()):
            return self(x, lengths, y, summary=s)[1], None
        e = self.encoder.embed(x, lengths)  # (B, T, E)
        _, loss = self(x, lengths, y, e, s)
        (g,) = torch.autograd.grad(loss, e, retain_graph=True)  # (B, T, E)
        r = eps * g / g.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]  # ‖r_b‖ = ε
        return loss + self(x, lengths, y, e + r.detach(), s)[1], None

    @torch.no_grad()
    def readout_rows(self, batch: LabelledBatch) -> tuple[Tensor, Tensor]:
        """What the readout regresses in a closed-form fit: the pooled vectors c (B, F) and the
        labels one-hot (B, K)."""
        return self.pool(batch.x, batch.lengths), F.one_hot(batch.y, self.num_labels).double()

    @torch.no_grad()
    def predict(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Label ids (B,)."""
        return self(x, lengths)[0].argmax(-1)

    @torch.no_grad()
    def attention_weights(self, x: Tensor, lengths: Tensor) -> Tensor:
        """α (B, T) of ``pooling="attention"``: how much each token counts."""
        if self.config.pooling != "attention":
            raise ValueError("SequenceClassifier.attention_weights: the model pools by "
                             f"{self.config.pooling!r}, not attention")
        outputs, _ = self.encoder(x, lengths)
        mask = length_mask(lengths, x.shape[1])
        return self._scores(outputs, mask)
