"""The trainer: learning, exact resume, schedules, optimizers, checkpoints, numerics."""

import inspect
import json
import math

import pytest
import torch
from torch import nn

from rnnkit import DataConfig, LanguageModel, TextData, TrainConfig, Trainer, load_run
from rnnkit.config import OPTIMIZERS
from rnnkit.data.batches import StreamBatch
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.tasks import LanguageModelTraining, read_run
from rnnkit.training import learning_rate
from rnnkit.training.device import bf16_supported
from rnnkit.training.runs import BEST, LAST, load_tensors

SMALL = dict(cell="lstm", hidden_size=32, num_layers=1, embedding_dim=16, dropout=0.0)


def make(corpus, tmp_path, name="run", seed=0, init_seed=None, **train):
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=32))
    torch.manual_seed(seed if init_seed is None else init_seed)
    model = LanguageModel(data.vocab_size, **SMALL)
    cfg = LanguageModelTraining(**{"max_steps": 40, "eval_every": 20, "log_every": 1, "sample_length": 0,
                                   "lr": 1e-2, "warmup_steps": 5, "device": "cpu", "seed": seed, **train})
    return Trainer(model, data, cfg, out=tmp_path / name, quiet=True)


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "loss" in r]


def test_training_learns_the_corpus(corpus, tmp_path):
    trainer = make(corpus, tmp_path, max_steps=150, eval_every=50)
    result = trainer.fit()
    start = math.log(trainer.data.vocab_size)
    assert result["val_loss"] < 0.45 * start, result  # from ~3.3 nats to well under 1.5
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000


