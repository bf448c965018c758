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

from rnnkit.data.batches import rows
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
    inside its length), L the model's loss on ``batch`` (``model.loss``; its
    tensors batch-first, (B, T, ...)); each curve's values are (T,)."""
    with torch.enable_grad(), recorded(model) as traces:
        loss, _ = model.loss(batch)
    found = recordings(model, traces)
    states = [step.after[0] for r in found for step in r.steps]
    grads = torch.autograd.grad(loss, states, allow_unused=True)
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
    ``batch``: σ_max(∂h_n/∂h_k), h_n its last state inside the sequence's
    length (the value at k = n is 1), at k = n - j for every j steps back up to
    20, every 5th up to 100 and every 25th beyond (NaN between: an SVD a value
    is what it costs). ``last_steps`` limits the product to the last that many
    steps (NaN before them). ``batch`` as ``model.loss`` takes it, batch-first
    (B, T, ...); each curve's values are (T,) for that sequence."""
    with recorded(model) as traces:
        model.loss(rows(batch, example, example + 1))
    return [Curve(r.name, _product_norms(r, last_steps)) for r in recordings(model, traces)]


def measured(back: int) -> bool:
    """Whether :func:`jacobian_norms` measures the product ``back`` steps back."""
    return back <= 20 or (back <= 100 and back % 5 == 0) or back % 25 == 0


def _product_norms(r: Recording, last_steps: int | None) -> np.ndarray:
    """σ_max of ∂h_n/∂h_k for k = n .. 0 (see :func:`jacobian_norms`), one sequence's steps."""
    n = int(r.mask[0].sum())  # the steps inside the sequence's length
    values = np.full(len(r.steps), np.nan)
    H, S = r.cell.hidden_size, r.cell.state_size
    rows = None  # ∂h_n/∂s_t = rows * exp(log_scale), the h rows of the product, (H, S*H)
    log_scale = 0.0
    for t in range(n - 1, -1 if last_steps is None else max(-1, n - 1 - last_steps), -1):
        if rows is None:
            step = r.steps[t].after[0]
            rows = torch.eye(H, S * H, dtype=step.dtype, device=step.device)
        if measured(n - 1 - t):
            values[t] = float(torch.linalg.svdvals(rows[:, :H])[0]) * np.exp(log_scale)
        rows = backward_through_step(r.cell, r.steps[t], rows)  # ∂h_n/∂s_{t-1}
        scale = float(rows.abs().max())
        if scale > 0:  # kept near 1, so that float32 neither underflows nor overflows over long products
            rows, log_scale = rows / scale, log_scale + np.log(scale)
    return values


@torch.enable_grad()
def backward_through_step(cell: Cell, step: Step, rows: Tensor) -> Tensor:
    """rows (R, S*H) @ ∂s_t/∂s_{t-1} for a recorded step of the batch's first sequence,
    the state (h,) or (h, c) flattened and the step's input held fixed: one backward
    pass over R copies of the step, copy j carrying row j."""
    R, H = rows.shape[0], cell.hidden_size
    before = tuple(s[:1].detach().expand(R, -1).clone().requires_grad_() for s in step.before)
    xp = step.xp[:1].detach().expand(R, -1)
    if type(cell).recur is Cell.recur:  # hp = h W_hh^T + b_hh: the same row for every copy
        hp = _SharedProjection.apply(before[0], cell.weight_hh.detach(), step.hp[:1].detach())
        _, after = cell.combine(xp, hp, before)
    else:
        _, after = cell.recur(xp, before)
    grads = torch.autograd.grad(after, before, grad_outputs=rows.split(H, dim=1), allow_unused=True)
    return torch.cat([torch.zeros_like(b) if g is None else g for g, b in zip(grads, before)], dim=1)


class _SharedProjection(torch.autograd.Function):
    """h W^T + b for R copies of one state: the forward repeats the row already
    computed, the backward is each copy's own, dh = dhp W."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, hp: Tensor) -> Tensor:
        ctx.save_for_backward(weight)
        return hp.expand(h.shape[0], -1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (weight,) = ctx.saved_tensors
        return gemm.mm(grad, weight), None, None
