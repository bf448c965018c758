"""The GRU: its equations, its step as one autograd node, and its whole
sequence as one autograd node on the C kernels of ``gru.c``.

The layer node (:class:`_GRULayer`) is the LSTM's (:mod:`rnnkit.kernels.lstm`)
with hp_t = h_{t-1} W_hh^T + b_hh kept apart from xp_t, since the reset gate
multiplies its n block; so its backward forms dhp_t beside dxp_t::

    dW_hh = DHP^T Hprev,   db_hh = sum_t dhp_t,   dh_{t-1} = dh'_t ⊙ z_t + dhp_t W_hh

(the gate derivatives are in :class:`GRUGates` and gru.c).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import gemm, native
from rnnkit.kernels.cell import Cell, State, by_length, cpu_node_takes, running_rows_product, tanh_by_sigmoid

_sigmoid_backward = torch.ops.aten.sigmoid_backward
_tanh_backward = torch.ops.aten.tanh_backward


class GRUCell(Cell):
    r"""Gated recurrent unit (Cho et al. 2014), in torch's formulation.

    .. math::
        r_t &= σ(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= σ(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t ⊙ (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Deviation from the paper: the reset gate multiplies ``W_hn h + b_hn``
    after the matrix product (as cuDNN and torch do), not ``h`` before it.

    Shapes: x (B, I), h (B, H); ``weight_ih`` (3H, I) packed
    [W_ir | W_iz | W_in], ``weight_hh`` (3H, H) likewise. State: ``(h,)``.

    On a CPU ``engine="auto"`` runs it on the explicit engine: its layer node
    took less time per Trainer step than torch's GRU kernel at every H
    measured, in fp32 and bf16, and over padded batches (benchmarks/RESULTS.md,
    "Padded batches"; NOTEBOOK.md, 2026-11-23 and 2026-12-04).
    """

    name = "gru"
    num_gates = 3
    gate_names = ("reset", "update", "candidate")  # the blocks of G*H rows, in order
    state_size = 1
    explicit_on_cpu = ("unpadded", "padded")

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        h = GRUGates.apply(xp, hp, state[0])
        return h, (h,)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        (xr, xz, xn), (hr, hz, hn) = xp.chunk(3, dim=1), hp.chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return {"reset": ("sigmoid", r), "update": ("sigmoid", z), "candidate": ("tanh", torch.tanh(xn + r * hn))}

    def fused_kernel(self):
        return torch.gru

    def layer(self, x: Tensor, state: State, lengths: Tensor | None,
              weight_hh: Tensor) -> tuple[Tensor, State] | None:
        """The sequence as one :class:`_GRULayer` node: fp32 on a CPU (or
        under bf16 autocast), with the C kernels built."""
        if not (cpu_node_takes(x, weight_hh) and native.library() is not None):
            return None

        def node(x, state, sizes, lengths):  # -> (outputs,)
            return (_GRULayer.apply(self.project_input(x), state[0], weight_hh, self.bias_hh, sizes),)

        return by_length(node, x, state, lengths)


class GRUGates(torch.autograd.Function):
    """The GRU's element-wise step as one autograd node (see
    :class:`rnnkit.kernels.lstm.LSTMGates`). Forward, from xp = [x_r | x_z | x_n],
    hp = [h_r | h_z | h_n] (B, 3H) and h::

        r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r ⊙ h_n)
        h' = n + z ⊙ (h - n)                  (= (1 - z) ⊙ n + z ⊙ h)

    Backward, from dh' (the gradient reaching h')::

        da_n = dh' ⊙ (1 - z) ⊙ (1 - n²)
        da_r = da_n ⊙ h_n ⊙ r(1-r);  da_z = dh' ⊙ (h - n) ⊙ z(1-z)
        dxp = [da_r | da_z | da_n];  dhp = [da_r | da_z | da_n ⊙ r];  dh = dh' ⊙ z
    """

    @staticmethod
    def forward(ctx, xp: Tensor, hp: Tensor, h: Tensor) -> Tensor:
        """The GRU step's output h' (B, H) from xp, hp (B, 3H) and h (B, H); saves r, z, h_n, n, h for the backward."""
        H = h.shape[1]
        rz = torch.sigmoid(xp[:, :2 * H] + hp[:, :2 * H])  # (B, 2H)
        r, z = rz.chunk(2, dim=1)
        hn = hp[:, 2 * H:]
        n = tanh_by_sigmoid(torch.addcmul(xp[:, 2 * H:], r, hn))  # (B, H)
        ctx.save_for_backward(rz, hn, n, h)
        return torch.addcmul(n, z, h - n)

    @staticmethod
    def backward(ctx, dh_new: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """dh' (B, H) -> dxp (B, 3H), dhp (B, 3H), dh (B, H), by the equations above."""
        rz, hn, n, h = ctx.saved_tensors
        H = h.shape[1]
        r, z = rz.chunk(2, dim=1)
        dxp = torch.empty(h.shape[0], 3 * H, dtype=rz.dtype, device=rz.device)  # (B, 3H)
        da_n = _tanh_backward.grad_input(dh_new * (1 - z), n, grad_input=dxp[:, 2 * H:])
        torch.mul(da_n, hn, out=dxp[:, :H])
        torch.mul(dh_new, h - n, out=dxp[:, H:2 * H])
        _sigmoid_backward.grad_input(dxp[:, :2 * H], rz, grad_input=dxp[:, :2 * H])  # in place
        dhp = dxp.clone()
        dhp[:, 2 * H:].mul_(r)
        return dxp, dhp, dh_new * z


