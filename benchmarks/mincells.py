"""Minimal cells against the LSTM on tiny-shakespeare, at equal wall time, for
sequence lengths 128 to 2,048.

minGRU and minLSTM (Feng et al. 2024) gate on x_t only, so their recurrence is
linear in h and trains as a parallel scan (rnnkit's fused engine for them);
the LSTM runs torch's fused kernel. Each (cell, seq_len) pair trains rnnkit's
default recipe (2 x 512, bf16 where the CPU has it) with ``--seq-len`` changed
and the batch set so that every update sees the same 4,096 characters
(32 x 128, 8 x 512, 2 x 2048), for the same number of seconds, one run after
another; each is scored by ``rnnkit eval`` on the whole validation split as one
stream.

    python benchmarks/mincells.py [--seconds 60] [--seq-lens 128,512,2048] [--cells lstm,mingru,minlstm]

Prints a row per run as it ends: val loss, training tokens/s, steps, parameters.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rnnkit import load_run

from common import TINYSHAKESPEARE, metrics, rnnkit

TOKENS_PER_STEP = 4096


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(TINYSHAKESPEARE))
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seq-lens", default="128,512,2048")
    p.add_argument("--cells", default="lstm,mingru,minlstm")
    args = p.parse_args()
    if not Path(args.corpus).exists():
        sys.exit(f"corpus {args.corpus} not found; pass --corpus FILE")
    print(f"{args.seconds:.0f} s of training each; validation split as one stream (nats/char)", flush=True)
    header = f"{'cell':9}{'seq_len':>8}{'batch':>6}{'val loss':>10}{'tokens/s':>10}{'steps':>7}{'params':>11}"
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for seq_len in args.seq_lens.split(","):
            for cell in args.cells.split(","):
                out = Path(root) / f"{cell}-{seq_len}"
                batch = str(TOKENS_PER_STEP // int(seq_len))
                rnnkit("train", args.corpus, "--out", str(out), "--cell", cell, "--seq-len", seq_len,
                       "--batch-size", batch, "--time-limit", str(args.seconds), "--eval-every", "1000000",
                       "--sample-length", "0", "--log-every", "1", "--device", "cpu")
                score = json.loads(rnnkit("eval", str(out), "--json", "--device", "cpu"))
                last = [r for r in metrics(out) if "elapsed" in r][-1]
                speed = last["step"] * TOKENS_PER_STEP / last["elapsed"]
                params = sum(p.numel() for p in load_run(out)[0].parameters())
                rows.append(f"{cell:9}{seq_len:>8}{batch:>6}{score['loss']:>10.4f}{speed:>10,.0f}"
                            f"{last['step']:>7}{params:>11,}")
                print("\n".join([header, *rows]), flush=True)


if __name__ == "__main__":
    main()
