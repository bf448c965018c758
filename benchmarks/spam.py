r"""Spam classification on real data: rnnkit's bidirectional LSTM classifier,
the same classifier with a time-delay (tdnn) encoder, and a scikit-learn
bag-of-words logistic regression, on the same folds in one run.

Data (``--data-dir``, default ``../shared/data`` from the repo):

- ``youtube_spam/Youtube0?-*.csv``: the UCI YouTube Spam Collection (Alberto
  et al. 2015, "TubeSpam"), 1,956 comments from 5 videos, CONTENT and CLASS
  (1 = spam). Two protocols: stratified k-fold over the pooled comments
  (``StratifiedKFold(shuffle=True, random_state=0)``; ``--fold-seed`` for another partition to choose
  settings on) and leave-one-video-out
  (train on 4 videos, test on the 5th).
- ``sms_spam/SMSSpamCollection``: the SMS Spam Collection (Almeida et al.
  2011), 5,574 messages, ``label<TAB>text``; stratified k-fold as above.

In every fold 10 % of the training part (stratified, seed 0) is held out for
validation; the other 90 % are the training examples of all three models.
The recurrent and tdnn models train a fixed number of epochs and keep the
checkpoint with the best validation loss; the logistic regression picks C
on the same validation examples. Nothing is selected on the test fold.

The neural models go through rnnkit's public API: each fold's train,
validation and test examples are written as CSV files to a temporary folder
and read with ``rnnkit.read_data``; ``Trainer.fit`` trains,
``Trainer.test`` scores the best checkpoint (accuracy, macro F1), and
``load_run`` with ``evaluate_labelled`` gives that checkpoint's predictions
for the F1 of the spam class. Scores: accuracy, F1 of the spam class, macro
F1 (mean of the spam and ham F1), each as a fraction.

Defaults (chosen on the YouTube 10-fold runs; see benchmarks/RESULTS.md):
lower-cased words split by ``\w+|[^\w\s]`` with words seen once in the
training part mapped to ``<unk>`` (``--min-count 2``); embedding 64, one
bidirectional LSTM layer of 64 units a direction, max pooling, dropout 0.3;
Adam 3e-3 with rnnkit's cosine schedule, batch 32, 10 epochs, fp32.
``--tokenizer byte`` reads the raw UTF-8 bytes instead (much slower).
On request: ``glove``, the BiLSTM with its embedding started from a vectors
file (``--vectors``, e.g. ``benchmarks/glove.py --dim 64`` on Penn
Treebank), and ``chars``, the BiLSTM with character-level word features.
``recipe`` is the classifier of a ``rnnkit train --config`` file (``--recipe``:
``recipes/youtube-spam-bilstm.json`` is ``adversarial+chars``,
``recipes/sms-spam-bilstm.json`` is ``adversarial``, setting for setting), the
files, evaluations and seed of each fold set by the benchmark.

``--ensemble M`` makes each rnnkit model M independently seeded copies of
itself (seeds ``--seed``, ``--seed`` + 1, ...; the first is the single
model), each trained and its best checkpoint read as above; a comment's
label is the argmax of their mean class probabilities,

    p̄(y | x) = (1/M) Σ_m p_m(y | x),   ŷ = argmax_y p̄(y | x)

(Lakshminarayanan et al. 2017's deep ensemble, without their adversarial
term). The first member's own scores are reported beside the ensemble's.

    python benchmarks/spam.py [--data-dir ../shared/data] [--folds 10] [--epochs 10] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import DATA, markdown_table

# words, lower-cased: runs of word characters and single punctuation marks, so a URL is
# its pieces ("http", ":", "/", "/", "www", ".", "youtube", ...) and "!!!" three tokens
WORD_PATTERN = r"\w+|[^\w\s]"
MODELS = ("bilstm", "tdnn", "logreg", "adversarial", "glove", "chars", "ulmfit", "recipe")
# the BiLSTM's additions, which combine with "+": "adversarial+chars" is the BiLSTM with both
ADDITIONS = ("adversarial", "glove", "chars")
MODEL_NAMES = {"bilstm": "rnnkit BiLSTM", "tdnn": "rnnkit tdnn (kernel 5)",
               "adversarial": "rnnkit BiLSTM, adversarial training",
               "glove": "rnnkit BiLSTM, embedding from GloVe (--vectors)",
               "chars": "rnnkit BiLSTM, char features 16",
               "ulmfit": "rnnkit LSTM from a language model (--lm; ULMFiT)",
               "recipe": "rnnkit classifier of --recipe",
               "logreg": "bag of words + logistic regression"}
LOGREG_CS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
# what the benchmark sets for each fold itself (its files, its evaluations once an epoch, the member's seed),
# which a --recipe may not
FOLD_SETTINGS = ("path", "val_path", "test_path", "val_fraction", "test_fraction", "eval_every", "log_every", "seed",
                 "device", "out")


# -- data -----------------------------------------------------------------------

def read_youtube(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(texts, labels "spam"/"ham", video name) of the five CSV files."""
    texts, labels, videos = [], [], []
    for path in sorted(folder.glob("Youtube0*.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                texts.append(row["CONTENT"])
                labels.append("spam" if row["CLASS"].strip() == "1" else "ham")
                videos.append(path.stem.split("-", 1)[1])
    return texts, labels, videos


def read_sms(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of ``label<TAB>text`` lines. Split by hand: the file has no
    quoting, and a CSV reader would take its quote marks for field quotes."""
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            label, text = line.split("\t", 1)
            texts.append(text)
            labels.append(label)
    return texts, labels


def model_kind(name: str) -> str:
    """argparse type of ``--models``: one of MODELS, or BiLSTM additions joined by "+"."""
    parts = name.split("+")
    if name in MODELS or (len(parts) > 1 and set(parts) <= set(ADDITIONS) and len(set(parts)) == len(parts)):
        return name
    raise argparse.ArgumentTypeError(f"unknown model {name!r}: one of {', '.join(MODELS)}, or additions of the "
                                     f"BiLSTM joined by '+' ({'+'.join(ADDITIONS)})")


def model_name(kind: str) -> str:
    return " + ".join(MODEL_NAMES[part] if i == 0 else MODEL_NAMES[part].split(", ", 1)[1]
                      for i, part in enumerate(kind.split("+")))


def stratified_folds(labels: list[str], k: int, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(f"fold {i + 1}", tr, te) for i, (tr, te) in enumerate(skf.split(np.zeros(len(labels)), labels))]


def video_folds(videos: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    v = np.asarray(videos)
    return [(name, np.flatnonzero(v != name), np.flatnonzero(v == name)) for name in dict.fromkeys(videos)]


def carve_validation(train_index: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): 10 % of the training part, stratified, seed 0."""
    from sklearn.model_selection import train_test_split

    return train_test_split(train_index, test_size=0.1, random_state=0,
                            stratify=[labels[i] for i in train_index])


def write_split(path: Path, texts: list[str], labels: list[str], index: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows([texts[i], labels[i]] for i in index)


# -- models -----------------------------------------------------------------------

def scores(gold: list[str], predicted: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": accuracy_score(gold, predicted),
            "spam_f1": f1_score(gold, predicted, pos_label="spam", average="binary"),
            "macro_f1": f1_score(gold, predicted, average="macro")}


def class_probabilities(model, batches) -> np.ndarray:
    """p(y | x) (N, K) of a classifier over ``batches`` of LabelledBatch, in their order: the softmax of
    its logits."""
    with torch.no_grad():
        return np.concatenate([torch.softmax(model(batch.x, batch.lengths)[0], -1).double().numpy()  # (B, K)
                               for batch in batches])


def read_recipe(path: Path) -> dict:
    """The settings of a ``rnnkit train --config`` file for ``--task classify``, by name; one the benchmark sets
    for each fold itself (FOLD_SETTINGS) is refused."""
    from rnnkit.deprecated import rename_settings

    settings = rename_settings(json.loads(Path(path).read_text()), f"--recipe {path}")
    if settings.get("task") != "classify":
        raise SystemExit(f"spam: --recipe {path} is not a classifier's (\"task\": \"classify\")")
    fixed = sorted(set(settings) & set(FOLD_SETTINGS))
    if fixed:
        raise SystemExit(f"spam: --recipe {path} sets {', '.join(fixed)}, which the benchmark sets for each fold")
    return settings


def settings_of(kind: str, args) -> dict:
    """The rnnkit classifier's settings by name, as a ``rnnkit train --config`` file holds them: the --recipe
    file's for ``recipe``, else the flags' with the BiLSTM's additions that ``kind`` names (or the tdnn)."""
    if kind == "recipe":
        return read_recipe(args.recipe)
    parts = set(kind.split("+"))
    return {"task": "classify", "tokenizer": args.tokenizer, "lowercase": True, "min_count": args.min_count,
            **({"word_pattern": args.word_pattern} if args.tokenizer == "word" else {}),
            "cell": "lstm", "embedding_dim": args.embedding_dim, "hidden_size": args.hidden_size, "num_layers": 1,
            "bidirectional": True, "dropout": args.dropout, "pooling": args.pooling,
            **({"encoder": "tdnn", "kernel_size": 5} if kind == "tdnn" else {}),
            **({"adversarial": args.adversarial} if "adversarial" in parts else {}),
            **({"char_features": 16} if "chars" in parts else {}),
            "optimizer": "adam", "lr": args.lr, "batch_size": args.batch_size, "max_epochs": args.epochs,
            "precision": args.precision, **({"weight_average": args.weight_average} if args.weight_average else {})}


def run_rnnkit(kind: str, texts, labels, split, folder: Path, args, seed: int | None = None) -> dict:
    """Train and test one rnnkit classifier (bilstm, tdnn, adversarial, glove, chars, ulmfit) on one fold,
    with ``seed`` (default ``args.seed``); scores, test labels and class probabilities (N, K) of the best
    checkpoint."""
    from rnnkit import Trainer, load_run, read_data
    from rnnkit.cli.options import split_settings
    from rnnkit.models import SequenceClassifier
    from rnnkit.tasks import named
    from rnnkit.training.evaluate import evaluate_labelled
    from rnnkit.training.runs import BEST, load_tensors

    train, val, test = split
    seed = args.seed if seed is None else seed
    parts = set(kind.split("+"))
    for name, index in (("train", train), ("val", val), ("test", test)):
        write_split(folder / f"{name}.csv", texts, labels, index)
    task = named("classify")
    model_s, data_s, train_s = split_settings(settings_of(kind, args), task)
    data_cfg = task.data_config(**data_s, val_path=str(folder / "val.csv"), test_path=str(folder / "test.csv"))
    model_cfg = task.model_config(**model_s)
    fine_tuning, pretrained = {}, None
    if kind == "ulmfit":  # ULMFiT's middle step on this fold's training texts, then the classifier from it
        from rnnkit.tasks.transfer import Pretrained

        lm_run = fine_tune_lm(args.lm, texts, np.concatenate([train, val]), folder, args)
        pretrained = Pretrained.read(str(lm_run))
        lm = pretrained.run.model
        model_cfg = dataclasses.replace(model_cfg, embedding_dim=lm.embedding_dim, hidden_size=lm.hidden_size,
                                        num_layers=lm.num_layers, cell=lm.cell, bidirectional=False)
        model_cfg, data_cfg = pretrained.settle(model_cfg, data_cfg)
        data_cfg = task.own(dataclasses.replace(data_cfg, path=str(folder / "train.csv")))
        data = pretrained.read_data(task, data_cfg)
    else:
        data = read_data(folder / "train.csv", data_cfg, spell=model_cfg.char_features > 0)
    assert len(data.train) == len(train) and len(data.test) == len(test), "a CSV row was lost"
    steps_per_epoch = -(-len(data.train) // data_cfg.batch_size)
    if kind == "ulmfit":
        fine_tuning = dict(init_from=str(pretrained.path))
        if args.fine_tuning == "ulmfit":  # one more layer learns each epoch, each at its rate, on the slanted triangle
            fine_tuning.update(lr_layer_decay=2.6, unfreeze_every=steps_per_epoch, lr_schedule="stlr")
    train_cfg = task.train_config(**{**train_s, "eval_every": steps_per_epoch, "log_every": steps_per_epoch,
                                     "seed": seed, "device": "cpu", **fine_tuning})
    torch.manual_seed(seed)
    model = SequenceClassifier(data.vocab_size, data.num_labels, alphabet_size=getattr(data.tokenizer,
                               "alphabet_size", 0), **vars(model_cfg))
    if pretrained is not None:
        print(f"  {pretrained.copy_into(model, data)}", flush=True)
    if "glove" in parts:
        from rnnkit.models.glove import init_embedding

        found = init_embedding(model.encoder.embedding, data.tokenizer.words, args.vectors)
        print(f"  GloVe: {found:,} of {data.vocab_size:,} words", flush=True)
    out = folder / f"{kind}-seed{seed}"
    start, cpu = time.perf_counter(), time.process_time()
    trainer = Trainer(model, data, train_cfg, out=out, quiet=True)
    result = trainer.fit()
    test_metrics = trainer.test()
    best, _, _ = load_run(out)
    predicted = evaluate_labelled(best, data.eval_batches("test"), data.labels)
    probabilities = class_probabilities(best, data.eval_batches("test"))  # (N, K)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert [data.labels[i] for i in probabilities.argmax(1)] == predicted["predicted"]
    s = scores(predicted["gold"], predicted["predicted"])
    # the library's own figures for the best checkpoint must be the ones reported
    assert abs(s["accuracy"] - test_metrics["accuracy"]) < 1e-9, (s, test_metrics)
    assert abs(s["macro_f1"] - test_metrics["f1"]) < 1e-9, (s, test_metrics)
    best_step = load_tensors(out / BEST)[1]["step"]  # the kept checkpoint's, whatever a recipe's --best-by
    return {**s, "seconds": seconds, "cpu": cpu, "best_epoch": best_step / steps_per_epoch, "steps": result["step"],
            "vocab": data.vocab_size, "gold": predicted["gold"], "predicted": predicted["predicted"],
            "labels": data.labels, "probabilities": probabilities}


def ensemble_labels(probabilities: list[np.ndarray], labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """The members' mean class probabilities p̄ = (1/M) Σ_m p_m (N, K), of M arrays (N, K), and the label
    of each row's argmax (not a vote: one confident member can outweigh two unsure ones)."""
    mean = np.mean(probabilities, axis=0)  # (N, K)
    return mean, [labels[i] for i in mean.argmax(1)]


def run_ensemble(kind: str, texts, labels, split, folder: Path, args) -> dict:
    """``args.ensemble`` members of one rnnkit model on one fold, seeds ``args.seed``, ``args.seed`` + 1, ...
    (:func:`run_rnnkit`); scores of the argmax of their mean class probabilities p̄ (N, K), with the
    members' results (``members``; the first is the single model)."""
    members = [run_rnnkit(kind, texts, labels, split, folder, args, seed=args.seed + m) for m in range(args.ensemble)]
    first = members[0]
    assert all(m["gold"] == first["gold"] and m["labels"] == first["labels"] for m in members), "test folds differ"
    mean, predicted = ensemble_labels([m["probabilities"] for m in members], first["labels"])
    return {**scores(first["gold"], predicted), "seconds": sum(m["seconds"] for m in members),
            "cpu": sum(m["cpu"] for m in members), "best_epoch": statistics.mean(m["best_epoch"] for m in members),
            "gold": first["gold"], "predicted": predicted, "probabilities": mean, "members": members}


def fine_tune_lm(lm_run: Path, texts: list[str], index: np.ndarray, folder: Path, args) -> Path:
    """ULMFiT's middle step under cross-validation: the language model ``lm_run`` fine-tuned on the
    texts of ``index`` alone (the training folds': their training and validation parts), never the
    test fold's, by `rnnkit train --task lm --init-from` (its vocabulary extended by their words),
    with the language model's own sizes and word splitting; the new run's folder."""
    from rnnkit.cli.main import main
    from rnnkit.tasks import read_run

    lm = read_run(lm_run)
    text = folder / "lm_text.txt"
    text.write_text("".join(" ".join(texts[i].split()) + "\n" for i in index), encoding="utf-8")
    m, words = lm.model, lm.tokenizer
    out = folder / "lm-fine-tuned"
    flags = ["--tokenizer", "word", "--lowercase", words.lowercase, *(["--word-pattern", words.pattern]
                                                                      if words.pattern else []),
             "--cell", m.cell, "--hidden-size", m.hidden_size, "--num-layers", m.num_layers,
             "--embedding-dim", m.embedding_dim, "--tie-weights", m.tie_weights, "--dropout", m.dropout,
             "--seq-len", args.lm_seq_len, "--batch-size", args.batch_size, "--max-epochs", args.lm_epochs,
             "--lr", args.lm_lr, "--lr-schedule", "stlr", "--lr-layer-decay", 2.6, "--sample-length", 0,
             "--precision", args.precision, "--seed", args.seed, "--device", "cpu", "--eval-every", 50]
    code = main(["train", str(text), "--task", "lm", "--init-from", str(lm_run), "--out", str(out),
                 *map(str, flags)])
    if code:
        sys.exit(f"spam: fine-tuning the language model {lm_run} failed (exit {code})")
    return out


def run_logreg(texts, labels, split) -> dict:
    """Word uni- and bigram counts (tf-idf, lower-cased) and logistic regression;
    C chosen by the validation loss, as the neural models' checkpoints are."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    train, val, test = split
    start, cpu = time.perf_counter(), time.process_time()
    vectorizer = TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train = vectorizer.fit_transform([texts[i] for i in train])
    x_val = vectorizer.transform([texts[i] for i in val])
    x_test = vectorizer.transform([texts[i] for i in test])
    y_train, y_val = [labels[i] for i in train], [labels[i] for i in val]
    best = None
    for c in LOGREG_CS:
        clf = LogisticRegression(C=c, solver="liblinear").fit(x_train, y_train)
        loss = log_loss(y_val, clf.predict_proba(x_val), labels=clf.classes_)
        if best is None or loss < best[0]:
            best = (loss, c, clf)
    predicted = list(best[2].predict(x_test))
    return {**scores([labels[i] for i in test], predicted), "seconds": time.perf_counter() - start,
            "cpu": time.process_time() - cpu, "C": best[1]}


def run_setting(setting: str, texts, labels, folds, models, args) -> dict[str, list[dict]]:
    """Every model on every fold; {model: [scores per fold]}."""
    results = {m: [] for m in models}
    print(f"\n## {setting}: {len(texts):,} examples, {sum(l == 'spam' for l in labels):,} spam, "
          f"{len(folds)} folds", flush=True)
    for name, train_index, test_index in folds:
        train, val = carve_validation(train_index, labels)
        split = (train, val, test_index)
        with tempfile.TemporaryDirectory(prefix="rnnkit-spam-") as tmp:
            for m in models:
                r = run_logreg(texts, labels, split) if m == "logreg" else \
                    run_ensemble(m, texts, labels, split, Path(tmp), args)
                r["fold"] = name
                results[m].append(r)
                extra = f"best epoch {r['best_epoch']:.0f}" if "best_epoch" in r else f"C {r['C']:g}"
                print(f"{setting:<14} {name:<10} {m:<7} train {len(train):>5} val {len(val):>4} "
                      f"test {len(test_index):>4}  acc {r['accuracy']:.4f}  spam F1 {r['spam_f1']:.4f}  "
                      f"macro F1 {r['macro_f1']:.4f}  {extra:<14} {r['seconds']:6.1f}s, CPU {r['cpu']:6.1f}s"
                      + ("  members' acc " + " ".join(f"{x['accuracy']:.4f}" for x in r["members"])
                         if len(r.get("members", ())) > 1 else ""), flush=True)
    return results


# -- report -----------------------------------------------------------------------

def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def summary_table(all_results: dict[str, dict[str, list[dict]]], ensemble: int = 1) -> str:
    """A row a setting and model (an ensemble's, then its first member's alone), mean ± std over folds."""
    lines = []
    for setting, results in all_results.items():
        for m, rows in results.items():
            named = [(model_name(m), rows)]
            if m != "logreg" and ensemble > 1:
                named = [(f"{model_name(m)}, ensemble of {ensemble} seeds", rows),
                         (f"{model_name(m)}, its first member alone", [r["members"][0] for r in rows])]
            for name, runs in named:
                cells = [mean_std([r[k] for r in runs]) for k in ("accuracy", "spam_f1", "macro_f1")]
                lines.append([setting, name, *cells, *(f"{statistics.mean(r[k] for r in runs):.1f}"
                                                       for k in ("seconds", "cpu"))])
    return markdown_table(["setting", "model", "accuracy", "spam F1", "macro F1", "seconds a fold", "CPU s a fold"],
                          lines)


def per_fold_table(results: dict[str, list[dict]]) -> str:
    models = list(results)
    lines = [[r0["fold"], *(f"{results[m][i]['accuracy']:.4f} / {results[m][i]['spam_f1']:.4f}" for m in models)]
             for i, r0 in enumerate(results[models[0]])]
    lines.append(["mean", *(f"{statistics.mean(r['accuracy'] for r in results[m]):.4f} / "
                            f"{statistics.mean(r['spam_f1'] for r in results[m]):.4f}" for m in models)])
    return markdown_table(["test video", *(f"{model_name(m)} acc / spam F1" for m in models)], lines)


def parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DATA,
                   help="folder with youtube_spam/ and sms_spam/ (default: ../shared/data from the repo)")
    p.add_argument("--folds", type=int, default=10, help="stratified folds on the pooled data (default 10)")
    p.add_argument("--sms-folds", type=int, default=None, help="folds for SMS (default: --folds)")
    p.add_argument("--epochs", type=float, default=10, help="training epochs of the neural models")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 folds of each protocol, 2 epochs")
    p.add_argument("--settings", nargs="+", default=["youtube", "videos", "sms"],
                   choices=["youtube", "videos", "sms"],
                   help="youtube: pooled k-fold; videos: leave one video out; sms: SMS k-fold")
    p.add_argument("--models", nargs="+", default=["bilstm", "tdnn", "logreg"], type=model_kind,
                   help=f"of {', '.join(MODELS)}; the BiLSTM's additions combine with '+' (adversarial+chars)")
    p.add_argument("--fold-seed", type=int, default=0,
                   help="shuffle of the stratified folds (default 0, the tables' folds; another seed is another "
                        "partition of the same data, on which to choose settings without looking at the tables')")
    p.add_argument("--adversarial", type=float, default=5.0,
                   help="epsilon of the adversarial model (Miyato et al. 2017 use 5 on unit-variance embeddings)")
    p.add_argument("--vectors", type=Path, default=None, help="glove: a word vectors file of --embedding-dim")
    p.add_argument("--lm", type=Path, default=None,
                   help="ulmfit: a word language model's run folder (rnnkit train --task lm), fine-tuned on each "
                        "fold's training texts, then the classifier's start (its sizes and word splitting)")
    p.add_argument("--lm-epochs", type=float, default=3, help="ulmfit: epochs of the language model's fine-tuning")
    p.add_argument("--lm-lr", type=float, default=2e-3, help="ulmfit: peak rate of the language model's fine-tuning")
    p.add_argument("--lm-seq-len", type=int, default=32, help="ulmfit: the fine-tuning's BPTT length")
    p.add_argument("--fine-tuning", default="plain", choices=["plain", "ulmfit"],
                   help="ulmfit: the classifier's fine-tuning: plain (every layer at --lr from the start, cosine) or "
                        "ulmfit (--lr-layer-decay 2.6, one more layer unfrozen an epoch, stlr); plain scored higher on "
                        "fold 1's validation part (benchmarks/NOTEBOOK.md, 2026-12-07)")
    p.add_argument("--max-folds", type=int, default=None, help="run only the first N folds of each protocol")
    p.add_argument("--tokenizer", default="word", choices=["word", "byte"])
    p.add_argument("--word-pattern", default=WORD_PATTERN)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--pooling", default="max", choices=["last", "mean", "max", "attention"])
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    p.add_argument("--weight-average", type=float, default=0.0,
                   help="the neural models' --weight-average (0: off; the trainer's exponential moving average)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--recipe", type=Path, default=None,
                   help="recipe: the rnnkit classifier of this `rnnkit train --config` file (recipes/*-spam-*.json), "
                        "its files, evaluations and seed set by the benchmark for each fold")
    p.add_argument("--ensemble", type=int, default=1,
                   help="members of each rnnkit model, seeds --seed, --seed + 1, ...; a comment's label is the argmax "
                        "of their mean class probabilities (default 1: the single model)")
    return p


def main() -> None:
    p = parser()
    args = p.parse_args()
    if args.ensemble < 1:
        p.exit(2, f"spam: --ensemble takes 1 or more members, not {args.ensemble}\n")
    if args.ensemble > 1 and set(args.models) <= {"logreg"}:
        p.exit(2, "spam: --ensemble applies to rnnkit's models, and --models names none\n")
    if args.quick:
        args.epochs, args.max_folds = 2, 2
    youtube, sms = args.data_dir / "youtube_spam", args.data_dir / "sms_spam" / "SMSSpamCollection"
    if {"youtube", "videos"} & set(args.settings) and not any(youtube.glob("Youtube0*.csv")):
        sys.exit(f"spam: no YouTube Spam Collection at {youtube} (expected Youtube0?-*.csv); pass --data-dir")
    if "sms" in args.settings and not sms.is_file():
        sys.exit(f"spam: no SMS Spam Collection at {sms}; pass --data-dir")
    if ("recipe" in args.models) != (args.recipe is not None):
        p.exit(2, "spam: --recipe FILE and the model `recipe` go together (--models recipe ... --recipe FILE)\n")
    if args.recipe is not None:
        read_recipe(args.recipe)  # a bad recipe is refused before any fold
    if "ulmfit" in args.models and not (args.lm and (args.lm / "config.json").is_file()):
        sys.exit("spam: the ulmfit model needs --lm RUN, a word language model's run folder")
    if any("glove" in m.split("+") for m in args.models) and not (args.vectors and args.vectors.is_file()):
        sys.exit("spam: the glove model needs --vectors FILE (python benchmarks/glove.py --dim 64 --out FILE)")
    torch.set_num_threads(1)
    started = time.perf_counter()
    print(f"torch {torch.__version__}, 1 thread; {args.epochs:g} epochs, {args.tokenizer} tokens, embedding "
          f"{args.embedding_dim}, hidden {args.hidden_size}, dropout {args.dropout}, {args.pooling} pooling, "
          f"adam {args.lr:g}, batch {args.batch_size}, {args.precision}"
          + (f", weight average {args.weight_average:g}" if args.weight_average else "")
          + (f", ensembles of {args.ensemble} seeds from {args.seed}" if args.ensemble > 1 else "")
          + (f"; the recipe model: {args.recipe}" if args.recipe else ""), flush=True)
    all_results = {}
    limit = slice(None, args.max_folds)
    if {"youtube", "videos"} & set(args.settings):
        texts, labels, videos = read_youtube(youtube)
        if "youtube" in args.settings:
            all_results[f"YouTube, {args.folds}-fold"] = run_setting(
                "YouTube", texts, labels, stratified_folds(labels, args.folds, args.fold_seed)[limit], args.models,
                args)
        if "videos" in args.settings:
            all_results["YouTube, leave one video out"] = run_setting(
                "YouTube video", texts, labels, video_folds(videos)[limit], args.models, args)
    if "sms" in args.settings:
        texts, labels = read_sms(sms)
        k = args.sms_folds or args.folds
        folds = stratified_folds(labels, k, args.fold_seed)[limit]
        all_results[f"SMS, {k}-fold"] = run_setting("SMS", texts, labels, folds, args.models, args)
    print("\n" + summary_table(all_results, args.ensemble))
    if "YouTube, leave one video out" in all_results:
        print("\n" + per_fold_table(all_results["YouTube, leave one video out"]))
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