# -- the C kernels (gru.c) -----------------------------------------------------

def step_forward(hp: Tensor, xp: Tensor, h: Tensor, rz: Tensor, n: Tensor, hn: Tensor, hmn: Tensor,
                 out: Tensor, h_copy: Tensor) -> None:
    """The GRU's step from hp (B, 3H, contiguous), xp (B, 3H) and h (B, H), each read
    with any row stride, into rz (B, 2H), n, hn, hmn (B, H), out (B, H, any row
    stride) and h_copy. hp, xp and h_copy are all fp32 or all bf16 (see gru.c)."""
    B, H = h.shape
    native.library().rnnkit_gru_forward(
        hp.data_ptr(), xp.data_ptr(), xp.stride(0), h.data_ptr(), h.stride(0), rz.data_ptr(), n.data_ptr(),
        hn.data_ptr(), hmn.data_ptr(), out.data_ptr(), out.stride(0), h_copy.data_ptr(), B, H,
        hp.dtype == torch.bfloat16)


def step_backward(rz: Tensor, n: Tensor, hn: Tensor, hmn: Tensor, dout: Tensor, dh_direct: Tensor,
                  dh_more: Tensor, dxp: Tensor, dhp: Tensor, dh_direct_out: Tensor) -> None:
    """The backward of :func:`step_forward` from the gradients reaching h'
    (dout, any row stride, + dh_direct + dh_more) into dxp (B, 3H, any row
    stride), dhp (B, 3H) and dh_direct_out = dh' z (B, H). dh_more, dxp and dhp
    are all fp32 or all bf16."""
    B, H = dh_direct.shape
    native.library().rnnkit_gru_backward(
        rz.data_ptr(), n.data_ptr(), hn.data_ptr(), hmn.data_ptr(), dout.data_ptr(), dout.stride(0),
        dh_direct.data_ptr(), dh_more.data_ptr(), dxp.data_ptr(), dxp.stride(0), dhp.data_ptr(),
        dh_direct_out.data_ptr(), B, H, dhp.dtype == torch.bfloat16)


def _forward_steps(xp: Tensor, prepared: Tensor, bias: Tensor | None, h0: Tensor, hs: Tensor, rz: Tensor,
                   ns: Tensor, hn: Tensor, hmn: Tensor, out: Tensor, sizes: list[int]) -> None:
    """The time loop of :class:`_GRULayer`'s forward: at step t, hp = h_{t-1} W_hh^T + b_hh for the
    ``sizes[t]`` rows still running, then :func:`step_forward` from hp, xp[:, t] and h_{t-1} (h0
    (B, H) fp32 at the first step, then the outputs' step t - 1) into the buffers' step t (the
    gates, n, hp's n block, h - n, the outputs) and hs' step t + 1. The per-step tensors are
    passed as addresses from the buffers' strides, as in :func:`rnnkit.kernels.lstm._forward_steps`."""
    kernel = native.library().rnnkit_gru_forward
    B, T, G = xp.shape
    H = G // 3
    bf16 = xp.dtype == torch.bfloat16

    walk = native.walk

    (xp0, dxp), (rz0, drz), (n0, dn), (hn0, dhn), (hmn0, dhmn), (out0, dout), (hs0, dhs) = (
        walk(xp, 1), walk(rz, 0), walk(ns, 0), walk(hn, 0), walk(hmn, 0), walk(out, 1), walk(hs, 0))
    ld_xp, ld_out = xp.stride(0), out.stride(0)
    h_rows = hs.unbind(0)  # h_{t-1}, (B, H) each, in the products' dtype
    product = gemm.product_into(prepared, B, xp.dtype, bias)
    for t, n in enumerate(sizes):
        hp = product(h_rows[t] if n == B else h_rows[t][:n])  # (n, 3H)
        h, ld_h = (h0.data_ptr(), h0.stride(0)) if t == 0 else (out0 + (t - 1) * dout, ld_out)
        kernel(hp.data_ptr(), xp0 + t * dxp, ld_xp, h, ld_h, rz0 + t * drz, n0 + t * dn, hn0 + t * dhn,
               hmn0 + t * dhmn, out0 + t * dout, ld_out, hs0 + (t + 1) * dhs, n, H, bf16)


