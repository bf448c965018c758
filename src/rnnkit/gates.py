"""The element-wise steps of the LSTM and the GRU as autograd nodes with
hand-written backwards, for the explicit engine.

Written with plain torch ops, a step records a dozen autograd nodes and its
backward concatenates the gate gradients. Each class below is one node: its
forward computes the cell's gate equations, and its backward applies the
derivatives written in its docstring. Tests check both against autograd with
``gradcheck`` in float64. ``tanh`` is formed from ``sigmoid``, which is
several times faster on a CPU (see :func:`_tanh`). For fp32 on a CPU the
LSTM's node runs a compiled kernel instead, one pass each way
(:mod:`rnnkit.native`); the torch ops here are its reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit import native


def lstm_gates(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The LSTM's element-wise step in the fewest ops, for steps without autograd
    (at batch 1 each op costs about 1-2 us, whatever its size): gates (B, 4H),
    c (B, H) -> (h, c'). One sigmoid over all four blocks (the g block's is unused)."""
    H = c.shape[1]
    i, f, _, o = torch.sigmoid(gates).chunk(4, dim=1)
    c = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * H:3 * H]))
    return o * torch.tanh(c), c


def _tanh(x: Tensor) -> Tensor:
    """tanh(x) = 2σ(2x) - 1, without autograd: torch's CPU tanh took 46 us on a
    (64, 512) fp32 tensor here where sigmoid took 11 (2 threads); the absolute
    error stays at the dtype's resolution of 1."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


# dy ⊙ σ(1-σ) and dy ⊙ (1-tanh²) from the outputs, each one kernel instead of three
_sigmoid_backward = torch.ops.aten.sigmoid_backward
_tanh_backward = torch.ops.aten.tanh_backward


class LSTMGates(torch.autograd.Function):
    """The LSTM's element-wise step as one autograd node, with its backward by hand
    (autograd would record a dozen nodes a step and concatenate the four gate
    gradients). Forward, from gates = [a_i | a_f | a_g | a_o] (B, 4H) and c (B, H)::

        i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
        c' = f ⊙ c + i ⊙ g;  h = o ⊙ tanh(c')

    Backward, from dh and dc' (the gradients reaching h and c')::

        dc = dc' + dh ⊙ o ⊙ (1 - tanh²(c'))
        [da_i | da_f | da_g | da_o] = [dc ⊙ g | dc ⊙ c | dc ⊙ i | dh ⊙ tanh(c')]
                                      ⊙ [i(1-i) | f(1-f) | 1-g² | o(1-o)]
        dc_prev = dc ⊙ f
    """

    @staticmethod
    def forward(ctx, gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        if native.handles(gates, c):  # fp32 on a CPU: one pass (rnnkit/native/gates.c)
            h, c_new, act, tanh_c = native.lstm_forward(gates, c)
            ctx.save_for_backward(act, c, tanh_c)
            return h, c_new
        H = c.shape[1]
        act = torch.sigmoid(gates)  # (B, 4H): i, f, o are final; the g block is replaced below
        act[:, 2 * H:3 * H] = _tanh(gates[:, 2 * H:3 * H])
        i, f, g, o = act.chunk(4, dim=1)
        c_new = torch.addcmul(f * c, i, g)  # (B, H)
        tanh_c = _tanh(c_new)
        ctx.save_for_backward(act, c, tanh_c)
        return o * tanh_c, c_new

    @staticmethod
    def backward(ctx, dh: Tensor, dc_new: Tensor) -> tuple[Tensor, Tensor]:
        act, c, tanh_c = ctx.saved_tensors
        if native.handles(act, c, dh, dc_new):
            return native.lstm_backward(act, c, tanh_c, dh, dc_new)
        H = c.shape[1]
        i, f, g, o = act.chunk(4, dim=1)
        dc = _tanh_backward(dh * o, tanh_c).add_(dc_new)  # (B, H)
        dact = torch.empty_like(act)  # (B, 4H): the gradient reaching i, f, g, o
        torch.mul(dc, g, out=dact[:, :H])
        torch.mul(dc, c, out=dact[:, H:2 * H])
        torch.mul(dc, i, out=dact[:, 2 * H:3 * H])
        torch.mul(dh, tanh_c, out=dact[:, 3 * H:])
        dgates = _sigmoid_backward(dact, act)  # the g block is replaced below
        _tanh_backward.grad_input(dact[:, 2 * H:3 * H], g, grad_input=dgates[:, 2 * H:3 * H])
        return dgates, dc * f


class GRUGates(torch.autograd.Function):
    """The GRU's element-wise step as one autograd node (see :class:`LSTMGates`).
    Forward, from xp = [x_r | x_z | x_n], hp = [h_r | h_z | h_n] (B, 3H) and h::

        r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r ⊙ h_n)
        h' = n + z ⊙ (h - n)                  (= (1 - z) ⊙ n + z ⊙ h)

    Backward, from dh' (the gradient reaching h')::

        da_n = dh' ⊙ (1 - z) ⊙ (1 - n²)
        da_r = da_n ⊙ h_n ⊙ r(1-r);  da_z = dh' ⊙ (h - n) ⊙ z(1-z)
        dxp = [da_r | da_z | da_n];  dhp = [da_r | da_z | da_n ⊙ r];  dh = dh' ⊙ z
    """

    @staticmethod
    def forward(ctx, xp: Tensor, hp: Tensor, h: Tensor) -> Tensor:
        H = h.shape[1]
        rz = torch.sigmoid(xp[:, :2 * H] + hp[:, :2 * H])  # (B, 2H)
        r, z = rz.chunk(2, dim=1)
        hn = hp[:, 2 * H:]
        n = _tanh(torch.addcmul(xp[:, 2 * H:], r, hn))  # (B, H)
        ctx.save_for_backward(rz, hn, n, h)
        return torch.addcmul(n, z, h - n)

    @staticmethod
    def backward(ctx, dh_new: Tensor) -> tuple[Tensor, Tensor, Tensor]:
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
