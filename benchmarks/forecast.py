"""Forecasting (``--task forecast``): rnnkit's LSTM against persistence, the
seasonal naive forecast, an autoregressive model (statsmodels' AutoReg, its
order chosen by AIC) and darts' RNNModel (an LSTM with a Gaussian likelihood)
at the same budget, in one run, on five series:

- ``sunspots``: yearly sunspot numbers 1700-2008 (309 values), shipped inside
  statsmodels (``statsmodels.datasets.sunspots``; nothing is downloaded);
- ``co2``: the Mauna Loa CO2 series shipped with statsmodels
  (``statsmodels.datasets.co2``), weekly 1958-2001, as monthly means, its 59
  missing weeks left out of the means (a month without any value, none here,
  would be interpolated);
- ``mackey-glass``: the Mackey-Glass delay equation dx/dt = 0.2 x(t-17) /
  (1 + x(t-17)^10) - 0.1 x(t), integrated by Euler steps of 0.1 from x = 1.2,
  sampled every time unit, the first 1,000 units dropped (the echo state
  network's benchmark; Jaeger and Haas 2004);
- ``bonn``: one recording of the Bonn EEG (set A, Z001: 4,097 samples at
  173.61 Hz, surface EEG of a healthy volunteer, eyes open), read from the zip
  in ``../shared/data/bonn_eeg`` with zipfile;
- ``bonn-seizure``: one recording of set E (S001, intracranial, during a
  seizure), where Andrzejak et al. 2001 (Phys. Rev. E 64, 061907) found the
  strongest signs of nonlinear deterministic structure; in eyes-open surface
  EEG a linear stochastic process is not rejected (Stepien 2002), so there a
  linear AR is the model to match rather than beat.

Each series is written to a CSV in a temporary folder, with every digit of its
float64 values (the baselines read them in memory; rounded to 6 digits,
Mackey-Glass's one-step forecasts lost to the rounding alone), and split in time by
rnnkit (train, ``--val-fraction 0.1``, ``--test-fraction 0.2``). rnnkit trains
through the command line for ``--minutes`` and is scored by ``rnnkit eval RUN
--horizon H --json`` (rolling origin over the test part). The baselines forecast
from the very same origins with the same history, and are scored by the same
function (``rnnkit.training.forecasting.score``): MASE against the training
part's in-sample seasonal naive error (the season as rnnkit decided it), and for
the probabilistic models the coverage of the central 80 % interval. darts'
RNNModel gets the same hidden size, input window and wall-clock budget
(``max_time``), the same differencing and transform (by hand), and its own
scaler fitted on the training part. Sunspots are modelled as sqrt(y)
(``--transform sqrt``): their swings grow with the cycle's height, and a
validation part of 62 years (``--val-fraction 0.2``, before the test part)
preferred sqrt at 1, 5 and 11 years, and a window of 22 years to 32 at 5 and
11 (NOTEBOOK.md, 2026-12-07, forecast4).

rnnkit trains twice a series, without and with the linear autoregressive
component (``--ar-order auto``: q by AIC on the training part, the component
started at the least-squares AR(q) and the LSTM's output at 0, so training
learns the residual), each for ``--minutes``, and the run of the lower best
validation MASE at each horizon (rolling origin over the validation part, as
the test part is scored) is the one scored on the test part at that horizon
(the choice never sees the test part; ``--ar-orders`` narrows it: numbers,
``q`` the series' own below, ``auto``). Each run keeps the checkpoint of its
lowest one-step validation loss (the least-squares start, validated at step 0,
among them). Both runs
calibrate their intervals on the validation part after training
(``--calibrate validation``, rnnkit's default), and the chosen run is scored
twice, in the same run and with the same sampled paths (so the same MASE):
``rnnkit eval --calibrate validation``, the scale fitted on validation, and
``--calibrate rolling``, that scale moved by each error observed before an
origin (the validation part's, then the test part's as they arrive).

    python benchmarks/forecast.py [--minutes 1] [--series sunspots,co2,mackey-glass,bonn,bonn-seizure]
        [--ar-orders 0,auto]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from common import DATA, markdown_table, print_command, rnnkit

from rnnkit.data.forecast import transform_values, untransform_values
from rnnkit.tasks import read_run
from rnnkit.training.runs import BEST, load_tensors
from rnnkit.training.forecasting import score, seasonal_naive

# -- the series -------------------------------------------------------------------------------------


def sunspots(data_dir: Path | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    import statsmodels.api as sm

    d = sm.datasets.sunspots.load_pandas().data
    return "YEAR", d["YEAR"].astype(int).astype(str).to_numpy(), d["SUNACTIVITY"].to_numpy()


def co2(data_dir: Path | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    import statsmodels.api as sm

    weekly = sm.datasets.co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate()
    return "month", monthly.index.strftime("%Y-%m").to_numpy(), monthly.to_numpy()


def mackey_glass(data_dir: Path | None = None, n: int = 3000, tau: int = 17, dt: float = 0.1,
                 drop: int = 1000) -> tuple[str, None, np.ndarray]:
    steps, lag = round(1 / dt), round(tau / dt)
    x = np.full(lag + 1 + (n + drop) * steps, 1.2)
    for t in range(lag, len(x) - 1):
        delayed = x[t - lag]
        x[t + 1] = x[t] + dt * (0.2 * delayed / (1 + delayed ** 10) - 0.1 * x[t])
    return "", None, x[lag::steps][drop:drop + n]


def bonn(data_dir: Path, name: str = "Z001") -> tuple[str, None, np.ndarray]:
    """The 4,097 samples of one Bonn recording (``name``: Z001, S001, ...)."""
    with zipfile.ZipFile(data_dir / "bonn_eeg" / "bonn_eeg_dataset.zip") as z:
        member = next(n for n in z.namelist() if n.endswith(f"{name}.txt"))
        return "", None, np.loadtxt(io.StringIO(z.read(member).decode()))


@dataclass
class Setup:
    """The settings both neural models share on a series, and the horizons reported."""

    seq_len: int
    horizons: tuple[int, ...]
    hidden_size: int = 64
    dropout: float = 0.0
    difference: bool = False  # model y_t - y_(t-1) (rnnkit's --difference; darts: the same by hand)
    transform: str = "none"  # model g(y): none, sqrt, log (rnnkit's --transform; darts: the same by hand)
    eval_every: int = 50  # rnnkit: validate (and keep the best checkpoint) this often
    ar_order: int = 0  # q of rnnkit's --ar-order tried beside none

    def rnnkit_flags(self) -> list[str]:
        return ["--precision", "fp32", "--seq-len", str(self.seq_len), "--hidden-size", str(self.hidden_size),
                "--dropout", str(self.dropout),
                "--difference", str(self.difference).lower(), "--eval-every", str(self.eval_every),
                "--transform", self.transform]


SERIES = {"sunspots": (sunspots, Setup(22, (1, 5, 11), hidden_size=32, dropout=0.3, difference=True, eval_every=10,
                                       ar_order=12, transform="sqrt")),
          "co2": (co2, Setup(48, (1, 6, 12), difference=True, eval_every=20, ar_order=13)),
          "mackey-glass": (mackey_glass, Setup(64, (1, 17, 84), ar_order=17)),
          "bonn": (bonn, Setup(64, (1, 4, 16), ar_order=16)),
          "bonn-seizure": (partial(bonn, name="S001"), Setup(64, (1, 4, 16), ar_order=16))}


def write_csv(path: Path, time_name: str, times, values: np.ndarray) -> None:
    if times is None:
        path.write_text("value\n" + "\n".join(f"{v:.17g}" for v in values) + "\n")
    else:
        path.write_text(f"{time_name},value\n" + "\n".join(f"{t},{v:.17g}" for t, v in zip(times, values)) + "\n")


# -- the baselines ------------------------------------------------------------------------------------


def autoreg_paths(values: np.ndarray, n_train: int, origins: np.ndarray, horizon: int, max_lag: int) -> np.ndarray:
    """(O, H) AutoReg forecasts: the order by AIC up to ``max_lag`` on the training part, then the
    fitted recursion run from each origin's observed history."""
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order

    order = ar_select_order(values[:n_train], maxlag=max_lag, ic="aic", trend="c").ar_lags
    fit = AutoReg(values[:n_train], lags=order, trend="c").fit()
    const, coefs = fit.params[0], fit.params[1:]
    lags = np.asarray(order if order is not None else [], dtype=int)
    out = np.empty((len(origins), horizon))
    for i, o in enumerate(origins):
        history = list(values[:o])
        for h in range(horizon):
            history.append(const + sum(c * history[-lag] for c, lag in zip(coefs, lags)))
        out[i] = history[o:o + horizon]
    return out


