"""Eye state at every sample of a real EEG recording: rnnkit's causal and
bidirectional recurrent taggers against a time-delay network, per-sample
classifiers and the majority class, in one run, on a chronological split.

Data (``--data-dir``, default ``../shared/data`` from the repo):
``eeg_eye_state/eeg_eye_state.arff``, UCI EEG Eye State (Rösler & Suendermann
2013): one 117 s session at 128 Hz, 14 channels, eyes open (0) or closed (1)
at each of 14,980 samples. Split in time by the library (``task="tag"``,
``val_fraction = test_fraction = 0.15``): the first 70 % trains, the next
15 % validates, the last 15 % tests; nothing is shuffled across time.
Normalisation is the library's: robust z-scores fitted on the training part,
clipped to ±10 (which also tames the file's four outlier rows).

Inputs, each through the same path (``rnnkit.read_data``):

- ``raw``: the ARFF file as it is.
- ``detrended``: each channel minus its running median over the past
  ``--detrend-seconds`` (samples t-W+1..t; the first sample repeated before the
  start), written to a NumPy file first. Causal, fitted on nothing; it removes
  the slow offsets by which the validation part sits 1-5 robust SDs above the
  training part on every channel. rnnkit itself has no such option.

Models, per input:

- causal (unidirectional) recurrent taggers, LSTM and GRU; the cell with the
  better mean validation accuracy is kept, and a bidirectional tagger of the
  same cell and size is trained (it reads the whole split both ways: offline);
- TDNN (``encoder="tdnn"``), causal and centred;
- per-sample classifiers on the same normalised samples (the LabelledData's
  SeriesScaler): logistic regression, k-NN (k by validation), a random forest,
  an MLP;
- the training part's majority class.

Neural models train ``--seeds`` times (seeds 1, 2, ...) for ``--max-steps``
steps or ``--minutes`` each, whichever ends first; the checkpoint with the best
validation loss is scored (``Trainer.test``). Accuracy on this test part is
dominated by its class balance (92 % open), so balanced accuracy (mean recall
of the two classes; 50 % for any constant) is reported beside it. For the
published figure, shuffled 10-fold CV of the per-sample k-NN is measured too,
beside blocked (contiguous) 10-fold CV.

    python benchmarks/eeg.py [--data-dir ../shared/data] [--minutes 2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from common import DATA, markdown_table

FILE = "eeg_eye_state/eeg_eye_state.arff"
RATE = 128  # Hz
PUBLISHED = ("Rösler & Suendermann 2013: KStar 97.3 % (2.7 % error; majority baseline 44.9 % error), "
             "shuffled 10-fold CV, per sample; later work, shuffled CV with outliers removed: k-NN ≈97.9 %")


# -- data -------------------------------------------------------------------------

def load(path: Path, variant: str, args, folder: Path) -> dict:
    """LabelledData of one input variant and the whole normalised series z (T, F), labels y (T,) and cuts."""
    from rnnkit import DataConfig, read_data
    from rnnkit.data.series import read_series

    x, names, _, _ = read_series(path)
    if variant == "detrended":
        w = round(args.detrend_seconds * RATE)
        padded = np.vstack([np.repeat(x[:1], w - 1, axis=0), x])  # (T + W - 1, F)
        median = np.median(np.lib.stride_tricks.sliding_window_view(padded, w, axis=0), axis=-1)  # (T, F)
        x = x - median
        path = folder / "eeg_detrended.npz"
        np.savez(path, x=x, y=np.array(names))
    config = DataConfig(task="tag", seq_len=args.seq_len, batch_size=args.batch_size, val_fraction=0.15,
                        test_fraction=0.15)
    data = read_data(path, config)
    z = data.tokenizer.transform(x)  # (T, F): the scaler fitted on the training part, for every split
    y = np.array([data.labels.index(v) for v in names])
    n_val, n_test = len(data.val.ids[0]), len(data.test.ids[0])
    cuts = {"train": (0, len(z) - n_val - n_test), "val": (len(z) - n_val - n_test, len(z) - n_test),
            "test": (len(z) - n_test, len(z))}
    for split in ("val", "test"):  # the per-sample models see exactly what the taggers see
        a, b = cuts[split]
        assert np.array_equal(z[a:b], getattr(data, split).ids[0]), split
        assert np.array_equal(y[a:b], getattr(data, split).labels[0]), split
    return {"data": data, "z": z, "y": y, "cuts": cuts}


def describe(y: np.ndarray, cuts: dict, labels: list[str]) -> str:
    lines = []
    for split, (a, b) in cuts.items():
        part = y[a:b]
        runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, part, -1])))
        lines.append(f"{split}: samples {a:,}-{b - 1:,} ({(b - a) / RATE:.1f} s), closed ({labels[1]}) "
                     f"{part.mean():.1%}, {len(runs) - 1} label changes; runs, from "
                     f"{'closed' if part[0] else 'open'}: {', '.join(map(str, runs))}")
    boundary = sum(int(y[b - 1] != y[b]) for _, b in list(cuts.values())[:-1])
    lines.append(f"label changes across the split boundaries: {boundary}; in all: {int((np.diff(y) != 0).sum())}")
    return "\n".join(lines)


# -- per-sample models -------------------------------------------------------------

def scores(y_true, y_pred) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    return {"accuracy": float(np.mean(y_true == y_pred)), "balanced": float(balanced_accuracy_score(y_true, y_pred))}


def per_sample(inputs: dict, args) -> dict:
    """LR, k-NN (k by validation accuracy), random forest and MLP, trained on the training samples."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    z, y, cuts = inputs["z"], inputs["y"], inputs["cuts"]
    parts = {s: (z[a:b], y[a:b]) for s, (a, b) in cuts.items()}
    knn = {k: KNeighborsClassifier(k).fit(*parts["train"]) for k in (1, 5, 15, 45)}
    k = max(knn, key=lambda k: knn[k].score(*parts["val"]))
    models = {"logistic regression": LogisticRegression(max_iter=1000),
              "k-NN (k by validation)": knn[k],
              "random forest (200 trees)": RandomForestClassifier(200, min_samples_leaf=5, random_state=args.seed,
                                                                  n_jobs=1),
              "MLP (64 hidden, 200 epochs)": MLPClassifier((64,), max_iter=200 if not args.quick else 20,
                                                           random_state=args.seed)}
    rows = {}
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if name != "k-NN (k by validation)":
                model.fit(*parts["train"])
        rows[name] = {split: scores(parts[split][1], model.predict(parts[split][0])) for split in ("val", "test")}
        rows[name]["seconds"] = time.perf_counter() - start
    inputs["k"] = k
    return rows


