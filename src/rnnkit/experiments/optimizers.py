"""Optimizers compared on the same model and data: SGD, momentum, Nesterov,
AdaGrad, RMSProp, AdaDelta and Adam, each at the learning rate a small sweep
found best for it.

With g_t the gradient and η the rate (torch.optim's forms):

- SGD:      θ <- θ - η g
- momentum: v <- μ v + g,  θ <- θ - η v  (μ = 0.9)
- Nesterov: v <- μ v + g,  θ <- θ - η (g + μ v), the step taken from the
  look-ahead point
- AdaGrad:  s <- s + g²,  θ <- θ - η g / (√s + ε): each parameter's rate
  shrinks with the squared gradients it has seen
- RMSProp:  s <- α s + (1 - α) g²,  θ <- θ - η g / (√s + ε)  (α = 0.9):
  AdaGrad with a leaky sum, so the rate does not die out
- AdaDelta: s <- ρ s + (1 - ρ) g²,  Δ = √(u + ε) / √(s + ε) g,
  u <- ρ u + (1 - ρ) Δ²,  θ <- θ - η Δ  (ρ = 0.9, ε = 1e-6; Zeiler 2012):
  RMSProp whose rate is the running size of its own past steps; Zeiler's
  η = 1 lies low in its sweep (centred on 10): u starts at zero, so its
  first steps are about √ε / √s g, tiny, and a larger η wins in a short run
- Adam:     m <- β1 m + (1 - β1) g,  s <- β2 s + (1 - β2) g²,
  θ <- θ - η m̂ / (√ŝ + ε) with m̂, ŝ corrected for their zero start
  (β1 = 0.9, β2 = 0.999)

Comparing optimizers at one shared rate compares rates, not optimizers, so
each first gets a sweep: seven rates half a decade apart around its customary
one (from 10^-1.5 to 10^1.5 times it), a short run each, and the rate with the lowest validation loss after it
wins (a winner at the edge of its grid is marked in the table). Then each
trains with its rate for the same number of steps, evaluated every 50, with rnnkit's Trainer: a
128-unit LSTM character model of Python's argparse.py (the last tenth held
out), batches of 32 x 64, a constant rate, the gradient norm clipped to 5 for
all (a guard against explosions, not a limit on normal steps).

It prints each optimizer's sweep, its chosen rate, its validation loss
early on and at its best, and its time per step; the plot draws the training loss against steps and
against seconds.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import TrainingError
from rnnkit.experiments.corpus import python_source
from rnnkit.experiments.runs import train_on_text
from rnnkit.experiments.table import Table
from rnnkit.experiments.threads import one_thread

MODEL = dict(cell="lstm", hidden_size=128, num_layers=1, embedding_dim=32, dropout=0.0)
TRAIN = dict(lr_schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=5.0, log_every=10)
DATA = dict(batch_size=32, seq_len=64)
# the customary rate of each, the middle of its sweep
CUSTOMARY = {"sgd": 1.0, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.03, "rmsprop": 1e-3, "adadelta": 10.0,
             "adam": 3e-3}
GRID = tuple(10 ** (k / 2) for k in range(-3, 4))  # times the customary rate: 10^-1.5 to 10^1.5


def train(optimizer: str, lr: float, steps: int, every: int) -> tuple[list[dict], dict[int, float]]:
    """The training rows (step, loss, elapsed seconds) and the validation loss every ``every`` steps."""
    with one_thread():
        trainer = train_on_text(python_source(), MODEL, {**TRAIN, "optimizer": optimizer, "lr": lr,
                                                         "max_steps": steps, "eval_every": every}, DATA)
    return ([r for r in trainer.rows if "loss" in r],
            {r["step"]: r["val_loss"] for r in trainer.rows if "val_loss" in r})


def sweep(optimizer: str, steps: int, grid=GRID) -> dict[float, float]:
    """rate -> validation loss after ``steps`` (inf where training failed)."""
    losses = {}
    for factor in grid:
        lr = float(f"{CUSTOMARY[optimizer] * factor:.2g}")
        try:
            losses[lr] = train(optimizer, lr, steps, steps)[1].get(steps, np.inf)
        except TrainingError:  # the loss or the weights went non-finite at this rate
            losses[lr] = np.inf
    return losses


def run(quick: bool = False):
    """(Table, figure): a row an optimizer, with its sweep {rate: validation loss},
    (its rate, whether that lies at the sweep's edge), its validation losses at
    steps 50, 100 and 300 (those within the run), (the best of them, its step)
    and its seconds per 100 steps."""
    from matplotlib.figure import Figure

    names, grid, sweep_steps, steps = ((("sgd", "adam"), GRID[2:5], 60, 150) if quick
                                       else (tuple(CUSTOMARY), GRID, 200, 1000))
    marks = [m for m in (50, 100, 300) if m < steps]  # how fast each gets going
    results, rows = {}, []
    for name in names:
        tried = sweep(name, sweep_steps, grid)
        best = min(tried, key=tried.get)
        train_rows, vals = train(name, best, steps, 50)
        results[name] = train_rows
        lowest = min(vals, key=vals.get)
        rows.append((name, tried, (best, best in (min(tried), max(tried))), *(vals[m] for m in marks),
                     (vals[lowest], lowest), 100 * train_rows[-1]["elapsed"] / train_rows[-1]["step"]))
    table = Table(("optimizer", "sweep: rate -> validation loss", "rate",
                   *(f"validation loss at step {m}" for m in marks), "best (step)", "seconds per 100 steps"), rows,
                  ("{}", lambda tried: ", ".join(f"{lr:g}: {loss:.2f}" for lr, loss in tried.items()),
                   lambda rate: f"{rate[0]:g}" + (" (grid edge)" if rate[1] else ""), *("{:.3f}",) * len(marks),
                   "{:.3f} ({})", "{:.2f}"),
                  f"sweep: {sweep_steps} steps a rate; then {steps} steps at the chosen rate, evaluated every 50; "
                  "losses in nats/char")
    fig = Figure(figsize=(10, 3.8), dpi=100)
    step_ax, time_ax = fig.subplots(1, 2)
    for name, curve in results.items():
        step_ax.plot([r["step"] for r in curve], [r["loss"] for r in curve], label=name, linewidth=1)
        time_ax.plot([r["elapsed"] for r in curve], [r["loss"] for r in curve], label=name, linewidth=1)
    step_ax.set(xlabel="step", ylabel="training loss (nats/char)", title="against steps")
    time_ax.set(xlabel="seconds of training", ylabel="training loss (nats/char)", title="against time")
    for ax in (step_ax, time_ax):
        ax.set(ylim=(0.3, 3.5))  # SGD's first steps at its high rate go past 10
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return table, fig
