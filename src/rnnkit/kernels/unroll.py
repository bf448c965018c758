"""One cell over a sequence, step by step: the explicit engine's time loop for
any cell, whose backpropagation through time multiplies big matrices, not T
small ones. Cells with a layer node of their own run it instead where it
applies (:func:`rnnkit.kernels.engine.run_layer`); this loop takes what the
nodes do not: other dtypes and devices, no C compiler, new cells.

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
and T additions of a (G*H, H) matrix do not. Where the cell only adds the two
projections (cells with ``activate(xp_t + hp_t)``: the LSTM and the vanilla
RNN), dhp_t is dxp_t, so DHP is the gradient that reaches xp anyway and the
tape keeps only the h_{t-1}. Under bf16 autocast DHP and Hprev are bf16,
and so is the product, as autocast's own weight gradients are. Cells whose
step is not of this form (they override ``recur``) run the plain loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import gemm
from rnnkit.kernels.cell import Cell, State, length_mask


class _Tape:
    """What the steps of one sequence share: (dhp_t, h_{t-1}) left by each step's
    backward (or, for an additive cell, the h_{t-1} of the forward), and W_hh
    laid out once for the per-step products of both ways
    (:func:`rnnkit.kernels.gemm.prepare`: oneDNN's blocked layout, faster per
    step than re-reading the dense matrix in fp32). Under bf16 autocast on a
    CPU both ways multiply in bf16, as autocast's own products and their
    backwards do; the backward's dh = dhp W used to run in fp32 on a W laid
    out again at every step, slower (benchmarks/NOTEBOOK.md, "The explicit
    engine under bf16 autocast")."""

    def __init__(self, weight: Tensor, bias: Tensor | None, batch_size: int, summed: bool):
        self.summed = summed  # steps return xp_t + hp_t: dhp_t = dxp_t, and only h_{t-1} is kept
        self.entries: list[tuple[Tensor, Tensor]] = []  # (dhp_t, h_{t-1}) left by backward steps
        self.inputs: list[Tensor] = []  # h_{t-1} of every step, when summed
        self.weight = weight
        self.batch_size = batch_size
        cpu_bf16 = (weight.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                    and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        self.dtype = torch.bfloat16 if cpu_bf16 else None  # of the per-step products; None: W's own
        # W (G*H, H) laid out where oneDNN does the product (fp32 outside autocast, bf16 under it), else None
        self.forward_weight = (gemm.prepare(weight, batch_size, self.dtype)
                               if cpu_bf16 or gemm.uses_onednn(weight) else None)
        # b_hh (None when summed: it joined xp), in the product's dtype where W is laid out
        self.bias = (bias.detach().to(self.forward_weight.dtype)
                     if bias is not None and self.forward_weight is not None else bias)
        self._backward_weight = None

    def cast(self, t: Tensor) -> Tensor:
        """t in the dtype of the per-step products (bf16 under CPU autocast)."""
        return t if self.dtype is None else t.to(self.dtype)

    def backward_weight(self) -> Tensor:
        """W^T (H, G*H) laid out for dh = dhp W, made at the first backward step."""
        if self._backward_weight is None:
            self._backward_weight = gemm.prepare(self.weight.t(), self.batch_size, self.dtype)
        return self._backward_weight


class _RecurrentStep(torch.autograd.Function):
    """(xp_t, h) -> (xp_t, hp_t = h W^T + b) for one step. Backward: dh = dhp W,
    (dhp, h) appended to the tape, and dxp_t passed through. Passing xp_t through
    makes the tape's reader, which xp feeds, wait for every step's backward.
    W and b get their gradient from :class:`_TapeGradient`."""

    @staticmethod
    def forward(ctx, xp_t: Tensor, h: Tensor, tape: _Tape):
        h = tape.cast(h)
        ctx.save_for_backward(h)
        ctx.tape = tape
        return xp_t.view_as(xp_t), _hidden_product(h, tape)

    @staticmethod
    def backward(ctx, dxp_t: Tensor, dhp: Tensor):
        h, = ctx.saved_tensors
        dhp_cast = ctx.tape.cast(dhp)  # once, for the tape and the product
        ctx.tape.entries.append((dhp_cast, h))
        dh = _hidden_gradient(dhp_cast, ctx.tape).to(dhp.dtype) if ctx.needs_input_grad[1] else None
        return dxp_t, dh, None


class _SummedStep(torch.autograd.Function):
    """(xp_t, h) -> xp_t + h W^T + b for one step of an additive cell. Backward:
    dh = dgates W, and dxp_t = dgates, which :class:`_TapeGradient` reads as
    dhp_t; the tape keeps h_{t-1} from the forward."""

    @staticmethod
    def forward(ctx, xp_t: Tensor, h: Tensor, tape: _Tape):
        ctx.tape = tape
        h = tape.cast(h.detach())
        tape.inputs.append(h)
        return _hidden_product(h, tape).add_(xp_t)

    @staticmethod
    def backward(ctx, dgates: Tensor):
        dgates_cast = ctx.tape.cast(dgates)  # once: xp_t's gradient (xp_t has this dtype) and the product's input
        dh = _hidden_gradient(dgates_cast, ctx.tape).to(dgates.dtype) if ctx.needs_input_grad[1] else None
        return dgates_cast, dh, None


def _hidden_product(h: Tensor, tape: _Tape) -> Tensor:
    """hp = h W^T + b (B, G*H), at least fp32: under bf16 autocast the product
    is bf16, while the gate equations and the cell state they carry stay fp32."""
    if tape.forward_weight is not None:
        hp = gemm.prepared_linear(h, tape.forward_weight, tape.bias)
    else:
        hp = gemm.linear(h, tape.weight, tape.bias)
    return hp.to(torch.promote_types(hp.dtype, torch.float32))


def _hidden_gradient(dhp: Tensor, tape: _Tape) -> Tensor:
    """dh = dhp W: (B, G*H) -> (B, H) in dhp's dtype."""
    if tape.forward_weight is not None:
        return gemm.prepared_linear(dhp, tape.backward_weight())
    return gemm.mm(dhp, tape.weight)


class _TapeGradient(torch.autograd.Function):
    """Identity on xp (B, T, G*H) whose backward, which runs after every step's
    backward, turns the tape into the weight and bias gradients of all steps at
    once. Steps that no loss depends on leave no entry, or a zero dxp_t (their
    share is zero)."""

    @staticmethod
    def forward(ctx, xp: Tensor, weight: Tensor, bias: Tensor | None, tape: _Tape) -> Tensor:
        ctx.tape = tape
        ctx.has_bias = bias is not None
        return xp.view_as(xp)

    @staticmethod
    def backward(ctx, dxp: Tensor):
        tape = ctx.tape
        if tape.summed:
            dhp = dxp.reshape(-1, dxp.shape[-1])  # (B*T, G*H), rows in (b, t) order
            # (B*T, H); under autocast in dxp's dtype, as autocast's weight gradients are
            hprev = torch.stack(tape.inputs, dim=1).view(-1, tape.weight.shape[1]).to(dhp.dtype)
        else:
            dhp = torch.cat([d for d, _ in tape.entries])  # (T*B, G*H)
            hprev = torch.cat([h for _, h in tape.entries])  # (T*B, H)
        tape.entries.clear()  # (inputs stay for a second backward of a retained graph)
        dweight = gemm.mm(dhp.t(), hprev)  # (G*H, H)
        dbias = dhp.sum(0) if ctx.has_bias else None
        return dxp, dweight, dbias, None


def unroll(cell: Cell, x: Tensor, state: State, lengths: Tensor | None = None,
           weight_hh: Tensor | None = None) -> tuple[Tensor, State]:
    """Run ``cell`` over x (B, T, I) from ``state`` -> (outputs (B, T, H), final state).

    With ``lengths`` (B,) each sequence's state is frozen and its outputs are
    zero past its end. ``weight_hh`` replaces the cell's W_hh (a weight-dropped
    copy in training)."""
    weight, bias = (cell.weight_hh if weight_hh is None else weight_hh), cell.bias_hh
    mask = None if lengths is None else length_mask(lengths, x.shape[1]).unsqueeze(-1)  # (B, T, 1)
    plain_step = type(cell).recur is Cell.recur  # hp = h W_hh^T + b_hh, then combine
    taped = plain_step and torch.is_grad_enabled() and weight.requires_grad
    # summed: dxp is every step's dhp (under autocast rounded to xp's dtype, as autocast's
    # own products round the gradients they multiply)
    summed = taped and hasattr(cell, "activate")
    if summed:  # b_hh joins b_ih in the input projection: its gradient is db_ih, summed once
        xp, bias = cell.project_input(x, with_hidden_bias=True), None  # (B, T, G*H)
    else:
        xp = cell.project_input(x)  # (B, T, G*H): one GEMM for every step
    if taped:
        tape = _Tape(weight, bias, x.shape[0], summed)
        xp = _TapeGradient.apply(xp, weight, bias, tape)
    outputs = []
    # unbind, not xp[:, t]: the backward of T slices would write T full-size zero gradients
    for xp_t in xp.unbind(1):
        if taped and summed:
            h, new = cell.activate(_SummedStep.apply(xp_t, state[0], tape), state)
        elif taped:
            h, new = cell.combine(*_RecurrentStep.apply(xp_t, state[0], tape), state)
        elif plain_step:
            h, new = cell.combine(xp_t, gemm.linear(state[0], weight, bias), state)
        else:
            h, new = cell.recur(xp_t, state)
        if mask is not None:
            m = mask[:, len(outputs)]  # (B, 1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            h = h * m
        state = new
        outputs.append(h)
    return torch.stack(outputs, dim=1), state
