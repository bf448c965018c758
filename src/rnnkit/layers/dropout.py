"""Dropout with a cheaper mask on a CPU, and locked (variational) dropout.

Dropout zeroes each entry with probability p and scales the rest by 1/(1-p),
so that its expectation is the input. ``F.dropout`` draws its mask with
``bernoulli_``, one random float per entry: on this project's CPU a sizeable
share of a training step of the 2 x 512 LSTM language model, which draws three
masks of up to (32, 64, 512) a step (benchmarks/NOTEBOOK.md, "Cheaper dropout
masks").

Here one 64-bit random word gives four 16-bit uniform integers u, and an
entry is kept when u >= t with t = round(p * 2^16): the drop probability is
p to the nearest 2^-16 (0.2 becomes 0.19999695), and the scale is the exact
1 / (1 - t / 2^16), so the expectation stays the input. The same mask costs
a fraction of the time. On a GPU ``F.dropout`` is one fused kernel already
and is used as it is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LEVELS = 1 << 16  # 16-bit draws


def keep_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A tensor of ``shape`` (any shape) in ``like``'s dtype and device: 1/(1-p') with
    probability 1-p', else 0, independently per entry; p' is p to the nearest
    2^-16. Drawn from the device's default generator (``torch.manual_seed``)."""
    if not 0.0 <= p < 1.0:  # p = 1 would keep one entry in 2^16, scaled by 2^16
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_(-2**63, None)
    u = words.view(torch.int16)[:n].view(shape)  # uniform over [-2^15, 2^15)
    dropped = min(round(p * _LEVELS), _LEVELS - 1)  # entries with u + 2^15 < dropped are dropped
    keep = u >= dropped - _LEVELS // 2
    return keep.to(like.dtype).mul_(_LEVELS / (_LEVELS - dropped))


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` for x of any shape, with the cheaper mask on a CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0.0 <= p < 1.0:
        return F.dropout(x, p, training)  # also gives torch's error for p outside [0, 1]
    return x * keep_mask(x.shape, p, x)


def locked_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Dropout of x (B, T, F) with one mask per sequence, shared by all T steps."""
    if not training or p == 0.0:
        return x
    return x * keep_mask((x.shape[0], 1, x.shape[2]), p, x)  # mask (B, 1, F)
