"""Gradient flow through time: how much of the loss's gradient reaches each
step's hidden state, and how the products of step Jacobians shrink or grow.

Backpropagation through time passes the gradient back one step at a time,
through the Jacobian of the step that the cell's equations give::

    dL/dh_k = ∂L/∂h_k (the outputs' share) + (∂h_{k+1}/∂h_k)^T dL/dh_{k+1}

    ∂h_T/∂h_k = ∏_{t=k+1..T} ∂h_t/∂h_{t-1},    vanilla RNN: ∂h_t/∂h_{t-1} = diag(1 - h_t²) W_hh

so ||∂h_T/∂h_k|| ≤ (γ σ_max(W_hh))^{T-k}, γ the largest slope of the
nonlinearity: the product decays geometrically when γ σ_max < 1 and may
grow when it is above (Bengio, Simard & Frasconi 1994; Pascanu, Mikolov &
Bengio 2013). An LSTM's cell state has the path ∂c_t/∂c_{t-1} = diag(f_t),
which a forget gate near 1 keeps near the identity.

:func:`gradient_flow` measures ||dL/dh_k|| for every step k of every
recurrent layer, for the model's own loss on a batch;
:func:`jacobian_norms` measures σ_max(∂h_T/∂h_k) for one sequence, with the
step's full state (h, and c for an LSTM) carried in the product and the
inputs held fixed. Both run the model in evaluation mode (no dropout) and
leave its parameters' gradients alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.diagnostics.tracing import Recording, recorded, recordings
from rnnkit.kernels import gemm
from rnnkit.kernels.cell import Cell
from rnnkit.kernels.trace import Step


@dataclass
class Curve:
    """A value for every step k of one recurrent layer and direction, in the order it read the steps."""

    name: str
    values: np.ndarray  # (T,)


def gradient_flow(model: nn.Module, batch: tuple[Tensor, ...]) -> list[Curve]:
    """For each recurrent layer and direction: the mean over the batch's
    sequences of ||dL/dh_k||_2 at every step k (a sequence counts at the steps
    inside its length), L the model's loss on ``batch`` (``model.loss``)."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), recorded(model) as traces:
            loss, _ = model.loss(batch)
        found = recordings(model, traces)
        states = [step.after[0] for r in found for step in r.steps]
        grads = torch.autograd.grad(loss, states, allow_unused=True)
    finally:
        model.train(was_training)
    curves, i = [], 0
    for r in found:
        per_step = []
        for t, step in enumerate(r.steps):
            g = grads[i + t]
            norms = torch.zeros(step.after[0].shape[0]) if g is None else g.detach().norm(dim=1).double().cpu()
            valid = r.mask[:, t].cpu()
            per_step.append(float(norms[valid].mean()) if valid.any() else float("nan"))
        i += len(r.steps)
        curves.append(Curve(r.name, np.array(per_step)))
    return curves


@torch.no_grad()
def jacobian_norms(model: nn.Module, batch: tuple[Tensor, ...], example: int = 0,
                   last_steps: int | None = None) -> list[Curve]:
    """For each recurrent layer and direction, over sequence ``example`` of
    ``batch``: σ_max(∂h_n/∂h_k) for every step k, h_n its last state inside the
    sequence's length (the value at k = n is 1). ``last_steps`` limits the
    product to the last that many steps (the values before them are NaN)."""
    one = tuple(t[example:example + 1] for t in batch)
    was_training = model.training
    model.eval()
    try:
        with recorded(model) as traces:
            model.loss(one)
        found = recordings(model, traces)
    finally:
        model.train(was_training)
    return [Curve(r.name, _product_norms(r, last_steps)) for r in found]


def _product_norms(r: Recording, last_steps: int | None) -> np.ndarray:
    """σ_max of ∂h_n/∂h_k for k = n .. 0 (NaN past ``last_steps``), one sequence's steps."""
    n = int(r.mask[0].sum())  # the steps inside the sequence's length
    values = np.full(len(r.steps), np.nan)
    H = r.cell.hidden_size
    rows = None  # ∂h_n/∂s_t, (H, S*H) in float64: the h rows of the product, all the product needs
    for t in range(n - 1, -1 if last_steps is None else max(-1, n - 1 - last_steps), -1):
        J = step_jacobian(r.cell, r.steps[t]).double()  # ∂s_t/∂s_{t-1}, (S*H, S*H)
        if rows is None:
            rows = torch.eye(H, J.shape[0], dtype=torch.float64)
        values[t] = float(torch.linalg.matrix_norm(rows[:, :H], ord=2))
        rows = rows @ J
    return values


@torch.enable_grad()
def step_jacobian(cell: Cell, step: Step) -> Tensor:
    """∂s_t/∂s_{t-1} of a recorded step of the batch's first sequence: (S*H, S*H), the
    state (h,) or (h, c) flattened; the step's input held fixed. Its S*H rows come
    from one backward pass over S*H copies of the step, each asked for one row."""
    size = cell.state_size * cell.hidden_size
    before = tuple(s[:1].detach().expand(size, -1).clone().requires_grad_() for s in step.before)
    xp = step.xp[:1].detach().expand(size, -1)
    if type(cell).recur is Cell.recur:
        hp = gemm.linear(before[0], cell.weight_hh.detach(), None if cell.bias_hh is None else cell.bias_hh.detach())
        _, after = cell.combine(xp, hp, before)
    else:
        _, after = cell.recur(xp, before)
    flat = torch.cat(after, dim=1)  # (S*H, S*H): copy j's outputs
    rows = torch.autograd.grad(flat, before, grad_outputs=torch.eye(size, dtype=flat.dtype, device=flat.device))
    return torch.cat(rows, dim=1)  # row j: ∂(s_t)_j/∂s_{t-1}
