"""``rnnkit digits``: spoken digit strings joined from the Free Spoken Digit
Dataset's recordings and, given ``--config``, a CTC recogniser trained and
scored on the speaker held out of its training.

``--held-out-speaker all`` is leave-one-speaker-out: for each of FSDD's
speakers s in turn, ``OUT/s/`` gets strings of the other speakers (train.tsv,
test.tsv) and of s alone (speaker.tsv); with ``--config RECIPE`` each fold is
trained with exactly ``rnnkit train OUT/s/train.tsv --task ctc --config RECIPE
--test-path OUT/s/speaker.tsv --out OUT/s/run`` and its best checkpoint
transcribes speaker.tsv by best path. The summary gives each speaker's digit
(token) and string error rates and, over the speakers, the mean and the
sample standard deviation (n - 1), printed and written to ``OUT/speakers.json``.
A fold already scored (``OUT/s/score.json``) is kept, one whose run folder
exists is resumed (`rnnkit train --resume`): a stopped row continues where
it stopped. ``--jobs N`` trains N folds at a time, each in its own process.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from rnnkit.errors import ConfigError
from rnnkit.tasks import CTCTask

SCORES = ("token_error_rate", "sequence_error_rate")


def cmd_digits(args) -> int:
    """``rnnkit digits``: check the flags, then build the spoken digit strings (:func:`rnnkit.tasks.ctc.run_digits`)."""
    from rnnkit.data.digits import fsdd_speakers
    from rnnkit.tasks.ctc import run_digits

    for name in ("num_train", "num_test"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.jobs < 1 or (args.jobs > 1 and not args.config):
        raise ConfigError(f"--jobs {args.jobs}: give a count >= 1, and more than 1 only with --config "
                          f"(the folds' trainings are what runs in parallel)")
    held = args.held_out_speaker
    if held.lower() == "none":
        if args.config:
            raise ConfigError("--config trains a model for the held-out speaker: name one, or pass "
                              "--held-out-speaker all")
        return run_digits(args.recordings, args.out, args.seed, args.num_train, args.num_test, None,
                          args.pause_fill)
    if args.config:
        _check_recipe(args.config)
    speakers = fsdd_speakers(Path(args.recordings)) if held.lower() == "all" else [held]
    if held.lower() == "all" and len(speakers) < 2:
        raise ConfigError(f"{args.recordings} holds one speaker; leave-one-speaker-out needs two or more")
    folds = {s: Path(args.out) / s if held.lower() == "all" else Path(args.out) for s in speakers}
    for speaker, folder in folds.items():
        run_digits(args.recordings, str(folder), args.seed, args.num_train, args.num_test, speaker,
                   args.pause_fill)
    scores = _train_folds(folds, args.config, args.jobs) if args.config else {}
    if scores:
        summary = summarise(scores)
        (Path(args.out) / "speakers.json").write_text(json.dumps({"recipe": args.config, **summary}, indent=1))
        print(table(summary) + f"\n\nwritten: {Path(args.out) / 'speakers.json'}")
    return 0


def _check_recipe(path: str) -> None:
    """The recipe's settings are read by `rnnkit train`; refuse before any fold what each fold sets itself."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--config {path}: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of settings")
    own = sorted(set(values) & {"path", "test_path", "out"})
    if own:
        raise ConfigError(f"--config {path}: {', '.join(own)} is set by each fold (OUT/SPEAKER/...); remove it")


