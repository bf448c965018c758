"""GloVe vectors on Penn Treebank train, trained by rnnkit's own GloVe
(:mod:`rnnkit.models.glove`), with nearest neighbours and analogies as a
check and the vectors saved in the GloVe text format.

Data: Mikolov's ``ptb.train.txt`` (929,589 tokens with an ``<eos>`` per
line). The vocabulary is ``WordTokenizer.fit(text, max_vocab_size=10000)``:
``<unk>``, ``<eos>`` and PTB's other 9,998 words, so the saved vectors have
exactly the rows of an rnnkit word model trained on the same file. Defaults
are the paper's: window 10 with 1/d weights on both sides, x_max 100,
α 0.75, AdaGrad at 0.05, W + W̃; 15 epochs as in GloVe's ``demo.sh``; one
torch thread (``--threads``). The time printed includes the counting.

    python benchmarks/glove.py [--data-dir ../shared/data] [--dim 100] [--epochs 15]
                               [--out /tmp/ptb_glove100.txt]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from rnnkit.data.words import WordTokenizer
from rnnkit.models.glove import (
    analogy,
    load_vectors,
    nearest,
    save_vectors,
    train_glove,
)

from common import DATA

QUERIES = ["company", "stock", "president", "monday", "billion", "good", "bank", "japan", "buy", "director"]
ANALOGIES = [("monday", "tuesday", "friday"), ("million", "billion", "thousand"), ("buy", "bought", "sell"),
             ("japan", "japanese", "germany"), ("big", "bigger", "small")]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DATA, help="folder with ptb/ (default: ../shared/data)")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--out", type=Path, default=Path("/tmp/ptb_glove100.txt"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = args.data_dir / "ptb" / "ptb.train.txt"
    if not path.is_file():
        sys.exit(f"glove: no Penn Treebank at {path}; pass --data-dir")

    text = path.read_text(encoding="utf-8")
    start = time.perf_counter()
    tok = WordTokenizer.fit(text, max_vocab_size=10000)
    ids = tok.encode(text)
    print(f"# PTB train: {len(ids):,} tokens, V = {tok.vocab_size:,}, <unk> {tok.unk_rate(ids):.1%} "
          f"({time.perf_counter() - start:.1f} s)", flush=True)
    start = time.perf_counter()
    vectors = train_glove(ids, tok.vocab_size, dim=args.dim, window=args.window, epochs=args.epochs,
                          batch_size=args.batch_size, seed=args.seed, log=lambda s: print(s, flush=True))
    seconds = time.perf_counter() - start
    print(f"# train_glove (counts included): {seconds:.1f} s, {args.dim}-d, {args.epochs} epochs, "
          f"{torch.get_num_threads()} thread(s)")

    print("\nnearest neighbours (cosine of W + W~):")
    for q in QUERIES:
        print(f"  {q:<10} " + ", ".join(f"{w} {c:.2f}" for w, c in nearest(vectors, tok.words, q, k=8)))
    print("\nanalogies a : b :: c : ? (3CosAdd, top 3):")
    for a, b, c in ANALOGIES:
        top = ", ".join(f"{w} {s:.2f}" for w, s in analogy(vectors, tok.words, a, b, c, k=3))
        print(f"  {a} : {b} :: {c} : {top}")

    start = time.perf_counter()
    save_vectors(args.out, vectors, tok.words)
    loaded, words = load_vectors(args.out)
    assert words == tok.words and (loaded == vectors).all()
    print(f"\nsaved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB; reloaded identical, "
          f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
