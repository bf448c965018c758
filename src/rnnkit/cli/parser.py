"""The parser of ``rnnkit``'s command line: a subcommand each, flags of
``train`` and ``lr-find`` generated from the config dataclasses
(``--kebab-case`` of each field)."""

from __future__ import annotations

import argparse

from rnnkit.cli.options import add_config_flags, add_train_flags
from rnnkit.config import SampleConfig
from rnnkit.deprecated import rewrite_argv
from rnnkit.version import __version__
from rnnkit.errors import ConfigError
from rnnkit.experiments import EXPERIMENTS
from rnnkit.kernels import ENGINES
from rnnkit.tasks import TASKS

TASK_HELP = {"task": ", ".join(task.summary for task in TASKS.values())}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise ConfigError(f"{self.prog}: {message}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed, deprecated flag names taken as their new names, each with a warning
    (:mod:`rnnkit.deprecated`)."""
    return build_parser().parse_args(rewrite_argv(argv))


def build_parser() -> argparse.ArgumentParser:
    """The ``rnnkit`` argument parser: every subcommand, with the settings' flags generated from the configs."""
    parser = _Parser(prog="rnnkit", description="Recurrent neural networks on PyTorch.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a language model (text), classifier (CSV/TSV of text and "
                                         "label) or tagger (CoNLL columns)")
    train.add_argument("path", nargs="?", help="training file (optional with --resume)")
    train.add_argument("--config", help="JSON file of settings (flags override it)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--dry-run", action="store_true", help="print parameters, tokens a step and the memory the "
                       "run needs (measured on its heaviest batch) against what is available, then stop: nothing is "
                       "trained or written")
    add_train_flags(train, helps=TASK_HELP)

    lr_find = sub.add_parser("lr-find", help="the learning-rate range test (Smith 2017): the loss against an "
                                             "exponentially rising learning rate, plotted, with a suggested rate")
    lr_find.add_argument("path", help="training file")
    lr_find.add_argument("--config", help="JSON file of settings (flags override it)")
    lr_find.add_argument("--start-lr", type=float, default=1e-6, help="the first step's rate (default 1e-6)")
    lr_find.add_argument("--end-lr", type=float, default=1.0, help="the last step's rate (default 1)")
    lr_find.add_argument("--steps", type=int, default=300, help="steps from one to the other (default 300)")
    add_train_flags(lr_find, helps=TASK_HELP)

    tune = sub.add_parser("tune", help="hyperparameter search (Optuna: TPE, median pruning): every trial a "
                                       "training run with sampled settings; the study in --out resumes")
    tune.add_argument("path", help="training file")
    tune.add_argument("--config", help="JSON file of settings fixed for every trial (flags override it)")
    tune.add_argument("--space", required=True, help="the settings to search: names (lr,hidden_size,dropout), each "
                      "over its range in rnnkit.experiments.tune.SPACE, or a JSON/TOML file of ranges")
    tune.add_argument("--trials", type=int, required=True, help="trials of the whole study (every process's)")
    tune.add_argument("--trial-minutes", type=float, help="each trial's wall-clock budget (its --time-limit)")
    tune.add_argument("--startup-trials", type=int, default=4, help="random trials before TPE (default 4)")
    tune.add_argument("--prune-after", type=lambda t: None if t.lower() == "none" else int(t), default=2,
                      help="finished trials before the median rule prunes (default 2; none: never)")
    tune.add_argument("--sampler-seed", type=int, help="the sampler's seed (default: a fresh one)")
    add_train_flags(tune, helps={**TASK_HELP, "out": "the study's folder: study.db, and a run folder a trial"})

    sample = sub.add_parser("sample", help="generate text from a trained run")
    sample.add_argument("run", help="run folder")
    sample.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add_config_flags(sample, SampleConfig)

    predict = sub.add_parser("predict", help="labels (classify), tags (tag) or the next values (forecast) for a "
                                             "file, written in its format")
    predict.add_argument("run", help="run folder")
    predict.add_argument("input", help="CSV/TSV of texts (classify), a manifest of recordings or the Bonn "
                         "zip (classify recordings), CoNLL file of words (tag), or a series to continue "
                         "(forecast: CSV/TSV/NPY)")
    predict.add_argument("--out", help="write here instead of stdout")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    predict.add_argument("--engine", choices=ENGINES,
                         help="recurrent engine (default: the one the run trained on)")
    _search_flags(predict)
    predict.add_argument("--n-best", type=int, default=None,
                         help="seq2seq: write the n best outputs of each source, with their log-probabilities")
    predict.add_argument("--attention-plot", metavar="PNG",
                         help="seq2seq: draw the first source's attention over its output as a heat map")
    predict.add_argument("--posteriorgram", metavar="PNG",
                         help="ctc: draw the first utterance's label probabilities over time")
    _forecast_flags(predict)
    predict.add_argument("--plot", metavar="PNG", help="forecast: draw the history, the forecast and its 80 %% band")

    ev = sub.add_parser("eval", help="loss, bits/char and perplexity of a run")
    ev.add_argument("run", help="run folder")
    ev.add_argument("path", nargs="?", help="text to evaluate (default: the run's validation split)")
    ev.add_argument("--split", choices=("train", "val", "test"),
                    help="the split of the run's corpus to score, without PATH (default: val)")
    ev.add_argument("--window", type=int, default=None,
                    help="score independent windows of this many tokens from a zero state "
                         "(default: the whole text as one stream, state carried)")
    ev.add_argument("--dynamic", type=float, default=None, metavar="LR",
                    help="dynamic evaluation: after scoring each segment of the stream, take an SGD "
                         "step of this size on it (the run's weights are not changed)")
    ev.add_argument("--segment", type=int, default=None,
                    help="tokens per segment of --dynamic (default 50)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ev.add_argument("--engine", choices=ENGINES,
                    help="recurrent engine (default: the one the run trained on)")
    _search_flags(ev)
    _forecast_flags(ev)

    report = sub.add_parser("report", help="one self-contained HTML file that shows a run: curves, samples, "
                                           "gradient flow, spectral radius, saturation, units over text, "
                                           "attention or CTC posteriorgrams")
    report.add_argument("run", help="run folder")
    report.add_argument("--out", help="the HTML file to write (default RUN/report.html)")
    report.add_argument("--text", help="lm: a text to draw units and surprisal over (default: the start of the "
                                       "run's validation split)")
    report.add_argument("--text-length", type=int, default=2000,
                        help="lm: tokens of that text to read (default 2000)")
    report.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))

    export = sub.add_parser("export", help="a run's model as ONNX graphs for another runtime (onnxruntime, ...), "
                                           "with export.json naming their inputs, outputs and the vocabulary")
    export.add_argument("run", help="run folder")
    export.add_argument("--format", default="onnx", choices=("onnx",), help="(default onnx)")
    export.add_argument("--out", help="folder to write (default RUN/export)")
    serve = sub.add_parser("serve", help="a run's model over a local HTTP JSON API (sample streamed, surprisal, "
                                         "labels, tags, translations) and a page at / to try it in a browser")
    serve.add_argument("run", help="run folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                           "only; 0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=int, default=8000, help="(default 8000; 0: a free port, printed)")
    serve.add_argument("--max-concurrent", type=int, default=2,
                       help="requests that run at once; the next wait --wait seconds, then get 503 (default 2)")
    serve.add_argument("--wait", type=float, default=5.0, help="seconds a request waits for a place (default 5)")
    for name, default, what in (("max-body", 1_000_000, "bytes of a request's body"),
                                ("max-length", 1000, "tokens a request may generate or decode"),
                                ("max-text", 20_000, "characters of each text a request gives"),
                                ("max-items", 64, "texts in one request's list")):
        serve.add_argument("--" + name, type=int, default=default, help=f"{what} (default {default:,})")
    serve.add_argument("--verbose", action="store_true", help="log each request on stderr")
    serve.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    serve.add_argument("--engine", choices=ENGINES, help="recurrent engine (default: the one the run trained on)")

    experiment = sub.add_parser("experiment", help="a lecture's claim as an experiment: prints a table, draws "
                                                   "a plot (linear: h_t = W h_(t-1) and its spectral radius; "
                                                   "symmetry: identical units stay identical; clipping: on and off "
                                                   "where gradients explode; vanishing: RNN, LSTM and GRU on the "
                                                   "adding problem; optimizers: SGD to Adam, each at its swept "
                                                   "rate; regularisation: dropout, L2, L1, early stopping; "
                                                   "echo-state: reservoirs against an LSTM on EEG; numerics: a naive "
                                                   "softmax and log-sum in float32 against the log-sum-exp form)")
    experiment.add_argument("name", choices=tuple(EXPERIMENTS))
    experiment.add_argument("--out", default="runs/experiments", help="folder for NAME.png (default runs/experiments)")
    experiment.add_argument("--data", help="echo-state: the Bonn EEG recordings (bonn_eeg_dataset.zip)")
    experiment.add_argument("--quick", action="store_true", help="the tests' small configuration")

    digits = sub.add_parser("digits", help="spoken digit strings for --task ctc, joined from the Free Spoken "
                                           "Digit Dataset's recordings: wav files and manifests")
    digits.add_argument("recordings", help="FSDD's recordings folder ({digit}_{speaker}_{take}.wav)")
    digits.add_argument("out", help="folder for the utterances and train.tsv, test.tsv, speaker.tsv")
    digits.add_argument("--seed", type=int, default=0, help="(default 0)")
    digits.add_argument("--num-train", type=int, default=3000, help="training utterances (default 3000)")
    digits.add_argument("--num-test", type=int, default=500, help="test (and held-out speaker) utterances "
                                                                  "(default 500)")
    digits.add_argument("--jobs", type=int, default=1,
                        help="with --config, folds trained at a time, each in its own process (default 1)")
    digits.add_argument("--pause-fill", choices=("noise", "zeros"), default="noise",
                        help="what fills the pauses between digits: noise, the recording's own background "
                             "(level and spectrum of its quietest frames); zeros, exact digital silence, as "
                             "before 2026-12-07 (default noise)")
    digits.add_argument("--held-out-speaker", default="theo",
                        help="a speaker kept out of train and test, for speaker.tsv (default theo; none: no one; "
                             "all: each speaker in turn, a folder OUT/SPEAKER each: leave-one-speaker-out)")
    digits.add_argument("--config", help="a JSON file of --task ctc settings (a recipe): train a model for each "
                                         "held-out speaker with it, and score it on that speaker's strings")

    demo = sub.add_parser("demo", help="train on the Python standard library's source for ~2 minutes")
    demo.add_argument("--time-limit", type=float, default=120.0, help="seconds of training (default 120)")
    demo.add_argument("--out", default=None, help="run folder (default runs/demo-<time>)")
    bench = sub.add_parser("bench", help="training and generation speed against plain torch.nn and the "
                                         "machine's GEMM peak, and peak memory")
    bench.add_argument("--cells", default="lstm,gru,rnn", help="comma-separated (default lstm,gru,rnn)")
    bench.add_argument("--hidden-sizes", default="256,512,1024", help="comma-separated (default 256,512,1024)")
    bench.add_argument("--engines", default="fused,explicit", help="comma-separated (default fused,explicit)")
    bench.add_argument("--precisions", default="auto",
                       help="comma-separated fp32,bf16 (default auto: fp32, and bf16 where the CPU has it)")
    for name, kind, default in (("num-layers", int, 2), ("embedding-dim", int, 64), ("vocab-size", int, 65),
                                ("batch-size", int, 64), ("seq-len", int, 100), ("seconds", float, 3.0),
                                ("sample-length", int, 500)):
        bench.add_argument("--" + name, type=kind, default=default, help=f"(default {default})")
    bench.add_argument("--rounds", type=int, default=2,
                       help="times each training loop runs, the loops of a model taking turns; "
                            "the best counts (default 2)")
    bench.add_argument("--no-memory", action="store_true", help="skip the peak-RSS processes")
    bench.add_argument("--out", metavar="FILE", help="also write every figure to FILE as JSON")
    return parser


