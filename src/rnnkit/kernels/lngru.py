"""The layer-normalised GRU (Ba, Kiros & Hinton 2016, section 3.1 and
appendix, applied to torch's GRU): the GRU's gates from normalised input and
recurrent projections. The shared parts (LN per gate block, parameters, the
normalised input projection) are in :mod:`rnnkit.kernels.layernorm`; the
per-step gate equations are the GRU's own node, :class:`rnnkit.kernels.gru.GRUGates`,
and the whole sequence one node on the C kernels of ``lngru.c``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import gemm, native
from rnnkit.kernels.cell import State, running_rows_product
from rnnkit.kernels.gru import GRUGates
from rnnkit.kernels.layernorm import LayerNormCell


class LNGRUCell(LayerNormCell):
    r"""Layer-normalised GRU cell.

    .. math::
        [x_r | x_z | x_n] &= LN(W_{ih} x_t; γ_x, β_x) \\
        [h_r | h_z | h_n] &= LN(W_{hh} h_{t-1}; γ_h, β_h) \\
        r_t &= σ(x_r + h_r);\quad z_t = σ(x_z + h_z) \\
        n_t &= \tanh(x_n + r_t ⊙ h_n) \\
        h_t &= (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    each LN over the H units of one gate block (:func:`rnnkit.kernels.layernorm.block_norm`),
    with ε = 1e-5.

    Shapes: x (B, I), h (B, H); ``weight_ih`` (3H, I) packed [W_ir | W_iz | W_in]
    and ``weight_hh`` (3H, H) likewise; ``ln_ih_gain``, ``ln_ih_bias``,
    ``ln_hh_gain``, ``ln_hh_bias`` (3H) in the same block order. No
    ``bias_ih``, ``bias_hh``. State: ``(h,)``.

    Initialisation: weights as :class:`rnnkit.kernels.cell.Cell`; gains 1, biases 0.

    Deviations from the paper, which normalises the GRU of Cho et al.: torch's
    GRU (the reset gate multiplies the normalised W_hn h + β_hn, not h before
    the product), and the paper's bias b folded into β_x. β_h's r and z blocks
    add to the same sums as β_x's; its n block is gated by r, so it is a
    parameter of its own, as torch's b_hn is. The explicit engine only: on a
    CPU in fp32 or under bf16 autocast the whole sequence is one
    :class:`_LNGRULayer` node on lngru.c, elsewhere unroll's per-step nodes
    (see :class:`rnnkit.kernels.lnlstm.LNLSTMCell`). The node trains a little
    slower than the GRU's C layer node and much faster than the per-step nodes
    (benchmarks/RESULTS.md, "Cell variants at equal wall time").
    """

    name = "lngru"
    num_gates = 3
    gate_names = ("reset", "update", "candidate")  # the blocks of G*H rows, in order
    state_size = 1

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        h = GRUGates.apply(xp, self.norm_hidden(hp), state[0])
        return h, (h,)

    def sequence_node(self, xp: Tensor, state: State, weight_hh: Tensor, products: torch.dtype,
                      sizes: list[int], lengths: Tensor | None) -> tuple[Tensor]:
        """(outputs,) on :class:`_LNGRULayer`."""
        return (_LNGRULayer.apply(xp, state[0], weight_hh, self.ln_hh_gain, self.ln_hh_bias, products, sizes),)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        (xr, xz, xn), (hr, hz, hn) = xp.chunk(3, dim=1), self.norm_hidden(hp).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return {"reset": ("sigmoid", r), "update": ("sigmoid", z), "candidate": ("tanh", torch.tanh(xn + r * hn))}


class _LNGRULayer(torch.autograd.Function):
    """(xp (B, T, 3H) fp32, h0 (B, H), W_hh (3H, H), γ_h, β_h (3H), products, sizes)
    -> outputs (B, T, H), as :class:`rnnkit.kernels.gru._GRULayer` with the norm of
    lngru.c in each step: xp is LN(W_ih x) already, each step normalises
    hp = h_{t-1} W_hh^T. β_h may be None (``bias=False``); ``products`` is the
    recurrent products' dtype (fp32, or bf16 under autocast). Backward::

        dW_hh = sum_t dhp_t^T h_{t-1}            one product over all steps
        dγ_h = sum_{t,b} dhn ⊙ hhat;  dβ_h = sum_{t,b} dhn   (dhn: the normalised hp's gradient)
    """

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, weight: Tensor, gain_h: Tensor, bias_h: Tensor | None,
                products: torch.dtype, sizes: list[int]) -> Tensor:
        B, T, G = xp.shape
        H = G // 3
        xp = xp.contiguous()
        prepared = gemm.prepare(weight, B, products)
        gain, bias = (None if p is None else p.detach().float().contiguous() for p in (gain_h, bias_h))
        zeros_if_ragged = xp.new_zeros if sizes[-1] < B else xp.new_empty  # rows past an end stay zero
        out = zeros_if_ragged(B, T, H)
        hs = zeros_if_ragged(T + 1, B, H, dtype=products)  # h_{t-1} time-major, for the products
        hhats = zeros_if_ragged(T, B, G)  # the normalised hp; finite past an end for the gain's sum
        rstd_h = xp.new_empty(T, B, 3)  # 1/sqrt(σ² + ε) of each block
        rz = xp.new_empty(T, B, 2 * H)  # the reset and update gates
        ns, hn, hmn = (xp.new_empty(T, B, H) for _ in range(3))  # n, the normalised hp's n block, h - n
        hs[0] = h0
        h = h0.float().contiguous()  # h_{t-1} in fp32
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            for t, n in enumerate(sizes):
                hp = gemm.prepared_linear(hs[t, :n], prepared)  # (n, 3H), bare
                native.library().rnnkit_lngru_forward(
                    hp.data_ptr(), xp[:, t].data_ptr(), xp.stride(0), h.data_ptr(), h.stride(0), gain.data_ptr(),
                    None if bias is None else bias.data_ptr(), hhats[t].data_ptr(), rstd_h[t].data_ptr(),
                    rz[t].data_ptr(), ns[t].data_ptr(), hn[t].data_ptr(), hmn[t].data_ptr(), out[:, t].data_ptr(),
                    out.stride(0), hs[t + 1].data_ptr(), n, H, products == torch.bfloat16)
                h = out[:, t]
        ctx.save_for_backward(weight, hs, hhats, rstd_h, rz, ns, hn, hmn, gain)
        ctx.has_bias = bias is not None
        ctx.sizes = sizes
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):
        weight, hs, hhats, rstd_h, rz, ns, hn, hmn, gain = ctx.saved_tensors
        T, B, H = ns.shape
        low = dict(dtype=hs.dtype)  # the products' dtype
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        dout = dout if dout.stride(2) == 1 else dout.contiguous()  # (B, T, H), read a step at a time
        zeros_if_ragged = dout.new_zeros if ctx.sizes[-1] < B else dout.new_empty  # rows past an end stay zero
        dxp = zeros_if_ragged(B, T, 3 * H)  # the gradient reaching xp, batch-major like xp
        dhn = zeros_if_ragged(T, B, 3 * H)  # the one reaching the normalised hp
        dhp = zeros_if_ragged(T, B, 3 * H, **low)  # the one reaching hp, time-major for the products
        # dh' z of the step after, in turns; zero at a sequence's last step
        direct, direct_next = dout.new_zeros(B, H), dout.new_zeros(B, H)
        dh_more = dout.new_zeros(B, H, **low)  # dhp W of the step after
        for t in range(T - 1, -1, -1):
            n = ctx.sizes[t]
            native.library().rnnkit_lngru_backward(
                rz[t].data_ptr(), ns[t].data_ptr(), hn[t].data_ptr(), hmn[t].data_ptr(), hhats[t].data_ptr(),
                rstd_h[t].data_ptr(), gain.data_ptr(), dout[:, t].data_ptr(), dout.stride(0), direct.data_ptr(),
                dh_more.data_ptr(), dxp[:, t].data_ptr(), dxp.stride(0), dhn[t].data_ptr(), dhp[t].data_ptr(),
                direct_next.data_ptr(), n, H, hs.dtype == torch.bfloat16)
            direct, direct_next = direct_next, direct
            if t > 0 or ctx.needs_input_grad[1]:
                dh_more = running_rows_product(dhp[t], n, prepared_t, dh_more)  # (B, H)
        dh0 = direct + dh_more.float() if ctx.needs_input_grad[1] else None
        dweight = gemm.mm(dhp.view(T * B, 3 * H).t(), hs[:T].reshape(T * B, H)).float()  # (3H, H)
        return (dxp, dh0, dweight, (dhn * hhats).sum((0, 1)), dhn.sum((0, 1)) if ctx.has_bias else None,
                None, None)
