"""``rnnkit tune DATA --space ... --trials N --out STUDY [train flags]``: the settings checked before
anything is written, then the search (:mod:`rnnkit.experiments.tune`), each trial trained by
``rnnkit train``'s own code (:func:`rnnkit.cli.train.run_train`) in this process."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.cli.options import Choice, flag, refuse_unused, split_settings, train_settings
from rnnkit.cli.train import run_train
from rnnkit.config import from_dict
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks import named


def run_tune(args) -> int:
    """``rnnkit tune``: run the study in ``--out`` (a trial a training run), then print its trials and the best."""
    from rnnkit.experiments import tune

    tune.optuna()  # the one-line install hint first, when Optuna is missing
    given = train_settings(args)  # the settings fixed for every trial: --config's, then the flags'
    folder = given.pop("out", None)
    if not folder:
        raise ConfigError("tune: give --out STUDY, the folder for the study (study.db) and its trials' runs")
    if args.trials < 1 or (args.trial_minutes is not None and not args.trial_minutes > 0) \
            or args.startup_trials < 0 or (args.prune_after is not None and args.prune_after < 0):
        raise ConfigError("tune: --trials must be >= 1, --trial-minutes > 0, --startup-trials and --prune-after "
                          ">= 0")
    if args.trial_minutes is not None:
        if "time_limit" in given:
            raise ConfigError("--trial-minutes and --time-limit both set each trial's budget; give one of them")
        given["time_limit"] = args.trial_minutes * 60.0
    if not Path(args.path).is_file():
        raise DataError(f"{args.path}: no such file; give the training file to tune on")
    task = named(given.get("task", "lm"))
    space = tune.parse_space(args.space, task)
    both = sorted(set(space) & set(given))
    if both:
        raise ConfigError(f"{flag(both[0])} is both searched (--space) and fixed; drop one of them")
    _refuse_unused(args.path, given, space, task)
    criterion = task.criterion_by(given.get("best_by", "auto"))  # what every trial's evaluations are scored by
    study = tune.open_study(Path(folder), args.path, space, given, task, args.startup_trials, args.prune_after,
                            args.sampler_seed)
    print(f"rnnkit tune --task {task.name}: {args.path}, {args.trials} trials searching {', '.join(space)} "
          f"(TPE, median pruning); study {Path(folder) / tune.STUDY}", flush=True)

    def run_trial(number: int, settings: dict, out: Path, callbacks) -> int:
        trial_args = argparse.Namespace(**{**vars(args), **settings, "out": str(out), "resume": False,
                                           "dry_run": False, **({"time_limit": given["time_limit"]}
                                                                if "time_limit" in given else {})})

        def say(*words, **where):  # a pruned trial's "interrupted ... resume with" line would mislead
            if not any(getattr(callback, "pruned", False) for callback in callbacks):
                print(f"trial {number}:", *words, **where)

        return run_train(trial_args, say, callbacks=callbacks)

    code = tune.run_study(study, Path(folder), args.trials, run_trial, criterion)
    print(tune.trials_table(study, criterion).markdown())
    best = tune.best_trial(study)
    if best is not None:
        print(f"\nbest: trial {best.number}, val {criterion.name} {best.value:.4f}; reproduce with:\n"
              + tune.best_command(study, args.path, best))
    elif code == 0:
        raise ConfigError(f"no trial of the study in {folder} completed (the table says why)")
    return code


def _refuse_unused(path: str, given: dict, space: dict, task) -> None:
    """The one-line error `rnnkit train` gives for a setting that would do nothing, checked once with
    each searched setting at its first value, and a study needs a validation split to compare trials."""
    values = {**given, **{name: _first(d) for name, d in space.items()}}
    model_s, data_s, train_s = split_settings(values, task)
    model_cfg = from_dict(task.model_config, model_s, "model settings")
    data_cfg = from_dict(task.data_config, {**data_s, "path": path, "task": task.name}, "data settings")
    train_cfg = from_dict(task.train_config, train_s, "train settings")
    data_cfg, _ = task.decide(data_cfg)
    refuse_unused(values, Choice(model_cfg, data_cfg, train_cfg))
    if not (getattr(data_cfg, "val_path", None) or getattr(data_cfg, "val_fraction", 0) > 0):
        raise ConfigError("tune compares trials on validation: give --val-path or --val-fraction > 0")


def _first(distribution):
    return distribution.choices[0] if hasattr(distribution, "choices") else distribution.low
