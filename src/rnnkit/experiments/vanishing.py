"""Vanishing gradients: a vanilla RNN cannot learn what it must carry over
more than a few steps; an LSTM and a GRU can.

The adding problem (Hochreiter & Schmidhuber 1997): each step reads a value
v_t ~ U(0, 1) and a marker m_t ∈ {0, 1}; two steps are marked, one among
the first tenth of the sequence and one in its second half, and after the
last step the network must answer their sum, y = Σ_t m_t v_t. The first
marked value has to be kept for at least T/2 steps, T the sequence length
(the distance), while the other values are noise. Answering 1 every time
scores a mean squared error of Var(y) = 2/12 ≈ 0.167.

The gradient that would teach the network to keep v_a reaches step a
through the product of T - a step Jacobians. A tanh RNN's product shrinks
geometrically (``rnnkit experiment linear``) and the signal is lost past a
few dozen steps; the LSTM's cell path c_t = f_t ⊙ c_{t-1} + ... and the
GRU's h_t = (1 - z_t) ⊙ h_{t-1} + ... carry it with factors near 1.

The experiment trains each cell (64 units, Adam at 0.01, gradient norm
clipped to 1, batches of 64) on sequences of each length, for a few seeds,
and counts a run as solved when its mean squared error on 1,000 held-out
sequences falls below 0.01 (a sixteenth of the baseline) within the step
budget. It prints, per cell and distance, the share of seeds that solved
it and the median steps they needed; the plot draws the success rate
against the distance.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.experiments.table import Table
from rnnkit.experiments.threads import one_thread
from rnnkit.layers import Recurrent

HIDDEN, BATCH, LR, CLIP = 64, 64, 1e-2, 1.0
SOLVED, CHECK_EVERY, HELD_OUT = 0.01, 100, 1000
CELLS = ("rnn", "lstm", "gru")


def adding_batch(rng: np.random.Generator, batch: int, length: int) -> tuple[Tensor, Tensor]:
    """x (B, T, 2): values and markers; y (B,): the sum of the two marked values."""
    values = torch.from_numpy(rng.random((batch, length))).float()  # (B, T)
    markers = torch.zeros(batch, length)
    rows = np.arange(batch)
    markers[rows, rng.integers(0, max(1, length // 10), batch)] = 1.0
    markers[rows, rng.integers(length // 2, length, batch)] = 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(1)


class Adder(nn.Module):
    """A recurrent layer read out once, after the last step: (B, T, 2) -> (B,)."""

    def __init__(self, cell: str):
        super().__init__()
        self.rnn = Recurrent(cell, 2, HIDDEN)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, 2) -> the predicted sum (B,), read out after the last step."""
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1]).squeeze(1)


def steps_to_solve(cell: str, length: int, budget: int, seed: int) -> int | None:
    """The steps after which the held-out error fell below SOLVED, checked every
    CHECK_EVERY steps; None: not within ``budget``."""
    torch.manual_seed(seed)
    model = Adder(cell)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x_test, y_test = adding_batch(np.random.default_rng(10_000 + seed), HELD_OUT, length)
    rng = np.random.default_rng(seed)
    for step in range(1, budget + 1):
        x, y = adding_batch(rng, BATCH, length)
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        if step % CHECK_EVERY == 0:
            with torch.no_grad():
                if ((model(x_test) - y_test) ** 2).mean().item() < SOLVED:
                    return step
    return None


def solved_text(steps: tuple[int | None, ...]) -> str:
    """'2/3 (400)': the seeds that solved it, of all, and the median steps they needed."""
    done = [s for s in steps if s is not None]
    return f"{len(done)}/{len(steps)}" + (f" ({int(np.median(done))})" if done else "")


def run(quick: bool = False):
    """(Table, figure): a row a cell, in each length's column the steps each seed
    needed (None: not solved)."""
    from matplotlib.figure import Figure

    if quick:
        cells, lengths, seeds, budget = ("rnn", "lstm"), (10, 50), (0,), 1000
    else:
        cells, lengths, seeds, budget = CELLS, (5, 10, 20, 50, 100, 200), (0, 1, 2), 2000
    with one_thread():
        solved = {(cell, length): [steps_to_solve(cell, length, budget, seed) for seed in seeds]
                  for cell in cells for length in lengths}
    rows = [(cell, *(tuple(solved[cell, length]) for length in lengths)) for cell in cells]
    note = (f"solved: held-out MSE < {SOLVED} within {budget} steps (answering 1 always scores 0.167); "
            "in brackets the median steps the solved seeds needed")
    table = Table(("cell", *(f"T = {n}" for n in lengths)), rows, ("{}", *(solved_text,) * len(lengths)), note)
    fig = Figure(figsize=(10, 3.8), dpi=100)
    rate_ax, steps_ax = fig.subplots(1, 2)
    for cell, marker, nudge in zip(cells, "os^", (0.0, 0.02, -0.02)):  # nudged apart where the rates coincide
        rate = [np.mean([s is not None for s in solved[cell, n]]) + nudge for n in lengths]
        rate_ax.plot(lengths, rate, marker=marker, label=cell)
        median = [np.median([s for s in solved[cell, n] if s is not None] or [np.nan]) for n in lengths]
        steps_ax.plot(lengths, median, marker=marker, label=cell)
    rate_ax.set(xscale="log", xlabel="sequence length T (distance to remember ≥ T/2)", ylabel="share of seeds solved",
                ylim=(-0.05, 1.05), title="the adding problem: solved")
    steps_ax.set(xscale="log", xlabel="sequence length T", ylabel="median steps to solve",
                 title="steps the solved seeds needed")
    for ax in (rate_ax, steps_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return table, fig
