"""Loss curves as a PNG, drawn with matplotlib's object API (no global state)."""

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
    ax.legend()
    bits = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2)))
    bits.set_ylabel("bits/token")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def plot_alignment(weights, rows: list[str], columns: list[str], path: Path, title: str = "",
                   row_label: str = "output", column_label: str = "source"):
    """A heat map of ``weights`` (R, C) in [0, 1]: a decoder's attention (an
    output token a row, a source token a column) or a CTC posteriorgram (a
    label a row, a frame a column). Writes the PNG and returns the figure."""
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return fig
