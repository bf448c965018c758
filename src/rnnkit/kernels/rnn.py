"""The vanilla (Elman) RNN: its equation, and its whole sequence as one
autograd node on torch's element-wise ops (its step is one addition and one
activation, so it needs no C kernel).

The node (:class:`_RNNLayer`) is the LSTM's loop (:mod:`rnnkit.kernels.lstm`)
with h_t = φ(h_{t-1} W_hh^T + xp_t) as the step, φ = tanh or relu (and, given
leak rates, the leaky integrator's step, :mod:`rnnkit.kernels.leaky`)::

    da_t = (dout_t + dh_t) ⊙ φ'(a_t),   φ'(a_t) = 1 - h_t² (tanh) or [h_t > 0] (relu)
    dh_{t-1} = da_t W_hh,   dW_hh = DA^T Hprev (one product)
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import gemm
from rnnkit.kernels.cell import Cell, State, by_length, cpu_node_takes, running_rows_product

NONLINEARITIES = ("tanh", "relu")


class RNNCell(Cell):
    r"""Vanilla (Elman) recurrent cell, the cell of min-char-rnn.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with φ = tanh (default) or relu (``nonlinearity="relu"``).

    Shapes: x (B, I), h (B, H); ``weight_ih`` (H, I), ``weight_hh`` (H, H).
    State: ``(h,)``.

    On a CPU ``engine="auto"`` runs it on the explicit engine: its layer node
    ran level with torch's kernel at H 64-128 and faster at H 512 and over
    padded batches (benchmarks/RESULTS.md, "Padded batches"; NOTEBOOK.md,
    2026-11-23 and 2026-12-04).
    """

    name = "rnn"
    num_gates = 1
    gate_names = ("h",)  # the blocks of G*H rows, in order
    state_size = 1
    explicit_on_cpu = ("unpadded", "padded")
    options = ("nonlinearity",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", **init):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **init)

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        return self.activate(xp + hp, state)

    def activate(self, pre: Tensor, state: State) -> tuple[Tensor, State]:
        """h = φ(pre) from the summed pre-activation pre (B, H)."""
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, (h,)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        return {"h": ("tanh", torch.tanh(xp + hp))} if self.nonlinearity == "tanh" else {}  # relu does not saturate

    def fused_kernel(self):
        return torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu

    def layer(self, x: Tensor, state: State, lengths: Tensor | None,
              weight_hh: Tensor) -> tuple[Tensor, State] | None:
        """The sequence as one :class:`_RNNLayer` node: fp32 on a CPU (or under bf16 autocast)."""
        if not cpu_node_takes(x, weight_hh):
            return None

        def node(x, state, sizes, lengths):  # -> (outputs,)
            xp = self.project_input(x, with_hidden_bias=True)  # (B, T, H), b_hh joined b_ih
            return (_RNNLayer.apply(xp, state[0], weight_hh, self.nonlinearity == "relu", sizes, None),)

        return by_length(node, x, state, lengths)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class _RNNLayer(torch.autograd.Function):
    """(xp (B, T, H), h0 (B, H), W_hh (H, H), relu, sizes, α) -> outputs (B, T, H); b_hh is in xp.

    α (H,) or None: leak rates, h_t = h_{t-1} + α ⊙ (φ(a_t) - h_{t-1}) (the
    leaky integrator, :mod:`rnnkit.kernels.leaky`); None is α = 1, the vanilla
    RNN's h_t = φ(a_t). With a leak the backward carries g_t, the whole
    gradient reaching h_t, through the direct path::

        g_t = dout_t + da_{t+1} W_hh + (1 - α) ⊙ g_{t+1},   da_t = g_t ⊙ α ⊙ φ'(a_t)
        dh_0 = (1 - α) ⊙ g_1 + da_1 W_hh
        dα = Σ_t Σ_b g_t ⊙ (φ(a_t) - h_{t-1})      (when α is learned: it requires a gradient)

    ``sizes[t]`` rows run at step t and xp's dtype is the products', as in
    :class:`rnnkit.kernels.lstm._LSTMLayer`; a_t, h_t and their gradients are fp32."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight: Tensor, relu: bool, sizes: list[int],
                alpha: Tensor | None = None) -> Tensor:
        B, T, H = xp.shape
        prepared = gemm.prepare(weight, B, xp.dtype)
        zeros_if_ragged = xp.new_zeros if sizes[-1] < B else xp.new_empty  # rows past an end stay zero
        out = zeros_if_ragged(B, T, H, dtype=torch.float32)
        hs = zeros_if_ragged(T + 1, B, H)  # h_{t-1} time-major in xp's dtype: hs[:T] is the product's Hprev
        hs[0] = h0
        # φ(a_t), time-major: the outputs themselves without a leak, else kept apart for the backward
        phis = out.transpose(0, 1) if alpha is None else xp.new_empty(T, B, H, dtype=torch.float32)
        h = h0.float() if alpha is not None else None  # h_{t-1} in fp32, for the leak's direct path
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            for t, n in enumerate(sizes):
                phi = phis[t, :n]
                torch.add(gemm.prepared_linear(hs[t, :n], prepared), xp[:n, t], out=phi)  # a_t
                if relu:
                    phi.relu_()
                else:
                    phi.tanh_()
                if alpha is not None:
                    torch.addcmul(h[:n], alpha, phi - h[:n], out=out[:n, t])  # h_t
                    h = out[:, t]
                hs[t + 1, :n] = out[:n, t]
        ctx.save_for_backward(weight, hs, out if alpha is None else phis, alpha)  # out itself: a view may not be saved
        ctx.relu, ctx.sizes = relu, sizes
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        weight, hs, phis, alpha = ctx.saved_tensors
        phis = phis.transpose(0, 1) if alpha is None else phis  # (T, B, H)
        T, B, H = phis.shape
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        # time-major for the product, in its dtype; rows past a sequence's end stay zero
        da = (dout.new_zeros if ctx.sizes[-1] < B else dout.new_empty)(T, B, H, dtype=hs.dtype)
        g = dout.new_zeros(B, H, dtype=torch.float32)  # g_t; zero past each sequence's last step
        da_t = dout.new_empty(B, H, dtype=torch.float32)
        dh = dout.new_zeros(B, H, dtype=hs.dtype)  # da_{t+1} W_hh, the gradient h_t gets from the step after
        keep = None if alpha is None else 1 - alpha  # (H,): the share of g_{t+1} that reaches h_t directly
        dalpha = alpha.new_zeros(H, dtype=torch.float32) if ctx.needs_input_grad[5] else None
        for t in range(T - 1, -1, -1):
            n = ctx.sizes[t]
            if alpha is None:
                torch.add(dout[:n, t], dh[:n], out=g[:n])
                dphi = g[:n]
            else:
                g[:n] = torch.addcmul(dout[:n, t] + dh[:n], keep, g[:n])
                dphi = g[:n] * alpha
                if dalpha is not None:  # h_t's direct dependence on α: φ(a_t) - h_{t-1}
                    dalpha += (g[:n] * (phis[t, :n] - hs[t, :n].float())).sum(0)
            if ctx.relu:
                torch.mul(dphi, phis[t, :n] > 0, out=da_t[:n])
            else:
                torch.ops.aten.tanh_backward.grad_input(dphi, phis[t, :n], grad_input=da_t[:n])
            da[t, :n] = da_t[:n]
            if t > 0 or ctx.needs_input_grad[1]:
                dh = running_rows_product(da[t], n, prepared_t, dh)  # (B, H)
        dh0 = None
        if ctx.needs_input_grad[1]:
            dh0 = dh.float() if alpha is None else keep * g + dh.float()
        dweight = gemm.mm(da.view(T * B, H).t(), hs[:T].reshape(T * B, H)).float()  # (H, H)
        return da.transpose(0, 1), dh0, dweight, None, None, dalpha
