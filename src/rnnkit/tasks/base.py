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

from rnnkit.config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from rnnkit.errors import ConfigError
from rnnkit.training.finetune import unfreeze

# a setting's rule: (whether it applies to a choice of settings, what it needs, said to the user)
Rule = tuple[Callable[["object"], bool], str]
# the settings of an echo state reservoir (rnnkit.models.encoder.ReservoirSettings), read with --encoder esn only
RESERVOIR_RULES: dict[str, Rule] = {name: (lambda c: c.model.encoder == "esn", "--encoder esn") for name in (
    "spectral_radius", "leak_rate", "input_scaling", "reservoir_density", "reservoir_seed", "ridge", "washout")}

# The validation metrics tasks report, by which way is better. One where higher is better is read by
# --best-by as its distance from its best value (1 - accuracy), so that every criterion is lower-better.
LOWER_IS_BETTER = frozenset({"loss", "bpc", "perplexity", "token_error_rate", "sequence_error_rate", "mae", "rmse",
                             "mase"})
HIGHER_IS_BETTER = {"accuracy": 1.0, "f1": 1.0, "window_accuracy": 1.0, "bleu": 100.0}  # each with its best value


@dataclasses.dataclass(frozen=True)
class Criterion:
    """What makes a checkpoint the best (``best.safetensors``), an evaluation an improvement
    (``--patience``) and a trial good (`rnnkit tune`), lower being better: under ``--best-by auto``
    the task's own (:meth:`Task.criterion`), else one validation metric m, read as m where lower is
    better and as best(m) - m where higher is (``1 - accuracy``)."""

    task: "Task"
    best_by: str = "auto"

    @property
    def name(self) -> str:
        """The criterion in words, for tables: ``loss``, ``1 - accuracy``."""
        if self.best_by == "auto":
            return self.task.criterion_name
        best = HIGHER_IS_BETTER.get(self.best_by)
        return self.best_by if best is None else f"{best:g} - {self.best_by}"

    def __call__(self, metrics: dict) -> float:
        if self.best_by == "auto":
            return self.task.criterion(metrics)
        best = HIGHER_IS_BETTER.get(self.best_by)
        return metrics[self.best_by] if best is None else best - metrics[self.best_by]


