"""The command line's settings: flags generated from the config dataclasses,
and which of them apply to what the user chose.

Every field of every task's configs (:class:`rnnkit.tasks.Task`'s
``model_config``, ``data_config`` and ``train_config``: the common settings
and each task's own) is a flag of ``rnnkit train`` (``--kebab-case``) and a
key of a ``--config`` file. A setting the user gave that would do nothing
for what they chose is refused before any work starts (:func:`refuse_unused`),
one line that names the flag and what it needs: by the structure when the
chosen task's configs lack it (``--pooling`` is a classifier's), else by a
rule (:data:`RULES`, a task's ``rules``) for what structure cannot say
(``--momentum`` with ``--optimizer adam``). So is a resumed run's model or
data setting that differs from the run's own (:func:`refuse_changes`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnnkit.config import EPS_OPTIMIZERS, DataConfig, ModelConfig, TrainConfig
from rnnkit.deprecated import rename_settings, rmsprop_momentum
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
    """The CLI flag of a setting: ``--`` and its name in kebab-case."""
    return "--" + name.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser, title: str, fields, helps: dict[str, str] | None = None,
                      skip=()) -> None:
    """A flag for every dataclass field in ``fields`` (but ``skip``), in an argument group
    ``title``, absent from the parsed namespace unless given; ``helps`` replaces fields' help texts."""
    group = parser.add_argument_group(title)
    for f in fields:
        if f.name in skip or not f.metadata.get("flag", True):  # a field the program fills in, not a setting
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
        text = (helps or {}).get(f.name, f.metadata.get("help", "")) + default
        group.add_argument(flag(f.name), dest=f.name, type=parse, default=argparse.SUPPRESS,
                           metavar=base.upper(), help=text.replace("%", "%%"))  # argparse %-formats help ("80 %")


def add_config_flags(parser: argparse.ArgumentParser, cls, skip=(), helps: dict[str, str] | None = None) -> None:
    """A flag for every field of the dataclass ``cls`` (but ``skip``)."""
    title = cls.__name__.removesuffix("Config").lower() + " settings"
    add_setting_flags(parser, title, dataclasses.fields(cls), helps, skip)


CONCERNS = ("model", "data", "train")
COMMON = {f.name for cls in (ModelConfig, DataConfig, TrainConfig) for f in dataclasses.fields(cls)}  # every task's


def settings_by_concern() -> dict[str, dict[str, dataclasses.Field]]:
    """Every setting of every task, by concern (model, data, train) and name: one flag each."""
    found: dict[str, dict[str, dataclasses.Field]] = {concern: {} for concern in CONCERNS}
    for task in TASKS.values():
        for concern in CONCERNS:
            for f in dataclasses.fields(getattr(task, concern + "_config")):
                found[concern].setdefault(f.name, f)
    return found


def add_train_flags(parser: argparse.ArgumentParser, helps: dict[str, str] | None = None) -> None:
    """The flags of ``rnnkit train`` and ``lr-find``: every setting of every task (PATH is positional)."""
    for concern, fields in settings_by_concern().items():
        add_setting_flags(parser, concern + " settings", fields.values(), helps, skip=("path",))


def train_settings(args: argparse.Namespace) -> dict:
    """The settings the user gave, by name: a ``--config`` file's, then the flags'."""
    known = {name for fields in settings_by_concern().values() for name in fields} - {"path"}
    given = {}
    if args.config:
        try:
            values = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"--config {args.config}: {e}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"--config {args.config}: expected a JSON object of settings")
        values = rename_settings(values, f"--config {args.config}")
        unknown = sorted(set(values) - known - {"path"})
        if unknown:
            raise ConfigError(f"--config {args.config}: unknown setting(s) {', '.join(unknown)}")
        given.update({k: v for k, v in values.items() if k != "path"})  # the training file is PATH
    given.update({k: v for k, v in vars(args).items() if k in known})
    return rmsprop_momentum(given)


def split_settings(given: dict, task) -> tuple[dict, dict, dict]:
    """The (model, data, train) settings in ``given`` that ``task``'s configs have; the others
    are refused by :func:`refuse_unused`."""
    return tuple({k: v for k, v in given.items() if k in {f.name for f in dataclasses.fields(
        getattr(task, concern + "_config"))}} for concern in CONCERNS)


# -- which settings apply ------------------------------------------------------


@dataclass
class Choice:
    """What decides which settings apply: the run's model, data and training settings, and its task."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    @property
    def task(self):
        """The :class:`rnnkit.tasks.Task` that ``data.task`` names."""
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

    @property
    def closed_form(self) -> bool:
        """Whether the model's readout is fitted in closed form (an esn), with no gradient steps."""
        return getattr(self.model, "encoder", None) == "esn"


