"""The kinds of batch the loaders yield, each a NamedTuple of batch-first tensors.

A model reads a batch's fields by name; unpacking (``x, y = batch``) still
works, and code that treats every kind alike (moving to a device, taking a
rank's rows) rebuilds a batch with ``type(batch)(*parts)``. Every kind has
its input first, as ``x``, so ``len(batch.x)`` is the number of rows B.

- :class:`StreamBatch` (x, y): contiguous streams for truncated BPTT, each
  (B, T) int64, y x shifted by one (:class:`rnnkit.data.StreamBatcher`).
- :class:`LabelledBatch` (x, lengths, y): padded sequences x (B, T) int64
  (vectors (B, T, F) for a numeric series) with lengths (B,) >= 1 and labels
  y (B,) (a class, or a conditioned language model's condition) or (B, T)
  (a tag a step, padded with ``IGNORE``) (:mod:`rnnkit.data.sequences`).
- :class:`WindowBatch` (x, lengths, y, summary): a :class:`LabelledBatch` of
  recordings' windows with, for each window, its whole recording's summary
  (B, P), the same for every window of a recording (:mod:`rnnkit.data.windows`).
- :class:`PairBatch` (x, x_lengths, y, y_lengths): a source and a target
  sequence per row: seq2seq's token ids x (B, S) (:mod:`rnnkit.data.pairs`),
  or CTC's feature frames x (B, T', F) (:mod:`rnnkit.data.speech`); targets
  y (B, U) int64 padded with ``IGNORE``.
- :class:`ForecastBatch` (x, covariates, y): windows of a numeric series,
  the previous values x (B, T, C), the known inputs of each target step
  covariates (B, T, K) (K may be 0) and the values to predict y (B, T, C)
  (:mod:`rnnkit.data.forecast`).
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import torch
from torch import Tensor


class StreamBatch(NamedTuple):
    """A language model's batch: token ids ``x`` (B, T) and ``y`` (B, T), the next token of each."""

    x: Tensor  # (B, T) token ids
    y: Tensor  # (B, T) the next token of each


class LabelledBatch(NamedTuple):
    """A classifier's or tagger's batch: ``x`` (B, T) ids or (B, T, F) vectors, 0 after each length;
    ``lengths`` (B,); ``y`` (B,) labels or (B, T) a label a step, IGNORE (-100) after each length."""

    x: Tensor  # (B, T) token ids, or (B, T, F) vectors; 0 after each length
    lengths: Tensor  # (B,) >= 1
    y: Tensor  # (B,) labels, or (B, T) a label a step, IGNORE after each length


class WindowBatch(NamedTuple):
    """Windows of recordings classified whole: ``x`` (B, T, F) vectors, 0 after each length; ``lengths``
    (B,); ``y`` (B,) their recording's label; ``summary`` (B, P) their recording's whole-recording
    features (:meth:`rnnkit.data.recordings.RecordingScaler.spectrum`)."""

    x: Tensor  # (B, T, F) vectors; 0 after each length
    lengths: Tensor  # (B,) >= 1
    y: Tensor  # (B,) labels
    summary: Tensor  # (B, P) float32, each window's recording's


class PairBatch(NamedTuple):
    """A seq2seq or CTC batch: ``x`` (B, S) source ids or (B, T', F) features, 0 after each length;
    ``x_lengths`` (B,); ``y`` (B, U) target ids, IGNORE (-100) after each length; ``y_lengths`` (B,)."""

    x: Tensor  # (B, S) source ids, or (B, T', F) features; 0 after each length
    x_lengths: Tensor  # (B,) >= 1
    y: Tensor  # (B, U) target ids, IGNORE after each length
    y_lengths: Tensor  # (B,) >= 1


class ForecastBatch(NamedTuple):
    """A forecaster's batch: the previous values ``x`` (B, T, C) (x_t = y_(t-1)), the ``covariates``
    (B, T, K) known in advance of each target step, and the values to predict ``y`` (B, T, C)."""

    x: Tensor  # (B, T, C) the previous values, x_t = y_(t-1)
    covariates: Tensor  # (B, T, K) what is known in advance of each target step
    y: Tensor  # (B, T, C) the values to predict


Batch = TypeVar("Batch", StreamBatch, LabelledBatch, WindowBatch, PairBatch, ForecastBatch)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """The same batch with every tensor on ``device``."""
    return type(batch)(*(t.to(device) for t in batch))


def rows(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start .. stop - 1`` of every tensor of ``batch``."""
    return type(batch)(*(t[start:stop] for t in batch))
