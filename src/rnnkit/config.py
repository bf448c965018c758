"""Settings as dataclasses, validated on construction, grouped by concern:
the model (:class:`ModelConfig`), the data (:class:`DataConfig`), training
(:class:`TrainConfig`) and sampling (:class:`SampleConfig`).

These hold what every task shares. A task's own settings extend them, each
beside the code that reads it: a model's config in its module
(``rnnkit.models.ClassifierConfig(EncoderConfig(ModelConfig))``: pooling,
...), the data's where the files are read (``rnnkit.data.PairConfig``:
columns, parallel files) or in the task (``rnnkit.tasks.ClassifyData``),
training's in the task (``rnnkit.tasks.LanguageModelTraining``: samples at
each evaluation). A task names its three classes
(:class:`rnnkit.tasks.Task`), so which setting applies to which task follows
from the classes.

Every field is also a CLI flag (``--kebab-case`` of the field name) and a key
of the run folder's ``config.json``: one name per concept. Precedence is
defaults < config file < command-line flags; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass, field
from typing import Any

from rnnkit import deprecated
from rnnkit.errors import ConfigError

TOKENIZERS = ("auto", "char", "byte", "word", "bpe")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw")
EPS_OPTIMIZERS = ("adagrad", "rmsprop", "adadelta", "adam", "adamw")  # those that divide by sqrt(...) + eps
LR_SCHEDULES = ("constant", "step", "cosine", "stlr")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
NONFINITE_POLICIES = ("stop", "skip", "lower_lr")
LOGS = ("jsonl", "tensorboard")
CHAR_FEATURES_NEED_WORDS = ("--char-features reads the spelling of words: it needs --task classify or tag "
                            "with word tokens (--tokenizer word)")


def setting(text: str, **kwargs) -> Any:
    """A dataclass field that is a setting: ``text`` is its help (the flag's, the docs')."""
    return field(metadata={"help": text}, **kwargs)


def check_choice(cfg, name: str, choices: tuple) -> None:
    """A ConfigError unless setting ``name`` of ``cfg`` is one of ``choices``."""
    if getattr(cfg, name) not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(cfg, name)!r}")


def check_fraction(cfg, name: str) -> None:
    """A ConfigError unless setting ``name`` of ``cfg`` is in [0, 1)."""
    if not 0.0 <= getattr(cfg, name) < 1.0:
        raise ConfigError(f"{name} must be in [0, 1); got {getattr(cfg, name)}")


def check_at_least(cfg, name: str, low: float, optional: bool = False) -> None:
    """A ConfigError unless setting ``name`` of ``cfg`` is >= ``low`` (or None, when ``optional``)."""
    value = getattr(cfg, name)
    if optional and value is None:
        return
    if value < low:
        raise ConfigError(f"{name} must be >= {low}; got {value}")


@dataclass
class ModelConfig:
    """The model's settings, shared by every task: the cell, the sizes, dropout and the other regularisers,
    the engine and initialisation. Each field is a CLI flag."""

    cell: str = setting("recurrent cell: rnn, lstm, gru, leaky (leaky-integrator units), lnlstm, lngru "
                        "(layer-normalised), mingru, minlstm, or any other cell registered in rnnkit.kernels",
                        default="lstm")
    hidden_size: int = setting("units per layer (char-rnn: rnn_size)", default=512)
    num_layers: int = setting("stacked recurrent layers", default=2)
    embedding_dim: int = setting("input embedding width; 0 = one-hot input as in min-char-rnn", default=128)
    dropout: float = setting("dropout on embeddings, between layers and before the output layer", default=0.2)
    embeddings: str | None = setting("start the word embedding from this vectors file (GloVe text format, a "
                                     "word and its embedding_dim numbers a line); words it lacks start random",
                                     default=None)
    batchnorm: bool = setting("batch normalisation of every recurrent layer's outputs, before the dropout "
                              "between layers (torch-rnn's -batchnorm 1)", default=False)
    weight_drop: float = setting("DropConnect on the recurrent weights W_hh, a fresh mask per batch "
                                 "(AWD-LSTM's weight drop; rnn, lstm and gru)", default=0.0)
    input_noise: float = setting("σ of Gaussian noise added to the recurrent layers' inputs in training (fresh at "
                                 "every step; none in evaluation)", default=0.0)
    weight_noise: float = setting("σ of Gaussian noise added to the recurrent weights W_hh at each training step "
                                  "(Graves 2011's weight noise; none in evaluation; rnn, lstm, gru, ...)",
                                  default=0.0)
    skip_steps: int = setting("skip connections through time: each step also reads the layer's output this many "
                              "steps back, h_(t-d), through weights of its own (0: none; >= 2; explicit engine, "
                              "cells with recurrent weights)", default=0)
    engine: str = setting("fused (torch kernels; a scan for mingru/minlstm), explicit (loop over rnnkit "
                          "cells) or auto: on a CPU explicit for a gru or rnn, and for an lstm over padded "
                          "batches (classify, tag), where it ran faster; fused otherwise", default="auto")
    nonlinearity: str = setting("tanh or relu, for --cell rnn", default="tanh")
    forget_bias: float = setting("initial LSTM forget-gate bias (lstm, lnlstm)", default=1.0)
    leak_timescale: float = setting("leaky: the slowest unit's time scale in steps; the leak rates spread "
                                    "geometrically over the units from 1 (an ordinary RNN unit) down to "
                                    "1/leak_timescale", default=100.0)
    learn_leak: bool = setting("leaky: learn each unit's leak rate, α = σ(w) with w a parameter started at the "
                               "fixed rates' logits (the fastest at σ(6) ≈ 0.9975)", default=False)
    label_smoothing: float = setting("training's cross-entropy against (1 - ε) one-hot + ε/K uniform over the K "
                                     "labels or tokens (torch's label_smoothing; Szegedy et al. 2016); validation, "
                                     "test and eval score the plain cross-entropy (lm, classify, tag without --crf, "
                                     "seq2seq's tokens)", default=0.0)
    input_init: str = setting("input weights init: glorot or torch", default="glorot")
    recurrent_init: str = setting("recurrent weights init: orthogonal, glorot or torch", default="orthogonal")
    bidirectional: bool | None = setting("read the sequence both ways (none: yes for classify and tag, no for "
                                         "lm, which must read left to right)", default=None)
    merge: str = setting("how a bidirectional layer joins its directions: concat, sum, mul or avg",
                         default="concat")

    def __post_init__(self):
        check_choice(self, "merge", ("concat", "sum", "mul", "avg"))
        check_choice(self, "engine", ("auto", "fused", "explicit"))
        check_choice(self, "nonlinearity", ("tanh", "relu"))
        check_choice(self, "input_init", ("glorot", "torch"))
        check_choice(self, "recurrent_init", ("orthogonal", "glorot", "torch"))
        check_at_least(self, "hidden_size", 1)
        check_at_least(self, "num_layers", 1)
        check_at_least(self, "embedding_dim", 0)
        check_at_least(self, "leak_timescale", 1.0)
        for name in ("input_noise", "weight_noise"):
            check_at_least(self, name, 0.0)
        if self.skip_steps < 0 or self.skip_steps == 1:
            raise ConfigError(f"skip_steps must be 0 (none) or >= 2 (1 is the ordinary recurrence); got "
                              f"{self.skip_steps}")
        for name in ("dropout", "weight_drop", "label_smoothing"):
            check_fraction(self, name)


@dataclass
class DataConfig:
    """What to read and how: the file, the task, the tokenizer and its vocabulary, the splits, the batch
    size and sequence length. Each field is a CLI flag."""

    path: str | None = setting("training file: text (lm), a CSV/TSV table (classify), CoNLL columns (tag), "
                               "a TSV of source and target (seq2seq) or, with --source-lang, the parallel "
                               "files' prefix", default=None)
    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="lm")
    tokenizer: str = setting("char (Unicode code points), byte (0-255, any file), word (whitespace, <unk> "
                             "beyond the cap) or bpe (subwords); auto: the task decides from the data (lm: char; "
                             "one token a line: char; a large open vocabulary: bpe; else word)",
                             default="auto")
    max_vocab_size: int | None = setting("word: keep the most frequent words (the rest are <unk>); bpe: "
                                         "vocabulary size (default 2000)", default=None)
    min_count: int = setting("word: words seen fewer times are <unk>", default=1)
    lowercase: bool = setting("word: lower-case the text first", default=False)
    word_pattern: str | None = setting("word: a regular expression for a word (default: split on whitespace; "
                                       "e.g. '\\w+|[^\\w\\s]' splits off punctuation)", default=None)
    val_path: str | None = setting("validation file (default: split --val-fraction off the training file)",
                                   default=None)
    test_path: str | None = setting("test file, evaluated at the end (default: --test-fraction)", default=None)
    seq_len: int = setting("time steps per chunk of truncated BPTT (char-rnn: seq_length)", default=64)
    batch_size: int = setting("parallel streams per batch", default=32)
    val_fraction: float = setting("share of the corpus held out for validation (taken after train)", default=0.1)
    test_fraction: float = setting("share held out for testing (taken last)", default=0.0)

    def __post_init__(self):
        check_choice(self, "tokenizer", TOKENIZERS)
        check_at_least(self, "seq_len", 1)
        check_at_least(self, "max_vocab_size", 1, optional=True)
        check_at_least(self, "min_count", 1)
        check_at_least(self, "batch_size", 1)
        for name in ("val_fraction", "test_fraction"):
            check_fraction(self, name)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("val_fraction + test_fraction must be < 1; nothing would be left to train on")


@dataclass
class TrainConfig:
    """How to train: the optimizer and its rate schedule, clipping, the budget, evaluation and checkpoints,
    device and precision, logging. Each field is a CLI flag."""

    optimizer: str = setting("sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam or adamw",
                             default="adamw")
    lr: float = setting("peak learning rate (char-rnn: learning_rate)", default=4e-3)
    momentum: float = setting("momentum/nesterov: the velocity's decay", default=0.9)
    alpha: float = setting("rmsprop: smoothing constant of the squared gradients' running average (torch's "
                           "alpha, char-rnn's decay_rate)", default=0.9)
    beta1: float = setting("adam/adamw: decay of the gradient's running average (torch's betas[0])", default=0.9)
    beta2: float = setting("adam/adamw: decay of the squared gradient's running average (torch's betas[1])",
                           default=0.999)
    eps: float | None = setting("adagrad, rmsprop, adadelta, adam, adamw: the term added to the root of the squared "
                                "gradients' average before dividing (default: torch's, 1e-10 for adagrad, 1e-6 "
                                "for adadelta, 1e-8 for the others)", default=None)
    rho: float = setting("adadelta: decay of the running averages of squared gradients and squared updates "
                         "(torch's rho; Zeiler 2012)", default=0.9)
    weight_decay: float | None = setting("penalty on weight matrices, decoupled for adamw (L2 for the others); "
                                         "default 0.1 for adamw, 0 for the others", default=None)
    l1: float = setting("L1 penalty l1 * sum |w| on weight matrices and embeddings (not biases): its subgradient "
                        "l1 * sign(w) joins the gradient before each step, as an L2 weight decay does", default=0.0)
    clip_norm: float | None = setting("clip the global gradient norm to this (nanoGPT: grad_clip)",
                                      default=1.0)
    clip_value: float | None = setting("clip each gradient element to [-v, v] (char-rnn: grad_clip, which "
                                       "clamps elements)", default=None)
    lr_schedule: str = setting("constant, step, cosine (decay over the whole budget) or stlr (slanted triangular: "
                               "a short linear rise, then a long linear fall; Howard & Ruder 2018)", default="cosine")
    stlr_cut_frac: float = setting("stlr: the share of the budget over which the rate rises", default=0.1)
    stlr_ratio: float = setting("stlr: how much smaller the lowest rate is than the peak --lr", default=32.0)
    warmup_steps: int = setting("linear learning-rate warm-up steps", default=20)
    min_lr_ratio: float = setting("cosine decays to lr * min_lr_ratio", default=0.05)
    lr_decay: float = setting("step schedule: multiply lr by this ...", default=0.5)
    lr_decay_every: int = setting("... every this many steps", default=1000)
    lr_decay_start: int | None = setting("step schedule: first decay at this step, then every lr_decay_every "
                                         "(Zaremba et al.: after epoch 4); none: at lr_decay_every", default=None)
    init_from: str | None = setting("start the embedding and recurrent layers from this language model's run folder "
                                    "(`rnnkit train` of --task lm; same tokenizer kind, cell, sizes): its vocabulary "
                                    "plus the words this data adds, the task's head fresh (ULMFiT)", default=None)
    lr_layer_decay: float | None = setting("with --init-from: discriminative rates, layer l from the top (the head is "
                                           "0, the embedding lowest) learns at lr / lr_layer_decay^l (ULMFiT: 2.6)",
                                           default=None)
    unfreeze_every: int | None = setting("with --init-from: gradual unfreezing, only the head trains at first, then "
                                         "one more layer from the top every this many steps", default=None)
    max_steps: int | None = setting("stop after this many steps", default=None)
    max_epochs: float | None = setting("stop after this many passes over the training split", default=None)
    time_limit: float | None = setting("stop after this many seconds of training (default 300 if no "
                                       "budget is given)", default=None)
    eval_every: int = setting("evaluate, keep the best checkpoint and sample every this many steps (the resume "
                              "checkpoint and the plot are rewritten then when due: at most ~10 % of the wall time)",
                              default=250)
    log_every: int = setting("write a metrics line every this many steps", default=10)
    save_every: int | None = setting("also write the resume checkpoint (last.safetensors) every this many steps: "
                                     "a crash loses at most this many (default: at evaluations, at most ~10 % of "
                                     "the wall time spent rewriting it)", default=None)
    on_nonfinite: str = setting("when a step's loss or gradient is NaN or infinite: stop (with the step named), "
                                "skip the step, or lower_lr (skip it and halve the learning rate from then on); "
                                "skip and lower_lr stop after 20 such steps in a row", default="stop")
    diagnostics_every: int | None = setting("every this many steps, measure on a fixed validation batch the gradient "
                                      "flow through time, the step Jacobians' products, each recurrent matrix's "
                                      "spectral radius and the saturated gates, into metrics.jsonl "
                                      "(rnnkit report RUN draws them)", default=None)
    log: str = setting("metrics.jsonl always; tensorboard: also TensorBoard event files in RUN/tensorboard "
                       "(losses, learning rate, gradient norms, diagnostics, samples)", default="jsonl")
    patience: int | None = setting("stop after this many evaluations without a better validation criterion "
                                   "(--best-by)", default=None)
    best_by: str = setting("the validation metric that picks the kept checkpoint (best.safetensors) and --patience's "
                           "improvements: auto (the task's: the loss; chunk F1 for chunk tags; the token error rate "
                           "for seq2seq and ctc) or one the task's validation reports, e.g. accuracy (a tagger's loss "
                           "can rise while its accuracy still improves)", default="auto")
    weight_average: float = setting("evaluate, keep and test an exponential moving average of the weights, which "
                                    "moves by 1 - DECAY a step (about the last 1 / (1 - DECAY) steps; e.g. 0.999); "
                                    "training goes on from the optimizer's own weights; 0: off", default=0.0)
    precision: str = setting("auto (bf16 where the hardware has bf16 units, else fp32), fp32, or bf16 "
                             "(autocast: bf16 matrix products, fp32 weights and loss)", default="auto")
    seed: int = setting("fixes initialisation, data order, dropout and samples", default=1337)
    device: str = setting("auto, cpu or cuda", default="auto")
    out: str | None = setting("run folder (default: runs/<corpus name>)", default=None)

    def __post_init__(self):
        check_choice(self, "optimizer", OPTIMIZERS)
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_choice(self, "device", DEVICES)
        check_choice(self, "precision", PRECISIONS)
        check_choice(self, "on_nonfinite", NONFINITE_POLICIES)
        check_choice(self, "log", LOGS)
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0; got {self.lr}")
        for name in ("clip_norm", "clip_value", "time_limit", "max_epochs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0; got {value}")
        for name in ("max_steps", "eval_every", "log_every", "save_every", "diagnostics_every", "patience",
                     "lr_decay_every", "lr_decay_start"):
            check_at_least(self, name, 1, optional=True)
        for name in ("warmup_steps", "momentum"):
            check_at_least(self, name, 0)
        check_at_least(self, "weight_decay", 0, optional=True)
        check_at_least(self, "l1", 0)
        for name in ("alpha", "beta1", "beta2", "rho", "weight_average"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.eps is not None and not self.eps > 0:
            raise ConfigError(f"eps must be > 0; got {self.eps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}")
        if not 0.0 < self.stlr_cut_frac < 1.0:
            raise ConfigError(f"stlr_cut_frac must be in (0, 1); got {self.stlr_cut_frac}")
        check_at_least(self, "stlr_ratio", 1.0)
        check_at_least(self, "lr_layer_decay", 1.0, optional=True)
        check_at_least(self, "unfreeze_every", 1, optional=True)
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"lr_decay must be in (0, 1]; got {self.lr_decay}")

    @property
    def weight_decay_in_use(self) -> float:
        """The weight decay in use: ``weight_decay``, or when unset 0.1 for
        adamw (the tiny-shakespeare recipe: it lets training past 5 epochs
        help instead of overfit) and 0 for the other optimizers."""
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.1 if self.optimizer == "adamw" else 0.0

    @property
    def has_budget(self) -> bool:
        """Whether ``max_steps``, ``max_epochs`` or ``time_limit`` is set."""
        return any(v is not None for v in (self.max_steps, self.max_epochs, self.time_limit))


@dataclass
class SampleConfig:
    """How ``rnnkit sample`` generates: the prime, the length, temperature, top-k and top-p, the
    number of samples and their seed. Each field is a CLI flag."""

    prime: str = setting("text to start from (char-rnn: primetext; empty: a newline)", default="")
    prime_file: str | None = setting("read the prime text from this file", default=None)
    sample_length: int = setting("characters (tokens) to generate", default=1000)
    temperature: float = setting("softmax temperature; 0 = greedy (always the likeliest)", default=0.8)
    top_k: int | None = setting("sample only among the k likeliest tokens", default=None)
    top_p: float | None = setting("sample from the smallest set with total probability >= p", default=None)
    num_samples: int = setting("independent samples to draw", default=1)
    seed: int | None = setting("random seed for sampling (none: a fresh one each run)", default=None)
    condition: str | None = setting("a conditioned model's label to write a text of (one text a sample)",
                                    default=None)
    precision: str = setting("weights while generating: auto (bf16 where the hardware has bf16 units, else "
                             "fp32), fp32, or bf16 (half the bytes a step reads: faster at batch 1; logits "
                             "within bf16 rounding)", default="auto")
    length: InitVar[int | None] = None  # deprecated name of sample_length, kept for this version

    def __post_init__(self, length: int | None):
        if length is not None:
            if self.sample_length != SampleConfig.sample_length:  # both given
                raise deprecated.both("length", "sample_length")
            deprecated.warn("SampleConfig(length=...)", "sample_length")
            self.sample_length = length
        check_choice(self, "precision", PRECISIONS)
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy); got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1]; got {self.top_p}")
        check_at_least(self, "top_k", 1, optional=True)
        check_at_least(self, "sample_length", 0)
        check_at_least(self, "num_samples", 1)


def smoothing(model) -> float:
    """The label smoothing ε of ``model``'s cross-entropy now: its ``config.label_smoothing`` in
    training mode, 0 in evaluation mode (validation, test and eval score the plain cross-entropy)."""
    return model.config.label_smoothing if model.training else 0.0


def to_dict(cfg) -> dict:
    """Any config dataclass as a plain dict of its fields, for config.json."""
    return dataclasses.asdict(cfg)


def from_dict(cls, values: dict, where: str = "config"):
    """Build ``cls`` from a dict, rejecting unknown keys by name."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    try:
        return cls(**values)
    except TypeError as e:  # a value of the wrong type reaching a comparison
        raise ConfigError(f"{where}: {e}") from None
