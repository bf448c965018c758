"""The run folder, rnnkit's unit of persistence, and its format version.

A run folder holds::

    config.json          every setting, the tokenizer (and a seq2seq or ctc run's
                         target tokenizer), the label names (classify, tag), the engine
                         of each recurrent layer, rnnkit and format versions
    model.safetensors    the best weights so far (lowest validation loss)
    last.safetensors     the last weights with the full trainer state, for exact resume
    metrics.jsonl        one JSON object per log step and per evaluation
    loss.png             the loss curves, redrawn at each evaluation

Tensors are stored with safetensors (never pickle); each file's metadata
carries a SHA-256 of its tensors, checked on load, so a truncated or altered
file is reported instead of loaded. Every write goes to a temporary file
that is renamed into place: a crash or Ctrl-C never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnnkit.config import CHAR_FEATURES_NEED_WORDS, DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from rnnkit.data.tokenizers import tokenizer_from_dict
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.layers import use_engines
from rnnkit.version import __version__

FORMAT_VERSION = 1
CONFIG, BEST, LAST, METRICS, PLOT = "config.json", "model.safetensors", "last.safetensors", \
    "metrics.jsonl", "loss.png"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the user's usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(run_dir: Path, model: ModelConfig, data: DataConfig, train: TrainConfig,
                 tokenizer, **extra) -> None:
    doc = {"format_version": FORMAT_VERSION, "rnnkit_version": __version__,
           "model": to_dict(model), "data": to_dict(data), "train": to_dict(train),
           "tokenizer": tokenizer.to_dict(), **extra}
    atomic_write_bytes(Path(run_dir) / CONFIG, json.dumps(doc, indent=1).encode())


def read_config(run_dir: str | Path) -> dict:
    """config.json of a run folder, checked for existence, JSON and format version."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run folder (no {CONFIG}); "
                              f"give the --out folder of an `rnnkit train` run")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({e}); restore it or train again") from None
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{run_dir} has run-folder format version {version!r}; this rnnkit "
                              f"({__version__}) reads version {FORMAT_VERSION}: use the rnnkit "
                              f"version that wrote it ({doc.get('rnnkit_version', 'unknown')})")
    try:
        doc["model"] = from_dict(ModelConfig, doc["model"], f"{path} model")
        doc["data"] = from_dict(DataConfig, doc["data"], f"{path} data")
        doc["train"] = from_dict(TrainConfig, doc["train"], f"{path} train")
        doc["tokenizer"] = tokenizer_from_dict(doc["tokenizer"])
        if doc["data"].task in ("seq2seq", "ctc"):
            doc["target_tokenizer"] = tokenizer_from_dict(doc["target_tokenizer"])
        engines = doc.setdefault("engines", {})  # runs before 2026-12 did not record them
        if not isinstance(engines, dict) or not set(engines.values()) <= {"fused", "explicit"}:
            raise ValueError(f"engines {engines!r}")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is incomplete or altered ({e}); restore it or train again") from None
    return doc


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write tensors and JSON-able ``meta`` atomically, with a checksum."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {"rnnkit": json.dumps(meta or {}), "sha256": _digest(tensors),
                "format_version": str(FORMAT_VERSION)}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_tensors`, verifying its checksum."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    raw = path.read_bytes()
    problem = f"{path} is corrupt (truncated or altered); restore it or train again"
    try:
        (header_len,) = struct.unpack("<Q", raw[:8])
        metadata = json.loads(raw[8:8 + header_len]).get("__metadata__") or {}
        tensors = st_load(raw)
    except Exception:  # any parse failure of a damaged file is the same problem for the user
        raise CheckpointError(problem) from None
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path} has format version {metadata.get('format_version')!r}; this "
                              f"rnnkit reads {FORMAT_VERSION}")
    if metadata.get("sha256") != _digest(tensors):
        raise CheckpointError(problem)
    return tensors, json.loads(metadata.get("rnnkit", "{}"))


def build_model(task: str, tokenizer, model: ModelConfig, labels: list[str] | None = None,
                target_tokenizer=None):
    """The model of ``task`` (lm, classify, tag, seq2seq, ctc) with these settings, sized
    by its ``tokenizer`` (its vocabulary, a series' or audio's features, an alphabet of
    spellings) and a seq2seq or ctc model's ``target_tokenizer``."""
    from rnnkit.models import CTCRecognizer, LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger

    if model.char_features and task in ("lm", "seq2seq", "ctc"):
        raise ConfigError(CHAR_FEATURES_NEED_WORDS)
    vocab_size = tokenizer.vocab_size
    if task == "seq2seq":
        return Seq2Seq(vocab_size, target_tokenizer.vocab_size, **to_dict(model))
    if task == "ctc":  # the transcripts' characters and CTC's blank
        return CTCRecognizer(tokenizer.num_features, target_tokenizer.vocab_size + 1, **to_dict(model))
    if task == "lm":
        return LanguageModel(vocab_size, len(labels or ()), **to_dict(model))
    if not labels:
        raise CheckpointError(f"a {task} run needs its label names in config.json; restore it or train again")
    cls = SequenceClassifier if task == "classify" else SequenceTagger
    return cls(vocab_size, len(labels), getattr(tokenizer, "num_features", None),
               getattr(tokenizer, "alphabet_size", 0), **to_dict(model))


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", which: str = BEST,
             engine: str | None = None):
    """(model, tokenizer, config) of a run folder; ``which`` is BEST or LAST.
    The model comes in evaluation mode (no dropout); ``.train()`` it to train.
    Its recurrent layers run on the engines the run trained on, or on
    ``engine`` (auto, fused or explicit) when given."""
    doc = read_config(run_dir)
    tokenizer = doc["tokenizer"]
    model = build_model(doc["data"].task, tokenizer, doc["model"], doc.get("labels"), doc.get("target_tokenizer"))
    use_engines(model, engine or doc.get("engines", {}))
    tensors, _ = load_tensors(Path(run_dir) / which)
    weights = {k.removeprefix("model."): v for k, v in tensors.items()
               if which == BEST or k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{Path(run_dir) / which} does not fit its config.json ({first}); "
                              f"restore the run folder or train again") from None
    return model.to(device).eval(), doc["tokenizer"], doc
