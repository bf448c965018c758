"""The task contract: what differs between language modelling,
classification, tagging, sequence to sequence and CTC, in one class a task.

A task owns reading its data from the user's files (and the ``auto``
settings it decides from them), building its model, validating it (the
metrics and the one that picks the best checkpoint), its commands
(``sample``, ``eval``, ``predict``: decoding, predictions written in the
input's own format, what they print) and its sections of ``rnnkit
report``. The Trainer, the command line and the run folder hold no branch on
a task's name: they ask the task (``rnnkit.tasks.named(name)``).

The methods here are the defaults a task inherits; a command a task does
not have is refused in one line that says what to use instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rnnkit.errors import ConfigError

# a setting's rule: (whether it applies to a choice of settings, what it needs, said to the user)
Rule = tuple[Callable[["object"], bool], str]


class Task:
    """One task's behaviour; subclasses set the class attributes and override what differs."""

    name: str = ""  # the --task value
    summary: str = ""  # one line for --task's help: what a training file holds
    # settings that only some tasks read, each with the condition under which this task reads it;
    # a setting another task lists and this one does not is refused for this task
    rules: dict[str, Rule] = {}
    # the options of `rnnkit eval` and `rnnkit predict` (argparse dest names) this task takes beyond
    # the common ones; another task's option is refused for it
    eval_options: frozenset[str] = frozenset()
    predict_options: frozenset[str] = frozenset()

    # -- which settings apply (rnnkit.cli.options.Choice asks) ------------------------------

    def recurrent(self, choice) -> bool:
        """Whether the model reads its inputs with recurrent layers (a tdnn encoder has none)."""
        return choice.model.encoder == "rnn"

    def has_cells(self, choice) -> bool:
        """Whether the model has recurrent cells at all (a seq2seq decoder has them after a tdnn too)."""
        return self.recurrent(choice)

    def token_kinds(self, choice) -> set[str]:
        """The tokenizers the run uses ({"none"} for vectors: a series, audio)."""
        return {self.tokenizer_kind(choice.data)}

    def reads_both_ways(self, choice) -> bool:
        """Whether the encoder is bidirectional (the default for a task that sees whole sequences)."""
        return choice.model.bidirectional is not False

    def tokenizer_kind(self, data_cfg) -> str:
        """The tokenizer in use: ``--tokenizer``, or for ``auto`` before :meth:`decide` has read
        the data, what the task reads when the data does not say otherwise."""
        return data_cfg.tokenizer if data_cfg.tokenizer != "auto" else "word"

    def decide(self, data_cfg) -> tuple[object, list[str]]:
        """The data settings with every ``auto`` decided from the data (``--tokenizer``), and each
        decision in a few words for `rnnkit train`'s first line."""
        if data_cfg.tokenizer != "auto":
            return data_cfg, []
        kind = self.tokenizer_kind(data_cfg)
        return dataclasses.replace(data_cfg, tokenizer=kind), [f"tokenizer auto: {kind}"]

    def check(self, model_cfg, data_cfg) -> None:
        """A ConfigError for settings this task cannot take together (beyond the rules)."""

    # -- data and model ------------------------------------------------------------------------

    def read_data(self, config, run: dict | None = None, spell: bool = False):
        """The data of ``config`` (a DataConfig), read, tokenized and split; with a run's
        config.json ``run``, read with the run's tokenizers and labels as it trained;
        ``spell``: words with their spellings (``char_features``)."""
        raise NotImplementedError

    def build_model(self, model_cfg, tokenizer, labels: list[str] | None = None, target_tokenizer=None):
        """The model with these settings, sized by the data's ``tokenizer`` (its vocabulary,
        a series' or audio's features) and its ``labels`` or ``target_tokenizer``."""
        raise NotImplementedError

    def build_from(self, doc: dict):
        """The model a run's config.json ``doc`` describes (without its weights)."""
        return self.build_model(doc["model"], doc["tokenizer"], doc.get("labels"), doc.get("target_tokenizer"))

    def unit_of(self, data) -> str:
        """What one example of ``data`` is called in `rnnkit train`'s first line."""
        return "examples"

    def describe(self, data) -> str:
        """What the inputs are, for `rnnkit train`'s first line."""
        return f"vocabulary {data.vocab_size}" + (f", {len(data.labels)} labels" if hasattr(data, "labels") else "")

    # -- training ------------------------------------------------------------------------------

    def validate(self, model, data, split: str = "val", streams: int = 1, group=None) -> dict:
        """The metrics of ``model`` on a split of ``data`` ({} if the split is empty); with a
        ``group`` (rnnkit.training.distributed) the ranks share the work and all get the same."""
        raise NotImplementedError

    def criterion(self, metrics: dict) -> float:
        """What makes a checkpoint the best, lower being better: the loss, unless the task says."""
        return metrics["loss"]

    def sample_text(self, model, tokenizer, labels: list[str] | None, length: int, generator) -> str | None:
        """A text of ``length`` tokens the model writes, shown and logged at each evaluation and
        in the report (None: the task writes none)."""
        return None

    def next_step(self, out) -> str:
        """The command to use a finished run with, for `rnnkit train`'s last line."""
        return f"predict with: rnnkit predict {out} INPUT"

    # -- commands ------------------------------------------------------------------------------

    def sample(self, run: str, model, tokenizer, doc: dict, cfg, precision: str) -> int:
        """``rnnkit sample RUN``."""
        raise ConfigError(f"{run} is a {self.name} run, not a language model; use `rnnkit predict {run} INPUT`")

    def evaluate(self, run: str, model, doc: dict, request) -> int:
        """``rnnkit eval RUN [PATH]`` (``request``: the parsed flags)."""
        raise ConfigError(f"{run} is a {self.name} run; score a labelled file with "
                          f"`rnnkit predict {run} INPUT` (accuracy and F1 go to stderr)")

    def predict(self, run: str, model, doc: dict, request) -> int:
        """``rnnkit predict RUN INPUT`` (``request``: the parsed flags)."""
        raise NotImplementedError

    def decoding(self, request):
        """The decoding settings a run of this task takes from `eval`/`predict` flags (None: none)."""
        return None

    # -- rnnkit report ---------------------------------------------------------------------------

    def report_sections(self, model, doc: dict, data, text: str | None, chars: int,
                        missing: str) -> list[tuple[str, str]]:
        """This task's sections of the report (title, HTML), after the common ones; ``data`` is
        None (and ``missing`` says why) when the run's files are gone; ``text`` and ``chars``
        are `rnnkit report --text/--chars`."""
        if text:
            raise ConfigError(f"--text is read by a language model; this is a {self.name} run: drop --text")
        return []

    def __repr__(self) -> str:
        return f"<task {self.name}>"
