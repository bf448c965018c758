"""Numeric series with a label at every sample: tagging a signal in time
(the lecture's "one output per input, e.g. detecting seizures in an EEG").

Files: CSV/TSV (a header row optional; the label column by name or index,
default the last), NumPy ``.npz`` (arrays ``x`` (T, F) and ``y`` (T,)) or
``.npy`` (T, F+1, the label last), and ARFF (numeric attributes, the label
last, as UCI ships EEG Eye State). One file is one recording, in time order.

Split in time, never shuffled across it: train is the first part, then
validation, then test (``val_fraction``, ``test_fraction``), so no sample's
neighbours leak from training into evaluation. Training reads windows of
``seq_len`` samples with a stride of half a window; validation and test are
each read whole, as one sequence.

Normalisation is fitted on the training part only: robust z-scores,
(x - median) / (1.4826 MAD), clipped to ±``CLIP`` so that a few huge
artefacts (EEG Eye State has values of 715,897 among ~4,000) cannot dominate
the scale or the inputs. The :class:`SeriesScaler` plays the tokenizer's part
in the run folder: it turns a file into model inputs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rnnkit.data.files import read_text
from rnnkit.errors import CheckpointError, DataError

SERIES_SUFFIXES = (".csv", ".tsv", ".npy", ".npz", ".arff")
CLIP = 10.0


def read_series(path: str | Path, label_column: str = "auto", num_features: int | None = None):
    """(x (T, F) float64, labels list[str] or None, header or None, rows or None).

    ``label_column``: "auto" (the last column), a header name or a 0-based
    index. Given ``num_features`` (a trained model's F), a file with exactly
    that many columns has no labels (samples to predict)."""
    path = Path(path)
    if path.suffix.lower() in (".npy", ".npz"):
        x, y = _read_numpy(path, num_features)
        header, rows = None, None
    else:
        header, rows = _read_rows(path)
        width = len(rows[0])
        if width == num_features:
            index = None
        elif label_column == "auto":
            index = width - 1
        elif label_column.lstrip("-").isdigit() and -width <= int(label_column) < width:
            index = int(label_column) % width
        elif header and label_column in header:
            index = header.index(label_column)
        else:
            raise DataError(f"{path}: no label column {label_column!r} (columns: {', '.join(header or [])}); "
                            f"pass --label-column NAME or a 0-based index")
        x = _numbers(path, rows, [i for i in range(width) if i != index])
        y = [r[index].strip() for r in rows] if index is not None else None
    if not np.isfinite(x).all():
        t, f = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{path}: sample {t + 1}, feature {f + 1} is {x[t, f]}; fill or drop missing and "
                        f"infinite values first")
    if len(x) < 2:
        raise DataError(f"{path} has {len(x)} sample(s); a series needs at least 2")
    return x, y, header, rows


def _read_numpy(path: Path, num_features: int | None):
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy file ({e})") from None
    if path.suffix.lower() == ".npz":
        if "x" not in data:
            raise DataError(f"{path}: no array 'x' (has {', '.join(data.files)}); save x (T, F) and y (T,)")
        x = np.asarray(data["x"], dtype=np.float64)
        y = [str(v) for v in data["y"].tolist()] if "y" in data else None
    else:
        table = np.asarray(data, dtype=np.float64)
        if table.ndim == 2 and table.shape[1] == num_features:
            x, y = table, None
        else:
            x, y = table[:, :-1], [str(int(v)) for v in table[:, -1]]
    if x.ndim != 2 or (y is not None and len(y) != len(x)):
        raise DataError(f"{path}: expected samples x features (T, F) and a label per sample, "
                        f"got shape {x.shape}")
    return x, y


def _read_rows(path: Path):
    text = read_text(path, "char")
    lines = text.splitlines()
    header = None
    if path.suffix.lower() == ".arff":
        names = [ln.split()[1] for ln in lines if ln.lower().startswith("@attribute")]
        start = next((i for i, ln in enumerate(lines) if ln.strip().lower() == "@data"), None)
        if start is None:
            raise DataError(f"{path}: no @DATA section; is it an ARFF file?")
        header, lines = names, [ln for ln in lines[start + 1:] if ln.strip() and not ln.startswith("%")]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [r for r in csv.reader(lines, delimiter=delimiter) if r]
    if header is None and rows and not is_number(rows[0][0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise DataError(f"{path} has no samples")
    check_rectangular(path, header, rows, "sample")
    return header, rows


def check_rectangular(path, header: list[str] | None, rows: list[list[str]], unit: str) -> int:
    """The width of a table's rows (the header's, else the first row's), or a DataError naming the first
    ``unit`` (row, sample) of another width."""
    width = len(header) if header else len(rows[0])
    for n, r in enumerate(rows, start=1):
        if len(r) != width:
            raise DataError(f"{path}: {unit} {n} has {len(r)} values where the file has {width} columns")
    return width


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a float (a CSV cell of a series, not a header or a date)."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def _numbers(path: Path, rows, columns) -> np.ndarray:
    x = np.empty((len(rows), len(columns)))
    for t, r in enumerate(rows):
        try:
            x[t] = [float(r[i]) for i in columns]
        except ValueError:
            bad = next(r[i] for i in columns if not is_number(r[i]))
            raise DataError(f"{path}: sample {t + 1} has {bad!r} where a number belongs") from None
    return x


class SeriesScaler:
    """Robust standardisation fitted on training samples; the series' "tokenizer"
    (``kind = "series"``, ``vocab_size = 0``: inputs are vectors, not ids)."""

    kind = "series"
    vocab_size = 0

    def __init__(self, center, scale):
        self.center = np.asarray(center, dtype=np.float64)  # (F,)
        self.scale = np.asarray(scale, dtype=np.float64)  # (F,)

    @classmethod
    def fit(cls, x: np.ndarray) -> "SeriesScaler":
        """Median and 1.4826 × MAD per feature of the training samples x (N, F) (a scale of 0 becomes 1)."""
        center = np.median(x, axis=0)
        scale = 1.4826 * np.median(np.abs(x - center), axis=0)
        return cls(center, np.where(scale > 0, scale, 1.0))

    @property
    def num_features(self) -> int:
        """F, the series' features."""
        return len(self.center)

    def transform(self, x: np.ndarray, what: str = "series") -> np.ndarray:
        """(T, F) raw -> (T, F) float32 robust z-scores clipped to ±CLIP."""
        if x.shape[1] != self.num_features:
            raise DataError(f"{what} has {x.shape[1]} features; the model was trained on {self.num_features}")
        return np.clip((x - self.center) / self.scale, -CLIP, CLIP).astype(np.float32)

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back (config.json's tokenizer entry)."""
        return {"kind": self.kind, "center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "SeriesScaler":
        """The scaler :meth:`to_dict` saved, or a CheckpointError naming the missing key."""
        try:
            return cls(d["center"], d["scale"])
        except KeyError as e:
            raise CheckpointError(f"series scaler in config.json lacks {e}") from None


def windows(n: int, length: int) -> list[tuple[int, int]]:
    """[start, end) windows of ``length`` over n samples with stride length // 2, the last flush with n."""
    if n <= length:
        return [(0, n)]
    stride = max(1, length // 2)
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] != n - length:
        starts.append(n - length)
    return [(s, s + length) for s in starts]


def write_series(out, path: str | Path, header, rows, predicted: list[str]) -> None:
    """Write a series' rows (CSV/TSV/ARFF input) with the prediction per sample
    as a new last column, comma-separated (tab for TSV); a NumPy input gives
    one prediction a line."""
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if rows is None:
        writer.writerow(["prediction"])
        writer.writerows([p] for p in predicted)
        return
    if header is not None:
        writer.writerow(list(header) + ["prediction"])
    for row, label in zip(rows, predicted):
        writer.writerow(list(row) + [label])
