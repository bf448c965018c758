"""The layer-normalised LSTM (Ba, Kiros & Hinton 2016, section 3.1 and
appendix): the LSTM's gates from normalised input and recurrent projections,
and h from the normalised cell state; its equations as torch ops, and its
whole sequence as one autograd node on the C kernels of ``lnlstm.c``. The
shared parts (LN per gate block, parameters, the normalised input
projection) are in :mod:`rnnkit.kernels.layernorm`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.kernels import gemm, native
from rnnkit.kernels.cell import State, running_rows_product
from rnnkit.kernels.layernorm import LayerNormCell, block_norm


class LNLSTMCell(LayerNormCell):
    r"""Layer-normalised LSTM cell.

    .. math::
        [a_i | a_f | a_g | a_o] &= LN(W_{ih} x_t; γ_x, β_x) + LN(W_{hh} h_{t-1}; γ_h, β_h) \\
        i_t, f_t, o_t &= σ(a_i), σ(a_f), σ(a_o);\quad g_t = \tanh(a_g) \\
        c_t &= f_t ⊙ c_{t-1} + i_t ⊙ g_t \\
        h_t &= o_t ⊙ \tanh(LN(c_t; γ_c, β_c))

    each LN over the H units of one gate block (:func:`rnnkit.kernels.layernorm.block_norm`),
    with ε = 1e-5. The state carries c_t itself, not LN(c_t), as in the paper.

    Shapes: x (B, I), h and c (B, H); ``weight_ih`` (4H, I) packed
    [W_ii | W_if | W_ig | W_io] and ``weight_hh`` (4H, H) likewise;
    ``ln_ih_gain``, ``ln_ih_bias``, ``ln_hh_gain``, ``ln_hh_bias`` (4H) in
    the same block order; ``ln_c_gain``, ``ln_c_bias`` (H). No ``bias_ih``,
    ``bias_hh``. State: ``(h, c)``.

    Initialisation: weights as :class:`rnnkit.kernels.cell.Cell`; gains 1 and
    biases 0 (Ba et al.), except β_x's forget block, ``forget_bias`` (default 1,
    as :class:`rnnkit.kernels.lstm.LSTMCell`).

    Deviations from the paper: the paper's bias b is folded into β_x (it adds
    to the same sums); β_h is kept although it adds to the same sums too, so
    that both norms have a gain and a bias per block as the paper writes them.
    The explicit engine only (no torch kernel exists for it): on a CPU in
    fp32 or under bf16 autocast, the whole sequence is one :class:`_LNLSTMLayer`
    node on lnlstm.c, elsewhere unroll's per-step nodes on torch's ops, which
    are the reference. The node trains a little slower than the LSTM's own C
    layer node (the norms' work) and much faster than the per-step nodes
    (benchmarks/RESULTS.md, "Cell variants at equal wall time").
    """

    name = "lnlstm"
    num_gates = 4
    gate_names = ("input", "forget", "cell", "output")  # the blocks of G*H rows, in order
    state_size = 2
    options = ("forget_bias",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 forget_bias: float = 1.0, **init):
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, bias, **init)
        self.ln_c_gain = nn.Parameter(torch.empty(hidden_size))  # (H,)
        self.ln_c_bias = nn.Parameter(torch.empty(hidden_size)) if bias else None
        self.reset_norms()

    @torch.no_grad()
    def reset_norms(self) -> None:
        super().reset_norms()
        if self.bias and self.input_init != "torch":
            H = self.hidden_size
            self.ln_ih_bias[H:2 * H].fill_(self.forget_bias)

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        i, f, g, o = self._activations(xp, hp)
        c = torch.addcmul(f * state[1], i, g)  # (B, H)
        h = o * torch.tanh(self.norm_cell(c))
        return h, (h, c)

    def sequence_node(self, xp: Tensor, state: State, weight_hh: Tensor, products: torch.dtype,
                      sizes: list[int], lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """(outputs, c_T) on :class:`_LNLSTMLayer`."""
        return _LNLSTMLayer.apply(xp, *state, weight_hh, self.ln_hh_gain, self.ln_hh_bias, self.ln_c_gain,
                                  self.ln_c_bias, products, sizes, lengths)

    def norm_cell(self, c: Tensor) -> Tensor:
        """LN(c; γ_c, β_c): (B, H) -> (B, H)."""
        return block_norm(c, self.ln_c_gain, self.ln_c_bias, 1)

    def _activations(self, xp: Tensor, hp: Tensor) -> tuple[Tensor, ...]:
        """i, f, g, o (B, H) each from xp (normalised already) and the bare product hp (B, 4H)."""
        a = xp + self.norm_hidden(hp)  # (B, 4H)
        H = self.hidden_size
        act = torch.sigmoid(a)  # i, f, o are final; the g block is replaced below
        i, f, _, o = act.chunk(4, dim=1)
        return i, f, torch.tanh(a[:, 2 * H:3 * H]), o

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        i, f, g, o = self._activations(xp, hp)
        c = f * state[1] + i * g
        return {"input": ("sigmoid", i), "forget": ("sigmoid", f), "cell": ("tanh", g), "output": ("sigmoid", o),
                "tanh(LN(c))": ("tanh", torch.tanh(self.norm_cell(c)))}


# -- the C kernels (lnlstm.c) --------------------------------------------------

def _pointer(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _LNLSTMLayer(torch.autograd.Function):
    """(xp (B, T, 4H) fp32, h0, c0 (B, H), W_hh (4H, H), γ_h, β_h (4H), γ_c, β_c (H),
    products, sizes, lengths) -> (outputs (B, T, H), c_T), as
    :class:`rnnkit.kernels.lstm._LSTMLayer` but with the norms of lnlstm.c in each
    step: xp is LN(W_ih x) already, each step normalises hp = h_{t-1} W_hh^T and
    c_t. The β's may be None (``bias=False``). ``products`` is the recurrent
    products' dtype (fp32, or bf16 under autocast); the rest is fp32. Backward::

        dW_hh = sum_t dhp_t^T h_{t-1}            one product over all steps
        dγ_h = sum_{t,b} da ⊙ hhat;  dβ_h = sum_{t,b} da   (da = dxp, the pre-activations' gradient)
        dγ_c = sum_{t,b} dy ⊙ chat;  dβ_c = sum_{t,b} dy
    """

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, weight: Tensor, gain_h: Tensor, bias_h: Tensor | None,
                gain_c: Tensor, bias_c: Tensor | None, products: torch.dtype, sizes: list[int],
                lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        B, T, G = xp.shape
        H = G // 4
        xp = xp.contiguous()
        prepared = gemm.prepare(weight, B, products)
        norms = [None if p is None else p.detach().float().contiguous() for p in (gain_h, bias_h, gain_c, bias_c)]
        ragged = lengths is not None
        # past a sequence's end: zero outputs, and finite values for the backward's sums
        zeros_if_ragged = xp.new_zeros if ragged else xp.new_empty
        out = zeros_if_ragged(B, T, H)
        hs = zeros_if_ragged(T + 1, B, H, dtype=products)  # h_{t-1} time-major, for the products
        cs = xp.new_empty(T + 1, B, H)  # c_{t-1} for step t's backward
        acts, hhats = xp.new_empty(T, B, G), zeros_if_ragged(T, B, G)  # [i | f | g | o], normalised hp
        chats, tanh_ys = zeros_if_ragged(T, B, H), xp.new_empty(T, B, H)  # normalised c, tanh(LN(c))
        rstd_h, rstd_c = xp.new_empty(T, B, 4), xp.new_empty(T, B)  # 1/sqrt(σ² + ε) of each norm
        hs[0], cs[0] = h0, c0
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            for t, n in enumerate(sizes):
                hp = gemm.prepared_linear(hs[t, :n], prepared)  # (n, 4H), bare
                native.library().rnnkit_lnlstm_forward(
                    hp.data_ptr(), xp[:, t].data_ptr(), xp.stride(0), cs[t].data_ptr(), H, *map(_pointer, norms),
                    acts[t].data_ptr(), hhats[t].data_ptr(), rstd_h[t].data_ptr(), cs[t + 1].data_ptr(),
                    chats[t].data_ptr(), rstd_c[t].data_ptr(), tanh_ys[t].data_ptr(), out[:, t].data_ptr(),
                    out.stride(0), hs[t + 1].data_ptr(), n, H, products == torch.bfloat16)
        c_last = cs[lengths, torch.arange(B)] if ragged else cs[T]
        ctx.save_for_backward(weight, hs, cs, acts, hhats, rstd_h, chats, rstd_c, tanh_ys, norms[0], norms[2])
        ctx.has_bias = bias_h is not None
        ctx.sizes = sizes
        return out, c_last

    @staticmethod
    def backward(ctx, dout: Tensor, dc_last: Tensor):
        weight, hs, cs, acts, hhats, rstd_h, chats, rstd_c, tanh_ys, gain_h, gain_c = ctx.saved_tensors
        T, B, H = tanh_ys.shape
        ragged = ctx.sizes[-1] < B
        low = dict(dtype=hs.dtype)  # the products' dtype
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        dout = dout if dout.stride(2) == 1 else dout.contiguous()  # (B, T, H), read a step at a time
        zeros_if_ragged = dout.new_zeros if ragged else dout.new_empty  # rows past an end stay zero
        dxp = zeros_if_ragged(B, T, 4 * H)  # da: the gradient reaching xp, batch-major like xp
        dhp = zeros_if_ragged(T, B, 4 * H, **low)  # the one reaching hp, time-major for the products
        dys = zeros_if_ragged(T, B, H)  # the one reaching y = LN(c)
        # dc of the step after, written in turns; a sequence's last step reads its dc_T from both
        dcs = [dc_last.float().clone(memory_format=torch.contiguous_format) for _ in range(2)]
        dh = dout.new_zeros(B, H, **low)  # the gradient reaching h_t from step t+1 (0 at a last step)
        for t in range(T - 1, -1, -1):
            n = ctx.sizes[t]
            native.library().rnnkit_lnlstm_backward(
                acts[t].data_ptr(), hhats[t].data_ptr(), rstd_h[t].data_ptr(), cs[t].data_ptr(), H,
                chats[t].data_ptr(), rstd_c[t].data_ptr(), tanh_ys[t].data_ptr(), gain_h.data_ptr(),
                gain_c.data_ptr(), dout[:, t].data_ptr(), dout.stride(0), dh.data_ptr(),
                dcs[(t + 1) % 2].data_ptr(), H, dys[t].data_ptr(), dxp[:, t].data_ptr(), dxp.stride(0),
                dhp[t].data_ptr(), dcs[t % 2].data_ptr(), n, H, hs.dtype == torch.bfloat16)
            if t > 0 or ctx.needs_input_grad[1]:
                dh = running_rows_product(dhp[t], n, prepared_t, dh)  # (B, H)
        dweight = gemm.mm(dhp.view(T * B, 4 * H).t(), hs[:T].reshape(T * B, H))  # (4H, H)
        da = dxp.transpose(0, 1)  # (T, B, 4H) like hhats
        needs = ctx.needs_input_grad
        return (dxp, dh.float() if needs[1] else None, dcs[0] if needs[2] else None, dweight.float(),
                (da * hhats).sum((0, 1)), da.sum((0, 1)) if ctx.has_bias else None,
                (dys * chats).sum((0, 1)), dys.sum((0, 1)) if ctx.has_bias else None, None, None, None)