WORDS = "--tokenizer word"
STEP, COSINE, STLR = "--lr-schedule step", "--lr-schedule cosine", "--lr-schedule stlr"
TOKENS = {"word", "char", "byte", "bpe"}
PRETRAINED = "--init-from RUN (the layers of a model started from a language model)"
HIDDEN_WEIGHTS = "a recurrent cell with recurrent weights (rnn, lstm, gru)"
VALIDATION = "a validation split (--val-path or --val-fraction > 0)"

# what the structure of the configs cannot say: a common setting -> (whether it applies to a choice,
# what it needs, said to the user); a task may override a rule with its own (rnnkit.tasks.Task.rules)
RULES: dict[str, tuple[Callable[[Choice], bool], str]] = {
    # model
    "cell": (lambda c: c.cells, "--encoder rnn (or --task seq2seq, whose decoder has cells)"),
    "embedding_dim": (lambda c: c.token_kinds() != {"none"}, "token inputs (a series or audio is read as vectors)"),
    "batchnorm": (lambda c: c.recurrent, "recurrent layers (--encoder rnn; a seq2seq decoder's cells have none)"),
    "weight_drop": (lambda c: c.recurrent and cell_class(c.model.cell).hidden_weights, HIDDEN_WEIGHTS),
    "weight_noise": (lambda c: c.recurrent and cell_class(c.model.cell).hidden_weights, HIDDEN_WEIGHTS),
    "input_noise": (lambda c: c.recurrent, "recurrent layers (--encoder rnn)"),
    "skip_steps": (lambda c: c.recurrent and c.model.engine != "fused" and cell_class(c.model.cell).hidden_weights,
                   "recurrent layers on the explicit engine (--encoder rnn, --engine auto or explicit) of a cell "
                   "with recurrent weights (rnn, lstm, gru, leaky, lnlstm, lngru)"),
    "engine": (lambda c: c.recurrent, "--encoder rnn"),
    "label_smoothing": (lambda c: True, ""),  # a task whose loss is no cross-entropy over labels refuses it
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
    "val_path": (lambda c: True, ""),  # every task's, unless its own rule says (recordings: a fraction)
    "test_path": (lambda c: True, ""),
    "val_fraction": (lambda c: not c.data.val_path, "no --val-path (the validation split comes from that file)"),
    "test_fraction": (lambda c: not c.data.test_path, "no --test-path (the test split comes from that file)"),
    # training
    "momentum": (lambda c: c.train.optimizer in ("momentum", "nesterov"), "--optimizer momentum or nesterov"),
    "alpha": (lambda c: c.train.optimizer == "rmsprop", "--optimizer rmsprop"),
    "beta1": (lambda c: c.train.optimizer in ("adam", "adamw"), "--optimizer adam or adamw"),
    "beta2": (lambda c: c.train.optimizer in ("adam", "adamw"), "--optimizer adam or adamw"),
    "eps": (lambda c: c.train.optimizer in EPS_OPTIMIZERS, "--optimizer " + ", ".join(EPS_OPTIMIZERS[:-1]) + " or "
            + EPS_OPTIMIZERS[-1]),
    "rho": (lambda c: c.train.optimizer == "adadelta", "--optimizer adadelta"),
    "min_lr_ratio": (lambda c: c.train.lr_schedule == "cosine", COSINE),
    "lr_decay": (lambda c: c.train.lr_schedule == "step", STEP),
    "lr_decay_every": (lambda c: c.train.lr_schedule == "step", STEP),
    "lr_decay_start": (lambda c: c.train.lr_schedule == "step", STEP),
    "patience": (lambda c: bool(c.data.val_path) or c.data.val_fraction > 0, VALIDATION),
    "best_by": (lambda c: bool(c.data.val_path) or c.data.val_fraction > 0, VALIDATION),
    "diagnostics_every": (lambda c: c.recurrent, "recurrent cells to inspect (--encoder rnn)"),
    "warmup_steps": (lambda c: c.train.lr_schedule != "stlr", "--lr-schedule constant, step or cosine (stlr rises "
                     "from its own start)"),
    "stlr_cut_frac": (lambda c: c.train.lr_schedule == "stlr", STLR),
    "stlr_ratio": (lambda c: c.train.lr_schedule == "stlr", STLR),
    "init_from": (lambda c: c.recurrent and c.token_kinds() <= TOKENS, "a recurrent encoder over tokens (--encoder "
                  "rnn; --task lm, classify, tag or seq2seq on text)"),
    "lr_layer_decay": (lambda c: bool(c.train.init_from), PRETRAINED),
    "unfreeze_every": (lambda c: bool(c.train.init_from), PRETRAINED),
}
# a cell's own settings (LSTMCell.options: forget_bias; RNNCell.options: nonlinearity)
for _cls in CELLS.values():
    for _name in _cls.options:
        RULES[_name] = (lambda c, name=_name: c.cells and name in cell_class(c.model.cell).options,
                        "--cell " + " or ".join(n for n, k in CELLS.items() if _name in k.options))


