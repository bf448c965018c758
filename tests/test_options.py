"""No option is silently ignored: every option of every subcommand, tried
against every kind of run, is either taken or refused before any work with
one line that names it (exit code 2). The tables below are the spec, written
from the user's side; the options come from the parser itself, so a new
option without a row here fails the test.

``train`` rows run in-process with the training loop stubbed out (what is
checked is whether the settings are taken; other tests train); ``sample``,
``eval`` and ``predict`` rows run against small real runs of each kind."""

import json
import random

import conftest
import numpy as np
import pytest

from rnnkit.cli import bench, main
from rnnkit.data.audio import write_wav
from rnnkit.training.trainer import Trainer

CONTEXTS = ("lm", "lm conditioned", "classify", "classify tdnn", "classify esn", "classify recordings",
            "classify recordings esn", "tag", "tag series", "tag series esn", "seq2seq", "ctc", "forecast",
            "forecast esn")
ALL = set(CONTEXTS)
ESN = {"classify esn", "classify recordings esn", "tag series esn", "forecast esn"}  # readouts fitted in closed form
NOT_RECURRENT = {"classify tdnn"} | ESN
RECURRENT = ALL - NOT_RECURRENT
BY_GRADIENT = ALL - ESN
LM = {"lm", "lm conditioned"}
WORD_TOKENS = {"classify", "classify tdnn", "classify esn", "tag"}  # the default tokenizer of classify and tag
REC = "classify recordings"  # a manifest of numeric recordings, each classified whole
RECS = {REC, "classify recordings esn"}
FORECAST = {"forecast", "forecast esn"}
VECTORS = {"tag series", "tag series esn", "ctc"} | FORECAST | RECS  # inputs that are no tokens
ONE_WAY = LM | FORECAST  # models that must read left to right
# the training file and flags of each kind of run
FILES = {"lm": "text.txt", "lm conditioned": "table.csv", "classify": "table.csv", "classify tdnn": "table.csv",
         "classify esn": "table.csv", "tag": "chunks.txt", "tag series": "series.csv", "tag series esn": "series.csv",
         "seq2seq": "pairs.tsv", "ctc": "speech.tsv", "forecast": "forecast.csv", "forecast esn": "forecast.csv",
         REC: "recordings.csv", "classify recordings esn": "recordings.csv"}
BASE = {"lm": [], "lm conditioned": ["--condition-column", "CLASS"], "classify": ["--task", "classify"],
        "classify tdnn": ["--task", "classify", "--encoder", "tdnn"], "tag": ["--task", "tag"],
        "tag series": ["--task", "tag"], "seq2seq": ["--task", "seq2seq"], "ctc": ["--task", "ctc"],
        "forecast": ["--task", "forecast"], "classify esn": ["--task", "classify", "--encoder", "esn"],
        "tag series esn": ["--task", "tag", "--encoder", "esn"], REC: ["--task", "classify"],
        "forecast esn": ["--task", "forecast", "--encoder", "esn"],
        "classify recordings esn": ["--task", "classify", "--encoder", "esn"]}


def tiny(context: str) -> list[str]:
    """Small settings for a run of ``context`` (an esn has one layer, and refuses --num-layers)."""
    return ["--hidden-size", "16", *([] if context in ESN else ["--num-layers", "1"]), "--batch-size", "4",
            "--device", "cpu"]


# rnnkit train: (option, value, more flags, contexts where it is taken, contexts where it is refused)
TRAIN = [
    ("--cell", "gru", [], RECURRENT, NOT_RECURRENT),
    ("--hidden-size", "8", [], ALL, set()),
    ("--num-layers", "2", [], BY_GRADIENT, ESN),
    ("--embedding-dim", "8", [], ALL - VECTORS, VECTORS),
    ("--dropout", "0.1", [], BY_GRADIENT, ESN),
    ("--embeddings", "vectors.txt", [], WORD_TOKENS, {"lm", "lm conditioned", "seq2seq"} | VECTORS),
    ("--embeddings", "vectors.txt", ["--tokenizer", "word"], LM | WORD_TOKENS, {"seq2seq"}),
    ("--locked-dropout", "true", [], LM, ALL - LM),
    ("--batchnorm", "true", [], RECURRENT, NOT_RECURRENT),
    ("--weight-drop", "0.1", [], RECURRENT, NOT_RECURRENT),
    ("--weight-drop", "0.1", ["--cell", "mingru"], set(), {"lm", "classify", "tag"}),
    ("--input-noise", "0.1", [], RECURRENT, NOT_RECURRENT),
    ("--weight-noise", "0.1", [], RECURRENT, NOT_RECURRENT),
    ("--weight-noise", "0.1", ["--cell", "mingru"], set(), {"lm", "classify", "tag"}),
    ("--skip-steps", "2", [], RECURRENT, NOT_RECURRENT),
    ("--skip-steps", "2", ["--engine", "fused"], set(), {"lm", "classify", "tag"}),
    ("--skip-steps", "2", ["--cell", "mingru"], set(), {"lm", "classify"}),
    ("--embedding-dropout", "0.1", [], LM, ALL - LM),
    ("--tie-weights", "true", ["--embedding-dim", "16"], LM, ALL - LM - VECTORS),
    ("--engine", "explicit", [], RECURRENT, NOT_RECURRENT),
    ("--nonlinearity", "relu", [], set(), RECURRENT),
    ("--nonlinearity", "relu", ["--cell", "rnn"], RECURRENT, set()),
    ("--forget-bias", "0.5", [], RECURRENT, NOT_RECURRENT),
    ("--forget-bias", "0.5", ["--cell", "gru"], set(), RECURRENT),
    ("--leak-timescale", "10", [], set(), RECURRENT),
    ("--leak-timescale", "10", ["--cell", "leaky"], RECURRENT, set()),
    ("--learn-leak", "true", [], set(), RECURRENT),
    ("--learn-leak", "true", ["--cell", "leaky"], RECURRENT, set()),
    ("--input-init", "torch", [], RECURRENT, NOT_RECURRENT),
    ("--recurrent-init", "glorot", [], RECURRENT, NOT_RECURRENT),
    ("--recurrent-init", "glorot", ["--cell", "minlstm"], set(), RECURRENT),
    ("--bidirectional", "false", [], BY_GRADIENT, ESN),
    ("--bidirectional", "true", [], ALL - ONE_WAY - ESN, ONE_WAY | ESN),
    ("--merge", "sum", [], {"classify", "tag", "tag series", "seq2seq", "ctc"}, ONE_WAY | NOT_RECURRENT),
    ("--merge", "sum", ["--bidirectional", "false"], set(), {"classify", "tag"}),
    ("--pooling", "mean", [], {"classify", "classify tdnn", "classify esn"} | RECS,
     ALL - {"classify", "classify tdnn", "classify esn"} - RECS),
    ("--encoder", "tdnn", [], ALL - ONE_WAY, ONE_WAY),
    ("--likelihood", "squared", [], FORECAST, ALL - FORECAST),
    ("--ar-order", "2", [], {"forecast"}, ALL - {"forecast"}),  # an esn fits its readout alone in closed form
    ("--ar-order", "auto", [], {"forecast"}, ALL - {"forecast"}),
    ("--calibrate", "none", [], FORECAST, ALL - FORECAST),
    ("--calibrate", "rolling", ["--likelihood", "squared"], set(), FORECAST),  # one point path: no spread to scale
    ("--calibrate-rate", "0.1", ["--calibrate", "rolling"], FORECAST, set()),
    ("--calibrate-rate", "0.1", [], set(), ALL),  # --calibrate validation (forecast's default): a fixed scale
    ("--kernel-size", "3", [], {"classify tdnn"}, ALL - {"classify tdnn"}),
    ("--spectral-radius", "0.8", [], ESN, ALL - ESN),
    ("--leak-rate", "0.5", [], ESN, ALL - ESN),
    ("--input-scaling", "0.5", [], ESN, ALL - ESN),
    ("--reservoir-density", "0.2", [], ESN, ALL - ESN),
    ("--reservoir-seed", "3", [], ESN, ALL - ESN),
    ("--ridge", "0.1", [], ESN, ALL - ESN),
    ("--washout", "5", [], {"tag series esn", "forecast esn"}, ALL - {"tag series esn", "forecast esn"}),
    ("--adversarial", "0.5", [], {"classify", "classify tdnn", REC}, ALL - {"classify", "classify tdnn", REC}),
    ("--char-features", "4", [], WORD_TOKENS - ESN, ALL - WORD_TOKENS | ESN),
    ("--crf", "true", [], {"tag", "tag series"}, ALL - {"tag", "tag series"}),
    ("--char-lm", "CHAR_LMS", [], {"tag"}, ALL - {"tag"}),  # CoNLL words: not a series
    ("--char-lm-tune", "true", [], set(), ALL),
    ("--char-lm-tune", "true", ["--char-lm", "CHAR_LMS"], {"tag"}, set()),
    ("--label-smoothing", "0.1", [], ALL - {"ctc"} - ESN - FORECAST, {"ctc"} | ESN | FORECAST),
    ("--label-smoothing", "0.1", ["--crf", "true"], set(), {"tag", "tag series"}),
    ("--attention", "dot", [], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--input-feeding", "false", [], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--input-feeding", "false", ["--attention", "none"], set(), {"seq2seq"}),
    ("--input-feeding", "false", ["--decoder-recurrence", "output"], set(), {"seq2seq"}),
    ("--decoder-recurrence", "output", [], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--sequence-end", "stop", [], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--task", "lm", [], {"lm"}, set()),
    ("--tokenizer", "word", [], ALL - VECTORS, VECTORS),
    ("--target-tokenizer", "char", [], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--max-vocab-size", "50", [], WORD_TOKENS | {"seq2seq"}, {"lm", "lm conditioned"} | VECTORS),
    ("--max-vocab-size", "50", ["--tokenizer", "char", "--target-tokenizer", "word"], {"seq2seq"}, set()),
    ("--max-vocab-size", "300", ["--tokenizer", "bpe"], {"lm", "lm conditioned", "classify", "seq2seq"}, set()),
    ("--min-count", "1", [], WORD_TOKENS | {"seq2seq"}, {"lm", "lm conditioned"} | VECTORS),
    ("--lowercase", "true", [], WORD_TOKENS | {"seq2seq"}, {"lm", "lm conditioned"} | VECTORS),
    ("--word-pattern", r"\w+", [], WORD_TOKENS | {"seq2seq"}, {"lm", "lm conditioned"} | VECTORS),
    ("--text-column", "CONTENT", [], {"lm conditioned", "classify", "classify tdnn", "classify esn"},
     {"lm", "tag", "tag series", "tag series esn", "seq2seq", "ctc"} | FORECAST | RECS),
    ("--label-column", "CLASS", [], {"classify", "classify tdnn", "classify esn", "tag series", "tag series esn"},
     {"lm", "lm conditioned", "tag", "seq2seq", "ctc"} | FORECAST | RECS),
    ("--window", "32", [], RECS, ALL - RECS),
    ("--stride", "8", [], RECS, ALL - RECS),
    ("--frame", "4", [], RECS, ALL - RECS),
    ("--frame-hop", "1", [], RECS, ALL - RECS),
    ("--eval-stride", "8", [], RECS, ALL - RECS),
    ("--features", "spectrum", [], RECS, ALL - RECS),
    ("--folds", "3", [], RECS, ALL - RECS),
    ("--fold", "2", ["--folds", "3"], RECS, set()),
    ("--fold", "2", [], set(), RECS | {"classify"}),
    ("--fold-seed", "1", ["--folds", "3"], RECS, set()),
    ("--classes", "A,E", [], set(), ALL),  # the Bonn archive's (tests/test_recordings.py reads it where present)
    ("--source-column", "1", ["--target-column", "0"], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--source-column", "0", ["--source-lang", "de", "--target-lang", "en"], set(), {"seq2seq"}),
    ("--target-column", "1", [], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--source-lang", "de", ["--target-lang", "en"], {"seq2seq"}, ALL - {"seq2seq"}),
    ("--target-lang", "en", ["--source-lang", "de"], {"seq2seq"}, set()),
    ("--sample-rate", "8000", [], {"ctc"}, ALL - {"ctc"}),
    ("--mel-bands", "20", [], {"ctc"}, ALL - {"ctc"}),
    ("--frame-stack", "2", [], {"ctc"}, ALL - {"ctc"}),
    ("--long-transcripts", "skip", [], {"ctc"}, ALL - {"ctc"}),
    ("--utterance-norm", "true", [], {"ctc"}, ALL - {"ctc"}),
    ("--time-masks", "2", [], {"ctc"}, ALL - {"ctc"}),
    ("--time-mask-width", "5", ["--time-masks", "1"], {"ctc"}, set()),
    ("--time-mask-width", "5", [], set(), ALL),
    ("--freq-masks", "2", [], {"ctc"}, ALL - {"ctc"}),
    ("--freq-mask-width", "3", ["--freq-masks", "1"], {"ctc"}, set()),
    ("--freq-mask-width", "3", [], set(), ALL),
    ("--speed-perturb", "0.9,1.0,1.1", [], {"ctc"}, ALL - {"ctc"}),
    ("--noise-snr", "10,30", [], {"ctc"}, ALL - {"ctc"}),
    ("--vtlp", "0.9,1.1", [], {"ctc"}, ALL - {"ctc"}),
    ("--noise-kind", "speech", ["--noise-snr", "10,30"], {"ctc"}, set()),
    ("--noise-kind", "speech", [], set(), ALL),
    ("--condition-column", "CLASS", [], {"lm conditioned"}, ALL - LM),
    ("--reverse", "true", [], {"lm"}, ALL - {"lm"}),
    ("--word-column", "0", [], {"tag"}, ALL - {"tag"}),
    ("--tag-column", "-1", [], {"tag"}, ALL - {"tag"}),
    ("--val-path", "SELF", [], ALL - FORECAST - RECS, FORECAST | RECS),  # a forecast splits its one series in time
    ("--test-path", "SELF", [], ALL - FORECAST - RECS, FORECAST | RECS),
    ("--seq-len", "16", [], {"lm", "tag series", "tag series esn"} | FORECAST,
     ALL - {"lm", "tag series", "tag series esn"} - FORECAST),
    ("--channels", "value", [], FORECAST, ALL - FORECAST),
    ("--time-column", "date", [], FORECAST, ALL - FORECAST),
    ("--covariate-columns", "promo", [], FORECAST, ALL - FORECAST),
    ("--calendar", "month", [], FORECAST, ALL - FORECAST),
    ("--season", "12", [], FORECAST, ALL - FORECAST),
    ("--difference", "true", [], FORECAST, ALL - FORECAST),
    ("--transform", "none", [], FORECAST, ALL - FORECAST),  # the shared series has values below 0
    ("--batch-size", "2", [], ALL, set()),
    ("--val-fraction", "0.2", [], ALL, set()),
    ("--val-fraction", "0.2", ["--val-path", "SELF"], set(), ALL),
    ("--test-fraction", "0.1", [], ALL, set()),
    ("--test-fraction", "0.1", ["--test-path", "SELF"], set(), ALL - RECS),
    ("--test-fraction", "0.1", ["--folds", "3"], set(), RECS),
    ("--optimizer", "sgd", [], BY_GRADIENT, ESN),
    ("--lr", "0.01", [], BY_GRADIENT, ESN),
    ("--momentum", "0.8", [], set(), ALL),
    ("--momentum", "0.8", ["--optimizer", "nesterov"], BY_GRADIENT, ESN),
    ("--alpha", "0.95", [], set(), ALL),
    ("--alpha", "0.95", ["--optimizer", "rmsprop"], BY_GRADIENT, ESN),
    ("--beta1", "0.8", [], BY_GRADIENT, ESN),  # the default optimizer is adamw
    ("--beta1", "0.8", ["--optimizer", "rmsprop"], set(), ALL),
    ("--beta2", "0.99", ["--optimizer", "adam"], BY_GRADIENT, ESN),
    ("--beta2", "0.99", ["--optimizer", "adadelta"], set(), ALL),
    ("--eps", "1e-6", [], BY_GRADIENT, ESN),
    ("--eps", "1e-6", ["--optimizer", "adadelta"], BY_GRADIENT, ESN),
    ("--eps", "1e-6", ["--optimizer", "momentum"], set(), ALL),
    ("--rho", "0.95", [], set(), ALL),
    ("--rho", "0.95", ["--optimizer", "adadelta"], BY_GRADIENT, set()),  # an esn refuses --optimizer first
    ("--weight-decay", "0.01", [], BY_GRADIENT, ESN),
    ("--l1", "1e-5", [], BY_GRADIENT, ESN),
    ("--weight-average", "0.99", [], BY_GRADIENT, ESN),
    ("--clip-norm", "2", [], BY_GRADIENT, ESN),
    ("--clip-value", "1", [], BY_GRADIENT, ESN),
    ("--lr-schedule", "constant", [], BY_GRADIENT, ESN),
    ("--warmup-steps", "2", [], BY_GRADIENT, ESN),
    ("--min-lr-ratio", "0.1", [], BY_GRADIENT, ESN),
    ("--min-lr-ratio", "0.1", ["--lr-schedule", "step"], set(), BY_GRADIENT),  # an esn refuses --lr-schedule
    ("--lr-decay", "0.9", [], set(), ALL),
    ("--lr-decay", "0.9", ["--lr-schedule", "step"], BY_GRADIENT, ESN),
    ("--lr-decay-every", "5", ["--lr-schedule", "step"], BY_GRADIENT, ESN),
    ("--lr-decay-every", "5", [], set(), ALL),
    ("--lr-decay-start", "3", ["--lr-schedule", "step"], BY_GRADIENT, ESN),
    ("--lr-decay-start", "3", [], set(), ALL),
    ("--max-steps", "2", [], BY_GRADIENT, ESN),
    ("--max-epochs", "1", [], BY_GRADIENT, ESN),
    ("--time-limit", "5", [], BY_GRADIENT, ESN),
    ("--eval-every", "5", [], BY_GRADIENT, ESN),
    ("--log-every", "2", [], BY_GRADIENT, ESN),
    ("--patience", "2", [], BY_GRADIENT, ESN),
    ("--patience", "2", ["--val-fraction", "0"], set(), ALL),
    ("--best-by", "loss", [], BY_GRADIENT, ESN),
    ("--best-by", "loss", ["--val-fraction", "0"], set(), ALL),
    ("--eval-streams", "2", [], {"lm"}, ALL - {"lm"}),
    ("--sample-length", "10", [], LM, ALL - LM),
    ("--scheduled-sampling", "linear", [], {"seq2seq", "forecast"}, ALL - {"seq2seq", "forecast"}),
    ("--scheduled-sampling", "linear", ["--decoder-recurrence", "output"], set(), {"seq2seq"}),
    ("--sampling-steps", "100", ["--scheduled-sampling", "linear"], {"seq2seq", "forecast"}, set()),
    ("--sampling-steps", "100", [], set(), {"seq2seq", "forecast"}),
    ("--precision", "fp32", [], BY_GRADIENT, ESN),
    ("--seed", "3", [], ALL, set()),
    ("--device", "cpu", [], ALL, set()),
    ("--out", "OUT", [], ALL, set()),
    ("--config", "settings.json", [], BY_GRADIENT, set()),  # its --dropout is refused for an esn
    ("--resume", None, [], set(), set()),  # tested in test_resume_* below
    ("--dry-run", None, [], set(), set()),  # tested in test_footprint.py
    ("--save-every", "5", [], BY_GRADIENT, ESN),
    ("--on-nonfinite", "skip", [], BY_GRADIENT, ESN),
    ("--diagnostics-every", "5", [], RECURRENT, NOT_RECURRENT),
    ("--diagnostics-every", "5", ["--encoder", "tdnn", "--decoder-recurrence", "output"], set(), {"seq2seq"}),
    ("--log", "tensorboard", [], ALL, set()),
    ("--init-from", "LMRUN", [], {"lm", "classify", "tag", "seq2seq"}, ALL - {"lm", "classify", "tag", "seq2seq"}),
    ("--lr-layer-decay", "2.6", ["--init-from", "LMRUN"], {"lm", "classify", "tag", "seq2seq"}, set()),
    ("--lr-layer-decay", "2.6", [], set(), ALL),
    ("--unfreeze-every", "5", ["--init-from", "LMRUN"], {"lm", "classify", "tag", "seq2seq"}, set()),
    ("--unfreeze-every", "5", [], set(), ALL),
    ("--lr-schedule", "stlr", [], BY_GRADIENT, ESN),
    ("--stlr-cut-frac", "0.2", ["--lr-schedule", "stlr"], BY_GRADIENT, set()),  # an esn refuses --lr-schedule
    ("--stlr-cut-frac", "0.2", [], set(), ALL),
    ("--stlr-ratio", "10", ["--lr-schedule", "stlr"], BY_GRADIENT, set()),
    ("--stlr-ratio", "10", [], set(), ALL),
    ("--warmup-steps", "2", ["--lr-schedule", "stlr"], set(), BY_GRADIENT),
]

# against a trained run of each kind: (subcommand, option, value, more flags, taken in, refused in)
RUN_KINDS = ("lm", "lm conditioned", "classify", "classify tdnn", "classify esn", "tag", "tag series",
             "tag series esn", "seq2seq", "ctc", "forecast", "forecast esn")
LABELLED = {"classify", "classify tdnn", "classify esn", "tag", "tag series", "tag series esn"}
DECODED = {"seq2seq", "ctc"}
RUNS = [
    ("sample", "--prime", "t", [], {"lm"}, LABELLED | FORECAST),
    ("sample", "--prime-file", "prime.txt", [], {"lm"}, LABELLED | FORECAST),
    ("sample", "--prime-file", "prime.txt", ["--prime", "t"], set(), {"lm"}),
    ("sample", "--sample-length", "3", [], LM, LABELLED | FORECAST),
    ("sample", "--temperature", "0", [], LM, LABELLED | FORECAST),
    ("sample", "--top-k", "2", [], LM, LABELLED | FORECAST),
    ("sample", "--top-k", "2", ["--temperature", "0"], set(), LM),
    ("sample", "--top-p", "0.9", [], LM, LABELLED | FORECAST),
    ("sample", "--top-p", "0.9", ["--temperature", "0"], set(), LM),
    ("sample", "--num-samples", "2", [], LM, LABELLED | FORECAST),
    ("sample", "--seed", "1", [], LM, LABELLED | FORECAST),
    ("sample", "--seed", "1", ["--temperature", "0"], set(), LM),
    ("sample", "--condition", "1", [], {"lm conditioned"}, {"lm"} | LABELLED | FORECAST),
    ("sample", "--precision", "fp32", [], LM, LABELLED | FORECAST),
    ("sample", "--device", "cpu", [], LM, LABELLED | FORECAST),
    ("eval", "PATH", "SELF", [], LM | DECODED | FORECAST, LABELLED),
    ("eval", "--split", "train", [], LM | DECODED | FORECAST, LABELLED),
    ("eval", "--split", "train", ["PATH"], set(), LM),
    ("eval", "--window", "8", [], {"lm"}, {"lm conditioned"} | LABELLED | DECODED | FORECAST),
    ("eval", "--dynamic", "0.1", [], {"lm"}, {"lm conditioned"} | LABELLED | DECODED | FORECAST),
    ("eval", "--dynamic", "0.1", ["--window", "8"], set(), {"lm"}),
    ("eval", "--segment", "5", ["--dynamic", "0.1"], {"lm"}, {"lm conditioned"} | LABELLED),
    ("eval", "--segment", "5", [], set(), set(RUN_KINDS)),
    ("eval", "--json", None, [], LM | DECODED | FORECAST, LABELLED),
    ("eval", "--device", "cpu", [], LM | DECODED | FORECAST, LABELLED),
    ("eval", "--engine", "fused", [], LM | DECODED | FORECAST - ESN, LABELLED | FORECAST & ESN),
    ("predict", "--out", "OUT", [], LABELLED | DECODED | FORECAST, LM),
    ("predict", "--device", "cpu", [], LABELLED | DECODED | FORECAST, LM),
    ("predict", "--engine", "explicit", [], (LABELLED | DECODED | FORECAST) - NOT_RECURRENT,
     LM | NOT_RECURRENT & set(RUN_KINDS)),
]
# decoding, for eval and predict alike
for _command in ("eval", "predict"):
    RUNS += [
        (_command, "--beam-size", "2", [], DECODED, {"lm", "classify", "tag", "forecast"}),
        (_command, "--horizon", "2", [], FORECAST, {"lm", "seq2seq", "classify"}),
        (_command, "--num-samples", "5", [], FORECAST, {"lm", "ctc"}),
        (_command, "--quantiles", "0.2,0.8", [], FORECAST, {"seq2seq", "tag"}),
        (_command, "--calibrate", "rolling", [], FORECAST, {"lm", "classify"}),
        (_command, "--calibrate", "none", [], FORECAST, {"ctc"}),
        (_command, "--length-penalty", "0.5", ["--beam-size", "2"], {"seq2seq"}, {"ctc"}),
        (_command, "--length-penalty", "0.5", [], set(), {"seq2seq", "lm", "tag"}),
        (_command, "--max-length", "5", [], {"seq2seq"}, {"ctc", "lm", "classify"}),
        (_command, "--lm", "LMRUN", ["--beam-size", "2"], {"ctc"}, {"seq2seq"}),
        (_command, "--lm", "LMRUN", [], set(), {"ctc", "lm", "tag"}),
        (_command, "--lm-weight", "0.3", ["--beam-size", "2", "--lm", "LMRUN"], {"ctc"}, set()),
        (_command, "--lm-weight", "0.3", [], set(), {"ctc", "seq2seq"}),
        (_command, "--insertion-bonus", "0.1", ["--beam-size", "2", "--lm", "LMRUN"], {"ctc"}, set()),
        (_command, "--insertion-bonus", "0.1", [], set(), {"ctc", "seq2seq"}),
    ]
RUNS += [
    ("predict", "--n-best", "2", ["--beam-size", "2"], {"seq2seq"}, {"ctc"}),
    ("predict", "--n-best", "2", [], set(), {"seq2seq", "classify"}),
    ("predict", "--attention-plot", "OUTPNG", [], {"seq2seq"}, {"ctc", "tag"}),
    ("predict", "--posteriorgram", "OUTPNG", [], {"ctc"}, {"seq2seq", "classify", "forecast"}),
    ("predict", "--plot", "OUTPNG", [], FORECAST, {"seq2seq", "tag"}),
]


def write_inputs(folder, make_text, spam_table, chunk_corpus):
    (folder / "text.txt").write_text(make_text(120))
    (folder / "table.csv").write_text(spam_table(40))
    (folder / "chunks.txt").write_text(chunk_corpus(30))
    rng = random.Random(0)
    rows = [f"{rng.gauss(0, 1):.3f},{rng.gauss(0, 1):.3f},{int(i // 20 % 2)}" for i in range(200)]
    (folder / "series.csv").write_text("a,b,CLASS\n" + "\n".join(rows) + "\n")
    (folder / "vectors.txt").write_text("cat " + " ".join(["0.5"] * 128) + "\n")  # the default embedding_dim
    months = np.datetime64("2001-01") + np.arange(200)
    rows = [f"{m},{np.sin(i / 2) + rng.gauss(0, 0.1):.3f},{i % 3}" for i, m in enumerate(months)]
    (folder / "forecast.csv").write_text("date,value,promo\n" + "\n".join(rows) + "\n")
    (folder / "prime.txt").write_text("t")
    rows = ["path,label"]
    for n in range(12):  # recordings of 300 samples, a slow or a fast sinusoid
        (folder / f"rec{n}.txt").write_text("".join(f"{np.sin(t / (3 + 5 * (n % 2))):.4f}\n" for t in range(300)))
        rows.append(f"rec{n}.txt,{'slow' if n % 2 else 'fast'}")
    (folder / "recordings.csv").write_text("\n".join(rows) + "\n")
    (folder / "settings.json").write_text(json.dumps({"dropout": 0.1}))
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 5))) for _ in range(60)]
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{' '.join(reversed(w))}\n" for w in words))
    (folder / "pairs.tsv.de").write_text("".join(w + "\n" for w in words))
    (folder / "pairs.tsv.en").write_text("".join(" ".join(reversed(w)) + "\n" for w in words))
    lines = []
    for n in range(16):  # tones standing for the letters a, b, e (characters any English text has)
        transcript = "".join(rng.choice("abe") for _ in range(rng.randint(1, 3)))
        tones = [np.sin(2 * np.pi * {"a": 500, "b": 1200, "e": 2500}[ch] * np.arange(800) / 8000) for ch in transcript]
        write_wav(folder / f"u{n}.wav", 0.3 * np.concatenate([np.zeros(400), *tones, np.zeros(400)]), 8000)
        lines.append(f"u{n}.wav\t{transcript}\n")
    (folder / "speech.tsv").write_text("".join(lines))


def run_main(argv) -> tuple[int, str]:
    """rnnkit's main in this process: (exit code, stderr)."""
    result = conftest.run_main(*argv)
    return result.returncode, result.stderr


def assert_taken_or_refused(code, err, option, taken, whole_command_refused=False):
    if taken:
        assert code == 0, f"{option} was refused: {err}"
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, f"{option}: exit {code}, {err}"
    if not whole_command_refused:
        named = option.lstrip("-").replace("-", "_")
        assert option in lines[0] or named in lines[0], f"the error does not name {option}: {lines[0]}"


def options_of(command: str) -> set[str]:
    parser = main.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    return {s for a in subparsers[command]._actions for s in a.option_strings if s not in ("-h", "--help")}


def test_every_subcommand_prints_its_help(capsys):
    """``rnnkit COMMAND --help`` lists the command's options (a bare ``%`` in a help text broke it)."""
    subparsers = next(a for a in main.build_parser()._actions if a.dest == "command").choices
    for command in subparsers:
        with pytest.raises(SystemExit) as stopped:
            main.build_parser().parse_args([command, "--help"])
        printed = capsys.readouterr().out
        assert stopped.value.code == 0 and all(option in printed for option in options_of(command)), command
        assert "%%" not in printed, command  # a help escaped twice shows "%%"