def _forecast_flags(parser) -> None:
    parser.add_argument("--horizon", type=int, default=None,
                        help="forecast: steps to forecast, each fed back as the next input (default 1)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="forecast, --likelihood gaussian: sampled paths, whose quantiles give the bands "
                             "(default 200)")
    parser.add_argument("--quantiles", default=None,
                        help="forecast, --likelihood gaussian: comma-separated levels of the quantiles to write "
                             "or score (default 0.1,0.5,0.9)")
    parser.add_argument("--calibrate", choices=("none", "validation", "rolling"), default=None,
                        help="forecast, --likelihood gaussian: the intervals' calibration (default: the run's "
                             "--calibrate): none, validation (the scales fitted after training), rolling (those "
                             "scales moved by each error observed before an origin)")


def _search_flags(parser) -> None:
    parser.add_argument("--beam-size", type=int, default=None,
                        help="seq2seq and ctc: hypotheses kept per source (default 1: greedy decoding, "
                             "best path)")
    parser.add_argument("--length-penalty", type=float, default=None,
                        help="seq2seq beam search: rank finished outputs by log-probability / length^A "
                             "(default 1; 0 ranks by probability alone)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="seq2seq: the longest output in tokens (default 2 x the source's length + 10)")
    parser.add_argument("--lm", metavar="RUN", help="ctc: fuse this character language model's run into the "
                                                    "prefix beam search (shallow fusion)")
    parser.add_argument("--lm-weight", type=float, default=None, help="ctc: the weight of --lm (default 0.5)")
    parser.add_argument("--insertion-bonus", type=float, default=None,
                        help="ctc: added to a hypothesis's score for each character (default 0)")
