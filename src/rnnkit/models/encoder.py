"""The encoder that classifiers and taggers share: tokens -> embedding ->
(bidirectional) recurrent stack, over padded batches with lengths.

    e_t = dropout(E[x_t])                       (B, T, E)
    o_t = merge(→h_t, ←h_t)                      (B, T, F)  F = 2H for concat, else H

With ``char_features`` W > 0 the input also carries each word's spelling,
x (B, T, 1 + C) (:class:`rnnkit.data.words.SpelledWordTokenizer`), and
e_t = dropout([E[word_t] ; Spelling(chars_t)]) is (B, T, E + 2W)
(:mod:`rnnkit.layers.spelling`).

With ``encoder="tdnn"`` a time-delay network (:mod:`rnnkit.layers.tdnn`)
replaces the recurrent stack: causal when not bidirectional, a centred
window otherwise. With ``encoder="esn"`` (classify, tag) an echo state
reservoir of ``hidden_size`` units does (:mod:`rnnkit.layers.reservoir`):
one layer read one way, its weights fixed at random, o_t = x_t (B, T, N);
the model's readout is then fitted in closed form by ridge regression
(:mod:`rnnkit.training.closed_form`), with no backpropagation.

Padding never changes a sequence's result: the recurrent layer stops each
sequence at its length (its reverse direction starts at its last valid
token), and whatever reads o_t masks the positions beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import CHAR_FEATURES_NEED_WORDS, ModelConfig, check_at_least, check_choice, setting
from rnnkit.errors import ConfigError
from rnnkit.kernels import State, cell_options
from rnnkit.layers import Recurrent, length_mask
from rnnkit.layers.dropout import dropout
from rnnkit.layers.reservoir import Reservoir
from rnnkit.layers.spelling import Spelling
from rnnkit.layers.tdnn import TimeDelay


@dataclass
class EncoderConfig(ModelConfig):
    """:class:`ModelConfig` and the encoder's kind, for a model that reads whole sequences."""

    ENCODERS = ("rnn", "tdnn")  # the kinds this class of model takes (a class attribute, not a setting)
    encoder: str = setting("classify, tag, seq2seq, ctc: rnn (the recurrent cells) or tdnn (a time-delay network: 1-D "
                           "convolutions over time, the finite-window baseline); classify, tag: also esn (an echo "
                           "state reservoir whose readout is fitted in closed form, no backpropagation)",
                           default="rnn")
    kernel_size: int = setting("tdnn: inputs each convolution sees", default=5)

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "encoder", self.ENCODERS)
        check_at_least(self, "kernel_size", 1)


