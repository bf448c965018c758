"""config.json of a run folder: :class:`Run`, its one writer
(:func:`write_run`) and its one reader (:func:`read_run`), and the
migration of the formats older rnnkits wrote (:func:`migrate`).

Format 3 (this rnnkit)::

    format_version, rnnkit_version
    model, data, train       the run's task's three configs (rnnkit.tasks.Task.model_config, ...):
                             the common settings and the task's own, and nothing of another task's
    tokenizer                the input side's (a series' scaler, audio's features)
    target_tokenizer         seq2seq and ctc: the output side's
    labels                   classify, tag and a conditioned lm: the label names, in id order
    engines                  the engine each recurrent layer trained on
    corpus_sha256            what the training files held

Format 2 (rnnkit of 2026-12-06) named some settings by their old names
(:data:`rnnkit.deprecated.RENAMED_SETTINGS`: ``diagnostics``) and gave an
rmsprop run's smoothing constant as ``momentum`` (now ``alpha``). Format 1
(rnnkit before 2026-12-06) also held every setting of every task in flat
model, data and train sections. :func:`migrate` renames, and keeps the
run's own settings.

Every checkpoint carries :func:`structure_digest` of the config.json it
was written under; a config.json whose digest differs from a checkpoint's
was edited after it, and is refused before any model is built from it.
An older format's checkpoints carry the digest of its own text, which
is accepted beside the digest of its migration; :func:`resign_checkpoints`
moves them to the new text's digest before a resumed run rewrites config.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from rnnkit.data.tokenizers import tokenizer_from_dict
from rnnkit.deprecated import RENAMED_SETTINGS, rmsprop_alpha
from rnnkit.errors import CheckpointError
from rnnkit.training.runs import BEST, LAST, atomic_write_bytes, load_tensors, read_metadata, save_tensors
from rnnkit.version import __version__

CONFIG = "config.json"
FORMAT_VERSION = 3
# a task's name -> its (model, data, train) config classes: rnnkit.tasks' registry answers
Configs = Callable[[str], tuple[type, type, type]]


@dataclass
class Run:
    """A run folder's config.json: the task's three configs, the tokenizers and labels its data
    was read with, the engines its layers trained on, and the rnnkit that wrote it."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    tokenizer: object
    target_tokenizer: object | None = None
    labels: list[str] | None = None
    engines: dict[str, str] = field(default_factory=dict)
    corpus_sha256: str | None = None
    rnnkit_version: str = __version__
    folder: str | None = field(default=None, compare=False)  # where it was read from (not in config.json)

    @property
    def task(self) -> str:
        """The task's name (``data.task``)."""
        return self.data.task

    def __getitem__(self, key: str):
        """``run["model"]``, as the dict ``load_run`` returned before 2026-12-06: deprecated."""
        warnings.warn(f'run["{key}"] is deprecated: use run.{key}', DeprecationWarning, stacklevel=2)
        return getattr(self, key)

    def to_json(self) -> dict:
        """The document config.json holds (format :data:`FORMAT_VERSION`)."""
        doc = {"format_version": FORMAT_VERSION, "rnnkit_version": self.rnnkit_version,
               "model": to_dict(self.model), "data": to_dict(self.data), "train": to_dict(self.train),
               "tokenizer": self.tokenizer.to_dict()}
        if self.target_tokenizer is not None:
            doc["target_tokenizer"] = self.target_tokenizer.to_dict()
        if self.labels is not None:
            doc["labels"] = list(self.labels)
        return {**doc, "engines": self.engines, "corpus_sha256": self.corpus_sha256}


def write_run(run_dir: str | Path, run: Run) -> str:
    """Write ``run`` as config.json (atomically); returns its :func:`structure_digest`, for the
    checkpoints to carry."""
    run = dataclasses.replace(run, rnnkit_version=__version__)
    text = json.dumps(run.to_json(), indent=1)
    atomic_write_bytes(Path(run_dir) / CONFIG, text.encode())
    return structure_digest(json.loads(text))


def structure_digest(doc: dict) -> str:
    """SHA-256 of what a run's weights mean, as a config.json document states it: the model
    settings, the task, the tokenizers and the labels (not the training settings, which a
    resumed run may change)."""
    data = doc.get("data")
    part = {"model": doc.get("model"), "task": data.get("task") if isinstance(data, dict) else None,
            **{k: doc.get(k) for k in ("tokenizer", "target_tokenizer", "labels")}}
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()