def darts_model(values: np.ndarray, n_train: int, setup: Setup, seconds: float):
    """darts' RNNModel (LSTM, Gaussian likelihood) with ``setup``'s width, window and dropout, trained
    for ``seconds`` on the training part of g(``values``) (``setup.transform``; its changes, with
    ``difference``) scaled by darts' Scaler fitted there: (model, scaler, series, epochs)."""
    import logging

    from darts import TimeSeries
    from darts.dataprocessing.transformers import Scaler
    from darts.models import RNNModel
    from darts.utils.likelihood_models import GaussianLikelihood

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    g = transform_values(values, setup.transform)
    modelled = np.diff(g) if setup.difference else g  # d[t - 1] = g(y_t) - g(y_(t-1))
    n_fit = n_train - 1 if setup.difference else n_train
    series = TimeSeries.from_values(modelled.astype(np.float32))
    scaler = Scaler().fit(series[:n_fit])
    scaled = scaler.transform(series)
    model = RNNModel(model="LSTM", hidden_dim=setup.hidden_size, n_rnn_layers=1, dropout=setup.dropout,
                     input_chunk_length=setup.seq_len, training_length=setup.seq_len + 1,
                     likelihood=GaussianLikelihood(), n_epochs=100_000, batch_size=32, random_state=0,
                     optimizer_kwargs={"lr": 4e-3},
                     pl_trainer_kwargs={"accelerator": "cpu", "max_time": {"seconds": seconds},
                                        "enable_progress_bar": False, "enable_model_summary": False,
                                        "logger": False, "enable_checkpointing": False})
    model.fit(scaled[:n_fit], verbose=False)
    return model, scaler, scaled, model.epochs_trained


