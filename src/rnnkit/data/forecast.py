"""Numeric series to forecast (``--task forecast``): one or more channels,
an optional time column, optional covariates known in advance.

Files: CSV/TSV (a header row optional) or NumPy ``.npy`` (T, C), one row a
time step, in time order. Columns (:class:`ForecastConfig`): the channels to
forecast (``channels``; by default every numeric column but the time and
covariate columns), the time stamps (``time_column``: dates, or numbers such
as years), named covariates known in advance (``covariate_columns``: inputs
that are not forecast; a forecast needs their future rows, which carry them
with the channels' cells left empty) and calendar features of the time
stamps (``calendar``: sin and cos of the hour of the day, the day of the
week, the month of the year, the day of the year).

The split is in time, never shuffled: train, then validation, then test
(``val_fraction``, ``test_fraction``). The scaler (:class:`ForecastScaler`,
the run folder's "tokenizer") is fitted on the training part only: a
channel's z-score (x - mean) / std with the training part's mean and std,
of g(y) with ``transform`` (g = sqrt or log: a variance-stabilising
transform for a series whose noise grows with its level; forecasts are
mapped back by g^-1, so their spread grows with the level too), and of the
changes g(y_t) - g(y_(t-1)) with ``difference``.

A window of T = ``seq_len`` steps ending at target step e (its index in the
series) reads

    x_t = z_(e-T+t)                 the previous values, (T, C)
    k_t = covariates_(e-T+t+1)      the target step's known inputs, (T, K)
    y_t = z_(e-T+t+1)               the values to predict, (T, C)

Training reads every window that lies in the training part, each epoch in a
seeded order; validation and test score the one-step forecast of each of
their steps from the T steps before it (which may lie in the parts before).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.config import DataConfig, check_at_least, setting
from rnnkit.data.batches import ForecastBatch
from rnnkit.data.calendar import CALENDAR_PERIODS, calendar_features, decide_season, time_step
from rnnkit.data.files import file_digest
from rnnkit.data.series_table import SeriesFile, read_series_file
from rnnkit.errors import CheckpointError, ConfigError, DataError



@dataclass
class ForecastConfig(DataConfig):
    """:class:`rnnkit.config.DataConfig` and the columns of a series to forecast."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="forecast")
    test_fraction: float = setting("share held out for testing (taken last)", default=0.1)
    channels: str = setting("forecast: the columns to forecast, comma-separated names or 0-based indices; auto: "
                            "every numeric column but the time and covariate columns", default="auto")
    time_column: str = setting("forecast: the column of time stamps (dates or numbers), a name or 0-based index; "
                               "auto: the first column, when its header names a time (time, date, year, ...) or "
                               "its values are dates; none: no time column", default="auto")
    covariate_columns: str = setting("forecast: columns known in advance, read as inputs and not forecast "
                                     "(comma-separated); a forecast needs their future rows", default="")
    calendar: str = setting("forecast: calendar features of the time column as inputs (sin and cos of each): "
                            "none, or a comma-separated subset of hour, weekday, month, dayofyear", default="none")
    difference: bool = setting("forecast: read and predict the change y_t - y_(t-1) instead of the value, the "
                               "forecast changes added up: for a series with a trend, whose later values z-scores "
                               "fitted on the training part would place beyond anything seen", default=False)
    transform: str = setting("forecast: model g(y) instead of y, forecasts mapped back by g^-1: none, sqrt (values "
                             ">= 0) or log (values > 0); a variance-stabilising transform for a series whose "
                             "swings grow with its level, so intervals widen where the level is high",
                             default="none")
    season: str = setting("forecast: steps in a season, for the seasonal naive forecast and MASE; auto: from "
                          "the time column's step (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4), "
                          "else the training part's autocorrelation peak (1: no season)", default="auto")

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, "seq_len", 2)
        for name in ("val_path", "test_path"):
            if getattr(self, name):
                raise ConfigError(f"--{name.replace('_', '-')}: a forecast splits its one series in time; use "
                                  f"--val-fraction and --test-fraction instead")
        unknown = [c for c in self.calendar_features if c not in CALENDAR_PERIODS]
        if unknown:
            raise ConfigError(f"calendar must be none or a subset of {', '.join(CALENDAR_PERIODS)}; got "
                              f"{self.calendar!r}")
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"transform must be one of {', '.join(TRANSFORMS)}; got {self.transform!r}")
        if self.season != "auto" and not (self.season.isdigit() and int(self.season) >= 1):
            raise ConfigError(f"season must be auto or a whole number of steps >= 1; got {self.season!r}")

    @property
    def calendar_features(self) -> list[str]:
        """The calendar features ``calendar`` names, as a list ([] for ``none``)."""
        return [] if self.calendar == "none" else [c.strip() for c in self.calendar.split(",") if c.strip()]


