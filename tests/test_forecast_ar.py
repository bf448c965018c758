"""--ar-order: the linear autoregressive component beside the recurrent encoder
(LSTNet's highway). Oracles: with the recurrent part silenced the forecaster is
exactly a linear AR(q), in one pass and in multi-step forecasts; on a generated
AR(2) series it recovers the coefficients; on a nonlinear series it still beats
the best linear AR(q) fitted by least squares."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.data.batches import ForecastBatch
from rnnkit.data.forecast import ForecastConfig, ForecastData
from rnnkit.models.forecaster import Forecaster
from rnnkit.tasks import Trainer
from rnnkit.tasks.forecast import ForecastTraining
from test_forecast import PHI, TINY, ar2


def linear_ar(model: Forecaster) -> Forecaster:
    """The model with the head's output zeroed: what remains of the mean is the AR component."""
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.autoregressive.weight.normal_()
        model.autoregressive.bias.normal_()
    return model.eval()


def ar_by_hand(values: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Σ_(j=1..q) a_j x_(t-j+1) + a_0 for the newest step of ``values`` (C, ...) per channel; weight (C, q)."""
    return (weight * values).sum(-1) + bias


@pytest.mark.parametrize("likelihood", ["gaussian", "squared"])
def test_with_the_recurrent_part_silenced_the_mean_is_exactly_a_linear_ar(likelihood):
    torch.manual_seed(0)
    q, C = 3, 2
    model = linear_ar(Forecaster(C, 1, hidden_size=8, ar_order=q, likelihood=likelihood))
    x, k = torch.randn(4, 7, C), torch.randn(4, 7, 1)
    prediction, _ = model(x, k)
    w = model.autoregressive.weight[:, 0].detach().numpy()  # (C, q), oldest first
    b = model.autoregressive.bias.detach().numpy()
    padded = np.concatenate([np.zeros((4, q - 1, C)), x.numpy()], 1)  # values before the window read as 0
    for t in range(7):
        window = padded[:, t:t + q].transpose(0, 2, 1)  # (B, C, q)
        np.testing.assert_allclose(prediction.mean[:, t].detach().numpy(), ar_by_hand(window, w, b), atol=1e-5)


def test_a_silenced_squared_error_forecast_is_the_ar_recursion():
    torch.manual_seed(0)
    q = 2
    model = linear_ar(Forecaster(1, 0, hidden_size=8, ar_order=q, likelihood="squared"))
    x = torch.randn(3, 5, 1)
    paths = model.forecast(x, torch.zeros(3, 5 + 4 - 1, 0), horizon=4)  # (B, 1, 4, 1)
    w, b = model.autoregressive.weight[0, 0].detach().numpy(), model.autoregressive.bias[0].item()
    history = list(x[:, :, 0].numpy().T)  # T arrays of (B,)
    for h in range(4):
        step = w[0] * history[-2] + w[1] * history[-1] + b
        np.testing.assert_allclose(paths[:, 0, h, 0].numpy(), step, atol=1e-5)
        history.append(step)


def train(y: np.ndarray, folder, steps: int, silence_head=False, **model) -> tuple[Forecaster, ForecastData]:
    np.save(folder / "y.npy", y[:, None])
    data = ForecastData.from_file(folder / "y.npy", ForecastConfig(seq_len=16, batch_size=64, val_fraction=0.2,
                                                                   test_fraction=0.1))
    torch.manual_seed(0)
    net = Forecaster(1, 0, **model)
    if silence_head:  # the recurrent part outputs 0 and stays so: the AR component alone fits the series
        for p in net.head.parameters():
            p.data.zero_()
            p.requires_grad_(False)
    config = ForecastTraining(max_steps=steps, eval_every=steps, lr=1e-2, warmup_steps=10, device="cpu",
                              precision="fp32", log_every=steps)
    Trainer(net, data, config, out=folder / "run", quiet=True).fit()
    return net.eval(), data


def test_on_an_ar2_series_the_component_trained_by_the_trainer_recovers_the_coefficients(tmp_path):
    model, _ = train(ar2(3000), tmp_path, 200, silence_head=True, hidden_size=4, ar_order=2, likelihood="squared")
    newest_first = model.autoregressive.weight[0, 0].detach().numpy()[::-1]  # z-scoring keeps the coefficients
    np.testing.assert_allclose(newest_first, PHI, atol=0.06)


def least_squares_ar_mse(z: np.ndarray, q: int, train_end: int, targets: np.ndarray) -> float:
    """The one-step MSE at ``targets`` of the AR(q) (with intercept) fitted by least squares on z[:train_end]."""
    def design(ends):
        return np.hstack([np.stack([z[t - q:t] for t in ends]), np.ones((len(ends), 1))]), z[ends]
    X, y = design(np.arange(q, train_end))
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    X, y = design(targets)
    return float(((X @ coef - y) ** 2).mean())


def test_on_a_nonlinear_series_the_recurrent_part_still_learns(tmp_path):
    rng = np.random.default_rng(0)
    y = np.zeros(3000)
    for t in range(1, len(y)):  # a nonlinear map: the best linear AR explains little of it
        y[t] = 1.8 * np.sin(2.2 * y[t - 1]) + rng.normal(0, 0.2)
    model, data = train(y, tmp_path, 300, hidden_size=16, ar_order=2, likelihood="squared")
    ends = np.asarray(data.val)
    batch = data.windows(ends)
    with torch.no_grad():
        mean = model(batch.x, batch.covariates)[0].mean[:, -1, 0].numpy()
    model_mse = float(((mean - data.z[ends, 0]) ** 2).mean())
    linear_mse = least_squares_ar_mse(data.z[:, 0].astype(float), 2, data.val.start, ends)
    assert model_mse < 0.5 * linear_mse, (model_mse, linear_mse)


def test_ar_order_trains_and_forecasts_from_the_command_line_and_is_refused_elsewhere(tmp_path, cli_here,
                                                                                              user_error):
    np.save(tmp_path / "s.npy", ar2(200)[:, None])
    flags = [*TINY, "--ar-order", 3, "--scheduled-sampling", "linear", "--eval-every", 2]
    result = cli_here("train", tmp_path / "s.npy", *flags, "--out", tmp_path / "run", "--max-steps", 4)
    assert result.returncode == 0, result.stderr
    assert load_file(tmp_path / "run" / "model.safetensors")["autoregressive.weight"].shape == (1, 1, 3)
    result = cli_here("predict", tmp_path / "run", tmp_path / "s.npy", "--horizon", 3, "--out", tmp_path / "f.npy")
    assert result.returncode == 0 and len(np.load(tmp_path / "f.npy")) == 203, result.stderr
    (tmp_path / "c.tsv").write_text("a\tx y\nb\ty z\n")
    user_error(cli_here("train", tmp_path / "c.tsv", "--task", "classify", "--ar-order", 2, "--out", tmp_path / "c"),
               "--ar-order needs --task forecast, so here it would do nothing; drop it")
    user_error(cli_here("train", tmp_path / "s.npy", *TINY, "--ar-order", -1, "--out", tmp_path / "n"),
               "--ar-order must be >= 0 (0 = no autoregressive component) or auto; got -1")
    assert not (tmp_path / "c").exists() and not (tmp_path / "n").exists()


def test_the_step_by_step_loss_of_scheduled_sampling_adds_the_same_ar_term_as_the_whole_window():
    torch.manual_seed(0)
    model = linear_ar(Forecaster(2, 1, hidden_size=8, ar_order=3)).train()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3)  # the recurrent part speaks again
    batch = ForecastBatch(torch.randn(4, 9, 2), torch.randn(4, 9, 1), torch.randn(4, 9, 2))
    model.teacher_forcing = 1.0 - 1e-12  # the step-by-step path, reading the observed values all the same
    step_by_step = model.loss(batch)[0]
    model.teacher_forcing = 1.0
    assert step_by_step.item() == pytest.approx(model.loss(batch)[0].item(), rel=1e-5)
