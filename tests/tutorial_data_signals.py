"""Small generated stand-ins for the numeric and audio data sets the tutorials read
(``docs/tutorials``): each maker writes, under a tutorial's folder, the files its commands name, in
the real set's format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import zipfile

import numpy as np

BONN_SETS = {"A": "A_Z/Z", "B": "B_O/O", "C": "C_N/N", "D": "D_F/F", "E": "E_S/S"}  # set -> folder/file prefix


def forecast(folder: Path) -> None:
    """``data/co2.csv``: 200 months from 1958-03 as ``month,co2`` rows, a rising trend, a yearly wave
    and noise, like the Mauna Loa record the page reads (526 months)."""
    t = np.arange(200)
    co2 = 315 + 0.1 * t + 3 * np.sin(2 * np.pi * (t + 2) / 12) + np.random.default_rng(0).normal(0, 0.3, t.size)
    months = [f"{1958 + (m + 2) // 12}-{(m + 2) % 12 + 1:02d}" for m in t]
    (folder / "data").mkdir()
    (folder / "data" / "co2.csv").write_text("month,co2\n" + "".join(f"{m},{v:.2f}\n" for m, v in zip(months, co2)))


def bonn_recording(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) integer samples like one Bonn segment: noise whose pitch and size differ by set, and for
    set E (a seizure) a large rhythmic wave on top."""
    t = np.arange(n) / 173.61
    pitch = {"A": 10, "B": 8, "C": 6, "D": 4, "E": 3}[kind]
    wave = 40 * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 6.3)) + rng.normal(0, 20, n)
    return np.rint(wave * (8 if kind == "E" else 1)).astype(int)


def bonn_zip(path: Path, per_set: int = 10, n: int = 1200, seed: int = 0) -> None:
    """A stand-in for ``bonn_eeg_dataset.zip``: sets A-E in their folders (``A_Z/Z001.txt``...), one
    integer sample a line with CRLF as the archive has them, ``per_set`` recordings of ``n`` samples."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for kind, prefix in BONN_SETS.items():
            for i in range(1, per_set + 1):
                z.writestr(f"{prefix}{i:03d}.txt", "".join(f"{v}\r\n" for v in bonn_recording(kind, n, rng)))


def recordings(folder: Path) -> None:
    """``data/bonn_eeg_dataset.zip`` (50 recordings of 1,200 samples instead of 500 of 4,097)."""
    bonn_zip(folder / "data" / "bonn_eeg_dataset.zip")


SIGNAL_DATA: dict[str, Callable[[Path], None]] = {"forecast": forecast, "recordings": recordings}
