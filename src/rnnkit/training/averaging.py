"""An exponential moving average of the weights (Polyak averaging), which
validation, the best checkpoint and the test read in place of the weights
the optimizer holds (``--weight-average DECAY``).

After every step t (1, 2, ...) each parameter's average moves towards it::

    d_t   = min(DECAY, (1 + t) / (10 + t))      # a short memory at first, as TensorFlow's
    avg_t = d_t * avg_(t-1) + (1 - d_t) * w_t    #   ExponentialMovingAverage with num_updates

so the average spans about 1 / (1 - DECAY) of the last steps once t is large
and is not dragged back to the initial weights early on. Training itself goes
on from the optimizer's weights ``w``; the average only changes what is
evaluated and kept. On small labelled sets the best checkpoint's choice by a
noisy validation split and the last steps' noise both matter; the average
smooths over them (Polyak & Juditsky 1992; Izmailov et al. 2018 for the
weights of a late phase of training).

Each average is the parameter's optimizer state ``weight_average``, so
last.safetensors keeps it with the rest of the optimizer (``optim.<pid>.
weight_average``) and a resumed run continues the same average.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

KEY = "weight_average"  # the optimizer state of each parameter that holds its average


def update_average(optimizer: torch.optim.Optimizer, decay: float, step: int) -> None:
    """Move every parameter's average towards its weights after step ``step`` (counted from 1). A
    parameter that has not been stepped yet (frozen: no gradient) has none: its weights are their own
    average, and an optimizer that sets up its state at a parameter's first step (Adam) finds it empty."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state[p]
                if KEY in state:
                    state[KEY].lerp_(p, 1.0 - d)
                elif p.grad is not None:
                    state[KEY] = p.detach().clone()


@contextlib.contextmanager
def averaged_weights(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Inside the block the model holds the averages (where there are any: none before the first
    step), then its own weights again."""
    params = [p for group in optimizer.param_groups for p in group["params"] if KEY in optimizer.state[p]]
    if not params:
        yield
        return
    kept = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.copy_(optimizer.state[p][KEY])
    try:
        yield
    finally:
        with torch.no_grad():
            for p, w in zip(params, kept):
                p.copy_(w)


def averaging(decay: float):
    """The trainer's callback that updates the averages after each step (none when ``decay`` is 0)."""
    if not decay:
        return None

    def callback(trainer) -> None:
        if not trainer.progress.nonfinite_in_a_row:  # a step skipped for a NaN changed no weight
            update_average(trainer.optimizer, decay, trainer.step)
    return callback
