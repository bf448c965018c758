"""Settings as dataclasses, validated on construction.

Every field is also a CLI flag (``--kebab-case`` of the field name) and a key
of the run folder's ``config.json``: one name per concept. Precedence is
defaults < config file < command-line flags; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rnnkit.errors import ConfigError

TOKENIZERS = ("auto", "char", "byte", "word", "bpe")
POOLINGS = ("last", "mean", "max", "attention")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
LR_SCHEDULES = ("constant", "step", "cosine")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
NONFINITE_POLICIES = ("stop", "skip", "lower_lr")
LOGS = ("jsonl", "tensorboard")
CHAR_FEATURES_NEED_WORDS = ("--char-features reads the spelling of words: it needs --task classify or tag "
                            "with word tokens (--tokenizer word)")


def _help(text: str, **kwargs) -> Any:
    return field(metadata={"help": text}, **kwargs)


def _choice(cfg, name: str, choices: tuple) -> None:
    if getattr(cfg, name) not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(cfg, name)!r}")


def _at_least(cfg, name: str, low: float, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if optional and value is None:
        return
    if value < low:
        raise ConfigError(f"{name} must be >= {low}; got {value}")


@dataclass
class ModelConfig:
    cell: str = _help("recurrent cell: rnn, lstm, gru, leaky (leaky-integrator units), lnlstm, lngru "
                      "(layer-normalised), mingru, minlstm, or any other cell registered in rnnkit.kernels",
                      default="lstm")
    hidden_size: int = _help("units per layer (char-rnn: rnn_size)", default=512)
    num_layers: int = _help("stacked recurrent layers", default=2)
    embedding_dim: int = _help("input embedding width; 0 = one-hot input as in min-char-rnn", default=128)
    dropout: float = _help("dropout on embeddings, between layers and before the output layer", default=0.2)
    embeddings: str | None = _help("start the word embedding from this vectors file (GloVe text format, a "
                                   "word and its embedding_dim numbers a line); words it lacks start random",
                                   default=None)
    locked_dropout: bool = _help("one dropout mask per sequence for all time steps (variational / AWD-LSTM "
                                 "locked dropout) instead of a fresh mask per step", default=False)
    batchnorm: bool = _help("batch normalisation of every recurrent layer's outputs, before the dropout "
                            "between layers (torch-rnn's -batchnorm 1)", default=False)
    weight_drop: float = _help("DropConnect on the recurrent weights W_hh, a fresh mask per batch "
                               "(AWD-LSTM's weight drop; rnn, lstm and gru)", default=0.0)
    embedding_dropout: float = _help("lm: drop whole words from the embedding (every occurrence in a batch; "
                                     "Gal & Ghahramani 2016)", default=0.0)
    tie_weights: bool = _help("lm: the output layer reuses the input embedding (Press & Wolf 2017; needs "
                              "embedding_dim = hidden_size)", default=False)
    engine: str = _help("fused (torch kernels; a scan for mingru/minlstm), explicit (loop over rnnkit "
                        "cells) or auto: on a CPU explicit for a gru or rnn, and for an lstm over padded "
                        "batches (classify, tag), where it ran faster; fused otherwise", default="auto")
    nonlinearity: str = _help("tanh or relu, for --cell rnn", default="tanh")
    forget_bias: float = _help("initial LSTM forget-gate bias (lstm, lnlstm)", default=1.0)
    leak_timescale: float = _help("leaky: the slowest unit's time scale in steps; the leak rates spread "
                                  "geometrically over the units from 1 (an ordinary RNN unit) down to "
                                  "1/leak_timescale", default=100.0)
    input_init: str = _help("input weights init: glorot or torch", default="glorot")
    recurrent_init: str = _help("recurrent weights init: orthogonal, glorot or torch", default="orthogonal")
    bidirectional: bool | None = _help("read the sequence both ways (none: yes for classify and tag, no for "
                                       "lm, which must read left to right)", default=None)
    merge: str = _help("how a bidirectional layer joins its directions: concat, sum, mul or avg",
                       default="concat")
    pooling: str = _help("classify: one vector from all steps by last (state), mean, max or attention",
                         default="max")
    encoder: str = _help("classify, tag: rnn (the recurrent cells) or tdnn (a time-delay network: 1-D "
                         "convolutions over time, the finite-window baseline)", default="rnn")
    kernel_size: int = _help("tdnn: inputs each convolution sees", default=5)
    adversarial: float = _help("classify: adversarial training with perturbations of this L2 norm on each "
                               "example's embeddings (Miyato et al. 2017; 0 = off)", default=0.0)
    char_features: int = _help("classify, tag: read each word's spelling with a bidirectional LSTM of this "
                               "many units a direction, for words the vocabulary lacks (Lample et al. 2016; "
                               "0 = off; 25 is usual)", default=0)
    crf: bool = _help("tag: a linear-chain CRF output layer (Viterbi decoding) instead of per-step softmax",
                      default=False)
    attention: str = _help("seq2seq: the decoder's attention score over the source: additive (Bahdanau), "
                           "dot or general (Luong), or none (the source reaches the decoder only through "
                           "the encoder's final state)", default="additive")
    input_feeding: bool = _help("seq2seq: feed each step's attentional state to the next step's input "
                                "(Luong et al. 2015)", default=True)
    decoder_recurrence: str = _help("seq2seq: hidden (the decoder's state reads its previous state) or output "
                                    "(it reads only the previous output token, so teacher-forced steps "
                                    "train in parallel)", default="hidden")
    sequence_end: str = _help("seq2seq: how an output ends: eos (an end-of-sequence symbol) or stop (a "
                              "Bernoulli stop output at each step)", default="eos")

    def __post_init__(self):
        _choice(self, "merge", ("concat", "sum", "mul", "avg"))
        _choice(self, "pooling", POOLINGS)
        _choice(self, "encoder", ("rnn", "tdnn"))
        _choice(self, "attention", ("additive", "dot", "general", "none"))
        _choice(self, "decoder_recurrence", ("hidden", "output"))
        _choice(self, "sequence_end", ("eos", "stop"))
        _at_least(self, "kernel_size", 1)
        _at_least(self, "adversarial", 0.0)
        _choice(self, "engine", ("auto", "fused", "explicit"))
        _choice(self, "nonlinearity", ("tanh", "relu"))
        _choice(self, "input_init", ("glorot", "torch"))
        _choice(self, "recurrent_init", ("orthogonal", "glorot", "torch"))
        _at_least(self, "hidden_size", 1)
        _at_least(self, "num_layers", 1)
        _at_least(self, "embedding_dim", 0)
        _at_least(self, "char_features", 0)
        _at_least(self, "leak_timescale", 1.0)
        for name in ("dropout", "embedding_dropout", "weight_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ConfigError(f"tie_weights needs embedding_dim = hidden_size; got {self.embedding_dim} and "
                              f"{self.hidden_size}")


@dataclass
class DataConfig:
    path: str | None = _help("training file: text (lm), a CSV/TSV table (classify), CoNLL columns (tag), "
                             "a TSV of source and target (seq2seq) or, with --source-lang, the parallel "
                             "files' prefix", default=None)
    task: str = _help("what to learn, a name in rnnkit.tasks.TASKS", default="lm")
    tokenizer: str = _help("char (Unicode code points), byte (0-255, any file), word (whitespace, <unk> "
                           "beyond the cap) or bpe (subwords); auto: the task decides from the data (lm: char; "
                           "one token a line: char; a large open vocabulary: bpe; else word)",
                           default="auto")
    max_vocab_size: int | None = _help("word: keep the most frequent words (the rest are <unk>); bpe: "
                                       "vocabulary size (default 2000)", default=None)
    target_tokenizer: str = _help("seq2seq: the target side's tokenizer, as --tokenizer (auto: the same kind "
                                  "as the source's)", default="auto")
    min_count: int = _help("word: words seen fewer times are <unk>", default=1)
    lowercase: bool = _help("word: lower-case the text first", default=False)
    word_pattern: str | None = _help("word: a regular expression for a word (default: split on whitespace; "
                                     "e.g. '\\w+|[^\\w\\s]' splits off punctuation)", default=None)
    text_column: str = _help("classify: the text column, by header name or 0-based index (auto: text, "
                             "content, comment, message, sentence or review)", default="auto")
    label_column: str = _help("classify: the label column (auto: label, class, category or target)",
                              default="auto")
    condition_column: str | None = _help("lm: learn each text of a table conditioned on the label in this "
                                         "column (sample with --condition LABEL)", default=None)
    source_column: int = _help("seq2seq: the TSV column of the source (0-based)", default=0)
    target_column: int = _help("seq2seq: the TSV column of the target (0-based)", default=1)
    source_lang: str | None = _help("seq2seq: read parallel files PATH.LANG (or PATH.LANG.gz), this one the "
                                    "source; the same for --val-path and --test-path", default=None)
    target_lang: str | None = _help("seq2seq: the target language of the parallel files", default=None)
    sample_rate: int | None = _help("ctc: the audio's sample rate in Hz; every wav must have it (default: the "
                                    "first training file's)", default=None)
    mel_bands: int = _help("ctc: log-mel features per frame (25 ms windows every 10 ms)", default=40)
    frame_stack: int = _help("ctc: join this many consecutive frames into one step, to shorten the "
                             "sequences (Sak et al. 2015)", default=1)
    long_transcripts: str = _help("ctc: what to do with a transcript longer than its audio's frames can "
                                  "emit: refuse (an error naming it) or skip (with a count)", default="refuse")
    word_column: int = _help("tag: the CoNLL column of the words (0-based)", default=0)
    tag_column: int = _help("tag: the CoNLL column of the tags (-1: the last; CoNLL-U UPOS: 3)", default=-1)
    val_path: str | None = _help("validation file (default: split --val-fraction off the training file)",
                                 default=None)
    test_path: str | None = _help("test file, evaluated at the end (default: --test-fraction)", default=None)
    seq_len: int = _help("time steps per chunk of truncated BPTT (char-rnn: seq_length)", default=64)
    batch_size: int = _help("parallel streams per batch", default=32)
    val_fraction: float = _help("share of the corpus held out for validation (taken after train)", default=0.1)
    test_fraction: float = _help("share held out for testing (taken last)", default=0.0)

    def __post_init__(self):
        _choice(self, "tokenizer", TOKENIZERS)
        _choice(self, "target_tokenizer", TOKENIZERS)
        _at_least(self, "sample_rate", 1, optional=True)
        _at_least(self, "mel_bands", 1)
        _at_least(self, "frame_stack", 1)
        _choice(self, "long_transcripts", ("refuse", "skip"))
        _at_least(self, "source_column", 0)
        _at_least(self, "target_column", 0)
        if self.source_column == self.target_column:
            raise ConfigError(f"source_column and target_column are both {self.source_column}; give two columns")
        if (self.source_lang is None) != (self.target_lang is None) or (self.source_lang and
                                                                       self.source_lang == self.target_lang):
            raise ConfigError("source_lang and target_lang name the two parallel files: give both, different")
        _at_least(self, "seq_len", 1)
        _at_least(self, "max_vocab_size", 1, optional=True)
        _at_least(self, "min_count", 1)
        _at_least(self, "batch_size", 1)
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("val_fraction + test_fraction must be < 1; nothing would be left to train on")


@dataclass
class TrainConfig:
    optimizer: str = _help("sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw", default="adamw")
    lr: float = _help("peak learning rate (char-rnn: learning_rate)", default=4e-3)
    momentum: float = _help("momentum for momentum/nesterov; alpha for rmsprop", default=0.9)
    weight_decay: float | None = _help("penalty on weight matrices, decoupled for adamw (L2 for the others); "
                                       "default 0.1 for adamw, 0 for the others", default=None)
    l1: float = _help("L1 penalty l1 * sum |w| on weight matrices and embeddings (not biases): its subgradient "
                      "l1 * sign(w) joins the gradient before each step, as an L2 weight decay does", default=0.0)
    clip_norm: float | None = _help("clip the global gradient norm to this (char-rnn: grad_clip)", default=1.0)
    clip_value: float | None = _help("clip each gradient element to [-v, v]", default=None)
    lr_schedule: str = _help("constant, step or cosine (decay over the whole budget)", default="cosine")
    warmup_steps: int = _help("linear learning-rate warm-up steps", default=20)
    min_lr_ratio: float = _help("cosine decays to lr * min_lr_ratio", default=0.05)
    lr_decay: float = _help("step schedule: multiply lr by this ...", default=0.5)
    lr_decay_every: int = _help("... every this many steps", default=1000)
    lr_decay_start: int | None = _help("step schedule: first decay at this step, then every lr_decay_every "
                                       "(Zaremba et al.: after epoch 4); none: at lr_decay_every", default=None)
    max_steps: int | None = _help("stop after this many steps", default=None)
    max_epochs: float | None = _help("stop after this many passes over the training split", default=None)
    time_limit: float | None = _help("stop after this many seconds of training (default 300 if no "
                                     "budget is given)", default=None)
    eval_every: int = _help("evaluate, checkpoint, plot and sample every this many steps", default=250)
    log_every: int = _help("write a metrics line every this many steps", default=10)
    save_every: int | None = _help("also write the resume checkpoint (last.safetensors) every this many steps: "
                                   "a crash loses at most this many (default: at each evaluation)", default=None)
    on_nonfinite: str = _help("when a step's loss or gradient is NaN or infinite: stop (with the step named), "
                              "skip the step, or lower_lr (skip it and halve the learning rate from then on); "
                              "skip and lower_lr stop after 20 such steps in a row", default="stop")
    diagnostics: int | None = _help("every this many steps, measure on a fixed validation batch the gradient "
                                    "flow through time, the step Jacobians' products, each recurrent matrix's "
                                    "spectral radius and the saturated gates, into metrics.jsonl "
                                    "(rnnkit report RUN draws them)", default=None)
    log: str = _help("metrics.jsonl always; tensorboard: also TensorBoard event files in RUN/tensorboard "
                     "(losses, learning rate, gradient norms, diagnostics, samples)", default="jsonl")
    patience: int | None = _help("stop after this many evaluations without a better validation loss "
                                 "(seq2seq and ctc: token error rate)", default=None)
    scheduled_sampling: str = _help("seq2seq: feed the decoder its own sampled tokens instead of the "
                                    "target's, more often as training goes on (Bengio et al. 2015): none "
                                    "(teacher forcing), linear, exponential or inverse_sigmoid", default="none")
    sampling_steps: int = _help("seq2seq: the step at which scheduled sampling feeds the model's own tokens "
                                "half the time", default=5000)
    eval_streams: int = _help("parallel streams for validation during training (eval uses 1)", default=16)
    sample_length: int = _help("characters sampled at each evaluation (0 = none)", default=200)
    precision: str = _help("auto (bf16 where the hardware has bf16 units, else fp32), fp32, or bf16 "
                           "(autocast: bf16 matrix products, fp32 weights and loss)", default="auto")
    seed: int = _help("fixes initialisation, data order, dropout and samples", default=1337)
    device: str = _help("auto, cpu or cuda", default="auto")
    out: str | None = _help("run folder (default: runs/<corpus name>)", default=None)

    def __post_init__(self):
        _choice(self, "optimizer", OPTIMIZERS)
        _choice(self, "lr_schedule", LR_SCHEDULES)
        _choice(self, "device", DEVICES)
        _choice(self, "precision", PRECISIONS)
        _choice(self, "on_nonfinite", NONFINITE_POLICIES)
        _choice(self, "log", LOGS)
        _choice(self, "scheduled_sampling", ("none", "linear", "exponential", "inverse_sigmoid"))
        _at_least(self, "sampling_steps", 1)
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0; got {self.lr}")
        for name in ("clip_norm", "clip_value", "time_limit", "max_epochs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0; got {value}")
        for name in ("max_steps", "eval_every", "log_every", "save_every", "diagnostics", "patience", "eval_streams",
                     "lr_decay_every", "lr_decay_start"):
            _at_least(self, name, 1, optional=True)
        for name in ("warmup_steps", "sample_length", "momentum"):
            _at_least(self, name, 0)
        _at_least(self, "weight_decay", 0, optional=True)
        _at_least(self, "l1", 0)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}")
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
        return any(v is not None for v in (self.max_steps, self.max_epochs, self.time_limit))


@dataclass
class SampleConfig:
    prime: str = _help("text to start from (char-rnn: primetext; empty: a newline)", default="")
    prime_file: str | None = _help("read the prime text from this file", default=None)
    length: int = _help("characters (tokens) to generate", default=1000)
    temperature: float = _help("softmax temperature; 0 = greedy (always the likeliest)", default=0.8)
    top_k: int | None = _help("sample only among the k likeliest tokens", default=None)
    top_p: float | None = _help("sample from the smallest set with total probability >= p", default=None)
    num_samples: int = _help("independent samples to draw", default=1)
    seed: int | None = _help("random seed for sampling (none: a fresh one each run)", default=None)
    condition: str | None = _help("a conditioned model's label to write a text of (one text a sample)",
                                  default=None)
    precision: str = _help("weights while generating: auto (bf16 where the hardware has bf16 units, else "
                           "fp32), fp32, or bf16 (half the bytes a step reads: faster at batch 1; logits "
                           "within bf16 rounding)", default="auto")

    def __post_init__(self):
        _choice(self, "precision", PRECISIONS)
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy); got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1]; got {self.top_p}")
        _at_least(self, "top_k", 1, optional=True)
        _at_least(self, "length", 0)
        _at_least(self, "num_samples", 1)


def to_dict(cfg) -> dict:
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