def cv_knn(z: np.ndarray, y: np.ndarray, k: int, seed: int) -> dict:
    """10-fold CV accuracy of the per-sample k-NN over the whole recording: shuffled (as published) and blocked."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return {how: float(cross_val_score(KNeighborsClassifier(k), z, y,
                                       cv=KFold(10, shuffle=how == "shuffled",
                                                random_state=seed if how == "shuffled" else None)).mean())
            for how in ("shuffled", "blocked")}


# -- taggers -------------------------------------------------------------------------

def train_tagger(data, overrides: dict, seed: int, folder: Path, args) -> dict:
    """One tagger, one seed: val and test scores of the checkpoint with the best validation loss."""
    from rnnkit import TrainConfig, Trainer, load_run
    from rnnkit.models import SequenceTagger, TaggerConfig
    from rnnkit.training.evaluate import evaluate_labelled

    model_cfg = TaggerConfig(**{"cell": "lstm", "hidden_size": args.hidden_size, "num_layers": 1,
                                "dropout": args.dropout, **overrides})
    train_cfg = TrainConfig(optimizer="adam", lr=args.lr, max_steps=args.max_steps, time_limit=args.minutes * 60,
                            eval_every=args.eval_every, log_every=args.eval_every,
                            precision="fp32", seed=seed, device="cpu")
    torch.manual_seed(seed)
    model = SequenceTagger(0, data.num_labels, input_size=data.tokenizer.num_features, **vars(model_cfg))
    out = Path(tempfile.mkdtemp(prefix=f"seed{seed}-", dir=folder))
    trainer = Trainer(model, data, train_cfg, out=out, quiet=True)
    result = trainer.fit()
    test = trainer.test()
    best, _, _ = load_run(out)
    row = {"steps": result["step"], "seconds": result["elapsed"],
           "parameters": sum(p.numel() for p in model.parameters())}
    for split in ("val", "test"):
        got = evaluate_labelled(best, data.eval_batches(split), data.labels)
        gold, pred = (np.array([data.labels.index(t) for t in got[k][0]]) for k in ("gold", "predicted"))
        row[split] = scores(gold, pred)
    # the library's own figure for the best checkpoint is the one reported
    assert abs(row["test"]["accuracy"] - test["accuracy"]) < 1e-9, (row["test"], test)
    best_row = min((r for r in trainer.rows if "val_loss" in r), key=lambda r: r["val_loss"])
    assert abs(row["val"]["accuracy"] - best_row["val_accuracy"]) < 1e-9, (row["val"], best_row)
    row["best_step"] = best_row["step"]
    return row


def train_seeds(name: str, data, overrides: dict, folder: Path, args) -> dict:
    runs = [train_tagger(data, overrides, args.seed + i, folder, args) for i in range(args.seeds)]
    row = {split: {m: [r[split][m] for r in runs] for m in ("accuracy", "balanced")} for split in ("val", "test")}
    row.update(steps=[r["steps"] for r in runs], best_step=[r["best_step"] for r in runs],
               seconds=sum(r["seconds"] for r in runs), parameters=runs[0]["parameters"])
    print(f"  {name}: {row['parameters']:,} parameters; val acc {fmt(row['val']['accuracy'])}, test acc "
          f"{fmt(row['test']['accuracy'])}, test balanced {fmt(row['test']['balanced'])}; best checkpoint at step "
          f"{row['best_step']} of {row['steps']}; {row['seconds']:.0f} s of training", flush=True)
    return row


# -- report ----------------------------------------------------------------------------

def fmt(values, bold: bool = False) -> str:
    """A percentage, or a list of per-seed percentages as 'mean (min-max)'."""
    values = values if isinstance(values, list) else [values]
    mean = f"**{100 * np.mean(values):.1f}**" if bold else f"{100 * np.mean(values):.1f}"
    return mean if len(values) == 1 else f"{mean} ({100 * min(values):.1f}-{100 * max(values):.1f})"


def table(results: dict) -> str:
    columns = ["model", *(f"{v}: {c}" for v in results for c in ("val acc.", "test acc.", "test balanced acc."))]
    rows = []
    for name in dict.fromkeys(name for rows_of_variant in results.values() for name in rows_of_variant):
        cells = [name]
        for rows_of_variant in results.values():
            r = rows_of_variant.get(name)
            cells += ([fmt(r["val"]["accuracy"]), fmt(r["test"]["accuracy"], bold=True), fmt(r["test"]["balanced"])]
                      if r else ["-"] * 3)
        rows.append(cells)
    return markdown_table(columns, rows)


def run_variant(variant: str, path: Path, folder: Path, args) -> tuple[dict, dict]:
    inputs = load(path, variant, args, folder)
    data, y, cuts = inputs["data"], inputs["y"], inputs["cuts"]
    print(f"\n## input: {variant}" + (f" (minus the running median of the past {args.detrend_seconds:g} s)"
                                      if variant == "detrended" else ""), flush=True)
    if variant == "raw":
        print(describe(y, cuts, data.labels))
    rows = {}
    a, b = cuts["train"]
    majority = int(np.bincount(y[a:b]).argmax())
    rows[f"majority class of training ({'closed' if majority else 'open'})"] = {
        s: scores(y[c:d], np.full(d - c, majority)) for s, (c, d) in cuts.items() if s != "train"}
    start = time.perf_counter()
    rows.update(per_sample(inputs, args))
    print(f"  per-sample models: {time.perf_counter() - start:.0f} s; k-NN k = {inputs['k']} by validation", flush=True)
    causal = {}
    for cell in ("lstm", "gru"):
        name = f"causal {cell.upper()} tagger, {args.hidden_size} hidden"
        causal[cell] = rows[name] = train_seeds(name, data, {"cell": cell, "bidirectional": False}, folder, args)
    cell = max(causal, key=lambda c: np.mean(causal[c]["val"]["accuracy"]))
    print(f"  kept {cell.upper()} (higher mean validation accuracy)", flush=True)
    inputs["cell"] = cell
    name = f"bidirectional tagger (the kept cell), {args.hidden_size} hidden a direction"
    rows[name] = train_seeds(name, data, {"cell": cell, "bidirectional": True}, folder, args)
    tdnn = {"encoder": "tdnn", "hidden_size": args.tdnn_hidden_size, "num_layers": 2, "kernel_size": args.kernel_size}
    span = 2 * (args.kernel_size - 1) + 1
    for causal_tdnn in (True, False):
        name = (f"TDNN, {'causal' if causal_tdnn else 'centred'}, 2 x {args.tdnn_hidden_size}, kernel "
                f"{args.kernel_size} ({span} samples, {1000 * span / RATE:.0f} ms)")
        rows[name] = train_seeds(name, data, {**tdnn, "bidirectional": not causal_tdnn}, folder, args)
    return rows, inputs


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data-dir", type=Path, default=DATA,
                   help="folder holding eeg_eye_state/ (default: ../shared/data from the repo)")
    p.add_argument("--minutes", type=float, default=2.0, help="training time limit per model and seed (default 2)")
    p.add_argument("--max-steps", type=int, default=400, help="training steps per model and seed (default 400)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 30 steps a model")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seq-len", type=int, default=256, help="training window in samples (stride: half)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden-size", type=int, default=32, help="recurrent units (a direction)")
    p.add_argument("--tdnn-hidden-size", type=int, default=64)
    p.add_argument("--kernel-size", type=int, default=17, help="tdnn kernel (2 layers)")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--detrend-seconds", type=float, default=1.0, help="detrended input: running-median window")
    p.add_argument("--variants", nargs="+", default=["raw", "detrended"], choices=["raw", "detrended"])
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.quick:
        args.seeds, args.max_steps = 1, 30
    path = args.data_dir / FILE
    if not path.is_file():
        sys.exit(f"eeg: no {FILE} in {args.data_dir}; pass --data-dir (the folder holding eeg_eye_state/)")
    torch.set_num_threads(1)
    started = time.perf_counter()
    print(f"torch {torch.__version__}, 1 thread; {args.seeds} seed(s) a model, {args.max_steps} steps or "
          f"{args.minutes:g} min; windows of {args.seq_len} samples ({args.seq_len / RATE:g} s), batch "
          f"{args.batch_size}, adam {args.lr:g} (cosine), dropout {args.dropout}, fp32; checkpoint by validation "
          f"loss, evaluated every {args.eval_every} steps", flush=True)
    results, chosen, cv = {}, {}, None
    with tempfile.TemporaryDirectory(prefix="rnnkit-eeg-") as tmp:
        for variant in args.variants:
            folder = Path(tmp) / variant
            folder.mkdir()
            results[variant], inputs = run_variant(variant, path, folder, args)
            chosen[variant] = f"{inputs['cell'].upper()} tagger, k-NN k = {inputs['k']}"
            if variant == "raw":
                cv = (inputs["k"], cv_knn(inputs["z"], inputs["y"], inputs["k"], args.seed))
    print("\nAccuracy in %; neural models: mean (min-max) over seeds, each the checkpoint with the best validation "
          "loss\n\n" + table(results))
    print("\nchosen by validation: " + "; ".join(f"{v}: {c}" for v, c in chosen.items()))
    if cv:
        k, acc = cv
        print(f"\nper-sample k-NN (k = {k}), raw input, 10-fold CV over the whole recording: shuffled "
              f"{100 * acc['shuffled']:.1f} %, blocked (contiguous folds) {100 * acc['blocked']:.1f} %")
    print(f"\npublished: {PUBLISHED}")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