def test_resumed_run_logs_the_same_losses_as_an_uninterrupted_one(corpus, tmp_path):
    straight = make(corpus, tmp_path, "straight")
    straight.fit()
    stopped = make(corpus, tmp_path, "stopped")
    stopped.callbacks.append(lambda t: t.request_stop() if t.step == 13 else None)
    assert stopped.fit()["stopped"] == "interrupted"
    resumed = make(corpus, tmp_path, "stopped", init_seed=99)  # a different init: the checkpoint must win
    resumed.fit(resume=True)
    assert losses(tmp_path / "stopped") == losses(tmp_path / "straight")
    a, _ = load_tensors(tmp_path / "straight" / BEST)
    b, _ = load_tensors(tmp_path / "stopped" / BEST)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_exact_with_dropout_and_across_epochs(corpus, tmp_path):
    def run(name, stop):
        data = TextData.from_file(corpus, DataConfig(batch_size=16, seq_len=64))
        torch.manual_seed(0)
        model = LanguageModel(data.vocab_size, **{**SMALL, "dropout": 0.3, "num_layers": 2})
        cfg = LanguageModelTraining(max_epochs=3, eval_every=7, log_every=1, sample_length=0, device="cpu")
        t = Trainer(model, data, cfg, out=tmp_path / name, quiet=True)
        if stop:
            t.callbacks.append(lambda t: t.request_stop() if t.step == stop else None)
        return t

    run("a", None).fit()
    nb = run("b", None).batcher.num_batches(0)
    run("b", nb).fit()  # stop exactly at the end of the first epoch
    run("b", None).fit(resume=True)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_refuses_to_overwrite_a_run(corpus, tmp_path):
    make(corpus, tmp_path, max_steps=2).fit()
    with pytest.raises(CheckpointError, match="already holds a run; pass --resume"):
        make(corpus, tmp_path, max_steps=2).fit()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizers_update_as_torch_reference_loops_and_spare_biases_from_decay(optimizer):
    # rnnkit runs torch's fused kernels where they exist; the update must be the
    # plain per-tensor loop's (foreach=False), with weight decay on matrices only
    from rnnkit.training import build_optimizer

    torch.manual_seed(0)
    ours = nn.Linear(6, 4)
    ref = nn.Linear(6, 4)
    ref.load_state_dict(ours.state_dict())
    cfg = TrainConfig(optimizer=optimizer, lr=0.05, weight_decay=0.1, momentum=0.9)
    opt = build_optimizer(ours, cfg)
    cls, kw = {"sgd": (torch.optim.SGD, {}), "momentum": (torch.optim.SGD, {"momentum": 0.9}),
               "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
               "adagrad": (torch.optim.Adagrad, {}), "rmsprop": (torch.optim.RMSprop, {"alpha": 0.9}),
               "adadelta": (torch.optim.Adadelta, {"rho": 0.9}),
               "adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {})}[optimizer]
    ref_opt = cls([{"params": [ref.weight], "weight_decay": 0.1}, {"params": [ref.bias], "weight_decay": 0.0}],
                  lr=0.05, foreach=False, **kw)
    x = torch.randn(8, 6)
    for _ in range(3):
        for model, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            model(x).pow(2).sum().backward()
            o.step()
    torch.testing.assert_close(ours.weight, ref.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.bias, ref.bias, rtol=1e-5, atol=1e-6)


def test_each_optimizer_is_built_with_exactly_its_settings_and_torch_s_eps_when_unset():
    from rnnkit.training import build_optimizer

    def built(**kw):
        return build_optimizer(nn.Linear(3, 2), TrainConfig(**kw))

    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        opt = built(optimizer=name, beta1=0.8, beta2=0.99, eps=1e-6)
        assert type(opt) is cls and all(g["betas"] == (0.8, 0.99) and g["eps"] == 1e-6 for g in opt.param_groups)
    opt = built(optimizer="adadelta", lr=1.0, rho=0.5, eps=1e-4)
    assert type(opt) is torch.optim.Adadelta
    assert all((g["lr"], g["rho"], g["eps"]) == (1.0, 0.5, 1e-4) for g in opt.param_groups)
    assert [g["eps"] for g in built(optimizer="rmsprop", eps=1e-3).param_groups] == [1e-3, 1e-3]
    assert [g["eps"] for g in built(optimizer="adagrad", eps=1e-3).param_groups] == [1e-3, 1e-3]
    for name, cls in (("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop),
                      ("adadelta", torch.optim.Adadelta), ("adam", torch.optim.Adam)):  # unset: torch's own
        default = inspect.signature(cls.__init__).parameters["eps"].default
        assert built(optimizer=name).defaults["eps"] == default
    assert built(optimizer="adam").defaults["betas"] == (0.9, 0.999)
    for name, value in (("beta1", 1.0), ("beta2", -0.1), ("rho", 1.0)):
        with pytest.raises(ConfigError, match=f"{name} must be in \\[0, 1\\)"):
            TrainConfig(**{name: value})
    with pytest.raises(ConfigError, match="eps must be > 0"):
        TrainConfig(eps=0.0)


def test_adam_with_its_betas_and_eps_set_and_adadelta_with_its_rho_train(corpus, tmp_path):
    make(corpus, tmp_path / "adam", optimizer="adam", lr=1e-2, beta1=0.5, beta2=0.99, eps=1e-6, max_steps=30,
         eval_every=30).fit()
    make(corpus, tmp_path / "adadelta", optimizer="adadelta", lr=1.0, rho=0.95, eps=1e-5, max_steps=30,
         eval_every=30).fit()
    for run in ("adam", "adadelta"):
        seen = losses(tmp_path / run / "run")
        assert sum(seen[-5:]) / 5 < 0.85 * sum(seen[:5]) / 5, (run, seen[:5], seen[-5:])


def test_weight_decay_defaults_to_0_1_for_adamw_only_and_an_explicit_value_wins():
    from rnnkit.training import build_optimizer

    def decays(**kw):
        return [g["weight_decay"] for g in build_optimizer(nn.Linear(3, 2), TrainConfig(**kw)).param_groups]

    assert decays() == [0.1, 0.0]  # the default optimizer is adamw; biases are never decayed
    assert decays(optimizer="adam") == [0.0, 0.0]
    assert decays(optimizer="sgd", weight_decay=0.01) == [0.01, 0.0]
    assert decays(weight_decay=0.0) == [0.0, 0.0]
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        TrainConfig(weight_decay=-0.1)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_reduces_the_loss(corpus, tmp_path, optimizer):
    lr = {"sgd": 1.0, "momentum": 0.3, "nesterov": 0.3, "adagrad": 0.05, "adadelta": 5.0}.get(optimizer, 1e-2)
    trainer = make(corpus, tmp_path, optimizer=optimizer, lr=lr, max_steps=30, weight_decay=1e-4)
    trainer.fit()
    seen = losses(tmp_path / "run")
    assert sum(seen[-5:]) / 5 < 0.85 * sum(seen[:5]) / 5, (optimizer, seen[:5], seen[-5:])


def test_learning_rate_schedules_warm_up_then_decay_as_documented():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 0.0) == pytest.approx(1.0)
    assert learning_rate(cfg, 50, 0.5) == pytest.approx(0.55)
    assert learning_rate(cfg, 99, 1.0) == pytest.approx(0.1)
    step = TrainConfig(lr=1.0, warmup_steps=0, lr_schedule="step", lr_decay=0.5, lr_decay_every=100)
    assert [learning_rate(step, s, 0) for s in (0, 99, 100, 250)] == [1.0, 1.0, 0.5, 0.25]
    zaremba = TrainConfig(lr=1.0, warmup_steps=0, lr_schedule="step", lr_decay=0.5, lr_decay_every=100,
                          lr_decay_start=400)  # halve after epoch 4 of 100 steps, then every epoch
    assert [learning_rate(zaremba, s, 0) for s in (0, 399, 400, 499, 500)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    const = TrainConfig(lr=0.3, warmup_steps=0, lr_schedule="constant")
    assert learning_rate(const, 1000, 0.9) == 0.3


def test_clipping_bounds_the_update(corpus, tmp_path):
    trainer = make(corpus, tmp_path, max_steps=1, optimizer="sgd", lr=1.0, warmup_steps=0, clip_norm=1e-3)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(trainer.model.parameters(), before)])
    assert moved.norm().item() == pytest.approx(1e-3, rel=1e-3)


