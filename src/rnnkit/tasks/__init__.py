"""The tasks, one module each behind one contract (:class:`Task`), and their
registry: ``named("classify")`` is the task a run's ``--task`` names.

Adding a task is one module here (a :class:`Task` subclass), its tests and
one line in ``TASKS``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rnnkit.config import DataConfig
from rnnkit.errors import ConfigError
from rnnkit.tasks.base import Criterion, Task
from rnnkit.tasks.classify import ClassifyData, ClassifyTask
from rnnkit.tasks.ctc import CTCTask
from rnnkit.tasks.forecast import ForecastTask
from rnnkit.tasks.lm import LanguageModelData, LanguageModelTask, LanguageModelTraining
from rnnkit.tasks.seq2seq import Seq2SeqTask, Seq2SeqTraining
from rnnkit.tasks.tag import TagData, TagTask
from rnnkit.training import trainer
from rnnkit.training.run_config import Run
from rnnkit.training.run_config import read_run as read_config
from rnnkit.training.runs import BEST, load_weights

TASKS: dict[str, Task] = {task.name: task for task in (
    LanguageModelTask(),
    ClassifyTask(),
    TagTask(),
    Seq2SeqTask(),
    CTCTask(),
    ForecastTask(),
)}


def named(name: str) -> Task:
    """The task called ``name`` (a ``--task`` value)."""
    if name not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}; got {name!r}")
    return TASKS[name]


def read_data(path: str | Path, config: DataConfig | None = None, spell: bool = False):
    """The data of ``config.task`` read from ``path`` as `rnnkit train` reads it: a
    :class:`rnnkit.data.TextData` (lm), :class:`~rnnkit.data.LabelledData` (classify, tag, a
    conditioned lm), :class:`~rnnkit.data.PairData` (seq2seq), :class:`~rnnkit.data.SpeechData` (ctc) or
    :class:`~rnnkit.data.forecast.ForecastData` (forecast)."""
    config = dataclasses.replace(config or DataConfig(), path=str(path))
    return named(config.task).read_data(config, spell=spell)


def read_run(run_dir: str | Path) -> Run:
    """A run folder's config.json (:class:`rnnkit.training.run_config.Run`), typed by its task's
    configs; an older format's migrated."""
    return read_config(run_dir, lambda name: named(name).configs())


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", which: str = BEST,
             engine: str | None = None):
    """(model, tokenizer, run) of a run folder: the model its task builds from its config.json
    (:func:`read_run`, the ``run``) with the best weights, or with ``which`` LAST the last; in
    evaluation mode, on the engines the run trained on unless ``engine``."""
    run = read_run(run_dir)
    model = load_weights(named(run.task).build_from(run), run_dir, which, engine or run.engines)
    return model.to(device), run.tokenizer, run


def export_run(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, list[str]]:
    """``rnnkit export RUN``: the run's model as ONNX graphs in ``out`` (default RUN/export), each checked
    in onnxruntime against rnnkit, with export.json (:mod:`rnnkit.training.export`); the folder and
    the graphs' names. What is exported is the task's (:meth:`Task.export_graphs`)."""
    from rnnkit.training import export

    export.require_onnx()
    model, _, run = load_run(run_dir, "cpu")
    export.on_torch_ops(model, str(run_dir))
    graphs, files = named(run.task).export_graphs(model, run)
    folder = export.write_export(graphs, out or Path(run_dir) / "export", str(run_dir), export.sidecar_of(run), files)
    return folder, [graph.name for graph in graphs]


class Trainer(trainer.Trainer):
    """:class:`rnnkit.training.Trainer`, its ``task`` by default the one ``data.config.task`` names."""

    def __init__(self, model, data, config, out=None, callbacks=(), quiet: bool = False, task: Task | None = None):
        super().__init__(model, data, config, out, callbacks, quiet, task=task or named(data.config.task))
        self.started = False  # whether the task set the model's start from the data (validated at step 0)

    def _fit(self, resume: bool) -> dict:
        self.started = not resume and self.task.start(self.model, self.data)
        result = super()._fit(resume)
        if self.writes and result.get("stopped") != "interrupted":
            note = self.task.after_training(self)
            if note and not self.quiet:
                print(note, flush=True)
        return result

    def _loop(self, bar) -> str:
        if self.started and self.progress.step == 0:  # the start itself is a candidate for the best checkpoint
            self._evaluate_and_save(bar)
        return super()._loop(bar)


__all__ = ["TASKS", "CTCTask", "ClassifyData", "ClassifyTask", "Criterion", "ForecastTask", "LanguageModelData",
           "LanguageModelTask", "LanguageModelTraining", "Seq2SeqTask", "Seq2SeqTraining", "TagData", "TagTask", "Task",
           "Trainer", "export_run", "load_run", "named", "read_data", "read_run"]
