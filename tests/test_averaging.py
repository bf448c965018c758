"""--weight-average: an exponential moving average of the weights is what validation, the best checkpoint
and the test read; training goes on from the optimizer's weights; a resumed run continues the same average."""

import json

import pytest
import torch

from conftest import run_main
from rnnkit import DataConfig, LanguageModel, TextData, Trainer
from rnnkit.tasks import LanguageModelTraining
from rnnkit.training.averaging import KEY, averaged_weights, update_average
from rnnkit.training.runs import BEST, LAST, load_tensors

SMALL = dict(cell="gru", hidden_size=24, num_layers=1, embedding_dim=8, dropout=0.0)


def make(corpus, out, callbacks=(), **train):
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=24))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, **SMALL)
    cfg = LanguageModelTraining(**{"max_steps": 12, "eval_every": 4, "log_every": 1, "sample_length": 0,
                                   "lr": 1e-2, "warmup_steps": 0, "lr_schedule": "constant", "device": "cpu",
                                   "precision": "fp32", "weight_average": 0.9, **train})
    return Trainer(model, data, cfg, out=out, quiet=True, callbacks=callbacks)


def test_the_average_follows_its_formula_and_skips_a_parameter_never_stepped():
    """avg_1 = w_1; avg_t = d_t avg_(t-1) + (1 - d_t) w_t with d_t = min(DECAY, (1 + t) / (10 + t))."""
    moving, frozen = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([moving, frozen], lr=1.0)
    expected = None
    for t, w in enumerate([1.0, 3.0, -2.0, 5.0], start=1):
        with torch.no_grad():
            moving.fill_(w)
        moving.grad = torch.zeros(3)  # stepped; `frozen` has no gradient
        update_average(optimizer, 0.5, t)
        d = min(0.5, (1 + t) / (10 + t))
        expected = w if expected is None else d * expected + (1 - d) * w
        assert torch.allclose(optimizer.state[moving][KEY], torch.full((3,), expected))
    assert KEY not in optimizer.state[frozen]
    model = torch.nn.ParameterList([moving, frozen])
    with averaged_weights(optimizer, model):
        assert torch.allclose(moving, torch.full((3,), expected)) and torch.equal(frozen, torch.ones(2))
    assert torch.equal(moving, torch.full((3,), 5.0))  # the optimizer's weights again


def test_validation_and_the_best_checkpoint_read_the_average_and_training_goes_on_from_the_weights(corpus, tmp_path):
    seen = []  # the weights each step trained from, and the averages after it
    trainer = make(corpus, tmp_path / "run", callbacks=[
        lambda t: seen.append((t.model.head.weight.detach().clone(),
                               t.optimizer.state[t.model.head.weight][KEY].clone()))])
    trainer.fit()
    assert len(seen) == 12
    best, meta = load_tensors(tmp_path / "run" / BEST)
    step = meta["step"]
    assert torch.equal(best["head.weight"], seen[step - 1][1])  # the average at the kept step
    assert not torch.equal(best["head.weight"], seen[step - 1][0])
    assert torch.equal(trainer.model.head.weight, seen[-1][0])  # the model holds the optimizer's weights
    last, _ = load_tensors(tmp_path / "run" / LAST)
    assert torch.equal(last["model.head.weight"], seen[-1][0])
    assert torch.equal(last[f"optim.{_pid(trainer, trainer.model.head.weight)}.{KEY}"], seen[-1][1])
    # what validation reported at the last evaluation is the average's loss
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    reported = [r["val_loss"] for r in rows if r.get("step") == 12 and "val_loss" in r][0]
    def val_loss() -> float:
        return trainer.task.validate(trainer.model, trainer.data, "val", None, trainer.cfg)["loss"]

    with averaged_weights(trainer.optimizer, trainer.model):
        assert val_loss() == pytest.approx(reported)
    assert val_loss() != pytest.approx(reported)


def test_a_resumed_run_continues_the_same_average(corpus, tmp_path):
    make(corpus, tmp_path / "straight").fit()
    make(corpus, tmp_path / "resumed", max_steps=6).fit()
    make(corpus, tmp_path / "resumed").fit(resume=True)
    for name in (LAST, BEST):
        a, _ = load_tensors(tmp_path / "straight" / name)
        b, _ = load_tensors(tmp_path / "resumed" / name)
        assert a.keys() == b.keys() and any(KEY in k for k in a) == (name == LAST)
        assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("rng")), name


def test_the_setting_is_checked(corpus, tmp_path):
    result = run_main("train", corpus, "--weight-average", "1", "--out", tmp_path / "run")
    assert result.returncode == 2 and "weight_average must be in [0, 1); got 1.0" in result.stderr
    assert not (tmp_path / "run").exists()


def _pid(trainer, param) -> int:
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    return next(i for i, p in enumerate(params) if p is param)
