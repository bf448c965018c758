"""The command line's settings: flags generated from the config dataclasses,
and which of them apply to what the user chose.

Every field of ``ModelConfig``, ``DataConfig`` and ``TrainConfig`` is a flag
of ``rnnkit train`` (``--kebab-case``) and a key of a ``--config`` file.
A setting the user gave that would do nothing for the chosen task,
tokenizer, cell, encoder, schedule or optimizer is refused before any work
starts (:func:`refuse_unused`), one line that names the flag and what it
needs; so is a resumed run's model or data setting that differs from the
run's own (:func:`refuse_changes`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnnkit.config import DataConfig, ModelConfig, TrainConfig
from rnnkit.errors import ConfigError
from rnnkit.kernels import CELLS, cell_class
from rnnkit.tasks import TASKS, named

_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _bool(text: str) -> bool:
    if text.lower() not in _BOOLS:
        raise ValueError(text)
    return _BOOLS[text.lower()]


_bool.__name__ = "true or false"
_TYPES = {"int": int, "float": float, "str": str, "bool": _bool}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, cls, skip=(), helps: dict[str, str] | None = None) -> None:
    """A flag for every field of the dataclass ``cls`` (but ``skip``), absent
    from the parsed namespace unless given; ``helps`` replaces fields' help texts."""
    group = parser.add_argument_group(cls.__name__.removesuffix("Config").lower() + " settings")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        base = f.type.split("|")[0].strip()
        optional = "None" in f.type
        convert = _TYPES[base]

        def parse(text, convert=convert, optional=optional):
            if optional and text.lower() == "none":
                return None
            try:
                return convert(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {convert.__name__}, got {text!r}") from None

        default = "" if f.default in ("", None) else f" (default: {f.default})"
        group.add_argument(flag(f.name), dest=f.name, type=parse, default=argparse.SUPPRESS,
                           metavar=base.upper(), help=(helps or {}).get(f.name, f.metadata.get("help", "")) + default)


def pick(args: argparse.Namespace, cls) -> dict:
    """The fields of ``cls`` that ``args`` holds (the flags the user gave)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def train_settings(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """The (model, data, train) settings the user gave: a ``--config`` file's, then the flags'."""
    model, data, train = {}, {}, {}
    if args.config:
        try:
            values = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"--config {args.config}: {e}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"--config {args.config}: expected a JSON object of settings")
        owners = {f.name: d for cls, d in ((ModelConfig, model), (DataConfig, data), (TrainConfig, train))
                  for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(owners) - {"path"})
        if unknown:
            raise ConfigError(f"--config {args.config}: unknown setting(s) {', '.join(unknown)}")
        for k, v in values.items():
            if k != "path":  # the training file is PATH
                owners[k][k] = v
    model.update(pick(args, ModelConfig))
    data.update({k: v for k, v in pick(args, DataConfig).items() if k != "path"})
    train.update(pick(args, TrainConfig))
    return model, data, train


# -- which settings apply ------------------------------------------------------


@dataclass
class Choice:
    """What decides which settings apply: the run's model, data and training settings, and its task."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    @property
    def task(self):
        return named(self.data.task)

    @property
    def recurrent(self) -> bool:
        """Whether the model reads its inputs with recurrent layers."""
        return self.task.recurrent(self)

    @property
    def cells(self) -> bool:
        """Whether the model has cells (recurrent layers, or a decoder's)."""
        return self.task.has_cells(self)

    def token_kinds(self) -> set[str]:
        """The tokenizers in use ({"none"} for vectors: a series, audio)."""
        return self.task.token_kinds(self)


WORDS = "--tokenizer word"
STEP, COSINE = "--lr-schedule step", "--lr-schedule cosine"
HIDDEN_WEIGHTS = "a recurrent cell with recurrent weights (rnn, lstm, gru)"

# setting -> (whether it applies to a choice, what it needs, said to the user); a task may override a
# rule with its own (rnnkit.tasks.Task.rules), and a setting only tasks give rules for is refused for
# the other tasks
RULES: dict[str, tuple[Callable[[Choice], bool], str]] = {
    # model
    "cell": (lambda c: c.cells, "--encoder rnn (or --task seq2seq, whose decoder has cells)"),
    "embedding_dim": (lambda c: c.token_kinds() != {"none"}, "token inputs (a series or audio is read as vectors)"),
    "batchnorm": (lambda c: c.recurrent, "recurrent layers (--encoder rnn; a seq2seq decoder's cells have none)"),
    "weight_drop": (lambda c: c.recurrent and cell_class(c.model.cell).hidden_weights, HIDDEN_WEIGHTS),
    "engine": (lambda c: c.recurrent, "--encoder rnn"),
    "input_init": (lambda c: c.cells, "--encoder rnn (or --task seq2seq)"),
    "recurrent_init": (lambda c: c.cells and cell_class(c.model.cell).hidden_weights, HIDDEN_WEIGHTS),
    "bidirectional": (lambda c: True, ""),  # a language model's own rule refuses true
    "merge": (lambda c: c.task.reads_both_ways(c) and c.recurrent,
              "a bidirectional recurrent encoder (--task classify or tag, --encoder rnn, --bidirectional true)"),
    # data
    "tokenizer": (lambda c: c.token_kinds() != {"none"}, "a text or a table (a series or audio is read as vectors)"),
    "max_vocab_size": (lambda c: bool(c.token_kinds() & {"word", "bpe"}), "--tokenizer word or bpe"),
    "min_count": (lambda c: "word" in c.token_kinds(), WORDS),
    "lowercase": (lambda c: "word" in c.token_kinds(), WORDS),
    "word_pattern": (lambda c: "word" in c.token_kinds(), WORDS),
    "val_fraction": (lambda c: not c.data.val_path, "no --val-path (the validation split comes from that file)"),
    "test_fraction": (lambda c: not c.data.test_path, "no --test-path (the test split comes from that file)"),
    # training
    "momentum": (lambda c: c.train.optimizer in ("momentum", "nesterov", "rmsprop"),
                 "--optimizer momentum, nesterov or rmsprop"),
    "min_lr_ratio": (lambda c: c.train.lr_schedule == "cosine", COSINE),
    "lr_decay": (lambda c: c.train.lr_schedule == "step", STEP),
    "lr_decay_every": (lambda c: c.train.lr_schedule == "step", STEP),
    "lr_decay_start": (lambda c: c.train.lr_schedule == "step", STEP),
    "patience": (lambda c: bool(c.data.val_path) or c.data.val_fraction > 0,
                 "a validation split (--val-path or --val-fraction > 0)"),
    "diagnostics": (lambda c: c.recurrent, "recurrent cells to inspect (--encoder rnn)"),
}
# a cell's own settings (LSTMCell.options: forget_bias; RNNCell.options: nonlinearity)
for _cls in CELLS.values():
    for _name in _cls.options:
        RULES[_name] = (lambda c, name=_name: c.cells and name in cell_class(c.model.cell).options,
                        "--cell " + " or ".join(n for n, k in CELLS.items() if _name in k.options))


def rule(name: str, task) -> tuple[Callable[[Choice], bool], str]:
    """The rule of setting ``name`` under ``task``: the task's own, else the common one; a
    setting that only other tasks read is refused, naming them."""
    if name in task.rules:
        return task.rules[name]
    readers = [t for t in TASKS.values() if name in t.rules]
    if name not in RULES and readers:
        names = [t.name for t in readers]
        needs = "--task " + (" or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1])
        conditions = {t.rules[name][1] for t in readers}
        if len(conditions) == 1:  # what all of them need besides
            condition = next(iter(conditions))
            needs = condition if condition.startswith("--task") else f"{needs} with {condition}"
        return (lambda c: False), needs
    return RULES.get(name, (lambda c: True, ""))


def refuse_unused(given, choice: Choice) -> None:
    """A ConfigError for the first setting in ``given`` (names) that does nothing for ``choice``."""
    for name in sorted(given):
        applies, needs = rule(name, choice.task)
        if not applies(choice):
            raise ConfigError(f"{flag(name)} needs {needs}, so here it would do nothing; drop it")


def refuse_changes(given: dict, run_settings, run: str) -> None:
    """A ConfigError for the first setting in ``given`` whose value differs from
    the resumed run's (``run_settings``, a ModelConfig or DataConfig)."""
    for name, value in sorted(given.items()):
        if getattr(run_settings, name) != value:
            raise ConfigError(f"{flag(name)} cannot change when resuming: the run in {run} has "
                              f"{flag(name)} {getattr(run_settings, name)!r}; drop the flag or give that value")