# what an esn (one reservoir read one way, fixed, under a readout fitted in closed form:
# rnnkit.training.closed_form) never reads: the settings of gradient training, and of a deeper or two-way model
BY_GRADIENT = {"optimizer", "lr", "momentum", "alpha", "weight_decay", "l1", "clip_norm", "clip_value", "lr_schedule",
               "warmup_steps", "min_lr_ratio", "lr_decay", "lr_decay_every", "lr_decay_start", "max_steps",
               "max_epochs", "time_limit", "eval_every", "log_every", "save_every", "on_nonfinite", "patience",
               "precision", "beta1", "beta2", "eps", "rho", "label_smoothing", "dropout", "adversarial", "crf",
               "char_features", "char_lm_tune", "scheduled_sampling", "sampling_steps", "ar_order", "stlr_cut_frac",
               "stlr_ratio", "init_from", "lr_layer_decay", "unfreeze_every", "weight_average", "best_by"}
ONE_RESERVOIR = {"num_layers", "bidirectional"}
NOT_ESN = {name: needs for names, needs in (
    (BY_GRADIENT, "training by gradient steps (--encoder rnn or tdnn; an esn's readout is fitted in closed form)"),
    (ONE_RESERVOIR, "--encoder rnn or tdnn (an esn is one reservoir read one way)")) for name in names}


def _tasks_phrase(tasks) -> str:
    names = [t.name for t in tasks]
    return "--task " + (" or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1])


def _refused_for_others(name: str, readers) -> tuple[Callable[[Choice], bool], str]:
    """Refused: only the tasks ``readers`` read setting ``name``; what they need, in the user's words."""
    needs = _tasks_phrase(readers)
    conditions = {t.rules[name][1] for t in readers if name in t.rules}
    if len(conditions) == 1 and all(name in t.rules for t in readers):  # what all of them need besides
        condition = next(iter(conditions))
        needs = condition if condition.startswith("--task") else f"{needs} with {condition}"
    return (lambda c: False), needs


def rule(name: str, task) -> tuple[Callable[[Choice], bool], str]:
    """The rule of setting ``name`` under ``task``. A setting none of the task's configs has is
    refused, naming the tasks whose configs have it (the structure says it); else the task's own
    rule, else the common one. A common setting that only some tasks give a rule for (and
    :data:`RULES` none) is refused for the others, naming them."""
    if name not in task.settings():
        return _refused_for_others(name, [t for t in TASKS.values() if name in t.settings()])
    if name in NOT_ESN:  # and whatever else it needs
        applies, needs = _own_rule(name, task)
        return (lambda c: not c.closed_form and applies(c)), (f"{needs} and " if needs else "") + NOT_ESN[name]
    return _own_rule(name, task)


def _own_rule(name: str, task) -> tuple[Callable[[Choice], bool], str]:
    if name in task.rules:
        return task.rules[name]
    readers = [t for t in TASKS.values() if name in t.rules]
    if name in COMMON and name not in RULES and readers:
        return _refused_for_others(name, readers)
    return RULES.get(name, (lambda c: True, ""))


def refuse_unused(given, choice: Choice) -> None:
    """A ConfigError for the first setting in ``given`` (names) that does nothing for ``choice``."""
    for name in sorted(given):
        applies, needs = rule(name, choice.task)
        if not applies(choice):
            raise ConfigError(f"{flag(name)} needs {needs}, so here it would do nothing; drop it")


def refuse_changes(given: dict, run_settings, run: str) -> None:
    """A ConfigError for the first setting in ``given`` whose value differs from
    the resumed run's (``run_settings``, its model or data config)."""
    for name, value in sorted(given.items()):
        if getattr(run_settings, name) != value:
            raise ConfigError(f"{flag(name)} cannot change when resuming: the run in {run} has "
                              f"{flag(name)} {getattr(run_settings, name)!r}; drop the flag or give that value")