def darts_paths(fitted, values: np.ndarray, origins: np.ndarray, horizon: int, samples: int,
                difference: bool, transform: str = "none") -> np.ndarray:
    """(N, O, H) sampled paths of a :func:`darts_model` from each origin, with the observed history
    (changes added up from the last observed value, with ``difference``), mapped back by g^-1."""
    model, scaler, scaled, _ = fitted
    shift = 1 if difference else 0  # the change y_o - y_(o-1) sits at index o - 1
    forecasts = model.historical_forecasts(scaled, start=int(origins[0]) - shift, forecast_horizon=horizon, stride=1,
                                           retrain=False, last_points_only=False, num_samples=samples,
                                           overlap_end=False, verbose=False)
    paths = np.stack([scaler.inverse_transform(f).all_values()[:, 0, :] for f in forecasts], axis=1)  # (H, O, N)
    assert paths.shape[1] == len(origins), (paths.shape, len(origins))
    paths = np.transpose(paths, (2, 1, 0))  # (N, O, H)
    if difference:
        paths = transform_values(values[origins - 1], transform)[None, :, None] + np.cumsum(paths, axis=-1)
    return untransform_values(paths, transform)


# -- one series -------------------------------------------------------------------------------------------


def train_candidates(path: Path, folder: Path, name: str, setup: Setup, minutes: float, orders: str,
                     best_by: str = "auto") -> dict:
    """Train rnnkit with each AR order (``orders``: "0,auto", "0,q"), keeping the checkpoint ``best_by``
    picks (its --best-by): {its order in words ("0", "12",
    "auto: 14"): run folder}."""
    runs = {}
    for given in dict.fromkeys(orders.replace("q", str(setup.ar_order)).split(",")):
        out = folder / f"run-{name}-ar{given}"
        rnnkit("train", str(path), "--task", "forecast", *setup.rnnkit_flags(), "--test-fraction", "0.2",
               "--time-limit", str(60 * minutes), "--out", str(out), "--device", "cpu", "--ar-order", given,
               "--best-by", best_by)
        meta = load_tensors(out / BEST)[1]
        q = read_run(out).model.ar_order
        said = f"auto: {q}" if given == "auto" else str(q)
        runs[said] = out
        print(f"{name}: --ar-order {said}: kept step {meta['step']} (--best-by {best_by}), validation loss "
              f"{meta['val_loss']:.4f}; "
              f"validation coverage {meta.get('coverage_before', float('nan')):.1%} -> "
              f"{meta.get('coverage_after', float('nan')):.1%} calibrated", flush=True)
    return runs


def choose_on_validation(runs: dict, horizon: int, samples: int) -> tuple[str, Path]:
    """The run of the lowest MASE at ``horizon`` over the validation part (rolling origin; never the test
    part): the one-step loss that picks each run's checkpoint can prefer a model worse many steps out."""
    found = {}
    for said, out in runs.items():
        found[said] = json.loads(rnnkit("eval", str(out), "--split", "val", "--horizon", str(horizon), "--json",
                                        "--num-samples", str(samples)))["mase"]
    said = min(found, key=found.get)
    print(f"horizon {horizon}: validation MASE " + ", ".join(f"--ar-order {k} {v:.4f}" for k, v in found.items())
          + f": {said}", flush=True)
    return said, runs[said]


