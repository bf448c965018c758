"""The figures of a run, drawn with matplotlib's object API (no global state):
loss curves, attention maps and posteriorgrams, and the diagnostics'
curves (gradient flow, spectral radius and saturation over training)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from rnnkit.training.runs import atomic_write_bytes


def plot_losses(rows: list[dict], path: Path, title: str = "") -> None:
    """Training and validation loss (nats/token, with bits on the right) against step."""
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), label="train", color="tab:blue", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or val:  # a run stopped before its first logged step has no line to name
        ax.legend()
    bits = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2)))
    bits.set_ylabel("bits/token")
    fig.tight_layout()
    atomic_write_bytes(path, png(fig))


def plot_alignment(weights, rows: list[str], columns: list[str], path: Path | None, title: str = "",
                   row_label: str = "output", column_label: str = "source"):
    """A heat map of ``weights`` (R, C) in [0, 1]: a decoder's attention (an
    output token a row, a source token a column) or a CTC posteriorgram (a
    label a row, a frame a column). Writes the PNG (unless ``path`` is None) and
    returns the figure."""
    from matplotlib.figure import Figure

    R, C = len(rows), len(columns)
    fig = Figure(figsize=(min(2 + 0.3 * C, 24), min(1.5 + 0.3 * R, 16)), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    for axis, labels, rotation in ((ax.yaxis, rows, 0), (ax.xaxis, columns, 90)):
        every = -(-len(labels) // 60)  # every k-th label, at most 60: more overlap into a smear
        axis.set_ticks(range(0, len(labels), every), labels[::every], rotation=rotation, fontsize=8)
    ax.set_xlabel(column_label)
    ax.set_ylabel(row_label)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    if path is not None:
        atomic_write_bytes(path, png(fig))
    return fig


def gradient_flow_figure(diagnostics: dict, title: str = ""):
    """Two panels from :func:`rnnkit.diagnostics.measure`'s numbers, a line a
    recurrent layer: ||dL/dh_k|| against the step k, and σ_max(∂h_n/∂h_k)
    against the steps back n - k, both on a log scale. Returns the figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=100)
    flow, product = fig.subplots(1, 2)
    for name, values in diagnostics["gradient_flow"].items():
        steps = [(k, v) for k, v in enumerate(values) if v]
        if steps:
            flow.plot(*zip(*steps), label=name, linewidth=1.2)
    for name, values in diagnostics["jacobian_norms"].items():
        n = max((k for k, v in enumerate(values) if v is not None), default=0)
        back = [(n - k, v) for k, v in enumerate(values) if v]
        if back:
            product.plot(*zip(*back), label=name, linewidth=1.2)
    flow.set(xlabel="step k", ylabel="||dL/dh_k||", yscale="log", title="gradient reaching each step")
    product.set(xlabel="steps back, n - k", ylabel="σ_max(∂h_n/∂h_k)", yscale="log",
                title="product of step Jacobians")
    for ax in (flow, product):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def png(fig) -> bytes:
    """A figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def training_figure(rows: list[dict], title: str = ""):
    """Three panels from metrics.jsonl's rows against step: the training and
    validation loss, the learning rate, the gradient norm (before clipping)."""
    from matplotlib.figure import Figure

    def series(key):
        return [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]

    fig = Figure(figsize=(12, 3.6), dpi=100)
    loss, lr, norm = fig.subplots(1, 3)
    for key, label, style in (("loss", "train", "-"), ("val_loss", "validation", "o-")):
        if series(key):
            loss.plot(*zip(*series(key)), style, label=label, linewidth=1, markersize=3)
    loss.set(xlabel="step", ylabel="loss (nats/token)", title="loss")
    loss.legend(fontsize=8)
    for ax, key, name in ((lr, "lr", "learning rate"), (norm, "grad_norm", "gradient norm")):
        if series(key):
            ax.plot(*zip(*series(key)), linewidth=1)
        ax.set(xlabel="step", title=name)
    norm.set_yscale("log")
    for ax in (loss, lr, norm):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def over_training_figure(rows: list[dict]):
    """From the rows --diagnostics-every wrote: each recurrent layer's gates' spectral
    radius and saturated fraction (both ends) against step. None without such rows."""
    from matplotlib.figure import Figure

    measured = [r for r in rows if "diagnostics" in r]
    if not measured:
        return None
    fig = Figure(figsize=(12, 4), dpi=100)
    radius, saturated = fig.subplots(1, 2)
    steps = [r["step"] for r in measured]
    last = measured[-1]["diagnostics"]
    for layer, gates in last["spectral_radius"].items():
        for gate in gates:
            radius.plot(steps, [r["diagnostics"]["spectral_radius"][layer][gate] for r in measured], "o-",
                        label=f"{layer}: {gate}", linewidth=1, markersize=3)
    for layer, gates in last["saturation"].items():
        for gate in gates:
            saturated.plot(steps, [sum(r["diagnostics"]["saturation"][layer][gate]) for r in measured], "o-",
                           label=f"{layer}: {gate}", linewidth=1, markersize=3)
    radius.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    radius.set(xlabel="step", ylabel="ρ(W_hh block)", title="spectral radius of each recurrent matrix")
    saturated.set(xlabel="step", ylabel="fraction < 0.1 or > 0.9 (tanh: |v| > 0.9)", title="saturated gates")
    for ax in (radius, saturated):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig
