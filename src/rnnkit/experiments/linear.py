"""The linear recursion h_t = W h_{t-1}, and what a squashing nonlinearity
does to it.

With W = ρ Q, Q orthogonal (so that every singular value is ρ),

    ||h_t|| = ρ^t ||h_0||          exactly

which grows without bound for ρ > 1 and vanishes for ρ < 1: the same
products of W that carry gradients back through time (∂h_t/∂h_0 = W^t).
With h_t = tanh(W h_{t-1}) the state cannot grow past 1 in any unit, but
its Jacobian product ∏ diag(1 - h_t²) W still vanishes for ρ < 1 and
explodes for ρ > 1, only more slowly as more units saturate (their slope
1 - h² is near 0): a bounded state is no bounded gradient, which is why
gradients are clipped. A sigmoid's slope is at most 1/4, so its product
shrinks at least as (ρ/4)^t: it vanishes for every ρ < 4.

For each ρ the experiment prints ||h_50|| of the linear and tanh recursions
from one random unit-norm h_0 (H = 64), the share of tanh units saturated
at t = 50 (|h| > 0.9), and σ_max of the tanh and sigmoid recursions'
Jacobian products over the 50 steps; the plot draws ||h_t|| and σ_max
against t.
"""

from __future__ import annotations

import numpy as np

from rnnkit.experiments.table import Table

RHOS = (0.5, 0.9, 1.0, 1.1, 1.5, 3.0)
STEPS, HIDDEN = 50, 64


def recursions(rho: float, steps: int = STEPS, hidden: int = HIDDEN, seed: int = 0) -> dict[str, np.ndarray]:
    """||h_t|| for t = 0 .. steps of the linear, tanh and sigmoid recursions, σ_max of the
    nonlinear ones' Jacobian products ∂h_t/∂h_0, and the tanh units' saturated share at each t."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((hidden, hidden)))
    W = rho * q
    h0 = rng.standard_normal(hidden)
    h0 /= np.linalg.norm(h0)
    out = {name: [1.0] for name in ("linear", "tanh", "sigmoid")}
    out.update({"tanh product": [1.0], "sigmoid product": [1.0], "tanh saturated": [0.0]})
    h = {name: h0.copy() for name in ("linear", "tanh", "sigmoid")}
    products = {"tanh": np.eye(hidden), "sigmoid": np.eye(hidden)}
    for _ in range(steps):
        h["linear"] = W @ h["linear"]
        h["tanh"] = np.tanh(W @ h["tanh"])
        h["sigmoid"] = 1 / (1 + np.exp(-(W @ h["sigmoid"])))
        products["tanh"] = (1 - h["tanh"] ** 2)[:, None] * W @ products["tanh"]
        products["sigmoid"] = (h["sigmoid"] * (1 - h["sigmoid"]))[:, None] * W @ products["sigmoid"]
        for name in ("linear", "tanh", "sigmoid"):
            out[name].append(float(np.linalg.norm(h[name])))
        for name in ("tanh", "sigmoid"):
            out[f"{name} product"].append(float(np.linalg.svd(products[name], compute_uv=False)[0]))
        out["tanh saturated"].append(float(np.mean(np.abs(h["tanh"]) > 0.9)))
    return {k: np.array(v) for k, v in out.items()}


def run(quick: bool = False):
    """(Table, figure)."""
    from matplotlib.figure import Figure

    results = {rho: recursions(rho) for rho in RHOS}
    rows = [(rho, rho ** STEPS, r["linear"][-1], r["tanh"][-1], r["tanh saturated"][-1], r["tanh product"][-1],
             r["sigmoid product"][-1]) for rho, r in results.items()]
    table = Table(("ρ", "ρ^50", "‖h_50‖ linear", "‖h_50‖ tanh", "tanh units saturated",
                   "σ_max ∂h_50/∂h_0, tanh", "σ_max ∂h_50/∂h_0, sigmoid"), rows,
                  ("{:g}", "{:.2e}", "{:.2e}", "{:.3f}", lambda share: f"{100 * share:.0f} %", "{:.2e}", "{:.2e}"))
    fig = Figure(figsize=(12, 3.8), dpi=100)
    axes = fig.subplots(1, 3)
    for rho, r in results.items():
        axes[0].plot(r["linear"], label=f"ρ = {rho:g}")
        axes[1].plot(r["tanh"], label=f"ρ = {rho:g}")
        axes[2].plot(r["tanh product"], label=f"ρ = {rho:g}")
    axes[0].set(yscale="log", title="h_t = W h_{t-1}: ‖h_t‖", xlabel="t")
    axes[1].set(title="h_t = tanh(W h_{t-1}): ‖h_t‖", xlabel="t")
    axes[2].set(yscale="log", title="tanh: σ_max(∂h_t/∂h_0)", xlabel="t")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return table, fig
