"""Calibrated forecast intervals (``--calibrate``, Kuleshov et al. 2018): after
training, the spread of the best checkpoint's sampled paths is scaled one
horizon step at a time so that the central 80 % interval covers 80 % of the
validation part's rolling-origin forecasts (the scale: the 0.8-quantile of
how far each target lies from the median in units of the interval's half
width on its side; :func:`rnnkit.training.forecasting.spread_scale`). The
scales (H, C) go into the best checkpoint's metadata (``spread_scale``, with
the origins, the steps and the validation coverage before and after), which
``eval`` and ``predict`` read; a checkpoint without them (``--calibrate
false``, no validation part, a squared-error run, a run of an earlier
version) forecasts with the spread as sampled. A resumed run writes a new
best checkpoint without them and calibrates it again when it ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.data.forecast import transform_values
from rnnkit.training.forecasting import apply_spread, covered, forecast_windows, spread_scale
from rnnkit.training.runs import BEST, load_tensors, save_tensors


def calibrate_spread(model, data, horizon: int, num_samples: int, seed: int = 0) -> dict:
    """The spread scales (:func:`spread_scale`) of ``model``'s forecasts at steps 1..``horizon`` (fewer when
    the validation part is short) from every origin of ``data``'s validation part; {} without one.
    Returns ``spread_scale`` (H, C) as lists, the origins, the horizon and the coverage before and after."""
    val = data.val
    horizon = max(1, min(horizon, len(val) // 2))
    origins = np.arange(max(val.start, data.config.seq_len), val.stop - horizon + 1)
    if len(origins) < 2:
        return {}
    scaler = data.tokenizer
    paths = forecast_windows(model, data.z, data.covariates, origins, data.config.seq_len, horizon, num_samples, seed)
    values = scaler.to_values(paths, data.series.values[origins - 1])  # (N, O, H, C)
    truth = data.series.values[origins[:, None] + np.arange(horizon)]  # (O, H, C)
    g = scaler.transform  # the spread is scaled where the model is Gaussian: in g(y) (--transform)
    scale = spread_scale(transform_values(values, g), transform_values(truth, g))
    return {"spread_scale": scale.tolist(), "calibration_origins": len(origins), "calibration_horizon": horizon,
            "coverage_before": covered(values, truth),
            "coverage_after": covered(apply_spread(values, scale, g), truth)}



def calibrate_best(trainer, horizon: int, num_samples: int) -> str | None:
    """Calibrate the best checkpoint of a finished run of a Gaussian forecaster (``trainer``: the
    :class:`rnnkit.training.Trainer`) on its validation part and keep the scales in the checkpoint's
    metadata; the line that says so (None: nothing to calibrate)."""
    model, data, best = trainer.model, trainer.data, trainer.out / BEST
    if not (model.gaussian and len(data.val) and best.exists()):
        return None
    tensors, meta = load_tensors(best)
    current = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.load_state_dict(tensors)
    model.eval()
    try:
        found = calibrate_spread(model, data, horizon, num_samples, trainer.cfg.seed)
    finally:
        model.load_state_dict(current)
        model.train(was_training)
    if not found:
        return f"calibration: the validation part ({len(data.val)} steps) has too few origins; intervals as sampled"
    save_tensors(best, tensors, {**meta, **found})
    scale = np.asarray(found["spread_scale"])
    return (f"calibrated the 80 % interval on {found['calibration_origins']} validation origins, steps "
            f"1..{found['calibration_horizon']}: spread {describe_spread(scale, len(scale))} (step 1 "
            f"x{scale[0].mean():.2f}); validation coverage {found['coverage_before']:.1%} -> "
            f"{found['coverage_after']:.1%}")


def checkpoint_spread(run) -> np.ndarray | None:
    """The spread scales (H, C) the run's best checkpoint keeps, or None."""
    scale = load_tensors(Path(run) / BEST)[1].get("spread_scale")
    return None if scale is None else np.asarray(scale, dtype=np.float64)


def describe_spread(scale: np.ndarray, horizon: int) -> str:
    """"x1.31" or "x1.05..1.62": the scales of steps 1..``horizon``."""
    used = scale[:horizon]
    return f"x{used.min():.2f}" if used.min() == used.max() else f"x{used.min():.2f}..{used.max():.2f}"
