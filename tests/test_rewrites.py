"""Frequent evaluation stays cheap: an evaluation writes the best checkpoint when
it improves, and the resume checkpoint and the loss plot only when due
(:mod:`rnnkit.training.rewrites`); the end of training and Ctrl-C leave them
complete and current, and a run stopped between rewrites resumes exactly."""

import json
import time

import numpy as np
import pytest
import torch

import rnnkit.training.rewrites as rewrites
import rnnkit.training.trainer as trainer_module
from rnnkit.data.forecast import ForecastConfig, ForecastData
from rnnkit.models.forecaster import Forecaster
from rnnkit.tasks import Trainer
from rnnkit.tasks.forecast import ForecastTraining
from rnnkit.training.runs import BEST, LAST, load_tensors
from test_forecast import ar2


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_rewrite_is_due_first_at_save_every_and_after_ten_times_its_own_cost(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rewrites.time, "perf_counter", clock)
    r = rewrites.Rewrites(share=0.1)
    assert r.due(1, None)  # the first evaluation writes

    def costs_two_seconds():
        clock.now += 2.0
    r.run(costs_two_seconds)
    clock.now += 19.9
    assert not r.due(2, None) and r.due(3, 3)  # 19.9 s < 2 s / 0.1; but a --save-every step is always due
    clock.now += 0.1
    assert r.due(4, None)


def fit(folder, monkeypatch, stop_at=None, resume=False, max_steps=30):
    """A small forecaster validated at every step, each plot made to cost 20 ms; returns (trainer, plots drawn)."""
    drawn = []
    real = trainer_module.plot_losses

    def slow_plot(*args, **kwargs):
        drawn.append(1)
        time.sleep(0.02)
        real(*args, **kwargs)
    monkeypatch.setattr(trainer_module, "plot_losses", slow_plot)
    folder.parent.mkdir(parents=True, exist_ok=True)
    np.save(folder.parent / "y.npy", ar2(600)[:, None])
    data = ForecastData.from_file(folder.parent / "y.npy", ForecastConfig(seq_len=12, batch_size=16))
    torch.manual_seed(0)
    model = Forecaster(1, 0, hidden_size=8)
    config = ForecastTraining(max_steps=max_steps, eval_every=1, lr=1e-2, warmup_steps=0, device="cpu",
                              precision="fp32", log_every=1)
    trainer = Trainer(model, data, config, out=folder, quiet=True)
    if stop_at:
        trainer.callbacks.append(lambda t: t.request_stop() if t.step == stop_at else None)
    trainer.fit(resume=resume)
    return trainer, len(drawn)


def test_frequent_evaluation_rewrites_rarely_and_keeps_the_best_and_a_current_end(tmp_path, monkeypatch):
    trainer, plots = fit(tmp_path / "run", monkeypatch)
    assert 2 <= plots < 30 // 2  # the first evaluation and the end, and not every evaluation
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [(r["val_loss"], r["step"]) for r in rows if "val_loss" in r]
    assert [step for _, step in val] == list(range(1, 31))  # every step (the end's is the last)
    tensors, meta = load_tensors(tmp_path / "run" / BEST)
    assert meta["step"] == min(val)[1] and meta["val_loss"] == min(val)[0]  # the lowest validation loss
    assert load_tensors(tmp_path / "run" / LAST)[1]["step"] == 30
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0


def test_a_stop_between_rewrites_leaves_them_current_and_resumes_exactly(tmp_path, monkeypatch):
    straight, _ = fit(tmp_path / "a" / "run", monkeypatch)
    stopped, plots = fit(tmp_path / "b" / "run", monkeypatch, stop_at=23)
    assert load_tensors(tmp_path / "b" / "run" / LAST)[1]["step"] == 23  # Ctrl-C writes the last checkpoint
    png = tmp_path / "b" / "run" / "loss.png"
    assert plots >= 2 and png.exists()  # and redraws the plot
    resumed, _ = fit(tmp_path / "b" / "run", monkeypatch, resume=True)
    for file in (LAST, BEST):
        a, b = load_tensors(tmp_path / "a" / "run" / file)[0], load_tensors(tmp_path / "b" / "run" / file)[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), file


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order in both runs
    yield
    torch.set_num_threads(threads)
