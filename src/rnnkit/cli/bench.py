"""``rnnkit bench``: how fast rnnkit trains and generates on this machine, measured
side by side in one run, as ratios (absolute times on shared machines are noisy).

For each cell (rnn, lstm, gru) and hidden size H, a character language model
(embedding E -> L x H cells -> linear over V) is measured:

- the machine's GEMM GFLOP/s (fp32, and bf16 where the CPU has bf16 units) at
  every shape a training step multiplies (:func:`step_products`: each
  layer's input projection, the recurrent step, the output layer, each
  forward and in its two backward forms) and at a 2048 square, fp32 both on
  torch's default kernel (MKL) and on oneDNN (see :mod:`rnnkit.kernels.gemm`);
- the peak of a precision: the rate of a step whose every product ran as fast
  as the best kernel of that precision ran it alone, FLOP-weighted
  (:func:`step_peak_gflops`): what the machine can do for this step;
- training tokens/s of a plain torch.nn.RNN/LSTM/GRU loop (the baseline every
  ratio is taken against) and of rnnkit's Trainer with each engine and
  precision, with achieved GFLOP/s and MFU = achieved / peak of that precision.
  FLOPs count the matrix products of the cells and the output layer, forward
  plus backward (3 x forward): 6 (sum_l G H (I_l + H) + H V) per token;
- generation chars/s at batch 1 and batch 64, with fp32 and bf16 weights,
  softmax and sampling included;
- peak RSS of training and of generation, each in a fresh process.

Each timed loop runs in a fresh process (the plain loop exactly as a user's
script: rnnkit's Trainer sets its allocator, see
:mod:`rnnkit.kernels.memory`; the plain loop does not), ``warmup`` untimed
steps, then at least ``min_steps`` and ``seconds`` of timed steps; the figure
is tokens over the timed wall time, the best of ``rounds`` turns in which the
loops of one model take turns.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.config import DataConfig, TrainConfig
from rnnkit.data import CharTokenizer, TextData
from rnnkit.kernels import CELLS, gemm
from rnnkit.kernels.memory import keep_freed_memory
from rnnkit.models import LanguageModel
from rnnkit.tasks import LanguageModelTraining, Trainer
from rnnkit.training.device import bf16_supported

TORCH_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclasses.dataclass
class BenchConfig:
    """What ``rnnkit bench`` times: the cells, hidden sizes, engines and precisions, at one model and batch shape."""

    cells: tuple[str, ...] = ("lstm", "gru", "rnn")
    hidden_sizes: tuple[int, ...] = (256, 512, 1024)
    num_layers: int = 2
    embedding_dim: int = 64
    vocab_size: int = 65  # tiny-shakespeare's characters
    batch_size: int = 64
    seq_len: int = 100
    engines: tuple[str, ...] = ("fused", "explicit")
    precisions: tuple[str, ...] = ("fp32", "bf16")  # bf16 only where the CPU has bf16 units
    seconds: float = 3.0
    warmup: int = 4  # the explicit engine's third bf16 step was still slower than its later ones (NOTEBOOK.md)
    min_steps: int = 3
    sample_length: int = 500
    rounds: int = 2  # every training loop this many times, the loops taking turns; the best counts
    memory: bool = True


class PlainLM(nn.Module):
    """The baseline a user would write: embedding -> torch.nn.RNN/LSTM/GRU -> linear,
    with LanguageModel's ``forward(idx, targets, state) -> ((logits, state), loss)``."""

    def __init__(self, cell: str, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 512,
                 num_layers: int = 2):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = TORCH_LAYERS[cell](embedding_dim, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx, targets=None, state=None):
        """idx (B, T), targets (B, T) or None, state or None -> ((logits (B, T, V), state), loss or None)."""
        h, state = self.rnn(self.emb(idx), state)
        logits = self.head(h)
        loss = None if targets is None else F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return (logits, state), loss


