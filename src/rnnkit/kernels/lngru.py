"""The layer-normalised GRU (Ba, Kiros & Hinton 2016, section 3.1 and
appendix, applied to torch's GRU): the GRU's gates from normalised input and
recurrent projections. The shared parts (LN per gate block, parameters, the
normalised input projection) are in :mod:`rnnkit.kernels.layernorm`; the
gate equations are the GRU's own node, :class:`rnnkit.kernels.gru.GRUGates`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels.cell import State
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
    parameter of its own, as torch's b_hn is. The explicit engine only, on
    unroll's per-step nodes (see :class:`rnnkit.kernels.lnlstm.LNLSTMCell`):
    0.65x the GRU's tokens/s on ``auto`` (its C layer node) and 0.95x torch's
    fused GRU for a 2 x 512 character model (0.60x and 0.74x at 2 x 256;
    benchmarks/cell_speed.py, 2026-12-05, 2 threads).
    """

    name = "lngru"
    num_gates = 3
    gate_names = ("reset", "update", "candidate")  # the blocks of G*H rows, in order
    state_size = 1

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        h = GRUGates.apply(xp, self.norm_hidden(hp), state[0])
        return h, (h,)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        (xr, xz, xn), (hr, hz, hn) = xp.chunk(3, dim=1), self.norm_hidden(hp).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return {"reset": ("sigmoid", r), "update": ("sigmoid", z), "candidate": ("tanh", torch.tanh(xn + r * hn))}
