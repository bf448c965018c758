"""The pretraining text of the character language models for ``--char-lm`` on CoNLL-2000
(issue 32, point 2): wikitext-2's training split, Mikolov's PTB training split with CoNLL-2000's
test sentences (WSJ section 20) removed (:func:`rnnkit.data.cleaning.clean_file`), and
CoNLL-2000's own training sentences (a labelled set's training side, allowed by the issue),
one sentence a line; the validation text is wikitext-2's and PTB's validation splits.

    python benchmarks/charlm_text.py --data ../shared/data --out /work/runs/clm-text

writes ``OUT/train.txt`` and ``OUT/valid.txt`` and prints what each holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.data.cleaning import clean_file, conll_sentences


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", required=True, help="folder for train.txt and valid.txt (outside the repo)")
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ptb = out / "ptb.train.clean.txt"
    removed, found = clean_file(data / "ptb/ptb.train.txt", [data / "conll2000/test.txt"], ptb)
    print(f"PTB train: {removed:,} lines removed, {found:,} distinct CoNLL-2000 test sentences found")
    conll = "".join(" ".join(words) + "\n" for words in conll_sentences(data / "conll2000/train.txt"))
    parts = [(data / "wikitext2/wiki.train.tokens").read_text(encoding="utf-8"), ptb.read_text(encoding="utf-8"),
             conll]
    train = "".join(p if p.endswith("\n") else p + "\n" for p in parts)
    (out / "train.txt").write_text(train, encoding="utf-8")
    valid = "".join((data / f).read_text(encoding="utf-8") for f in ("wikitext2/wiki.valid.tokens",
                                                                      "ptb/ptb.valid.txt"))
    (out / "valid.txt").write_text(valid, encoding="utf-8")
    print(f"train.txt: {len(train):,} characters (wikitext-2 {len(parts[0]):,}, PTB {len(parts[1]):,}, "
          f"CoNLL-2000 train {len(conll):,}); valid.txt: {len(valid):,} characters")


if __name__ == "__main__":
    main()