def training_flops_per_token(cell: str, vocab_size: int, embedding_dim: int, hidden_size: int,
                             num_layers: int) -> float:
    """Matrix FLOPs per token of one training step (forward + backward = 3 x forward)."""
    G, H = CELLS[cell].num_gates, hidden_size
    macs = sum(G * H * ((embedding_dim if layer == 0 else H) + H) for layer in range(num_layers))
    return 6.0 * (macs + H * vocab_size)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# the products measured: their precision, and whether on oneDNN (else torch's default kernel)
# the products measured: their precision, and the kernel: torch's default (``a @ b``: MKL for fp32 on
# x86, oneDNN for bf16), oneDNN, or oneDNN with the second operand laid out once in its blocked
# format, as rnnkit multiplies a weight it uses many times (the recurrent step; rnnkit.kernels.gemm.prepare)
GEMM_KINDS = {"fp32": ("fp32", "default"), "fp32 oneDNN": ("fp32", "onednn"),
              "fp32 oneDNN laid out": ("fp32", "laid out"), "bf16": ("bf16", "default"),
              "bf16 oneDNN laid out": ("bf16", "laid out")}


def gemm_gflops(m: int, k: int, n: int, kind: str, seconds: float = 0.3) -> float:
    """Measured GFLOP/s of an (m x k) @ (k x n) product of ``kind`` (a key of GEMM_KINDS)."""
    precision, kernel = GEMM_KINDS[kind]
    a, b = torch.randn(m, k).to(DTYPES[precision]), torch.randn(k, n).to(DTYPES[precision])
    if kernel == "default":
        product = lambda: a @ b  # noqa: E731
    else:
        weight = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), m) if kernel == "laid out" else b.t()
        product = lambda: gemm.onednn_linear(a, weight, None)  # noqa: E731
    for _ in range(3):
        product()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product()
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start) / 1e9


def step_products(cfg: BenchConfig, cell: str, H: int) -> list[tuple[tuple[int, int, int], int]]:
    """Every matrix product of one training step as ((M, K, N), how many a step):
    for Y = X W^T of (M, K) by (K, N), forward (M, K, N), dX = dY W (M, N, K)
    and dW = dY^T X (N, M, K). The recurrent step runs T times each way; its
    weight gradient is one product over all steps (:mod:`rnnkit.kernels.unroll`)."""
    B, T, E, G, V = cfg.batch_size, cfg.seq_len, cfg.embedding_dim, CELLS[cell].num_gates, cfg.vocab_size

    def both_ways(M, K, N, times=1):
        return [((M, K, N), times), ((M, N, K), times)]

    products = []
    for layer in range(cfg.num_layers):
        inputs = E if layer == 0 else H
        products += both_ways(B * T, inputs, G * H) + [((G * H, B * T, inputs), 1)]  # input projection
        products += both_ways(B, H, G * H, T) + [((G * H, B * T, H), 1)]  # recurrent step
    return products + both_ways(B * T, H, V) + [((V, B * T, H), 1)]  # output layer


def step_peak_gflops(products, rates: dict[tuple[int, int, int], float]) -> float:
    """The GFLOP/s of a step whose products each ran at ``rates[shape]``:
    its FLOPs over the time they would take, sum_i F_i / sum_i (F_i / r_i)."""
    flops = [2 * M * K * N * times for (M, K, N), times in products]
    return sum(flops) / sum(f / rates[shape] for f, (shape, _) in zip(flops, products))


def synthetic_data(cfg: BenchConfig, steps: int = 50) -> TextData:
    """Random tokens over ``vocab_size`` symbols, ``steps`` batches per epoch
    (loops run on into further epochs): speed does not depend on the text."""
    g = torch.Generator().manual_seed(0)
    tokens_needed = cfg.batch_size * cfg.seq_len * (steps + 1) + 1
    alphabet = "".join(chr(33 + i) for i in range(cfg.vocab_size))
    ids = lambda n: torch.randint(cfg.vocab_size, (n,), generator=g)  # noqa: E731
    config = DataConfig(batch_size=cfg.batch_size, seq_len=cfg.seq_len, val_fraction=0.0)
    return TextData(CharTokenizer.fit(alphabet), ids(tokens_needed), ids(0), ids(0), config)


