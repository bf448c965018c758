"""--calibrate: the sampled paths' spread scaled a horizon step so the central
80 % interval covers 80 % of the validation part's targets (Kuleshov et al.
2018). Oracles: samples of a known, too narrow distribution get the known
widening; a forecaster whose intervals are made too narrow covers 75-85 % of a
held-out part once calibrated on another; the scales ride in the best
checkpoint, eval and predict apply them, and --calibrate false leaves them out."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rnnkit.tasks import read_run
from rnnkit.training.calibration import calibrate_spread
from rnnkit.training.forecasting import apply_spread, covered, rolling_origin, spread_scale
from test_forecast import TINY
from test_forecast_start import ar_series, data_and_model


def test_samples_three_times_too_narrow_are_widened_three_times():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 3.0, size=(4000, 2, 1))  # (O, H, C)
    samples = rng.normal(0, 1.0, size=(400, 4000, 2, 1))  # N(0, 1) paths: the 80 % interval ±1.28, not ±3.84
    scale = spread_scale(samples, truth)
    np.testing.assert_allclose(scale, 3.0, rtol=0.06)
    held_out = rng.normal(0, 3.0, size=(4000, 2, 1))
    assert covered(samples, held_out) < 0.4
    assert 0.78 < covered(apply_spread(samples, scale), held_out) < 0.82
    np.testing.assert_allclose(np.median(apply_spread(samples, scale), 0), np.median(samples, 0), atol=1e-12)


def test_steps_beyond_the_calibrated_ones_take_the_last_scale():
    samples = np.stack([np.full((1, 4, 1), -1.0), np.full((1, 4, 1), 1.0), np.zeros((1, 4, 1))])  # (3, 1, 4, 1)
    scaled = apply_spread(samples, np.array([[2.0], [3.0]]))
    np.testing.assert_allclose(scaled[1, 0, :, 0], [2.0, 3.0, 3.0, 3.0])


def test_a_forecaster_with_too_narrow_intervals_covers_about_80_percent_of_a_held_out_part(tmp_path):
    data, task, model, _ = data_and_model(tmp_path, ar_series(3000), 3, seq_len=16)
    task.start(model, data)  # the least-squares AR(3), its residual variance as the head's
    with torch.no_grad():
        model.head.bias[1:] -= 3.0  # softplus⁻¹ shifted: a variance about 20x too small
    model.eval()
    kept = data.test
    raw, _ = rolling_origin(model, data, kept.start, kept.stop, 4, 200)
    assert raw.coverage_80 < 0.5, raw
    found = calibrate_spread(model, data, 4, 200)
    assert found["calibration_horizon"] == 4 and found["coverage_before"] < 0.5
    calibrated, _ = rolling_origin(model, data, kept.start, kept.stop, 4, 200, spread=np.array(found["spread_scale"]))
    assert 0.75 <= calibrated.coverage_80 <= 0.85, calibrated
    assert calibrated.mase == raw.mase  # the median forecast is the same


@pytest.mark.slow  # three small training runs, evaluations and a forecast by the command line: ~8 s
def test_the_scales_ride_in_the_best_checkpoint_and_eval_and_predict_apply_them(tmp_path, cli_here, user_error):
    np.save(tmp_path / "s.npy", ar_series(600, phi=(0.6, -0.3))[:, None])
    flags = [*TINY, "--max-steps", 4, "--eval-every", 2, "--val-fraction", 0.2]
    result = cli_here("train", tmp_path / "s.npy", *flags, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "calibrated the 80 % interval on 61 validation origins, steps 1..60" in result.stdout
    with safe_open(tmp_path / "run" / "model.safetensors", "pt") as f:
        meta = json.loads(f.metadata()["rnnkit"])
    assert np.shape(meta["spread_scale"]) == (60, 1) and read_run(tmp_path / "run").train.calibrate
    result = cli_here("eval", tmp_path / "run", "--horizon", 3)
    assert result.returncode == 0 and "spread calibrated on validation (x" in result.stdout, result.stderr
    assert json.loads(cli_here("eval", tmp_path / "run", "--horizon", 3, "--json").stdout)["calibrated"] is True
    result = cli_here("predict", tmp_path / "run", tmp_path / "s.npy", "--horizon", 3, "--out", tmp_path / "f.npy")
    assert result.returncode == 0, result.stderr

    result = cli_here("train", tmp_path / "s.npy", *flags, "--calibrate", "false", "--out", tmp_path / "off")
    assert result.returncode == 0 and "calibrated" not in result.stdout, result.stderr
    assert json.loads(cli_here("eval", tmp_path / "off", "--horizon", 3, "--json").stdout)["calibrated"] is False

    user_error(cli_here("train", tmp_path / "s.npy", *flags, "--likelihood", "squared", "--calibrate", "true",
                        "--out", tmp_path / "sq"),
               "--calibrate needs --likelihood gaussian (a squared-error forecast is one point path, with no spread "
               "to scale), so here it would do nothing; drop it")
    assert not (tmp_path / "sq").exists()