def test_every_option_of_every_subcommand_has_a_row():
    assert options_of("train") == {option for option, *_ in TRAIN}
    for command in ("sample", "eval", "predict"):
        rows = {option for c, option, *_ in RUNS if c == command and option != "PATH"}
        assert options_of(command) == rows, command
    assert options_of("bench") == set(BENCH)
    assert options_of("demo") == set(DEMO)


def _train_cases():
    for option, value, more, taken, refused in TRAIN:
        for context in sorted(taken | refused):
            yield pytest.param(option, value, more, context, context in taken,
                               id=f"{option} {value} {' '.join(more)} [{context}]")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_text, spam_table, chunk_corpus):
    """The input files of every kind of run, written once for the module (no test writes to them)."""
    folder = tmp_path_factory.mktemp("inputs")
    write_inputs(folder, make_text, spam_table, chunk_corpus)
    return folder


@pytest.fixture(scope="module")
def char_lms(inputs):
    """``--char-lm FWD,BWD``: a forward and a backward character model of the text, one step each."""
    for name, extra in (("fwd", []), ("bwd", ["--reverse", "true"])):
        code, err = run_main(["train", inputs / "text.txt", "--out", inputs / name, *tiny("lm"), "--max-steps", 1,
                              "--sample-length", 0, *extra])
        assert code == 0, err
    return f"{inputs / 'fwd'},{inputs / 'bwd'}"


