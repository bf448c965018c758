"""Running a model with every recurrent step recorded (:mod:`rnnkit.kernels.trace`),
and naming what was recorded: each layer and direction of each recurrent
layer of the model, as "encoder.layer 2 backward"."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.kernels import trace
from rnnkit.kernels.cell import Cell
from rnnkit.kernels.trace import Step
from rnnkit.layers.recurrent import Recurrent


@dataclass
class Recording:
    """One recurrent layer and direction's steps over a batch, in the order the cell read them
    (a backward direction reads the sequence from its end)."""

    name: str  # "rnn layer 1", "encoder.layer layer 2 backward", "cells.0"
    cell: Cell
    steps: list[Step]
    mask: Tensor  # (B, T): True where step t of sequence b is inside its length (in reading order)


def cells_of(model: nn.Module) -> dict[int, str]:
    """id(cell) -> a name for every recurrent cell in ``model``: its layer and direction
    in a recurrent layer ("encoder.layer layer 2 backward"), else its module's path
    ("cells.0", a decoder's cell stepped by the model)."""
    names = {}
    for name, module in model.named_modules():
        if isinstance(module, Recurrent):
            for k, cell in enumerate(module.cells):
                layer, direction = divmod(k, module.num_directions)
                names[id(cell)] = f"{name or 'rnn'} layer {layer + 1}" + (" backward" if direction else "")
    for name, module in model.named_modules():
        if isinstance(module, Cell) and id(module) not in names:
            names[id(module)] = name or "cell"
    return names


def has_cells(model: nn.Module) -> bool:
    """Whether ``model`` has recurrent cells to inspect (a tdnn classifier has none)."""
    return any(isinstance(m, Cell) for m in model.modules())


@contextmanager
def recorded(model: nn.Module):
    """Inside the block the model is in evaluation mode (no dropout) and its recurrent
    layers run on the explicit engine with every step recorded; yields the list of
    :class:`rnnkit.kernels.trace.LayerTrace` that the model's calls fill. The model's
    mode and its layers' engines are restored after."""
    if not has_cells(model):
        raise ValueError("this model has no recurrent layers (a tdnn encoder): there is no recurrence to inspect")
    layers = [m for m in model.modules() if isinstance(m, Recurrent)]
    engines, was_training = [m.engine for m in layers], model.training
    try:
        model.eval()
        for m in layers:
            m.engine = "explicit"
        with trace.recording() as traces:
            yield traces
    finally:
        model.train(was_training)
        for m, engine in zip(layers, engines):
            m.engine = engine


def recordings(model: nn.Module, traces: list) -> list[Recording]:
    """The traces of one forward pass grouped by layer and direction, in the model's order;
    a cell called several times (a decoder run a step at a time) has its calls' steps joined."""
    names = cells_of(model)
    grouped: dict[int, Recording] = {}
    for t in traces:
        B, T = t.steps[0].xp.shape[0], len(t.steps)
        device = t.steps[0].xp.device
        mask = (torch.ones(B, T, dtype=torch.bool, device=device) if t.lengths is None else
                torch.arange(T, device=device)[None, :] < t.lengths[:, None])
        r = grouped.get(id(t.cell))
        if r is None:
            grouped[id(t.cell)] = Recording(names[id(t.cell)], t.cell, list(t.steps), mask)
        else:
            r.steps += t.steps
            r.mask = torch.cat([r.mask, mask], dim=1)
    order = list(names)
    return sorted(grouped.values(), key=lambda r: order.index(id(r.cell)))
