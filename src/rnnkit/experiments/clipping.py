"""Gradient clipping on and off, on a recurrence whose gradients explode.

A relu RNN's step Jacobian is diag(1[a_t > 0]) W_hh: no saturation bounds
it, and with W_hh orthogonal (every singular value 1) the products of many
steps can grow along the directions the active units share. Plain SGD then
meets a gradient now and then that is thousands of times the usual one, and
one step of it throws the weights where the loss is no longer finite.
Clipping the gradient's norm (Pascanu, Mikolov & Bengio 2013),

    g <- g · min(1, c / ||g||),

keeps the step's direction and bounds its length, so training goes on.

The experiment trains the same relu-RNN character model (64 units, W_hh a
random orthogonal matrix, SGD at 0.1, batches of 16 x 64 characters of
Python's argparse.py) twice, without clipping and with ||g|| clipped to 1,
and prints how many steps each lasted, the largest gradient norm and the
last losses; the plot draws the losses and the gradient norms.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnkit.experiments.corpus import characters, windows
from rnnkit.experiments.table import Table
from rnnkit.models import LanguageModel

HIDDEN, SEQ, BATCH, LR, CLIP = 64, 64, 16, 0.1, 1.0


def train(clip: float | None, steps: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """Losses and gradient norms (before clipping) of up to ``steps`` SGD steps; it stops
    at the first loss that is not finite."""
    vocab_size, ids = characters()
    torch.manual_seed(seed)
    model = LanguageModel(vocab_size, cell="rnn", nonlinearity="relu", hidden_size=HIDDEN, num_layers=1,
                          embedding_dim=0, dropout=0.0)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(HIDDEN, HIDDEN))
        model.rnn.cells[0].weight_hh.copy_(q)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    losses, norms = [], []
    for _, batch in zip(range(steps), windows(ids, BATCH, SEQ, seed)):
        loss, _ = model.loss(batch)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        optimizer.zero_grad()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf).item())
        optimizer.step()
    return losses, norms


def run(quick: bool = False):
    """(Table, figure)."""
    from matplotlib.figure import Figure

    steps = 60 if quick else 300
    results = {name: train(clip, steps) for name, clip in (("off", None), (f"norm {CLIP:g}", CLIP))}
    rows = []
    for name, (losses, norms) in results.items():
        last = losses[-1] if not math.isfinite(losses[-1]) else float(np.mean(losses[-10:]))
        rows.append((name, (len(losses), steps), max(norms), last))
    table = Table(("clipping", "steps", "largest gradient norm", "loss, last 10 steps"), rows,
                  ("{}", "{} of {}", "{:.2g}", "{:.3f}"))
    fig = Figure(figsize=(10, 3.8), dpi=100)
    loss_ax, norm_ax = fig.subplots(1, 2)
    for name, (losses, norms) in results.items():
        loss_ax.plot([x if math.isfinite(x) else np.nan for x in losses], label=f"clipping {name}", linewidth=1)
        norm_ax.plot(norms, label=f"clipping {name}", linewidth=1)
    loss_ax.set(xlabel="SGD step", ylabel="loss (nats/char)", title="relu RNN, W_hh orthogonal")
    norm_ax.set(xlabel="SGD step", ylabel="gradient norm (before clipping)", yscale="log", title="gradient norm")
    for ax in (loss_ax, norm_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return table, fig
