"""Whole recordings with one label each (an EEG segment: seizure or not),
cut into windows, with the recording as the unit of splitting.

Sources (:func:`read_recordings`):

- a **manifest**: a CSV/TSV whose header has ``path`` and ``label``
  columns (``label`` may be absent for recordings to predict), each path
  relative to the manifest, one recording a row;
- the **Bonn EEG archive** (Andrzejak et al. 2001): ``bonn_eeg_dataset.zip``
  or a folder holding it, read with :mod:`zipfile` (nothing unpacked); sets
  A-E by folder (``A_Z/``, ..., ``E_S/``), 100 recordings of 4,097 samples
  at 173.61 Hz each, labelled by a protocol (:func:`bonn_protocol`).

A recording file is samples x channels, (T, C): a ``.txt`` of whitespace
separated columns (Bonn's one column), or the formats of
:mod:`rnnkit.data.series` (CSV/TSV/ARFF columns, ``.npy`` (T,) or (T, C),
``.npz`` array ``x``), every column a channel.

The scaler (:class:`RecordingScaler`) plays the tokenizer's part in the run
folder: it standardises each channel and groups ``frame`` consecutive
samples into one input vector, so that the encoder reads W / frame steps
of frame x C values. Windows and splits are :mod:`rnnkit.data.windows`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.series import CLIP, _numbers, _read_rows
from rnnkit.errors import CheckpointError, ConfigError, DataError

RECORDING_SUFFIXES = (".txt", ".csv", ".tsv", ".arff", ".npy", ".npz")
BONN_SETS = "ABCDE"
BONN_RATE = 173.61  # Hz, every Bonn recording (Andrzejak et al. 2001)
BONN_ZIP = "bonn_eeg_dataset.zip"


@dataclass
class Recording:
    """One recording: ``name`` (its path as the source names it), samples x channels ``x`` (T, C)
    float64, its ``label`` (None where the source has none)."""

    name: str
    x: np.ndarray
    label: str | None


# -- what a path is -----------------------------------------------------------------------------


def bonn_archive(path: str | Path) -> Path | None:
    """The Bonn zip that ``path`` is or holds (a folder with ``bonn_eeg_dataset.zip``), else None."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.zip"))
        named = [p for p in found if p.name == BONN_ZIP]
        return (named or found or [None])[0]
    return path if path.suffix.lower() == ".zip" else None


