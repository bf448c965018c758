"""Leaky-integrator units with several time scales: each unit keeps a fixed
share of its previous state, so slow units carry information over many
steps and fast ones follow the input (Jaeger 2002; the multiple time scales
of Goodfellow et al. 10.9.2).

Its layer node is the vanilla RNN's (:class:`rnnkit.kernels.rnn._RNNLayer`)
given the leak rates α; per step t, with xp_t = x_t W_ih^T + b_ih + b_hh from
one product over all steps::

    u_t = tanh(h_{t-1} W_hh^T + xp_t);   h_t = h_{t-1} + α ⊙ (u_t - h_{t-1})

and backward, g_t being the whole gradient that reaches h_t, for t = T..1::

    g_t = dout_t + (1 - α) ⊙ g_{t+1} + da_{t+1} W_hh        (g_{T+1} = da_{T+1} = 0)
    da_t = g_t ⊙ α ⊙ (1 - u_t²)
    dW_hh = DA^T Hprev (one product),   dxp_t = da_t,   dh_0 = (1 - α) ⊙ g_1 + da_1 W_hh

With learned leak rates (``learn_leak``), α = σ(w) per unit and the node
also returns dα = Σ_t Σ_b g_t ⊙ (u_t - h_{t-1}), which autograd carries on
to w as dw = dα ⊙ α (1 - α).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.kernels.cell import Cell, State, by_length, cpu_node_takes
from rnnkit.kernels.rnn import _RNNLayer


def leak_rates(hidden_size: int, timescale: float) -> Tensor:
    """α (H,) spread geometrically from 1 (unit 0, an ordinary RNN unit) down to
    1/timescale (unit H-1): α_k = timescale^(-k/(H-1))."""
    if hidden_size == 1:
        return torch.ones(1)
    return torch.tensor(float(timescale)) ** -(torch.arange(hidden_size, dtype=torch.float64) / (hidden_size - 1))


MAX_LEARNED_RATE = 1 / (1 + math.exp(-6.0))  # σ(6) ≈ 0.9975: where a learned α starts at most (σ never reaches 1)


def leak_logits(rates: Tensor) -> Tensor:
    """w with σ(w) = α for rates α (H,), α capped at :data:`MAX_LEARNED_RATE`: w = log(α / (1 - α))."""
    rates = rates.clamp(max=MAX_LEARNED_RATE)
    return torch.log(rates / (1 - rates))


class LeakyCell(Cell):
    r"""Leaky-integrator tanh units with fixed leak rates spread over several time scales.

    .. math::
        u_t &= \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \\
        h_t &= (1 - α) ⊙ h_{t-1} + α ⊙ u_t

    α (H,) is fixed, not learned: α_k = τ^(-k/(H-1)) for unit k, from 1 (an
    ordinary RNN unit, the vanilla :class:`rnnkit.kernels.rnn.RNNCell`) down to
    1/τ, τ = ``leak_timescale`` (a unit with α keeps its state for about 1/α
    steps). ``leak_timescale=1`` gives α = 1 everywhere: the vanilla RNN.

    Shapes: x (B, I), h (B, H); ``weight_ih`` (H, I), ``weight_hh`` (H, H),
    ``bias_ih``, ``bias_hh`` (H); the buffer ``alpha`` (H,), saved with the
    weights. State: ``(h,)``. Initialisation: as :class:`Cell`.

    Its layer node (the explicit engine; ``auto`` picks it, there being no
    torch kernel) trains nearly as fast as the vanilla RNN's layer node, and
    faster than unroll's per-step nodes at 2 x 256 (benchmarks/RESULTS.md,
    "Cell variants at equal wall time"; NOTEBOOK.md, 2026-12-06).

    With ``learn_leak=True`` each unit learns its rate: α = σ(w) for a
    parameter ``leak_logit`` w (H,), so α stays in (0, 1) (Goodfellow et al.
    10.9.2: "the time constants ... may be learned"). w starts at the fixed
    rates' logits, the fastest units at σ(6) ≈ 0.9975 instead of 1; with the
    same α the cell computes what the fixed-leak cell does. w is a 1-d
    parameter, so weight decay and L1 leave it alone, as they do biases.

    Deviation from Jaeger (2002): one α per unit over a geometric range
    instead of one leak rate for the whole reservoir, and the recurrent
    weights are trained (no echo-state reservoir).
    """

    name = "leaky"
    num_gates = 1
    gate_names = ("candidate",)  # the blocks of G*H rows, in order
    state_size = 1
    options = ("leak_timescale", "learn_leak")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 leak_timescale: float = 100.0, learn_leak: bool = False, **init):
        if not leak_timescale >= 1:
            raise ValueError(f"LeakyCell: leak_timescale must be >= 1, got {leak_timescale}")
        self.leak_timescale = leak_timescale
        self.learn_leak = learn_leak
        super().__init__(input_size, hidden_size, bias, **init)
        rates = leak_rates(hidden_size, leak_timescale)  # (H,) float64
        if learn_leak:
            self.leak_logit = nn.Parameter(leak_logits(rates).float())  # (H,): α = σ(leak_logit)
        else:
            self.register_buffer("alpha", rates.float())  # (H,)

    def rates(self) -> Tensor:
        """α (H,): the fixed buffer ``alpha``, or σ(``leak_logit``) when learned."""
        return torch.sigmoid(self.leak_logit) if self.learn_leak else self.alpha

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        return self.activate(xp + hp, state)

    def activate(self, pre: Tensor, state: State) -> tuple[Tensor, State]:
        """h = h_prev + α ⊙ (tanh(pre) - h_prev) from the summed pre-activation pre (B, H)."""
        h_prev = state[0]
        h = torch.addcmul(h_prev, self.rates().to(pre.dtype), torch.tanh(pre) - h_prev)
        return h, (h,)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        return {"candidate": ("tanh", torch.tanh(xp + hp))}

    def layer(self, x: Tensor, state: State, lengths: Tensor | None,
              weight_hh: Tensor) -> tuple[Tensor, State] | None:
        """The sequence as the vanilla RNN's node with the leak (:class:`rnnkit.kernels.rnn._RNNLayer`):
        fp32 on a CPU (or under bf16 autocast)."""
        if not cpu_node_takes(x, weight_hh):
            return None

        def node(x, state, sizes, lengths):  # -> (outputs,)
            xp = self.project_input(x, with_hidden_bias=True)  # (B, T, H), b_hh joined b_ih
            return (_RNNLayer.apply(xp, state[0], weight_hh, False, sizes, self.rates().float()),)

        return by_length(node, x, state, lengths)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", leak_timescale={self.leak_timescale}, learn_leak={self.learn_leak}"

