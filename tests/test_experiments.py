"""The lectures' experiments in their small configuration must already show the
lecture's effect; `rnnkit experiment` prints the table and writes the plot."""

import math
from pathlib import Path

import numpy as np
import pytest

from rnnkit.experiments import clipping, linear, symmetry

BONN = Path(__file__).parents[2] / "shared" / "data" / "bonn_eeg" / "bonn_eeg_dataset.zip"


def test_the_linear_recursion_grows_or_decays_as_rho_to_the_t_and_tanh_bounds_the_state_not_the_gradient():
    for rho in (0.5, 0.9, 1.1, 1.5):
        r = linear.recursions(rho)  # 50 steps, H = 64
        np.testing.assert_allclose(r["linear"], rho ** np.arange(51), rtol=1e-9)  # W = ρQ: exactly ρ^t
        assert r["tanh"].max() <= 8.0  # sqrt(H): no unit beyond 1
        assert (r["tanh product"][-1] < 0.1) == (rho < 1) and (r["tanh product"][-1] > 5) == (rho > 1)
        assert r["sigmoid product"][-1] < 1e-10  # slope at most 1/4: vanishes for every ρ < 4
    assert linear.recursions(3.0)["tanh saturated"][-1] > linear.recursions(1.5)["tanh saturated"][-1] > 0


def test_identical_units_stay_identical_and_random_ones_learn_more():
    (same, gap_same), (rand, gap_rand) = (symmetry.train(identical, steps=30) for identical in (True, False))
    assert gap_same < 1e-12 and gap_rand > 0.1
    assert np.mean(rand[-10:]) < np.mean(same[-10:])


def test_without_clipping_the_exploding_relu_rnn_diverges_and_with_it_it_learns():
    (off, off_norms), (on, on_norms) = (clipping.train(clip, steps=60) for clip in (None, 1.0))
    assert len(off) < 60 and not math.isfinite(off[-1]) and max(off_norms) > 1e4
    assert len(on) == 60 and all(math.isfinite(x) for x in on) and np.mean(on[-10:]) < on[0] - 0.5


@pytest.mark.slow
def test_the_adding_problem_beats_the_rnn_at_a_distance_the_lstm_bridges(cli_here, tmp_path):
    result = cli_here("experiment", "vanishing", "--quick", "--out", tmp_path)  # T = 10 and 50, 1,000 steps
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)  # seeds solved at T = 10 | at T = 50
    assert rows[" rnn "][0].startswith(" 1/1") and rows[" rnn "][1].startswith(" 0/1")  # solves T = 10, not 50
    assert rows[" lstm "][0].startswith(" 1/1") and rows[" lstm "][1].startswith(" 1/1")  # solves both
    assert (tmp_path / "vanishing.png").read_bytes()[:4] == b"\x89PNG"


def table_rows(stdout: str) -> dict[str, list[str]]:
    """A printed markdown table's rows by their first cell."""
    return {cells[1]: cells[2:-1] for cells in (line.split("|") for line in stdout.splitlines()) if len(cells) > 2}


@pytest.mark.slow
def test_dropout_narrows_the_gap_and_early_stopping_stops_at_the_turn(cli_here, tmp_path):
    result = cli_here("experiment", "regularisation", "--quick", "--out", tmp_path)  # 15 kB, 320 steps
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)  # steps | training loss | validation loss | gap | best (step)
    none, dropout, early = (rows[f" {name} "] for name in ("none", "dropout 0.5", "early stopping, patience 2"))
    assert float(none[3]) > 0.5 and float(dropout[3]) < 0.5 * float(none[3])  # none overfits; dropout much less
    assert float(dropout[2]) < float(none[2])
    assert int(early[0]) < int(none[0]) and early[4] == none[4]  # stopped early, at the same best
    assert (tmp_path / "regularisation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_adam_at_its_swept_rate_beats_sgd_at_its_own(cli_here, tmp_path):
    result = cli_here("experiment", "optimizers", "--quick", "--out", tmp_path)  # 3 rates each, then 150 steps
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)  # sweep | rate | validation loss at step 50 | at 100 | best (step) | seconds
    sgd, adam = rows[" sgd "], rows[" adam "]
    assert sgd[0].count(":") == adam[0].count(":") == 3  # three rates swept
    assert float(adam[3]) < float(sgd[3]) - 0.1  # at step 100
    assert (tmp_path / "optimizers.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.skipif(not BONN.is_file(), reason=f"the Bonn EEG recordings are not at {BONN}")
def test_a_reservoir_below_radius_one_predicts_eeg_and_one_far_above_it_does_not(cli_here, tmp_path):
    result = cli_here("experiment", "echo-state", "--quick", "--data", BONN, "--out", tmp_path)  # 100 units
    assert result.returncode == 0, result.stderr
    nmse = {name.strip(): float(cells[0]) for name, cells in table_rows(result.stdout).items()
            if name.strip() not in ("model", "---")}  # model -> validation NMSE
    persistence, below, above = (nmse["persistence, x̂ = x_t"], nmse["echo state, 100 ordinary units, ρ = 0.9"],
                                 nmse["echo state, 100 ordinary units, ρ = 3"])
    assert below < 0.25 * persistence  # the fixed reservoir remembers enough of the input
    assert above > 5 * below  # far past ρ = 1 its own dynamics drown the input
    assert nmse["LSTM, 64 units, 200 Adam steps"] < 0.5 * persistence
    assert (tmp_path / "echo-state.png").read_bytes()[:4] == b"\x89PNG"


def test_data_is_refused_where_it_is_not_read_and_required_where_it_is(cli_here, tmp_path):
    result = cli_here("experiment", "linear", "--data", tmp_path / "x.zip", "--out", tmp_path)
    assert result.returncode == 2 and "--data is read by the echo-state experiment only" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli_here("experiment", "echo-state", "--quick", "--out", tmp_path)
    assert result.returncode == 2 and "pass --data bonn_eeg_dataset.zip" in result.stderr
    result = cli_here("experiment", "echo-state", "--data", tmp_path, "--out", tmp_path)
    assert result.returncode == 2 and "not the Bonn EEG zip" in result.stderr


@pytest.mark.parametrize("name", ["linear", "symmetry", "clipping"])
def test_rnnkit_experiment_prints_a_table_and_writes_a_plot(cli_here, tmp_path, name):
    result = cli_here("experiment", name, "--quick", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| ") and f"plot: {tmp_path / (name + '.png')}" in result.stdout
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
