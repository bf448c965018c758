"""Cleaning a pretraining text of a test set's sentences: no test text in any
pretraining.

Mikolov's Penn Treebank (``ptb.train.txt``, WSJ sections 0-20) holds
section 20, which is CoNLL-2000's chunking test set; a language model
pretrained on it and fine-tuned as a chunker would have read the test
sentences. The two spell a sentence differently: PTB lower-cases, writes
every number as ``N``, drops punctuation and brackets and replaces rare words
by ``<unk>``; CoNLL keeps the treebank's tokens. So both sides are compared
in one normal form (:func:`normalised`) and a pretraining line is removed
when it matches a test sentence of the same length token by token, a
pretraining ``<unk>`` matching any word (:func:`remove_sentences`).

Normal form of a token sequence, in order:

- ``<unk>`` and ``N`` (PTB's number) stay as they are;
- every other token is lower-cased; a token with no letter or digit
  (punctuation, ``$``, ``%``, ``&``) and a bracket token (``-lrb-``,
  ``-rcb-``, ...) is dropped; a token with a digit becomes ``N``;
- a run of ``N`` is one ``N`` (PTB writes "3 %" as "N N", CoNLL's "3 %"
  leaves "N").

Over-matching is the safe side: a short pretraining line of ``<unk>``\\ s
may match a test sentence it is not, and is removed with the rest.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from rnnkit.data.files import read_text
from rnnkit.data.tables import read_conll

UNKNOWN, NUMBER = "<unk>", "N"
_BRACKET = re.compile(r"^-[lr][rcs]b-$")
_WORDLIKE = re.compile(r"[a-z0-9]")
_DIGIT = re.compile(r"\d")


def normalised(tokens: list[str]) -> tuple[str, ...]:
    """``tokens`` in the normal form of the module docstring."""
    out: list[str] = []
    for token in tokens:
        if token not in (UNKNOWN, NUMBER):
            token = token.lower()
            if not _WORDLIKE.search(token) or _BRACKET.match(token):
                continue
            if _DIGIT.search(token):
                token = NUMBER
        if token == NUMBER and out and out[-1] == NUMBER:
            continue
        out.append(token)
    return tuple(out)


class TestSentences:
    """A test set's sentences in normal form, to look a pretraining line up in: ``match(tokens)``
    gives the test sentence the line is (None if none), a ``<unk>`` of the line matching any word."""

    __test__ = False  # not a pytest class

    def __init__(self, sentences: list[list[str]]):
        self.exact = {normalised(s) for s in sentences}
        self.exact.discard(())
        self.by_length: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        for s in self.exact:
            self.by_length[len(s)].append(s)

    def match(self, tokens: list[str]) -> tuple[str, ...] | None:
        """The test sentence the line ``tokens`` is, in normal form (a ``<unk>`` in it matching any word), or None."""
        line = normalised(tokens)
        if not line:
            return None
        if line in self.exact:
            return line
        if UNKNOWN not in line:
            return None
        known = [(i, t) for i, t in enumerate(line) if t != UNKNOWN]
        return next((s for s in self.by_length[len(line)] if all(s[i] == t for i, t in known)), None)


def conll_sentences(path: str | Path) -> list[list[str]]:
    """The words of each sentence of a CoNLL column file (its first column)."""
    return read_conll(path, require_tags=False).words


def remove_sentences(lines: list[str], test: TestSentences) -> tuple[list[str], list[tuple[str, ...]]]:
    """(the ``lines`` of a pretraining text (one sentence a line, whitespace-separated tokens) that
    are no sentence of ``test``, the test sentences found)."""
    kept, found = [], []
    for line in lines:
        hit = test.match(line.split())
        if hit is None:
            kept.append(line)
        else:
            found.append(hit)
    return kept, found


def clean_file(text: str | Path, test_files: list[str | Path], out: str | Path) -> tuple[int, int]:
    """Write ``text`` without the sentences of the CoNLL ``test_files`` to ``out``; (lines removed,
    distinct test sentences found)."""
    test = TestSentences([s for path in test_files for s in conll_sentences(path)])
    lines = read_text(text, "char").splitlines(keepends=True)
    kept, found = remove_sentences(lines, test)
    Path(out).write_text("".join(kept), encoding="utf-8")
    return len(lines) - len(kept), len(set(found))
