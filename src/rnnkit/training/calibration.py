"""Calibrated forecast intervals (``--calibrate validation``, Kuleshov et al. 2018): after
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

``--calibrate rolling`` starts from those scales and moves them as the values
arrive (:func:`rnnkit.training.forecasting.track_spread`): ``eval`` over the
errors of every origin from the validation part's first (the test part's as
they come; ``eval RUN PATH``: from the file's first origin), ``predict`` over
those of the input's own observed rows
(:func:`rolling_spread`). ``eval`` and ``predict`` take ``--calibrate`` to
score or forecast one run each way (:func:`calibration_of`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.data.forecast import transform_values
from rnnkit.errors import ConfigError
from rnnkit.training.forecasting import apply_spread, covered, paths_in_units, spread_scale, tracked_scales
from rnnkit.training.runs import BEST, load_tensors, save_tensors

CALIBRATIONS = ("none", "validation", "rolling")  # --calibrate
ROLLING_ORIGINS = 500  # predict --calibrate rolling: the errors of at most this many origins before the forecast


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
    values = paths_in_units(model, scaler, data.z, data.covariates, data.series.values, origins, data.config.seq_len,
                            horizon, num_samples, seed)  # (N, O, H, C)
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


def calibration_of(run, doc, request, samples: int) -> tuple[str, np.ndarray | None]:
    """(the calibration ``eval`` or ``predict`` applies: ``request.calibrate`` or the run's ``--calibrate``;
    the best checkpoint's validation scales (H, C) or None). A run's own ``validation`` without scales (no
    validation part, a run of an earlier rnnkit) forecasts with the spread as sampled; asked for by the
    flag, it is refused, as is any calibration of a point forecast (``samples`` 1)."""
    asked = getattr(request, "calibrate", None)
    if samples < 2:
        if asked not in (None, "none"):
            raise ConfigError(f"--calibrate {asked} needs a --likelihood gaussian run; {run} forecasts one point "
                              f"path (squared error), with no spread to scale: drop it")
        return "none", None
    mode = asked or doc.train.calibrate
    spread = None if mode == "none" else checkpoint_spread(doc.folder)
    if asked == "validation" and spread is None:
        raise ConfigError(f"--calibrate validation: the best checkpoint of {run} keeps no validation scales "
                          f"(trained with --calibrate none, or too short a validation part); use --calibrate none "
                          f"or rolling")
    return ("none" if mode == "validation" and spread is None else mode), spread


def calibration_said(mode: str, spread, horizon: int, rate: float) -> str:
    """What ``eval``'s first line says of the calibration."""
    if mode == "validation":
        return f", spread calibrated on validation ({describe_spread(spread, horizon)})"
    if mode == "rolling":
        start = "the spread as sampled" if spread is None else f"validation's {describe_spread(spread, horizon)}"
        return f", spread recalibrated as the values arrive (rolling, rate {rate:g}, from {start})"
    return ""


def rolling_spread(model, scaler, z: np.ndarray, covariates: np.ndarray, observed: np.ndarray, seq_len: int,
                   paths: np.ndarray, spread, rate: float) -> np.ndarray | None:
    """(H, C) the rolling scales of a forecast from the end of ``observed`` (n, C) (``z``: its normalised
    rows; ``covariates``: known inputs through the forecast's steps), its paths (N, 1, H, C) in the series'
    units: tracked from ``spread`` (None: 1) over the errors of forecasts from the up to
    :data:`ROLLING_ORIGINS` origins before it, each step's once its target is observed."""
    n, horizon = len(observed), paths.shape[-2]
    before = np.arange(max(seq_len, n - ROLLING_ORIGINS), n)  # origins whose targets are (partly) observed
    if not len(before):
        return spread
    earlier = paths_in_units(model, scaler, z, covariates, observed, before, seq_len, horizon, paths.shape[0], 1)
    index = np.append(before, n)[:, None] + np.arange(horizon)  # (O + 1, H): each origin's targets
    known = np.where((index < n)[..., None], observed[np.minimum(index, n - 1)], np.nan)  # (O + 1, H, C)
    scales = tracked_scales(np.concatenate([earlier, paths], axis=1), known, spread, rate, scaler.transform)
    return scales[-1]  # the forecast's, from every error observed before it
