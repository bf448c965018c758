"""The lectures' experiments in their small configuration must already show the
lecture's effect; `rnnkit experiment` prints the table and writes the plot."""

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.experiments import EXPERIMENTS, Table, clipping, linear, numerics, symmetry

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


@pytest.fixture
def experiment(cli_here, monkeypatch, tmp_path):
    """Runs ``rnnkit experiment NAME --quick --out tmp_path FLAGS`` in this process:
    (the Table that the experiment returned to the CLI, what the CLI printed)."""
    def run(name: str, *flags) -> tuple[Table, str]:
        module, tables = EXPERIMENTS[name], []

        @functools.wraps(module.run)  # its signature too, which says whether it reads --data
        def recorded(*args, **kwargs):
            table, figure = recorded.__wrapped__(*args, **kwargs)
            tables.append(table)
            return table, figure

        monkeypatch.setattr(module, "run", recorded)
        result = cli_here("experiment", name, "--quick", "--out", tmp_path, *flags)
        assert result.returncode == 0, result.stderr
        return tables[0], result.stdout
    return run


def solved(steps: tuple) -> list[bool]:
    """Which seeds solved the adding problem, from the steps each needed (None: not solved)."""
    return [s is not None for s in steps]


@pytest.mark.slow
def test_the_adding_problem_beats_the_rnn_at_a_distance_the_lstm_bridges(experiment, tmp_path):
    table, _ = experiment("vanishing")  # T = 10 and 50, 1,000 steps, one seed
    rnn, lstm = table.row("rnn"), table.row("lstm")
    assert solved(rnn["T = 10"]) == [True] and solved(rnn["T = 50"]) == [False]  # solves T = 10, not 50
    assert solved(lstm["T = 10"]) == [True] and solved(lstm["T = 50"]) == [True]  # solves both
    assert (tmp_path / "vanishing.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_dropout_narrows_the_gap_and_early_stopping_stops_at_the_turn(experiment, tmp_path):
    table, _ = experiment("regularisation")  # 8 kB, 200 steps
    none, dropout, early = (table.row(name) for name in ("none", "dropout 0.5", "early stopping, patience 2"))
    assert none["gap"] > 0.5 and dropout["gap"] < 0.5 * none["gap"]  # none overfits; dropout much less
    assert dropout["validation loss"] < none["validation loss"]
    best = "best validation loss (step)"
    assert early["steps"] < none["steps"] and early[best] == none[best]  # stopped early, at the same best
    assert (tmp_path / "regularisation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_adam_at_its_swept_rate_beats_sgd_at_its_own(experiment, tmp_path):
    table, _ = experiment("optimizers")  # 3 rates each, then 150 steps
    sgd, adam = table.row("sgd"), table.row("adam")
    sweep = "sweep: rate -> validation loss"
    assert len(sgd[sweep]) == len(adam[sweep]) == 3  # three rates swept
    assert adam["validation loss at step 100"] < sgd["validation loss at step 100"] - 0.1
    assert (tmp_path / "optimizers.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.skipif(not BONN.is_file(), reason=f"the Bonn EEG recordings are not at {BONN}")
def test_a_reservoir_below_radius_one_predicts_eeg_and_one_far_above_it_does_not(experiment, tmp_path):
    table, _ = experiment("echo-state", "--data", BONN)  # 100 units
    persistence, below, above, lstm = (table.row(name)["validation NMSE"] for name in (
        "persistence, x̂ = x_t", "echo state, 100 ordinary units, ρ = 0.9", "echo state, 100 ordinary units, ρ = 3",
        "LSTM, 64 units, 200 Adam steps"))
    assert below < 0.25 * persistence  # the fixed reservoir remembers enough of the input
    assert above > 5 * below  # far past ρ = 1 its own dynamics drown the input
    assert lstm < 0.5 * persistence
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
def test_rnnkit_experiment_prints_its_table_and_writes_a_plot(experiment, tmp_path, name):
    table, stdout = experiment(name)
    assert table.rows and stdout == table.markdown() + f"\n\nplot: {tmp_path / (name + '.png')}\n"
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_table_prints_each_value_by_its_columns_format_and_finds_a_row_by_its_first_value():
    table = Table(("cell", "steps", "best (step)", "seeds solved"),
                  [("rnn", (22, 60), (1.56449, 200), (300, None)), ("lstm", (60, 60), (float("nan"), 0), ())],
                  ("{}", "{} of {}", "{:.3f} ({})", lambda steps: f"{sum(s is not None for s in steps)}/{len(steps)}"),
                  "a note")
    assert table.markdown() == ("| cell | steps | best (step) | seeds solved |\n"
                                "|---|---|---|---|\n"
                                "| rnn | 22 of 60 | 1.564 (200) | 1/2 |\n"
                                "| lstm | 60 of 60 | nan (0) | 0/0 |\n"
                                "\n"
                                "a note")
    assert table.row("rnn") == {"cell": "rnn", "steps": (22, 60), "best (step)": (1.56449, 200),
                                "seeds solved": (300, None)}
    assert Table(("a", "b"), [(1, 2.5)]).markdown() == "| a | b |\n|---|---|\n| 1 | 2.5 |"  # "{}" by default
    with pytest.raises(KeyError, match="0 rows start with 'gru'"):
        table.row("gru")


def test_the_naive_log_sum_exp_overflows_in_float32_where_the_log_sum_exp_form_does_not(experiment, tmp_path):
    table, stdout = experiment("numerics")
    assert stdout == table.markdown() + f"\n\nplot: {tmp_path / 'numerics.png'}\n"
    columns = ("naive", "stable", "exact", "softmax finite", "naive log p", "log_softmax", "exact log p")
    rows = {row[0]: dict(zip(columns, row[1:])) for row in table.rows}
    for scores, row in rows.items():  # the log-sum-exp forms: float64's value to float32's precision, always
        exact = torch.logsumexp(torch.tensor(scores, dtype=torch.float64), 0).item()
        assert row["exact"] == exact and row["stable"] == pytest.approx(exact, rel=1e-6, abs=1e-6)
        assert row["log_softmax"] == pytest.approx(row["exact log p"], abs=1e-4)
    for scores in ((89.0, 88.0, 87.0), (1000.0, 999.0, 998.0)):  # past e^88.7: overflow
        assert rows[scores]["naive"] == math.inf and not rows[scores]["softmax finite"]
    assert rows[(-110.0, -111.0, -112.0)]["naive"] == -math.inf  # below e^-103.3: every term underflows
    assert not rows[(-110.0, -111.0, -112.0)]["softmax finite"]
    denormal = rows[(-100.0, -101.0, -102.0)]  # finite, but in denormals with few digits left
    assert abs(denormal["naive"] - denormal["exact"]) > 1e-2
    for scores in ((10.0, 9.0, 8.0), (88.0, 87.0, 86.0)):  # in range both agree
        assert rows[scores]["naive"] == pytest.approx(rows[scores]["exact"], rel=1e-6)
        assert rows[scores]["softmax finite"]
    confident = rows[(0.0, -50.0, -200.0)]  # p_last underflows to 0: log(softmax) is -inf, the loss is 200
    assert confident["naive log p"] == -math.inf and confident["log_softmax"] == -200.0
    y = torch.randn(50, 7) * 30
    torch.testing.assert_close(numerics.stable_logsumexp(y), torch.logsumexp(y, -1))
    torch.testing.assert_close(numerics.stable_log_softmax(y), torch.log_softmax(y, -1))
