"""Mackey-Glass (τ = 17) free-running prediction with an echo state network:
the normalised error 84 steps ahead (NRMSE_84) of rnnkit's reservoir and
ridge readout (``rnnkit.layers.reservoir``), beside reservoirpy's on the same
series, protocol and settings, in one run, and beside the figure Jaeger & Haas
(2004, Science 304:78-80) published: log10 NRMSE_84 = -4.2 (1000 units, a
readout trained on 3000 steps, 100 free runs).

The series (generated here, nothing downloaded): dx/dt = 0.2 x(t-17) /
(1 + x(t-17)^10) - 0.1 x(t), integrated by fourth-order Runge-Kutta at
dt = 0.1 (the delayed value at a half step interpolated between its grid
neighbours) from x = 1.2, sampled every time unit (Δ = 1, as Jaeger's), its
first 1000 samples dropped as the transient. z-scored with the training
part's mean and deviation (a linear map: the NRMSE is the same in either
scale).

The protocol (Jaeger 2001, GMD report 148, section 6.3; Jaeger & Haas 2004):

- train on ``--train-steps`` (3000) samples: the reservoir reads u_t, the
  readout learns u_(t+1) from [x_t, u_t] by ridge regression, the first
  ``--washout`` (1000) states left out;
- test on ``--trials`` (100) later, disjoint segments of 1084 samples: the
  reservoir, from a zero state, reads the first 1000 (teacher forcing), then
  runs free for 84 steps, each prediction fed back as its next input;
- NRMSE_84 = sqrt(mean over trials of (û_(t+84) - u_(t+84))² / var(u)).

Settings chosen on separate validation trials (the segments before the test
ones) over a small grid of spectral radius and ridge λ, once per library, each
with its own draws; both then run ``--seeds`` reservoirs on the test trials,
reported as the median and range. Jaeger & Haas's network differs: output
feedback with a noise term instead of a ridge penalty, and a tanh(y - 1)
transform of the series.

    python benchmarks/mackey_glass.py [--units 1000] [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from common import markdown_table, print_command
from rnnkit.layers.reservoir import Reservoir, RidgeFit

JAEGER_HAAS_LOG10 = -4.2  # log10 NRMSE_84, Jaeger & Haas 2004 (Science 304:78-80), 1000 units, 100 runs
TEACHER, HORIZON = 1000, 84


def mackey_glass(n: int, tau: float = 17.0, dt: float = 0.1, every: int = 10, x0: float = 1.2,
                 transient: int = 1000) -> np.ndarray:
    """(n,) samples of the Mackey-Glass series, one each ``every`` steps of dt (see the module's docstring)."""
    lag = round(tau / dt)
    steps = (n + transient) * every
    x = np.empty(steps + lag + 1)
    x[:lag + 1] = x0  # the history before t = 0

    def f(now, delayed):
        return 0.2 * delayed / (1 + delayed ** 10) - 0.1 * now

    for k in range(lag, lag + steps):
        d0, d1 = x[k - lag], x[k - lag + 1]
        half = (d0 + d1) / 2
        k1 = f(x[k], d0)
        k2 = f(x[k] + dt / 2 * k1, half)
        k3 = f(x[k] + dt / 2 * k2, half)
        k4 = f(x[k] + dt * k3, d1)
        x[k + 1] = x[k] + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + transient * every + every:: every][:n]


def split(series: np.ndarray, train_steps: int, trials: int):
    """(training part (T,), validation trials (trials, 1084), test trials (trials, 1084)), z-scored by the
    training part."""
    length = TEACHER + HORIZON
    train = series[:train_steps]
    mean, sd = train.mean(), train.std()
    z = (series - mean) / sd
    after = z[train_steps:].reshape(-1, length)
    return z[:train_steps], after[:trials], after[trials:2 * trials]


def nrmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    """sqrt(mean (û - u)² / var(u)), var of the series z-scored by the training part (≈ 1)."""
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


# -- rnnkit -------------------------------------------------------------------------------------


class RnnkitESN:
    """rnnkit's :class:`Reservoir` in float64 and a :class:`RidgeFit` readout of [x_t, u_t]."""

    name = "rnnkit (layers.reservoir)"

    def __init__(self, units, radius, ridge, input_scaling, density, seed):
        self.reservoir = Reservoir(1, units, radius, 1.0, input_scaling, density, seed).double()
        self.ridge = ridge

    @torch.no_grad()
    def fit(self, train: np.ndarray, washout: int) -> None:
        u = torch.from_numpy(train)
        states, _ = self.reservoir(u[None, :-1, None])  # (1, T-1, N)
        fit = RidgeFit(self.reservoir.hidden_size + 1, 1, self.ridge)
        fit.add(torch.cat([states[0], u[:-1, None]], 1)[washout:], u[1:, None][washout:])
        self.weight, self.bias = fit.solve()  # (1, N+1), (1,)

    @torch.no_grad()
    def free_run(self, trials: np.ndarray) -> np.ndarray:
        """(trials,) the prediction 84 steps after each trial's first 1000 samples, all trials as one batch."""
        u = torch.from_numpy(trials[:, :TEACHER, None])  # (B, 1000, 1)
        state = None
        for start in range(0, TEACHER - 1, 50):  # teacher forcing up to the input u_998, 50 steps a call
            _, state = self.reservoir(u[:, start:min(start + 50, TEACHER - 1)], state)  # (not 1000 steps' states)
        last = u[:, -1]  # (B, 1)
        for _ in range(HORIZON):
            states, state = self.reservoir(last[:, None], state=state)  # (B, 1, N)
            last = torch.cat([states[:, 0], last], 1) @ self.weight.T + self.bias  # (B, 1): û of the next step
        return last[:, 0].numpy()