# -- the scaler: the run folder's "tokenizer" -------------------------------------------------------

TRANSFORMS = ("none", "sqrt", "log")


def transform_values(values: np.ndarray, transform: str) -> np.ndarray:
    """g(values): the identity, sqrt or log (:attr:`ForecastConfig.transform`)."""
    return {"none": lambda v: v, "sqrt": np.sqrt, "log": np.log}[transform](values)


def untransform_values(w: np.ndarray, transform: str) -> np.ndarray:
    """g^-1(w): the identity, max(w, 0)^2 (a sampled sqrt below 0 is the value 0) or exp."""
    return {"none": lambda v: v, "sqrt": lambda v: np.square(np.maximum(v, 0)), "log": np.exp}[transform](w)


def check_transformable(values: np.ndarray, transform: str, path, channels) -> None:
    """A DataError naming the file, channel and row of the first value ``transform`` cannot take."""
    bad = values < 0 if transform == "sqrt" else values <= 0 if transform == "log" else np.zeros_like(values, bool)
    if bad.any():
        row, c = np.argwhere(bad)[0]
        need = ">= 0" if transform == "sqrt" else "> 0"
        raise DataError(f"{path}: channel {channels[c]!r} is {values[row, c]:g} at row {row + 1}; --transform "
                        f"{transform} needs values {need}: give --transform none (or shift the series)")


