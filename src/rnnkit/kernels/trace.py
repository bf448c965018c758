"""Recording every step of every explicit layer, for diagnostics.

Inside :func:`recording`, :func:`rnnkit.kernels.engine.run_layer` runs each
layer through :func:`traced` instead of its fast paths: the plain time loop
of ``cell.recur``, one step at a time, which keeps what the fast paths fold
away (a step called alone, as a decoder steps, is recorded as a layer call
of one step). Per step t it records

    xp_t = x_t W_ih^T + b_ih                   (B, G*H)  the input's share of the gates
    hp_t = h_{t-1} W_hh^T + b_hh               (B, G*H)  the recurrent share (None: a cell without W_hh)
    s_{t-1}, s_t                               the states before and after, (h,) or (h, c), (B, H) each

The recorded states are nodes of the autograd graph: the gradient of a loss
with respect to ``s_t[0]`` is dL/dh_t, the whole gradient that reaches step
t's hidden state, through the outputs and through every later step. The
arithmetic is the cell's own equations, so the loss is the one the model
computes on any engine (to rounding).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnkit.kernels import gemm
from rnnkit.kernels.cell import Cell, State, length_mask


@dataclass
class Step:
    """One recorded step: ``xp`` (B, G*H), ``hp`` (B, G*H) or None for a cell without W_hh, and the states
    ``before`` and ``after`` the step, (h,) or (h, c), (B, H) each."""

    xp: Tensor  # (B, G*H)
    hp: Tensor | None  # (B, G*H)
    before: State  # (B, H) each
    after: State  # (B, H) each


@dataclass
class LayerTrace:
    """The steps of one layer and direction over one batch, in the order the cell read them."""

    cell: Cell
    lengths: Tensor | None  # (B,), or None when no sequence is padded
    steps: list[Step] = field(default_factory=list)


_traces: list[LayerTrace] | None = None


def active() -> bool:
    """Whether a :func:`recording` block is open."""
    return _traces is not None


@contextmanager
def recording():
    """Inside the block, every explicit layer runs :func:`traced`; yields the
    list that receives a :class:`LayerTrace` per layer call, in call order."""
    global _traces
    outer, _traces = _traces, []
    Cell.recorder = _one_step
    try:
        yield _traces
    finally:
        _traces = outer
        Cell.recorder = None if outer is None else _one_step


def _one_step(cell: Cell, x: Tensor, state: State) -> tuple[Tensor, State]:
    """A step called alone (``cell(x_t, state)``, as a decoder steps), recorded as a layer call of one step."""
    outputs, state = traced(cell, x.unsqueeze(1), state, None, None)
    return outputs[:, 0], state


def traced(cell: Cell, x: Tensor, state: State, lengths: Tensor | None,
           weight_hh: Tensor | None) -> tuple[Tensor, State]:
    """:func:`rnnkit.kernels.unroll.unroll`'s contract on the plain loop, recording
    each step: x (B, T, I) from ``state`` -> (outputs (B, T, H), final state)."""
    plain = type(cell).recur is Cell.recur  # hp_t = h W_hh^T + b_hh, then combine
    weight = cell.weight_hh if weight_hh is None else weight_hh
    trace = LayerTrace(cell, lengths)
    _traces.append(trace)
    mask = None if lengths is None else length_mask(lengths, x.shape[1]).unsqueeze(-1)  # (B, T, 1)
    xp = cell.project_input(x)  # (B, T, G*H)
    outputs = []
    for t, xp_t in enumerate(xp.unbind(1)):
        if plain:
            hp = gemm.linear(state[0], weight, cell.bias_hh)
            h, new = cell.combine(xp_t, hp, state)
        else:
            hp = None
            h, new = cell.recur(xp_t, state)
        trace.steps.append(Step(xp_t, hp, state, new))
        if mask is not None:
            m = mask[:, t]  # (B, 1)
            new = tuple(n.where(m, s) for n, s in zip(new, state))
            h = h * m
        state = new
        outputs.append(h)
    return torch.stack(outputs, dim=1), state
