"""Numerics: a softmax or a log of a sum of exponentials written as the
formula reads overflows or underflows in float32 where the log-sum-exp form
does not (Goodfellow et al. 4.1).

float32 holds numbers up to about 3.4e38 = e^88.7, and down to about
1.4e-45 = e^-103.3 (as denormals, with fewer and fewer digits below
1.2e-38 = e^-87.3). So for scores y (a logit vector)::

    log Σ_i exp(y_i)                  naive: inf once a y_i > 88.7, -inf once every y_i < -103.3
    m + log Σ_i exp(y_i - m)          m = max_i y_i: every exp(y_i - m) is in (0, 1] and one of them is 1,
                                      so the sum lies in [1, V] and neither overflows nor vanishes
    softmax(y)_i = exp(y_i) / Σ_j exp(y_j)      naive: inf/inf or 0/0 = nan at the same scores
    log softmax(y)_i = y_i - lse(y)              finite for any finite scores; log(softmax(y)_i) is -inf
                                                  once p_i underflows, though the loss it stands for is finite

The experiment evaluates both forms on score vectors (m, m - 1, m - 2) over a
range of m, and on a confident distribution whose least likely class is far
below the others, in float32, beside the exact value in float64. This is
why every loss in rnnkit goes through ``log_softmax`` / ``logsumexp`` and
never takes the log of a probability (DESIGN.md, "Numerics").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.experiments.table import Table

ROWS = ((10.0, 9.0, 8.0), (88.0, 87.0, 86.0), (89.0, 88.0, 87.0), (1000.0, 999.0, 998.0),
        (-100.0, -101.0, -102.0), (-110.0, -111.0, -112.0), (0.0, -50.0, -200.0))


def naive_logsumexp(y: Tensor) -> Tensor:
    """log Σ exp(y) over the last axis, as the formula reads."""
    return torch.log(torch.exp(y).sum(-1))


def stable_logsumexp(y: Tensor) -> Tensor:
    """m + log Σ exp(y - m), m the maximum over the last axis (what ``torch.logsumexp`` computes)."""
    m = y.max(-1, keepdim=True).values
    return m.squeeze(-1) + torch.log(torch.exp(y - m).sum(-1))


def naive_softmax(y: Tensor) -> Tensor:
    """exp(y) / Σ exp(y) over the last axis, as the formula reads."""
    e = torch.exp(y)
    return e / e.sum(-1, keepdim=True)


def stable_log_softmax(y: Tensor) -> Tensor:
    """y - (m + log Σ exp(y - m)) over the last axis."""
    return y - stable_logsumexp(y).unsqueeze(-1)


def evaluate(scores: tuple[float, ...]) -> tuple:
    """A row: (the scores, naive log Σ exp in float32, the log-sum-exp form in float32, the exact
    value (float64), whether the naive softmax is all finite, log p of the last score naively
    (log of the softmax) and by log-softmax in float32, the exact log p (float64))."""
    y = torch.tensor(scores, dtype=torch.float32)
    exact = torch.tensor(scores, dtype=torch.float64)
    return (scores, naive_logsumexp(y).item(), stable_logsumexp(y).item(), torch.logsumexp(exact, -1).item(),
            bool(torch.isfinite(naive_softmax(y)).all()), torch.log(naive_softmax(y))[-1].item(),
            stable_log_softmax(y)[-1].item(), torch.log_softmax(exact, -1)[-1].item())


def _number(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else str(x)


def run(quick: bool = False):
    """(Table, figure). ``quick`` changes nothing: the experiment takes milliseconds."""
    from matplotlib.figure import Figure

    table = Table(("scores y (float32)", "log Σ exp y, naive", "m + log Σ exp(y - m)", "exact (float64)",
                   "naive softmax finite", "log p_last: log(softmax)", "log_softmax", "exact log p_last"),
                  [evaluate(scores) for scores in ROWS],
                  (lambda s: "(" + ", ".join(f"{v:g}" for v in s) + ")", _number, _number, _number,
                   lambda ok: "yes" if ok else "no (nan)", _number, _number, _number),
                  "float32 overflows above e^88.7 and underflows below e^-103.3: the naive forms give inf, "
                  "-inf or nan there, the log-sum-exp forms the float64 value to float32's precision.")
    ms = torch.linspace(-130.0, 130.0, 521)
    y = torch.stack([ms, ms - 1, ms - 2], dim=-1)  # (N, 3), float32
    exact = torch.logsumexp(y.double(), -1)
    fig = Figure(figsize=(6, 3.8), dpi=100)
    ax = fig.subplots()
    ceiling = 1e3  # where a non-finite result is drawn
    for name, f, style in (("log Σ exp y, naive", naive_logsumexp, "--"),
                           ("m + log Σ exp(y - m)", stable_logsumexp, "-")):
        value = f(y).double()
        error = (value - exact).abs().clamp_min(1e-9)  # 1e-9: exact to float64 on the log axis
        error[~torch.isfinite(value)] = ceiling
        ax.plot(ms, error, style, label=name, linewidth=1.5)
    for edge in (math.log(torch.finfo(torch.float32).max), math.log(2.0 ** -149)):
        ax.axvline(edge, color="grey", linewidth=0.8, linestyle=":")
    ax.set(yscale="log", ylim=(5e-10, 3e3), xlabel="m = max score (scores m, m-1, m-2)",
           ylabel="|float32 - float64| (top: inf)", title="log Σ exp in float32: naive against log-sum-exp")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left")
    fig.tight_layout()
    return table, fig