class ForecastScaler:
    """z-scores of the channels and named covariates, fitted on the training part, and what a
    forecast needs of the training data: the channels' names, the time step, the calendar
    features, the season and the in-sample seasonal naive MAE (MASE's scale)
    (``kind = "zscore"``, ``vocab_size = 0``: inputs are vectors)."""

    kind = "zscore"
    vocab_size = 0

    def __init__(self, channels, mean, std, covariates=(), covariate_mean=(), covariate_std=(), calendar=(),
                 step=None, season: int = 1, season_reason: str = "", naive_mae=None, train_length: int = 0,
                 difference: bool = False, transform: str = "none"):
        self.channels = list(channels)
        self.mean = np.asarray(mean, dtype=np.float64)  # (C,)
        self.std = np.asarray(std, dtype=np.float64)  # (C,)
        self.covariates = list(covariates)
        self.covariate_mean = np.asarray(covariate_mean, dtype=np.float64).reshape(-1)  # (K_named,)
        self.covariate_std = np.asarray(covariate_std, dtype=np.float64).reshape(-1)
        self.calendar = list(calendar)
        self.step = tuple(step) if step else None
        self.season = int(season)
        self.season_reason = season_reason
        self.naive_mae = np.asarray(naive_mae if naive_mae is not None else np.ones(len(self.channels)))  # (C,)
        self.train_length = int(train_length)  # steps in the training part
        self.difference = bool(difference)  # the model reads and predicts y_t - y_(t-1)
        self.transform = transform  # ... of g(y): none, sqrt, log

    @property
    def num_channels(self) -> int:
        """C, the series' channels."""
        return len(self.channels)

    @property
    def num_covariates(self) -> int:
        """K: the named covariates and two inputs (sin, cos) a calendar feature."""
        return len(self.covariates) + 2 * len(self.calendar)

    def scale(self, values: np.ndarray) -> np.ndarray:
        """(T, C) values -> (T, C) z-scores of g(y) (of the changes g(y_t) - g(y_(t-1)) with ``difference``,
        the first 0)."""
        values = transform_values(values, self.transform)
        if not self.difference:
            return (values - self.mean) / self.std
        z = (np.diff(values, axis=0, prepend=values[:1]) - self.mean) / self.std
        z[0] = 0.0
        return z

    def unscale(self, z):
        """Normalised values (array or tensor, channels last) back in the file's units (changes, with
        ``difference``)."""
        if isinstance(z, torch.Tensor):
            return z * torch.as_tensor(self.std, dtype=z.dtype) + torch.as_tensor(self.mean, dtype=z.dtype)
        return z * self.std + self.mean

    def to_values(self, paths: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Normalised paths (..., H, C) of the steps after observed values ``last`` (..., C) -> the
        series' values (..., H, C): with ``difference``, the changes added up from g(``last``); then g^-1."""
        values = self.unscale(paths)
        if self.difference:
            values = transform_values(last, self.transform)[..., None, :] + np.cumsum(values, axis=-2)
        return untransform_values(values, self.transform)

    def inputs(self, series: SeriesFile, times: np.ndarray | None = None, length: int | None = None) -> np.ndarray:
        """(T, K) float32 covariates of the first ``length`` rows (default all) of ``series``, the
        calendar's from its times or ``times``."""
        times = series.times if times is None else times
        n = len(series.values) if length is None else length
        named = (series.covariates[:n] - self.covariate_mean) / self.covariate_std if self.covariates else \
            np.zeros((n, 0))
        calendar = calendar_features(None if times is None else times[:n], self.calendar, series.path) \
            if self.calendar else np.zeros((n, 0))
        return np.concatenate([named, calendar], axis=1).astype(np.float32)

    def check(self, series: SeriesFile) -> None:
        """A DataError when ``series`` has other channels or covariates than the training file, or a value
        the transform cannot take."""
        for what, trained, got in (("channels", self.channels, series.channels),
                                   ("covariate columns", self.covariates, series.covariate_names)):
            if trained != got:
                raise DataError(f"{series.path} has {what} {', '.join(got) or 'none'}; the run was trained on "
                                f"{', '.join(trained) or 'none'}: give a file with the same columns")
        observed = series.values[~np.isnan(series.values).any(axis=1)]  # a forecast's future rows are empty
        check_transformable(observed, self.transform, series.path, self.channels)

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back (config.json's tokenizer entry)."""
        return {"kind": self.kind, "channels": self.channels, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "covariates": self.covariates, "covariate_mean": self.covariate_mean.tolist(),
                "covariate_std": self.covariate_std.tolist(), "calendar": self.calendar,
                "step": list(self.step) if self.step else None, "season": self.season,
                "season_reason": self.season_reason, "naive_mae": self.naive_mae.tolist(),
                "train_length": self.train_length, "difference": self.difference, "transform": self.transform}

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastScaler":
        """The scaler :meth:`to_dict` saved, or a CheckpointError naming the missing key."""
        try:
            return cls(d["channels"], d["mean"], d["std"], d["covariates"], d["covariate_mean"], d["covariate_std"],
                       d["calendar"], d["step"], d["season"], d.get("season_reason", ""), d["naive_mae"],
                       d["train_length"], d.get("difference", False), d.get("transform", "none"))
        except KeyError as e:
            raise CheckpointError(f"forecast scaler in config.json lacks {e}") from None


def seasonal_naive_mae(values: np.ndarray, season: int) -> np.ndarray:
    """(C,) mean |y_t - y_(t-m)| over ``values`` (T, C): MASE's scale (Hyndman and Koehler 2006)."""
    m = min(season, len(values) - 1)
    scale = np.abs(values[m:] - values[:-m]).mean(axis=0)
    return np.where(scale > 0, scale, 1.0)


# -- the data of a run ---------------------------------------------------------------------------------


class WindowBatcher:
    """Batches of training windows in a seeded order each epoch (deterministic in (seed, epoch))."""

    def __init__(self, data: "ForecastData", batch_size: int, seed: int):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.ends = np.asarray(data.train)  # target end index of each window

    def num_batches(self, epoch: int) -> int:
        """Batches in an epoch: the training windows over the batch size, rounded up."""
        return -(-len(self.ends) // self.batch_size)

    def tokens_per_batch(self) -> float:
        """Target steps a batch holds on average."""
        return len(self.ends) * self.data.config.seq_len / self.num_batches(0)

    def heaviest_batch(self, size: int) -> ForecastBatch:
        """A :class:`ForecastBatch` of ``size`` windows (every window is as long)."""
        return self.data.windows(self.ends[:size])

    def batches(self, epoch: int, start: int = 0):
        """The epoch's batches (:class:`ForecastBatch`) in its seeded order, from batch ``start`` on (to resume)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.ends))
        B = self.batch_size
        for i in range(start * B, len(order), B):
            yield self.data.windows(self.ends[order[i:i + B]])


@dataclass
class ForecastData:
    """A series split in time for training (``train``, ``val``, ``test``: the target steps of
    each part, as ranges of the series' indices), normalised by ``tokenizer`` (a
    :class:`ForecastScaler`) fitted on the training part."""

    tokenizer: ForecastScaler
    series: SeriesFile
    z: np.ndarray  # (N, C) float32 normalised values
    covariates: np.ndarray  # (N, K) float32
    train: range
    val: range
    test: range
    config: ForecastConfig
    digest: str = ""

    @property
    def vocab_size(self) -> int:
        """0: the inputs are vectors, not ids."""
        return 0

    @classmethod
    def from_file(cls, path, config: ForecastConfig, scaler: ForecastScaler | None = None) -> "ForecastData":
        """Read and split ``path``; fit the scaler on the training part (or use the run's ``scaler``)."""
        series = read_series_file(path, config)
        n, T = len(series.values), config.seq_len
        n_test = round(n * config.test_fraction)
        n_val = round(n * config.val_fraction)
        n_train = n - n_val - n_test
        if n_train < T + 1:
            raise DataError(f"{path}: the training part has {n_train} samples, fewer than one window of --seq-len "
                            f"{T} and the value after it; lower --seq-len or give a longer series")
        part = series.values[:n_train]
        check_transformable(series.values, config.transform, path, series.channels)
        g = transform_values(part, config.transform)
        modelled = np.diff(g, axis=0) if config.difference else g  # what the model reads and predicts
        if scaler is None:
            std = modelled.std(axis=0)
            flat = np.flatnonzero(std == 0)
            if len(flat):
                what = "changes at a constant rate" if config.difference else f"is constant ({part[0, flat[0]]:g})"
                raise DataError(f"{path}: channel {series.channels[flat[0]]!r} {what} over the training part; drop "
                                f"it from --channels or give a series that varies")
            named = series.covariates[:n_train]
            named_std = named.std(axis=0) if named.shape[1] else np.zeros(0)
            step = time_step(series.times)
            season, why = (int(config.season), "set") if config.season != "auto" else decide_season(part, step)
            scaler = ForecastScaler(series.channels, modelled.mean(axis=0), std, series.covariate_names,
                                    named.mean(axis=0) if named.shape[1] else [],
                                    np.where(named_std > 0, named_std, 1.0), config.calendar_features, step,
                                    season, why, seasonal_naive_mae(part, season), n_train, config.difference,
                                    config.transform)
        scaler.check(series)
        config = dataclasses.replace(config, season=str(scaler.season))
        z = scaler.scale(series.values).astype(np.float32)
        return cls(scaler, series, z, scaler.inputs(series), range(T, n_train), range(n_train, n_train + n_val),
                   range(n_train + n_val, n), config, file_digest(path))

    def windows(self, ends) -> ForecastBatch:
        """The windows whose last target is at each index of ``ends`` (B,) (as the module's docstring says)."""
        T = self.config.seq_len
        index = np.asarray(ends)[:, None] + np.arange(-T + 1, 1)  # (B, T) target indices
        return ForecastBatch(torch.from_numpy(self.z[index - 1]), torch.from_numpy(self.covariates[index]),
                             torch.from_numpy(self.z[index]))

    def batcher(self, seed: int) -> WindowBatcher:
        """The training windows' :class:`WindowBatcher`, seeded by ``seed``."""
        return WindowBatcher(self, self.config.batch_size, seed)

    def eval_batches(self, split: str = "val", batch_size: int = 256):
        """The windows ending at each target step of a split, in time order."""
        ends = np.asarray(getattr(self, split))
        for i in range(0, len(ends), batch_size):
            yield self.windows(ends[i:i + batch_size])
