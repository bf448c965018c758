"""``--transform sqrt|log`` (forecast): the model reads and predicts z-scores of g(y), forecasts are mapped
back by g^-1, validation scores in the series' units, and values g cannot take are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.data.forecast import ForecastConfig, ForecastData
from rnnkit.models.forecaster import Forecaster
from rnnkit.tasks.forecast import ForecastTask

from test_forecast import TINY, write_csv


def cycles(n: int, seed: int = 0) -> np.ndarray:
    """A positive cycle of period 11 whose swings grow with its level (noise multiplicative), as sunspots'."""
    rng = np.random.default_rng(seed)
    return 50 * (1.2 + np.sin(2 * np.pi * np.arange(n) / 11)) * np.exp(rng.normal(0, 0.2, n))


@pytest.mark.parametrize("transform,g", [("sqrt", np.sqrt), ("log", np.log)])
@pytest.mark.parametrize("difference", [False, True])
def test_the_scaler_fits_g_of_the_training_part_and_maps_paths_back_to_the_values(tmp_path, transform, g,
                                                                                   difference):
    values = cycles(120)[:, None]
    np.save(tmp_path / "s.npy", values)
    data = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5, transform=transform,
                                                                      difference=difference))
    part = g(values[:data.train.stop])
    modelled = np.diff(part, axis=0) if difference else part
    assert data.tokenizer.mean == pytest.approx(modelled.mean(0))
    assert data.tokenizer.std == pytest.approx(modelled.std(0))
    o, H = 90, 7
    assert data.tokenizer.to_values(data.z[o:o + H], values[o - 1]) == pytest.approx(values[o:o + H], rel=1e-5)
    plain = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5, difference=difference))
    assert plain.tokenizer.to_values(data.z[o:o + H], values[o - 1]) != pytest.approx(values[o:o + H], rel=1e-2)


def test_a_log_forecasts_spread_grows_with_the_level_it_starts_from(tmp_path):
    """The same normalised paths from a last value 100x higher: an interval 100x wider (log, differenced)."""
    np.save(tmp_path / "s.npy", cycles(120)[:, None])
    scaler = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5, transform="log",
                                                                        difference=True)).tokenizer
    paths = np.random.default_rng(1).normal(0, 1, (500, 4, 1))  # (N, H, C) in z units

    def width(last):
        values = scaler.to_values(paths, np.full((500, 1), last))
        return np.quantile(values, 0.9, axis=0) - np.quantile(values, 0.1, axis=0)  # (H, C)

    assert width(300.0) == pytest.approx(100 * width(3.0), rel=1e-9)


def test_sqrt_paths_below_zero_are_the_value_zero(tmp_path):
    np.save(tmp_path / "s.npy", cycles(120)[:, None])
    scaler = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=5, transform="sqrt")).tokenizer
    far_below = -10 - scaler.mean / scaler.std  # z of g(y) < 0
    assert scaler.to_values(np.full((3, 1), far_below), np.ones(1)) == pytest.approx(np.zeros((3, 1)))


def test_validation_scores_one_step_forecasts_in_the_series_units_through_the_transform(tmp_path):
    """MAE from validate() against the hand-made oracle g^-1(mean z * std + mean) = (...)^2 for sqrt."""
    values = cycles(200)[:, None]
    np.save(tmp_path / "s.npy", values)
    data = ForecastData.from_file(tmp_path / "s.npy", ForecastConfig(seq_len=11, transform="sqrt",
                                                                      val_fraction=0.2))
    torch.manual_seed(0)
    model = Forecaster(1, 0, hidden_size=8).eval()
    ends = np.asarray(data.val)
    with torch.no_grad():
        mean_z = model(data.windows(ends).x, data.windows(ends).covariates)[0].mean[:, -1].numpy()  # (S, 1)
    point = np.square(np.maximum(mean_z * data.tokenizer.std + data.tokenizer.mean, 0))
    found = ForecastTask().validate(model, data)
    assert found["mae"] == pytest.approx(np.abs(point - values[ends]).mean(), rel=1e-5)
    assert found["mase"] == pytest.approx(found["mae"] / data.tokenizer.naive_mae[0], rel=1e-9)


def test_values_the_transform_cannot_take_are_one_line_and_write_nothing(tmp_path, cli_here, user_error):
    series = cycles(120)
    series[40] = -1.5
    write_csv(tmp_path / "neg.csv", series)
    user_error(cli_here("train", tmp_path / "neg.csv", *TINY, "--transform", "sqrt", "--out", tmp_path / "run"),
               "neg.csv: channel 'value' is -1.5 at row 41; --transform sqrt needs values >= 0: give --transform none")
    series[40] = 0.0
    write_csv(tmp_path / "zero.csv", series)
    user_error(cli_here("train", tmp_path / "zero.csv", *TINY, "--transform", "log", "--out", tmp_path / "run"),
               "zero.csv: channel 'value' is 0 at row 41; --transform log needs values > 0")
    user_error(cli_here("train", tmp_path / "zero.csv", *TINY, "--transform", "cube", "--out", tmp_path / "run"),
               "transform must be one of none, sqrt, log; got 'cube'")
    assert not (tmp_path / "run").exists()
    result = cli_here("train", tmp_path / "zero.csv", *TINY, "--transform", "sqrt", "--max-steps", 2,
                      "--eval-every", 2, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    user_error(cli_here("predict", tmp_path / "run", tmp_path / "neg.csv", "--out", tmp_path / "f.csv"),
               "neg.csv: channel 'value' is -1.5 at row 41; --transform sqrt needs values >= 0")
    assert not (tmp_path / "f.csv").exists()
    result = cli_here("predict", tmp_path / "run", tmp_path / "zero.csv", "--horizon", 5, "--out", tmp_path / "f.csv")
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "f.csv").read_text().splitlines()[-5:]  # year, value, value_q0.1, q0.5, q0.9
    forecast = np.array([[float(c) for c in row.split(",")[1:]] for row in rows])
    assert forecast.shape == (5, 4) and np.isfinite(forecast).all()
    assert (forecast >= 0).all()  # sqrt's g^-1, and a calibrated spread scaled in g(y): never below 0


def test_a_served_sqrt_run_refuses_values_below_zero_and_forecasts_at_or_above_it(tmp_path, cli_here):
    from test_serve import Serving

    write_csv(tmp_path / "s.csv", cycles(120))
    result = cli_here("train", tmp_path / "s.csv", *TINY, "--transform", "sqrt", "--max-steps", 2, "--eval-every", 2,
                      "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    server = Serving(tmp_path / "run")
    try:
        status, reply = server.post("forecast", {"values": [-1.0] + [5.0] * 19})
        assert status == 422 and "channel 'value' is -1 at row 1; --transform sqrt needs values >= 0" in str(reply)
        status, reply = server.post("forecast", {"values": [float(v) for v in cycles(40)], "horizon": 6})
        assert status == 200 and np.isfinite(reply["forecast"]).all() and (np.array(reply["forecast"]) >= 0).all()
    finally:
        server.close()
