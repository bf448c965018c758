"""Skip connections through time: a cell whose step also reads its own output
d steps back (Goodfellow et al. 10.9.1; Lin et al. 1996), so that a gradient
crosses d steps in one multiplication by a weight matrix instead of d.

Any cell with recurrent weights takes them (``with_skip(LSTMCell)``,
``Recurrent(..., skip_steps=d)``, ``--skip-steps d``): the output d steps back
joins the input projection of every gate, then the cell's own step runs::

    xp'_t = xp_t + W_skip h_{t-d}          (B, G*H): h_{t-d} enters every gate as one more input
    h_t, s_t = cell.recur(xp'_t, s_{t-1})   the cell's own equations (LSTM, GRU, RNN, ...)

so for the vanilla RNN h_t = tanh(W_ih x_t + W_hh h_{t-1} + W_skip h_{t-d} + b),
and for the GRU h_{t-d} is read as the input is (the reset gate does not scale
it). ``weight_skip`` (G*H, H) is initialised as ``weight_hh`` is (per gate
block, ``recurrent_init``), so the long path carries gradient from the start.

State: the cell's own state ``(h_{t-1}[, c_{t-1}])`` followed by the d - 1
outputs before h_{t-1}: ``(h_{t-2}, ..., h_{t-d})``, each (B, H), zero at the
start (h_k = 0 for k < 0). A state carried from one call to the next (a
language model's truncated BPTT, generation one token at a time) carries
them, so chunked runs equal one run. The skip enters the cell's ``combine``
(and ``activate``), so every loop that calls them (unroll's taped steps,
generation's :class:`rnnkit.models.stepping.Stepper`, the diagnostics'
recording) runs it, with a weight-dropped or noisy W_hh too. The explicit
engine only, on unroll's steps: the layer nodes' loops and torch's fused
kernels have no input for h_{t-d}.
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.kernels import gemm
from rnnkit.kernels.cell import Cell, State, init_blocks

_CLASSES: dict[type[Cell], type[Cell]] = {}


class _Skip:
    """What :func:`with_skip` adds to a cell class (its first base)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, skip_steps: int = 2, **options):
        if skip_steps < 2:
            raise ValueError(f"{type(self).__name__}: skip_steps must be >= 2 (1 is the ordinary recurrence), "
                             f"got {skip_steps}")
        self.skip_steps = skip_steps
        super().__init__(input_size, hidden_size, bias, **options)
        self.own_state_size = type(self).state_size  # the cell's own: (h,) or (h, c)
        self.state_size = self.own_state_size + skip_steps - 1  # and h_{t-2} .. h_{t-d}
        self.weight_skip = nn.Parameter(self.weight_hh.new_empty(self.weight_hh.shape))  # (G*H, H)
        init_blocks(self.weight_skip, self.recurrent_init, hidden_size)

    @classmethod
    def engines(cls) -> tuple[str, ...]:
        return ("explicit",)

    def fused_kernel(self):
        return None

    def layer(self, x, state, lengths, weight_hh):
        return None  # the nodes' loops have no skip: unroll's plain loop runs

    def step_kernel(self, batch_size: int):
        return None  # the kernels' steps have no skip

    def skipped(self, xp: Tensor, state: State) -> Tensor:
        """xp (B, G*H) plus W_skip h_{t-d}, h_{t-d} being the last tensor of ``state``."""
        return xp + gemm.linear(state[-1], self.weight_skip)

    def shifted(self, own: State, state: State) -> State:
        """The new state: the cell's own new state ``own``, then h_{t-1} .. h_{t-d+1}."""
        return (*own, state[0], *state[self.own_state_size:-1])

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        h, own = super().combine(self.skipped(xp, state), hp, state[:self.own_state_size])
        return h, self.shifted(own, state)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        return super().gates(self.skipped(xp, state), hp, state[:self.own_state_size])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", skip_steps={self.skip_steps}"


def _activate(self, pre: Tensor, state: State) -> tuple[Tensor, State]:
    """The gate equations from pre = xp + hp (B, G*H), the skip added."""
    h, own = super(_Skip, self).activate(self.skipped(pre, state), state[:self.own_state_size])
    return h, self.shifted(own, state)


def _combine_summed(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
    """The step of a cell that reads xp and hp only as their sum: its ``activate``, the skip added there once."""
    return self.activate(xp + hp, state)


def with_skip(cls: type[Cell]) -> type[Cell]:
    """``cls`` with skip connections through time (the module docstring); its constructor
    takes ``skip_steps`` (d >= 2) besides ``cls``'s arguments."""
    if not cls.hidden_weights:
        raise ValueError(f"{cls.__name__} has no recurrent weights, so no recurrence to skip along")
    if cls not in _CLASSES:
        # a cell that reads its two projections only as their sum gets the skip in that sum too
        own = {"activate": _activate, "combine": _combine_summed} if hasattr(cls, "activate") else {}
        skipping = type(f"Skip{cls.__name__}", (_Skip, cls), {"name": "", **own})  # "": not a cell of its own
        skipping.name = cls.name
        _CLASSES[cls] = skipping
    return _CLASSES[cls]
