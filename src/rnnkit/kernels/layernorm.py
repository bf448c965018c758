"""What the layer-normalised cells share (Ba, Kiros & Hinton 2016): layer
normalisation per gate block, and a cell base whose input projection is
normalised for all steps at once and whose recurrent projection enters its
step bare, to be normalised there.

For a vector a of one gate block (H units) of one example::

    LN(a; γ, β) = γ ⊙ (a - μ) / sqrt(σ² + ε) + β,   μ, σ² the mean and variance of a's H entries

Each gate block gets its own statistics, gain γ and bias β (normalising
all G*H pre-activations together would let one gate's scale set another's).
The cells' parameters (G gate blocks of H rows, packed as in torch.nn):

    weight_ih (G*H, I), weight_hh (G*H, H)      as in the plain cell
    ln_ih_gain, ln_ih_bias (G*H)                 γ_x, β_x of LN(W_ih x)
    ln_hh_gain, ln_hh_bias (G*H)                 γ_h, β_h of LN(W_hh h)

and no ``bias_ih``/``bias_hh``: the paper's bias b adds to β_x (the LSTM's
forget bias is β_x's forget block), and with no ``bias_hh`` every loop that
forms hp_t = h_{t-1} W_hh^T + b_hh (unroll's, recording's, generation's)
hands the step the bare product, which the step normalises. With
``bias=False`` the norms have gains only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.kernels import native
from rnnkit.kernels.cell import Cell, State, by_length, cpu_node_takes

EPS = 1e-5  # ε, torch.nn.LayerNorm's default


def block_norm(a: Tensor, gain: Tensor, bias: Tensor | None, blocks: int) -> Tensor:
    """LN of each of ``blocks`` blocks of a (..., G*H) over its own H entries, then
    γ ⊙ · + β with gain, bias (G*H,) (bias None: none) -> (..., G*H)."""
    H = a.shape[-1] // blocks
    normed = F.layer_norm(a.unflatten(-1, (blocks, H)), (H,), eps=EPS).flatten(-2)  # (..., G*H)
    return normed * gain if bias is None else torch.addcmul(bias, normed, gain)


class LayerNormCell(Cell):
    """A cell whose input and recurrent projections are layer-normalised per
    gate block: ``project_input`` is LN(W_ih x; γ_x, β_x) for all steps at once,
    and ``combine`` gets hp = h W_hh^T bare and normalises it
    (:meth:`norm_hidden`) before the cell's own gate equations."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, **init):
        super().__init__(input_size, hidden_size, False, **init)  # no bias_ih, bias_hh: β_x, β_h take their place
        self.bias = bias
        gh = self.num_gates * hidden_size
        self.ln_ih_gain = nn.Parameter(torch.empty(gh))  # (G*H,)
        self.ln_ih_bias = nn.Parameter(torch.empty(gh)) if bias else None
        self.ln_hh_gain = nn.Parameter(torch.empty(gh))
        self.ln_hh_bias = nn.Parameter(torch.empty(gh)) if bias else None
        self.reset_norms()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "ln_ih_gain"):  # not yet made while Cell.__init__ runs this
            self.reset_norms()

    @torch.no_grad()
    def reset_norms(self) -> None:
        """Gains 1, biases 0 (Ba et al.)."""
        for name, p in self.named_parameters(recurse=False):
            if name.startswith("ln_"):
                nn.init.ones_(p) if name.endswith("gain") else nn.init.zeros_(p)

    def project_input(self, x: Tensor, with_hidden_bias: bool = False) -> Tensor:
        """LN(x W_ih^T; γ_x, β_x) per gate block: (..., I) -> (..., G*H). (There is
        no b_hh to add: ``with_hidden_bias`` changes nothing.)"""
        return block_norm(super().project_input(x), self.ln_ih_gain, self.ln_ih_bias, self.num_gates)

    def layer(self, x: Tensor, state: State, lengths: Tensor | None,
              weight_hh: Tensor) -> tuple[Tensor, State] | None:
        """The sequence as one node on the cell's C kernels (:meth:`sequence_node`):
        fp32 on a CPU, or under bf16 autocast with the recurrent products in bf16,
        where the kernels are built; None elsewhere (unroll's per-step nodes)."""
        if not (cpu_node_takes(x, weight_hh) and native.library() is not None):
            return None
        products = torch.bfloat16 if torch.is_autocast_enabled(x.device.type) else torch.float32

        def node(x, state, sizes, lengths):
            xp = self.project_input(x).float()  # (B, T, G*H): LN(W_ih x) of every step
            return self.sequence_node(xp, state, weight_hh, products, sizes, lengths)

        return by_length(node, x, state, lengths)

    def sequence_node(self, xp: Tensor, state: State, weight_hh: Tensor, products: torch.dtype,
                      sizes: list[int], lengths: Tensor | None) -> tuple[Tensor, ...]:
        """(outputs (B, T, H), *final state after h) from the normalised xp, on the
        cell's layer node; ``products`` is the recurrent products' dtype."""
        raise NotImplementedError

    def norm_hidden(self, hp: Tensor) -> Tensor:
        """LN(h W_hh^T; γ_h, β_h) per gate block from the bare product hp (B, G*H)."""
        return block_norm(hp, self.ln_hh_gain, self.ln_hh_bias, self.num_gates)
