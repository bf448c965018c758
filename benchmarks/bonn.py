r"""Bonn EEG (Andrzejak et al. 2001), each recording classified whole:
rnnkit's recurrent classifier of windows against MiniRocket (aeon), on the
same recording-level folds in one run.

Data: ``bonn_eeg/bonn_eeg_dataset.zip`` under ``--data-dir`` (default
``../shared/data`` from the repo), sets A-E, 100 recordings of 4,097
samples at 173.61 Hz each, read from the zip by rnnkit itself.

Protocols (``--classes``): A vs E, ABCD vs E, five classes A,B,C,D,E.
Folds: 10, stratified by recording (``rnnkit.data.windows.split_recordings``,
fold seed 0; ``--fold-seed`` draws another partition of the same
recordings, to choose settings on folds other than those reported): each
fold's 10 % of the recordings are the test split, and no window of a test
recording is ever seen in training (the leakage that inflates many
published Bonn figures is the window-level split).

- **rnnkit**: one ``rnnkit train --task classify ZIP --classes P --folds 10
  --fold k`` per fold, in a fresh process (the folds are a setting of the
  task, so the command is the whole protocol). RESULTS.md's rows take their
  settings from ``--recipe recipes/bonn-joint-spectrum.json`` (five classes)
  and ``recipes/bonn-joint-noise.json`` (the two-class rows); without a
  recipe, this script's flags give: windows of 1,024 samples
  every 128, each read as 15 steps of the log power spectrum of 128
  samples every 64 (``--features spectrum --frame 128 --frame-hop 64``:
  half-overlapping frames, 1.36 Hz a bin), a bidirectional GRU of 128, max
  pooling, 15 epochs, no validation split (``--val-fraction 0``: every
  training recording trains, and the last weights are kept; the window loss
  of 45 validation recordings picked early, worse checkpoints). The
  recording's label is the argmax of its windows' summed log-probabilities;
  the figure is the accuracy over the fold's test recordings, as the
  command prints it.
- **MiniRocket** (Dempster et al. 2021; ``aeon``'s ``MiniRocketClassifier``,
  its transform and a ridge classifier with cross-validated penalty): the
  same test recordings, trained on all the others (rnnkit's training
  recordings of the fold), each recording one series of 4,097 samples.

Every figure is the mean and standard deviation over folds of the
recording-level accuracy; CPU seconds are the processes' own (user + system).

    python benchmarks/bonn.py [--data-dir ../shared/data] [--folds 10] [--run-folds 10]
        [--protocols "A,E;ABCD:E;A,B,C,D,E"] [--models rnnkit,minirocket] [--epochs 15]
        [--only 5,10 --work-dir runs --more "--label-smoothing 0.1"]   # a quick look at a change, runs kept
        [--fold-seed 1 --recipe a.json,b.json]   # screen on another partition; several recipes: an ensemble
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import DATA, markdown_table, print_command

ACCURACY = re.compile(r"test \(best checkpoint\) loss [\d.]+, accuracy ([\d.]+)")


def child(cmd: list[str]) -> tuple[str, float]:
    """Run ``cmd``; (its stdout, its own CPU seconds, user + system). A failure ends the script."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            sys.exit(f"bonn.py: `{shlex.join(cmd)}` failed ({process.returncode}):\n{err.read()}")
        return out.read(), usage.ru_utime + usage.ru_stime


def train_cmd(zip_path: Path, classes: str, folds: int, fold: int, out: Path, args, recipe: Path | None) -> list[str]:
    """The ``rnnkit train`` command of one fold: the settings of ``recipe`` (a ``--config`` file), or
    else of this script's flags."""
    cmd = ["train", "--task", "classify", str(zip_path), "--classes", classes, "--folds", str(folds),
           "--fold", str(fold), *(["--fold-seed", str(args.fold_seed)] if args.fold_seed else [])]
    if recipe:  # every model and training setting from the recipe, as a user would run it
        return cmd + ["--config", str(recipe), "--log-every", "1000", "--device", "cpu", "--out", str(out),
                      *shlex.split(args.more)]
    return cmd + ["--features", args.features, "--cell", args.cell, "--hidden-size", str(args.hidden_size),
                  "--window", args.window, "--stride", args.stride, "--frame", args.frame, "--frame-hop",
                  args.frame_hop, "--val-fraction", str(args.val_fraction), "--pooling", args.pooling,
                  "--num-layers", str(args.num_layers), "--dropout", str(args.dropout), "--batch-size",
                  str(args.batch_size), "--lr", str(args.lr), "--optimizer", "adamw", "--max-epochs", str(args.epochs),
                  "--eval-every", str(args.eval_every), "--log-every", "1000", "--precision", "fp32", "--device",
                  "cpu", "--seed", str(args.seed), "--out", str(out), *shlex.split(args.more)]


