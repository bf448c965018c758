"""Hyperparameter search over `rnnkit train`'s settings with Optuna: ``rnnkit tune``.

A study searches the settings named by ``--space`` (each drawn from its range in
:data:`SPACE`, the one table of search ranges, shared by every task); every
trial is one training run with the sampled settings (the same code as
``rnnkit train``, handed in as ``run_trial``), on a budget, in its own run
folder ``STUDY/trial-NNN``. The sampler is TPE (Bergstra et al. 2011): after
``startup_trials`` random trials it draws where

    l(x) / g(x) is largest,  l: density of the best γ-quantile of trials so far, g: of the rest.

A trial is pruned (stopped early) by the median rule: at an evaluation at step s,
when its validation criterion is worse than the median of the finished trials'
at the same step (after ``prune_after`` finished trials). The criterion is the
run's (:class:`rnnkit.tasks.Criterion`, lower is better: the task's own, the
loss or a token error rate, or what ``--best-by`` names, e.g. 1 - accuracy),
so the study always minimises.

The study is an SQLite file, ``STUDY/study.db`` (Optuna's RDB storage), with
rnnkit's version, the space and the fixed settings in its user attributes: a
stopped search resumes with the same command, and several processes may share
one study. ``trials`` counts the whole study's trials: each process claims the
next trial under a lock (``STUDY/claim.lock``), so together they run exactly
that many. A trial stopped by Ctrl-C (or whose process died) is marked failed
and does not count: the search runs another in its place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import shlex
import socket
import warnings
from pathlib import Path

from rnnkit.errors import ConfigError, RnnkitError
from rnnkit.experiments.table import Table
from rnnkit.training.runs import METRICS
from rnnkit.version import __version__

STUDY, CLAIM, NAME = "study.db", "claim.lock", "rnnkit"
INSTALL = "rnnkit tune needs Optuna: pip install 'rnnkit[tune]'"

# The search range of every setting that can be searched, for every task that has it: a range (low,
# high; log: drawn uniformly in log space) or choices. An int setting's range draws integers.
SPACE: dict[str, dict] = {
    "lr": {"low": 1e-4, "high": 3e-2, "log": True},
    "hidden_size": {"choices": [64, 128, 256, 512, 1024]},
    "num_layers": {"low": 1, "high": 3},
    "embedding_dim": {"choices": [16, 32, 64, 128, 256]},
    "dropout": {"low": 0.0, "high": 0.5},
    "weight_drop": {"low": 0.0, "high": 0.5},
    "input_noise": {"low": 0.0, "high": 0.3},
    "label_smoothing": {"low": 0.0, "high": 0.2},
    "weight_decay": {"low": 1e-3, "high": 0.3, "log": True},
    "l1": {"low": 1e-7, "high": 1e-4, "log": True},
    "clip_norm": {"low": 0.1, "high": 10.0, "log": True},
    "warmup_steps": {"low": 0, "high": 500},
    "min_lr_ratio": {"low": 0.01, "high": 0.5, "log": True},
    "beta2": {"low": 0.9, "high": 0.999},
    "batch_size": {"choices": [16, 32, 64, 128]},
    "seq_len": {"choices": [32, 64, 128, 256]},
    "cell": {"choices": ["lstm", "gru"]},
    "lr_schedule": {"choices": ["constant", "cosine"]},
}


def optuna():
    """The optuna module, or the one-line error that says how to install it."""
    try:
        import optuna as module
    except ImportError:
        raise ConfigError(INSTALL) from None
    module.logging.set_verbosity(module.logging.WARNING)
    warnings.filterwarnings("ignore", category=module.exceptions.ExperimentalWarning)
    return module


# -- the search space -------------------------------------------------------------------------------


def parse_space(text: str, task) -> dict:
    """The distributions (name -> optuna distribution) that ``--space`` names: comma-separated
    setting names (each with its range in :data:`SPACE`), or a JSON or TOML file mapping each name to
    ``{}`` (the table's range), a partial range that overrides the table's (``{"high": 1e-2}``) or a
    list of choices."""
    if text.endswith((".json", ".toml")) or Path(text).is_file():
        ranges = _read_space_file(Path(text))
    else:
        ranges = {name.strip(): {} for name in text.split(",") if name.strip()}
    if not ranges:
        raise ConfigError(f"--space: name the settings to search, e.g. lr,hidden_size,dropout; got {text!r}")
    return {name: distribution(name, override, task) for name, override in ranges.items()}


def _read_space_file(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"--space {path}: {e.strerror or e}; give a JSON or TOML file, or setting names") from None
    try:
        if path.suffix == ".toml":
            import tomllib
            values = tomllib.loads(raw.decode())
        else:
            values = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"--space {path}: not valid {path.suffix[1:].upper() or 'JSON'}: {e}") from None
    if not isinstance(values, dict) or not all(isinstance(v, (dict, list)) for v in values.values()):
        raise ConfigError(f"--space {path}: expected a table of settings, each {{}}, a range "
                          f"{{low, high, log}} or a list of choices")
    return {name: {"choices": v} if isinstance(v, list) else v for name, v in values.items()}


def distribution(name: str, override: dict, task):
    """Setting ``name``'s distribution: its range in :data:`SPACE` with ``override`` on top, checked
    against the setting (each bound or choice must be a value the setting takes)."""
    fields = task.settings()
    if name not in fields:
        raise ConfigError(f"--space: {name} is not a setting of --task {task.name}; drop it")
    if name not in SPACE:
        raise ConfigError(f"--space: {name} has no search range (rnnkit.experiments.tune.SPACE); searchable: "
                          f"{', '.join(n for n in SPACE if n in fields)}")
    unknown = sorted(set(override) - {"low", "high", "log", "choices"})
    if unknown:
        raise ConfigError(f"--space: {name}: unknown key(s) {', '.join(unknown)}; a range has low, high, log; "
                          f"or give choices")
    if "choices" in override or not override:  # choices replace the table's entry
        spec = dict(override or SPACE[name])
    else:  # a range: over the table's range, or in place of its choices
        spec = {**({} if "choices" in SPACE[name] else SPACE[name]), **override}
        if {"low", "high"} - set(spec) or "choices" in spec:
            raise ConfigError(f"--space: {name}: give a range as low and high, or choices, not both")
    values = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
    for value in values:
        _check_value(task, name, value)
    dist = optuna().distributions
    if "choices" in spec:
        if not values:
            raise ConfigError(f"--space: {name}: give at least one choice")
        return dist.CategoricalDistribution(values)
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if not low < high or (log and low <= 0):
        raise ConfigError(f"--space: {name}: a range needs low < high (and low > 0 with log); got {low}, {high}")
    if fields[name].type.split("|")[0].strip() == "int":
        return dist.IntDistribution(int(low), int(high), log=log)
    return dist.FloatDistribution(float(low), float(high), log=log)


def _check_value(task, name: str, value) -> None:
    """A ConfigError unless ``value`` is one setting ``name`` of ``task`` takes."""
    cls = next(c for c in task.configs() if name in {f.name for f in dataclasses.fields(c)})
    try:
        cls(**{name: value})
    except (TypeError, ConfigError) as e:
        raise ConfigError(f"--space: {name} {value!r}: {e}") from None


def space_to_json(space: dict) -> dict:
    """The search space as JSON: each parameter's Optuna distribution, by name."""
    return {name: json.loads(optuna().distributions.distribution_to_json(d)) for name, d in space.items()}


# -- the study --------------------------------------------------------------------------------------


def open_study(folder: Path, data: str, space: dict, fixed: dict, task, startup_trials: int = 4,
               prune_after: int | None = 2, seed: int | None = None):
    """The study of the training file ``data`` in ``folder`` (made with its user attributes if new); one
    another rnnkit version wrote, or of another file, space or fixed settings, is refused before anything
    is written."""
    opt = optuna()
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file; give a folder for the study")
    path = folder / STUDY
    sampler = opt.samplers.TPESampler(n_startup_trials=startup_trials, seed=seed, multivariate=True,
                                      constant_liar=True)  # constant liar: processes running at once spread out
    pruner = (opt.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=0) if prune_after is not None
              else opt.pruners.NopPruner())
    attrs = {"rnnkit_version": __version__, "data": str(Path(data).resolve()), "task": task.name,
             "space": space_to_json(space), "fixed": fixed}
    folder.mkdir(parents=True, exist_ok=True)
    with claim(folder):  # two processes starting a new study at once: one creates it, the other reads it whole
        if path.exists():
            study = _load(opt, path, sampler, pruner)
        else:
            study = opt.create_study(storage=_storage(opt, path), study_name=NAME, direction="minimize",
                                     sampler=sampler, pruner=pruner)
            for key, value in attrs.items():
                study.set_user_attr(key, value)
    _refuse_other(study.user_attrs, attrs, path)
    return study