@pytest.mark.parametrize("option,value,more,context,taken", list(_train_cases()))
def test_train_takes_an_option_where_it_applies_and_refuses_it_elsewhere(option, value, more, context, taken,
                                                                       inputs, word_lm, tmp_path, monkeypatch, request):
    training_file = inputs / FILES[context]
    swap = {"SELF": training_file, "OUT": tmp_path / "elsewhere", "LMRUN": word_lm}
    if "CHAR_LMS" in (value, *more):  # trained before fit is replaced
        swap["CHAR_LMS"] = request.getfixturevalue("char_lms")
    started = []
    monkeypatch.setattr(Trainer, "fit", lambda self, resume=False: started.append(self) or {
        "stopped": "budget", "step": 0, "elapsed": 0.0, "out": str(self.out)})
    flags = [swap.get(v, inputs / v if v.endswith((".txt", ".json")) else v) for v in [*more, option, value]]
    code, err = run_main(["train", training_file, "--out", tmp_path / "run", *tiny(context), *BASE[context], *flags])
    assert_taken_or_refused(code, err, option, taken)
    assert bool(started) == taken, "a refusal must come before any work"


@pytest.fixture(scope="module")
def word_lm(inputs):
    """A word language model of tiny()'s sizes, for --init-from."""
    out = inputs / "word-lm"
    code, err = run_main(["train", inputs / "text.txt", "--out", out, "--tokenizer", "word", *tiny("lm"),
                          "--seq-len", "8", "--max-steps", "1", "--sample-length", "0"])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def runs(inputs):
    """A small trained run of each kind, and the folder of its inputs."""
    folder = inputs
    made = {}
    for kind in RUN_KINDS:
        made[kind] = folder / kind.replace(" ", "-")
        budget = [] if kind in ESN else ["--max-steps", 2, "--eval-every", 2]  # an esn's fit is one pass
        code, err = run_main(["train", folder / FILES[kind], "--out", made[kind], *tiny(kind), *BASE[kind], *budget,
                              *(["--sample-length", 0] if kind in LM else [])])
        assert code == 0, err
    return folder, made


