"""Regularisation on a small corpus: dropout, weight decay (L2), L1 and early
stopping, and what each does to the gap between training and validation loss.

A 256-unit LSTM character model has 290 k parameters; 27 kB of text is too
little to pin them down, so after a few epochs it learns the training text
by heart: its training loss keeps falling while the validation loss turns
and rises. Each regulariser trades some fit to the training text for less
of that gap:

- dropout (Srivastava et al. 2014; on the embeddings and before the output
  layer here): each unit is zeroed with probability p in training, so no
  unit can rely on another being there;
- L2 weight decay, λ Σ w² / 2 added to the loss (its gradient λ w, added by
  the optimizer): the weights shrink towards zero;
- L1, λ Σ |w| (subgradient λ sign(w)): small weights go to zero, a sparse
  model;
- early stopping: evaluate every few steps and stop after ``patience``
  evaluations without a better validation loss, keeping the best weights.

The experiment trains the same model on the first 30 kB of Python's
argparse.py (the last tenth held out) with rnnkit's Trainer (Adam at 3e-3,
constant rate, batches of 32 x 64), once with no regularisation and once
with each setting, for the same budget, and measures both losses in
evaluation mode (no dropout) every 100 steps. It prints each run's final
losses and their gap, and its best validation loss; the plot draws the
validation loss and the gap over training.
"""

from __future__ import annotations

import dataclasses

from rnnkit.experiments.corpus import python_source
from rnnkit.experiments.runs import train_on_text
from rnnkit.experiments.table import Table
from rnnkit.experiments.threads import one_thread

MODEL = dict(cell="lstm", hidden_size=256, num_layers=1, embedding_dim=32, dropout=0.0)
TRAIN = dict(optimizer="adam", lr=3e-3, lr_schedule="constant", warmup_steps=0, weight_decay=0.0)
DATA = dict(batch_size=32, seq_len=64)
# name -> (ModelConfig settings, TrainConfig settings)
SETTINGS = {"none": ({}, {}), "dropout 0.3": ({"dropout": 0.3}, {}), "dropout 0.5": ({"dropout": 0.5}, {}),
            "L2 1e-4": ({}, {"weight_decay": 1e-4}), "L2 1e-3": ({}, {"weight_decay": 1e-3}),
            "L1 1e-5": ({}, {"l1": 1e-5}), "L1 1e-4": ({}, {"l1": 1e-4}),
            "early stopping, patience 2": ({}, {"patience": 2})}
QUICK = ("none", "dropout 0.5", "early stopping, patience 2")


def train(setting: str, steps: int, every: int, chars: int) -> list[tuple[int, float, float]]:
    """(step, training loss, validation loss) every ``every`` steps of the run with
    ``setting`` on the first ``chars`` characters, both in evaluation mode: the
    validation loss the Trainer measures (and early stopping reads), the
    training split's measured beside it."""
    model, settings = SETTINGS[setting]
    train_losses = {}

    def measure(trainer) -> None:
        if trainer.step % every == 0:
            eight_streams = dataclasses.replace(trainer.cfg, eval_streams=8)
            train_losses[trainer.step] = trainer.task.validate(trainer.model, trainer.data, "train",
                                                               config=eight_streams)["loss"]

    with one_thread():
        trainer = train_on_text(python_source()[:chars], {**MODEL, **model},
                                {**TRAIN, "max_steps": steps, "eval_every": every, **settings}, DATA,
                                callbacks=(measure,))
    val_losses = {row["step"]: row["val_loss"] for row in trainer.rows if "val_loss" in row}
    return [(step, loss, val_losses[step]) for step, loss in sorted(train_losses.items())]


def run(quick: bool = False):
    """(Table, figure)."""
    from matplotlib.figure import Figure

    steps, every, chars = (200, 20, 8_000) if quick else (800, 100, 30_000)
    curves = {name: train(name, steps, every, chars) for name in (QUICK if quick else SETTINGS)}
    rows = []
    for name, curve in curves.items():
        step, train_loss, val_loss = curve[-1]
        best = min(curve, key=lambda point: point[2])
        rows.append((name, step, train_loss, val_loss, val_loss - train_loss, (best[2], best[0])))
    table = Table(("regularisation", "steps", "training loss", "validation loss", "gap",
                   "best validation loss (step)"), rows, ("{}", "{}", "{:.3f}", "{:.3f}", "{:.3f}", "{:.3f} ({})"),
                  f"losses in nats/char, in evaluation mode, on the first {chars:,} characters of argparse.py "
                  "(a tenth held out); early stopping keeps the weights of its best evaluation")
    fig = Figure(figsize=(10, 3.8), dpi=100)
    val_ax, gap_ax = fig.subplots(1, 2)
    for name, curve in curves.items():
        steps_at = [p[0] for p in curve]
        val_ax.plot(steps_at, [p[2] for p in curve], label=name, linewidth=1)
        gap_ax.plot(steps_at, [p[2] - p[1] for p in curve], label=name, linewidth=1)
    val_ax.set(xlabel="step", ylabel="validation loss (nats/char)", title="held-out text")
    gap_ax.set(xlabel="step", ylabel="validation - training loss", title="the gap")
    for ax in (val_ax, gap_ax):
        ax.grid(alpha=0.3)
    val_ax.legend(fontsize=7)
    fig.tight_layout()
    return table, fig
