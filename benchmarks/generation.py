"""Generation from a trained run: characters per second at batch 1 with fp32 and
with bf16 weights, and what bf16 weights cost in quality.

Speed: ``model.generate`` from a one-character prime, softmax and sampling
included, several rounds alternating fp32 and bf16; the cost per character of
the first and the last 1,000 of ``--sample-length`` characters is printed too.
Quality: the validation split (the run's own split of its corpus) is read by
generation's own step function (:class:`rnnkit.models.stepping.Stepper`) one
character at a time, as 16 parallel streams with the state carried, and
scored by the cross-entropy of each next character, with fp32 and with bf16
weights.

    python benchmarks/generation.py RUN [--sample-length 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from rnnkit import load_run
from rnnkit.data import read_text, split_ids
from rnnkit.models.stepping import Stepper


def chars_per_s(model, chars: int, precision: str) -> tuple[float, float, float]:
    """Overall chars/s, and the seconds of the first and the last 1,000 characters."""
    tokens = model.generate([0], chars, generator=torch.Generator().manual_seed(0), precision=precision)
    stamps = [time.perf_counter()]
    for _ in tokens:
        stamps.append(time.perf_counter())
    return chars / (stamps[-1] - stamps[0]), stamps[1000] - stamps[0], stamps[-1] - stamps[-1001]


@torch.no_grad()
def stepped_loss(model, ids: torch.Tensor, dtype, streams: int = 16) -> float:
    """Mean next-character cross-entropy (nats) of the stepper over ids, as parallel streams."""
    L = (len(ids) - 1) // streams
    x = ids[:streams * L].view(streams, L)
    y = ids[1:streams * L + 1].view(streams, L)
    cells = model.rnn.cells
    stepper = Stepper(model.embed, cells, model.head.weight, model.head.bias, streams, dtype)
    states = [cell.init_state(streams) for cell in cells]
    total = 0.0
    for t in range(L):
        logits, states = stepper(x[:, t], states)
        total += F.cross_entropy(logits, y[:, t], reduction="sum").item()
    return total / (streams * L)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--sample-length", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    model, tokenizer, doc = load_run(args.run, torch.device("cpu"))
    m = doc["model"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {m.num_layers} x {m.hidden_size} "
          f"{m.cell}, batch 1, {args.sample_length:,} characters a round")
    for r in range(args.rounds):
        for precision in ("fp32", "bf16"):
            rate, first, last = chars_per_s(model, args.sample_length, precision)
            print(f"  round {r + 1} {precision}: {rate:,.0f} chars/s; first 1,000 {first:.3f} s, "
                  f"last 1,000 {last:.3f} s")
    data = doc["data"]
    ids = tokenizer.encode(read_text(data.path, tokenizer.kind))
    val = torch.from_numpy(split_ids(ids, data.val_fraction, data.test_fraction)[1].copy())
    losses = {name: stepped_loss(model, val, dtype) for name, dtype in (("fp32", None), ("bf16", torch.bfloat16))}
    print(f"validation split ({len(val):,} characters, 16 streams, one step at a time), nats/char:")
    for name, loss in losses.items():
        print(f"  {name} weights: {loss:.4f} ({loss / math.log(2):.4f} bits/char)")
    print(f"  bf16 - fp32 = {losses['bf16'] - losses['fp32']:+.4f}")


if __name__ == "__main__":
    main()
