"""The n-gram baseline: interpolated Kneser-Ney (plain and modified) on Penn
Treebank words and tiny-shakespeare characters, with fit and evaluation times.

Penn Treebank (Mikolov's ptb.{train,valid,test}.txt): each line's words split
on whitespace plus an ``<eos>`` after each line; the vocabulary is train's
10,000 words (``<eos>`` included). Each evaluation stream is scored with an
``<eos>`` prepended, so every word and every ``<eos>`` is predicted (82,430
predictions on test), each from up to n - 1 previous tokens, across sentence
boundaries as a recurrent model reads the stream. Anchor: a 5-gram KN model
has test perplexity 141.2 (Mikolov et al. 2011, "Empirical evaluation and
combination of advanced language modeling techniques").

tiny-shakespeare: the characters of the whole file are the vocabulary; train
is the first int(0.9 n) characters, validation the rest, scored as rnnkit
scores its neural models (111,539 predictions: every character but the first).

    python benchmarks/ngram.py [--data-dir ../shared/data] [--ptb-orders 3 4 5]
                               [--char-orders 3 4 5 6 7 8 9 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rnnkit.models.ngram import KneserNey

from common import DATA

VARIANTS = {"KN": {"modified": False}, "modified KN": {"modified": True}}


def read_ptb(path: Path) -> list[str]:
    return [w for line in path.read_text(encoding="utf-8").splitlines() for w in line.split() + ["<eos>"]]


def ptb_streams(folder: Path) -> tuple[list[int], dict[str, list[int]], int]:
    """Train ids, {"valid", "test"} ids (each with an <eos> in front), V."""
    train = read_ptb(folder / "ptb.train.txt")
    vocab = {w: i for i, w in enumerate(sorted(set(train)))}
    evals = {}
    for split in ("valid", "test"):
        words = read_ptb(folder / f"ptb.{split}.txt")
        unknown = sorted(set(words) - vocab.keys())
        if unknown:
            sys.exit(f"ngram: ptb.{split}.txt has {len(unknown)} words not in train, e.g. {unknown[:3]}")
        evals[split] = [vocab["<eos>"]] + [vocab[w] for w in words]
    return [vocab[w] for w in train], evals, len(vocab)


def shakespeare_streams(path: Path) -> tuple[list[int], dict[str, list[int]], int]:
    text = path.read_text(encoding="utf-8")
    vocab = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = [vocab[c] for c in text]
    n_train = int(0.9 * len(ids))
    return ids[:n_train], {"valid": ids[n_train:]}, len(vocab)


def run(corpus: str, train: list[int], evals: dict[str, list[int]], vocab_size: int,
        orders: list[int], unit: str) -> list[dict]:
    rows = []
    for order in orders:
        for variant, kwargs in VARIANTS.items():
            start = time.perf_counter()
            lm = KneserNey(order, **kwargs).fit(train, vocab_size)
            fit_s = time.perf_counter() - start
            row = {"corpus": corpus, "order": order, "variant": variant, "ngrams": sum(lm.num_ngrams),
                   "fit_s": fit_s}
            start = time.perf_counter()
            for split, ids in evals.items():
                row[split] = lm.evaluate(ids)
            row["eval_s"] = time.perf_counter() - start
            rows.append(row)
            print_row(row, unit)
    return rows


def print_row(row: dict, unit: str) -> None:
    scores = "  ".join(f"{split} {m['loss']:.4f} nats/{unit} ppl {m['perplexity']:7.2f} "
                       f"{m['bpc']:.3f} bits/{unit}"
                       for split, m in row.items() if isinstance(m, dict))
    print(f"{row['corpus']:<11} {row['order']:>2} {row['variant']:<11} {row['ngrams']:>10,}  "
          f"{scores}  fit {row['fit_s']:5.1f}s eval {row['eval_s']:4.1f}s", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DATA,
                   help="folder with ptb/ and tinyshakespeare/ (default: ../shared/data from the repo)")
    p.add_argument("--ptb-orders", type=int, nargs="*", default=[3, 4, 5])
    p.add_argument("--char-orders", type=int, nargs="*", default=list(range(3, 11)))
    args = p.parse_args()
    ptb, shakespeare = args.data_dir / "ptb", args.data_dir / "tinyshakespeare" / "input.txt"
    if args.ptb_orders and not (ptb / "ptb.train.txt").is_file():
        sys.exit(f"ngram: no Penn Treebank at {ptb} (expected ptb.train.txt there); "
                 "pass --data-dir, or --ptb-orders with no value to skip it")
    if args.char_orders and not shakespeare.is_file():
        sys.exit(f"ngram: no tiny-shakespeare at {shakespeare}; "
                 "pass --data-dir, or --char-orders with no value to skip it")
    print("corpus   order variant         ngrams  scores and times")
    if args.ptb_orders:
        train, evals, vocab_size = ptb_streams(ptb)
        print(f"# PTB: {len(train):,} train tokens, V = {vocab_size:,}; "
              f"{len(evals['test']) - 1:,} test predictions", flush=True)
        run("ptb", train, evals, vocab_size, args.ptb_orders, "word")
    if args.char_orders:
        train, evals, vocab_size = shakespeare_streams(shakespeare)
        print(f"# tiny-shakespeare: {len(train):,} train chars, V = {vocab_size}; "
              f"{len(evals['valid']) - 1:,} validation predictions", flush=True)
        run("shakespeare", train, evals, vocab_size, args.char_orders, "char")


if __name__ == "__main__":
    main()
