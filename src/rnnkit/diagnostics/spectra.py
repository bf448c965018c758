"""The spectral radius of each recurrent matrix: ρ(W) = max |λ_i(W)|.

The linear recursion h_t = W h_{t-1} gives h_t = W^t h_0, which grows or
decays as ρ(W)^t; a nonlinear cell's step Jacobian is W scaled by the
nonlinearity's slopes (:mod:`rnnkit.diagnostics.gradients`). For a gated
cell each gate's block of W_hh (H, H) is its own recursion and gets its own
radius: an LSTM's input, forget, cell and output blocks, a GRU's reset,
update and candidate blocks. Cells whose gates read x_t only (the minimal
cells) have no recurrent matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.diagnostics.tracing import cells_of


@torch.no_grad()
def spectral_radii(model: nn.Module) -> dict[str, dict[str, float]]:
    """Every recurrent cell of ``model`` by name (see :func:`rnnkit.diagnostics.tracing.cells_of`)
    -> its gates' names -> ρ of that gate's block of W_hh."""
    modules = {id(m): m for m in model.modules()}
    result = {}
    for key, name in cells_of(model).items():
        cell = modules[key]
        if cell.weight_hh is None:
            continue
        w = cell.weight_hh.detach().cpu()
        w = w if w.dtype in (torch.float32, torch.float64) else w.float()  # eigvals takes no bf16
        blocks = w.split(cell.hidden_size)  # G blocks of (H, H)
        result[name] = {gate: float(torch.linalg.eigvals(w).abs().max()) for gate, w in zip(cell.gate_names, blocks)}
    return result
