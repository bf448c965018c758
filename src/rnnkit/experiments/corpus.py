"""The text the experiments train on, which every Python ships: the first 200 kB
of its own ``argparse`` module's source (nothing to download), as character
ids, and random windows of it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.batches import StreamBatch


def python_source() -> str:
    """Python source to train on: the standard library's argparse module (its first 200,000 characters)."""
    return Path(argparse.__file__).read_text()[:200_000]


def characters() -> tuple[int, Tensor]:
    """(vocabulary size, the text's ids (N,)), a character's id its rank among the text's characters."""
    text = python_source()
    index = {c: i for i, c in enumerate(sorted(set(text)))}
    return len(index), torch.tensor([index[c] for c in text])


def windows(ids: Tensor, batch: int, length: int, seed: int) -> Iterator[StreamBatch]:
    """Endless :class:`StreamBatch` (x, y), each ``batch`` windows of ``length`` ids from random places, y x's
    next ids."""
    rng = np.random.default_rng(seed)
    while True:
        starts = torch.from_numpy(rng.integers(0, len(ids) - length - 1, batch))
        window = ids[starts[:, None] + torch.arange(length + 1)]  # (B, length + 1)
        yield StreamBatch(window[:, :-1], window[:, 1:])
