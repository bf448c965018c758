"""Whole recordings classified (``--task classify`` on a manifest of
recording files or the Bonn EEG archive): the part of the classify task
that reads numeric recordings, cut into windows (:mod:`rnnkit.data.windows`).

The model is the sequence classifier over vectors: a window encoder
(recurrent or tdnn) and a head give each window w of a recording r the
log-probabilities log p(y | w). A recording's label is decided from all its
windows' evidence combined, as if they were independent:

    score(y | r) = Σ_{w ∈ r} log p(y | w)            (R, K)
    ŷ(r) = argmax_y score(y | r)

With ``--recording-spectrum n`` every window of r also carries s(r), r's
whole Welch log power spectrum (:meth:`rnnkit.data.recordings.RecordingScaler.spectrum`),
which the head reads beside the window's pooled state, so each term is
log p(y | w, s(r)).

Training sees windows, each with its recording's label; validation and
``rnnkit predict`` report at the recording level (accuracy and macro F1
over recordings; the windows' own loss and accuracy beside them). The
checkpoint kept is the one with the lowest window loss on the validation
recordings.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnkit.data.batches import WindowBatch, to_device
from rnnkit.data.recordings import bonn_archive, is_recordings, read_recordings
from rnnkit.data.windows import RecordingData, WindowBatcher, Windows, check_lengths, cut_windows, decide_windows
from rnnkit.errors import DataError
from rnnkit.training.decode import evaluating
from rnnkit.training.metrics import classification_report

RECORDINGS = "a manifest of recordings (a CSV with a path column) or the Bonn EEG archive"
TEXTS = "--task classify on a table of texts"


def recordings(choice) -> bool:
    """Whether the run's training data are recordings to classify whole."""
    return is_recordings(choice.data.path)


RULES = {
    "window": (recordings, RECORDINGS),
    "stride": (recordings, RECORDINGS),
    "frame": (recordings, RECORDINGS),
    "frame_hop": (recordings, RECORDINGS),
    "eval_stride": (recordings, RECORDINGS),
    "features": (recordings, RECORDINGS),
    "recording_spectrum": (lambda c: recordings(c) and c.model.encoder in ("rnn", "tdnn"),
                           RECORDINGS + ", read by --encoder rnn or tdnn (an esn's readout is fitted on the pooled "
                           "state alone)"),
    "folds": (recordings, RECORDINGS),
    "fold": (lambda c: recordings(c) and c.data.folds > 0, "--folds (cross-validation by recording)"),
    "fold_seed": (lambda c: recordings(c) and c.data.folds > 0, "--folds (cross-validation by recording)"),
    "classes": (lambda c: bool(c.data.path) and bonn_archive(c.data.path) is not None,
                "the Bonn EEG archive (bonn_eeg_dataset.zip or its folder)"),
    "text_column": (lambda c: not recordings(c), TEXTS),
    "label_column": (lambda c: not recordings(c), TEXTS + " (a manifest's columns are path and label)"),
    "val_path": (lambda c: not recordings(c), TEXTS + " (recordings: --val-fraction of the manifest)"),
    "test_path": (lambda c: not recordings(c), TEXTS + " (recordings: --test-fraction or --folds)"),
    "test_fraction": (lambda c: not c.data.test_path and not (recordings(c) and c.data.folds),
                      "no --test-path and no --folds (the test split is then that file or that fold)"),
}


_read = {}  # the Bonn archive as last read, by (path, modification time, classes): decide and read_data share it


def read(path, classes: str, require_labels: bool = True):
    """:func:`rnnkit.data.recordings.read_recordings`, the Bonn archive read once a process."""
    archive = bonn_archive(path)
    if archive is None:
        return read_recordings(path, classes, require_labels)
    key = (str(archive.resolve()), archive.stat().st_mtime_ns, classes)
    if key not in _read:
        _read.clear()
        _read[key] = read_recordings(path, classes)
    return _read[key]


def decide(config):
    """Window, stride and frame decided from the recordings (:func:`rnnkit.data.windows.decide_windows`)."""
    return decide_windows(config, read(config.path, config.classes))


def read_data(config, run=None) -> RecordingData:
    """The recordings ``config`` names, cut into windows (the run's scaler and labels when ``run`` is given)."""
    return RecordingData.read(config, run.tokenizer if run else None, run.labels if run else None,
                              read(config.path, config.classes))


