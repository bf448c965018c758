"""Training never loses work and never writes bad numbers: non-finite losses and
gradients by policy, one trainer per run folder, a full disk, processes killed
with SIGKILL at random moments."""

import errno
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rnnkit import DataConfig, LanguageModel, TextData, Trainer
from rnnkit.errors import CheckpointError, TrainingError
from rnnkit.tasks import LanguageModelTraining
from rnnkit.training.runs import LAST, load_tensors, run_lock

SMALL = dict(cell="lstm", hidden_size=32, num_layers=1, embedding_dim=16, dropout=0.0)


def make(corpus, out, **train):
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=32))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, **SMALL)
    cfg = LanguageModelTraining(**{"max_steps": 8, "eval_every": 2, "log_every": 1, "sample_length": 0, "lr": 1e-2,
                                   "warmup_steps": 0, "lr_schedule": "constant", "device": "cpu", **train})
    return Trainer(model, data, cfg, out=out, quiet=True)


class InfiniteGradient(torch.autograd.Function):
    """The identity forward; an infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * math.inf


def spoil(trainer, at_steps, how):
    """Make the loss of the given (1-based) steps NaN (how="loss") or its gradient infinite (how="gradient")."""
    loss = trainer.model.loss

    def spoiled(batch, state):
        value, state = loss(batch, state)
        if trainer.step + 1 in at_steps:
            value = value * math.nan if how == "loss" else InfiniteGradient.apply(value)
        return value, state

    trainer.model.loss = spoiled


def weights_after_each_step(trainer):
    seen = {}
    trainer.callbacks.append(lambda t: seen.__setitem__(t.step, [p.detach().clone() for p in t.model.parameters()]))
    return seen


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("how, what", [("loss", "loss became nan"), ("gradient", "gradient norm became (inf|nan)")])
def test_a_non_finite_step_stops_training_by_default_naming_the_step_and_the_checkpoint(corpus, tmp_path, how, what):
    trainer = make(corpus, tmp_path / "run", save_every=4)  # the last checkpoint is at step 4 at the latest
    spoil(trainer, {5}, how)
    with pytest.raises(TrainingError, match=f"the {what} at step 5; .*last checkpoint \\(step 4\\)"):
        trainer.fit()
    assert load_tensors(tmp_path / "run" / LAST)[1]["step"] == 4


@pytest.mark.parametrize("how", ["loss", "gradient"])
def test_skip_leaves_the_weights_of_a_non_finite_step_alone_and_counts_it(corpus, tmp_path, how):
    trainer = make(corpus, tmp_path / "run", on_nonfinite="skip")
    spoil(trainer, {3, 6}, how)
    seen = weights_after_each_step(trainer)
    result = trainer.fit()
    assert result["stopped"] == "budget" and result["skipped_steps"] == 2
    for step in (3, 6):  # no update at the skipped steps, updates at the others
        assert all(torch.equal(a, b) for a, b in zip(seen[step - 1], seen[step]))
        assert not all(torch.equal(a, b) for a, b in zip(seen[step], seen[step + 1]))
    rows = metrics(tmp_path / "run")
    assert [(r["step"], r["skipped_steps"]) for r in rows if "nonfinite" in r] == [(3, 1), (6, 2)]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in rows if "loss" in r)
    assert load_tensors(tmp_path / "run" / LAST)[1]["skipped_steps"] == 2  # and a resumed run goes on counting


def test_lower_lr_halves_the_learning_rate_at_each_non_finite_step_and_keeps_it_on_resume(corpus, tmp_path):
    trainer = make(corpus, tmp_path / "run", on_nonfinite="lower_lr")
    spoil(trainer, {3, 4}, "loss")
    trainer.fit()
    lrs = {r["step"]: r["lr"] for r in metrics(tmp_path / "run") if "lr" in r}
    assert lrs == {1: 1e-2, 2: 1e-2, 5: 2.5e-3, 6: 2.5e-3, 7: 2.5e-3, 8: 2.5e-3}
    resumed = make(corpus, tmp_path / "run", on_nonfinite="lower_lr", max_steps=9)
    resumed.fit(resume=True)
    assert metrics(tmp_path / "run")[-2]["lr"] == 2.5e-3


def test_skipping_gives_up_after_20_non_finite_steps_in_a_row(corpus, tmp_path):
    trainer = make(corpus, tmp_path / "run", on_nonfinite="skip", max_steps=40, eval_every=100)
    spoil(trainer, set(range(3, 41)), "loss")
    with pytest.raises(TrainingError, match="20 steps in a row up to step 22 had a non-finite"):
        trainer.fit()


def test_non_finite_weights_are_never_written_whatever_the_policy(corpus, tmp_path):
    trainer = make(corpus, tmp_path / "run", on_nonfinite="skip")

    def poison(t):
        if t.step == 3:
            with torch.no_grad():
                t.model.head.weight[0, 0] = math.nan

    trainer.callbacks.append(poison)
    with pytest.raises(TrainingError, match="weights are no longer finite at step 4 .* last checkpoint \\(step 2\\)"):
        trainer.fit()
    tensors, meta = load_tensors(tmp_path / "run" / LAST)
    assert meta["step"] == 2 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    trainer = make(corpus, tmp_path / "other", on_nonfinite="skip", eval_every=3)  # evaluates right after
    trainer.callbacks.append(poison)
    with pytest.raises(TrainingError, match="not finite at step 3, so they were not saved"):
        trainer.fit()
    assert not (tmp_path / "other" / LAST).exists()


def test_save_every_writes_the_resume_checkpoint_between_evaluations(corpus, tmp_path):
    steps = []
    trainer = make(corpus, tmp_path / "run", eval_every=100, save_every=3, max_steps=7)
    trainer.callbacks.append(lambda t: steps.append(t.saved_step))
    trainer.fit()
    assert steps == [None, None, None, 3, 3, 3, 6]  # seen after each step, before that step's save


def test_a_second_trainer_on_the_same_folder_is_refused(corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run):
        with pytest.raises(CheckpointError, match=f"{run} is in use by process {os.getpid()} on "):
            make(corpus, run).fit()
    make(corpus, run).fit()  # free again


def test_the_lock_of_a_killed_trainer_is_taken_over_and_its_partial_writes_removed(corpus, tmp_path, cli_here,
                                                                                    user_error):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from rnnkit.training.runs import run_lock
        from rnnkit.tasks import LanguageModelTraining
        with run_lock({str(run)!r}):
            open({str(run / ".last.safetensors.x.tmp")!r}, "w").write("half a checkpoint")
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        user_error(cli_here("train", corpus, "--out", run, "--max-steps", 1, "--device", "cpu"),
                   f"{run} is in use by process {holder.pid} on ")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    make(corpus, run).fit()
    assert not list(run.glob(".*.tmp"))


def test_a_full_disk_while_saving_keeps_the_last_good_checkpoint_and_says_so(corpus, tmp_path, monkeypatch):
    trainer = make(corpus, tmp_path / "run")
    fsync = os.fsync

    def full(fd):
        if trainer.step >= 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TrainingError, match="could not write to .*: No space left on device; the last checkpoint "
                                            "\\(step 2\\) is intact: free space, then continue with: rnnkit train "
                                            "--resume --out"):
        trainer.fit()
    monkeypatch.setattr(os, "fsync", fsync)
    assert load_tensors(tmp_path / "run" / LAST)[1]["step"] == 2
    assert not list((tmp_path / "run").glob(".*.tmp"))
    make(corpus, tmp_path / "run").fit(resume=True)


def _last_logged_step(run) -> int:
    rows = [r for r in map(_row, (run / "metrics.jsonl").read_text().splitlines()) if r]
    return max((r["step"] for r in rows), default=0)


def _row(line):
    try:
        return json.loads(line)
    except json.JSONDecodeError:  # the torn line of a killed writer
        return None


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_on_the_same_trajectory(corpus, tmp_path):
    """SIGKILL three times: at a random step, in the middle of writing a checkpoint, at a random
    step again. Each time the last checkpoint loads, is at most --save-every steps behind,
    and the resumed runs end with the losses and weights of a run never killed."""
    save_every, max_steps = 5, 40  # the three kills land before step ~25 (random.Random(0): 15, then 4 after)
    flags = ["--hidden-size", 384, "--num-layers", 2, "--embedding-dim", 32, "--batch-size", 8, "--seq-len", 32,
             "--dropout", 0.1, "--device", "cpu", "--max-steps", max_steps, "--eval-every", 20,
             "--save-every", save_every, "--log-every", 1, "--sample-length", 0]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the same sums in the same order in every process
    rnnkit = [sys.executable, "-m", "rnnkit", "train"]
    subprocess.run([*rnnkit, corpus, *map(str, flags), "--out", tmp_path / "straight"], env=env, check=True,
                   capture_output=True, timeout=300)
    run, rng = tmp_path / "killed", random.Random(0)
    for kill in ("at a step", "while writing", "at a step"):
        args = [corpus] if not (run / LAST).exists() else ["--resume"]
        process = subprocess.Popen([*rnnkit, *args, *map(str, flags), "--out", run], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start = load_tensors(run / LAST)[1]["step"] if (run / LAST).exists() else 0
        target = start + rng.randrange(3, 20)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if kill == "while writing" and any(run.glob(".last.safetensors.*.tmp")):
                break
            if kill == "at a step" and (run / "metrics.jsonl").exists() and _last_logged_step(run) >= target:
                time.sleep(rng.uniform(0, 0.05))  # anywhere in the step
                break
            time.sleep(0.001)
        assert process.poll() is None, process.stderr.read().decode()  # killed before its end
        process.send_signal(signal.SIGKILL)
        process.wait()
        if kill == "while writing":  # the kill landed inside the write (it takes tens of ms)
            assert list(run.glob(".last.safetensors.*.tmp"))
        _, meta = load_tensors(run / LAST)  # whole: the checksum holds
        assert _last_logged_step(run) - meta["step"] <= save_every, kill
    subprocess.run([*rnnkit, "--resume", *map(str, flags), "--out", run], env=env, check=True, capture_output=True,
                   timeout=300)
    for name in ("loss", "val_loss"):
        assert [r[name] for r in metrics(run) if name in r] == [r[name] for r in metrics(tmp_path / "straight")
                                                                 if name in r], name
    for file in ("last.safetensors", "model.safetensors"):
        a, b = load_tensors(run / file)[0], load_tensors(tmp_path / "straight" / file)[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), file
