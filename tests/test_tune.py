"""rnnkit tune: a study on a generated corpus whose answer is known, pruning, Ctrl-C and resume, two
processes on one SQLite study, and the bad inputs (one line, exit 2, nothing written)."""

import hashlib
import json
import math
import shlex
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from rnnkit.cli import tune as cli_tune
from rnnkit.cli.train import run_train
from rnnkit.experiments import tune
from rnnkit.tasks import named

# a language model that takes 40 steps in about a second; the budget in steps, so trials are deterministic
FLAGS = ["--hidden-size", "32", "--num-layers", "1", "--embedding-dim", "16", "--batch-size", "8", "--seq-len", "32",
         "--sample-length", "0", "--device", "cpu", "--max-steps", "40", "--eval-every", "10", "--warmup-steps", "0",
         "--log-every", "5", "--precision", "fp32"]


def changed(flags: list, name: str, value: str) -> list:
    """``flags`` with flag ``name``'s value replaced."""
    at = flags.index(name) + 1
    return [*flags[:at], value, *flags[at + 1:]]


def load(study_dir):
    return optuna.load_study(study_name=tune.NAME, storage=f"sqlite:///{study_dir / tune.STUDY}")


def space_file(tmp_path, ranges: dict):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(ranges))
    return path


def test_a_study_finds_the_better_half_of_a_learning_rate_range_and_its_command_reproduces_it(
        corpus, tmp_path, cli_here):
    """In 40 steps a rate near 1e-2 learns the corpus and one near 1e-5 barely moves: every trial in the
    range's upper half (log scale) beats every trial in its lower half, and the best command line,
    run as `rnnkit train`, reaches the best trial's validation loss again."""
    space = space_file(tmp_path, {"lr": {"low": 1e-5, "high": 1e-2}})
    study_dir = tmp_path / "study"
    result = cli_here("tune", corpus, "--space", space, "--trials", 4, "--out", study_dir, "--sampler-seed", 3,
                      "--prune-after", "none", *FLAGS)
    assert result.returncode == 0, result.stderr
    trials = load(study_dir).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    middle = math.sqrt(1e-5 * 1e-2)
    upper = [t.value for t in trials if t.params["lr"] > middle]
    lower = [t.value for t in trials if t.params["lr"] <= middle]
    assert upper and lower, [t.params for t in trials]  # the seed puts trials in both halves
    assert max(upper) < min(lower)
    best = min(trials, key=lambda t: t.value)
    assert f"best: trial {best.number}, val loss {best.value:.4f}" in result.stdout
    for t in trials:  # each trial's run folder is kept under the study
        assert (study_dir / f"trial-{t.number:03d}" / "model.safetensors").exists()
    command = shlex.split(result.stdout.strip().splitlines()[-1])
    assert command[:2] == ["rnnkit", "train"] and f"--lr {best.params['lr']!r}" in result.stdout
    again = cli_here(*command[1:], "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert f"best {best.value:.4f}" in again.stdout


def test_a_trial_far_worse_than_the_median_is_pruned_at_its_first_validation(corpus, tmp_path, cli_here):
    space = space_file(tmp_path, {"lr": {"low": 3e-3, "high": 3e-2}})
    study_dir = tmp_path / "study"
    args = ["tune", corpus, "--space", space, "--out", study_dir, "--prune-after", 1, *FLAGS]
    assert cli_here(*args, "--trials", 1).returncode == 0
    load(study_dir).enqueue_trial({"lr": 1e-2})
    load(study_dir).enqueue_trial({"lr": 1e-6})  # a deliberately bad rate: the loss does not move
    with pytest.warns(UserWarning, match="out of range"):  # Optuna says so of a rate outside the space
        result = cli_here(*args, "--trials", 3)
    assert result.returncode == 0, result.stderr
    bad = load(study_dir).trials[2]
    assert bad.params["lr"] == 1e-6 and bad.state.name == "PRUNED"
    assert list(bad.intermediate_values) == [10]  # stopped after its first validation, not at step 40
    assert "trial 2 pruned at step 10" in result.stdout and "resume" not in result.stdout
    assert "| 2 | pruned | 1e-06 |" in result.stdout


def test_ctrl_c_mid_trial_marks_it_failed_and_the_same_command_resumes_the_study(
        corpus, tmp_path, cli_here, monkeypatch):
    """Ctrl-C's first press asks the Trainer to stop after its step (request_stop): the trial is
    marked failed, the process exits 130, and the same command runs the remaining trials."""
    study_dir = tmp_path / "study"
    args = ["tune", corpus, "--space", "lr", "--trials", 3, "--out", study_dir, "--prune-after", "none", *FLAGS]

    def ctrl_c_in_trial_1(args, say, callbacks=()):
        press = [lambda trainer: trainer.step == 15 and trainer.request_stop()]
        return run_train(args, say, callbacks=[*callbacks, *press] if args.out.endswith("trial-001") else callbacks)

    monkeypatch.setattr(cli_tune, "run_train", ctrl_c_in_trial_1)
    first = cli_here(*args)
    assert first.returncode == 130, first.stderr
    assert "trial 1 interrupted and marked failed" in first.stdout
    assert [t.state.name for t in load(study_dir).trials] == ["COMPLETE", "FAIL"]
    kept = hashlib.sha256((study_dir / "trial-000" / "metrics.jsonl").read_bytes()).digest()
    monkeypatch.setattr(cli_tune, "run_train", run_train)
    second = cli_here(*args)
    assert second.returncode == 0, second.stderr
    assert [t.state.name for t in load(study_dir).trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert hashlib.sha256((study_dir / "trial-000" / "metrics.jsonl").read_bytes()).digest() == kept  # not rerun
    third = cli_here(*args)  # a finished study only prints its table
    assert third.returncode == 0 and " -> " not in third.stdout and third.stdout.count("\n| ") == 1 + 4


@pytest.mark.slow
def test_a_real_ctrl_c_leaves_a_study_the_same_command_finishes(corpus, tmp_path, cli_here):
    """SIGINT to the process while a trial trains: exit 130, that trial failed, the study whole."""
    study_dir = tmp_path / "study"
    args = ["tune", str(corpus), "--space", "lr", "--trials", 3, "--out", str(study_dir), "--prune-after", "none",
            *changed(FLAGS, "--max-steps", "400")]
    process = subprocess.Popen([sys.executable, "-m", "rnnkit", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (study_dir / "trial-001" / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    states = [t.state.name for t in load(study_dir).trials]
    assert states.count("FAIL") == 1 and "RUNNING" not in states, states
    result = cli_here(*args)
    assert result.returncode == 0, result.stderr
    assert sum(tune.counted(t) for t in load(study_dir).trials) == 3


def test_a_trial_whose_process_died_is_failed_and_replaced(corpus, tmp_path, cli_here):
    study_dir = tmp_path / "study"
    args = ["tune", corpus, "--space", "lr", "--trials", 1, "--out", study_dir, *FLAGS]
    assert cli_here(*args).returncode == 0
    dead = load(study_dir).ask()  # claimed by a process that is gone (kill -9)
    dead.set_user_attr("host", tune.socket.gethostname())
    dead.set_user_attr("pid", 2 ** 22 + 1)  # above Linux's largest pid
    result = cli_here(*args[:5], 2, *args[6:])
    assert result.returncode == 0, result.stderr
    assert [t.state.name for t in load(study_dir).trials] == ["COMPLETE", "FAIL", "COMPLETE"]


@pytest.mark.slow
def test_two_processes_share_one_study_and_run_the_trials_asked_for_once_each(corpus, tmp_path):
    study_dir = tmp_path / "study"
    command = [sys.executable, "-m", "rnnkit", "tune", str(corpus), "--space", "lr,dropout", "--trials", "5",
               "--out", str(study_dir), *FLAGS]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    trials = load(study_dir).trials
    assert len(trials) == 5 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    ran = [{int(line.split()[1].rstrip(":")) for line in out.splitlines() if line.endswith(tuple(
        f"trial-{n:03d}" for n in range(5)))} for out, _ in outputs]
    assert ran[0] | ran[1] == set(range(5)) and not ran[0] & ran[1]  # each trial by one process


def test_the_space_table_and_a_file_that_overrides_it(tmp_path):
    lm = named("lm")
    space = tune.parse_space("lr,hidden_size,num_layers,dropout", lm)
    assert space["lr"].log and (space["lr"].low, space["lr"].high) == (1e-4, 3e-2)
    assert isinstance(space["num_layers"], optuna.distributions.IntDistribution)  # an int setting draws ints
    assert isinstance(space["hidden_size"], optuna.distributions.CategoricalDistribution)
    toml = tmp_path / "space.toml"
    toml.write_text('lr = {high = 1e-2}\nhidden_size = [32, 64]\ndropout = {}\nembedding_dim = {low = 8, high = 40}\n')
    space = tune.parse_space(str(toml), lm)
    assert space["lr"].log and (space["lr"].low, space["lr"].high) == (1e-4, 1e-2)  # the table's low and log kept
    assert space["hidden_size"].choices == (32, 64) and space["dropout"].high == 0.5
    assert (space["embedding_dim"].low, space["embedding_dim"].high) == (8, 40)  # a range for a setting of choices


@pytest.mark.parametrize("space, message", [
    ("lr,colour", "--space: colour is not a setting of --task lm; drop it"),
    ("pooling", "--space: pooling is not a setting of --task lm"),  # a classifier's
    ("seed", "--space: seed has no search range (rnnkit.experiments.tune.SPACE); searchable: lr,"),
    ('{"dropout": {"low": 0.1, "high": 1.5}}', "--space: dropout 1.5: dropout must be in [0, 1)"),
    ('{"lr": {"low": 1e-2, "high": 1e-3}}', "--space: lr: a range needs low < high"),
    ('{"lr": {"hig": 1}}', "--space: lr: unknown key(s) hig"),
    ('{"lr": 3}', "expected a table of settings"),
    ('{"hidden_size": {"low": 64}}', "--space: hidden_size: give a range as low and high, or choices, not both"),
])
def test_a_bad_search_space_is_one_line_and_nothing_is_written(corpus, tmp_path, cli_here, user_error, space,
                                                               message):
    if space.startswith("{"):
        space = space_file(tmp_path, json.loads(space))
    result = cli_here("tune", corpus, "--space", space, "--trials", 2, "--out", tmp_path / "study", *FLAGS)
    user_error(result, message)
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("extra, message", [
    (["--lr", "1e-3"], "--lr is both searched (--space) and fixed; drop one of them"),
    (["--momentum", "0.5"], "--momentum needs --optimizer momentum or nesterov"),
    (["--val-fraction", "0"], "tune compares trials on validation: give --val-path or --val-fraction > 0"),
    (["--trial-minutes", "1", "--time-limit", "60"], "--trial-minutes and --time-limit both set"),
])
def test_settings_that_cannot_tune_are_one_line(corpus, tmp_path, cli_here, user_error, extra, message):
    result = cli_here("tune", corpus, "--space", "lr", "--trials", 2, "--out", tmp_path / "study", *FLAGS, *extra)
    user_error(result, message)
    assert not (tmp_path / "study").exists()


def test_a_missing_data_file_is_one_line(tmp_path, cli_here, user_error):
    result = cli_here("tune", tmp_path / "absent.txt", "--space", "lr", "--trials", 2, "--out", tmp_path / "s")
    user_error(result, f"{tmp_path / 'absent.txt'}: no such file")
    assert not (tmp_path / "s").exists()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_study_another_version_wrote_or_of_another_space_is_refused_and_left_alone(
        corpus, tmp_path, cli_here, user_error):
    study_dir = tmp_path / "study"
    args = ["tune", corpus, "--trials", 1, "--out", study_dir, *FLAGS]
    assert cli_here(*args, "--space", "lr").returncode == 0
    before = _digest(study_dir / tune.STUDY)
    user_error(cli_here(*args, "--space", "lr,dropout"), "searches --task lm over lr with other ranges")
    user_error(cli_here(*args, "--space", "lr", "--dropout", "0.3"), "fixes other settings (dropout differ)")
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text())
    user_error(cli_here("tune", other, *args[2:], "--space", "lr"), f"searches on {corpus}; give that file")
    assert _digest(study_dir / tune.STUDY) == before
    load(study_dir).set_user_attr("rnnkit_version", "0.0.1")
    before = _digest(study_dir / tune.STUDY)
    user_error(cli_here(*args, "--space", "lr"), "was written by rnnkit 0.0.1, this is")
    assert _digest(study_dir / tune.STUDY) == before
    (study_dir / tune.STUDY).write_bytes(b"not a database at all")
    user_error(cli_here(*args, "--space", "lr"), "cannot be read as an rnnkit study")
    assert (study_dir / tune.STUDY).read_bytes() == b"not a database at all"
    (study_dir / tune.STUDY).unlink()
    sqlite3.connect(study_dir / tune.STUDY).execute("create table notes (text)").connection.commit()
    before = _digest(study_dir / tune.STUDY)
    user_error(cli_here(*args, "--space", "lr"), "cannot be read as an rnnkit study")  # another program's database
    assert _digest(study_dir / tune.STUDY) == before


def test_without_optuna_the_error_says_how_to_install_it(corpus, tmp_path, cli_here, user_error, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    result = cli_here("tune", corpus, "--space", "lr", "--trials", 2, "--out", tmp_path / "study")
    user_error(result, "rnnkit tune needs Optuna: pip install 'rnnkit[tune]'")


def test_tune_takes_every_flag_of_train_but_resume_and_dry_run():
    from rnnkit.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    options = {command: {s for a in commands[command]._actions for s in a.option_strings} for command in
               ("train", "tune")}
    assert options["tune"] - options["train"] == {"--space", "--trials", "--trial-minutes", "--startup-trials",
                                                  "--prune-after", "--sampler-seed"}
    assert options["train"] - options["tune"] == {"--resume", "--dry-run"}


def test_the_criterion_is_the_tasks_own(tmp_path):
    """What a trial minimises is its task's validation criterion: a seq2seq or ctc run's token error
    rate (its loss can rise while its outputs improve), another task's loss; or what --best-by names."""
    rows = [{"step": 5, "loss": 2.0}, {"step": 10, "val_loss": 1.5, "val_token_error_rate": 0.4},
            {"step": 20, "val_loss": 1.7, "val_token_error_rate": 0.3}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert tune.criteria(tmp_path, named("seq2seq").criterion_by("auto")) == [(10, 0.4), (20, 0.3)]
    assert tune.criteria(tmp_path, named("lm").criterion_by("auto")) == [(10, 1.5), (20, 1.7)]
    assert tune.criteria(tmp_path, named("seq2seq").criterion_by("loss")) == [(10, 1.5), (20, 1.7)]  # --best-by
    assert named("ctc").criterion_name == "token_error_rate" and named("classify").criterion_name == "loss"


def test_a_classifier_study(spam_table, tiny_labelled_flags, tmp_path, cli_here):
    table = tmp_path / "spam.csv"
    table.write_text(spam_table())
    result = cli_here("tune", table, "--task", "classify", "--space", "lr,dropout", "--trials", 2, "--out",
                      tmp_path / "study", *tiny_labelled_flags, "--max-steps", 40, "--eval-every", 10)
    assert result.returncode == 0, result.stderr
    assert "| trial | state | lr | dropout | val loss | steps | seconds |" in result.stdout
    assert "rnnkit train " + str(table) + " --task classify" in result.stdout
