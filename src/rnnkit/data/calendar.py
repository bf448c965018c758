"""The time axis of a series: its regular step (numbers, seconds or months),
the time stamps after it, written as the file wrote its own, calendar features
(sin and cos of the hour, weekday, month, day of the year) and the season a
series has (from its step, else from its autocorrelation)."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import DataError

CALENDAR_PERIODS = {"hour": 24.0, "weekday": 7.0, "month": 12.0, "dayofyear": 365.25}
# the season a regular time step implies: (unit, step) -> steps a season
SEASONS = {("s", 3600): 24, ("s", 86400): 7, ("s", 604800): 52, ("M", 1): 12, ("M", 3): 4}


def time_step(times: np.ndarray | None) -> tuple[str, float] | None:
    """The series' regular step: ("n", d) for numbers, ("s", seconds) or ("M", months) for dates;
    None when there is no time column or its steps are irregular."""
    if times is None or len(times) < 2:
        return None
    if times.dtype.kind == "f":
        d = np.diff(times)
        return ("n", float(d[0])) if np.allclose(d, d[0]) and d[0] > 0 else None
    seconds = np.diff(times.astype("datetime64[s]")).astype(np.int64)
    if (seconds == seconds[0]).all() and seconds[0] > 0:
        return "s", float(seconds[0])
    months = times.astype("datetime64[M]")
    within = (times.astype("datetime64[s]") - months.astype("datetime64[s]")).astype(np.int64)
    steps = np.diff(months).astype(np.int64)
    if (steps == steps[0]).all() and steps[0] > 0 and (within == within[0]).all():
        return "M", float(steps[0])
    return None


def future_times(times: np.ndarray, step: tuple[str, float], horizon: int) -> np.ndarray:
    """The ``horizon`` time stamps after ``times`` at its regular ``step``."""
    k = np.arange(1, horizon + 1)
    unit, d = step
    if unit == "n":
        return times[-1] + k * d
    if unit == "s":
        return times[-1].astype("datetime64[s]") + (k * int(d)).astype("timedelta64[s]")
    last = times[-1].astype("datetime64[s]")
    month = last.astype("datetime64[M]")
    return (month + (k * int(d)).astype("timedelta64[M]")).astype("datetime64[s]") + (last - month)


def format_times(times: np.ndarray, like: list[str]) -> list[str]:
    """Time stamps written as the file wrote ``like`` (its column's cells)."""
    sample = like[-1].strip()
    if times.dtype.kind == "f":
        decimals = len(sample.split(".")[1]) if "." in sample else 0
        return [f"{t:.{decimals}f}" for t in times]
    unit = np.datetime_data(np.datetime64(sample.replace(" ", "T")).dtype)[0]
    text = np.datetime_as_string(times.astype(f"datetime64[{unit}]"), unit=unit)
    return [t.replace("T", " ") if " " in sample else t for t in text]


def calendar_features(times: np.ndarray | None, names: list[str], path) -> np.ndarray:
    """(T, 2 len(names)) sin and cos of each calendar feature of ``times`` (datetime64)."""
    if not names:
        return np.zeros((0 if times is None else len(times), 0))
    if times is None or times.dtype.kind != "M":
        raise DataError(f"{path}: --calendar reads dates, and the file has no date column; give --time-column "
                        f"or drop --calendar")
    seconds = times.astype("datetime64[s]")
    days = seconds.astype("datetime64[D]")
    value = {"hour": lambda: (seconds - days).astype(np.int64) / 3600.0,
             "weekday": lambda: ((days.astype(np.int64) + 3) % 7).astype(float),  # 1970-01-01 was a Thursday
             "month": lambda: (seconds.astype("datetime64[M]").astype(np.int64) % 12).astype(float),
             "dayofyear": lambda: (days - seconds.astype("datetime64[Y]").astype("datetime64[D]")).astype(float)}
    angles = [2 * np.pi * value[n]() / CALENDAR_PERIODS[n] for n in names]
    return np.stack([f(a) for a in angles for f in (np.sin, np.cos)], axis=1)


def decide_season(values: np.ndarray, step: tuple[str, float] | None) -> tuple[int, str]:
    """(season, why): from a regular time step (monthly: 12, ...), else the lag in
    2 .. T/3 where the training part's autocorrelation, averaged over channels, peaks
    (a local maximum above 0.2); 1 (no season) when it has no such peak."""
    if step is not None and (step[0], int(step[1])) in SEASONS:
        season = SEASONS[(step[0], int(step[1]))]
        return season, f"the time column's step ({_step_words(step)})"
    z = (values - values.mean(0)) / np.where(values.std(0) > 0, values.std(0), 1.0)
    n = len(z)
    max_lag = n // 3
    if max_lag < 3:
        return 1, "too short for a season"
    spectrum = np.fft.rfft(z, n=2 * n, axis=0)  # autocorrelation through the FFT
    acf = np.fft.irfft(spectrum * np.conj(spectrum), axis=0)[:max_lag + 2].mean(axis=1)
    acf = acf / acf[0]
    peaks = [lag for lag in range(2, max_lag + 1) if acf[lag] > 0.2 and acf[lag] >= acf[lag - 1]
             and acf[lag] >= acf[lag + 1]]
    if not peaks:
        return 1, "no autocorrelation peak"
    best = max(peaks, key=lambda lag: acf[lag])
    return best, f"autocorrelation peak {acf[best]:.2f} at lag {best}"


def _step_words(step: tuple[str, float]) -> str:
    unit, d = step
    names = {("s", 3600): "hourly", ("s", 86400): "daily", ("s", 604800): "weekly", ("M", 1): "monthly",
             ("M", 3): "quarterly", ("M", 12): "yearly"}
    return names.get((unit, int(d)), f"{d:g} {'months' if unit == 'M' else 'seconds' if unit == 's' else 'units'}")