def _storage(opt, path: Path, create: bool = True):
    # several processes write one SQLite file: wait for its lock rather than fail at once; an existing
    # file gets no tables made in it (another program's database is refused, not altered)
    return opt.storages.RDBStorage(f"sqlite:///{path.resolve()}", engine_kwargs={"connect_args": {"timeout": 60}},
                                   skip_table_creation=not create)


def _load(opt, path: Path, sampler, pruner):
    try:
        return opt.load_study(study_name=NAME, storage=_storage(opt, path, create=False), sampler=sampler,
                              pruner=pruner)
    except KeyError:
        raise ConfigError(f"{path} holds no rnnkit study; give another --out") from None
    except Exception as e:  # not SQLite, or Optuna's tables of another version: nothing was written
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path} cannot be read as an rnnkit study ({first}); give another --out") from None


def _refuse_other(found: dict, wanted: dict, path: Path) -> None:
    if found.get("rnnkit_version") != wanted["rnnkit_version"]:
        raise ConfigError(f"{path} was written by rnnkit {found.get('rnnkit_version', '(unknown)')}, this is "
                          f"{wanted['rnnkit_version']}; its trials would not compare: give another --out")
    if found.get("data") != wanted["data"]:
        raise ConfigError(f"{path} searches on {found.get('data')}; give that file, or another --out")
    if any(found.get(key) != wanted[key] for key in ("task", "space")):  # what a trial's value means
        raise ConfigError(f"{path} searches --task {found.get('task')} over {','.join(found.get('space', {}))} "
                          f"with other ranges or settings; give the same --space (and --task), or another --out")
    if found.get("fixed") != wanted["fixed"]:
        diff = sorted(k for k in {*found.get("fixed", {}), *wanted["fixed"]}
                      if found.get("fixed", {}).get(k) != wanted["fixed"].get(k))
        raise ConfigError(f"{path} fixes other settings ({', '.join(diff)} differ); give the same flags as the "
                          f"study's first command, or another --out")


