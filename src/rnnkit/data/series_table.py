"""Reading a numeric series file to forecast: CSV/TSV (a header row
optional) or NumPy ``.npy`` (T, C); the channels, the time column and the
covariate columns as a :class:`rnnkit.data.forecast.ForecastConfig` names them
(:mod:`rnnkit.data.forecast`); every cell a finite number, but the future rows
at the end of a file to forecast, whose channels are empty."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.calendar import format_times
from rnnkit.data.files import read_text
from rnnkit.data.series import check_rectangular, is_number
from rnnkit.errors import DataError

FORECAST_SUFFIXES = (".csv", ".tsv", ".npy")
TIME_NAMES = ("time", "date", "datetime", "timestamp", "year", "month", "day", "ds")


@dataclass
class SeriesFile:
    """What a series file holds: ``values`` (T, C) of the ``channels`` (NaN in the
    future rows at its end), ``covariates`` (T, K) of the named covariate columns,
    ``times`` (T,) (datetime64 or float64; None without a time column), and the
    ``header``, ``rows`` and ``delimiter`` to write a forecast in the same format
    (``rows`` None for NumPy)."""

    path: Path
    channels: list[str]
    values: np.ndarray
    covariate_names: list[str]
    covariates: np.ndarray
    time_name: str | None
    times: np.ndarray | None
    header: list[str] | None
    rows: list[list[str]] | None
    delimiter: str
    columns: dict[str, int]  # the file's column of each name read

    @property
    def history(self) -> int:
        """The rows with observed values (the future rows follow them)."""
        observed = ~np.isnan(self.values).all(axis=1)
        return int(observed.nonzero()[0][-1]) + 1 if observed.any() else 0


def _parse_times(texts: list[str]) -> np.ndarray | None:
    """Time stamps as float64 (numbers, e.g. years) or datetime64 (ISO dates); None if neither."""
    if all(is_number(t) for t in texts):
        return np.array([float(t) for t in texts])
    try:
        return np.array([np.datetime64(t.strip().replace(" ", "T")) for t in texts])
    except ValueError:
        return None


def _column(spec: str, header: list[str] | None, width: int, path: Path, setting_name: str) -> int:
    spec = spec.strip()
    if spec.lstrip("-").isdigit() and -width <= int(spec) < width:
        return int(spec) % width
    if header and spec in header:
        return header.index(spec)
    raise DataError(f"{path}: no column {spec!r} (columns: {', '.join(header or map(str, range(width)))}); "
                    f"fix --{setting_name.replace('_', '-')}")


def read_series_file(path: str | Path, config, future: bool = False) -> SeriesFile:
    """Read ``path`` as ``config`` says. ``future``: rows at the end whose channels are all
    empty are future rows (their covariates known); otherwise every cell must be a finite number."""
    path = Path(path)
    if path.suffix.lower() not in FORECAST_SUFFIXES:
        raise DataError(f"{path}: a series to forecast is a .csv, .tsv or .npy file")
    if path.suffix.lower() == ".npy":
        return _read_npy(path, config)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [r for r in csv.reader(read_text(path, "char").splitlines(), delimiter=delimiter) if r]
    header = None
    dated = rows and _parse_times([rows[0][0]]) is not None and all(is_number(c) for c in rows[0][1:])
    if rows and not dated and not all(is_number(c) or not c.strip() for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{path} has no samples")
    width = check_rectangular(path, header, rows, "row")
    names = header or [str(i) for i in range(width)]
    time_index = _time_column(config.time_column, header, rows, width, path)
    covariate_index = [_column(c, header, width, path, "covariate_columns")
                       for c in config.covariate_columns.split(",") if c.strip()]
    if config.channels == "auto":
        channel_index = [i for i in range(width) if i != time_index and i not in covariate_index]
    else:
        channel_index = [_column(c, header, width, path, "channels") for c in config.channels.split(",")]
    if not channel_index:
        raise DataError(f"{path}: no column is left to forecast; name one with --channels")
    overlap = set(channel_index) & ({time_index} | set(covariate_index))
    if overlap:
        raise DataError(f"{path}: column {names[min(overlap)]!r} is both forecast and an input; fix --channels")
    values = _numbers(path, rows, channel_index, names, future)
    covariates = _numbers(path, rows, covariate_index, names, False)
    times = None
    if time_index is not None:
        times = _parse_times([r[time_index] for r in rows])
        if times is None:
            raise DataError(f"{path}: column {names[time_index]!r} holds neither numbers nor ISO dates; fix "
                            f"--time-column (none: no time column)")
    return SeriesFile(path, [names[i] for i in channel_index], values, [names[i] for i in covariate_index],
                      covariates, names[time_index] if time_index is not None else None, times, header, rows,
                      delimiter, {names[i]: i for i in [*channel_index, *covariate_index] +
                                  ([time_index] if time_index is not None else [])})


def _time_column(spec: str, header, rows, width: int, path: Path) -> int | None:
    if spec == "none":
        return None
    if spec != "auto":
        return _column(spec, header, width, path, "time_column")
    first = [r[0] for r in rows]
    named = header is not None and header[0].strip().lower() in TIME_NAMES
    dates = not all(is_number(t) for t in first) and _parse_times(first) is not None
    return 0 if width > 1 and (named or dates) else None


def _numbers(path: Path, rows, columns: list[int], names: list[str], future: bool) -> np.ndarray:
    """(T, len(columns)) float64; an empty or non-finite cell is an error, except (``future``) in
    the rows at the end whose cells are all empty."""
    x = np.full((len(rows), len(columns)), np.nan)
    end = len(rows)
    if future:
        while end > 0 and all(not rows[end - 1][i].strip() for i in columns):
            end -= 1
    for t, r in enumerate(rows[:end]):
        for j, i in enumerate(columns):
            cell = r[i].strip()
            value = float(cell) if is_number(cell) else None
            if value is None or not np.isfinite(value):
                what = repr(cell) if cell else "empty"
                raise DataError(f"{path}: row {t + 1}, column {names[i]!r} is {what}; fill or drop missing and "
                                f"infinite values first")
            x[t, j] = value
    return x


def _read_npy(path: Path, config) -> SeriesFile:
    try:
        x = np.load(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy file ({e})") from None
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise DataError(f"{path}: expected steps x channels (T, C), got shape {x.shape}")
    if config.time_column not in ("auto", "none") or config.covariate_columns or config.channels != "auto":
        raise DataError(f"{path}: a NumPy series has no named columns; give a CSV for --time-column, "
                        f"--covariate-columns or --channels")
    if not np.isfinite(x).all():
        t, c = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{path}: row {t + 1}, channel {c} is {x[t, c]}; fill or drop missing and infinite values "
                        f"first")
    return SeriesFile(path, [str(i) for i in range(x.shape[1])], x, [], np.zeros((len(x), 0)), None, None, None,
                      None, ",", {})


def _name(channel: str, q: float) -> str:
    return f"{channel}_q{q:g}"


def forecast_table(series: SeriesFile, history: int, horizon: int, times, point: np.ndarray, qs: np.ndarray,
                   quantiles) -> bytes:
    """A forecast in its series' file format: the observed rows as they were, then the forecast's rows (the
    time stamps continued, the channels' point forecasts (H, C), the covariates the file gave), and a column
    a channel and quantile (``qs`` (Q, H, C)); a NumPy series' as an .npy file's bytes."""
    C = len(series.channels)
    if series.rows is None:  # NumPy: (history + H, C + C Q), the quantiles NaN in the observed rows
        table = np.full((history + horizon, C * (1 + len(quantiles))), np.nan)
        table[:history, :C] = series.values[:history]
        table[history:, :C] = point
        for i in range(len(quantiles)):
            table[history:, C * (1 + i):C * (2 + i)] = qs[i]
        buffer = io.BytesIO()
        np.save(buffer, table)
        return buffer.getvalue()
    width = len(series.rows[0])
    rows = [list(r) + [""] * (len(quantiles) * C) for r in series.rows[:history]]
    stamps = format_times(times, [r[series.columns[series.time_name]] for r in series.rows[:history]]) \
        if times is not None else None
    for h in range(horizon):
        given = series.rows[history + h] if history + h < len(series.rows) else [""] * width
        row = [given[i] if series.rows and i in _kept(series) else "" for i in range(width)]
        if stamps is not None:
            row[series.columns[series.time_name]] = stamps[h]
        for c, name in enumerate(series.channels):
            row[series.columns[name]] = f"{point[h, c]:.6g}"
        row += [f"{qs[i, h, c]:.6g}" for i in range(len(quantiles)) for c in range(C)]
        rows.append(row)
    header = None if series.header is None else \
        list(series.header) + [_name(ch, q) for q in quantiles for ch in series.channels]
    lines = io.StringIO()
    writer = csv.writer(lines, delimiter=series.delimiter, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return lines.getvalue().encode()


def _kept(series) -> set[int]:
    """The columns of a future row the file gives and the forecast keeps: the covariates'."""
    return {series.columns[name] for name in series.covariate_names}
