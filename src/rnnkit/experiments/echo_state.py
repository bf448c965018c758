"""Echo state networks: a fixed random recurrent reservoir with a trained
linear readout, against leaky-integrator reservoirs, a trained LSTM and
linear prediction, on one-step-ahead prediction of a real EEG recording.

An echo state network (Jaeger 2001) never trains its recurrence:

    h_t = (1 - α) ⊙ h_{t-1} + α ⊙ tanh(W_in x_t + b + W h_{t-1}),
    x̂_{t+1} = w · [x_t, h_t] + c,

with W (N x N) drawn at random and scaled to spectral radius ρ, W_in and b
drawn from U(-0.2, 0.2), α = 1 for ordinary units (the reservoir is
:class:`rnnkit.layers.reservoir.Reservoir`), and (w, c) the ridge regression
over the training steps' features F, λ ||w||² penalised, the intercept c not
(:class:`rnnkit.layers.reservoir.RidgeFit`; λ chosen on the validation
part). For ρ < 1 the state is a fading memory of the input, the "echo"; past
1 the reservoir's own dynamics take over from the input and the readout has
less to work with. Leaky-integrator units (Jaeger et al. 2007) have rates α
spread geometrically from 1 to 0.1 over the units (as ``--cell leaky``'s,
:func:`rnnkit.kernels.leaky.leak_rates` at time scale 10):
time constants 1/α of 1 to 10 steps, a memory of several time scales.

The series: the Bonn epilepsy EEG (Andrzejak et al. 2001), set E (seizure
activity), one channel at 173.61 Hz, 4,097 samples a segment. Segments 1-6
train, 7-8 validate (ridge λ, AR order), 9-10 test; z-scored with the
training part's mean and deviation. Error: the normalised mean squared
error MSE / Var(x_{t+1}) (1 = always predicting the mean), over each segment
after its first 100 steps (the reservoir's washout), averaged over segments.

Against: predicting the last value (persistence); linear autoregression
x̂_{t+1} = c + Σ_{k<p} a_k x_{t-k} by least squares (p by validation); and a
64-unit LSTM trained by backpropagation through time on windows of 256 steps
(Adam at 3e-3), which reads each segment from a zero state.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnkit.errors import DataError
from rnnkit.experiments.table import Table
from rnnkit.experiments.threads import one_thread
from rnnkit.kernels.leaky import leak_rates
from rnnkit.layers import Recurrent
from rnnkit.layers.reservoir import Reservoir, RidgeFit

SET, WASHOUT, INPUT_SCALE = "E_S/", 100, 0.2
RIDGES = (1e-6, 1e-4, 1e-2, 1.0)
ORDERS = (5, 10, 20, 40)


def bonn_segments(path: str | Path, count: int) -> list[np.ndarray]:
    """The first ``count`` segments of set E of the Bonn EEG zip, each (4097,) float64."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.startswith(SET) and n.lower().endswith(".txt"))
            segments = [np.array(archive.read(n).split(), dtype=np.float64) for n in names[:count]]
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise DataError(f"{path}: not the Bonn EEG zip ({error}); pass bonn_eeg_dataset.zip") from error
    if len(segments) < count:
        raise DataError(f"{path}: {len(segments)} segments of set E, the experiment needs {count}")
    return segments


def nmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Normalised mean squared error: mean((prediction - target)²) / var(target)."""
    return float(np.mean((prediction - target) ** 2) / np.var(target))


def score(predictions, segments: list[np.ndarray]) -> float:
    """The mean over segments of the NMSE of each segment's predictions (of s[t+1] for each
    t < T - 1) after the washout."""
    return float(np.mean([nmse(p[WASHOUT:], s[WASHOUT + 1:]) for p, s in zip(predictions, segments)]))


def lags(segment: np.ndarray, order: int) -> np.ndarray:
    """(T - 1, order): [x_t, x_{t-1}, ..., x_{t-order+1}] for every t < T - 1 (zeros before the start)."""
    padded = np.concatenate([np.zeros(order - 1), segment[:-1]])
    return np.column_stack([padded[order - 1 - k: len(padded) - k] for k in range(order)])


def ridge(features: list[np.ndarray], segments: list[np.ndarray], penalty: float):
    """The readout (w, c) minimising Σ ||F w + c - y||² + penalty ||w||² over the segments' steps after the
    washout: a :class:`rnnkit.layers.reservoir.RidgeFit` accumulated segment by segment."""
    fit = RidgeFit(features[0].shape[1], 1, penalty)
    for f, s in zip(features, segments):
        fit.add(torch.from_numpy(f[WASHOUT:]), torch.from_numpy(s[WASHOUT + 1:, None]))
    weight, bias = fit.solve()
    return weight[0].numpy(), bias.item()


def apply(fit, features: np.ndarray) -> np.ndarray:
    """A readout ``fit`` (w, c) applied to features (T, F): F w + c, (T,)."""
    w, c = fit
    return features @ w + c


def autoregression(train, val, test) -> tuple[float, float, int]:
    """(validation NMSE, test NMSE, order) of the least-squares AR model whose order validates best."""
    fits = {p: ridge([lags(s, p) for s in train], train, 1e-9) for p in ORDERS}
    def error(p, segments):
        return score([apply(fits[p], lags(s, p)) for s in segments], segments)

    best = min(ORDERS, key=lambda p: error(p, val))
    return error(best, val), error(best, test), best


def reservoir(units: int, rho: float, leak: torch.Tensor | float = 1.0, seed: int = 0) -> Reservoir:
    """N leaky tanh units (:class:`rnnkit.layers.reservoir.Reservoir`, in float64): W dense at spectral
    radius ``rho``, W_in and the bias from U(-0.2, 0.2), rates ``leak`` (one, or (N,))."""
    return Reservoir(1, units, rho, leak, input_scaling=INPUT_SCALE, density=1.0, seed=seed).double()


@torch.no_grad()
def features(layer: Reservoir, segment: np.ndarray) -> np.ndarray:
    """(T - 1, N + 1): [x_t, h_t] for every t < T - 1, from h_0 = 0."""
    states, _ = layer(torch.from_numpy(segment[None, :-1, None]))  # (1, T - 1, N)
    return np.column_stack([segment[:-1], states[0].numpy()])


def echo_state(layer: Reservoir, train, val, test) -> tuple[float, float, float]:
    """(validation NMSE, test NMSE, λ) of the reservoir's ridge readout, λ by validation."""
    found = {name: [features(layer, s) for s in part] for name, part in
             (("train", train), ("val", val), ("test", test))}
    fits = {lam: ridge(found["train"], train, lam) for lam in RIDGES}

    def error(lam, part, segments):
        return score([apply(fits[lam], f) for f in found[part]], segments)

    best = min(RIDGES, key=lambda lam: error(lam, "val", val))
    return error(best, "val", val), error(best, "test", test), best


