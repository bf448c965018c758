"""Forecasting (``--task forecast``): the next values of one or more numeric
channels at every step (:class:`rnnkit.models.forecaster.Forecaster`), from a
CSV/TSV/NPY series split in time (:mod:`rnnkit.data.forecast`).

Validation scores the one-step forecast of each validation step from the
``seq_len`` values before it: the loss (Gaussian negative log-likelihood or
squared error, z-scored units), which picks the best checkpoint, and MAE, RMSE
and MASE in the series' units. ``rnnkit eval`` forecasts ``--horizon`` steps
from every origin of the test part (rolling origin) and prints MAE, RMSE, MASE
(beside the seasonal naive forecast's), CRPS, quantile loss and the coverage of
the 80 % interval (:mod:`rnnkit.training.forecasting`); ``rnnkit predict``
writes the forecast after a series' rows in its own format, with quantile
columns, and on request a PNG of history, forecast and bands.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from rnnkit.config import TrainConfig, check_choice, setting, to_dict
from rnnkit.data.calendar import future_times
from rnnkit.data.forecast import ForecastConfig, ForecastData
from rnnkit.data.series_table import SeriesFile, forecast_table, read_series_file
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.forecaster import Forecaster, ForecasterConfig
from rnnkit.models.linear_ar import choose_order, default_max_order, fit_linear_ar, rows_needed
from rnnkit.tasks.base import RESERVOIR_RULES, Task
from rnnkit.tasks.serving import Endpoint, Field, RequestError
from rnnkit.training.calibration import (CALIBRATIONS, calibrate_best, calibration_of, calibration_said,
                                         rolling_spread)
from rnnkit.training.forecasting import (DEFAULT_QUANTILES, Rolling, apply_spread, forecast_figure, forecast_windows,
                                         rolling_origin)
from rnnkit.training.optim import ScheduledSampling, schedule_teacher_forcing
from rnnkit.training.plots import png
from rnnkit.training.runs import write_output

DEFAULT_SAMPLES = 200
CALIBRATION_HORIZON = 100  # the steps --calibrate scales one by one (at most half the validation part); later: the last


@dataclass
class ForecastTraining(ScheduledSampling, TrainConfig):
    """:class:`rnnkit.config.TrainConfig` and scheduled sampling
    (:class:`rnnkit.training.optim.ScheduledSampling`): how often the forecaster reads its own
    draw of the previous value instead of the observed one as training goes on."""

    calibrate: str = setting("forecast: the 80 % interval's calibration: none (the spread as sampled); validation "
                             "(after training, the sampled paths' spread scaled a horizon step so the interval "
                             "covers 80 % of the validation part's rolling-origin forecasts, Kuleshov et al. 2018; "
                             "kept with the best checkpoint, applied by eval and predict); rolling (that scale, then "
                             "moved as the values arrive: eval and predict read every error observed before each "
                             "origin, from the validation part's on; quantile tracking, Angelopoulos et al. 2023)",
                             default="validation")
    calibrate_rate: float = setting("forecast, --calibrate rolling: γ, how far the scale moves after each miss "
                                    "(+0.8 γ) and each cover (-0.2 γ), in half widths of the model's own interval",
                                    default=0.1)

    def __post_init__(self):
        super().__post_init__()
        self.check_sampling()
        if isinstance(self.calibrate, bool):  # config.json of a run before 2026-12-07: calibrate true or false
            self.calibrate = "validation" if self.calibrate else "none"
        if self.calibrate in ("true", "false"):
            raise ConfigError(f"calibrate takes none, validation or rolling (true was validation, false none); "
                              f"got {self.calibrate!r}")
        check_choice(self, "calibrate", CALIBRATIONS)
        if not 0 < self.calibrate_rate <= 1:
            raise ConfigError(f"calibrate_rate must be in (0, 1]; got {self.calibrate_rate}")


class ForecastTask(Task):
    """``--task forecast``: the next values of a numeric series, the forecaster."""

    name = "forecast"
    summary = "forecast (the next values of a numeric series)"
    metrics = ("loss", "mae", "rmse", "mase")
    model_config = ForecasterConfig
    data_config = ForecastConfig
    train_config = ForecastTraining
    rules = {
        "seq_len": (lambda c: True, ""),
        "bidirectional": (lambda c: c.model.bidirectional is not True,
                          "a model that may read ahead (a forecaster reads left to right)"),
        "sampling_steps": (lambda c: c.train.scheduled_sampling != "none",
                           "--scheduled-sampling linear, exponential or inverse_sigmoid"),
        # squared error forecasts one point path: no spread to scale
        "calibrate": (lambda c: c.model.likelihood == "gaussian", "--likelihood gaussian (a squared-error forecast "
                                                                   "is one point path, with no spread to scale)"),
        "calibrate_rate": (lambda c: c.train.calibrate == "rolling", "--calibrate rolling"),
        **RESERVOIR_RULES,
        "label_smoothing": (lambda c: False, "--task lm, classify, tag or seq2seq (a forecast's loss is over values, "
                                            "not labels)"),
    }
    eval_options = frozenset({"horizon", "num_samples", "quantiles", "calibrate"})
    predict_options = eval_options | {"plot"}

    def token_kinds(self, choice) -> set[str]:
        return {"none"}

    def reads_both_ways(self, choice) -> bool:
        return False

    def decide(self, data_cfg):
        return data_cfg, []  # the season is decided while reading (describe says it)

    def check(self, model_cfg, data_cfg) -> None:
        q = model_cfg.ar_order
        if q != "auto" and q >= data_cfg.seq_len:
            raise ConfigError(f"--ar-order {q} reads {q} values inside a window of --seq-len {data_cfg.seq_len}; "
                              f"give --ar-order below {data_cfg.seq_len} (or a longer --seq-len)")

    def decide_model(self, model_cfg, data):
        """``--ar-order auto``: q by AIC on the training part (:func:`rnnkit.models.linear_ar.choose_order`);
        any q: a DataError when the training part is too short to fit it by least squares."""
        scaler, T = data.tokenizer, data.config.seq_len
        z, first = _training_z(data)
        notes = []
        if model_cfg.ar_order == "auto":
            largest = default_max_order(scaler.train_length, T, scaler.season)
            q, _ = choose_order(z, largest, first)
            model_cfg = dataclasses.replace(model_cfg, ar_order=q)
            notes.append(f"--ar-order auto: {q} (AIC over 1..{largest})")
        q = model_cfg.ar_order
        if q and len(z) - first - q < rows_needed(q):
            raise DataError(f"{data.config.path}: the training part has {scaler.train_length} steps, too few to fit "
                            f"--ar-order {q} by least squares (it needs {first + q + rows_needed(q)}); lower "
                            f"--ar-order or give a longer series")
        return model_cfg, notes

    def start(self, model, data) -> bool:
        """With ``--ar-order q``: the AR(q) fitted by least squares on the training part, the head's output 0
        (:meth:`rnnkit.models.forecaster.Forecaster.start_from_ar`)."""
        if model.autoregressive is None or model.config.encoder != "rnn":
            return False
        z, first = _training_z(data)
        fit = fit_linear_ar(z, model.config.ar_order, first)
        model.start_from_ar(*(torch.as_tensor(a, dtype=torch.float32)
                              for a in (fit.weight, fit.intercept, fit.variance)))
        return True

    # -- data and model --------------------------------------------------------------------------

    def read_data(self, config, run=None, spell=False):
        config = self.own(config)
        return ForecastData.from_file(config.path, config, run.tokenizer if run else None)

    def build_model(self, model_cfg, tokenizer, labels=None, target_tokenizer=None):
        return Forecaster(tokenizer.num_channels, tokenizer.num_covariates, **to_dict(model_cfg))

    def after_training(self, trainer) -> str | None:
        """With ``calibrate`` (a Gaussian head and a validation part): the best checkpoint's spread scales,
        kept in its metadata (:func:`rnnkit.training.calibration.calibrate_best`)."""
        if getattr(trainer.cfg, "calibrate", "none") == "none":
            return None
        return calibrate_best(trainer, CALIBRATION_HORIZON, DEFAULT_SAMPLES)

    def unit_of(self, data) -> str:
        return "steps"

    def describe(self, data) -> str:
        s = data.tokenizer
        season = f"season {s.season} ({'set' if s.season_reason == 'set' else 'auto: ' + s.season_reason})"
        inputs = f", {s.num_covariates} known inputs" if s.num_covariates else ""
        plural = "s" if s.num_channels > 1 else ""
        return f"{s.num_channels} channel{plural} ({', '.join(s.channels)}){inputs}, {season}"

    # -- training --------------------------------------------------------------------------------

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        """One-step forecasts of each step of ``split``: loss (z-scored), MAE, RMSE, MASE (the series' units)."""
        if not len(getattr(data, split)):
            return {}
        was_training = model.training
        model.eval()
        losses, means = [], []
        try:
            with torch.no_grad():
                for batch in data.eval_batches(split):
                    prediction, _ = model(batch.x, batch.covariates)
                    mean = prediction.mean[:, -1]  # (B, C): the forecast of each window's last step
                    variance = None if prediction.variance is None else prediction.variance[:, -1]
                    y = batch.y[:, -1]
                    losses.append(model.nll(mean, variance, y).item() * len(y))
                    means.append(mean.numpy())
        finally:
            model.train(was_training)
        targets = np.asarray(getattr(data, split))  # (S,) the steps forecast, in order
        values = data.series.values
        point = data.tokenizer.to_values(np.concatenate(means)[:, None], values[targets - 1])[:, 0]  # (S, C)
        err = point - values[targets]  # (S, C), in the series' units (through --difference and --transform)
        mae_c = np.abs(err).mean(axis=0)
        return {"loss": sum(losses) / len(err), "mae": float(mae_c.mean()), "rmse": float(np.sqrt((err ** 2).mean())),
                "mase": float((mae_c / data.tokenizer.naive_mae).mean())}

    def before_step(self, model, step, config) -> dict:
        return schedule_teacher_forcing(model, config, step)

    def next_step(self, out) -> str:
        return f"forecast with: rnnkit predict {out} SERIES --horizon H; score with: rnnkit eval {out} --horizon H"

    # -- commands --------------------------------------------------------------------------------

    def _settings(self, run, doc, request) -> tuple[int, int, tuple[float, ...]]:
        """(horizon, sample paths, quantiles) from the flags, checked against the run."""
        horizon = 1 if request.horizon is None else request.horizon
        scaler = doc.tokenizer
        if horizon < 1:
            raise ConfigError(f"--horizon must be >= 1; got {horizon}")
        if horizon > scaler.train_length:
            raise DataError(f"--horizon {horizon} is longer than the training part of {run} ({scaler.train_length} "
                            f"steps); ask for at most {scaler.train_length} or train on a longer series")
        gaussian = doc.model.likelihood == "gaussian"
        for name in ("num_samples", "quantiles"):
            if getattr(request, name) is not None and not gaussian:
                raise ConfigError(f"--{name.replace('_', '-')} needs a --likelihood gaussian run; {run} forecasts "
                                  f"one point path (squared error): drop it")
        samples = DEFAULT_SAMPLES if request.num_samples is None else request.num_samples
        if samples < 2 and gaussian:
            raise ConfigError(f"--num-samples must be >= 2 (quantiles come from sampled paths); got {samples}")
        quantiles = _quantiles(request.quantiles) if request.quantiles is not None else \
            (DEFAULT_QUANTILES if gaussian else ())
        return horizon, samples if gaussian else 1, quantiles

    def evaluate(self, run, model, doc, request) -> int:
        """Rolling-origin forecasts over the run's test part (``--split``: another part; PATH: a whole series)."""
        horizon, samples, quantiles = self._settings(run, doc, request)
        cfg, T = doc.data, doc.data.seq_len
        if request.path:
            whole = dataclasses.replace(cfg, val_fraction=0.0, test_fraction=0.0)
            data = ForecastData.from_file(request.path, whole, doc.tokenizer)
            start, stop, source = T, len(data.z), request.path
        else:
            data = ForecastData.from_file(cfg.path, cfg, doc.tokenizer)
            split = request.split or "test"
            part = getattr(data, split)
            start, stop, source = part.start, part.stop, f"{cfg.path} ({split} part)"
        mode, spread = calibration_of(run, doc, request, samples)
        first = T if request.path else data.val.start if split == "test" and len(data.val) else start
        rolling = Rolling(first, doc.train.calibrate_rate) if mode == "rolling" else None
        scores, origins = rolling_origin(model, data, start, stop, horizon, samples, quantiles or DEFAULT_QUANTILES,
                                         spread=spread, rolling=rolling)
        if not origins:
            raise DataError(f"{source} has {max(0, stop - max(start, T))} steps to forecast, fewer than --horizon "
                            f"{horizon}; lower --horizon, give more --test-fraction, or a series as PATH")
        s = doc.tokenizer
        if request.json:
            print(json.dumps({"source": str(source), "horizon": horizon, "origins": origins, "season": s.season,
                              "calibrated": mode != "none", "calibration": mode, **scores.to_dict()}))
            return 0
        why = "set" if s.season_reason == "set" else f"auto: {s.season_reason}"
        print(f"{source}: {origins:,} origins at horizon {horizon}, season {s.season} ({why}), "
              + (f"{samples} sample paths" if samples > 1 else "the point path (squared error)")
              + calibration_said(mode, spread, horizon, doc.train.calibrate_rate))
        line = f"MAE {scores.mae:.4g} | RMSE {scores.rmse:.4g} | MASE {scores.mase:.4f} " \
               f"(seasonal naive {scores.naive_mase:.4f})"
        if scores.crps is not None:
            line += f" | CRPS {scores.crps:.4f} (per scale) | quantile loss {scores.quantile_loss:.4g} " \
                    f"| 80% coverage {scores.coverage_80:.3f}"
        print(line)
        return 0

    def predict(self, run, model, doc, request) -> int:
        """The next ``--horizon`` steps after the observed rows of INPUT, written in its format."""
        horizon, samples, quantiles = self._settings(run, doc, request)
        scaler, T, path = doc.tokenizer, doc.data.seq_len, Path(request.input)
        series = read_series_file(path, doc.data, future=True)
        scaler.check(series)
        history = series.history
        if history < T:
            raise DataError(f"{path} has {history} observed rows, fewer than one window (--seq-len {T}) to start "
                            f"the forecast from; give at least {T}")
        if series.covariate_names and len(series.values) < history + horizon:
            raise DataError(f"{path}: --horizon {horizon} needs the covariates {', '.join(series.covariate_names)} "
                            f"of {horizon} rows after the last observed one; it has {len(series.values) - history}")
        if path.suffix.lower() == ".npy" and not request.out:
            raise ConfigError(f"{path} is a NumPy file, and so is its forecast: give --out FILE.npy")
        times = None
        if series.times is not None:
            if len(series.values) >= history + horizon:
                times = series.times[history:history + horizon]
            elif scaler.step is None:
                if scaler.calendar:
                    raise DataError(f"{path}: the time column's steps are irregular, so the forecast's dates are "
                                    f"unknown; give the {horizon} future rows with their dates")
            else:
                times = future_times(series.times[:history], scaler.step, horizon)
        all_times = None if times is None else np.concatenate([series.times[:history], times])
        calibration = calibration_of(run, doc, request, samples)
        point, qs, paths = self._forecast(model, doc, series, all_times, horizon, samples, quantiles, calibration)
        if request.plot:  # before the forecast's own file: a bad --plot path writes nothing
            _plot(request.plot, series, history, times, point, paths if samples > 1 else None, run)
        _write(series, history, horizon, times, point, qs, quantiles, request.out)
        return 0

    @staticmethod
    def _forecast(model, doc, series, times, horizon: int, samples: int, quantiles, calibration) -> tuple:
        """(point (H, C), quantiles (Q, H, C), sample paths (N, H, C)) of the ``horizon`` steps after
        the observed rows of ``series`` (``times``: the observed and future rows' times, or None), the
        paths' spread calibrated as ``calibration`` (:func:`rnnkit.training.calibration.calibration_of`) says:
        with ``rolling``, by the scales tracked over the errors of the series' own observed rows
        (:func:`rnnkit.training.calibration.rolling_spread`)."""
        scaler, history, T = doc.tokenizer, series.history, doc.data.seq_len
        covariates = scaler.inputs(series, times, history + horizon)
        z = scaler.scale(series.values[:history]).astype(np.float32)
        paths = forecast_windows(model, z, covariates, np.array([history]), T, horizon, samples)  # (N, 1, H, C)
        paths = scaler.to_values(paths, series.values[[history - 1]])
        mode, spread = calibration
        if mode == "rolling" and samples > 1:
            spread = rolling_spread(model, scaler, z, covariates, series.values[:history], T, paths, spread,
                                    doc.train.calibrate_rate)
        paths = apply_spread(paths[:, 0], spread, scaler.transform) if samples > 1 else paths[:, 0]
        point = np.median(paths, axis=0) if samples > 1 else paths[0]
        qs = np.quantile(paths, list(quantiles), axis=0) if quantiles else np.zeros((0, horizon, point.shape[1]))
        return point, qs, paths

    def endpoints(self, model, run, limits):
        """``forecast``: the next ``horizon`` steps of the series ``values`` (rows of the run's channels),
        as `rnnkit predict` forecasts a file's, with the quantiles of a gaussian run's sample paths. A
        run that reads covariates or calendar features serves nothing yet (a request would need them)."""
        scaler = run.tokenizer
        if scaler.covariates or scaler.calendar:
            return {}
        C, T = len(scaler.channels), run.data.seq_len

        def forecast(values) -> dict:
            rows = values["values"]
            rows = [r if isinstance(r, list) else [r] for r in rows]
            if not all(len(r) == C and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
                       for r in rows):
                raise RequestError(f"'values' must be a list of rows of {C} numbers (the channels "
                                   f"{', '.join(scaler.channels)})" + (", or of numbers" if C == 1 else ""))
            if len(rows) < T:
                raise RequestError(f"'values' holds {len(rows)} rows, fewer than one window (the run's seq_len "
                                   f"{T}) to start from", 422)
            series = SeriesFile(Path("'values'"), list(scaler.channels), np.asarray(rows, dtype=np.float64),
                                [], np.zeros((len(rows), 0)), None, None, None, None, ",", {})
            if not np.isfinite(series.values).all():
                raise RequestError("'values' holds a value that is not finite")
            try:
                scaler.check(series)  # a value --transform cannot take (sqrt: below 0; log: 0 or below)
            except DataError as e:
                raise RequestError(str(e), 422) from None
            request = SimpleNamespace(horizon=values["horizon"], num_samples=values["num_samples"], quantiles=None)
            try:
                horizon, samples, quantiles = self._settings("this run", run, request)
            except (ConfigError, DataError) as e:
                raise RequestError(str(e), 422) from None
            point, qs, _ = self._forecast(model, run, series, None, horizon, samples, quantiles,
                                          calibration_of("this run", run, request, samples))
            return {"channels": scaler.channels, "forecast": point.tolist(),
                    "quantiles": {f"{q:g}": qs[i].tolist() for i, q in enumerate(quantiles)}}

        fields = {"values": Field("list", "the series: rows of its channels' values (or numbers, one channel)",
                                  required=True, low=1, high=limits.max_length * 10),
                  "horizon": Field("int", "steps to forecast", 1, low=1, high=limits.max_length),
                  "num_samples": Field("int", "sample paths (a gaussian run)", low=2, high=10_000)}
        return {"forecast": Endpoint("the next steps of a series", fields, forecast, limits=limits)}


def _training_z(data) -> tuple[np.ndarray, int]:
    """The training part's normalised values (n, C) in float64, and the first row that is data (a
    differenced series' first is a 0 put there)."""
    return data.z[:data.tokenizer.train_length].astype(np.float64), 1 if data.tokenizer.difference else 0


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values or any(not 0 < q < 1 for q in values):
        raise ConfigError(f"--quantiles: expected comma-separated levels in (0, 1) such as 0.1,0.5,0.9; got {text!r}")
    return values


def _write(series, history: int, horizon: int, times, point: np.ndarray, qs: np.ndarray, quantiles, out) -> None:
    """The forecast in the input's format (:func:`rnnkit.data.series_table.forecast_table`) to ``out``, or stdout."""
    content = forecast_table(series, history, horizon, times, point, qs, quantiles)
    if out:
        write_output(Path(out), content)
    else:
        sys.stdout.write(content.decode())


def _plot(target, series, history: int, times, point, paths, run) -> None:
    shown = slice(max(0, history - max(5 * len(point), 200)), history)
    if times is not None:
        past, future = series.times[shown], times
    else:
        past, future = np.arange(history)[shown], np.arange(history, history + len(point))
    bands = []
    if paths is not None:
        low, high = np.quantile(paths, [0.1, 0.9], axis=0)
        bands.append((low, high, "80 %"))
    figure = forecast_figure(past, series.values[shown], future, point, bands, series.channels,
                             title=f"{series.path.name}: forecast of {run}")
    write_output(Path(target), png(figure))
