"""Recordings cut into windows, split by recording: the examples of a
classifier of whole recordings (:class:`RecordingData`).

Windows of ``window`` samples every ``stride`` samples (:func:`window_starts`)
are the examples the classifier trains on; each carries the index of its
recording, so that validation and prediction combine a recording's windows
into one decision (the sum of their log-probabilities). Splits and folds
(:func:`split_recordings`) take whole recordings, stratified by label: no
window of a held-out recording is ever in training.

The scaler (:class:`rnnkit.data.recordings.RecordingScaler`) is fitted on
the training recordings' samples only; so is, with ``recording_spectrum``,
the standardisation of each recording's whole spectrum, which every one of
its windows then carries (``Windows.summary``, batched by
:class:`WindowBatcher` as :class:`rnnkit.data.batches.WindowBatch`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import check_at_least, check_choice, setting
from rnnkit.data.batches import WindowBatch
from rnnkit.data.files import file_digest
from rnnkit.data.recordings import FEATURES, Recording, RecordingScaler, bonn_archive, read_recordings
from rnnkit.data.sequences import BucketBatcher
from rnnkit.errors import ConfigError, DataError


# -- windows, splits, scaling ----------------------------------------------------------------


def auto_window(shortest: int) -> int:
    """The window ``auto`` picks: the largest power of two that fits 8 times in the shortest
    recording (so each gives 15 or more half-overlapping windows), within 16..512 samples."""
    window = 16
    while window * 2 <= min(512, shortest // 8):
        window *= 2
    return min(window, shortest)


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Starts of the windows of ``window`` samples every ``stride`` over n >= window samples, the last
    flush with the end (so no sample is left out)."""
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def check_lengths(recordings: list[Recording], window: int, what) -> None:
    """A DataError naming the first recording shorter than one window."""
    for r in recordings:
        if len(r.x) < window:
            raise DataError(f"{what}: {r.name} has {len(r.x):,} samples, fewer than one window of {window:,}; "
                            f"lower --window or remove it")


def stratified_folds(labels: list[str], k: int, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of each example: each label's examples, in a seeded random order, dealt to the
    folds in turn, so every fold holds each label's share to within one."""
    labels = np.asarray(labels)
    fold = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    offset = 0
    for label in sorted(set(labels.tolist())):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)  # the next label starts where this one stopped: folds stay even in size
    return fold


def split_recordings(labels: list[str], val_fraction: float, test_fraction: float, folds: int = 0,
                     fold: int = 1, fold_seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of the recordings in train, val and test, stratified by label (seeded: every run the
    same): with ``folds`` k > 0, test is fold ``fold`` (1-based) of k, the folds dealt after a shuffle
    seeded by ``fold_seed`` (0: the benchmarks' folds; another seed, another partition of the same
    recordings), and validation ``val_fraction`` of the rest; else test and validation are those
    fractions."""
    index = np.arange(len(labels))
    if folds:
        if len(labels) < folds:
            raise DataError(f"{folds} folds need at least {folds} recordings; there are {len(labels)}")
        in_test = stratified_folds(labels, folds, fold_seed) == fold - 1
        test, rest = index[in_test], index[~in_test]
    else:
        test, rest = _take(index, labels, test_fraction, seed=0)
    val, train = _take(rest, labels, val_fraction, seed=1)
    if len(train) == 0:
        raise DataError("no training recordings are left after the split; lower --val-fraction / --test-fraction")
    return {"train": train, "val": val, "test": test}


def _take(index: np.ndarray, labels: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(taken, rest) of ``index``: ``fraction`` of each label's recordings, after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    names = np.asarray(labels)[index]
    taken = []
    for label in sorted(set(names.tolist())):
        members = rng.permutation(index[names == label])
        taken.extend(members[:int(round(len(members) * fraction))])
    taken = np.sort(np.array(taken, dtype=np.int64))
    return taken, np.setdiff1d(index, taken)


@dataclass
class Windows:
    """The windows of some recordings: inputs ``ids`` (each (S, F), S steps of F features: see
    :class:`RecordingScaler`) and their recording's label id ``labels`` (what
    :class:`rnnkit.data.sequences.BucketBatcher` reads), and for each window the index of its
    ``recording``; per recording its ``names`` and ``gold`` label id."""

    ids: list[np.ndarray]
    labels: list[int]
    recording: np.ndarray  # (N,) int64
    names: list[str] = field(default_factory=list)
    gold: list[int] = field(default_factory=list)
    summary: np.ndarray | None = None  # (R, P) float32 per recording, with --recording-spectrum

    def __len__(self) -> int:
        return len(self.ids)


class WindowBatcher(BucketBatcher):
    """:class:`BucketBatcher` over :class:`Windows`: a batch is a :class:`LabelledBatch`, or with the
    recordings' summaries a :class:`WindowBatch` whose ``summary`` (B, P) is each window's recording's."""

    def batch(self, index: np.ndarray):
        batch = super().batch(index)
        summary = self.examples.summary
        if summary is None:
            return batch
        return WindowBatch(*batch, torch.from_numpy(summary[self.examples.recording[index]]))  # (B, P)


