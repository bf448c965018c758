"""Choosing the next token from logits: temperature, top-k and nucleus (top-p)."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None,
                noise: RaceNoise | None = None) -> Tensor:
    """logits (B, V) -> token ids (B,); ``noise`` (drawn ahead from its own
    generator) replaces ``generator`` in a loop over many tokens.

    ``temperature == 0`` is greedy (argmax). Otherwise sample from
    softmax(logits / temperature) restricted to the ``top_k`` likeliest tokens
    and to the smallest set whose probability reaches ``top_p`` (Holtzman et
    al. 2020); the likeliest token always stays in.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    if logits.dtype != torch.float32:
        logits = logits.float()
    if temperature != 1.0:  # from the row's maximum, which stays 0: a tiny temperature cannot overflow it away
        logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return draw(logits, generator, noise)


def draw(logits: Tensor, generator: torch.Generator | None = None, noise: RaceNoise | None = None) -> Tensor:
    """One category per row of logits (B, V) -> (B,), drawn from
    softmax(logits) by the exponential race (the Gumbel-max trick): with
    E_i ~ Exp(1) independent, argmax_i (logits_i - log E_i) is i with
    probability softmax(logits)_i. Tokens at -inf are never drawn. Five small
    ops and no softmax, faster at batch 1 than the inverse CDF of the softmax
    and than softmax + ``torch.multinomial`` (benchmarks/NOTEBOOK.md, "Sampling
    by the exponential race"); with -log E taken from ``noise``, two and a view
    of its row."""
    if noise is not None:
        return (logits + noise.next(logits)).argmax(dim=-1)
    return (logits + _gumbel(torch.empty_like(logits), generator)).argmax(dim=-1)


def _gumbel(out: Tensor, generator: torch.Generator | None) -> Tensor:
    """-log E, E ~ Exp(1), into out (the Gumbel distribution); E is kept above 0."""
    return out.exponential_(generator=generator).clamp_(min=torch.finfo(out.dtype).tiny).log_().neg_()


class RaceNoise:
    """The -log E of :func:`draw` for a run of steps, drawn many steps at a
    time from ``generator``: at batch 1 the four small ops of a draw cost
    more than the arithmetic, so one block of up to 256 steps (at most 2^16
    numbers) takes them once. The draws are independent as before, in
    another order."""

    BLOCK_NUMBERS = 1 << 16

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator
        self.block: Tensor | None = None  # (steps, B, V)
        self.used = 0

    def next(self, like: Tensor) -> Tensor:
        """Noise shaped like ``like`` (B, V) for one step."""
        b = self.block
        if b is None or self.used == b.shape[0] or b.shape[1:] != like.shape or b.dtype != like.dtype \
                or b.device != like.device:
            steps = max(1, min(256, self.BLOCK_NUMBERS // like.numel()))
            self.block = b = _gumbel(like.new_empty(steps, *like.shape), self.generator)
            self.used = 0
        self.used += 1
        return b[self.used - 1]
