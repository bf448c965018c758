"""The encoder that classifiers and taggers share: tokens -> embedding ->
(bidirectional) recurrent stack, over padded batches with lengths.

    e_t = dropout(E[x_t])                       (B, T, E)
    o_t = merge(→h_t, ←h_t)                      (B, T, F)  F = 2H for concat, else H

With ``encoder="tdnn"`` a time-delay network (:mod:`rnnkit.layers.tdnn`)
replaces the recurrent stack: causal when not bidirectional, a centred
window otherwise.

Padding never changes a sequence's result: the recurrent layer stops each
sequence at its length (its reverse direction starts at its last valid
token), and whatever reads o_t masks the positions beyond it.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import State
from rnnkit.config import ModelConfig
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent
from rnnkit.layers.tdnn import TimeDelay


class Encoder(nn.Module):
    """``forward(x, lengths) -> (outputs (B, T, F), state)`` for ids x (B, T)
    and lengths (B,); ``config`` a :class:`ModelConfig` whose ``bidirectional``
    is already decided (True or False). The state is None for a tdnn."""

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        c = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim) if c.embedding_dim else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=1.0)
        if c.encoder == "tdnn":
            if c.kernel_size % 2 == 0 and c.bidirectional:
                raise ConfigError(f"kernel_size must be odd for a centred (bidirectional) tdnn; got {c.kernel_size}")
            self.layer = TimeDelay(c.embedding_dim or vocab_size, c.hidden_size, c.num_layers, c.kernel_size,
                                 causal=not c.bidirectional, dropout=c.dropout)
        else:
            self.layer = Recurrent(c.cell, c.embedding_dim or vocab_size, c.hidden_size, c.num_layers,
                                 dropout=c.dropout, bidirectional=bool(c.bidirectional), merge=c.merge,
                                 engine=c.engine, nonlinearity=c.nonlinearity,
                                 **({"forget_bias": c.forget_bias} if c.cell == "lstm" else {}),
                                 input_init=c.input_init, recurrent_init=c.recurrent_init)
        self.drop = nn.Dropout(c.dropout)

    @property
    def output_size(self) -> int:
        return self.layer.output_size

    def embed(self, x: Tensor) -> Tensor:
        """ids (B, T) -> (B, T, E), or one-hot (B, T, V) when embedding_dim = 0."""
        if self.embedding is None:
            return F.one_hot(x, self.vocab_size).float()
        return self.drop(self.embedding(x))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        if x.dim() != 2 or lengths.shape != x.shape[:1]:
            raise ValueError(f"Encoder: expected ids (B, T) and lengths (B,), got {tuple(x.shape)} and "
                             f"{tuple(lengths.shape)}")
        return self.layer(self.embed(x), lengths=lengths)
