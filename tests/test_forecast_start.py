"""--ar-order's start from the linear model (Zhang 2003's hybrid): before any
gradient step the AR component is the least-squares AR(q) of the training part
and the recurrent part's output is 0, so the untrained model forecasts as that
linear model; ``auto`` picks the order by AIC; the AR weights take no weight
decay; the start is validated at step 0 and kept when training only makes it worse."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.data.forecast import ForecastConfig, ForecastData
from rnnkit.models.linear_ar import choose_order, fit_linear_ar
from rnnkit.tasks import Trainer, named, read_run
from rnnkit.tasks.forecast import ForecastTraining
from rnnkit.training.optim import build_optimizer
from rnnkit.training.runs import BEST, load_tensors
from test_forecast import TINY

AR3 = (0.5, -0.4, 0.3)


def ar_series(n: int, phi=AR3, sigma: float = 1.0, mean: float = 3.0, seed: int = 0) -> np.ndarray:
    """y_t - mean = Σ_j φ_j (y_(t-j) - mean) + ε_t, ε_t ~ N(0, σ²)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(len(phi), n):
        y[t] = sum(p * y[t - 1 - j] for j, p in enumerate(phi)) + rng.normal(0, sigma)
    return y + mean


def least_squares_by_hand(z: np.ndarray, q: int) -> np.ndarray:
    """[a_1 .. a_q, a_0] (newest lag first, the intercept last) of one channel z (n,) by np.linalg.lstsq."""
    X = np.array([[*z[t - q:t][::-1], 1.0] for t in range(q, len(z))])
    return np.linalg.lstsq(X, z[q:], rcond=None)[0]


def data_and_model(folder, y: np.ndarray, q, likelihood="gaussian", seq_len=16):
    np.save(folder / "y.npy", y[:, None])
    data = ForecastData.from_file(folder / "y.npy", ForecastConfig(seq_len=seq_len, batch_size=32, val_fraction=0.2,
                                                                   test_fraction=0.1))
    task = named("forecast")
    model_cfg, notes = task.decide_model(task.model_config(hidden_size=8, ar_order=q, likelihood=likelihood), data)
    torch.manual_seed(0)
    return data, task, task.build_model(model_cfg, data.tokenizer), notes


def test_the_untrained_model_forecasts_one_step_as_the_least_squares_ar(tmp_path):
    data, task, model, _ = data_and_model(tmp_path, ar_series(1500), 3)
    assert task.start(model, data)
    model.eval()
    train_z = data.z[:data.tokenizer.train_length, 0].astype(np.float64)
    coef = least_squares_by_hand(train_z, 3)
    ends = np.asarray(data.val)
    batch = data.windows(ends)
    with torch.no_grad():
        prediction, _ = model(batch.x, batch.covariates)
    by_hand = np.array([data.z[e - 3:e, 0][::-1] @ coef[:3] + coef[3] for e in ends])
    np.testing.assert_allclose(prediction.mean[:, -1, 0].numpy(), by_hand, atol=1e-6)
    residual = train_z[3:] - np.array([[*train_z[t - 3:t][::-1], 1] for t in range(3, len(train_z))]) @ coef
    np.testing.assert_allclose(prediction.variance[:, -1, 0].numpy(), (residual ** 2).mean(), rtol=1e-4)
    # z-scoring keeps an AR's coefficients: the fit is near the process's
    np.testing.assert_allclose(coef[:3], AR3, atol=0.08)


def test_a_differenced_series_fits_the_changes_past_the_first_placeholder_row(tmp_path):
    y = np.cumsum(ar_series(800, phi=(0.6,), mean=0.2))  # ARIMA(1,1,0) with drift
    np.save(tmp_path / "y.npy", y[:, None])
    data = ForecastData.from_file(tmp_path / "y.npy", ForecastConfig(seq_len=8, difference=True))
    z = data.z[:data.tokenizer.train_length].astype(np.float64)
    assert z[0, 0] == 0.0  # the placeholder, not a change
    fit = fit_linear_ar(z, 1, first=1)
    assert fit.rows == len(z) - 2
    np.testing.assert_allclose(fit.weight[0, 0], least_squares_by_hand(z[1:, 0], 1)[0], atol=1e-9)
    assert abs(fit.weight[0, 0] - 0.6) < 0.1


