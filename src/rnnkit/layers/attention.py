"""Attention of a decoder over an encoder's outputs (a memory).

For a query q (the decoder's state, width F) and the memory's values o_s
(s = 1..S, width F), a score per position, a softmax over the valid
positions, and the weighted sum:

    dot        score(q, o_s) = qᵀ o_s                         (Luong et al. 2015)
    general    score(q, o_s) = qᵀ W_a o_s                     (Luong et al. 2015)
    additive   score(q, o_s) = vᵀ tanh(W_q q + W_k o_s)       (Bahdanau et al. 2015)
    α_s = softmax_s(score(q, o_s))  over positions where mask is True
    c = Σ_s α_s o_s

The parts that read only the memory (W_a o_s, W_k o_s) are computed once per
source sentence by :meth:`Attention.memory`, not once per decoder step.
Deviation: Bahdanau et al. score with the decoder state before the step;
here every score reads the state after it (Luong et al.'s order, their
"concat" score), so the three share one decoder.

Shapes: query (B, Q, F) for Q decoder steps at once (Q = 1 when stepping),
values (B, S, F), mask (B, S) True at valid positions; context (B, Q, F),
weights (B, Q, S), zero at padding and summing to 1 over each row.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCORES = ("additive", "dot", "general")


class Memory(NamedTuple):
    """What the decoder attends over: ``keys`` (B, S, K) (the values
    transformed as the score needs), ``values`` (B, S, F), ``mask`` (B, S), True at valid positions."""

    keys: Tensor
    values: Tensor
    mask: Tensor

    def index_select(self, index: Tensor) -> "Memory":
        """The memory of rows ``index`` (N,) (to give each beam its sentence's memory)."""
        return Memory(*(t.index_select(0, index) for t in self))


class Attention(nn.Module):
    """Args: ``score`` (``additive``, ``dot`` or ``general``) and ``size`` F,
    the width of both the query and the values.

    ``memory(values, mask) -> Memory``; ``forward(query, memory) -> (context, weights)``.
    """

    def __init__(self, score: str, size: int):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"Attention: score must be one of {SCORES}, got {score!r}")
        self.score = score
        if score == "general":
            self.weight = nn.Linear(size, size, bias=False)  # W_a
        elif score == "additive":
            self.query = nn.Linear(size, size, bias=False)  # W_q
            self.key = nn.Linear(size, size)  # W_k (its bias is the one bias of W_q q + W_k o_s)
            self.v = nn.Linear(size, 1, bias=False)

    def memory(self, values: Tensor, mask: Tensor) -> Memory:
        """values (B, S, F) and mask (B, S) -> the Memory the steps attend over."""
        if self.score == "general":
            keys = self.weight(values)  # W_a o_s  (B, S, F)
        elif self.score == "additive":
            keys = self.key(values)  # W_k o_s + b  (B, S, F)
        else:
            keys = values
        return Memory(keys, values, mask)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """query (B, Q, F) -> context (B, Q, F), weights α (B, Q, S)."""
        keys, values, mask = memory
        if self.score == "additive":
            hidden = torch.tanh(self.query(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, Q, S, F)
            scores = self.v(hidden).squeeze(-1)  # (B, Q, S)
        else:
            scores = torch.einsum("bqf,bsf->bqs", query, keys)  # (B, Q, S)
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # fp32 at least under bf16
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = F.softmax(scores, dim=-1)  # every row has a valid position: lengths >= 1
        context = torch.einsum("bqs,bsf->bqf", weights.to(values.dtype), values)  # (B, Q, F)
        return context, weights
