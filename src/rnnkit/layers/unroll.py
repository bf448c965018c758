"""The explicit engine's time loop: one cell over a sequence, with backpropagation
through time that multiplies big matrices, not T small ones.

Per step t a cell computes ``hp_t = h_{t-1} W_hh^T + b_hh`` and then its
element-wise gate equations ``combine(xp_t, hp_t, state)``. Plain autograd
would form the recurrent weight gradient step by step, T products of
(G*H, B) @ (B, H) each added into W_hh.grad. Here the step's backward only
passes the gradient on to h_{t-1} (``dh = dhp_t W_hh``) and records dhp_t;
once every step has run backward, the gradient of all steps is one product::

    dW_hh = sum_t dhp_t^T h_{t-1} = DHP^T Hprev     DHP (B*T, G*H), Hprev (B*T, H)
    db_hh = sum_t dhp_t

This is the same arithmetic (BPTT's sum over time) in another order: a
(G*H, B*T) @ (B*T, H) product runs near the machine's GEMM peak, T thin ones
and T additions of a (G*H, H) matrix do not. Cells whose step is not of this
form (they override ``recur``) run the plain loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells import Cell, State


class _RecurrentStep(torch.autograd.Function):
    """(xp_t, h) -> (xp_t, hp_t = h W^T + b) for one step. Backward: dh = dhp W,
    (dhp, h) appended to ``tape``, and dxp_t passed through. Passing xp_t through
    makes the tape's reader, which xp feeds, wait for every step's backward.
    W and b get their gradient from :class:`_TapeGradient`."""

    @staticmethod
    def forward(ctx, xp_t: Tensor, h: Tensor, weight: Tensor, bias: Tensor | None, tape: list):
        ctx.save_for_backward(h, weight)
        ctx.tape = tape
        hp = h @ weight.t()  # (B, G*H)
        return xp_t.view_as(xp_t), (hp if bias is None else hp + bias)

    @staticmethod
    def backward(ctx, dxp_t: Tensor, dhp: Tensor):
        h, weight = ctx.saved_tensors
        ctx.tape.append((dhp, h))
        dh = dhp @ weight if ctx.needs_input_grad[1] else None  # (B, H)
        return dxp_t, dh, None, None, None


class _TapeGradient(torch.autograd.Function):
    """Identity on xp (B, T, G*H) whose backward, which runs after every step's
    backward, turns the tape into the weight and bias gradients of all steps at
    once. Steps that no loss depends on leave no entry (their share is zero)."""

    @staticmethod
    def forward(ctx, xp: Tensor, weight: Tensor, bias: Tensor | None, tape: list) -> Tensor:
        ctx.tape = tape
        ctx.has_bias = bias is not None
        return xp.view_as(xp)

    @staticmethod
    def backward(ctx, dxp: Tensor):
        tape = ctx.tape
        dhp = torch.cat([d for d, _ in tape])  # (T*B, G*H)
        hprev = torch.cat([h for _, h in tape])  # (T*B, H)
        tape.clear()
        dweight = dhp.t() @ hprev  # (G*H, H)
        dbias = dhp.sum(0) if ctx.has_bias else None
        return dxp, dweight, dbias, None


def unroll(cell: Cell, x: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """Run ``cell`` over x (B, T, I) from ``state`` -> (outputs (B, T, H), final state).

    mask (B, T, 1), True at valid steps, freezes the state and zeroes the
    output past each sequence's end."""
    xp = cell.project_input(x)  # (B, T, G*H): one GEMM for every step
    weight, bias = cell.weight_hh, cell.bias_hh
    taped = type(cell).recur is Cell.recur and torch.is_grad_enabled() and weight.requires_grad
    if taped:
        tape: list = []
        xp = _TapeGradient.apply(xp, weight, bias, tape)
    outputs = []
    # unbind, not xp[:, t]: the backward of T slices would write T full-size zero gradients
    for xp_t in xp.unbind(1):
        if taped:
            h, new = cell.combine(*_RecurrentStep.apply(xp_t, state[0], weight, bias, tape), state)
        else:
            h, new = cell.recur(xp_t, state)
        if mask is not None:
            m = mask[:, len(outputs)]  # (B, 1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            h = h * m
        state = new
        outputs.append(h)
    return torch.stack(outputs, dim=1), state


def linear_scan(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 1..T, all at once, in log space (Heinsen 2023):

        log h_t = A_t + logcumsumexp_k (log b_k - A_k),   A_t = sum_{j<=t} log a_j,

    with b_0 = h_0 and A_0 = 0. log_a, log_b (B, T, H); h0 (B, H) >= 0 -> h (B, T, H).
    Terms where b_k = 0 are -inf and drop out. The scan reads the logs once,
    with no per-step Python: one cumsum and one logcumsumexp over time."""
    a_star = F.pad(log_a.cumsum(1), (0, 0, 1, 0))  # (B, T+1, H), A_0 = 0
    log_values = torch.cat([h0.to(log_b.dtype).log().unsqueeze(1), log_b], dim=1)  # (B, T+1, H)
    log_h = a_star + torch.logcumsumexp(log_values - a_star, dim=1)
    return log_h[:, 1:].exp()


def scan(cell: Cell, x: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
    """:func:`unroll` for cells whose recurrence is linear in h with coefficients
    from x_t alone (``cell.log_coefficients``): every step at once, by
    :func:`linear_scan`, instead of a loop. Past a sequence's end (mask False)
    a_t = 1 and b_t = 0, so its state is frozen and h[:, -1] is its final state."""
    xp = cell.project_input(x)  # (B, T, G*H)
    # in fp32 at least, also under bf16 autocast: the scan sums T logs of the coefficients
    log_a, log_b = cell.log_coefficients(xp.to(torch.promote_types(xp.dtype, torch.float32)))  # (B, T, H)
    if mask is not None:
        log_a = log_a.masked_fill(~mask, 0.0)
        log_b = log_b.masked_fill(~mask, float("-inf"))
    h = linear_scan(log_a, log_b, state[0]).to(xp.dtype)  # (B, T, H)
    last = h[:, -1]
    return (h * mask if mask is not None else h), (last,)