def _train_folds(folds: dict[str, Path], recipe: str, jobs: int) -> dict[str, dict]:
    """Each fold trained and scored (:func:`_train_and_score`), ``jobs`` at a time: with more than one, each
    in its own process with its share of the threads and its training's output in OUT/SPEAKER/train.log."""
    scores = {}
    if jobs == 1:
        for speaker, folder in folds.items():
            scores[speaker] = _train_and_score(folder, recipe)
            print(f"held-out speaker {speaker}: " + _describe(scores[speaker]), flush=True)
        return scores
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    with ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"), _set_threads, (threads,)) as pool:
        running = {pool.submit(_train_and_score_logged, folder, recipe): speaker
                   for speaker, folder in folds.items()}
        print(f"training {len(folds)} folds, {jobs} at a time ({threads} thread(s) each); each fold's "
              f"output goes to OUT/SPEAKER/train.log", flush=True)
        for done in as_completed(running):
            speaker = running[done]
            scores[speaker] = done.result()
            print(f"held-out speaker {speaker}: " + _describe(scores[speaker]), flush=True)
    return {s: scores[s] for s in folds}


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train_and_score_logged(folder: Path, recipe: str) -> dict:
    """:func:`_train_and_score` with the training's output appended to OUT/SPEAKER/train.log."""
    import contextlib

    with open(folder / "train.log", "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        return _train_and_score(folder, recipe)


def _train_and_score(folder: Path, recipe: str) -> dict:
    """One fold: train (or resume, or keep a scored fold's score.json) and score the best checkpoint on
    speaker.tsv."""
    from rnnkit.cli.parser import parse_args
    from rnnkit.cli.train import run_train

    run, scored = folder / "run", folder / "score.json"
    if scored.exists():  # a fold of a stopped row that was finished and scored
        return json.loads(scored.read_text())
    argv = ["train", str(folder / "train.tsv"), "--task", CTCTask.name, "--config", recipe, "--test-path",
            str(folder / "speaker.tsv"), "--out", str(run)]
    if (run / "config.json").exists():  # a stopped fold continues
        argv = ["train", "--config", recipe, "--resume", "--out", str(run)]
    code = run_train(parse_args(argv), print)
    if code:
        raise ConfigError(f"training {run} stopped (exit {code}); run the same command again to resume it")
    score = {**score_run(run, folder / "speaker.tsv"), "steps": _steps(run)}
    scored.write_text(json.dumps(score))
    return score


def score_run(run: Path, manifest: Path) -> dict:
    """A CTC run's best checkpoint on every utterance of ``manifest``, by best path: token and sequence
    error rates (the figures of ``rnnkit eval RUN MANIFEST``), and the utterances scored."""
    from rnnkit.data.speech import SpeechData
    from rnnkit.tasks import load_run
    from rnnkit.training.decode import score_speech

    model, _, doc = load_run(run)
    whole = dataclasses.replace(doc.data, val_path=None, test_path=None, val_fraction=0.0, test_fraction=0.0,
                                speed_perturb=None, noise_snr=None, vtlp=None)  # read clean: nothing is trained here
    data = SpeechData.from_file(manifest, whole, doc.target_tokenizer, doc.tokenizer)
    metrics = score_speech(model, data, "train")
    return {**{k: metrics[k] for k in SCORES}, "utterances": len(data.train)}


def _steps(run: Path) -> int:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max((r.get("step", 0) for r in rows), default=0)


def summarise(scores: dict[str, dict]) -> dict:
    """Each speaker's scores, and their mean and sample standard deviation (n - 1) over the speakers."""
    summary = {"speakers": scores}
    for key in SCORES:
        values = [s[key] for s in scores.values()]
        summary[key] = {"mean": statistics.fmean(values),
                        "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return summary


def _describe(score: dict) -> str:
    return (f"digit error rate {100 * score['token_error_rate']:.2f} %, string error rate "
            f"{100 * score['sequence_error_rate']:.2f} % ({score['utterances']} strings, {score['steps']:,} steps)")


def table(summary: dict) -> str:
    """The summary as a Markdown table, percent."""
    rows = ["| held-out speaker | digit error rate (%) | string error rate (%) | training steps |",
            "|---|---|---|---|"]
    for speaker, s in summary["speakers"].items():
        rows.append(f"| {speaker} | {100 * s['token_error_rate']:.2f} | {100 * s['sequence_error_rate']:.2f} | "
                    f"{s['steps']:,} |")
    t, q = summary["token_error_rate"], summary["sequence_error_rate"]
    rows.append(f"| mean ± sd | **{100 * t['mean']:.2f} ± {100 * t['sd']:.2f}** | "
                f"{100 * q['mean']:.2f} ± {100 * q['sd']:.2f} | |")
    return "\n".join(rows)
