"""How many of a cell's gates and units sit at the flat ends of their
nonlinearity, where the slope (and so the gradient through them) is near 0.

As Karpathy, Johnson & Fei-Fei (2015, "Visualizing and Understanding
Recurrent Networks") count them: a sigmoid gate is left-saturated below 0.1
and right-saturated above 0.9; a tanh value likewise below -0.9 and above
0.9. A forget gate right-saturated is a unit that remembers; a tanh unit
saturated is one whose gradient has all but stopped (1 - 0.9² = 0.19).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.diagnostics.tracing import recorded, recordings

LOW = {"sigmoid": 0.1, "tanh": -0.9}
HIGH = {"sigmoid": 0.9, "tanh": 0.9}


@torch.no_grad()
def saturation(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, dict[str, tuple[float, float]]]:
    """Every recurrent cell of ``model`` by name -> each gate or squashed
    value it computes (:meth:`rnnkit.kernels.cell.Cell.gates`) -> the
    fractions (left, right) of its values that are saturated, over every unit
    and every step inside the lengths of ``batch``'s sequences, the model in
    evaluation mode on its own loss's forward pass. ``batch`` as ``model.loss``
    takes it, batch-first (B, T, ...)."""
    with recorded(model) as traces:
        model.loss(batch)
    result = {}
    for r in recordings(model, traces):
        counts: dict[str, list[float]] = {}  # gate -> [left, right, values]
        for t, step in enumerate(r.steps):
            valid = r.mask[:, t]
            for gate, (kind, values) in r.cell.gates(step.xp, step.hp, step.before).items():
                v = values[valid].float()
                c = counts.setdefault(gate, [0, 0, 0])
                c[0] += int((v < LOW[kind]).sum())
                c[1] += int((v > HIGH[kind]).sum())
                c[2] += v.numel()
        if counts:
            result[r.name] = {gate: (left / max(n, 1), right / max(n, 1)) for gate, (left, right, n) in counts.items()}
    return result
