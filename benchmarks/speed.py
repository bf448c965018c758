"""Training speed of rnnkit against a plain torch.nn.LSTM loop, side by side in one run.

Both train the same character language model (embedding -> 2 x H LSTM ->
linear, Adam, gradient clipping) on the same batches of contiguous streams.
rnnkit is timed through its real Trainer (logging, carried state, schedule
and all) with evaluation turned off; the runs alternate A/B so that load on
this shared machine hits both alike. Printed: the machine's GEMM GFLOP/s for
the shapes the model multiplies (and a 2048 square), then tokens/s of each
loop, the ratio, achieved matrix GFLOP/s and MFU (achieved / best GEMM).

    python benchmarks/speed.py [--hidden-size 512] [--batch-size 64] [--seq-len 100] [--steps 60]
                               [--explicit] [--bf16]
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

from plain_lstm import CORPUS, PlainLSTM
from rnnkit import DataConfig, LanguageModel, TextData, TrainConfig, Trainer



def time_plain(data: TextData, args, bf16: bool = False) -> float:
    torch.manual_seed(0)
    model = PlainLSTM(data.vocab_size, args.embedding_dim, args.hidden_size, args.num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batcher = data.batcher(seed=0)
    state, times = None, []
    for i, (x, y) in enumerate(batcher.batches(0)):
        if i == args.steps:
            break
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits, _, state = model(x, state=state)
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        loss.item()
        times.append(time.perf_counter())
    return _tokens_per_s(times, args)


def time_rnnkit(data: TextData, args, engine: str, precision: str = "fp32") -> float:
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, hidden_size=args.hidden_size, num_layers=args.num_layers,
                          embedding_dim=args.embedding_dim, engine=engine)
    times = []
    cfg = TrainConfig(max_steps=args.steps, eval_every=10**9, sample_length=0, lr=1e-3, warmup_steps=0,
                      device="cpu", precision=precision)
    with tempfile.TemporaryDirectory() as out:
        # timed by a callback after every step; the final evaluation and save fall outside
        Trainer(model, data, cfg, out=out, quiet=True,
                callbacks=[lambda t: times.append(time.perf_counter())]).fit()
    return _tokens_per_s(times, args)


def training_flops_per_token(V: int, E: int, H: int, L: int) -> float:
    """Matrix FLOPs per token of training, forward + backward (= 3 x forward):
    LSTM layer l multiplies its I_l + H inputs into 4H gates, the head H into V."""
    macs = sum(4 * H * ((E if layer == 0 else H) + H) for layer in range(L)) + H * V
    return 3 * 2 * macs


def gemm_gflops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """Measured GFLOP/s of an (m x k) @ (k x n) product."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start) / 1e9


def gemm_peak(args, V: int, dtype: torch.dtype) -> tuple[float, dict]:
    """The best GFLOP/s over a 2048-square product and the shapes the model multiplies."""
    B, T, E, H = args.batch_size, args.seq_len, args.embedding_dim, args.hidden_size
    shapes = {"2048 square": (2048, 2048, 2048), "input projection, layer 1": (B * T, E, 4 * H),
              "input projection, layer 2": (B * T, H, 4 * H), "recurrent step": (B, H, 4 * H),
              "output layer": (B * T, H, V)}
    measured = {name: gemm_gflops(*shape, dtype) for name, shape in shapes.items()}
    return max(measured.values()), measured


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
    p.add_argument("--bf16", action="store_true", help="also time bf16 autocast, plain and rnnkit")
    args = p.parse_args()
    if not Path(args.corpus).exists():
        sys.exit(f"corpus {args.corpus} not found; pass --corpus FILE")
    # a 1 % validation split keeps the final evaluation that Trainer.fit runs (untimed) short
    data = TextData.from_file(args.corpus, DataConfig(batch_size=args.batch_size, seq_len=args.seq_len,
                                                      val_fraction=0.01))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 2 x {args.hidden_size} LSTM LM, "
          f"batch {args.batch_size}, seq {args.seq_len}, {args.steps} steps x {args.rounds} rounds")
    timers = {"plain torch.nn.LSTM": lambda: time_plain(data, args),
              "rnnkit fused": lambda: time_rnnkit(data, args, "fused")}
    if args.explicit:
        timers["rnnkit explicit"] = lambda: time_rnnkit(data, args, "explicit")
    if args.bf16:
        timers["plain torch.nn.LSTM, bf16 autocast"] = lambda: time_plain(data, args, bf16=True)
        timers["rnnkit fused, bf16"] = lambda: time_rnnkit(data, args, "fused", "bf16")
    peaks = {}
    for dtype in (torch.float32, torch.bfloat16) if args.bf16 else (torch.float32,):
        peaks[dtype], measured = gemm_peak(args, data.vocab_size, dtype)
        print(f"{str(dtype).removeprefix('torch.')} GEMM GFLOP/s: "
              + ", ".join(f"{name} {g:,.0f}" for name, g in measured.items()))
    flops = training_flops_per_token(data.vocab_size, args.embedding_dim, args.hidden_size, args.num_layers)
    runs = {name: [] for name in timers}
    for _ in range(args.rounds):  # alternate, so that load on the machine hits all alike
        for name, timer in timers.items():
            runs[name].append(timer())
    base = statistics.median(runs["plain torch.nn.LSTM"])
    print(f"training FLOPs per token (matrix products, forward + backward): {flops / 1e6:.1f} M; "
          f"MFU = achieved / best GEMM GFLOP/s of the same dtype")
    print(f"{'':36}{'tokens/s (median)':>18}{'ratio to plain fp32':>21}{'GFLOP/s':>9}{'MFU':>7}   per round")
    for name, values in runs.items():
        med = statistics.median(values)
        peak = peaks[torch.bfloat16 if "bf16" in name else torch.float32]
        print(f"{name:36}{med:>18,.0f}{med / base:>21.3f}{med * flops / 1e9:>9.0f}"
              f"{med * flops / 1e9 / peak:>7.2f}   " + ", ".join(f"{v:,.0f}" for v in values))


if __name__ == "__main__":
    main()