def _run_cases():
    for command, option, value, more, taken, refused in RUNS:
        for kind in sorted(taken | refused):
            yield pytest.param(command, option, value, more, kind, kind in taken,
                               id=f"{command} {option} {value or ''} {' '.join(more)} [{kind}]")


@pytest.mark.parametrize("command,option,value,more,kind,taken", list(_run_cases()))
def test_sample_eval_and_predict_take_an_option_where_it_applies(command, option, value, more, kind, taken, runs):
    folder, made = runs
    data = folder / FILES[kind]
    args = [command, made[kind]]
    if command == "predict":
        args.append(data)
    if command == "sample":
        args += ["--sample-length", 3] + (["--condition", "1"] if kind == "lm conditioned" and option != "--condition"
                                   else [])
    swap = {"SELF": data, "PATH": data, "OUT": folder / f"{kind}.out", "prime.txt": folder / "prime.txt",
            "LMRUN": made["lm"], "OUTPNG": folder / f"{kind}.png"}
    positional = [swap["PATH"]] if "PATH" in more or option == "PATH" else []
    flags = [swap.get(v, v) for v in more if v != "PATH"] + ([] if option == "PATH" else [option])
    flags += [swap.get(value, value)] if value is not None and option != "PATH" else []
    code, err = run_main([*args, *positional, *flags])
    wrong_kind = (command == "sample" and kind not in LM) or (command == "eval" and kind in LABELLED) or \
        (command == "predict" and kind in LM)
    assert_taken_or_refused(code, err, option, taken, whole_command_refused=wrong_kind or option == "PATH")