def cut_windows(recordings: list[Recording], scaler: RecordingScaler, window: int, stride: int,
                label_ids: list[int]) -> Windows:
    """Every window of every recording, in order, with its recording's label id."""
    ids, labels, owner = [], [], []
    for i, (r, y) in enumerate(zip(recordings, label_ids)):
        w = scaler.windows(r.x, window_starts(len(r.x), window, stride), window, r.name)  # (N, T', F)
        ids.extend(w)
        labels.extend([y] * len(w))
        owner.extend([i] * len(w))
    summary = (np.array([scaler.spectrum(r.x, r.name) for r in recordings], dtype=np.float32).reshape(
        -1, scaler.summary_size) if scaler.segment else None)  # (R, P); (0, P) for an empty split
    return Windows(ids, labels, np.array(owner, dtype=np.int64), [r.name for r in recordings], list(label_ids),
                   summary)


@dataclass
class RecordingSettings:
    """The settings of recordings classified whole (a mixin of a task's data config)."""

    window: str = setting("classify recordings: samples a window (auto: the largest power of two that fits 8 "
                          "times in the shortest recording, 16-512)", default="auto")
    stride: str = setting("classify recordings: samples between window starts (auto: half a window)",
                          default="auto")
    frame: str = setting("classify recordings: samples read as one step of the encoder (auto: a 64th of the "
                         "window for samples, a 16th with a spectrum)", default="auto")
    frame_hop: str = setting("classify recordings: samples between the starts of a window's frames, at most the "
                             "frame (auto: the frame, frames side by side; half the frame: half-overlapping "
                             "spectra, twice the steps)", default="auto")
    eval_stride: str = setting("classify recordings: samples between window starts in validation, test and "
                               "predict, where every window's evidence joins the recording's decision (auto: "
                               "--stride)", default="auto")
    features: str = setting("classify recordings: what a step holds, a frame's samples, its log power spectrum "
                            "(spectrum: a spectrogram of Hann-windowed frames) or samples+spectrum (both, side by "
                            "side)", default="samples")
    classes: str = setting("classify the Bonn EEG archive: its sets grouped into labels, A,E (A against E), "
                           "ABCD:E, A,B,C,D,E (auto: five classes)", default="auto")
    recording_spectrum: int = setting("classify recordings: the head also reads each recording's whole log power "
                                      "spectrum (Welch: Hann segments of this many samples, half overlapping; "
                                      "standardised on the training recordings) beside its window's pooled state "
                                      "(0 = off; 2048 at Bonn's 173.61 Hz: bins of 0.085 Hz)", default=0)
    folds: int = setting("classify recordings: cross-validation folds by recording, stratified (0: the test "
                         "split is --test-fraction)", default=0)
    fold: int = setting("classify recordings: the fold (1..--folds) held out as the test split", default=1)
    fold_seed: int = setting("classify recordings: the seed of the shuffle that deals recordings to the --folds "
                             "(0: the benchmarks' folds; another seed: another partition, to choose settings on "
                             "folds that are not the ones reported)", default=0)

    def __post_init__(self):
        super().__post_init__()
        for name in ("window", "stride", "frame", "frame_hop", "eval_stride"):
            value = getattr(self, name)
            if value != "auto" and not (value.isdigit() and int(value) > 0):
                raise ConfigError(f"{name} must be auto or a positive number of samples; got {value!r}")
        check_choice(self, "features", FEATURES)
        check_at_least(self, "recording_spectrum", 0)
        if self.recording_spectrum == 1:
            raise ConfigError("recording_spectrum must be 0 (off) or at least 2 samples a segment; got 1")
        check_at_least(self, "folds", 0)
        check_at_least(self, "fold_seed", 0)
        if self.folds == 1 or self.fold < 1 or (self.folds and self.fold > self.folds):
            raise ConfigError(f"folds must be 0 or at least 2, and fold one of 1..folds; got folds {self.folds}, "
                              f"fold {self.fold}")