class Predictor(nn.Module):
    """An LSTM read out at every step: x (B, T) -> x̂ of the next values (B, T)."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.rnn = Recurrent("lstm", 1, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> the predictions of the next values (B, T)."""
        outputs, _ = self.rnn(x.unsqueeze(-1))  # (B, T, H)
        return self.head(outputs).squeeze(-1)


def trained_lstm(train, val, test, steps: int, seed: int = 0) -> tuple[float, float, Predictor]:
    """(validation NMSE, test NMSE, model) of an LSTM trained on random windows of the training segments."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, series = Predictor(), [torch.tensor(s, dtype=torch.float32) for s in train]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        picks = rng.integers(0, len(series), 32)
        starts = rng.integers(0, len(series[0]) - 257, 32)
        windows = torch.stack([series[i][t: t + 257] for i, t in zip(picks, starts)])  # (32, 257)
        loss = ((model(windows[:, :-1]) - windows[:, 1:]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    @torch.no_grad()
    def predictions(segments):
        return [model(torch.tensor(s[None, :-1], dtype=torch.float32))[0].double().numpy() for s in segments]

    return score(predictions(val), val), score(predictions(test), test), model


def run(quick: bool = False, data: str | Path | None = None):
    """(Table, figure)."""
    from matplotlib.figure import Figure

    if data is None:
        raise DataError("the echo-state experiment predicts the Bonn EEG recordings: pass --data "
                        "bonn_eeg_dataset.zip (sets A-E of Andrzejak et al. 2001)")
    counts, units, radii, steps = ((3, 1, 1), 100, (0.9, 3.0), 200) if quick else \
        ((6, 2, 2), 400, (0.1, 0.5, 0.9, 0.99, 1.2, 1.5, 3.0), 1500)
    segments = bonn_segments(data, sum(counts))
    training = np.concatenate(segments[:counts[0]])
    mean, sd = training.mean(), training.std()
    segments = [(s - mean) / sd for s in segments]
    train, val, test = segments[:counts[0]], segments[counts[0]:-counts[2]], segments[-counts[2]:]
    rows, curve = [], {"ordinary": {}, "leaky": {}}
    with one_thread():
        rows.append(("persistence, x̂ = x_t", score([s[:-1] for s in val], val), score([s[:-1] for s in test], test),
                     "", 0.0))
        began = time.perf_counter()
        v, t, order = autoregression(train, val, test)
        rows.append((f"linear AR({order}), least squares", v, t, f"{order + 1} weights", time.perf_counter() - began))
        for name, leak in (("ordinary", 1.0), ("leaky", leak_rates(units, 10.0))):  # 1 to 0.1
            for rho in radii:
                began = time.perf_counter()
                v, t, lam = echo_state(reservoir(units, rho, leak), train, val, test)
                curve[name][rho] = v
                rows.append((f"echo state, {units} {name} units, ρ = {rho:g}", v, t,
                             f"{units + 2} trained, λ = {lam:g}", time.perf_counter() - began))
        began = time.perf_counter()
        v, t, model = trained_lstm(train, val, test, steps)
        trained = sum(p.numel() for p in model.parameters())
        rows.append((f"LSTM, 64 units, {steps} Adam steps", v, t, f"{trained:,} trained", time.perf_counter() - began))
    table = Table(("model", "validation NMSE", "test NMSE", "weights", "seconds"), rows,
                  ("{}", "{:.4f}", "{:.4f}", "{}", "{:.1f}"),
                  f"Bonn EEG set E, one-step-ahead prediction at 173.61 Hz; segments {counts[0]} / {counts[1]} / "
                  f"{counts[2]} for training / validation / test; NMSE = MSE / Var(x), 1 = predicting the mean")
    fig = Figure(figsize=(6, 3.8), dpi=100)
    ax = fig.subplots()
    for name, points in curve.items():
        ax.plot(list(points), list(points.values()), marker="o", label=f"echo state, {name} units")
    for name, v, *_ in (rows[1], rows[-1]):
        ax.axhline(v, linestyle="--", linewidth=1, color="grey" if name.startswith("linear") else "black",
                   label=name.split(",")[0])
    ax.set(xlabel="spectral radius ρ of W", ylabel="validation NMSE", xscale="log", yscale="log",
           title="one step ahead, Bonn EEG set E")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return table, fig
