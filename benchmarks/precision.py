"""bf16 against fp32 after the same number of steps: does mixed precision cost
quality? rnnkit's default recipe is trained twice on tiny-shakespeare from the
same seed, once with ``--precision fp32`` and once with ``--precision bf16``
(autocast, fp32 master weights, fp32 loss), for the same number of steps; both
are scored by ``rnnkit eval`` on the whole validation split as one stream.

    python benchmarks/precision.py [--steps 400] [--corpus PATH]

Prints the two losses, their difference and each run's training tokens/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import TINYSHAKESPEARE, metrics, rnnkit


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(TINYSHAKESPEARE))
    p.add_argument("--steps", type=int, default=400)
    args = p.parse_args()
    if not Path(args.corpus).exists():
        sys.exit(f"corpus {args.corpus} not found; pass --corpus FILE")
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for precision in ("fp32", "bf16"):
            out = Path(root) / precision
            rnnkit("train", args.corpus, "--out", str(out), "--max-steps", str(args.steps), "--precision",
                   precision, "--eval-every", str(args.steps), "--sample-length", "0", "--device", "cpu")
            score = json.loads(rnnkit("eval", str(out), "--json", "--device", "cpu"))
            rows = metrics(out)
            speed = statistics.median(r["tokens_per_s"] for r in rows if "tokens_per_s" in r)
            results[precision] = (score["loss"], speed)
    (fp32, fp32_speed), (bf16, bf16_speed) = results["fp32"], results["bf16"]
    print(f"\nafter {args.steps} steps of the default recipe (validation split as one stream, nats/char)")
    print(f"  fp32 {fp32:.4f}   ({fp32_speed:,.0f} tokens/s)")
    print(f"  bf16 {bf16:.4f}   ({bf16_speed:,.0f} tokens/s, {bf16_speed / fp32_speed:.2f} x fp32)")
    print(f"  bf16 - fp32 = {bf16 - fp32:+.4f}")


if __name__ == "__main__":
    main()
