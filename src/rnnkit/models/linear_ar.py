"""A linear autoregression fitted in closed form: the starting point of the
forecaster's AR component (``--ar-order``), so that training learns only
what the linear model leaves (the hybrid of Zhang 2003, "Time series
forecasting using a hybrid ARIMA and neural network model").

For each channel c of a normalised series z (n, C), over the rows t with
all q lags inside the series (t = first + q .. n - 1)::

    z_t,c = a_(0,c) + Σ_(j=1..q) a_(j,c) z_(t-j),c + e_t,c
    [a_(0,c) .. a_(q,c)] = argmin Σ_t e_t,c²      (least squares, numpy.linalg.lstsq)
    σ²_c = Σ_t e_t,c² / m                        (m rows: the maximum-likelihood variance)

The order q of ``--ar-order auto`` minimises Akaike's criterion, summed over
channels, on the same rows for every candidate (those of the largest order,
so the criteria compare like with like; Lütkepohl 2005, 4.3)::

    AIC(q) = Σ_c m log σ²_c(q) + 2 C (q + 1)
    BIC(q) = Σ_c m log σ²_c(q) + log(m) C (q + 1)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

CRITERIA = ("aic", "bic")


class LinearAR(NamedTuple):
    """An AR(q) per channel: ``weight`` (C, q) the coefficients of z_(t-q) .. z_(t-1) (oldest first, as
    the forecaster's depthwise convolution holds them), ``intercept`` (C,), ``variance`` (C,) the
    residuals' on the fitted rows, ``rows`` m."""

    weight: np.ndarray
    intercept: np.ndarray
    variance: np.ndarray
    rows: int


def lag_matrix(z: np.ndarray, q: int, targets: np.ndarray) -> np.ndarray:
    """(m, q) the values z_(t-q) .. z_(t-1) of one channel z (n,) before each target t (m,), oldest first."""
    return z[targets[:, None] + np.arange(-q, 0)[None]]


def fit_linear_ar(z: np.ndarray, q: int, first: int = 0, rows_from: int | None = None) -> LinearAR:
    """The least-squares AR(q) of each channel of z (n, C) over targets t = max(first + q, rows_from) .. n - 1
    (``first``: rows before it are not data, such as a differenced series' first 0)."""
    n, C = z.shape
    targets = np.arange(max(first + q, rows_from or 0), n)
    m = len(targets)
    weight, intercept, variance = np.zeros((C, q)), np.zeros(C), np.zeros(C)
    for c in range(C):
        design = np.hstack([lag_matrix(z[:, c], q, targets), np.ones((m, 1))])  # (m, q + 1)
        coef, *_ = np.linalg.lstsq(design, z[targets, c], rcond=None)
        residual = z[targets, c] - design @ coef
        weight[c], intercept[c], variance[c] = coef[:q], coef[q], float(residual @ residual) / m
    return LinearAR(weight, intercept, variance, m)


def rows_needed(q: int) -> int:
    """The fewest rows a least-squares AR(q) is fitted on: more than its q + 1 coefficients, so the
    residual variance is not 0 by construction."""
    return 2 * (q + 1)


def choose_order(z: np.ndarray, max_order: int, first: int = 0, criterion: str = "aic") -> tuple[int, dict]:
    """(q, {q: criterion}) for q = 1 .. ``max_order``, each fitted on the rows of the largest order."""
    rows_from = first + max_order
    scores = {}
    for q in range(1, max_order + 1):
        fit = fit_linear_ar(z, q, first, rows_from)
        penalty = 2.0 if criterion == "aic" else math.log(fit.rows)
        scores[q] = float(fit.rows * np.log(np.maximum(fit.variance, 1e-300)).sum() + penalty * z.shape[1] * (q + 1))
    return min(scores, key=scores.get), scores


def default_max_order(train_length: int, seq_len: int, season: int) -> int:
    """The largest order ``auto`` tries: 10 log10(n) (R's ``ar``) or one season and a step, whichever is
    more, kept inside a window (q < seq_len) and to a quarter of the training part."""
    wanted = max(round(10 * math.log10(max(train_length, 10))), season + 1)
    return max(1, min(wanted, seq_len - 1, train_length // 4))