def is_manifest(path: str | Path) -> bool:
    """Whether ``path`` is a CSV/TSV table whose header has a ``path`` column."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".tsv") or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8", newline="") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    header = next(csv.reader([first], delimiter=delimiter), [])
    return "path" in [h.strip().lower() for h in header]


def is_recordings(path: str | Path | None) -> bool:
    """Whether ``path`` names recordings to classify whole (a manifest or the Bonn archive)."""
    return bool(path) and (bonn_archive(path) is not None or is_manifest(path))


# -- reading -------------------------------------------------------------------------------------


def parse_recording(name: str, data: bytes | None = None, path: Path | None = None) -> np.ndarray:
    """Samples x channels (T, C) float64 of one recording file (``data``: its bytes, for a zip member;
    else read from ``path``), checked finite and non-empty; errors name ``name``."""
    suffix = Path(name).suffix.lower()
    if suffix not in RECORDING_SUFFIXES:
        raise DataError(f"{name}: a recording must be one of {', '.join(RECORDING_SUFFIXES)}; convert it")
    try:
        if suffix == ".txt":
            text = (data if data is not None else path.read_bytes()).decode("ascii")
            lines = [line for line in text.splitlines() if line.strip()]
            values = text.split()
            width = len(lines[0].split()) if lines else 0
            if len(values) != width * len(lines):
                widths = sorted({len(line.split()) for line in lines})
                raise DataError(f"{name}: lines have {widths} values; every line needs one per channel")
            x = np.array(values, dtype=np.float64).reshape(len(lines), width)
        elif suffix in (".npy", ".npz"):
            loaded = np.load(io.BytesIO(data) if data is not None else path)
            if suffix == ".npz":
                if "x" not in loaded:
                    raise DataError(f"{name}: no array 'x' (has {', '.join(loaded.files)}); save x (T, C)")
                loaded = loaded["x"]
            x = np.asarray(loaded, dtype=np.float64)
            x = x[:, None] if x.ndim == 1 else x
        else:
            header, rows = _read_rows(path)
            x = _numbers(path, rows, range(len(rows[0])))
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{name}: not a numeric recording ({e}); one sample a line, one number a channel") from None
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"{name}: expected samples x channels (T, C), got shape {x.shape}")
    if not np.isfinite(x).all():
        t, c = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{name}: sample {t + 1}, channel {c + 1} is {x[t, c]}; fill or drop missing and "
                        f"infinite values first")
    flat = np.flatnonzero((x == x[0]).all(axis=0))
    if len(x) > 1 and len(flat):  # a disconnected electrode, or a column that is no signal
        raise DataError(f"{name}: channel {flat[0] + 1} is constant ({x[0, flat[0]]:g}) throughout; drop that "
                        f"channel from every recording, or this recording")
    return x


def read_manifest(path: str | Path, require_labels: bool = True) -> list[Recording]:
    """The recordings a manifest lists (``path,label`` rows, paths relative to the manifest)."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=delimiter))
    if not rows:
        raise DataError(f"{path}: the manifest lists no recordings; add rows of path,label")
    columns = {k.strip().lower(): k for k in rows[0] if k}
    if require_labels and "label" not in columns:
        raise DataError(f"{path}: the manifest has no label column; give a header of path,label")
    recordings = []
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        name = (row[columns["path"]] or "").strip()
        file = path.parent / name
        if not name or not file.is_file():
            raise DataError(f"{path}, line {n}: no such recording {file}; fix the path (relative to the manifest) "
                            f"or remove the row")
        label = (row[columns["label"]] or "").strip() if "label" in columns else None
        if require_labels and not label:
            raise DataError(f"{path}, line {n}: {name} has no label; give every recording one")
        recordings.append(Recording(name, parse_recording(str(file), path=file), label or None))
    return recordings


def bonn_protocol(classes: str) -> list[str]:
    """The labels of a Bonn protocol: ``"A,E"`` (set A against E), ``"ABCD:E"`` (sets A-D as one
    label against E), ``"A,B,C,D,E"`` (five classes); a label is the sets it groups."""
    groups = [g.strip().upper() for g in classes.replace(":", ",").split(",") if g.strip()]
    letters = "".join(groups)
    if len(groups) < 2 or any(c not in BONN_SETS for c in letters) or len(set(letters)) != len(letters):
        raise ConfigError(f"classes must group the Bonn sets A-E into at least two labels, each set once "
                          f"(A,E or ABCD:E or A,B,C,D,E); got {classes!r}")
    return groups


def read_bonn(path: str | Path, classes: str) -> list[Recording]:
    """The recordings of the Bonn archive in the sets ``classes`` names (:func:`bonn_protocol`), each
    labelled by its group; a member's set is the first letter of its folder (``A_Z/Z001.txt``)."""
    archive = bonn_archive(path)
    groups = bonn_protocol(classes)
    try:
        with zipfile.ZipFile(archive) as z:
            members = sorted(n for n in z.namelist() if n.lower().endswith(".txt") and "/" in n)
            recordings = []
            for name in members:
                group = next((g for g in groups if name[0].upper() in g), None)
                if group is not None:
                    recordings.append(Recording(name, parse_recording(f"{archive}:{name}", z.read(name)), group))
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not the Bonn EEG zip ({e}); pass {BONN_ZIP} or the folder holding it") from None
    found = {r.label for r in recordings}
    if set(groups) - found:
        raise DataError(f"{archive}: no recordings of set(s) {', '.join(sorted(set(groups) - found))}; "
                        f"is it the Bonn EEG zip (folders A_Z/ ... E_S/)?")
    return recordings


def read_recordings(path: str | Path, classes: str = "auto", require_labels: bool = True) -> list[Recording]:
    """The recordings of a manifest or of the Bonn archive (``classes`` its protocol; ``auto``: five
    classes), their channels checked to agree."""
    if bonn_archive(path) is not None:
        recordings = read_bonn(path, ",".join(BONN_SETS) if classes == "auto" else classes)
    else:
        recordings = read_manifest(path, require_labels)
    channels = recordings[0].x.shape[1]
    for r in recordings:
        if r.x.shape[1] != channels:
            raise DataError(f"{path}: {r.name} has {r.x.shape[1]} channel(s) where {recordings[0].name} has "
                            f"{channels}; give every recording the same channels")
    return recordings


