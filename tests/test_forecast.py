"""--task forecast: generated series with known answers (an AR(2) process
whose conditional mean and noise variance the model must recover, a seasonal
series where it must beat the seasonal naive forecast), the scores against
closed forms, scheduled sampling, the command line (train, eval, predict,
resume) and every bad input's one-line error."""

import json
import math

import numpy as np
import pytest
import torch

from rnnkit.data.calendar import calendar_features, decide_season, future_times, time_step
from rnnkit.data.forecast import ForecastConfig, ForecastData
from rnnkit.data.batches import ForecastBatch
from rnnkit.models.forecaster import Forecaster
from rnnkit.tasks import Trainer, load_run
from rnnkit.tasks.forecast import ForecastTraining
from rnnkit.training.forecasting import crps_samples, pinball, rolling_origin, seasonal_naive

PHI, SIGMA = (0.6, -0.3), 0.5
TINY = ["--task", "forecast", "--hidden-size", "16", "--batch-size", "16", "--seq-len", "12", "--device", "cpu",
        "--precision", "fp32"]


def ar2(n: int, seed: int = 0) -> np.ndarray:
    """y_t = 0.6 y_(t-1) - 0.3 y_(t-2) + ε_t, ε_t ~ N(0, 0.5²)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = PHI[0] * y[t - 1] + PHI[1] * y[t - 2] + rng.normal(0, SIGMA)
    return y


def write_csv(path, values: np.ndarray, start="2001-01", unit="M", names=("value",), extra=None) -> None:
    """A CSV with a date column (monthly by default) and the channels ``values`` (T, C)."""
    values = values.reshape(len(values), -1)
    dates = np.datetime64(start) + np.arange(len(values)).astype(f"timedelta64[{unit}]")
    header = ["date", *names, *(extra or {})]
    lines = [",".join(header)]
    for t, row in enumerate(values):
        cells = [str(dates[t]), *(f"{v:.5f}" for v in row), *(f"{col[t]:.3f}" for col in (extra or {}).values())]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def seasonal(n: int, seed: int = 0) -> np.ndarray:
    """A period-12 wave with white noise: the seasonal naive forecast's error is √2 σ, a model's can be σ."""
    rng = np.random.default_rng(seed)
    return 2 * np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(0, 0.3, n)


# -- the scores against closed forms --------------------------------------------------------------


def test_crps_from_samples_approaches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    samples = rng.normal(0.0, 1.0, 200_000)
    for y in (0.0, 0.7, -2.0):
        z = y  # σ = 1
        cdf, pdf = 0.5 * (1 + math.erf(z / math.sqrt(2))), math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        exact = z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi)  # Gneiting and Raftery 2007
        assert crps_samples(samples[None], np.array([y]))[0] == pytest.approx(exact, abs=0.005)


def test_pinball_and_seasonal_naive_by_hand():
    assert pinball(np.array([[1.0]]), np.array([3.0]), [0.9])[0, 0] == pytest.approx(0.9 * 2)
    assert pinball(np.array([[5.0]]), np.array([3.0]), [0.9])[0, 0] == pytest.approx(0.1 * 2)
    values = np.arange(20.0)[:, None]
    naive = seasonal_naive(values, np.array([10]), 5, 4)[0, :, 0]  # from origin 10, season 4
    assert naive.tolist() == [6, 7, 8, 9, 6]  # the last observed season repeated


def test_the_gaussian_head_is_the_negative_log_likelihood():
    model = Forecaster(2, 0, hidden_size=8)
    mean, var, y = torch.randn(3, 4, 2), torch.rand(3, 4, 2) + 0.1, torch.randn(3, 4, 2)
    by_hand = (0.5 * (torch.log(2 * math.pi * var) + (y - mean) ** 2 / var)).mean()
    assert model.nll(mean, var, y).item() == pytest.approx(by_hand.item(), rel=1e-5)


# -- the time axis and the season -------------------------------------------------------------------


def test_a_monthly_step_continues_by_months_and_implies_a_season_of_twelve():
    times = np.array(["2020-11-15", "2020-12-15", "2021-01-15"], dtype="datetime64[D]")
    step = time_step(times)
    assert step == ("M", 1.0)
    assert [str(t)[:10] for t in future_times(times, step, 2)] == ["2021-02-15", "2021-03-15"]
    assert decide_season(np.zeros((3, 1)), step)[0] == 12


def test_the_season_of_a_series_without_dates_is_its_autocorrelation_peak():
    rng = np.random.default_rng(1)
    wave = np.sin(2 * np.pi * np.arange(600) / 11) + 0.2 * rng.normal(size=600)
    assert decide_season(wave[:, None], None)[0] == 11
    assert decide_season(rng.normal(size=(600, 1)), None)[0] == 1  # white noise: no season


def test_calendar_features_are_the_sin_and_cos_of_their_period():
    times = np.array(["2021-01-04T06:00", "2021-01-10T18:00"], dtype="datetime64[m]")  # a Monday, a Sunday
    f = calendar_features(times, ["hour", "weekday"], "f.csv")
    assert f.shape == (2, 4)
    assert f[0, :2] == pytest.approx([1.0, 0.0], abs=1e-9)  # 6 h: a quarter of the day
    assert f[0, 2:] == pytest.approx([0.0, 1.0], abs=1e-9)  # Monday is 0
    assert math.atan2(f[1, 2], f[1, 3]) == pytest.approx(2 * math.pi * 6 / 7 - 2 * math.pi)  # Sunday is 6


# -- data: the split in time and normalisation on the training part alone ----------------------------


def test_the_split_is_in_time_and_the_scaler_sees_the_training_part_only(tmp_path):
    values = np.concatenate([np.random.default_rng(0).normal(0, 1, 80), 100 + np.arange(20.0)])
    np.save(tmp_path / "s.npy", values)
    data = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5, val_fraction=0.1,
                                                                      test_fraction=0.1))
    assert (data.train, data.val, data.test) == (range(5, 80), range(80, 90), range(90, 100))
    assert data.tokenizer.mean[0] == pytest.approx(values[:80].mean())  # the jump after 80 is not seen
    batch = data.windows(np.array([7]))
    assert torch.equal(batch.x[0, 1:], batch.y[0, :-1])  # x_t is y_(t-1): teacher forcing
    assert batch.y[0, -1, 0].item() == pytest.approx(data.tokenizer.scale(values[7:8, None])[0, 0], rel=1e-5)


def test_differences_are_modelled_and_added_back_up_from_the_last_observed_value(tmp_path):
    values = np.stack([np.arange(60.0) ** 1.5, np.cos(np.arange(60.0))], 1)
    np.save(tmp_path / "s.npy", values)
    data = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5, difference=True))
    changes = np.diff(values[:data.train.stop], axis=0)
    assert data.tokenizer.mean == pytest.approx(changes.mean(0))  # fitted on the training part's changes
    o, H = 40, 6
    assert data.tokenizer.to_values(data.z[o:o + H], values[o - 1]) == pytest.approx(values[o:o + H], rel=1e-5)
    assert ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5)).tokenizer.to_values(
        data.z[o:o + H], values[o - 1]) != pytest.approx(values[o:o + H], rel=1e-2)


# -- learning a known process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ar_run(tmp_path_factory):
    """An LSTM forecaster trained on an AR(2) series (quietly, a few seconds)."""
    folder = tmp_path_factory.mktemp("ar")
    y = ar2(3000)
    np.save(folder / "ar2.npy", y[:, None])
    data = ForecastData.from_file(folder / "ar2.npy", ForecastConfig(seq_len=16, batch_size=64, val_fraction=0.1,
                                                                      test_fraction=0.3))
    torch.manual_seed(0)
    model = Forecaster(1, 0, hidden_size=16)
    config = ForecastTraining(max_steps=300, eval_every=300, lr=1e-2, warmup_steps=10, device="cpu",
                              precision="fp32", log_every=50)
    Trainer(model, data, config, out=folder / "run", quiet=True).fit()
    return model.eval(), data, y


@pytest.mark.slow
def test_the_forecaster_recovers_the_conditional_mean_and_the_noise_variance_of_an_ar2_process(ar_run):
    model, data, y = ar_run
    ends = np.asarray(data.test)
    batch = data.windows(ends)
    with torch.no_grad():
        prediction, _ = model(batch.x, batch.covariates)
    scaler = data.tokenizer
    mean = scaler.unscale(prediction.mean[:, -1].numpy())[:, 0]
    variance = prediction.variance[:, -1, 0].numpy() * scaler.std[0] ** 2
    truth = PHI[0] * y[ends - 1] + PHI[1] * y[ends - 2]  # E[y_t | the past]
    assert np.sqrt(((mean - truth) ** 2).mean()) < 0.2 * SIGMA  # predicting 0 is off by about 0.4
    assert np.sqrt(((y[ends - 1] - truth) ** 2).mean()) > 0.6 * SIGMA  # (persistence is far off)
    assert variance.mean() == pytest.approx(SIGMA ** 2, rel=0.2)


@pytest.mark.slow
def test_the_80_percent_interval_covers_about_80_percent_of_a_generated_series(ar_run):
    model, data, _ = ar_run
    scores, origins = rolling_origin(model, data, data.test.start, data.test.stop, 1, 200)
    assert origins == len(data.test)
    assert 0.72 <= scores.coverage_80 <= 0.88
    assert scores.mase < scores.naive_mase


# -- scheduled sampling ------------------------------------------------------------------------------


def test_scheduled_sampling_feeds_the_models_own_draws_instead_of_the_observed_values():
    torch.manual_seed(0)
    model = Forecaster(1, 0, hidden_size=8).train()
    x, y = torch.randn(4, 6, 1), torch.randn(4, 6, 1)
    batch = ForecastBatch(x, torch.zeros(4, 6, 0), y)
    other = ForecastBatch(torch.cat([x[:, :1], torch.randn(4, 5, 1)], 1), batch.covariates, y)  # x_2.. differ

    def loss(b, forcing):
        model.teacher_forcing = forcing
        torch.manual_seed(1)
        return model.loss(b)[0].item()

    assert loss(batch, 0.0) == loss(other, 0.0)  # only x_1 is read: the rest are its own draws
    assert loss(batch, 1.0) != loss(other, 1.0)  # teacher forcing reads them all
    assert loss(batch, 0.5) != loss(batch, 1.0)


def test_train_lowers_the_teacher_forcing_on_the_seq2seq_schedule(tmp_path, cli_here):
    write_csv(tmp_path / "s.csv", seasonal(200))
    result = cli_here("train", tmp_path / "s.csv", *TINY, "--out", tmp_path / "run", "--max-steps", 20,
                      "--log-every", 5, "--eval-every", 20, "--scheduled-sampling", "linear", "--sampling-steps", 10)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    forcing = [r["teacher_forcing"] for r in rows if "teacher_forcing" in r]
    assert forcing == sorted(forcing, reverse=True) and forcing[0] < 1 and forcing[-1] == pytest.approx(0.05)


# -- the command line ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seasonal_run(tmp_path_factory):
    """A run on a monthly seasonal series, trained through `rnnkit train` (a few seconds)."""
    from conftest import run_main

    folder = tmp_path_factory.mktemp("seasonal")
    write_csv(folder / "s.csv", seasonal(600))
    result = run_main("train", folder / "s.csv", *TINY, "--out", folder / "run", "--max-steps", 250,
                      "--eval-every", 250, "--lr", "0.01", "--test-fraction", "0.2")
    assert result.returncode == 0, result.stderr
    return folder, result.stdout


def test_train_says_the_season_and_eval_beats_the_seasonal_naive_forecast(seasonal_run, cli_here):
    folder, out = seasonal_run
    assert "season 12 (auto: the time column's step (monthly))" in out.splitlines()[0]
    result = cli_here("eval", folder / "run", "--horizon", 3)
    assert result.returncode == 0, result.stderr
    first, scores = result.stdout.splitlines()
    assert "origins at horizon 3, season 12" in first and "MASE" in scores and "80% coverage" in scores
    result = cli_here("eval", folder / "run", "--horizon", 3, "--json")
    scores = json.loads(result.stdout)
    assert scores["mase"] < 1 and scores["mase"] < scores["naive_mase"]
    assert 0.6 <= scores["coverage_80"] <= 0.95


def test_predict_writes_the_forecast_after_the_history_in_the_inputs_format(seasonal_run, cli_here, tmp_path):
    folder, _ = seasonal_run
    lines = (folder / "s.csv").read_text().splitlines()
    (tmp_path / "h.csv").write_text("\n".join(lines[:101]) + "\n")  # header and 100 months
    result = cli_here("predict", folder / "run", tmp_path / "h.csv", "--horizon", 4, "--quantiles", "0.1,0.9",
                      "--out", tmp_path / "f.csv", "--plot", tmp_path / "f.png")
    assert result.returncode == 0, result.stderr
    out = (tmp_path / "f.csv").read_text().splitlines()
    assert out[0] == "date,value,value_q0.1,value_q0.9"
    assert out[1:101] == [line + ",," for line in lines[1:101]]  # the history as it was
    forecast = [row.split(",") for row in out[101:]]
    assert [r[0] for r in forecast] == ["2009-05", "2009-06", "2009-07", "2009-08"]  # the months continued
    truth = [float(line.split(",")[1]) for line in lines[101:105]]
    point = [float(r[1]) for r in forecast]
    assert np.abs(np.array(point) - truth).mean() < 0.6  # the wave's amplitude is 2, its noise 0.3
    assert all(float(r[2]) < float(r[1]) < float(r[3]) for r in forecast)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_the_same_trajectory(tmp_path, cli_here):
    write_csv(tmp_path / "s.csv", seasonal(200))
    common = ["train", tmp_path / "s.csv", *TINY, "--eval-every", 3, "--lr-schedule", "constant"]
    assert cli_here(*common, "--out", tmp_path / "once", "--max-steps", 6).returncode == 0
    assert cli_here(*common, "--out", tmp_path / "twice", "--max-steps", 3).returncode == 0
    result = cli_here(*common, "--out", tmp_path / "twice", "--max-steps", 6, "--resume")
    assert result.returncode == 0, result.stderr
    once, _, _ = load_run(tmp_path / "once", which="last.safetensors")
    twice, _, _ = load_run(tmp_path / "twice", which="last.safetensors")
    for (name, a), b in zip(once.state_dict().items(), twice.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_calendar_features_and_known_columns_are_inputs_and_a_forecast_needs_their_future(tmp_path, cli_here,
                                                                                          user_error):
    n = 160
    promo = (np.arange(n + 3) % 5 == 0).astype(float)
    values = seasonal(n) + promo[:n]
    write_csv(tmp_path / "s.csv", values, start="2020-01-01", unit="D", extra={"promo": promo[:n]})
    result = cli_here("train", tmp_path / "s.csv", *TINY, "--out", tmp_path / "run", "--max-steps", 4,
                      "--eval-every", 4, "--covariate-columns", "promo", "--calendar", "weekday,month")
    assert result.returncode == 0, result.stderr
    assert "1 channel (value), 5 known inputs" in result.stdout.splitlines()[0]
    lines = (tmp_path / "s.csv").read_text().splitlines()
    (tmp_path / "future.csv").write_text("\n".join(lines + ["2020-06-09,,1.000", "2020-06-10,,0.000"]) + "\n")
    result = cli_here("predict", tmp_path / "run", tmp_path / "future.csv", "--horizon", 2)
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1].split(",")  # date, value, promo, value_q0.1, value_q0.5, value_q0.9
    assert (last[0], last[2], len(last)) == ("2020-06-10", "0.000", 6)  # the given covariate kept
    user_error(cli_here("predict", tmp_path / "run", tmp_path / "future.csv", "--horizon", 3),
               "future.csv: --horizon 3 needs the covariates promo of 3 rows after the last observed one")


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import run_main

    folder = tmp_path_factory.mktemp("tiny")
    write_csv(folder / "s.csv", seasonal(120), names=("a",))
    result = run_main("train", folder / "s.csv", *TINY, "--out", folder / "run", "--max-steps", 2,
                      "--eval-every", 2)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize("cell,message", [
    ("nan", "row 31, column 'value' is 'nan'; fill or drop missing and infinite values first"),
    ("inf", "row 31, column 'value' is 'inf'; fill or drop missing and infinite values first"),
    ("", "row 31, column 'value' is empty; fill or drop missing and infinite values first"),
])
def test_a_missing_or_infinite_value_is_one_line_naming_the_file_and_row(tmp_path, cli_here, user_error, cell,
                                                                         message):
    write_csv(tmp_path / "s.csv", seasonal(100))
    lines = (tmp_path / "s.csv").read_text().splitlines()
    lines[31] = lines[31].split(",")[0] + "," + cell
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    user_error(cli_here("train", tmp_path / "s.csv", *TINY, "--out", tmp_path / "run"), f"s.csv: {message}")
    assert not (tmp_path / "run").exists()


def test_a_constant_channel_and_a_series_shorter_than_a_window_are_refused(tmp_path, cli_here, user_error):
    write_csv(tmp_path / "flat.csv", np.stack([seasonal(100), np.full(100, 3.0)], 1), names=("a", "b"))
    user_error(cli_here("train", tmp_path / "flat.csv", *TINY, "--out", tmp_path / "run"),
               "flat.csv: channel 'b' is constant (3) over the training part; drop it from --channels")
    write_csv(tmp_path / "short.csv", seasonal(14))
    user_error(cli_here("train", tmp_path / "short.csv", *TINY, "--out", tmp_path / "run"),
               "short.csv: the training part has 12 samples, fewer than one window of --seq-len 12 and the value")
    assert not (tmp_path / "run").exists()


def test_predict_refuses_a_short_history_a_long_horizon_and_other_channels(tiny_run, tmp_path, cli_here,
                                                                           user_error):
    run, out = tiny_run / "run", tmp_path / "f.csv"
    lines = (tiny_run / "s.csv").read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:6]) + "\n")
    user_error(cli_here("predict", run, tmp_path / "short.csv", "--out", out),
               "short.csv has 5 observed rows, fewer than one window (--seq-len 12)")
    user_error(cli_here("predict", run, tiny_run / "s.csv", "--horizon", 97, "--out", out),
               "--horizon 97 is longer than the training part of")
    (tmp_path / "other.csv").write_text("\n".join(["date,b"] + lines[1:]) + "\n")
    user_error(cli_here("predict", run, tmp_path / "other.csv", "--out", out),
               "other.csv has channels b; the run was trained on a: give a file with the same columns")
    user_error(cli_here("predict", run, tiny_run / "s.csv", "--quantiles", "0.1,1.5", "--out", out),
               "--quantiles: expected comma-separated levels in (0, 1)")
    assert not out.exists()


def test_a_squared_error_run_forecasts_one_point_path_and_refuses_sampling_flags(tmp_path, cli_here, user_error):
    np.save(tmp_path / "s.npy", seasonal(150)[:, None])
    result = cli_here("train", tmp_path / "s.npy", *TINY, "--out", tmp_path / "run", "--max-steps", 2,
                      "--eval-every", 2, "--likelihood", "squared")
    assert result.returncode == 0, result.stderr
    result = cli_here("predict", tmp_path / "run", tmp_path / "s.npy", "--horizon", 3, "--out", tmp_path / "f.npy")
    assert result.returncode == 0, result.stderr
    table = np.load(tmp_path / "f.npy")
    assert table.shape == (153, 1) and np.array_equal(table[:150, 0], seasonal(150))
    user_error(cli_here("predict", tmp_path / "run", tmp_path / "s.npy", "--num-samples", 5, "--out",
                        tmp_path / "g.npy"), "--num-samples needs a --likelihood gaussian run")
    result = cli_here("eval", tmp_path / "run", "--horizon", 2)
    assert result.returncode == 0 and "the point path (squared error)" in result.stdout, result.stderr
    assert "CRPS" not in result.stdout
