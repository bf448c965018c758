"""The layer-normalised LSTM (Ba, Kiros & Hinton 2016, section 3.1 and
appendix): the LSTM's gates from normalised input and recurrent projections,
and h from the normalised cell state. The shared parts (LN per gate block,
parameters, the normalised input projection) are in :mod:`rnnkit.kernels.layernorm`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.kernels.cell import State
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
    The explicit engine only (no torch kernel exists for it), on unroll's
    per-step nodes: the recurrent weight gradient of all steps is one product,
    the normalisations and gates are torch's ops under autograd. Measured
    (benchmarks/cell_speed.py, 2026-12-05, 2 threads, training tokens/s of a
    2 x 512 character model): 0.68x the LSTM's on ``auto`` (torch's kernel)
    and 0.67x on its explicit layer node; the matrix products took 55 % of a
    step (69 % on one thread), so no node of its own yet. At 2 x 256 it ran at
    0.43x (element-wise ops and their autograd nodes took about 60 %).
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