BENCH = {"--cells": "gru", "--hidden-sizes": "8", "--engines": "explicit", "--precisions": "fp32",
         "--num-layers": "1", "--embedding-dim": "4", "--vocab-size": "10", "--batch-size": "2", "--seq-len": "4",
         "--seconds": "0.1", "--sample-length": "5", "--rounds": "1", "--no-memory": None, "--out": "OUT"}
DEMO = {"--time-limit": "1.5", "--out": "OUT"}


@pytest.mark.parametrize("option", sorted(BENCH))
def test_every_bench_option_reaches_the_benchmark(option, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "run", lambda cfg, log: seen.append(cfg) or {"config": {}})
    monkeypatch.setattr(bench, "format_report", lambda result: "")
    value = str(tmp_path / "bench.json") if BENCH[option] == "OUT" else BENCH[option]
    code, err = run_main(["bench", option, *([value] if value is not None else [])])
    assert code == 0 and len(seen) == 1, err
    field = {"--no-memory": "memory", "--out": None}.get(option, option[2:].replace("-", "_"))
    if field:
        default = bench.BenchConfig()
        assert getattr(seen[0], field) != getattr(default, field), f"{option} did not reach BenchConfig"


@pytest.mark.parametrize("option", sorted(DEMO))
def test_every_demo_option_reaches_the_demo(option, tmp_path, monkeypatch):
    from rnnkit.cli import demo

    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda time_limit, out: seen.append((time_limit, out)) or 0)
    value = str(tmp_path / "demo") if DEMO[option] == "OUT" else DEMO[option]
    code, err = run_main(["demo", option, value])
    assert code == 0 and seen, err
    assert value in map(str, seen[0])


def test_a_config_file_setting_that_does_not_apply_is_refused_like_a_flag(inputs, tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"pooling": "max"}))
    code, err = run_main(["train", inputs / "text.txt", "--config", tmp_path / "settings.json", *tiny("lm")])
    assert code == 2 and "--pooling needs --task classify" in err


def test_resume_takes_the_original_command_again_and_names_the_runs_value_of_a_change(inputs, tmp_path):
    command = ["train", inputs / "table.csv", "--task", "classify", "--out", tmp_path / "run", *tiny("classify"),
               "--max-steps", 2, "--eval-every", 2]
    assert run_main(command)[0] == 0
    code, err = run_main([*command, "--resume", "--max-steps", 4])
    assert code == 0, err
    code, err = run_main([*command, "--resume", "--batch-size", 8])
    assert code == 2 and "--batch-size cannot change when resuming: the run in" in err and "has --batch-size 4" in err
    code, err = run_main([*command, "--resume", "--seq-len", 8])  # a setting a classifier never reads
    assert code == 2 and "--seq-len cannot change when resuming" in err