@contextlib.contextmanager
def claim(folder: Path):
    """Held while a process looks at the study's trials and starts the next (flock on ``claim.lock``)."""
    with open(Path(folder) / CLAIM, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def counted(trial) -> bool:
    """Whether a trial counts toward ``trials``: finished, pruned, running, or failed on an ``error``
    of its settings; not one stopped by Ctrl-C or a dead process, nor one enqueued and not started."""
    return trial.state.name in ("COMPLETE", "PRUNED", "RUNNING") or "error" in trial.user_attrs


def _fail_dead_trials(study) -> None:
    """Mark failed the running trials of this machine whose process is gone (killed mid-trial)."""
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name == "RUNNING" and trial.user_attrs.get("host") == socket.gethostname() \
                and not _alive(trial.user_attrs.get("pid", -1)):
            study.tell(trial.number, state=optuna().trial.TrialState.FAIL, skip_if_finished=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return pid > 0


def trial_folder(folder: Path, number: int) -> Path:
    """The run folder of trial ``number`` in the study's ``folder``: ``trial-007``."""
    return Path(folder) / f"trial-{number:03d}"


# -- running the trials -----------------------------------------------------------------------------


class Pruning:
    """A Trainer callback that reports each validation of a trial to Optuna and stops the trial
    when the pruner says so. The Trainer calls it after every step; an evaluation it logged (a row of
    ``trainer.rows`` with ``val_`` metrics) is reported at the next step, with the criterion at the
    evaluation's step."""

    def __init__(self, trial, criterion):
        self.trial, self.criterion = trial, criterion
        self.seen = 0  # rows of trainer.rows already read
        self.pruned = False

    def __call__(self, trainer) -> None:
        rows, reported = trainer.rows, False
        for row in rows[self.seen:]:
            metrics = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
            if metrics:
                self.trial.report(self.criterion(metrics), row["step"])
                reported = True
        self.seen = len(rows)
        if reported and not self.pruned and self.trial.should_prune():
            self.pruned = True
            trainer.request_stop()


def criteria(run: Path, criterion) -> list[tuple[int, float]]:
    """(step, validation criterion) of each evaluation in a run folder's metrics.jsonl."""
    found = []
    with contextlib.suppress(FileNotFoundError), open(Path(run) / METRICS) as f:
        for line in f:
            row = json.loads(line)
            metrics = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
            if metrics:
                found.append((row["step"], criterion(metrics)))
    return found


def run_study(study, folder: Path, trials: int, run_trial, criterion, say=print) -> int:
    """Run trials until the study has ``trials`` (counting every process's); returns 0, or 130 after
    Ctrl-C. ``run_trial(number, settings, out, callbacks) -> exit code`` trains one trial (130:
    interrupted) and raises an RnnkitError when the trial cannot train (counted, as failed); ``criterion``
    (:class:`rnnkit.tasks.Criterion`) scores its evaluations."""
    opt = optuna()
    State = opt.trial.TrialState
    space = {name: opt.distributions.json_to_distribution(json.dumps(d))
             for name, d in study.user_attrs["space"].items()}
    while True:
        with claim(folder):
            _fail_dead_trials(study)
            if sum(counted(t) for t in study.get_trials(deepcopy=False)) >= trials:
                return 0
            trial = study.ask(space)
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
        out = trial_folder(folder, trial.number)
        say(f"trial {trial.number}: " + " ".join(f"{name} {_shown(v)}" for name, v in trial.params.items())
            + f" -> {out}")
        pruning = Pruning(trial, criterion)
        try:
            code = run_trial(trial.number, dict(trial.params), out, [pruning])
        except RnnkitError as e:  # this trial's settings cannot train (its loss diverged, ...)
            trial.set_user_attr("error", str(e))
            study.tell(trial, state=State.FAIL)
            say(f"trial {trial.number} failed: {e}")
            continue
        except BaseException:  # Ctrl-C outside the training loop, or a bug: the study stays usable
            study.tell(trial, state=State.FAIL)
            raise
        found = criteria(out, criterion)
        if found:
            trial.set_user_attr("steps", _steps(out))
        if pruning.pruned:
            study.tell(trial, state=State.PRUNED)
            say(f"trial {trial.number} pruned at step {found[-1][0] if found else 0}")
        elif code != 0:  # Ctrl-C: the trial is failed, not counted; the same command runs another
            study.tell(trial, state=State.FAIL)
            say(f"trial {trial.number} interrupted and marked failed; continue the search with the same command")
            return code
        elif not found:
            trial.set_user_attr("error", "no validation: give --val-fraction > 0 or --val-path")
            study.tell(trial, state=State.FAIL)
        else:
            study.tell(trial, min(value for _, value in found))


def _steps(run: Path) -> int:
    with open(Path(run) / METRICS) as f:
        return max((json.loads(line).get("step", 0) for line in f), default=0)


# -- the results ------------------------------------------------------------------------------------


def trials_table(study, criterion) -> Table:
    """Every trial: number, state, the sampled settings, the validation criterion, steps and seconds."""
    names = list(study.user_attrs["space"])
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = t.duration.total_seconds() if t.duration is not None else math.nan
        state = t.state.name.lower() + (" (error)" if "error" in t.user_attrs else "")
        rows.append((t.number, state, *(t.params.get(n, "") for n in names),
                     t.value if t.value is not None else math.nan, t.user_attrs.get("steps", ""), seconds))
    formats = ("{}", "{}", *(_shown for _ in names), "{:.4f}", "{}", "{:.0f}")
    errors = [f"trial {t.number}: {t.user_attrs['error']}" for t in study.get_trials(deepcopy=False)
              if "error" in t.user_attrs]
    return Table(("trial", "state", *names, f"val {criterion.name}", "steps", "seconds"), rows, formats,
                 note="\n".join(errors))


def best_trial(study):
    """The finished trial with the lowest criterion (None: none finished)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return min(done, key=lambda t: t.value) if done else None


def best_command(study, path: str, trial) -> str:
    """``rnnkit train PATH`` with the study's fixed settings and ``trial``'s sampled ones."""
    settings = {**study.user_attrs["fixed"], **trial.params}
    return " ".join(["rnnkit train", shlex.quote(path)] + [
        f"--{name.replace('_', '-')} {shlex.quote(_shown(value, exact=True))}" for name, value in settings.items()])


def _shown(value, exact: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value) if exact else f"{value:.4g}"
    return str(value)
