"""Training speed of rnnkit against a plain torch.nn.LSTM loop, side by side in one run.

Both train the same character language model (embedding -> 2 x H LSTM ->
linear, Adam, gradient clipping) on the same batches of contiguous streams.
rnnkit is timed through its real Trainer (logging, carried state, schedule
and all) with evaluation turned off; the runs alternate A/B so that load on
this shared machine hits both alike. Printed: tokens/s of each and the ratio.

    python benchmarks/speed.py [--hidden-size 512] [--batch-size 64] [--seq-len 100] [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from rnnkit import DataConfig, LanguageModel, TextData, TrainConfig, Trainer

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


class PlainLSTM(nn.Module):
    def __init__(self, V, E, H, L):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, L, batch_first=True)
        self.head = nn.Linear(H, V)

    def forward(self, x, state):
        h, state = self.lstm(self.emb(x), state)
        return self.head(h), state


def time_plain(data: TextData, args) -> float:
    torch.manual_seed(0)
    model = PlainLSTM(data.vocab_size, args.embedding_dim, args.hidden_size, args.num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batcher = data.batcher(seed=0)
    state, times = None, []
    for i, (x, y) in enumerate(batcher.batches(0)):
        if i == args.steps:
            break
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        loss.item()
        times.append(time.perf_counter())
    return _tokens_per_s(times, args)


def time_rnnkit(data: TextData, args, engine: str) -> float:
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, hidden_size=args.hidden_size, num_layers=args.num_layers,
                          embedding_dim=args.embedding_dim, engine=engine)
    times = []
    cfg = TrainConfig(max_steps=args.steps, eval_every=10**9, sample_length=0, lr=1e-3, warmup_steps=0,
                      device="cpu")
    with tempfile.TemporaryDirectory() as out:
        # timed by a callback after every step; the final evaluation and save fall outside
        Trainer(model, data, cfg, out=out, quiet=True,
                callbacks=[lambda t: times.append(time.perf_counter())]).fit()
    return _tokens_per_s(times, args)


def _tokens_per_s(times, args) -> float:
    warm = min(5, len(times) // 3)  # skip the first steps (allocator and kernel warm-up)
    return args.batch_size * args.seq_len * (len(times) - 1 - warm) / (times[-1] - times[warm])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(CORPUS))
    p.add_argument("--hidden-size", type=int, default=512)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--explicit", action="store_true", help="also time the explicit engine")
    args = p.parse_args()
    if not Path(args.corpus).exists():
        sys.exit(f"corpus {args.corpus} not found; pass --corpus FILE")
    data = TextData.from_file(args.corpus, DataConfig(batch_size=args.batch_size, seq_len=args.seq_len))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 2 x {args.hidden_size} LSTM LM, "
          f"batch {args.batch_size}, seq {args.seq_len}, {args.steps} steps x {args.rounds} rounds")
    runs = {"plain torch.nn.LSTM": [], "rnnkit fused": []}
    if args.explicit:
        runs["rnnkit explicit"] = []
    for _ in range(args.rounds):
        runs["plain torch.nn.LSTM"].append(time_plain(data, args))
        runs["rnnkit fused"].append(time_rnnkit(data, args, "fused"))
        if args.explicit:
            runs["rnnkit explicit"].append(time_rnnkit(data, args, "explicit"))
    base = statistics.median(runs["plain torch.nn.LSTM"])
    print(f"{'':24}{'tokens/s (median)':>20}{'ratio to plain':>16}   per round")
    for name, values in runs.items():
        med = statistics.median(values)
        print(f"{name:24}{med:>20,.0f}{med / base:>16.3f}   " + ", ".join(f"{v:,.0f}" for v in values))


if __name__ == "__main__":
    main()
