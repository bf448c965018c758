"""Small generated stand-ins for the numeric and audio data sets the tutorials read
(``docs/tutorials``): each maker writes, under a tutorial's folder, the files its commands name, in
the real set's format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def forecast(folder: Path) -> None:
    """``data/co2.csv``: 200 months from 1958-03 as ``month,co2`` rows, a rising trend, a yearly wave
    and noise, like the Mauna Loa record the page reads (526 months)."""
    t = np.arange(200)
    co2 = 315 + 0.1 * t + 3 * np.sin(2 * np.pi * (t + 2) / 12) + np.random.default_rng(0).normal(0, 0.3, t.size)
    months = [f"{1958 + (m + 2) // 12}-{(m + 2) % 12 + 1:02d}" for m in t]
    (folder / "data").mkdir()
    (folder / "data" / "co2.csv").write_text("month,co2\n" + "".join(f"{m},{v:.2f}\n" for m, v in zip(months, co2)))


SIGNAL_DATA: dict[str, Callable[[Path], None]] = {"forecast": forecast}
