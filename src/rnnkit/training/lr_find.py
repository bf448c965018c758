"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for
Training Neural Networks", section 3.3): train for a few hundred steps while
the learning rate rises exponentially,

    lr_s = start (end / start)^(s / (N - 1)),   s = 0 .. N - 1

and record the loss at each step. The loss stays flat while the rate is too
small to matter, falls once it is large enough to learn, and blows up once
it is too large. The test stops once an exponential moving average of the
loss (β = 0.9, bias-corrected: m_s / (1 - β^(s+1))) is 4 times its minimum,
or a loss is not finite. The curve is then smoothed without lag, by a
moving average centred on each step (over 5 % of the steps, 5 at least; a
causal average trails the falling loss by a decade of rates at β = 0.98),
and the suggested rate is the one at its lowest point divided by 10: as
large as still learns fast, with a margin before the blow-up.

It runs rnnkit's Trainer itself, on the run's model, data and optimizer
settings, with the rate set each step; the weights it leaves are spoilt by
the large rates, so it trains in a temporary folder and keeps only the
curve.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.config import TrainConfig
from rnnkit.training.trainer import Trainer

BETA, DIVERGED = 0.9, 4.0
# the settings the test sets itself: each of these flags is refused by `rnnkit lr-find`
FIXED = ("lr", "lr_schedule", "warmup_steps", "min_lr_ratio", "lr_decay", "lr_decay_every", "lr_decay_start",
         "max_steps", "max_epochs", "time_limit", "eval_every", "log_every", "save_every", "patience",
         "diagnostics_every", "sample_length", "on_nonfinite", "eval_streams", "log", "best_by", "weight_average")


@dataclass
class RangeTest:
    """A learning-rate range test's record: the rate ``lrs`` and training ``losses`` of each step, and why
    it ``stopped`` (end, diverged or interrupted)."""

    lrs: list[float] = field(default_factory=list)  # the rate of each step
    losses: list[float] = field(default_factory=list)  # its training loss
    stopped: str = "end"  # end (all steps), diverged, or interrupted

    @property
    def smoothed(self) -> list[float]:
        """The losses averaged over a window centred on each step (narrower at the ends)."""
        half = max(5, len(self.losses) // 20) // 2
        return [sum(w) / len(w) for w in (self.losses[max(0, s - half):s + half + 1] for s in range(len(self.losses)))]

    @property
    def lowest(self) -> int:
        """The step of the lowest smoothed loss."""
        smoothed = self.smoothed
        return min(range(len(smoothed)), key=smoothed.__getitem__)

    @property
    def suggestion(self) -> float:
        """The rate at the lowest smoothed loss, divided by 10."""
        return self.lrs[self.lowest] / 10

    def to_dict(self) -> dict:
        """The record with its smoothed losses and suggestion, for ``--json`` and the run folder."""
        return {"lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed, "stopped": self.stopped,
                "suggestion": self.suggestion}


def range_test(model, data, config: TrainConfig, start_lr: float, end_lr: float, steps: int, *, task) -> RangeTest:
    """The test on ``model`` and ``data`` of ``task`` (:class:`rnnkit.tasks.Task`) with ``config``'s
    optimizer and other settings."""
    config = dataclasses.replace(
        config, lr=start_lr, lr_schedule="constant", warmup_steps=0, max_steps=steps + 1, max_epochs=None,
        time_limit=None, eval_every=steps + 2, log_every=1, save_every=None, patience=None, diagnostics_every=None,
        on_nonfinite="skip", log="jsonl")  # stopped after `steps`, before any evaluation
    factor = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    test, average, lowest = RangeTest(), 0.0, math.inf

    def after_step(trainer: Trainer) -> None:
        nonlocal average, lowest
        row = trainer.rows[-1] if trainer.rows else {}
        loss = row["loss"] if row.get("step") == trainer.step and "loss" in row else math.nan  # NaN: skipped
        lr = start_lr * trainer.progress.lr_scale
        trainer.progress.lr_scale = factor ** trainer.step  # the next step's rate
        if not math.isfinite(loss):
            test.stopped = "diverged"
            trainer.request_stop()
            return
        test.lrs.append(lr)
        test.losses.append(loss)
        average = BETA * average + (1 - BETA) * loss
        running = average / (1 - BETA ** len(test.losses))
        lowest = min(lowest, running)
        if running > DIVERGED * lowest:
            test.stopped = "diverged"
            trainer.request_stop()
        elif trainer.step == steps:
            trainer.request_stop()

    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(model, data, config, out=Path(folder) / "range-test", callbacks=[after_step], quiet=True,
                          task=task)
        trainer.fit()
    if test.stopped == "end" and len(test.losses) < steps:  # Ctrl-C
        test.stopped = "interrupted"
    return test


def range_test_figure(test: RangeTest, title: str = ""):
    """A matplotlib Figure: loss and smoothed loss against the rate (log scale), the suggestion marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(test.lrs, test.losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    ax.plot(test.lrs, test.smoothed, color="tab:blue", linewidth=1.5, label="smoothed")
    ax.axvline(test.suggestion, color="tab:red", linestyle="--", label=f"suggested {test.suggestion:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title or "learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
