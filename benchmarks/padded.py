"""A bidirectional recurrent layer over a padded batch, forward and backward,
on the fused engine (torch's kernels over packed sequences) and on the
explicit one (rnnkit's layer nodes, which run the still-running rows of each
step): ms per call, the best of ``--rounds`` rounds in which the two take turns.

    python benchmarks/padded.py                     # lstm, gru, rnn at H 64 and 256, fp32 and bf16
"""

import argparse
import time

import torch

from rnnkit.kernels.memory import keep_freed_memory
from rnnkit.layers import Recurrent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--hidden-sizes", default="64,256")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=60)
    parser.add_argument("--input-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()  # as the Trainer does
    B, T, I = args.batch_size, args.max_length, args.input_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bidirectional, 1 layer, batch {B}, "
          f"lengths 10-{T}, input {I}; ms per forward and backward")
    print(f"{'cell':5}{'H':>5}{'precision':>10}{'fused':>9}{'explicit':>10}{'fused / explicit':>18}")
    for cell in args.cells.split(","):
        for H in map(int, args.hidden_sizes.split(",")):
            for precision in ("fp32", "bf16"):
                torch.manual_seed(0)
                x = torch.randn(B, T, I)
                lengths = torch.randint(10, T + 1, (B,))
                lengths[0] = T
                layers = {e: Recurrent(cell, I, H, bidirectional=True, engine=e) for e in ("fused", "explicit")}
                layers["explicit"].load_state_dict(layers["fused"].state_dict())

                def step(layer):
                    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                        out, _ = layer(x, lengths=lengths)
                    out.float().pow(2).sum().backward()

                best = {e: float("inf") for e in layers}
                for _ in range(args.rounds):
                    for engine, layer in layers.items():
                        for _ in range(3):
                            step(layer)
                        start = time.perf_counter()
                        for _ in range(10):
                            step(layer)
                        best[engine] = min(best[engine], (time.perf_counter() - start) / 10 * 1e3)
                print(f"{cell:5}{H:>5}{precision:>10}{best['fused']:>9.1f}{best['explicit']:>10.1f}"
                      f"{best['fused'] / best['explicit']:>18.2f}")


if __name__ == "__main__":
    main()