FEATURES = ("samples", "spectrum", "samples+spectrum")


class RecordingScaler:
    """Robust standardisation per channel fitted on training recordings, z = (x - median) / (1.4826
    MAD) clipped to ±CLIP, then framing: a window of W samples x C channels becomes
    S = (W - f) // ``hop`` + 1 steps (f = ``frame``; ``hop`` defaults to f, frames side by side,
    S = W / f), step s read from the f consecutive samples z_{s·hop+1..s·hop+f} of every channel as

    - ``features="samples"``: the samples themselves, f x C values a step;
    - ``features="spectrum"``: their log power spectrum, log(|rfft(h ⊙ z_{s,·})|² + 1e-3) with h the
      (symmetric) Hann window, f / 2 + 1 values a channel (a spectrogram; with hop < f its frames
      overlap, as a short-time Fourier transform's usually do: finer frequency steps, f / fs, at
      the same number of steps);
    - ``features="samples+spectrum"``: both, the samples then the log powers, f x C + (f / 2 + 1) x C
      values a step (the waveform's shape, which the power spectrum drops with the phase, beside
      the band powers that a recurrent layer would otherwise have to learn to filter out).

    With a ``segment`` n > 0 (``--recording-spectrum``) it also gives each recording one vector of
    the whole recording (:meth:`spectrum`, P = (n / 2 + 1) x C values), its Welch log power spectrum
    standardised per bin by the mean and standard deviation over the training recordings
    (:meth:`fit_spectrum`): finer frequency steps (fs / n) than a window's frames can hold.

    The recordings' "tokenizer" in the run folder (``kind = "recordings"``)."""

    kind = "recordings"
    vocab_size = 0

    def __init__(self, center, scale, frame: int = 1, features: str = "samples", hop: int | None = None,
                 segment: int = 0, spectrum_center=(), spectrum_scale=()):
        self.center = np.asarray(center, dtype=np.float64)  # (C,)
        self.scale = np.asarray(scale, dtype=np.float64)  # (C,)
        self.frame = int(frame)
        self.hop = int(hop or frame)
        self.features = features
        self.segment = int(segment)
        self.spectrum_center = np.asarray(spectrum_center, dtype=np.float64)  # (P,) once fitted
        self.spectrum_scale = np.asarray(spectrum_scale, dtype=np.float64)  # (P,) once fitted

    @classmethod
    def fit(cls, x: np.ndarray, frame: int = 1, features: str = "samples", hop: int | None = None
            ) -> "RecordingScaler":
        """Fitted on samples x (N, C) of the training recordings."""
        center = np.median(x, axis=0)
        scale = 1.4826 * np.median(np.abs(x - center), axis=0)
        return cls(center, np.where(scale > 0, scale, 1.0), frame, features, hop)

    def fit_spectrum(self, recordings: list[np.ndarray], segment: int, names: list[str] | None = None) -> None:
        """Fit :meth:`spectrum`'s standardisation on the training recordings' raw samples (each (T, C)):
        with segments of ``segment`` samples, each bin's mean and standard deviation over them."""
        self.segment = int(segment)
        names = names or [f"recording {i + 1}" for i in range(len(recordings))]
        powers = np.stack([self.log_power(x, name) for x, name in zip(recordings, names)])  # (R, P)
        self.spectrum_center = powers.mean(0)
        scale = powers.std(0)
        self.spectrum_scale = np.where(scale > 0, scale, 1.0)

    @property
    def summary_size(self) -> int:
        """P, the values of :meth:`spectrum` (0 without ``segment``)."""
        return self.channels * (self.segment // 2 + 1) if self.segment else 0

    def log_power(self, x: np.ndarray, what: str = "recording") -> np.ndarray:
        """(T, C) raw -> (P,) float64, the Welch estimate of each channel's log power spectral density,
        channel by channel (Welch 1967): the scaled samples z cut into segments z_k of n samples every
        n / 2 (half overlapping; the last segment flush with the end), h the (symmetric) Hann window,

            P(f) = (1 / K) Σ_k |rfft(h ⊙ z_k)(f)|² / Σ h²,   log(P(f) + 1e-3),   f = 0 .. n / 2.
        """
        n = self.segment
        if len(x) < n:
            raise DataError(f"{what} has {len(x):,} samples, fewer than one --recording-spectrum segment of {n:,}; "
                            f"lower --recording-spectrum or remove it")
        z = np.clip((x - self.center) / self.scale, -CLIP, CLIP)  # (T, C)
        starts = list(range(0, len(z) - n + 1, max(1, n // 2)))
        starts += [len(z) - n] if starts[-1] != len(z) - n else []
        h = np.hanning(n)
        segments = np.stack([z[s:s + n] for s in starts]) * h[:, None]  # (K, n, C)
        power = (np.abs(np.fft.rfft(segments, axis=1)) ** 2).mean(0) / (h ** 2).sum()  # (n / 2 + 1, C)
        return np.log(power + 1e-3).T.reshape(-1)  # (C (n / 2 + 1),) channel by channel

    def spectrum(self, x: np.ndarray, what: str = "recording") -> np.ndarray:
        """(T, C) raw -> (P,) float32: the recording's :meth:`log_power`, standardised per bin as fitted."""
        return ((self.log_power(x, what) - self.spectrum_center) / self.spectrum_scale).astype(np.float32)

    @property
    def channels(self) -> int:
        """C, the recordings' channels."""
        return len(self.center)

    @property
    def num_features(self) -> int:
        """The width of one step of the model's input: f x C samples, (f / 2 + 1) x C powers, or both."""
        samples = self.frame if "samples" in self.features else 0
        powers = self.frame // 2 + 1 if "spectrum" in self.features else 0
        return self.channels * (samples + powers)

    def windows(self, x: np.ndarray, starts: list[int], window: int, what: str = "recording") -> np.ndarray:
        """(T, C) raw -> (N, S, num_features) float32: the windows at ``starts``, scaled and framed."""
        if x.shape[1] != self.channels:
            raise DataError(f"{what} has {x.shape[1]} channel(s); the model was trained on {self.channels}")
        z = np.clip((x - self.center) / self.scale, -CLIP, CLIP).astype(np.float32)  # (T, C)
        cut = np.stack([z[s:s + window] for s in starts])  # (N, W, C)
        n, steps, f = len(starts), (window - self.frame) // self.hop + 1, self.frame
        frames = np.lib.stride_tricks.sliding_window_view(cut, f, axis=1)[:, ::self.hop][:, :steps]  # (N, S, C, f)
        frames = frames.transpose(0, 1, 3, 2)  # (N, S, f, C)
        samples = frames.reshape(n, steps, f * self.channels)  # (N, S, f x C)
        if self.features == "samples":
            return np.array(samples)  # a copy: the view is read-only
        spectra = np.fft.rfft(frames * np.hanning(f)[:, None], axis=2)  # (N, S, f / 2 + 1, C)
        power = np.log(np.abs(spectra) ** 2 + 1e-3).astype(np.float32)
        power = power.transpose(0, 1, 3, 2).reshape(n, steps, (f // 2 + 1) * self.channels)  # channel by channel
        return power if self.features == "spectrum" else np.concatenate([samples, power], axis=2)

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back (config.json's tokenizer entry)."""
        return {"kind": self.kind, "center": self.center.tolist(), "scale": self.scale.tolist(), "frame": self.frame,
                "hop": self.hop, "features": self.features,
                **({"segment": self.segment, "spectrum_center": self.spectrum_center.tolist(),
                    "spectrum_scale": self.spectrum_scale.tolist()} if self.segment else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "RecordingScaler":
        """The scaler :meth:`to_dict` saved, or a CheckpointError naming the missing key."""
        try:
            return cls(d["center"], d["scale"], d["frame"], d["features"], d.get("hop"),  # no hop: side by side
                       d.get("segment", 0), d.get("spectrum_center", ()), d.get("spectrum_scale", ()))
        except KeyError as e:
            raise CheckpointError(f"recording scaler in config.json lacks {e}") from None
