"""Scoring forecasts: point errors (MAE, RMSE, MASE against the seasonal naive
forecast), the distribution's (CRPS from samples, quantile loss, the coverage of
the central 80 % interval), rolling-origin evaluation of a forecaster over a part
of a series, and the figure of a forecast.

For a target y and forecast samples X_1..X_N of it (one step of one channel):

    CRPS = E|X - y| - ½ E|X - X'|       (Gneiting and Raftery 2007), from the sorted samples
           = mean_i |x_i - y| - (1/N²) Σ_i (2i - N - 1) x_(i)
    pinball_q = max(q (y - x̂_q), (q - 1)(y - x̂_q)), x̂_q the samples' q-quantile
    MASE = MAE / mean_t |y_t - y_(t-m)|  over the training part (Hyndman and Koehler 2006)

Calibration (Kuleshov et al. 2018, "Accurate uncertainties for deep learning
using calibrated regression", here as one spread scale a horizon step, as
conformal forecasting widens its bands step by step): the sampled paths'
spread about their median m is scaled by s_(h,c),

    x' = m + s_(h,c) (x - m)
    s_(h,c) = the 0.8-quantile over validation origins of r,   r = (y - m) / (q_0.9 - m) if y >= m
                                                                   (m - y) / (m - q_0.1) otherwise

the smallest scale that puts a target inside the scaled central 80 % interval
[m + s (q_0.1 - m), m + s (q_0.9 - m)], so the scaled intervals cover 80 % of
the validation targets at each step (the median, and so MAE and MASE, stay).

Rolling recalibration (``--calibrate rolling``): a part later in time can be
unlike the validation part (sunspot cycles larger than any before, CO2's trend
beyond the training range), so the scale is moved as the values arrive, by
quantile tracking (Angelopoulos, Candès and Tibshirani 2023, "Conformal PID
control for time series prediction": an online subgradient step on the
pinball loss of the scale; the scale's form of the miscoverage update of
adaptive conformal inference, Gibbs and Candès 2021). With α = 0.2, the
rate γ (``--calibrate-rate``) and origins o = 1, 2, ... in time, step h's
scale at origin t reads the misses of the origins whose step-h target is
observed by then (o + h - 1 < t: a target is known h steps after its origin):

    s_(t,h,c) = s_(t-1,h,c) + γ (miss_(t-h,h,c) - α),   miss_(o,h,c) = 1[r_(o,h,c) > s_(o,h,c)]

from s_(0,h,c) the validation part's scale (1 without one); an interval is
drawn with max(s, 0). Too many misses widen the interval, covers narrow it,
each by a step in units of the model's own half width, and whatever the
series, Σ_o (miss_o - α) = (s_last - s_0) / γ: the share of misses goes to α
as origins accumulate (Angelopoulos et al. 2023, Prop. 1), the last h - 1
origins' misses being unread. No value at or after origin t enters origin
t's interval.

A rolling-origin evaluation at horizon H forecasts H steps from every origin o
of a part (the first forecast step's index) whose steps o .. o + H - 1 all lie in
it, each from the ``seq_len`` observed values before o; the errors average over
origins, steps 1..H and channels (MASE and CRPS: each channel in its own scale,
then averaged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from rnnkit.data.forecast import transform_values, untransform_values

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of samples (..., N) against y (...) -> (...)."""
    x = np.sort(samples, axis=-1)
    N = x.shape[-1]
    spread = ((2 * np.arange(1, N + 1) - N - 1) * x).sum(axis=-1) / N ** 2
    return np.abs(x - y[..., None]).mean(axis=-1) - spread


def pinball(quantile_values: np.ndarray, y: np.ndarray, quantiles) -> np.ndarray:
    """The pinball loss of quantile forecasts (Q, ...) against y (...) -> (Q, ...)."""
    q = np.asarray(quantiles).reshape(-1, *([1] * y.ndim))
    diff = y[None] - quantile_values
    return np.maximum(q * diff, (q - 1) * diff)