class Task:
    """One task's behaviour; subclasses set the class attributes and override what differs.

    A task's settings are three dataclasses, one a concern: ``model_config``
    (its model's, a :class:`rnnkit.config.ModelConfig`), ``data_config`` (a
    :class:`~rnnkit.config.DataConfig`) and ``train_config`` (a
    :class:`~rnnkit.config.TrainConfig`), each the common settings and the
    task's own. A setting is a flag of `rnnkit train` and a key of a
    ``--config`` file; one that none of the three classes of the chosen task
    has does nothing for it and is refused."""

    name: str = ""  # the --task value
    summary: str = ""  # one line for --task's help: what a training file holds
    model_config: type = ModelConfig
    data_config: type = DataConfig
    train_config: type = TrainConfig
    # the settings this task reads only under a condition, each with the condition and what it
    # needs; a common setting (rnnkit.cli.options.RULES) that only some tasks list is refused for the others
    rules: dict[str, Rule] = {}
    # the options of `rnnkit eval` and `rnnkit predict` (argparse dest names) this task takes beyond
    # the common ones; another task's option is refused for it
    eval_options: frozenset[str] = frozenset()
    criterion_name: str = "loss"  # the validation metric :meth:`criterion` returns (rnnkit tune's tables name it)
    metrics: tuple[str, ...] = ("loss",)  # every metric :meth:`validate` can report (:meth:`reports`: for some data)
    predict_options: frozenset[str] = frozenset()

    # -- settings ------------------------------------------------------------------------------

    def own(self, config):
        """``config`` (a model, data or training config) as this task's class of its concern, the
        settings it lacks at their defaults (``rnnkit.read_data(path, DataConfig(task="classify"))``)."""
        for base, cls in ((ModelConfig, self.model_config), (DataConfig, self.data_config),
                          (TrainConfig, self.train_config)):
            if isinstance(config, base):
                if type(config) is cls:
                    return config
                values = {**to_dict(config), **({"task": self.name} if base is DataConfig else {})}
                return from_dict(cls, values, f"{self.name} {base.__name__}")
        raise TypeError(f"{self.name}: not a model, data or training config: {config!r}")

    @classmethod
    def configs(cls) -> tuple[type, type, type]:
        """The (model, data, train) config classes."""
        return cls.model_config, cls.data_config, cls.train_config

    @classmethod
    def settings(cls) -> dict[str, object]:
        """Every setting of this task, by name: the fields of its three configs."""
        return {f.name: f for c in (cls.model_config, cls.data_config, cls.train_config)
                for f in dataclasses.fields(c) if f.metadata.get("flag", True)}

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

    def decide_model(self, model_cfg, data) -> tuple[object, list[str]]:
        """The model settings with every ``auto`` that needs the read data decided from it (a forecast's
        ``--ar-order auto``), each decision in a few words for `rnnkit train`'s first line; a ConfigError
        or DataError for settings the data cannot take (before anything is written)."""
        return model_cfg, []

    # -- data and model ------------------------------------------------------------------------

    def read_data(self, config, run: dict | None = None, spell: bool = False):
        """The data of ``config`` (a DataConfig), read, tokenized and split; with a run's
        config.json ``run``, read with the run's tokenizers and labels as it trained;
        ``spell``: words with their spellings (``char_features``)."""
        raise NotImplementedError

    def spelling(self, model_cfg) -> bool:
        """Whether the model reads each word's spelling (``read_data(spell=True)``)."""
        return False

    def build_model(self, model_cfg, tokenizer, labels: list[str] | None = None, target_tokenizer=None):
        """The model with these settings, sized by the data's ``tokenizer`` (its vocabulary,
        a series' or audio's features) and its ``labels`` or ``target_tokenizer``."""
        raise NotImplementedError

    def build_from(self, run):
        """The model a run's config.json describes (a :class:`rnnkit.training.run_config.Run`),
        without its weights."""
        return self.build_model(run.model, run.tokenizer, run.labels, run.target_tokenizer)

    def start(self, model, data) -> bool:
        """Set a new model's starting point from the training data before any gradient step (the
        Trainer calls it on a fresh run); True when it set one, which the Trainer then validates at
        step 0, so a run whose training only makes validation worse keeps that start."""
        return False

    def after_training(self, trainer) -> str | None:
        """What the task fits on the best checkpoint once training ends (a forecast's calibration of its
        intervals), said in a line; None for nothing."""
        return None

    def unit_of(self, data) -> str:
        """What one example of ``data`` is called in `rnnkit train`'s first line."""
        return "examples"

    def describe(self, data) -> str:
        """What the inputs are, for `rnnkit train`'s first line."""
        return f"vocabulary {data.vocab_size:,}" + (f", {len(data.labels):,} labels" if hasattr(data, "labels") else "")

    # -- training ------------------------------------------------------------------------------

    def validate(self, model, data, split: str = "val", group=None, config=None) -> dict:
        """The metrics of ``model`` on a split of ``data`` ({} if the split is empty); with a
        ``group`` (rnnkit.training.distributed) the ranks share the work and all get the same;
        ``config``: the training settings, while training (None: a final test)."""
        raise NotImplementedError

    def describe_metrics(self, metrics: dict, data=None) -> str:
        """Validation ``metrics`` of a model trained on ``data`` in a line's few words (the Trainer prints
        them at each evaluation)."""
        return " | ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in metrics.items())

    def reports(self, data) -> tuple[str, ...]:
        """The metrics :meth:`validate` reports on ``data`` (a task whose metrics depend on the data narrows
        :attr:`metrics`)."""
        return self.metrics

    def criterion(self, metrics: dict) -> float:
        """What makes a checkpoint the best, lower being better: the loss, unless the task says."""
        return metrics["loss"]

    def criterion_by(self, best_by: str, data=None) -> Criterion:
        """The :class:`Criterion` of ``--best-by`` (``auto``, or a metric this task's validation reports on
        ``data``; without data, on some data); a ConfigError for another."""
        offered = self.reports(data) if data is not None else self.metrics
        if best_by != "auto" and best_by not in offered:
            what = "this run's" if data is not None else f"--task {self.name}'s"
            raise ConfigError(f"--best-by {best_by}: {what} validation reports {', '.join(offered)}; choose one of "
                              f"them, or auto (the task's: {self.criterion_name})")
        return Criterion(self, best_by)

    def before_step(self, model, step: int, config) -> dict:
        """Set what changes over training in the model before training step ``step`` (the layers
        gradual unfreezing lets learn, seq2seq's scheduled sampling); what is returned goes into
        that step's metrics line. A task that overrides it keeps this one's (``super()``)."""
        return unfreeze(model, step, config)

    def evaluation_sample(self, model, data, config, generator) -> str | None:
        """A text the model writes at each evaluation, shown and logged (None: none)."""
        return None

    def sample_text(self, model, tokenizer, labels: list[str] | None, length: int, generator) -> str | None:
        """A text of ``length`` tokens the model writes, for the report (None: the task writes none)."""
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

    def endpoints(self, model, run, limits) -> dict:
        """What `rnnkit serve` offers for a run of this task: :class:`rnnkit.tasks.serving.Endpoint`
        by name, each served at ``POST /api/NAME``, within ``limits`` (:class:`~rnnkit.tasks.serving.Limits`);
        ``run``: the run's config.json (:class:`rnnkit.training.run_config.Run`)."""
        return {}

    def decoding(self, request):
        """The decoding settings a run of this task takes from `eval`/`predict` flags (None: none)."""
        return None

    # -- rnnkit export ---------------------------------------------------------------------------

    def export_graphs(self, model, run) -> tuple[list, dict[str, dict]]:
        """What ``rnnkit export`` writes of ``model`` (its layers on torch's ops already; ``run`` its
        config.json): the graphs (:class:`rnnkit.models.portable.Graph`) and the JSON documents to
        put beside them, by file name."""
        raise ConfigError(f"a {self.name} run cannot be exported yet; export takes lm, classify, tag, seq2seq "
                          f"and ctc runs")

    # -- rnnkit report ---------------------------------------------------------------------------

    def report_sections(self, model, doc: dict, data, text: str | None, chars: int,
                        missing: str) -> list[tuple[str, str]]:
        """This task's sections of the report (title, HTML), after the common ones; ``data`` is
        None (and ``missing`` says why) when the run's files are gone; ``text`` and ``chars``
        are `rnnkit report --text/--text-length`."""
        if text:
            raise ConfigError(f"--text is read by a language model; this is a {self.name} run: drop --text")
        return []

    def __repr__(self) -> str:
        return f"<task {self.name}>"