def test_l1_adds_its_subgradient_to_weight_matrices_only(corpus, tmp_path):
    def one_step(name, l1):  # plain SGD, no clipping: the update is -lr * (g + l1 * sign(w))
        trainer = make(corpus, tmp_path, name, max_steps=1, optimizer="sgd", lr=0.5, warmup_steps=0, clip_norm=None,
                       l1=l1)
        before = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
        trainer.fit()
        return before, {k: p.detach() for k, p in trainer.model.named_parameters()}

    before, plain = one_step("plain", 0.0)
    _, penalised = one_step("l1", 0.01)
    for k, w in before.items():
        expected = plain[k] - 0.5 * 0.01 * w.sign() if w.dim() >= 2 else plain[k]  # biases untouched
        torch.testing.assert_close(penalised[k], expected, rtol=0, atol=1e-6, msg=k)
    assert any(w.dim() >= 2 and w.abs().sum() > 0 for w in before.values())


def test_run_folder_round_trip_and_corruption(corpus, tmp_path):
    trainer = make(corpus, tmp_path, max_steps=20)
    trainer.fit()
    model, tok, doc = load_run(tmp_path / "run")
    assert doc.model.hidden_size == 32 and tok.vocab_size == trainer.data.vocab_size
    x = trainer.data.val[:50].view(1, -1)
    trainer.model.cpu().eval()
    torch.testing.assert_close(model.eval()(x)[0].logits, trainer.model(x)[0].logits)
    best = tmp_path / "run" / BEST
    raw = bytearray(best.read_bytes())
    raw[-10] ^= 0xFF  # flip one byte of the weights
    best.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / LAST).write_bytes((tmp_path / "run" / LAST).read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_tensors(tmp_path / "run" / LAST)
    cfg = tmp_path / "run" / "config.json"
    doc = json.loads(cfg.read_text())
    doc["format_version"] = 99
    cfg.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="format version 99; this rnnkit .* reads versions 1 to 3"):
        read_run(tmp_path / "run")


def test_the_run_records_each_layers_engine_and_is_loaded_onto_it_unless_another_is_asked(corpus, tmp_path):
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=32))
    model = LanguageModel(data.vocab_size, **{**SMALL, "cell": "gru"})
    cfg = LanguageModelTraining(max_steps=2, eval_every=2, sample_length=0, device="cpu")
    trainer = Trainer(model, data, cfg, out=tmp_path / "run", quiet=True)
    assert trainer.engines == {"rnn": "explicit"} and model.rnn.engine == "auto"  # the model is left as it was
    trainer.fit()
    config = tmp_path / "run" / "config.json"
    assert json.loads(config.read_text())["engines"] == {"rnn": "explicit"}
    doc = json.loads(config.read_text())
    doc["engines"] = {"rnn": "fused"}  # as if an earlier rnnkit had chosen the fused engine
    config.write_text(json.dumps(doc))
    assert load_run(tmp_path / "run")[0].rnn.engine == "fused"
    assert load_run(tmp_path / "run", engine="explicit")[0].rnn.engine == "explicit"
    doc["engines"] = {"rnn": "warp"}
    config.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="incomplete or altered"):
        load_run(tmp_path / "run")


