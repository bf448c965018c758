"""Data-parallel scaling: measured on 1 and 2 processes here, estimated for 8, 64 and 512.

A data-parallel step at W workers, each with the same rows (weak scaling: the
global batch grows with W), costs

    t(W) = t_c + t_ar(W),    t_ar(W) = 2 (W-1)/W * S / beta + 2 (W-1) alpha + 2 * 2 (W-1) alpha

t_c the compute of one worker's rows (forward, backward, optimizer), t_ar a ring
all-reduce of the gradients' S bytes (4 a parameter): each worker sends and
receives 2 (W-1)/W S bytes in 2 (W-1) messages, beta the link's bandwidth and
alpha a message's latency; and the two all-reduces of a few numbers by which
rnnkit's ranks agree each step on the loss and the clock. Throughput is W b T / t(W) tokens a second and the
scaling efficiency t(1) / t(W). DistributedDataParallel overlaps the all-reduce
with backward, so t_c + t_ar bounds the step from above.

Measured here, one thread a process: t_c by rnnkit's Trainer alone; t(2) by the
Trainer in two gloo processes under torchrun; beta and alpha from gloo
all-reduces of S bytes and of 4 bytes between those two processes. The model's
t(2) from t_c, beta and alpha is checked against the measured t(2). For 8, 64
and 512 workers the table uses the measured beta and alpha (processes sharing
this machine), and assumed networks: 10 Gb/s Ethernet (beta 1.25 GB/s, alpha
50 us) and 100 Gb/s InfiniBand (12.5 GB/s, 5 us).

    python benchmarks/scaling.py [--hidden-size 512] [--batch-size 32] [--seq-len 100] [--steps 30]

Prints the command and one markdown table.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from rnnkit import DataConfig, LanguageModel, TextData, Trainer
from rnnkit.tasks import LanguageModelTraining

from common import markdown_table, print_command, torchrun

NETWORKS = {"10 Gb/s Ethernet": (1.25e9, 50e-6), "100 Gb/s InfiniBand": (12.5e9, 5e-6)}


def step_time(args, folder: Path, out: str) -> tuple[float, int]:
    """Seconds a step of rnnkit's Trainer (after 5 warm-up steps) and the parameter count, for this
    process's share of a batch of ``args.batch_size`` rows a process."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    data = TextData.from_file(folder / "corpus.txt", DataConfig(batch_size=args.batch_size * world,
                                                               seq_len=args.seq_len))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, hidden_size=args.hidden_size, num_layers=2, dropout=0.0)
    times = []
    cfg = LanguageModelTraining(max_steps=args.steps, eval_every=10**9, log_every=10**9, sample_length=0, device="cpu",
                                precision="fp32")
    trainer = Trainer(model, data, cfg, out=folder / out, quiet=True)
    trainer.callbacks.append(lambda t: times.append(time.perf_counter()))
    trainer.fit()
    steps = times[5:]
    return (steps[-1] - steps[0]) / (len(steps) - 1), sum(p.numel() for p in model.parameters())


def all_reduce_time(nbytes: int, repeats: int = 20) -> float:
    t = torch.zeros(max(1, nbytes // 4))
    dist.all_reduce(t)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(t)
    return (time.perf_counter() - start) / repeats


def worker(args, folder: Path) -> None:
    """One of two torchrun processes: its step time, then beta and alpha; rank 0 writes them."""
    dist.init_process_group("gloo")
    t2, params = step_time(args, folder, "two")
    big, small = all_reduce_time(4 * params), all_reduce_time(4, repeats=200)
    if dist.get_rank() == 0:
        alpha = small / 2  # 2 (W-1) = 2 messages at W = 2, of almost nothing
        beta = (4 * params) / (big - 2 * alpha)  # 2 (W-1)/W = 1 at W = 2
        (folder / "two.json").write_text(json.dumps({"t2": t2, "alpha": alpha, "beta": beta}))
    dist.destroy_process_group()


def t_allreduce(world: int, nbytes: float, beta: float, alpha: float) -> float:
    """The gradients' ring all-reduce and the two small ones of a step (see the module docstring)."""
    return 2 * (world - 1) / world * nbytes / beta + 3 * 2 * (world - 1) * alpha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32, help="rows a process")
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args, Path(args.worker))
    print_command()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = Path(torch.__file__).parent.joinpath("nn", "modules", "module.py").read_text()  # ships with torch
        (folder / "corpus.txt").write_text(text * max(1, 2_000_000 // len(text)))
        t1, params = step_time(args, folder, "one")
        torchrun(__file__, "--worker", tmp, *sys.argv[1:])
        two = json.loads((folder / "two.json").read_text())
    nbytes, tokens = 4 * params, args.batch_size * args.seq_len
    t_c = t1
    print(f"\n2 x {args.hidden_size} LSTM, {params:,} parameters ({nbytes / 1e6:.1f} MB of gradients), "
          f"{args.batch_size} x {args.seq_len} tokens a process, fp32, one thread a process. Measured: t(1) = "
          f"{t1 * 1e3:.1f} ms, t(2) = {two['t2'] * 1e3:.1f} ms; gloo here: beta {two['beta'] / 1e9:.2f} GB/s, "
          f"alpha {two['alpha'] * 1e6:.0f} us. Model at W = 2: t_c + t_ar = "
          f"{(t_c + t_allreduce(2, nbytes, two['beta'], two['alpha'])) * 1e3:.1f} ms.\n")
    rows = [["measured here", 1, 0, f"{t1 * 1e3:.1f}", f"{tokens / t1:,.0f}", "1.00"],
            ["measured here", 2, "-", f"{two['t2'] * 1e3:.1f}", f"{2 * tokens / two['t2']:,.0f}",
             f"{t1 / two['t2']:.2f}"]]
    links = {"this machine's gloo (model)": (two["beta"], two["alpha"]), **NETWORKS}
    for name, (beta, alpha) in links.items():
        for world in (2, 8, 64, 512):
            t_ar = t_allreduce(world, nbytes, beta, alpha)
            step = t_c + t_ar
            rows.append([name, world, f"{t_ar * 1e3:.1f}", f"{step * 1e3:.1f}", f"{world * tokens / step:,.0f}",
                         f"{t_c / step:.2f}"])
    print(markdown_table(["link", "W", "t_ar (ms)", "step (ms)", "tokens/s", "efficiency"], rows))


if __name__ == "__main__":
    main()
