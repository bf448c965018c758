"""A training step whose loss or gradient norm is not finite (NaN or
infinite): what ``--on-nonfinite`` makes of it. ``stop`` ends training with
the step named; ``skip`` leaves the weights as they were; ``lower_lr`` skips
and halves the learning rate from then on. Weights that are no longer
finite themselves end training whatever the policy (no skipping brings them
back), and so do :data:`MAX_IN_A_ROW` skipped steps in a row."""

from __future__ import annotations

from rnnkit.errors import TrainingError

MAX_IN_A_ROW = 20


def skip_step(policy: str, progress, what: str, value: float, step: int, weights_finite: bool, kept: str) -> str:
    """Count step ``step``, whose ``what`` is ``value``, as skipped in ``progress`` (a
    :class:`rnnkit.training.checkpoint.Progress`) and apply ``policy``; a TrainingError where
    training must end (``kept``: where the last checkpoint is). Returns the warning to print."""
    problem = f"{what} {value}"
    progress.skipped_steps += 1
    progress.nonfinite_in_a_row += 1
    if not weights_finite:
        raise TrainingError(f"the weights are no longer finite at step {step} ({problem}); {kept}: "
                            f"resume from it with a lower --lr")
    if policy == "stop":
        raise TrainingError(f"the {what} became {value} at step {step}; lower --lr, set "
                            f"--clip-norm, or pass --on-nonfinite skip; {kept}")
    if progress.nonfinite_in_a_row >= MAX_IN_A_ROW:
        raise TrainingError(f"{progress.nonfinite_in_a_row} steps in a row up to step {step} had a non-finite loss "
                            f"or gradient; lower --lr; {kept}")
    if policy == "lower_lr":
        progress.lr_scale /= 2
    return (f"step {step}: {problem}, step skipped ({progress.skipped_steps} so far)"
            + (f"; learning rate now x{progress.lr_scale:g}" if policy == "lower_lr" else ""))