def run_series(name: str, folder: Path, minutes: float, samples: int, data_dir: Path, orders: str,
               best_by: str = "auto") -> list[list]:
    reader, setup = SERIES[name]
    seq_len = setup.seq_len
    time_name, times, values = reader(data_dir)  # the series a reader ships or generates ignore it
    path = folder / f"{name}.csv"
    write_csv(path, time_name, times, values)
    start = time.perf_counter()
    runs = train_candidates(path, folder, name, setup, minutes, orders, best_by)
    trained = time.perf_counter() - start
    scaler = read_run(next(iter(runs.values()))).tokenizer
    n = len(values)
    n_test, n_val = round(n * 0.2), round(n * 0.1)
    n_train, test_start = n - n_val - n_test, n - n_test
    values2 = values[:, None]
    fitted = darts_model(values, n_train, setup, 60 * minutes)
    rows = []
    for horizon in setup.horizons:
        q, out = choose_on_validation(runs, horizon, samples)
        ours, rolled = (json.loads(rnnkit("eval", str(out), "--horizon", str(horizon), "--json", "--num-samples",
                                          str(samples), "--calibrate", mode)) for mode in ("validation", "rolling"))
        # the same paths: the same median, but for an even number of paths under --transform, whose median (the
        # mean of the two middle values, mapped back by g^-1) moves a little with the spread
        assert np.isclose(ours["mase"], rolled["mase"], rtol=1e-3), (ours, rolled)
        origins = np.arange(max(test_start, seq_len), n - horizon + 1)
        assert len(origins) == ours["origins"], (len(origins), ours["origins"])
        truth = values2[origins[:, None] + np.arange(horizon)]  # (O, H, 1)
        scale = scaler.naive_mae

        def mase(point):
            return score(truth, point.reshape(truth.shape), scale).mase

        persistence = mase(seasonal_naive(values2, origins, horizon, 1))
        naive = mase(seasonal_naive(values2, origins, horizon, scaler.season))
        max_lag = min(3 * max(scaler.season, 8), n_train // 4)
        ar = mase(autoreg_paths(values, n_train, origins, horizon, max_lag))
        d_paths = darts_paths(fitted, values, origins, horizon, samples, setup.difference, setup.transform)
        d = score(truth, np.median(d_paths, 0)[..., None], scale, d_paths[..., None])
        scores = [persistence, naive, ar, d.mase, ours["mase"]]
        digits = 4 if min(scores) < 0.01 else 3  # a row whose best rounds to 0.001 shows a digit more
        cells = [f"**{m:.{digits}f}**" if m == min(scores) else f"{m:.{digits}f}" for m in scores]  # the best bold
        cells[3] += f" ({d.coverage_80:.0%})"
        cells[4] += f" ({ours['coverage_80']:.0%})"
        rows.append([name, horizon, len(origins), scaler.season, *cells[:4], f"{q}", cells[4],
                     f"{rolled['coverage_80']:.0%}"])
        print(markdown_table(COLUMNS, rows[-1:]), f"(darts: {fitted[3]} epochs; rnnkit trained {trained:.0f} s; "
              f"rnnkit CRPS {ours['crps']:.4f} validation, {rolled['crps']:.4f} rolling; darts {d.crps:.4f})",
              flush=True)
    return rows


COLUMNS = ["series", "horizon", "origins", "season", "persistence", "seasonal naive", "AutoReg (AIC)",
           "darts RNNModel (80% cover)", "rnnkit --ar-order (chosen on val)",
           "rnnkit LSTM (80% cover, calibrated)", "rnnkit 80% cover, rolling"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget of each neural model a series")
    parser.add_argument("--series", default=",".join(SERIES), help="comma-separated subset of " + ", ".join(SERIES))
    parser.add_argument("--samples", type=int, default=200, help="sampled paths of each probabilistic forecast")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--ar-orders", default="0,auto", help="rnnkit's --ar-order values tried (numbers, q the "
                        "series' own, auto); the lowest validation loss is scored")
    parser.add_argument("--best-by", default="auto", help="rnnkit's --best-by: the validation metric that keeps "
                        "each run's checkpoint (auto: the Gaussian loss; mase: the one-step forecasts' MASE)")
    args = parser.parse_args()
    print_command()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.series.split(","):
            rows += run_series(name, Path(folder), args.minutes, args.samples, args.data_dir, args.ar_orders,
                               args.best_by)
    print("\nMASE (lower is better, the best in bold; the coverage of the 80 % interval in brackets)\n")
    print(markdown_table(COLUMNS, rows))


if __name__ == "__main__":
    main()
