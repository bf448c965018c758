"""Choosing the next token from logits: temperature, top-k and nucleus (top-p)."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """logits (B, V) -> token ids (B,).

    ``temperature == 0`` is greedy (argmax). Otherwise sample from
    softmax(logits / temperature) restricted to the ``top_k`` likeliest tokens
    and to the smallest set whose probability reaches ``top_p`` (Holtzman et
    al. 2020); the likeliest token always stays in.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
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
    return draw(logits.softmax(dim=-1), generator)


def draw(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One category per row of probs (B, V) -> (B,), by inverse CDF: the first
    index whose cumulative probability exceeds u ~ U[0, total). Zero-probability
    entries are never drawn (not even when u * total rounds up to the total).
    A few small ops, several times cheaper than ``torch.multinomial`` at batch 1."""
    cdf = probs.cumsum(dim=-1)  # (B, V)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)  # (B, 1)
    return torch.minimum(index, cdf.argmax(dim=-1, keepdim=True)).squeeze(-1)
