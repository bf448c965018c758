"""--calibrate validation: the sampled paths' spread scaled a horizon step so
the central 80 % interval covers 80 % of the validation part's targets
(Kuleshov et al. 2018); --calibrate rolling: that scale moved by each error as
the values arrive (quantile tracking). Oracles: samples of a known, too narrow
distribution get the known widening; a forecaster whose intervals are made too
narrow covers 75-85 % of a held-out part once calibrated on another; where the
noise doubles after the validation part, the validation scale under-covers and
the rolling one covers 75-85 %; changing the values after an origin leaves its
interval as it was; the scales ride in the best checkpoint, eval and predict
apply them, --calibrate none leaves them out, bad settings are refused."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rnnkit.data.forecast import ForecastData
from rnnkit.tasks import read_run
from rnnkit.training.calibration import calibrate_spread
from rnnkit.training.forecasting import (Rolling, apply_spread, covered, paths_in_units, rolling_origin,
                                         rolling_scales, spread_ratios, spread_scale, track_spread)
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


@pytest.mark.slow  # four small training runs, evaluations and forecasts by the command line: ~12 s
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
    result = cli_here("eval", tmp_path / "run", "--horizon", 3, "--calibrate", "rolling")
    assert result.returncode == 0, result.stderr
    assert "spread recalibrated as the values arrive (rolling, rate 0.1, from validation's x" in result.stdout
    both = [json.loads(cli_here("eval", tmp_path / "run", "--horizon", 3, "--json", "--calibrate", mode).stdout)
            for mode in ("validation", "rolling")]
    assert [b["calibration"] for b in both] == ["validation", "rolling"] and both[0]["mase"] == both[1]["mase"]

    # predict reads the input's own errors: where its last 300 values have three times the noise, the band widens
    rng = np.random.default_rng(3)
    y = ar_series(900, phi=(0.6, -0.3))
    for t in range(600, 900):
        y[t] = 3.0 + 0.6 * (y[t - 1] - 3.0) - 0.3 * (y[t - 2] - 3.0) + rng.normal(0, 3.0)
    np.save(tmp_path / "noisy.npy", y[:, None])
    widths = []
    for mode in ("validation", "rolling"):
        out = tmp_path / f"{mode}.npy"
        result = cli_here("predict", tmp_path / "run", tmp_path / "noisy.npy", "--horizon", 3, "--calibrate", mode,
                          "--out", out)
        assert result.returncode == 0, result.stderr
        rows = np.load(out)[-3:]  # the forecast's rows: the median, then q0.1, q0.5, q0.9
        widths.append(rows[:, 3] - rows[:, 1])  # q0.9 - q0.1 at steps 1..3
    assert (widths[1] > 1.8 * widths[0]).all(), widths

    result = cli_here("train", tmp_path / "s.npy", *flags, "--calibrate", "none", "--out", tmp_path / "off")
    assert result.returncode == 0 and "calibrated" not in result.stdout, result.stderr
    assert json.loads(cli_here("eval", tmp_path / "off", "--horizon", 3, "--json").stdout)["calibrated"] is False
    user_error(cli_here("eval", tmp_path / "off", "--horizon", 3, "--calibrate", "validation"),
               f"--calibrate validation: the best checkpoint of {tmp_path / 'off'} keeps no validation scales "
               f"(trained with --calibrate none, or too short a validation part); use --calibrate none or rolling")
    user_error(cli_here("train", tmp_path / "s.npy", *flags, "--calibrate", "always", "--out", tmp_path / "bad"),
               "calibrate must be one of none, validation, rolling; got 'always'")
    user_error(cli_here("train", tmp_path / "s.npy", *flags, "--calibrate", "true", "--out", tmp_path / "bad"),
               "calibrate takes none, validation or rolling (true was validation, false none); got 'true'")
    user_error(cli_here("train", tmp_path / "s.npy", *flags, "--calibrate", "rolling", "--calibrate-rate", 0,
                        "--out", tmp_path / "bad"), "calibrate_rate must be in (0, 1]; got 0.0")
    assert not (tmp_path / "bad").exists()

    user_error(cli_here("train", tmp_path / "s.npy", *flags, "--likelihood", "squared", "--calibrate", "rolling",
                        "--out", tmp_path / "sq"),
               "--calibrate needs --likelihood gaussian (a squared-error forecast is one point path, with no spread "
               "to scale), so here it would do nothing; drop it")
    assert not (tmp_path / "sq").exists()


def test_the_tracked_scale_follows_a_noise_that_doubles_and_covers_80_percent_after_it():
    rng = np.random.default_rng(1)
    samples = rng.normal(0, 1.0, size=(200, 1, 1, 1))  # one N(0, 1) forecast, the same at every origin
    truth = np.concatenate([rng.normal(0, 1, 2000), rng.normal(0, 2, 4000)])[:, None, None]  # (O, 1, 1)
    ratios = spread_ratios(np.broadcast_to(samples, (200, len(truth), 1, 1)), truth)
    start = np.quantile(ratios[:2000], 0.8, axis=0)  # fitted on the first regime: ≈ 1
    scales = track_spread(ratios, start, rate=0.1)
    covered_after = (ratios[2000:] <= np.maximum(scales[2000:], 0)).mean()
    assert (ratios[2000:] <= start).mean() < 0.55  # the first regime's scale: about P(|Z| < 0.64) = 48 %
    assert 0.77 <= covered_after <= 0.83, covered_after
    needed = np.quantile(ratios[2000:], 0.8)  # the second regime's own scale: twice the first's
    assert 1.8 < needed / start < 2.2
    assert abs(np.median(scales[-1000:]) / needed - 1) < 0.1  # the tracked scale found it
    np.testing.assert_allclose(scales[0], start)  # nothing observed before the first origin


def test_a_step_h_scale_reads_an_origins_miss_h_origins_later_and_never_an_unobserved_one():
    ratios = np.full((6, 3, 1), np.nan)
    ratios[0] = 5.0  # origin 0 misses at every step: its step h target (index h) is observed before origin h + 1
    scales = track_spread(ratios, np.ones((3, 1)), rate=0.1)
    moved = scales[:, :, 0] != 1.0  # (O, H): where the miss has been read
    np.testing.assert_array_equal(moved, np.arange(6)[:, None] >= np.arange(1, 4)[None])
    np.testing.assert_allclose(scales[-1, :, 0], 1.0 + 0.1 * 0.8)


def test_rolling_recalibration_covers_80_percent_where_the_noise_doubles_after_the_validation_part(tmp_path):
    y = ar_series(3000)
    rng = np.random.default_rng(1)
    for t in range(2100, 3000):  # the noise doubles from the test part on: ε ~ N(0, 2²)
        y[t] = 3.0 + sum(p * (y[t - 1 - j] - 3.0) for j, p in enumerate((0.5, -0.4, 0.3))) + rng.normal(0, 2.0)
    data, task, model, _ = data_and_model(tmp_path, y, 3, seq_len=16)  # validation 1500-2100 (0.2), test 2100-
    data = ForecastData.from_file(tmp_path / "y.npy", dataclasses.replace(data.config, test_fraction=0.3),
                                  data.tokenizer)
    task.start(model, data)  # the least-squares AR(3) of the first regime, its residual variance as the head's
    model.eval()
    assert data.test.start == 2100
    found = calibrate_spread(model, data, 2, 200)
    spread = np.array(found["spread_scale"])
    fixed, _ = rolling_origin(model, data, data.test.start, data.test.stop, 2, 200, spread=spread)
    rolled, _ = rolling_origin(model, data, data.test.start, data.test.stop, 2, 200, spread=spread,
                               rolling=Rolling(data.val.start, 0.1))
    assert fixed.coverage_80 < 0.6, fixed
    assert 0.75 <= rolled.coverage_80 <= 0.85, rolled
    assert rolled.mase == fixed.mase and rolled.crps < fixed.crps  # the same median; a better distribution


def test_changing_the_values_after_an_origin_leaves_its_rolling_interval_as_it_was(tmp_path):
    y = ar_series(1200)
    data, task, model, _ = data_and_model(tmp_path, y, 3, seq_len=16)
    task.start(model, data)
    model.eval()
    t = 1150  # an origin of the test part (1080-1200): the values from t on change
    changed = y.copy()
    changed[t:] += np.random.default_rng(2).normal(0, 3.0, len(y) - t)
    np.save(tmp_path / "changed.npy", changed[:, None])
    other = ForecastData.from_file(tmp_path / "changed.npy", data.config, data.tokenizer)
    origins = np.arange(data.test.start, data.test.stop - 3 + 1)
    scales = []
    for d in (data, other):
        paths = paths_in_units(model, d.tokenizer, d.z, d.covariates, d.series.values, origins, 16, 3, 50)
        scales.append(rolling_scales(model, d, origins, paths, np.ones((3, 1)), Rolling(d.val.start, 0.1)))
    upto = origins <= t
    np.testing.assert_array_equal(scales[0][upto], scales[1][upto])  # origin t reads targets before t only
    assert not np.array_equal(scales[0][~upto], scales[1][~upto])  # later origins read the changed errors


def test_a_run_of_an_earlier_rnnkit_reads_its_calibrate_true_or_false_as_validation_or_none():
    from rnnkit.tasks.forecast import ForecastTraining

    assert ForecastTraining(calibrate=True).calibrate == "validation"  # config.json before 2026-12-07
    assert ForecastTraining(calibrate=False).calibrate == "none"
