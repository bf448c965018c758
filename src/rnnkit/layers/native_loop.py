"""The explicit engine's LSTM, GRU and vanilla RNN layers on a CPU (fp32, or
under bf16 autocast): the whole time loop as one autograd node, the LSTM's
and GRU's on the native gate kernels (:mod:`rnnkit.native`), the RNN's on
torch's element-wise ops (its step is one addition and one activation).

:func:`rnnkit.layers.unroll.unroll` records a few autograd nodes per step and
stacks the steps' outputs, inputs and input gradients afterwards (a 52 MB
copy for the gradient of xp at batch 64 x 100 x 4 x 512). Here every per-step
tensor is written by the kernels into buffers made once per sequence, and
backward is a hand-written loop. The arithmetic is unroll's: per step t, with
xp_t = x_t W_ih^T + b_ih + b_hh from one product over all steps::

    gates_t = h_{t-1} W_hh^T + xp_t;   h_t, c_t = LSTM(gates_t, c_{t-1})

and backward from dout (B, T, H) and dc_T, for t = T..1::

    dgates_t = LSTM'(dout_t + dh_t, dc_t);   dh_{t-1} = dgates_t W_hh
    dW_hh = sum_t dgates_t^T h_{t-1} = DG^T Hprev    DG (T*B, 4H), Hprev (T*B, H): one product
    dxp_t = dgates_t                                (b_ih and b_hh get their share from xp)

The GRU's loop is the same with hp_t = h_{t-1} W_hh^T + b_hh kept apart from
xp_t (the reset gate multiplies its n block), so its backward forms dhp_t
beside dxp_t: dW_hh = DHP^T Hprev, db_hh = sum_t dhp_t, and dh_{t-1} =
dh'_t ⊙ z_t + dhp_t W_hh (see gates.c for the gate derivatives).

The vanilla RNN's loop is the LSTM's with h_t = φ(h_{t-1} W_hh^T + xp_t) as the
step, φ = tanh or relu: da_t = (dout_t + dh_t) ⊙ φ'(a_t), where φ' = 1 - h_t²
for tanh and [h_t > 0] for relu, and dh_{t-1} = da_t W_hh.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit import gemm, native
from rnnkit.cells import GRUCell, LSTMCell, RNNCell, State


def applies(cell, x: Tensor, mask: Tensor | None, weight: Tensor) -> bool:
    """Whether :func:`run` takes this sequence: a plain LSTM, GRU or RNN cell, no
    mask, fp32 weights and input on a CPU (outside autocast or under bf16
    autocast), a weight that gets a gradient, and for the LSTM and GRU the
    kernels built."""
    autocast = torch.is_autocast_enabled(x.device.type)
    if not (type(cell) in (LSTMCell, GRUCell, RNNCell) and mask is None and x.shape[1] > 0
            and torch.is_grad_enabled() and weight.requires_grad
            and (not autocast or torch.get_autocast_dtype(x.device.type) == torch.bfloat16)):
        return False
    if type(cell) is RNNCell:
        return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (x, weight))
    return native.handles(weight, x[:, 0])


class _LSTMLayer(torch.autograd.Function):
    """(xp (B, T, 4H), h0, c0 (B, H), W_hh (4H, H)) -> (outputs (B, T, H), c_T).

    xp's dtype is the products': fp32, or bf16 under autocast, where h_{t-1},
    W_hh and the gate gradients enter the products in bf16, as in unroll's
    bf16 path. The gate arithmetic, c and the outputs stay fp32."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
        B, T, G = xp.shape
        H = G // 4
        xp = xp.contiguous()
        prepared = gemm.prepare(weight, B, xp.dtype)
        fp32 = dict(dtype=torch.float32)
        out = xp.new_empty(B, T, H, **fp32)
        hs = xp.new_empty(T + 1, B, H)  # h_{t-1} time-major in xp's dtype: hs[:T] is the product's Hprev
        cs = xp.new_empty(T + 1, B, H, **fp32)  # c_{t-1} for step t's backward
        acts = xp.new_empty(T, B, G, **fp32)  # [i | f | g | o] of every step
        tanh_cs = xp.new_empty(T, B, H, **fp32)
        hs[0], cs[0] = h0, c0
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            for t in range(T):
                hp = gemm.prepared_linear(hs[t], prepared)  # (B, 4H)
                native.lstm_step_forward(hp, xp[:, t], cs[t], acts[t], cs[t + 1], out[:, t], hs[t + 1],
                                         tanh_cs[t])
        ctx.save_for_backward(weight, hs, cs, acts, tanh_cs)
        return out, cs[T]

    @staticmethod
    def backward(ctx, dout: Tensor, dc_last: Tensor):
        weight, hs, cs, acts, tanh_cs = ctx.saved_tensors
        T, B, H = tanh_cs.shape
        low = dict(dtype=hs.dtype)  # the products' dtype
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        dout = dout if dout.stride(2) == 1 else dout.contiguous()  # (B, T, H), read a step at a time
        dc = dc_last.contiguous()
        dxp = dout.new_empty(B, T, 4 * H, **low)  # the gradient reaching xp, batch-major like xp
        dgates = dout.new_empty(T, B, 4 * H, **low)  # the same, time-major, for the products
        dc_prev = [dout.new_empty(B, H), dout.new_empty(B, H)]  # written in turns
        dh = dout.new_zeros(B, H, **low)  # the gradient reaching h_t from step t+1
        for t in range(T - 1, -1, -1):
            native.lstm_step_backward(acts[t], cs[t], tanh_cs[t], dout[:, t], dh, dc,
                                      dxp[:, t], dgates[t], dc_prev[t % 2])
            dc = dc_prev[t % 2]
            if t > 0 or ctx.needs_input_grad[1]:
                dh = gemm.prepared_linear(dgates[t], prepared_t)  # (B, H)
        dweight = gemm.mm(dgates.view(T * B, 4 * H).t(), hs[:T].view(T * B, H))  # (4H, H)
        needs = ctx.needs_input_grad
        return dxp, dh.float() if needs[1] else None, dc if needs[2] else None, dweight.float()