@torch.no_grad()
def evaluate_recordings(model, windows: Windows, labels: list[str], batch_size: int = 256) -> dict:
    """The windows' mean loss and accuracy, and each recording's decision from its windows' summed
    log-probabilities: ``accuracy`` and ``f1`` (macro) over recordings, ``predicted`` and ``gold``
    label names a recording, ``evidence`` (R, K) the summed log-probabilities."""
    device = next(model.parameters()).device
    evidence = torch.zeros(len(windows.names), len(labels), dtype=torch.float64)  # (R, K)
    owner = torch.from_numpy(windows.recording)  # (N,) the recording of each window
    loss, hits, start = 0.0, 0, 0
    with evaluating(model):
        for batch in WindowBatcher(windows, batch_size, 0, shuffle=False).batches(0):
            batch = to_device(batch, device)
            summary = {"summary": batch.summary} if isinstance(batch, WindowBatch) else {}  # (B, P)
            logits, _ = model(batch.x, batch.lengths, **summary)  # (B, K)
            logp = F.log_softmax(logits.float(), dim=-1)  # (B, K)
            loss += F.nll_loss(logp, batch.y, reduction="sum").item()
            hits += int((logp.argmax(-1) == batch.y).sum())
            evidence.index_add_(0, owner[start:start + len(logp)], logp.double().cpu())
            start += len(logp)
    predicted = [labels[i] for i in evidence.argmax(1).tolist()]
    gold = [labels[i] for i in windows.gold]
    report = classification_report(gold, predicted, labels)
    return {"loss": loss / max(start, 1), "accuracy": report["accuracy"], "f1": report["macro_f1"],
            "window_accuracy": hits / max(start, 1), "recordings": len(gold), "predicted": predicted,
            "gold": gold, "evidence": evidence}


def validate(model, data: RecordingData, split: str) -> dict:
    """The recordings of ``split`` classified whole: loss, accuracy, F1 and window accuracy ({} when empty)."""
    if len(getattr(data, split)) == 0:
        return {}
    metrics = evaluate_recordings(model, getattr(data, split), data.labels)
    return {k: metrics[k] for k in ("loss", "accuracy", "f1", "window_accuracy")}


def describe(data: RecordingData) -> str:
    """One line: recordings a split, fold, channels, labels, windows and their steps."""
    c = data.config
    counts = "/".join(f"{len(getattr(data, s).names):,}" for s in ("train", "val", "test"))
    fold = (f", fold {c.fold} of {c.folds}{f' (fold seed {c.fold_seed})' if c.fold_seed else ''}" if c.folds
            else "")
    return (f"{counts} train/val/test recordings{fold}, {data.tokenizer.channels} channel(s), {len(data.labels)} "
            f"labels ({', '.join(data.labels)}), windows of {int(c.window):,} every {int(c.stride):,}, "
            f"{(int(c.window) - int(c.frame)) // int(c.frame_hop) + 1} steps of {c.frame}"
            f"{f' every {c.frame_hop}' if c.frame_hop != c.frame else ''} ({c.features})"
            f"{f', evaluated every {int(c.eval_stride):,}' if c.eval_stride != c.stride else ''}"
            + (f", and each recording's whole spectrum ({data.tokenizer.summary_size:,} values) beside"
               if c.recording_spectrum else ""))


def predict(model, doc, request) -> int:
    """``rnnkit predict RUN RECORDINGS``: each recording's label, as the manifest's rows with a
    prediction column (the Bonn archive: path,label,prediction) to ``--out`` or stdout; with labels,
    the recording-level accuracy and F1 on stderr. Nothing is written when an input is bad."""
    cfg, labels, path = doc.data, doc.labels, request.input
    found = read(path, cfg.classes, require_labels=False)
    window = int(cfg.window)
    stride = int(cfg.eval_stride if getattr(cfg, "eval_stride", "auto") != "auto" else cfg.stride)  # older runs: none
    check_lengths(found, window, path)
    gold = [r.label for r in found]
    known = {name: i for i, name in enumerate(labels)}
    has_labels = all(g is not None for g in gold)
    if has_labels and set(gold) - set(known):
        raise DataError(f"{path} has label(s) {', '.join(sorted(set(gold) - set(known)))} the model was not "
                        f"trained on ({', '.join(labels)}); train with them or remove those recordings")
    windows = cut_windows(found, doc.tokenizer, window, stride, [known.get(g, 0) for g in gold])
    result = evaluate_recordings(model, windows, labels)
    rows = _rows(path, found, result["predicted"])
    out = open(request.out, "w", newline="", encoding="utf-8") if request.out else sys.stdout
    try:
        csv.writer(out, delimiter="\t" if str(path).endswith(".tsv") else ",", lineterminator="\n").writerows(rows)
    finally:
        if request.out:
            out.close()
    if has_labels:
        print(f"{path}: {len(found):,} recordings with labels; accuracy {result['accuracy']:.4f} | "
              f"F1 {result['f1']:.4f}", file=sys.stderr)
    return 0


def _rows(path, found, predicted: list[str]) -> list[list[str]]:
    """The manifest's own rows with a prediction column, or for the Bonn archive path,label,prediction."""
    if bonn_archive(path) is not None:
        return [["path", "label", "prediction"]] + [[r.name, r.label, p] for r, p in zip(found, predicted)]
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8", newline="") as f:
        table = [row for row in csv.reader(f, delimiter=delimiter) if row]
    return [table[0] + ["prediction"]] + [row + [p] for row, p in zip(table[1:], predicted)]

