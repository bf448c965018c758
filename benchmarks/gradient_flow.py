"""Gradient flow through time in a vanilla RNN, an LSTM and a GRU, before and
after training on the same text: the lecture's claim, measured.

Each cell's 2 x H character language model trains for the same wall time on
tiny-shakespeare (rnnkit's Trainer, its defaults otherwise). Before and
after, on the same 8 validation windows of --seq-len characters, it measures
(rnnkit.diagnostics) the top layer's σ_max(∂h_n/∂h_{n-k}), the product of
the step Jacobians over the last k steps of the first window, at k = 10, 25
and 50: how much of step n's state still depends on the state k steps back.

    python benchmarks/gradient_flow.py [--data ../shared/data] [--minutes 2] [--hidden-size 256] [--seq-len 100]

Prints the command and one markdown table; draws benchmarks/gradient_flow.png.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rnnkit import DataConfig, LanguageModel, TextData, Trainer
from rnnkit.diagnostics import diagnostic_batch, measure
from rnnkit.training.plots import png
from rnnkit.tasks import LanguageModelTraining

from common import DATA, markdown_table, print_command

CELLS = ("rnn", "lstm", "gru")
LAGS = (10, 25, 50)


def top(curves: dict) -> list:
    return list(curves.values())[-1]


def summary(d: dict) -> dict:
    product = top(d["jacobian_norms"])
    n = len(product) - 1
    return {**{f"k={k}": product[n - k] for k in LAGS if k <= n}, "product": product}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=100)
    args = parser.parse_args()
    corpus = args.data / "tinyshakespeare" / "input.txt"
    if not corpus.exists():
        sys.exit(f"gradient_flow: no {corpus}; pass --data")
    print_command()
    data = TextData.from_file(corpus, DataConfig(seq_len=args.seq_len))
    batch = diagnostic_batch(data)
    results = {}
    for cell in CELLS:
        torch.manual_seed(0)
        model = LanguageModel(data.vocab_size, cell=cell, hidden_size=args.hidden_size, num_layers=2)
        before = summary(measure(model, batch))
        with tempfile.TemporaryDirectory() as out:
            config = LanguageModelTraining(time_limit=60 * args.minutes, eval_every=10**9, sample_length=0,
                                           precision="fp32")
            result = Trainer(model, data, config, out=Path(out) / "run", quiet=True).fit()
        results[cell] = (before, summary(measure(model, batch)), result)
    print(f"\n2 x {args.hidden_size} character language models, {args.minutes:g} min each on tiny-shakespeare, "
          f"windows of {args.seq_len}; σ_max(∂h_n/∂h_(n-k)) of the top layer.\n")
    rows = []
    for cell, (before, after, result) in results.items():
        for when, s in (("initial", before), ("trained", after)):
            steps, loss = (f"{result['step']:,}", f"{result['val_loss']:.3f}") if when == "trained" else ("0", "")
            rows.append([cell.upper(), steps, loss, when, *(f"{s[f'k={k}']:.1e}" for k in LAGS)])
    print(markdown_table(["cell", "steps", "val loss", "", *(f"k = {k}" for k in LAGS)], rows))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=100)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, index, when in ((axes[0], 0, "at initialisation"), (axes[1], 1, f"after {args.minutes:g} min")):
        for cell, pair in results.items():
            product = np.array(pair[index]["product"], dtype=float)  # NaN where not measured
            back, keep = np.arange(len(product))[::-1], np.isfinite(product)
            ax.plot(back[keep], product[keep], ".-", label=cell.upper(), markersize=3)
        ax.set(yscale="log", xlabel="steps back, n - k", title=when)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("σ_max(∂h_n/∂h_k), top layer")
    fig.tight_layout()
    Path(__file__).with_name("gradient_flow.png").write_bytes(png(fig))


if __name__ == "__main__":
    main()