# -- reservoirpy ----------------------------------------------------------------------------------


class ReservoirpyESN:
    """reservoirpy's Reservoir and Ridge nodes, the same settings and readout features [x_t, u_t]."""

    name = "reservoirpy {version}"

    def __init__(self, units, radius, ridge, input_scaling, density, seed):
        import reservoirpy
        from reservoirpy.mat_gen import uniform
        from reservoirpy.nodes import Reservoir as RpyReservoir, Ridge

        self.name = self.name.format(version=reservoirpy.__version__)
        self.reservoir = RpyReservoir(units, lr=1.0, sr=radius, input_scaling=input_scaling, input_connectivity=1.0,
                                      rc_connectivity=density, Win=uniform, bias=uniform(units,
                                      low=-input_scaling, high=input_scaling, seed=seed + 1), seed=seed)
        self.readout = Ridge(ridge=ridge)

    def fit(self, train: np.ndarray, washout: int) -> None:
        u = train[:, None]
        states = self.reservoir.run(u[:-1])  # (T-1, N)
        self.readout.fit(np.hstack([states, u[:-1]]), u[1:], warmup=washout)

    def free_run(self, trials: np.ndarray) -> np.ndarray:
        out = []
        for trial in trials:
            self.reservoir.reset()
            self.reservoir.run(trial[:TEACHER - 1, None])
            last = trial[TEACHER - 1:TEACHER]  # (1,)
            for _ in range(HORIZON):
                x = self.reservoir.step(last)
                last = self.readout.step(np.concatenate([x, last]))
            out.append(last[0])
        return np.array(out)


def evaluate(kind, settings: dict, seed: int, train, trials, washout) -> tuple[float, float]:
    """(NRMSE_84 on ``trials``, seconds to fit and run) of one reservoir."""
    began = time.perf_counter()
    model = kind(seed=seed, **settings)
    model.fit(train, washout)
    return nrmse(model.free_run(trials), trials[:, -1]), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--density", type=float, default=0.01, help="of the recurrent matrix (Jaeger's 1 %%)")
    parser.add_argument("--input-scaling", type=float, default=0.3)
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--washout", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--radii", default="0.9,1.0,1.1")
    parser.add_argument("--ridges", default="1e-12,1e-10,1e-8,1e-6")
    parser.add_argument("--quick", action="store_true", help="200 units, 20 trials, 2 seeds")
    args = parser.parse_args()
    if args.quick:
        args.units, args.trials, args.seeds = 200, 20, 2
    print_command()
    torch.set_num_threads(1)
    series = mackey_glass(args.train_steps + 2 * args.trials * (TEACHER + HORIZON))
    train, val, test = split(series, args.train_steps, args.trials)
    grid = list(itertools.product(map(float, args.radii.split(",")), map(float, args.ridges.split(","))))
    rows = []
    for kind in (RnnkitESN, ReservoirpyESN):
        common = {"units": args.units, "input_scaling": args.input_scaling, "density": args.density}
        scores = {}
        for radius, ridge in grid:  # validation, one reservoir (seed 0) a setting
            scores[radius, ridge] = evaluate(kind, {**common, "radius": radius, "ridge": ridge}, 0, train, val,
                                             args.washout)[0]
            print(f"{kind.__name__} validation ρ {radius:g} λ {ridge:g}: NRMSE_84 {scores[radius, ridge]:.3g}",
                  flush=True)
        radius, ridge = min(scores, key=scores.get)
        runs = [evaluate(kind, {**common, "radius": radius, "ridge": ridge}, seed, train, test, args.washout)
                for seed in range(1, args.seeds + 1)]
        errors = np.array([e for e, _ in runs])
        name = kind(seed=0, **common, radius=radius, ridge=ridge).name
        rows.append((name, f"{args.units}, ρ {radius:g}, λ {ridge:g}", f"{np.median(errors):.2e}",
                     f"{np.log10(np.median(errors)):.2f}", f"{errors.min():.2e} - {errors.max():.2e}",
                     f"{np.mean([s for _, s in runs]):.1f}"))
    rows.append(("Jaeger & Haas 2004 (published)", "1000, output feedback + noise", f"{10 ** JAEGER_HAAS_LOG10:.2e}",
                 f"{JAEGER_HAAS_LOG10:.2f}", "100 runs, one network", "-"))
    print()
    print(markdown_table(("ESN", "units, settings", f"NRMSE_84 (median of {args.seeds} reservoirs)", "log10",
                          "range over reservoirs", "seconds a reservoir"), rows))
    print(f"\nMackey-Glass τ = 17, Δ = 1; trained on {args.train_steps} steps ({args.washout} washout), "
          f"{args.trials} test runs of {TEACHER} teacher-forced + {HORIZON} free steps; settings by validation on "
          f"{args.trials} other runs over ρ in {{{args.radii}}} and λ in {{{args.ridges}}}")


if __name__ == "__main__":
    main()
