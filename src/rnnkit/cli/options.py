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
from rnnkit.data.series import SERIES_SUFFIXES
from rnnkit.errors import ConfigError
from rnnkit.kernels import CELLS, cell_class

_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _bool(text: str) -> bool:
    if text.lower() not in _BOOLS:
        raise ValueError(text)
    return _BOOLS[text.lower()]


_bool.__name__ = "true or false"
_TYPES = {"int": int, "float": float, "str": str, "bool": _bool}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """A flag for every field of the dataclass ``cls`` (but ``skip``), absent
    from the parsed namespace unless given."""
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
                           metavar=base.upper(), help=f.metadata.get("help", "") + default)


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
    """What decides which settings apply: the run's model, data and training settings."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def series(self) -> bool:
        """A numeric series to tag (vectors, not tokens)."""
        return self.task == "tag" and Path(self.data.path or "").suffix.lower() in SERIES_SUFFIXES

    @property
    def stream(self) -> bool:
        """A language model over one text, read as contiguous streams."""
        return self.task == "lm" and not self.data.condition_column

    @property
    def recurrent(self) -> bool:
        """Whether the encoder (or the language model) has recurrent layers."""
        return self.task == "lm" or self.model.encoder == "rnn"

    @property
    def cells(self) -> bool:
        """Whether the model has cells: recurrent layers, or a seq2seq decoder (also after a tdnn)."""
        return self.recurrent or self.task == "seq2seq"

    @property
    def attending(self) -> bool:
        return self.task == "seq2seq" and self.model.attention != "none"

    def token_kinds(self) -> set[str]:
        """The tokenizers in use: the source's (or the only one) and a seq2seq target's."""
        return {self.tokens, self.data.target_tokenizer_kind} if self.task == "seq2seq" else {self.tokens}

    @property
    def tokens(self) -> str:
        """The tokenizer in use (none for a series or audio)."""
        return "none" if self.series or self.task == "ctc" else self.data.tokenizer_kind

    @property
    def bidirectional(self) -> bool:
        return self.task != "lm" and self.model.bidirectional is not False


_TASKS = {"lm": "--task lm", "classify": "--task classify", "tag": "--task tag", "seq2seq": "--task seq2seq"}
WORDS = "--tokenizer word"
STEP, COSINE = "--lr-schedule step", "--lr-schedule cosine"

# setting -> (whether it applies to a choice, what it needs, said to the user)
RULES: dict[str, tuple[Callable[[Choice], bool], str]] = {
    # model
    "cell": (lambda c: c.cells, "--encoder rnn (or --task seq2seq, whose decoder has cells)"),
    "embedding_dim": (lambda c: c.tokens != "none", "token inputs (a series or audio is read as vectors)"),
    "embeddings": (lambda c: c.task in ("lm", "classify", "tag") and c.tokens == "word" and c.model.embedding_dim > 0,
                   "--task lm, classify or tag with word tokens and an embedding (--tokenizer word, "
                   "--embedding-dim > 0)"),
    "locked_dropout": (lambda c: c.task == "lm", _TASKS["lm"]),
    "batchnorm": (lambda c: c.recurrent, "recurrent layers (--encoder rnn; a seq2seq decoder's cells have none)"),
    "weight_drop": (lambda c: c.recurrent and cell_class(c.model.cell).hidden_weights,
                    "a recurrent cell with recurrent weights (rnn, lstm, gru)"),
    "embedding_dropout": (lambda c: c.task == "lm", _TASKS["lm"]),
    "tie_weights": (lambda c: c.task == "lm", _TASKS["lm"]),
    "engine": (lambda c: c.recurrent, "--encoder rnn"),
    "input_init": (lambda c: c.cells, "--encoder rnn (or --task seq2seq)"),
    "recurrent_init": (lambda c: c.cells and cell_class(c.model.cell).hidden_weights,
                       "a recurrent cell with recurrent weights (rnn, lstm, gru)"),
    "bidirectional": (lambda c: c.task != "lm" or c.model.bidirectional is False,
                      "--task classify, tag, seq2seq or ctc"),
    "merge": (lambda c: c.bidirectional and c.recurrent,
              "a bidirectional recurrent encoder (--task classify or tag, --encoder rnn, --bidirectional true)"),
    "pooling": (lambda c: c.task == "classify", _TASKS["classify"]),
    "encoder": (lambda c: c.task in ("classify", "tag", "seq2seq", "ctc"), "--task classify, tag, seq2seq or ctc"),
    "kernel_size": (lambda c: c.task != "lm" and c.model.encoder == "tdnn", "--encoder tdnn"),
    "adversarial": (lambda c: c.task == "classify", _TASKS["classify"]),
    "char_features": (lambda c: c.task in ("classify", "tag") and c.tokens == "word",
                      "--task classify or tag with word tokens (--tokenizer word)"),
    "crf": (lambda c: c.task == "tag", _TASKS["tag"]),
    "attention": (lambda c: c.task == "seq2seq", _TASKS["seq2seq"]),
    "input_feeding": (lambda c: c.attending and c.model.decoder_recurrence == "hidden",
                      "--task seq2seq with attention and --decoder-recurrence hidden"),
    "decoder_recurrence": (lambda c: c.task == "seq2seq", _TASKS["seq2seq"]),
    "sequence_end": (lambda c: c.task == "seq2seq", _TASKS["seq2seq"]),
    # data
    "tokenizer": (lambda c: c.tokens != "none", "a text or a table (a series or audio is read as vectors)"),
    "sample_rate": (lambda c: c.task == "ctc", "--task ctc"),
    "mel_bands": (lambda c: c.task == "ctc", "--task ctc"),
    "frame_stack": (lambda c: c.task == "ctc", "--task ctc"),
    "long_transcripts": (lambda c: c.task == "ctc", "--task ctc"),
    "max_vocab_size": (lambda c: bool(c.token_kinds() & {"word", "bpe"}), "--tokenizer word or bpe"),
    "min_count": (lambda c: "word" in c.token_kinds(), WORDS),
    "lowercase": (lambda c: "word" in c.token_kinds(), WORDS),
    "word_pattern": (lambda c: "word" in c.token_kinds(), WORDS),
    "target_tokenizer": (lambda c: c.task == "seq2seq", _TASKS["seq2seq"]),
    "source_column": (lambda c: c.task == "seq2seq" and not c.data.source_lang,
                      "--task seq2seq over a TSV (not --source-lang)"),
    "target_column": (lambda c: c.task == "seq2seq" and not c.data.source_lang,
                      "--task seq2seq over a TSV (not --source-lang)"),
    "source_lang": (lambda c: c.task == "seq2seq", _TASKS["seq2seq"]),
    "target_lang": (lambda c: c.task == "seq2seq", _TASKS["seq2seq"]),
    "text_column": (lambda c: c.task == "classify" or bool(c.data.condition_column),
                    "--task classify or --condition-column"),
    "label_column": (lambda c: c.task == "classify" or c.series, "--task classify, or a series to tag"),
    "condition_column": (lambda c: c.task == "lm", _TASKS["lm"]),
    "word_column": (lambda c: c.task == "tag" and not c.series, "--task tag on CoNLL columns"),
    "tag_column": (lambda c: c.task == "tag" and not c.series, "--task tag on CoNLL columns"),
    "seq_len": (lambda c: c.stream or c.series,
                "a language model over a text, or a series to tag (other batches hold whole examples)"),
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
    "eval_streams": (lambda c: c.stream, "a language model over a text (--task lm)"),
    "diagnostics": (lambda c: c.cells and (c.recurrent or c.model.decoder_recurrence == "hidden"),
                    "recurrent cells to inspect (--encoder rnn, or a seq2seq decoder with --decoder-recurrence "
                    "hidden)"),
    "sample_length": (lambda c: c.task == "lm", _TASKS["lm"]),
    "scheduled_sampling": (lambda c: c.task == "seq2seq" and c.model.decoder_recurrence == "hidden",
                           "--task seq2seq with --decoder-recurrence hidden (the output decoder's "
                           "teacher-forced steps are what make it parallel)"),
    "sampling_steps": (lambda c: c.task == "seq2seq" and c.train.scheduled_sampling != "none",
                       "--scheduled-sampling linear, exponential or inverse_sigmoid"),
}
# a cell's own settings (LSTMCell.options: forget_bias; RNNCell.options: nonlinearity)
for _cls in CELLS.values():
    for _name in _cls.options:
        RULES[_name] = (lambda c, name=_name: c.cells and name in cell_class(c.model.cell).options,
                        "--cell " + " or ".join(n for n, k in CELLS.items() if _name in k.options))


def refuse_unused(given, choice: Choice) -> None:
    """A ConfigError for the first setting in ``given`` (names) that does nothing for ``choice``."""
    for name in sorted(given):
        applies, needs = RULES.get(name, (lambda c: True, ""))
        if not applies(choice):
            raise ConfigError(f"{flag(name)} needs {needs}, so here it would do nothing; drop it")


def refuse_changes(given: dict, run_settings, run: str) -> None:
    """A ConfigError for the first setting in ``given`` whose value differs from
    the resumed run's (``run_settings``, a ModelConfig or DataConfig)."""
    for name, value in sorted(given.items()):
        if getattr(run_settings, name) != value:
            raise ConfigError(f"{flag(name)} cannot change when resuming: the run in {run} has "
                              f"{flag(name)} {getattr(run_settings, name)!r}; drop the flag or give that value")