def migrate(doc: dict, configs: Configs) -> dict:
    """A config.json document of an older format as format :data:`FORMAT_VERSION`.

    1 and 2 -> 3: the settings :data:`rnnkit.deprecated.RENAMED_SETTINGS` renamed take their new
    names, and an rmsprop run's ``momentum`` (which set RMSprop's smoothing constant) is copied
    to ``alpha``, as the optimizer read it.
    1 -> 2: the model, data and train sections keep the settings the run's task's configs have;
    the other tasks' settings, which format 1 held at their defaults, go."""
    version = doc.get("format_version")
    if version not in (1, 2):
        return doc
    doc = {**doc, "format_version": FORMAT_VERSION}
    for section in ("model", "data", "train"):
        doc[section] = {RENAMED_SETTINGS.get(k, k): v for k, v in doc[section].items()}
    train = doc["train"]
    if train.get("optimizer") == "rmsprop" and "momentum" in train and "alpha" not in train:
        train["alpha"] = rmsprop_alpha(train["momentum"])
    if version == 1:
        classes = dict(zip(("model", "data", "train"), configs(doc["data"]["task"])))
        for section, cls in classes.items():
            names = {f.name for f in dataclasses.fields(cls)}
            doc[section] = {k: v for k, v in doc[section].items() if k in names}
    return doc


def _document(run_dir: Path) -> dict:
    """config.json of ``run_dir`` as written, checked for existence, JSON and a known format."""
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
    if version not in range(1, FORMAT_VERSION + 1):
        raise CheckpointError(f"{run_dir} has run-folder format version {version!r}; this rnnkit "
                              f"({__version__}) reads versions 1 to {FORMAT_VERSION}: use the rnnkit "
                              f"version that wrote it ({doc.get('rnnkit_version', 'unknown')})")
    return doc


def run_task(run_dir: str | Path) -> str:
    """The task a run folder's config.json names (without reading the rest)."""
    doc = _document(Path(run_dir))
    data = doc.get("data")
    task = data.get("task") if isinstance(data, dict) else None
    if not isinstance(task, str):
        raise CheckpointError(f"{Path(run_dir) / CONFIG} is incomplete or altered (no task); restore it or "
                              f"train again")
    return task


def read_run(run_dir: str | Path, configs: Configs) -> Run:
    """config.json of a run folder as a :class:`Run`, its checkpoints checked to have been
    written under it (an edited config.json is refused) before anything is built from it; an
    older format is migrated (:func:`migrate`). ``configs`` gives a task's config classes."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    written = _document(run_dir)
    try:
        doc = migrate(written, configs)
        run = Run(model=from_dict(configs(doc["data"]["task"])[0], doc["model"], f"{path} model"),
                  data=from_dict(configs(doc["data"]["task"])[1], doc["data"], f"{path} data"),
                  train=from_dict(configs(doc["data"]["task"])[2], doc["train"], f"{path} train"),
                  tokenizer=tokenizer_from_dict(doc["tokenizer"]),
                  target_tokenizer=tokenizer_from_dict(doc["target_tokenizer"]) if "target_tokenizer" in doc
                  else None,
                  labels=doc.get("labels"), engines=doc.get("engines", {}),  # runs before 2026-12 lack engines
                  corpus_sha256=doc.get("corpus_sha256"), rnnkit_version=doc.get("rnnkit_version", "unknown"),
                  folder=str(run_dir))
        if not isinstance(run.engines, dict) or not set(run.engines.values()) <= {"fused", "explicit"}:
            raise ValueError(f"engines {run.engines!r}")
        if run.labels is not None and not (isinstance(run.labels, list) and all(isinstance(x, str)
                                                                                 for x in run.labels)):
            raise ValueError(f"labels {run.labels!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path} is incomplete or altered ({e}); restore it or train again") from None
    accepted = {structure_digest(written), structure_digest(doc)}
    for name in (BEST, LAST):  # before anything is built from it
        if (run_dir / name).exists():
            _check_digest(run_dir / name, read_metadata(run_dir / name), accepted)
    return run


def check_run(run_dir: str | Path, configs: Configs) -> str:
    """Refuse a run folder whose config.json was edited after its checkpoints were written (as
    :func:`read_run` does); returns the digest of its config.json as written."""
    read_run(run_dir, configs)
    return structure_digest(_document(Path(run_dir)))


def resign_checkpoints(run_dir: str | Path, digest: str) -> None:
    """Let the checkpoints of ``run_dir`` carry ``digest``: the digest of the config.json a
    resumed run of an older format is about to write (the tensors are checked and kept)."""
    for name in (BEST, LAST):
        path = Path(run_dir) / name
        if path.exists() and read_metadata(path).get("config_sha256") not in (None, digest):
            tensors, meta = load_tensors(path)
            save_tensors(path, tensors, {**meta, "config_sha256": digest})


def _check_digest(path: Path, meta: dict, accepted: set[str]) -> None:
    """Refuse a checkpoint whose weights were written under other model settings,
    tokenizers or labels than config.json states now (checkpoints written before
    2026-12-05 carry no digest and pass)."""
    recorded = meta.get("config_sha256") if isinstance(meta, dict) else None
    if recorded is not None and recorded not in accepted:
        raise CheckpointError(f"{Path(path).parent / CONFIG} was edited after {path} was written (its model "
                              f"settings, tokenizer or labels differ); restore it or train again")
