"""The lectures' experiments in their small configuration must already show the
lecture's effect; `rnnkit experiment` prints the table and writes the plot."""

import math

import numpy as np
import pytest

from rnnkit.experiments import clipping, linear, symmetry


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


@pytest.mark.parametrize("name", ["linear", "symmetry", "clipping"])
def test_rnnkit_experiment_prints_a_table_and_writes_a_plot(cli_here, tmp_path, name):
    result = cli_here("experiment", name, "--quick", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| ") and f"plot: {tmp_path / (name + '.png')}" in result.stdout
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
