"""Every diagnostic of a model on one batch, as numbers that JSON can hold:
what ``rnnkit train --diagnostics-every N`` logs every N steps, and what the report
draws (NaN, a step outside a sequence, becomes None); and the batch they are
measured on."""

from __future__ import annotations

import math

from torch import nn

from rnnkit.data import batches
from rnnkit.data.batches import LabelledBatch, PairBatch, StreamBatch
from rnnkit.data.tokenfile import as_tensor
from rnnkit.diagnostics.gradients import gradient_flow, jacobian_norms
from rnnkit.diagnostics.saturation import saturation
from rnnkit.diagnostics.spectra import spectral_radii


def measure(model: nn.Module, batch: StreamBatch | LabelledBatch | PairBatch) -> dict:
    """{"gradient_flow": {layer: [||dL/dh_k|| for each step k]},
    "jacobian_norms": {layer: [σ_max(∂h_n/∂h_k) for each step k of the first sequence]},
    "spectral_radius": {layer: {gate: ρ}}, "saturation": {layer: {gate: [left, right]}}}."""
    def numbers(values):
        return [None if math.isnan(v) else float(v) for v in values]

    return {"gradient_flow": {c.name: numbers(c.values) for c in gradient_flow(model, batch)},
            "jacobian_norms": {c.name: numbers(c.values) for c in jacobian_norms(model, batch)},
            "spectral_radius": spectral_radii(model),
            "saturation": {layer: {gate: list(v) for gate, v in gates.items()}
                           for layer, gates in saturation(model, batch).items()}}


def diagnostic_batch(data, rows: int = 8) -> StreamBatch | LabelledBatch | PairBatch:
    """The batch diagnostics measure on, the same every time: up to ``rows`` rows
    of ``data``'s validation split (its training split's without one), a language
    model's text cut into windows of its ``seq_len`` tokens."""
    split = "val" if len(data.val) else "train"
    ids = getattr(data, split)
    if hasattr(data, "eval_batches"):  # whole examples: labelled, pairs, speech
        return batches.rows(next(iter(data.eval_batches(split))), 0, rows)
    T = min(data.config.seq_len, len(ids) - 1)  # a text read as streams (a tensor or a token file)
    rows = max(1, min(rows, (len(ids) - 1) // T))
    head = as_tensor(ids[:rows * T + 1])
    return StreamBatch(head[:-1].view(rows, T), head[1:].view(rows, T))
