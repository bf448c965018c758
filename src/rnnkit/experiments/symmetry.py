"""Symmetry: hidden units that start identical stay identical under gradient
descent, so a layer of H of them learns what one unit can; random
initialisation breaks the symmetry.

If units j and k have the same incoming and outgoing weights, they compute
the same activation at every step, so the loss's gradient is the same for
both (swapping them changes nothing), and a gradient step keeps them equal.
The experiment trains two vanilla-RNN character models of 32 units on the
same text with plain SGD, in float64: one whose units all start with the
same weights (each row of W_xh and W_hh, each column of W_hy, and the
biases constant across units), one from rnnkit's random initialisation. It
prints, after each model's steps, the largest difference between two units'
weights and the training loss; the plot draws the losses.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.experiments.corpus import characters, windows
from rnnkit.experiments.table import Table
from rnnkit.models import LanguageModel

HIDDEN, SEQ, BATCH, LR = 32, 32, 16, 0.3


def spread(model: LanguageModel) -> float:
    """The largest difference between two hidden units' weights (rows of W_ih, W_hh, the biases;
    columns of the output layer)."""
    cell = model.rnn.cells[0]
    per_unit = torch.cat([cell.weight_ih, cell.weight_hh, cell.bias_ih[:, None], cell.bias_hh[:, None],
                          model.head.weight.t()], dim=1)  # (H, ...): a row a unit
    return float((per_unit - per_unit[:1]).abs().max().detach())


def train(symmetric: bool, steps: int, seed: int = 0) -> tuple[list[float], float]:
    """Losses of ``steps`` SGD steps and the units' spread at the end."""
    vocab_size, ids = characters()
    torch.manual_seed(seed)
    model = LanguageModel(vocab_size, cell="rnn", hidden_size=HIDDEN, num_layers=1, embedding_dim=0,
                          dropout=0.0, engine="explicit").double()
    if symmetric:
        cell = model.rnn.cells[0]
        with torch.no_grad():
            for p in (cell.weight_ih, cell.bias_ih, cell.bias_hh):
                p.copy_(p[:1].expand_as(p))  # every unit's incoming weights those of unit 0
            cell.weight_hh.fill_(float(cell.weight_hh[0, 0]))  # each unit hears every other alike
            model.head.weight.copy_(model.head.weight[:, :1].expand_as(model.head.weight))  # and speaks alike
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    losses = []
    for _, batch in zip(range(steps), windows(ids, BATCH, SEQ, seed)):
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, spread(model)


def run(quick: bool = False):
    """(Table, figure)."""
    from matplotlib.figure import Figure

    steps = 30 if quick else 600
    results = {name: train(name == "identical", steps) for name in ("identical", "random")}
    table = Table(("initialisation", "steps", "largest difference between two units' weights",
                   "training loss, last 10 steps"),
                  [(name, steps, gap, float(np.mean(losses[-10:]))) for name, (losses, gap) in results.items()],
                  ("{}", "{}", "{:.1e}", "{:.3f}"))
    fig = Figure(figsize=(6, 3.8), dpi=100)
    ax = fig.subplots()
    for name, (losses, _) in results.items():
        ax.plot(losses, label=f"{name} units", linewidth=1)
    ax.set(xlabel="SGD step", ylabel="loss (nats/char)", title=f"{HIDDEN} vanilla RNN units, identical or random")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return table, fig
