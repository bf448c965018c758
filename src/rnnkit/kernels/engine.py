"""The one place the engine is chosen, and the one function a layer calls.

Two engines run over the same parameters:

- ``"fused"``: the whole stack at once on torch's RNN kernels (oneDNN or
  native on a CPU, cuDNN on CUDA) for the cells torch ships; for a cell torch
  has no kernel for, its own whole-sequence form (the minimal cells' scan);
- ``"explicit"``: rnnkit's own loop over the cell, which every cell supports:
  a layer node where the cell has one that takes the call (the LSTM's, the
  GRU's and their layer-normalised forms' on C kernels, the vanilla RNN's and
  the leaky integrator's on torch ops), else unroll's per-step nodes
  (:mod:`rnnkit.kernels.unroll`).

``"auto"`` is resolved by :func:`choose_engine` from the cell, the device and
the kind of batch the layer reads (padded or not, which its model states
once), never from one batch or from whether a gradient is wanted, so a model
trains and evaluates on the same engine: explicit on a CPU where the cell's
layer node beat torch's kernel for that kind of batch (``explicit_on_cpu``),
else fused where the cell has a fused form.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.kernels import trace
from rnnkit.kernels.cell import Cell, State, cell_class
from rnnkit.kernels.unroll import unroll

ENGINES = ("auto", "fused", "explicit")
LAYER_NODES = True  # False: every explicit layer unrolls its steps (tests compare the two)


def choose_engine(engine: str, cell: str, device: torch.device | str, padded: bool = False) -> str:
    """The engine a layer of ``cell`` runs on ``device`` when ``engine`` was asked
    for: "auto" resolved for ``padded`` batches or not, "fused" or "explicit"
    checked against what the cell has."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    cls = cell_class(cell)
    if engine == "auto":
        if torch.device(device).type == "cpu" and ("padded" if padded else "unpadded") in cls.explicit_on_cpu:
            return "explicit"
        return "fused" if "fused" in cls.engines() else "explicit"
    if engine not in cls.engines():
        raise ConfigError(f"cell {cell} has no {engine} engine; use --engine explicit or auto")
    return engine


def run_layer(cell: Cell, x: Tensor, state: State, lengths: Tensor | None, weight_hh: Tensor | None,
              engine: str) -> tuple[Tensor, State]:
    """One layer and direction on the ``engine`` (fused or explicit): x (B, T, I)
    from ``state`` -> (outputs (B, T, H), final state). With ``lengths`` (B,)
    each sequence stops at its length (outputs zero past it); ``weight_hh``
    replaces the cell's W_hh (a weight-dropped copy). The fused engine of a
    cell that torch has a kernel for runs the whole stack in the layer, not here."""
    if engine == "fused":
        return cell.scan(x, state, lengths)
    if trace.active():  # diagnostics record every step (rnnkit.kernels.trace)
        return trace.traced(cell, x, state, lengths, weight_hh)
    if LAYER_NODES and weight_hh is not None:
        result = cell.layer(x, state, lengths, weight_hh)
        if result is not None:
            return result
    return unroll(cell, x, state, lengths, weight_hh)