def decide_windows(config, recordings: list[Recording]) -> tuple[object, list[str]]:
    """``config`` (a :class:`RecordingSettings`) with window, stride and frame decided from the
    recordings' lengths (frame hop and evaluation stride from those), and each ``auto`` decision of
    the first three in a few words."""
    shortest = min(len(r.x) for r in recordings)
    said = []
    window = int(config.window) if config.window != "auto" else auto_window(shortest)
    if config.window == "auto":
        said.append(f"window auto: {window:,} samples (shortest recording {shortest:,})")
    stride = int(config.stride) if config.stride != "auto" else max(1, window // 2)
    if config.stride == "auto":
        said.append(f"stride {stride:,}")
    frame = int(config.frame) if config.frame != "auto" else max(1, window // (64 if config.features == "samples"
                                                                               else 16))
    if config.frame == "auto":
        said.append(f"frame {frame} ({window // frame} steps a window)")
    if frame > window:
        raise ConfigError(f"frame ({frame}) must not exceed the window ({window}); lower --frame")
    hop = int(config.frame_hop) if config.frame_hop != "auto" else frame
    if hop > frame:
        raise ConfigError(f"frame_hop ({hop}) must not exceed the frame ({frame}): samples between frames "
                          f"would be skipped; lower --frame-hop")
    eval_stride = int(config.eval_stride) if config.eval_stride != "auto" else stride
    decided = dataclasses.replace(config, window=str(window), stride=str(stride), frame=str(frame),
                                  frame_hop=str(hop), eval_stride=str(eval_stride))
    return decided, said


@dataclass
class RecordingData:
    """Recordings classified whole, split by recording, cut into windows: ``train``, ``val`` and
    ``test`` are :class:`Windows`; ``tokenizer`` the :class:`RecordingScaler` fitted on the training
    recordings; ``labels`` the label names (an id is an index). ``read(config)`` reads them."""

    tokenizer: RecordingScaler
    labels: list[str]
    train: Windows
    val: Windows
    test: Windows
    config: object
    digest: str = ""

    @property
    def vocab_size(self) -> int:
        """0: the inputs are vectors, not ids."""
        return 0

    @property
    def num_labels(self) -> int:
        """K, the label names."""
        return len(self.labels)

    def batcher(self, seed: int) -> BucketBatcher:
        """The training windows' :class:`WindowBatcher`, seeded by ``seed``."""
        return WindowBatcher(self.train, self.config.batch_size, seed)

    def eval_batches(self, split: str = "val", batch_size: int = 256):
        """Batches of a split's windows in order (no shuffling), for evaluation."""
        windows = getattr(self, split)
        return WindowBatcher(windows, batch_size, 0, shuffle=False).batches(0) if len(windows) else iter(())

    @classmethod
    def read(cls, config, scaler: RecordingScaler | None = None, labels: list[str] | None = None,
             recordings: list[Recording] | None = None):
        """The recordings of ``config.path`` (a manifest or the Bonn archive) as ``config`` (window,
        stride and frame decided: :func:`decide_windows`) says; a given ``scaler`` and ``labels`` (a
        resumed run's) are used as they are, else fitted on the training recordings; ``recordings``:
        those of ``config.path`` already read."""
        recordings = recordings or read_recordings(config.path, config.classes)
        window, stride, frame = int(config.window), int(config.stride), int(config.frame)
        eval_stride = int(config.eval_stride) if config.eval_stride != "auto" else stride
        check_lengths(recordings, window, config.path)
        names = [r.label for r in recordings]
        index = split_recordings(names, config.val_fraction, config.test_fraction, config.folds, config.fold,
                                 config.fold_seed)
        if scaler is None:  # fitted on the training recordings' samples only
            hop = int(config.frame_hop) if config.frame_hop != "auto" else frame
            scaler = RecordingScaler.fit(np.concatenate([recordings[i].x for i in index["train"]]), frame,
                                          config.features, hop)
            if config.recording_spectrum:
                scaler.fit_spectrum([recordings[i].x for i in index["train"]], config.recording_spectrum,
                                    [recordings[i].name for i in index["train"]])
        labels = labels or sorted(set(names))
        ids = {name: i for i, name in enumerate(labels)}
        unknown = sorted(set(names) - set(ids))
        if unknown:
            raise DataError(f"{config.path} has label(s) {', '.join(unknown)} the run was not trained on")
        splits = {split: cut_windows([recordings[i] for i in members], scaler, window,
                                     stride if split == "train" else eval_stride,  # more evidence, not more training
                                     [ids[names[i]] for i in members]) for split, members in index.items()}
        archive = bonn_archive(config.path)
        digest = (hashlib.sha256(archive.read_bytes()).hexdigest() if archive  # the zip's own bytes
                  else file_digest(config.path, *(Path(config.path).parent / r.name for r in recordings)))
        return cls(scaler, labels, splits["train"], splits["val"], splits["test"], config, digest)
