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
window otherwise.

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
from rnnkit.layers.spelling import Spelling
from rnnkit.layers.tdnn import TimeDelay


@dataclass
class EncoderConfig(ModelConfig):
    """:class:`ModelConfig` and the encoder's kind, for a model that reads whole sequences."""

    encoder: str = setting("classify, tag, seq2seq, ctc: rnn (the recurrent cells) or tdnn (a time-delay network: 1-D "
                           "convolutions over time, the finite-window baseline)", default="rnn")
    kernel_size: int = setting("tdnn: inputs each convolution sees", default=5)

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "encoder", ("rnn", "tdnn"))
        check_at_least(self, "kernel_size", 1)


@dataclass
class WordEncoderConfig(EncoderConfig):
    """:class:`EncoderConfig` of an encoder of words, which may also read each word's spelling."""

    char_features: int = setting("classify, tag: read each word's spelling with a bidirectional LSTM of this "
                                 "many units a direction, for words the vocabulary lacks (Lample et al. 2016; "
                                 "0 = off; 25 is usual)", default=0)

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, "char_features", 0)


def reading_both_ways(config: dict, cls=EncoderConfig):
    """The settings (a ``cls``) of a model that sees the whole sequence at once: ``bidirectional``
    unset (None) means True."""
    return cls(**{**config, "bidirectional": config.get("bidirectional") is not False})


class Encoder(nn.Module):
    """``forward(x, lengths) -> (outputs (B, T, F), state)`` for ids x (B, T)
    (or, with ``vocab_size`` 0 and ``input_size`` I, vectors x (B, T, I)) and
    lengths (B,); ``config`` an :class:`EncoderConfig` whose ``bidirectional``
    is already decided (True or False). The state is None for a tdnn. With
    ``char_features`` (a :class:`WordEncoderConfig`'s) the ids come with
    spellings, x (B, T, 1 + C), over ``alphabet_size`` character ids."""

    def __init__(self, vocab_size: int, config: EncoderConfig, input_size: int | None = None,
                 alphabet_size: int = 0, char_features: int = 0):
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
        if c.encoder == "tdnn":
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
        return self.layer.output_size

    def embed(self, x: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) -> (B, T, E), or one-hot (B, T, V) when embedding_dim = 0;
        spelled ids (B, T, 1 + C) -> (B, T, E + 2W); vectors (B, T, I) of a
        numeric series pass as they are."""
        if not self.vocab_size:
            return x
        words = x[..., 0] if self.spelling is not None else x  # (B, T)
        e = F.one_hot(words, self.vocab_size).float() if self.embedding is None else self.embedding(words)
        if self.spelling is not None:
            e = torch.cat([e, self.spelling(x[..., 1:], length_mask(lengths, x.shape[1]))], dim=-1)
        return dropout(e, self.dropout, self.training)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        dims, expected = (3, "vectors (B, T, I)") if not self.vocab_size else \
            (3, "spelled ids (B, T, 1 + C)") if self.spelling is not None else (2, "ids (B, T)")
        if x.dim() != dims or lengths.shape != x.shape[:1]:
            raise ValueError(f"Encoder: expected {expected} and lengths (B,), got {tuple(x.shape)} and "
                             f"{tuple(lengths.shape)}")
        return self.encode(self.embed(x, lengths), lengths)

    def encode(self, e: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        """Embedded inputs e (B, T, E) -> (outputs (B, T, F), state): the part
        after the embedding, for inputs perturbed in embedding space."""
        return self.layer(e, lengths=lengths)