def run_rnnkit(zip_path: Path, classes: str, folds: int, fold: int, folder: Path, args) -> tuple[float, float]:
    """Train on one fold through the CLI in a fresh process: (the test recordings' accuracy it prints,
    its CPU seconds). With several recipes, one run a recipe (the ensemble's members), then each
    member's evidence on the test recordings (:func:`fold_evidence`, a process of its own), and the
    accuracy of the argmax of the members' summed evidence; the CPU seconds are all of those processes'."""
    recipes = [Path(r) for r in args.recipe.split(",")] if args.recipe else [None]
    if len(recipes) == 1:
        cmd = train_cmd(zip_path, classes, folds, fold, folder / f"fold{fold}", args, recipes[0])
        print("$ rnnkit " + shlex.join(cmd), flush=True)
        out, cpu = child([sys.executable, "-m", "rnnkit", *cmd])
        found = ACCURACY.search(out)
        if not found:
            sys.exit(f"bonn.py: no test accuracy in rnnkit's output:\n{out}")
        return float(found.group(1)), cpu
    total, evidence, gold, said = 0.0, 0.0, None, []
    for recipe in recipes:
        run = folder / f"fold{fold}" / recipe.stem
        cmd = train_cmd(zip_path, classes, folds, fold, run, args, recipe)
        print("$ rnnkit " + shlex.join(cmd), flush=True)
        _, cpu = child([sys.executable, "-m", "rnnkit", *cmd])
        out, cpu_evidence = child([sys.executable, __file__, "--evidence-of", str(run)])
        found = json.loads(out.strip().splitlines()[-1])
        member, gold = np.array(found["evidence"]), np.array(found["gold"])  # (R, K), (R,)
        evidence = evidence + member  # the members' log-probabilities summed, as a recording's windows' are
        total += cpu + cpu_evidence
        said.append(f"{recipe.stem} {float((member.argmax(1) == gold).mean()):.2f}")
    accuracy = float((evidence.argmax(1) == gold).mean())
    print(f"{classes} fold {fold}: members {', '.join(said)}; together {accuracy:.2f}", flush=True)
    return accuracy, total


def fold_evidence(run_dir: str) -> dict:
    """A fold's run: its test recordings' summed window log-probabilities (R, K) and gold label ids (R,)."""
    from rnnkit.data.recordings import read_recordings
    from rnnkit.data.windows import cut_windows, split_recordings
    from rnnkit.tasks import load_run
    from rnnkit.tasks.recordings import evaluate_recordings

    torch_threads()
    model, scaler, run = load_run(run_dir)
    cfg = run.data
    recordings = read_recordings(cfg.path, cfg.classes)
    test = split_recordings([r.label for r in recordings], cfg.val_fraction, cfg.test_fraction, cfg.folds,
                            cfg.fold, cfg.fold_seed)["test"]
    ids = {name: i for i, name in enumerate(run.labels)}
    windows = cut_windows([recordings[i] for i in test], scaler, int(cfg.window), int(cfg.eval_stride),
                          [ids[recordings[i].label] for i in test])
    found = evaluate_recordings(model, windows, run.labels)
    return {"evidence": found["evidence"].tolist(), "gold": windows.gold, "labels": run.labels}


def torch_threads() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def minirocket_fold(zip_path: Path, classes: str, folds: int, fold: int, seed: int,
                    fold_seed: int) -> tuple[float, float]:
    """MiniRocket on one fold in a fresh process of this script (``--minirocket-fold``): (accuracy, CPU s)."""
    out, cpu = child([sys.executable, __file__, "--minirocket-fold", f"{classes}|{folds}|{fold}|{seed}|{fold_seed}",
                      "--data-dir", str(zip_path.parents[1])])
    return float(out.strip().splitlines()[-1]), cpu