def _timed(stamps: list[float], cfg: BenchConfig) -> bool:
    """Record a step's end; True when enough timed steps and seconds have passed."""
    stamps.append(time.perf_counter())
    timed = len(stamps) - 1 - cfg.warmup
    return timed >= cfg.min_steps and stamps[-1] - stamps[cfg.warmup] >= cfg.seconds


def _tokens_per_s(stamps: list[float], cfg: BenchConfig) -> float:
    timed = len(stamps) - 1 - cfg.warmup
    return cfg.batch_size * cfg.seq_len * timed / (stamps[-1] - stamps[cfg.warmup])


def time_plain(cfg: BenchConfig, cell: str, H: int, data: TextData, precision: str) -> float:
    """tokens/s of the plain loop: Adam, clipping, state carried, as in a user's script."""
    torch.manual_seed(0)
    model = PlainLM(cell, cfg.vocab_size, cfg.embedding_dim, H, cfg.num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    state, stamps = None, []
    batcher = data.batcher(seed=0)
    for x, y in itertools.chain.from_iterable(map(batcher.batches, itertools.count())):
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            (_, state), loss = model(x, y, state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = state.detach() if isinstance(state, torch.Tensor) else tuple(s.detach() for s in state)
        loss.item()
        if _timed(stamps, cfg):
            return _tokens_per_s(stamps, cfg)


def _rnnkit_model(cfg: BenchConfig, cell: str, H: int, engine: str = "fused") -> LanguageModel:
    torch.manual_seed(0)
    # no dropout: the plain loop has none, and speed is compared on the same arithmetic
    return LanguageModel(cfg.vocab_size, cell=cell, hidden_size=H, num_layers=cfg.num_layers,
                         embedding_dim=cfg.embedding_dim, engine=engine, dropout=0.0)


def _train_config(precision: str) -> TrainConfig:
    return LanguageModelTraining(max_steps=10**6, eval_every=10**9, log_every=10**9, sample_length=0,
                                 optimizer="adam", lr=1e-3, warmup_steps=0, device="cpu", precision=precision)


def time_rnnkit(cfg: BenchConfig, cell: str, H: int, data: TextData, engine: str, precision: str) -> float:
    """tokens/s of rnnkit's real Trainer (schedule, clipping, carried state and all)."""
    stamps: list[float] = []

    def on_step(trainer):
        if _timed(stamps, cfg):
            trainer.request_stop()

    with tempfile.TemporaryDirectory() as out:
        Trainer(_rnnkit_model(cfg, cell, H, engine), data, _train_config(precision), out=out, quiet=True,
                callbacks=[on_step]).fit()
    return _tokens_per_s(stamps, cfg)


def generation_chars_per_s(model: LanguageModel, batch_size: int, chars: int, precision: str = "fp32") -> float:
    """Characters per second over the batch, after a short untimed warm-up."""
    primes = torch.zeros(batch_size, 1, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    tokens = model.generate(primes, chars + 20, generator=g, precision=precision)
    for _ in range(20):
        next(tokens)
    start = time.perf_counter()
    for _ in tokens:
        pass
    return batch_size * chars / (time.perf_counter() - start)


# -- each measurement in a fresh process -------------------------------------

def in_fresh_process(job, *args):
    """job(*args) in a new Python process: no allocator setting, thread pool or
    peak RSS carries over from one measurement to the next, and the plain loop
    runs as a user's script would."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(job, *args).result()


def _training_job(cfg: BenchConfig, cell: str, H: int, engine: str, precision: str) -> float:
    data = synthetic_data(cfg)
    if engine == "plain":
        return time_plain(cfg, cell, H, data, precision)
    return time_rnnkit(cfg, cell, H, data, engine, precision)


_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _reset_peak_rss() -> None:
    """Start the peak over from the present RSS (Linux). A spawned process would
    otherwise inherit its parent's peak (``ru_maxrss`` survives fork and exec)."""
    if _CLEAR_REFS.exists():
        _CLEAR_REFS.write_text("5")


def _peak_rss_mb() -> float:
    if _STATUS.exists():
        return int(re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text()).group(1)) / 1024
    import resource  # not on Windows

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # bytes on macOS


def _memory_job(job: str, cfg: BenchConfig, cell: str, H: int) -> float:
    _reset_peak_rss()
    if job == "training":
        small = dataclasses.replace(cfg, warmup=1, min_steps=2, seconds=0.0)
        time_rnnkit(small, cell, H, synthetic_data(small), "fused", "fp32")
    elif job == "generation":
        model = _rnnkit_model(cfg, cell, H)
        for batch_size in (1, 64):
            generation_chars_per_s(model, batch_size, 50)
    return _peak_rss_mb()


def peak_rss(job: str, cfg: BenchConfig, cell: str = "lstm", H: int = 0) -> float:
    """Peak RSS in MiB of a fresh process that imports rnnkit and runs ``job``:
    "baseline" (nothing), "training" (a few fused fp32 steps) or "generation"."""
    return in_fresh_process(_memory_job, job, cfg, cell, H)


# -- the whole run -----------------------------------------------------------

def run(cfg: BenchConfig, log=print) -> dict:
    """Measure everything ``cfg`` asks for; ``log`` gets progress lines.
    Returns {"gemm": ..., "training": [...], "generation": [...], "memory": ...}."""
    precisions = [p for p in cfg.precisions if p == "fp32" or bf16_supported(torch.device("cpu"))]
    kinds = [k for k, (p, kernel) in GEMM_KINDS.items()
             if p in precisions and (kernel == "default" or torch.backends.mkldnn.is_available())]
    result = {"config": dataclasses.asdict(cfg), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "fp32_products": gemm.fp32_backend(),
              "gemm": {}, "training": [], "generation": [], "memory": {}}
    keep_freed_memory()  # the GEMM rates are the kernels', not those of page faults on fresh outputs
    square = {k: gemm_gflops(2048, 2048, 2048, k) for k in kinds}
    result["gemm"]["2048 square"] = square
    for cell in cfg.cells:
        for H in cfg.hidden_sizes:
            log(f"measuring {cell} {H} ...")
            products = step_products(cfg, cell, H)
            shapes = sorted({shape for shape, _ in products})
            rates = {k: {shape: gemm_gflops(*shape, k) for shape in shapes} for k in kinds}
            result["gemm"][f"{cell} {H}"] = {k: {"x".join(map(str, shape)): r for shape, r in by_shape.items()}
                                             for k, by_shape in rates.items()}
            best = {p: {shape: max(rates[k][shape] for k in kinds if GEMM_KINDS[k][0] == p) for shape in shapes}
                    for p in precisions}  # the fastest kernel of each precision at each shape
            peak = {p: step_peak_gflops(products, best[p]) for p in precisions}
            flops = training_flops_per_token(cell, cfg.vocab_size, cfg.embedding_dim, H, cfg.num_layers)
            loops = [(f"plain torch.nn.{TORCH_LAYERS[cell].__name__}", "plain", p) for p in precisions]
            loops += [(f"rnnkit {engine}", engine, p) for engine in cfg.engines for p in precisions]
            # in turns, so that a slow phase of a shared machine slows every loop's
            # worst round rather than one loop; noise only slows a loop down, so the best counts
            measured = {loop: [] for loop in loops}
            for _ in range(cfg.rounds):
                for loop in loops:
                    measured[loop].append(in_fresh_process(_training_job, cfg, cell, H, *loop[1:]))
            rows = []
            for loop in loops:
                name, engine, precision = loop
                tokens_per_s = max(measured[loop])
                achieved = tokens_per_s * flops / 1e9
                rows.append({"cell": cell, "hidden_size": H, "loop": name, "precision": precision,
                             "tokens_per_s": tokens_per_s, "gflops": achieved, "peak_gflops": peak[precision],
                             "mfu": achieved / peak[precision]})
            base = rows[0]["tokens_per_s"]
            for row in rows:
                row["vs_plain_fp32"] = row["tokens_per_s"] / base
            result["training"] += rows
            model = _rnnkit_model(cfg, cell, H)
            result["generation"].append({"cell": cell, "hidden_size": H, **{
                f"batch {b} {p}": generation_chars_per_s(model, b, cfg.sample_length, p)
                for p in precisions for b in (1, 64)}})
            if cfg.memory:
                result["memory"][f"{cell} {H}"] = {job: peak_rss(job, cfg, cell, H)
                                                   for job in ("training", "generation")}
    if cfg.memory:
        result["memory"]["baseline"] = peak_rss("baseline", cfg)
    return result


def format_report(result: dict) -> str:
    """The benchmark's result as the text ``rnnkit bench`` prints: GEMM rates, training tokens/s and MFU,
    generation chars/s, peak memory."""
    cfg = result["config"]
    lines = [f"rnnkit bench: torch {result['torch']}, {result['threads']} threads; "
             f"{cfg['num_layers']} layers, embedding {cfg['embedding_dim']}, vocabulary {cfg['vocab_size']}, "
             f"batch {cfg['batch_size']}, seq {cfg['seq_len']}; rnnkit's own fp32 products on "
             f"{'oneDNN' if result['fp32_products'] == 'onednn' else 'torch default (MKL)'}", "",
             "GEMM GFLOP/s at M x K x N (fp32 = torch's default kernel, MKL); peak = a training step "
             "whose every product ran at the best of its precision's kernels at its shape"]
    for name, value in result["gemm"].items():
        if name == "2048 square":
            lines.append("  2048 square: " + ", ".join(f"{p} {g:,.0f}" for p, g in value.items()))
        else:
            for p, shapes in value.items():
                lines.append(f"  {name} {p}: " + ", ".join(f"{s} {g:,.0f}" for s, g in shapes.items()))
    lines += ["", f"training (matrix FLOPs of cells and output layer, forward + backward; "
                  f"tokens/s the best of {cfg['rounds']} turns)",
              f"  {'cell':5}{'H':>6}  {'loop':24}{'precision':>10}{'tokens/s':>11}{'vs plain fp32':>15}"
              f"{'GFLOP/s':>9}{'peak':>8}{'MFU':>6}"]
    for r in result["training"]:
        lines.append(f"  {r['cell']:5}{r['hidden_size']:>6}  {r['loop']:24}{r['precision']:>10}"
                     f"{r['tokens_per_s']:>11,.0f}{r['vs_plain_fp32']:>15.2f}{r['gflops']:>9,.0f}"
                     f"{r['peak_gflops']:>8,.0f}{r['mfu']:>6.2f}")
    columns = [k for k in result["generation"][0] if k.startswith("batch")] if result["generation"] else []
    lines += ["", "generation chars/s (weights in fp32 or bf16, softmax and sampling included; "
                  "batch 64 counts all streams)",
              f"  {'cell':5}{'H':>6}" + "".join(f"{c:>15}" for c in columns)]
    for r in result["generation"]:
        lines.append(f"  {r['cell']:5}{r['hidden_size']:>6}" + "".join(f"{r[c]:>15,.0f}" for c in columns))
    if result["memory"]:
        lines += ["", f"peak RSS MiB, each in a fresh process (python + torch + rnnkit alone: "
                      f"{result['memory']['baseline']:,.0f})", f"  {'cell':5}{'H':>6}{'training':>10}"
                      f"{'generation':>12}"]
        for name, value in result["memory"].items():
            if name != "baseline":
                cell, H = name.split()
                lines.append(f"  {cell:5}{H:>6}{value['training']:>10,.0f}{value['generation']:>12,.0f}")
    return "\n".join(lines)


def save_json(result: dict, path: str) -> None:
    """Write the benchmark's result to ``path`` as JSON (``--json``)."""
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