class _GRULayer(torch.autograd.Function):
    """(xp (B, T, 3H), h0 (B, H), W_hh (3H, H), b_hh (3H,) or None, sizes) -> outputs (B, T, H).

    ``sizes[t]`` rows run at step t and xp's dtype is the products', as in
    :class:`rnnkit.kernels.lstm._LSTMLayer`; outputs past a sequence's end are zero."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight: Tensor, bias: Tensor | None, sizes: list[int]) -> Tensor:
        B, T, G = xp.shape
        H = G // 3
        xp = xp.contiguous()
        prepared = gemm.prepare(weight, B, xp.dtype)
        bias = bias.detach().to(xp.dtype) if bias is not None else None
        fp32 = dict(dtype=torch.float32)
        zeros_if_ragged = xp.new_zeros if sizes[-1] < B else xp.new_empty  # rows past an end stay zero
        out = zeros_if_ragged(B, T, H, **fp32)
        hs = zeros_if_ragged(T + 1, B, H)  # h_{t-1} time-major in xp's dtype, for the products
        rz = xp.new_empty(T, B, 2 * H, **fp32)  # the reset and update gates
        ns, hn, hmn = (xp.new_empty(T, B, H, **fp32) for _ in range(3))  # n, hp's n block, h - n
        hs[0] = h0
        h = h0.float().contiguous()  # h_{t-1} in fp32
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            _forward_steps(xp, prepared, bias, h, hs, rz, ns, hn, hmn, out, sizes)
        ctx.save_for_backward(weight, hs, rz, ns, hn, hmn)
        ctx.has_bias = bias is not None
        ctx.sizes = sizes
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        weight, hs, rz, ns, hn, hmn = ctx.saved_tensors
        T, B, H = ns.shape
        low = dict(dtype=hs.dtype)  # the products' dtype
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        dout = dout if dout.stride(2) == 1 else dout.contiguous()  # (B, T, H), read a step at a time
        zeros_if_ragged = dout.new_zeros if ctx.sizes[-1] < B else dout.new_empty  # rows past an end stay zero
        dxp = zeros_if_ragged(B, T, 3 * H, **low)  # the gradient reaching xp, batch-major like xp
        dhp = zeros_if_ragged(T, B, 3 * H, **low)  # the one reaching hp, time-major for the products
        # dh' z of the step after, in turns; zero at a sequence's last step
        direct, direct_next = dout.new_zeros(B, H), dout.new_zeros(B, H)
        dh_more = dout.new_zeros(B, H, **low)  # dhp W of the step after
        for t in range(T - 1, -1, -1):
            n = ctx.sizes[t]
            step_backward(rz[t, :n], ns[t, :n], hn[t, :n], hmn[t, :n], dout[:n, t], direct[:n], dh_more[:n],
                          dxp[:n, t], dhp[t, :n], direct_next[:n])
            direct, direct_next = direct_next, direct
            if t > 0 or ctx.needs_input_grad[1]:
                dh_more = running_rows_product(dhp[t], n, prepared_t, dh_more)  # (B, H)
        dh0 = direct + dh_more.float() if ctx.needs_input_grad[1] else None
        dhp_rows = dhp.view(T * B, 3 * H)
        dweight = gemm.mm(dhp_rows.t(), hs[:T].reshape(T * B, H)).float()  # (3H, H)
        dbias = dhp_rows.sum(0, dtype=torch.float32) if ctx.has_bias else None
        return dxp, dh0, dweight, dbias, None
