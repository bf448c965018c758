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


def seizures(folder: Path) -> None:
    """``data/bonn_eeg_dataset.zip`` of shorter recordings (500 samples), which the page lays end to end."""
    bonn_zip(folder / "data" / "bonn_eeg_dataset.zip", n=500)


FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def fsdd_recordings(out: Path, takes: int = 7, seed: int = 0) -> None:
    """FSDD's layout under ``out`` (``{digit}_{speaker}_{take}.wav``, 8 kHz mono 16-bit) for its six
    speakers, ``takes`` takes each (the real set has 50; takes 0-4 are its test split), each a 60-90 ms
    tone whose pitch gives the digit and is shifted a little by the speaker."""
    from rnnkit.data.audio import write_wav

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    for s, speaker in enumerate(FSDD_SPEAKERS):
        for digit in range(10):
            for take in range(takes):
                t = np.arange(rng.integers(480, 720)) / 8000
                tone = 0.5 * np.sin(2 * np.pi * (300 + 150 * digit) * (1 + 0.02 * s) * t)
                write_wav(out / f"{digit}_{speaker}_{take}.wav", tone + rng.normal(0, 0.01, t.size), 8000)


def ctc(folder: Path) -> None:
    """``digits/``: what the page's ``rnnkit digits`` writes (train, test and speaker manifests and their
    wav files), built by the same function from stand-in recordings, 48 training strings instead of 3,000
    and 12 test strings instead of 500."""
    from rnnkit.data.digits import build_digit_strings

    fsdd_recordings(folder / "recordings")
    build_digit_strings(folder / "recordings", folder / "digits", num_train=48, num_test=12)


EEG_CHANNELS = "AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4".split()


def eeg_tagging(folder: Path, n: int = 1500, seed: int = 0) -> None:
    """``data/eeg_eye_state.arff``: ``n`` rows of the UCI file's 14 channels near 4,300 and an
    ``eyeDetection`` column (0 open, 1 closed) in runs of 50-300 samples; closed eyes raise O1 and O2."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(40) % 2, rng.integers(50, 300, 40))[:n]
    x = 4300 + rng.normal(0, 10, (len(runs), len(EEG_CHANNELS)))
    x[:, 6:8] += 30 * runs[:, None]
    head = ["@RELATION EEG_DATA", ""] + [f"@ATTRIBUTE {c} NUMERIC" for c in EEG_CHANNELS]
    head += ["@ATTRIBUTE eyeDetection {0,1}", "", "@DATA"]
    rows = [",".join(f"{v:.2f}" for v in row) + f",{y}" for row, y in zip(x, runs)]
    (folder / "data").mkdir()
    (folder / "data" / "eeg_eye_state.arff").write_text("\r\n".join(head + rows) + "\r\n")


SIGNAL_DATA: dict[str, Callable[[Path], None]] = {"forecast": forecast, "recordings": recordings,
                                                 "seizures": seizures, "eeg-tagging": eeg_tagging, "ctc": ctc}
