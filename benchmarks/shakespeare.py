"""Quality per minute on tiny-shakespeare: rnnkit's default recipe against a plain
torch.nn.LSTM script, trained one after the other on this machine for the same
wall time and scored the same way.

Split: nanoGPT's 90/10 (train = the first int(0.9 n) characters). Scores, over
the whole validation split (111,540 characters, 111,539 predictions):
- "stream": read as one stream with the state carried (as char-rnn evaluates);
- "windows": independent 64-character windows from a zero state (the protocol
  that fits a model with a 64-character context, such as nanoGPT's CPU config).

The plain script is what a user would write: embedding 64 -> 2 x 512
torch.nn.LSTM -> linear, Adam (lr 2e-3), gradient-norm clip 1, batches of 64
random 100-character windows from a zero state.

    python benchmarks/shakespeare.py [--minutes 5] [--corpus PATH] [--skip-plain]

Prints a table and writes benchmarks/shakespeare_curve_<minutes>min.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from rnnkit import evaluate
from rnnkit.cli.bench import PlainLM
from rnnkit.data import CharTokenizer, read_text, split_ids

from common import TINYSHAKESPEARE, metrics, rnnkit

HERE = Path(__file__).resolve().parent


def train_plain(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, seconds: float,
                seed: int = 0, eval_every_s: float = 60.0):
    """Train the plain script; evaluate like rnnkit's trainer (16 streams) every
    ``eval_every_s`` seconds of training, with the clock paused."""
    torch.manual_seed(seed)
    model = PlainLM("lstm", vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    B, T = 64, 100
    curve, val_curve, start, step, next_eval = [], [], time.perf_counter(), 0, eval_every_s
    while time.perf_counter() - start < seconds:
        if time.perf_counter() - start >= next_eval:
            paused = time.perf_counter()
            val_curve.append((next_eval, evaluate(model, val_ids, streams=16)["loss"]))
            model.train()
            start += time.perf_counter() - paused
            next_eval += eval_every_s
        i = torch.randint(len(train_ids) - T - 1, (B,))
        x = torch.stack([train_ids[j:j + T] for j in i.tolist()])
        y = torch.stack([train_ids[j + 1:j + T + 1] for j in i.tolist()])
        (logits, _), _ = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:
            curve.append((time.perf_counter() - start, loss.item()))
    val_curve.append((seconds, evaluate(model, val_ids, streams=16)["loss"]))
    return model, curve, val_curve, step


def train_rnnkit(corpus: Path, seconds: float, out: Path, flags: list[str]) -> list[tuple]:
    rnnkit("train", str(corpus), "--out", str(out), "--time-limit", str(seconds), "--sample-length", "0", *flags,
           capture=False)
    rows = metrics(out)
    elapsed, at = {}, 0.0
    for r in rows:  # a validation row gets the training time of the step it follows
        at = r.get("elapsed", at)
        elapsed[r["step"]] = at
    return [(r["elapsed"], r["loss"]) for r in rows if "loss" in r], \
        [(elapsed[r["step"]], r["val_loss"]) for r in rows if "val_loss" in r]


def scores(model, val: torch.Tensor) -> dict:
    return {"stream": evaluate(model, val, streams=1)["loss"],
            "windows": evaluate(model, val, window=64)["loss"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(TINYSHAKESPEARE))
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--skip-plain", action="store_true")
    p.add_argument("flags", nargs="*", help="extra `rnnkit train` flags (after --)")
    args = p.parse_args()
    corpus = Path(args.corpus)
    if not corpus.exists():
        sys.exit(f"{corpus} not found; pass --corpus")
    seconds = args.minutes * 60
    text = read_text(corpus)
    tok = CharTokenizer.fit(text)
    train, val, _ = (torch.from_numpy(s.copy()) for s in split_ids(tok.encode(text), 0.1, 0.0))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(train):,} train / "
          f"{len(val):,} validation characters; {seconds:.0f}s of training each")

    results, curves, val_curves = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train_curve, val_curve = train_rnnkit(corpus, seconds, out, args.flags)
        from rnnkit import load_run

        model, _, doc = load_run(out)
        m = doc["model"]
        results[f"rnnkit default recipe ({m.num_layers} x {m.hidden_size} {m.cell})"] = scores(model, val)
        curves["rnnkit"], val_curves["rnnkit"] = train_curve, val_curve
    if not args.skip_plain:
        model, curve, val_curve_plain, steps = train_plain(train, val, tok.vocab_size, seconds)
        results[f"plain torch.nn.LSTM script (2 x 512, {steps} steps)"] = scores(model, val)
        curves["plain torch.nn.LSTM"], val_curves["plain torch.nn.LSTM"] = curve, val_curve_plain

    print(f"\n{'model':58}{'stream':>10}{'windows':>10}   (validation loss, nats/char)")
    for name, r in results.items():
        print(f"{name:58}{r['stream']:>10.4f}{r['windows']:>10.4f}")
    for name, vc in val_curves.items():
        print(f"{name} validation loss during training (16 streams):",
              ", ".join(f"{t:.0f} s: {v:.3f}" for t, v in vc))
    plot(curves, val_curves, HERE / f"shakespeare_curve_{args.minutes:g}min.png", seconds)


def plot(curves: dict, val_curves: dict, path: Path, seconds: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    for (name, curve), color in zip(curves.items(), ("tab:blue", "tab:orange")):
        ax.plot(*zip(*curve), label=f"{name}, training", linewidth=0.8, alpha=0.6, color=color)
        ax.plot(*zip(*val_curves[name]), "o-", label=f"{name}, validation", color=color)
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("loss (nats/char)")
    ax.set_ylim(1.0, 3.0)
    ax.set_xlim(0, seconds)
    for target, minutes in ((1.40, 5), (1.36, 10)):  # the targets
        if seconds >= minutes * 60:
            ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"{target} by {minutes} min")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("tiny-shakespeare, same machine, one run")
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