def run_minirocket(recordings, test: np.ndarray, seed: int) -> float:
    """MiniRocket on whole recordings: trained on all but ``test``, its accuracy on ``test``."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    x = np.stack([r.x[:, 0] for r in recordings])[:, None, :]  # (R, 1, T)
    y = np.array([r.label for r in recordings])
    train = np.setdiff1d(np.arange(len(y)), test)
    model = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(x[train], y[train])
    return float((model.predict(x[test]) == y[test]).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--protocols", default="A,E;ABCD:E;A,B,C,D,E", help="--classes values, ;-separated")
    parser.add_argument("--models", default="rnnkit,minirocket")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--fold-seed", type=int, default=0, help="deal the recordings to the folds after a "
                        "shuffle of this seed (0: the reported folds; another: a partition to screen settings on)")
    parser.add_argument("--run-folds", type=int, default=None, help="run only the first N folds (a quick look)")
    parser.add_argument("--only", help="run only these folds, e.g. 5,8 (a quick look)")
    parser.add_argument("--recipe", help="rnnkit's settings from this --config file (recipes/bonn-*.json) instead "
                        "of the flags below; several, comma-separated: an ensemble, one run a recipe, the "
                        "recording's label from their summed evidence")
    parser.add_argument("--features", default="spectrum")
    parser.add_argument("--window", default="1024")
    parser.add_argument("--stride", default="128")
    parser.add_argument("--frame", default="128")
    parser.add_argument("--frame-hop", default="64")
    parser.add_argument("--val-fraction", type=float, default=0.0)
    parser.add_argument("--pooling", default="max")
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--more", default="", help="more rnnkit train flags, as one string (a quick look)")
    parser.add_argument("--jobs", type=int, default=2, help="rnnkit folds trained at once, one thread each")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=float, default=15)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minirocket-fold", help=argparse.SUPPRESS)
    parser.add_argument("--evidence-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evidence_of:  # one member's evidence, in the process bonn.py started for it
        print(json.dumps(fold_evidence(args.evidence_of)))
        return 0
    if not args.minirocket_fold:
        print_command()
    from rnnkit.data.recordings import read_recordings
    from rnnkit.data.windows import split_recordings

    zip_path = args.data_dir / "bonn_eeg" / "bonn_eeg_dataset.zip"
    if not zip_path.exists():
        sys.exit(f"bonn.py: no {zip_path}; pass --data-dir, the folder holding bonn_eeg/")
    if args.minirocket_fold:  # one fold of MiniRocket, in the process bonn.py started for it
        classes, folds, fold, seed, fold_seed = args.minirocket_fold.split("|")
        recordings = read_recordings(zip_path, classes)
        test = split_recordings([r.label for r in recordings], 0.0, 0.0, int(folds), int(fold),
                                int(fold_seed))["test"]
        print(run_minirocket(recordings, test, int(seed)))
        return 0
    models = args.models.split(",")
    rows = []
    for classes in args.protocols.split(";"):
        folds = ([int(k) for k in args.only.split(",")] if args.only
                 else list(range(1, (args.run_folds or args.folds) + 1)))
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
            start = time.perf_counter()
            runs = args.work_dir / classes.replace(",", "").replace(":", "-") if args.work_dir else Path(tmp)
            jobs = {(model, k): pool.submit(run_rnnkit, zip_path, classes, args.folds, k, runs, args)
                    if model == "rnnkit" else pool.submit(minirocket_fold, zip_path, classes, args.folds, k,
                                                          args.seed, args.fold_seed)
                    for model in models for k in folds}  # every fold a process, --jobs at a time
            results = {key: job.result() for key, job in jobs.items()}
            wall = time.perf_counter() - start
        for model in models:
            scores = [results[model, k][0] for k in folds]
            cpu = sum(results[model, k][1] for k in folds)
            print(f"{classes} {model}: accuracy by fold " + " ".join(f"{a:.2f}" for a in scores)
                  + f"; {cpu / 60:.1f} CPU min", flush=True)
            rows.append([classes, model, len(scores), f"{statistics.mean(scores):.4f}",
                         f"{statistics.stdev(scores) if len(scores) > 1 else 0:.4f}", f"{min(scores):.2f}",
                         f"{cpu / 60:.1f}", f"{cpu / 60 / 2:.1f}"])
        print(f"{classes}: {wall / 60:.1f} min of wall time for all of its folds", flush=True)
    print()
    print(markdown_table(["protocol", "model", "folds", "accuracy mean", "std", "worst fold", "CPU min",
                          "min on 2 cores"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