@pytest.mark.parametrize("p", [2, 5])
def test_auto_picks_the_order_of_a_generated_ar_process(tmp_path, p):
    phi = {2: (0.6, -0.3), 5: (0.3, 0.0, 0.0, 0.2, -0.35)}[p]
    data, _, model, notes = data_and_model(tmp_path, ar_series(3000, phi=phi), "auto", seq_len=24)
    assert model.config.ar_order in (p, p + 1), notes
    assert notes == [f"--ar-order auto: {model.config.ar_order} (AIC over 1..23)"]
    q, scores = choose_order(data.z[:data.tokenizer.train_length].astype(np.float64), 10)
    assert scores[p] < scores[p - 1] - 10  # the last true lag is clearly needed


def test_weight_decay_leaves_the_ar_weights_alone(tmp_path):
    _, _, model, _ = data_and_model(tmp_path, ar_series(300), 3)
    groups = build_optimizer(model, ForecastTraining(weight_decay=0.1, optimizer="adamw")).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.autoregressive.weight) not in decayed and id(model.head.weight) in decayed


def test_the_start_is_validated_at_step_0_and_kept_when_training_makes_it_worse(tmp_path):
    data, _, model, _ = data_and_model(tmp_path, ar_series(1000), 3, likelihood="squared")
    config = ForecastTraining(max_steps=6, eval_every=3, lr=30.0, warmup_steps=0, optimizer="sgd", device="cpu",
                              precision="fp32", log_every=3, clip_norm=None)  # a rate that wrecks the fit
    trainer = Trainer(model, data, config, out=tmp_path / "run", quiet=True)
    result = trainer.fit()
    tensors, meta = load_tensors(tmp_path / "run" / BEST)
    start_weight = least_squares_by_hand(data.z[:data.tokenizer.train_length, 0].astype(np.float64), 3)[:3][::-1]
    assert meta["step"] == 0 and result["best_val"] == pytest.approx(meta["val_loss"])
    np.testing.assert_allclose(tensors["autoregressive.weight"][0, 0].numpy(), start_weight, atol=1e-5)


def test_auto_from_the_command_line_says_its_order_and_bad_orders_are_refused(tmp_path, cli_here, user_error):
    np.save(tmp_path / "s.npy", ar_series(400, phi=(0.6, -0.3))[:, None])
    result = cli_here("train", tmp_path / "s.npy", *TINY, "--ar-order", "auto", "--out", tmp_path / "run",
                      "--max-steps", 2, "--eval-every", 2)
    assert result.returncode == 0, result.stderr
    q = read_run(tmp_path / "run").model.ar_order
    assert isinstance(q, int) and 1 <= q <= 11
    assert f"--ar-order auto: {q} (AIC over 1..11)" in result.stdout.splitlines()[0]
    assert load_file(tmp_path / "run" / "model.safetensors")["autoregressive.weight"].shape == (1, 1, q)
    user_error(cli_here("train", tmp_path / "s.npy", *TINY, "--ar-order", 12, "--out", tmp_path / "a"),
               "--ar-order 12 reads 12 values inside a window of --seq-len 12; give --ar-order below 12 "
               "(or a longer --seq-len)")
    np.save(tmp_path / "short.npy", ar_series(40)[:, None])
    user_error(cli_here("train", tmp_path / "short.npy", *TINY, "--ar-order", 11, "--out", tmp_path / "b"),
               f"{tmp_path / 'short.npy'}: the training part has 32 steps, too few to fit --ar-order 11 by least "
               f"squares (it needs 35); lower --ar-order or give a longer series")
    user_error(cli_here("train", tmp_path / "s.npy", *TINY, "--ar-order", "two", "--out", tmp_path / "c"),
               "--ar-order must be >= 0 (0 = no autoregressive component) or auto; got two")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_the_ar_term_stays_in_fp32_under_bf16_training(tmp_path):
    data, task, model, _ = data_and_model(tmp_path, ar_series(500), 3)
    task.start(model, data)
    x = data.windows(np.asarray(data.val)).x
    exact = model.autoregression(x)
    with torch.autocast("cpu", torch.bfloat16):
        under_bf16 = model.autoregression(x)
    assert under_bf16.dtype == torch.float32
    torch.testing.assert_close(under_bf16, exact, atol=1e-6, rtol=0)
