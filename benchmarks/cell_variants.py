"""The lectures' cell variants against the cells they vary, on tiny-shakespeare
at equal wall time: leaky-integrator units (against the vanilla RNN),
layer-normalised LSTM and GRU (against the LSTM and GRU), and batch
normalisation between the layers of an LSTM (torch-rnn's -batchnorm 1).

Each variant trains a 2 x H character language model with `rnnkit train`
(its defaults otherwise: batches of 32 x 64, Adam, dropout 0.2, the engine
`auto` picks) for the same --minutes of training time (validation is not
budget), one after the other in this process's machine, the same seed each.
tokens/s is tokens trained over training seconds (the step and elapsed
time the last checkpoint records); the ratio to the LSTM's is measured in the same run, so a
busy machine spreads over all rows alike only if it stays equally busy:
run it on a quiet machine.

    python benchmarks/cell_variants.py [--minutes 5] [--hidden-size 256] [--corpus PATH] [--variants lstm leaky ...]

Prints the commands and one markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rnnkit.kernels import native
from rnnkit.training.runs import LAST, read_metadata

from common import TINYSHAKESPEARE, markdown_table, metrics, print_command, rnnkit

# name -> the flags that make it
VARIANTS = {"lstm": ["--cell", "lstm"], "lnlstm": ["--cell", "lnlstm"], "gru": ["--cell", "gru"],
            "lngru": ["--cell", "lngru"], "rnn": ["--cell", "rnn"], "leaky": ["--cell", "leaky"],
            "lstm+batchnorm": ["--cell", "lstm", "--batchnorm", "true"]}
BATCH_SIZE, SEQ_LEN = 32, 64


def train(variant: str, args: argparse.Namespace, out: Path) -> dict:
    """Train one variant; its steps, tokens/s, best validation loss and engine."""
    stdout = rnnkit("train", str(args.corpus), "--out", str(out), "--time-limit", f"{60 * args.minutes:g}",
                    "--sample-length", "0", "--seed", "0", "--hidden-size", str(args.hidden_size),
                    "--num-layers", str(args.num_layers), "--batch-size", str(BATCH_SIZE), "--seq-len", str(SEQ_LEN),
                    "--precision", args.precision, *VARIANTS[variant])
    first = stdout.splitlines()[0] if stdout else ""
    engine = next((w for w in ("explicit", "fused") if f"{w} engine" in first), "?")
    vals = [r["val_loss"] for r in metrics(out) if "val_loss" in r]
    last = read_metadata(out / LAST)  # the step and training seconds (evaluation is not budget) at the end
    return {"steps": last["step"], "engine": engine, "best_val": min(vals) if vals else float("nan"),
            "tokens_per_s": last["step"] * BATCH_SIZE * SEQ_LEN / last["elapsed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time of each variant")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--corpus", type=Path, default=TINYSHAKESPEARE)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"cell_variants: no {args.corpus}; pass --corpus")
    print_command()
    native.library()  # the C kernels built (or found in the cache) before any clock starts
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants:
            results[variant] = train(variant, args, Path(folder) / variant)
    base = results.get("lstm", {}).get("tokens_per_s")
    print(f"\n{args.num_layers} x {args.hidden_size} character language models on {args.corpus.name}, "
          f"{args.minutes:g} min of training each, batches of {BATCH_SIZE} x {SEQ_LEN}, precision "
          f"{args.precision}.\n")
    print(markdown_table(["cell", "engine", "tokens/s", "steps", "best val loss (nats/char)", "tokens/s / lstm's"],
                         [[variant, r["engine"], f"{r['tokens_per_s']:,.0f}", f"{r['steps']:,}", f"{r['best_val']:.3f}",
                           f"{r['tokens_per_s'] / base:.2f}" if base else "-"] for variant, r in results.items()]))


if __name__ == "__main__":
    main()