@dataclass
class ReservoirSettings:
    """The settings of an echo state reservoir (:class:`rnnkit.layers.reservoir.Reservoir`,
    ``hidden_size`` units) and of its readout's fit by ridge regression, for a model config that
    takes ``encoder="esn"``; it calls :meth:`check_reservoir` after its own checks."""

    spectral_radius: float = setting("esn: the spectral radius ρ of the reservoir's recurrent matrix (below 1: the "
                                     "state forgets where it started)", default=0.9)
    leak_rate: float = setting("esn: the leak rate a of the reservoir's units, x_t = (1 - a) x_(t-1) + a tanh(...) "
                               "(1: ordinary tanh units; lower: slower, longer memory)", default=1.0)
    input_scaling: float = setting("esn: the input weights and biases are drawn from U(-s, s)", default=1.0)
    reservoir_density: float = setting("esn: the fraction of the recurrent matrix's entries that are not zero",
                                       default=0.1)
    reservoir_seed: int = setting("esn: the seed of the reservoir's random weights", default=0)
    ridge: float = setting("esn: the readout's ridge penalty λ, (XᵀX + λI) W = XᵀY", default=1e-6)
    washout: int = setting("esn, a readout at every step (tag, forecast): the fit skips each training sequence's "
                           "first this many steps (the reservoir's transient from its zero state)", default=0)

    def check_reservoir(self) -> None:
        """ConfigError naming the field when a reservoir setting is out of range, or when an esn is bidirectional."""
        for name in ("spectral_radius", "input_scaling"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("leak_rate", "reservoir_density"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in (0, 1]; got {getattr(self, name)}")
        check_at_least(self, "ridge", 0.0)
        check_at_least(self, "washout", 0)
        if self.encoder == "esn" and self.bidirectional:
            raise ConfigError("an esn encoder reads one way: bidirectional must be false (or unset)")


def reservoir(config: ReservoirSettings, input_size: int) -> Reservoir:
    """The reservoir ``config`` describes, reading ``input_size`` features a step."""
    c = config
    return Reservoir(input_size, c.hidden_size, c.spectral_radius, c.leak_rate, c.input_scaling,
                     c.reservoir_density, c.reservoir_seed)


@dataclass
class ReservoirEncoderConfig(ReservoirSettings, EncoderConfig):
    """:class:`EncoderConfig` of a model that can also read with an echo state reservoir
    (``encoder="esn"``) under a readout fitted by ridge regression (:class:`ReservoirSettings`)."""

    ENCODERS = ("rnn", "tdnn", "esn")

    def __post_init__(self):
        super().__post_init__()
        self.check_reservoir()


@dataclass
class WordEncoderConfig(ReservoirEncoderConfig):
    """:class:`ReservoirEncoderConfig` of an encoder of words, which may also read each word's spelling."""

    char_features: int = setting("classify, tag: read each word's spelling with a bidirectional LSTM of this "
                                 "many units a direction, for words the vocabulary lacks (Lample et al. 2016; "
                                 "0 = off; 25 is usual)", default=0)

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, "char_features", 0)


class LinearReadout:
    """A model whose ``head`` (an ``nn.Linear``) an esn fits in closed form (:mod:`rnnkit.training.closed_form`):
    ``set_readout`` puts the fitted weights there (the model's own ``readout_rows`` says what it regresses)."""

    @torch.no_grad()
    def set_readout(self, weight: Tensor, bias: Tensor, mse: Tensor | None = None) -> None:
        """Set the head to the fitted readout, outputs = W features + b: weight (K, F), bias (K,)."""
        self.head.weight.copy_(weight)
        self.head.bias.copy_(bias)


def reading_both_ways(config: dict, cls=EncoderConfig):
    """The settings (a ``cls``) of a model that sees the whole sequence at once: ``bidirectional``
    unset (None) means True, but for an esn, which reads one way."""
    unset = config.get("bidirectional") is None
    both = config.get("encoder") != "esn" if unset else config["bidirectional"]
    return cls(**{**config, "bidirectional": both})


def layers_in_words(config: ModelConfig) -> str:
    """A model's layers in a few words, from its settings (``bidirectional`` decided): "2 x 512
    bidirectional LSTM", "2 x 512 TDNN", "500-unit echo state reservoir (ρ 0.9, leak rate 1)"."""
    kind = getattr(config, "encoder", "rnn")
    if kind == "esn":
        return (f"{config.hidden_size}-unit echo state reservoir (ρ {config.spectral_radius:g}, leak rate "
                f"{config.leak_rate:g}) under a ridge readout (λ {config.ridge:g})")
    both = "bidirectional " if config.bidirectional else ""
    return f"{config.num_layers} x {config.hidden_size} {both}{'TDNN' if kind == 'tdnn' else config.cell.upper()}"


class Encoder(nn.Module):
    """``forward(x, lengths) -> (outputs (B, T, F), state)`` for ids x (B, T)
    (or, with ``vocab_size`` 0 and ``input_size`` I, vectors x (B, T, I)) and
    lengths (B,); ``config`` an :class:`EncoderConfig` whose ``bidirectional``
    is already decided (True or False). The state is None for a tdnn, (x_T,) (1, B, N) for
    an esn. With
    ``char_features`` (a :class:`WordEncoderConfig`'s) the ids come with
    spellings, x (B, T, 1 + C), over ``alphabet_size`` character ids; so they do
    with ``context``, a module reading the spellings of a batch's words in
    their sentences into features (``forward(chars (B, T, C), mask (B, T)) ->
    (B, T, D)``, ``output_size`` D: :class:`rnnkit.models.char_lm.ContextualChars`),
    read beside the embedding."""

    def __init__(self, vocab_size: int, config: EncoderConfig, input_size: int | None = None,
                 alphabet_size: int = 0, char_features: int = 0, context: nn.Module | None = None):
        super().__init__()
        c = config
        self.vocab_size = vocab_size
        if not vocab_size and not input_size:
            raise ValueError("Encoder: give vocab_size (token ids) or input_size (vectors)")
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim) if vocab_size and c.embedding_dim else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=1.0)
        width = input_size if not vocab_size else (c.embedding_dim or vocab_size)
        self.spelling = None
        if char_features:
            if not vocab_size or not alphabet_size:
                raise ConfigError(CHAR_FEATURES_NEED_WORDS)
            self.spelling = Spelling(alphabet_size, char_features)
            width += self.spelling.output_size
        self.context = context
        if context is not None:
            width += context.output_size
        if c.encoder == "esn":
            self.layer = reservoir(c, width)
        elif c.encoder == "tdnn":
            if c.kernel_size % 2 == 0 and c.bidirectional:
                raise ConfigError(f"kernel_size must be odd for a centred (bidirectional) tdnn; got {c.kernel_size}")
            self.layer = TimeDelay(width, c.hidden_size, c.num_layers, c.kernel_size,
                                 causal=not c.bidirectional, dropout=c.dropout)
        else:
            self.layer = Recurrent(c.cell, width, c.hidden_size, c.num_layers,
                                 dropout=c.dropout, bidirectional=bool(c.bidirectional), merge=c.merge,
                                 engine=c.engine, weight_drop=c.weight_drop, padded=True, batchnorm=c.batchnorm,
                                 input_noise=c.input_noise, weight_noise=c.weight_noise, skip_steps=c.skip_steps,
                                 **cell_options(c.cell, c),  # forget_bias, nonlinearity, ...
                                 input_init=c.input_init, recurrent_init=c.recurrent_init)
        self.dropout = c.dropout

    @property
    def output_size(self) -> int:
        """F, the width of the outputs: the layer's output size."""
        return self.layer.output_size

    def embed(self, x: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) -> (B, T, E), or one-hot (B, T, V) when embedding_dim = 0;
        spelled ids (B, T, 1 + C) -> (B, T, E + 2W); vectors (B, T, I) of a
        numeric series pass as they are."""
        if not self.vocab_size:
            return x
        words = x[..., 0] if self.spelled else x  # (B, T)
        e = F.one_hot(words, self.vocab_size).float() if self.embedding is None else self.embedding(words)
        if self.spelled:
            mask = length_mask(lengths, x.shape[1])  # (B, T)
            e = torch.cat([e, *(read(x[..., 1:], mask).to(e.dtype) for read in (self.spelling, self.context)
                                if read is not None)], dim=-1)
        return dropout(e, self.dropout, self.training)

    @property
    def spelled(self) -> bool:
        """Whether the ids come with their words' spellings, x (B, T, 1 + C)."""
        return self.spelling is not None or self.context is not None

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        """x (B, T) ids, (B, T, 1 + C) spelled ids or (B, T, I) vectors, lengths (B,) -> (outputs (B, T, F),
        state), outputs zero beyond each length."""
        dims, expected = (3, "vectors (B, T, I)") if not self.vocab_size else \
            (3, "spelled ids (B, T, 1 + C)") if self.spelled else (2, "ids (B, T)")
        if x.dim() != dims or lengths.shape != x.shape[:1]:
            raise ValueError(f"Encoder: expected {expected} and lengths (B,), got {tuple(x.shape)} and "
                             f"{tuple(lengths.shape)}")
        return self.encode(self.embed(x, lengths), lengths)

    def encode(self, e: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        """Embedded inputs e (B, T, E) -> (outputs (B, T, F), state): the part
        after the embedding, for inputs perturbed in embedding space."""
        return self.layer(e, lengths=lengths)