class _GRULayer(torch.autograd.Function):
    """(xp (B, T, 3H), h0 (B, H), W_hh (3H, H), b_hh (3H,) or None) -> outputs (B, T, H).

    xp's dtype is the products', as in :class:`_LSTMLayer`."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        B, T, G = xp.shape
        H = G // 3
        xp = xp.contiguous()
        prepared = gemm.prepare(weight, B, xp.dtype)
        bias = bias.detach().to(xp.dtype) if bias is not None else None
        fp32 = dict(dtype=torch.float32)
        out = xp.new_empty(B, T, H, **fp32)
        hs = xp.new_empty(T + 1, B, H)  # h_{t-1} time-major in xp's dtype, for the products
        rz = xp.new_empty(T, B, 2 * H, **fp32)  # the reset and update gates
        n, hn, hmn = (xp.new_empty(T, B, H, **fp32) for _ in range(3))  # n, hp's n block, h - n
        hs[0] = h0
        h = h0.float().contiguous()  # h_{t-1} in fp32
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            for t in range(T):
                hp = gemm.prepared_linear(hs[t], prepared, bias)  # (B, 3H)
                native.gru_step_forward(hp, xp[:, t], h, rz[t], n[t], hn[t], hmn[t], out[:, t], hs[t + 1])
                h = out[:, t]
        ctx.save_for_backward(weight, hs, rz, n, hn, hmn)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        weight, hs, rz, n, hn, hmn = ctx.saved_tensors
        T, B, H = n.shape
        low = dict(dtype=hs.dtype)  # the products' dtype
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        dout = dout if dout.stride(2) == 1 else dout.contiguous()  # (B, T, H), read a step at a time
        dxp = dout.new_empty(B, T, 3 * H, **low)  # the gradient reaching xp, batch-major like xp
        dhp = dout.new_empty(T, B, 3 * H, **low)  # the one reaching hp, time-major for the products
        direct, direct_next = dout.new_zeros(B, H), dout.new_empty(B, H)  # dh' z of the step after
        dh_more = dout.new_zeros(B, H, **low)  # dhp W of the step after
        for t in range(T - 1, -1, -1):
            native.gru_step_backward(rz[t], n[t], hn[t], hmn[t], dout[:, t], direct, dh_more,
                                     dxp[:, t], dhp[t], direct_next)
            direct, direct_next = direct_next, direct
            if t > 0 or ctx.needs_input_grad[1]:
                dh_more = gemm.prepared_linear(dhp[t], prepared_t)  # (B, H)
        dh0 = direct + dh_more.float() if ctx.needs_input_grad[1] else None
        dhp_rows = dhp.view(T * B, 3 * H)
        dweight = gemm.mm(dhp_rows.t(), hs[:T].view(T * B, H)).float()  # (3H, H)
        dbias = dhp_rows.sum(0, dtype=torch.float32) if ctx.has_bias else None
        return dxp, dh0, dweight, dbias


class _RNNLayer(torch.autograd.Function):
    """(xp (B, T, H), h0 (B, H), W_hh (H, H), relu) -> outputs (B, T, H); b_hh is in xp.

    xp's dtype is the products', as in :class:`_LSTMLayer`; a_t, h_t and
    their gradients are fp32."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight: Tensor, relu: bool) -> Tensor:
        B, T, H = xp.shape
        prepared = gemm.prepare(weight, B, xp.dtype)
        out = xp.new_empty(B, T, H, dtype=torch.float32)
        hs = xp.new_empty(T + 1, B, H)  # h_{t-1} time-major in xp's dtype: hs[:T] is the product's Hprev
        hs[0] = h0
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            for t in range(T):
                h = out[:, t]
                torch.add(gemm.prepared_linear(hs[t], prepared), xp[:, t], out=h)  # a_t
                if relu:
                    h.relu_()
                else:
                    h.tanh_()
                hs[t + 1] = h
        ctx.save_for_backward(weight, hs, out)
        ctx.relu = relu
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        weight, hs, out = ctx.saved_tensors
        B, T, H = out.shape
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        da = dout.new_empty(T, B, H, dtype=hs.dtype)  # time-major for the product, in its dtype
        dh_total, da_t = (dout.new_empty(B, H, dtype=torch.float32) for _ in range(2))
        dh = dout.new_zeros(B, H, dtype=hs.dtype)  # da_{t+1} W_hh, the gradient h_t gets from the step after
        for t in range(T - 1, -1, -1):
            torch.add(dout[:, t], dh, out=dh_total)
            if ctx.relu:
                torch.mul(dh_total, out[:, t] > 0, out=da_t)
            else:
                torch.ops.aten.tanh_backward.grad_input(dh_total, out[:, t], grad_input=da_t)
            da[t] = da_t
            if t > 0 or ctx.needs_input_grad[1]:
                dh = gemm.prepared_linear(da[t], prepared_t)  # (B, H)
        dh0 = dh.float() if ctx.needs_input_grad[1] else None
        dweight = gemm.mm(da.view(T * B, H).t(), hs[:T].view(T * B, H)).float()  # (H, H)
        return da.transpose(0, 1), dh0, dweight, None


def run(cell: LSTMCell | GRUCell | RNNCell, x: Tensor, state: State, weight: Tensor) -> tuple[Tensor, State]:
    """The cell over x (B, T, I) from its state -> (outputs (B, T, H), final state)."""
    if isinstance(cell, RNNCell):
        xp = cell.project_input(x, with_hidden_bias=True)  # (B, T, H), b_hh joined b_ih
        out = _RNNLayer.apply(xp, state[0], weight, cell.nonlinearity == "relu")
        return out, (out[:, -1],)
    if isinstance(cell, GRUCell):
        xp = cell.project_input(x)  # (B, T, 3H)
        out = _GRULayer.apply(xp, state[0], weight, cell.bias_hh)
        return out, (out[:, -1],)
    xp = cell.project_input(x, with_hidden_bias=True)  # (B, T, 4H), b_hh joined b_ih
    out, c = _LSTMLayer.apply(xp, state[0], state[1], weight)
    return out, (out[:, -1], c)