def seasonal_naive(values: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(O, H, C) the seasonal naive forecast from each origin: y_(o+h) = y_(o+h-m⌈(h+1)/m⌉), the last
    observed value of the same phase of the season (persistence for m = 1)."""
    h = np.arange(horizon)
    back = season * ((h // season) + 1)  # (H,)
    return values[origins[:, None] + h[None] - back[None]]


@dataclass
class Scores:
    """Every score of a set of forecasts, in the series' units (MASE and CRPS per scale)."""

    mae: float
    rmse: float
    mase: float
    crps: float | None = None
    quantile_loss: float | None = None
    coverage_80: float | None = None
    naive_mase: float | None = None  # the seasonal naive forecast's MASE on the same origins

    def to_dict(self) -> dict:
        """The scores that apply (those not None), by name."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def score(truth: np.ndarray, point: np.ndarray, scale: np.ndarray, samples: np.ndarray | None = None,
          quantiles=DEFAULT_QUANTILES) -> Scores:
    """Scores of forecasts of ``truth`` (..., C): ``point`` (..., C), ``samples`` (N, ..., C) or None;
    ``scale`` (C,): MASE's (the training part's seasonal naive MAE)."""
    err = point - truth
    mae_c = np.abs(err).reshape(-1, truth.shape[-1]).mean(0)  # (C,)
    result = Scores(float(mae_c.mean()), float(np.sqrt((err ** 2).mean())), float((mae_c / scale).mean()))
    if samples is not None and len(samples) > 1:
        moved = np.moveaxis(samples, 0, -1)  # (..., C, N)
        result.crps = float((crps_samples(moved, truth) / scale).mean())
        qs = np.quantile(samples, list(quantiles), axis=0)  # (Q, ..., C)
        result.quantile_loss = float(pinball(qs, truth, quantiles).mean())
        result.coverage_80 = covered(samples, truth)
    return result


def spread_ratios(samples: np.ndarray, truth: np.ndarray, coverage: float = 0.8) -> np.ndarray:
    """(O, H, C) r of the module's docstring: how far each target (O, H, C) lies from the median of its
    sampled paths (N, O, H, C), in units of the central ``coverage`` interval's half width on its side
    (inf where that width is 0 and the target off the median; NaN where the target is NaN)."""
    median = np.median(samples, axis=0)
    low, high = np.quantile(samples, [(1 - coverage) / 2, (1 + coverage) / 2], axis=0)  # (O, H, C) each
    above = truth >= median
    width = np.where(above, high - median, median - low)
    distance = np.abs(truth - median)
    with np.errstate(invalid="ignore"):
        ratio = np.where(width > 0, distance / np.where(width > 0, width, 1.0), np.where(distance > 0, np.inf, 0.0))
    return np.where(np.isnan(truth), np.nan, ratio)


def spread_scale(samples: np.ndarray, truth: np.ndarray, coverage: float = 0.8) -> np.ndarray:
    """(H, C) the scale s_(h,c) of the module's docstring from sampled paths (N, O, H, C) and their targets
    (O, H, C): the central ``coverage`` interval, scaled, covers that share of the targets at each step."""
    scale = np.quantile(spread_ratios(samples, truth, coverage), coverage, axis=0)  # (H, C)
    finite = np.isfinite(scale)
    return np.where(finite, scale, np.max(scale[finite], initial=1.0))  # a step of zero spread: the widest scale


def track_spread(ratios: np.ndarray, start: np.ndarray | None, rate: float, coverage: float = 0.8) -> np.ndarray:
    """(O, H, C) the scale s_(t,h,c) of rolling recalibration (the module's docstring) at each of O
    consecutive origins, from the ratios r (O, H, C) of :func:`spread_ratios` (NaN: a target not observed,
    whose miss is never read) and the starting scales ``start`` (H', C) (steps beyond H' take the last
    row's; None: 1). Origin t's scales read only r_(o,h) with o + h < t (h from 0): targets before t."""
    O, H, C = ratios.shape
    alpha = 1.0 - coverage
    state = np.ones((H, C)) if start is None else np.asarray(start, dtype=np.float64)[
        np.minimum(np.arange(H), len(start) - 1)].copy()  # (H, C)
    scales = np.empty((O, H, C))
    steps = np.arange(H)
    for t in range(O):
        read = t - 1 - steps  # (H,): the origin whose step-h target is the value just before origin t
        known = read >= 0
        r = ratios[read[known], steps[known]]  # (H_known, C)
        missed = (r > scales[read[known], steps[known]]).astype(np.float64)
        state[known] += np.where(np.isnan(r), 0.0, rate * (missed - alpha))
        scales[t] = state
    return scales


def apply_spread(samples: np.ndarray, scale: np.ndarray | None, transform: str = "none") -> np.ndarray:
    """Sampled paths (N, ..., H, C) with their spread about the median scaled by ``scale`` (..., H', C) (None:
    as they are; one scale per origin: (O, H', C) with paths (N, O, H, C)); steps beyond H' take the last
    row's scale, a negative scale counts as 0. With a ``transform`` g (``--transform``) the spread of
    g(paths) is scaled, g(m) + s (g(y) - g(m)), and mapped back, so a sqrt forecast stays >= 0."""
    if scale is None:
        return samples
    H, scale = samples.shape[-2], np.maximum(np.asarray(scale), 0.0)
    s = scale[..., np.minimum(np.arange(H), scale.shape[-2] - 1), :]  # (..., H, C)
    g = transform_values(samples, transform)
    median = np.median(g, axis=0, keepdims=True)
    return untransform_values(median + s * (g - median), transform)


def covered(samples: np.ndarray, truth: np.ndarray) -> float:
    """The share of ``truth`` (...) inside the central 80 % interval of ``samples`` (N, ...)."""
    low, high = np.quantile(samples, [0.1, 0.9], axis=0)
    return float(((truth >= low) & (truth <= high)).mean())


def forecast_windows(model, z: np.ndarray, covariates: np.ndarray, origins: np.ndarray, seq_len: int,
                     horizon: int, num_samples: int, seed: int = 0, batch_size: int = 64) -> np.ndarray:
    """(N, O, H, C) normalised paths of ``horizon`` steps from each origin (the index of its first
    step) of the normalised series ``z`` (T, C) with covariates (T', K) (T' >= o + H for each origin)."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(origins), batch_size):
        o = np.asarray(origins[i:i + batch_size])
        window = o[:, None] + np.arange(-seq_len, 0)  # (B, T): the observed values before o
        known = o[:, None] + np.arange(-seq_len + 1, horizon)  # (B, T + H - 1): their targets' inputs
        x = torch.from_numpy(z[window]).to(device)
        k = torch.from_numpy(covariates[known]).to(device)
        paths = model.forecast(x, k, horizon, num_samples, generator if device.type == "cpu" else None)
        out.append(paths.float().cpu().numpy())  # (B, N, H, C)
    return np.moveaxis(np.concatenate(out), 1, 0)


class Rolling(NamedTuple):
    """Rolling recalibration (``--calibrate rolling``): the first origin whose errors the scale reads, and
    the rate γ of :func:`track_spread`."""

    first: int
    rate: float


def paths_in_units(model, scaler, z: np.ndarray, covariates: np.ndarray, values: np.ndarray, origins: np.ndarray,
                   seq_len: int, horizon: int, num_samples: int, seed: int = 0) -> np.ndarray:
    """(N, O, H, C) sampled paths from each origin (:func:`forecast_windows`) in the series' units, ``values``
    (T, C) the series as observed (a differenced path starts from the value before its origin)."""
    paths = forecast_windows(model, z, covariates, origins, seq_len, horizon, num_samples, seed)
    return scaler.to_values(paths, values[origins - 1])


def tracked_scales(paths: np.ndarray, truth: np.ndarray, start, rate: float, transform: str = "none") -> np.ndarray:
    """(O, H, C) the rolling scales (:func:`track_spread`) of paths (N, O, H, C) from consecutive origins and
    their targets (O, H, C; NaN: not observed), in g(y) as :func:`apply_spread` scales (``--transform``)."""
    with np.errstate(invalid="ignore"):
        ratios = spread_ratios(transform_values(paths, transform), transform_values(truth, transform))
    return track_spread(ratios, start, rate)


def rolling_scales(model, data, origins: np.ndarray, paths: np.ndarray, spread, rolling: Rolling,
                   seed: int = 1) -> np.ndarray:
    """(O, H, C) the scales of rolling recalibration at each of the consecutive ``origins`` of ``data`` (a
    :class:`rnnkit.data.forecast.ForecastData`), whose sampled paths (N, O, H, C) in the series' units are
    ``paths``: tracked from ``spread`` (:func:`track_spread`) over the errors of every origin from
    ``rolling.first`` on (those before ``origins`` forecast here), each read once its target is observed."""
    scaler, T, observed = data.tokenizer, data.config.seq_len, data.series.values
    horizon, num_samples = paths.shape[-2], paths.shape[0]
    before = np.arange(max(rolling.first, T), origins[0])  # origins whose errors come before the scored ones
    earlier = paths_in_units(model, scaler, data.z, data.covariates, observed, before, T, horizon, num_samples,
                             seed) if len(before) else paths[:, :0]
    known = observed[np.concatenate([before, origins])[:, None] + np.arange(horizon)]  # (O', H, C)
    tracked = tracked_scales(np.concatenate([earlier, paths], axis=1), known, spread, rolling.rate, scaler.transform)
    return tracked[len(before):]


def rolling_origin(model, data, start: int, stop: int, horizon: int, num_samples: int,
                   quantiles=DEFAULT_QUANTILES, seed: int = 0, spread=None,
                   rolling: Rolling | None = None) -> tuple[Scores, int]:
    """(scores, origins) of forecasts at ``horizon`` from every origin o with start <= o and
    o + horizon <= stop, over ``data`` (a :class:`rnnkit.data.forecast.ForecastData`), the paths'
    spread scaled by ``spread`` (:func:`apply_spread`); with ``rolling``, by the scales tracked from
    ``spread`` (:func:`track_spread`) over the errors of every origin from ``rolling.first`` on, each
    origin's from the targets observed before it."""
    scaler, T = data.tokenizer, data.config.seq_len
    origins = np.arange(max(start, T), stop - horizon + 1)
    if len(origins) == 0:
        return None, 0
    observed = data.series.values
    values = paths_in_units(model, scaler, data.z, data.covariates, observed, origins, T, horizon, num_samples,
                            seed)  # (N, O, H, C) in the series' units
    truth = observed[origins[:, None] + np.arange(horizon)]  # (O, H, C)
    if rolling is not None and len(values) > 1:
        spread = rolling_scales(model, data, origins, values, spread, rolling, seed + 1)  # (O, H, C)
    values = apply_spread(values, spread, scaler.transform) if len(values) > 1 else values
    point = np.median(values, axis=0) if len(values) > 1 else values[0]
    scores = score(truth, point, scaler.naive_mae, values if len(values) > 1 else None, quantiles)
    naive = seasonal_naive(data.series.values, origins, horizon, scaler.season)
    scores.naive_mase = score(truth, naive, scaler.naive_mae).mase
    return scores, len(origins)


def forecast_figure(history_times, history: np.ndarray, times, point: np.ndarray, bands, channels: list[str],
                    title: str = ""):
    """History, the forecast and its bands ((low, high, label), lightest outermost), one panel a channel."""
    from matplotlib.figure import Figure

    C = history.shape[1]
    fig = Figure(figsize=(9, 2.6 * C), layout="constrained")
    axes = fig.subplots(C, 1, squeeze=False)[:, 0]
    for c, ax in enumerate(axes):
        ax.plot(history_times, history[:, c], color="black", lw=1, label="history")
        for i, (low, high, label) in enumerate(bands):
            ax.fill_between(times, low[:, c], high[:, c], color="tab:blue", alpha=0.15 + 0.15 * i, lw=0, label=label)
        ax.plot(times, point[:, c], color="tab:blue", lw=1.5, label="forecast")
        ax.set_ylabel(channels[c])
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_title(title)
    return fig