def test_early_stopping_after_patience_evaluations_without_improvement(corpus, tmp_path):
    # an lr far below float32 resolution leaves the weights, hence the validation loss, unchanged
    trainer = make(corpus, tmp_path, optimizer="sgd", lr=1e-20, warmup_steps=0, eval_every=5,
                   max_steps=1000, patience=2)
    result = trainer.fit()
    assert result["stopped"] == "early stopping" and result["step"] == 15


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="this CPU has no bf16 matrix units")
@pytest.mark.parametrize("engine", ["fused", "explicit"])
def test_bf16_autocast_loss_and_gradients_match_fp32_within_bf16_tolerance(corpus, engine):
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=32))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, **{**SMALL, "engine": engine})
    x, y = next(data.batcher(0).batches(0))
    grads = {}
    for precision in ("fp32", "bf16"):
        model.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = model.loss(StreamBatch(x, y))
        assert loss.dtype == torch.float32  # the loss stays fp32 under autocast
        loss.backward()
        grads[precision] = (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert grads["bf16"][0] == pytest.approx(grads["fp32"][0], rel=1e-2)
    cosine = torch.nn.functional.cosine_similarity(grads["bf16"][1], grads["fp32"][1], dim=0)
    assert cosine > 0.99


def test_bf16_is_refused_where_the_hardware_lacks_it(monkeypatch):
    import rnnkit.training.device as device_module

    monkeypatch.setattr(device_module, "bf16_supported", lambda device: False)
    assert device_module.resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ConfigError, match="no bf16 matrix units .* use --precision fp32 or auto"):
        device_module.resolve_precision("bf16", torch.device("cpu"))


def test_clip_value_bounds_every_gradient_element(corpus, tmp_path):
    trainer = make(corpus, tmp_path, max_steps=1, optimizer="sgd", lr=1.0, warmup_steps=0,
                   clip_norm=None, clip_value=1e-4)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(trainer.model.parameters(), before)])
    assert moved.abs().max().item() == pytest.approx(1e-4, rel=1e-3)


def test_a_run_with_the_lectures_settings_resumes_exactly(corpus, tmp_path):
    """Adadelta's state, the skip connections' carried history, learned leak rates, label
    smoothing and the noise draws all come back from the checkpoint: a stopped and resumed run
    logs the losses of one that never stopped."""
    def run(name, stop=None, init_seed=0):
        data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=32))
        torch.manual_seed(init_seed)
        model = LanguageModel(data.vocab_size, cell="leaky", hidden_size=16, num_layers=1, embedding_dim=8,
                              dropout=0.0, learn_leak=True, skip_steps=3, input_noise=0.1, weight_noise=0.02,
                              label_smoothing=0.1)
        cfg = LanguageModelTraining(max_steps=16, eval_every=8, log_every=1, sample_length=0, lr=1.0,
                                    optimizer="adadelta", rho=0.95, eps=1e-5, device="cpu", seed=0)
        t = Trainer(model, data, cfg, out=tmp_path / name, quiet=True)
        if stop:
            t.callbacks.append(lambda t: t.request_stop() if t.step == stop else None)
        return t

    run("straight").fit()
    assert run("stopped", stop=5).fit()["stopped"] == "interrupted"
    run("stopped", init_seed=99).fit(resume=True)
    assert losses(tmp_path / "stopped") == losses(tmp_path / "straight")
    model, _, config = load_run(tmp_path / "straight")
    assert (config.model.skip_steps, config.model.learn_leak, config.train.rho) == (3, True, 0.95)
    assert model.rnn.cells[0].weight_skip.shape == (16, 16)


def test_the_optimizer_flags_reach_the_optimizer_rnnkit_train_builds(corpus, tmp_path, cli_here, tiny_lm_flags,
                                                                      monkeypatch):
    from rnnkit.training import build_optimizer
    from rnnkit.training import trainer as trainer_module

    built = []

    def recording(model, cfg):
        built.append(build_optimizer(model, cfg))
        return built[-1]

    monkeypatch.setattr(trainer_module, "build_optimizer", recording)
    result = cli_here("train", corpus, "--out", tmp_path / "adadelta", "--optimizer", "adadelta", "--lr", 1,
                      "--rho", 0.5, "--eps", 1e-4, "--max-steps", 2, *tiny_lm_flags)
    assert result.returncode == 0, result.stderr
    assert type(built[-1]) is torch.optim.Adadelta
    assert all((g["rho"], g["eps"]) == (0.5, 1e-4) for g in built[-1].param_groups)
    result = cli_here("train", corpus, "--out", tmp_path / "adam", "--optimizer", "adam", "--beta1", 0.7,
                      "--beta2", 0.95, "--max-steps", 2, *tiny_lm_flags)
    assert result.returncode == 0, result.stderr
    assert all(g["betas"] == (0.7, 0.95) and g["eps"] == 1e-8 for g in built[-1].param_groups)
    assert read_run(tmp_path / "adam").train.beta1 == 0.7
