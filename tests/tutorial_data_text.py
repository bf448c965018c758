"""Small generated stand-ins for the text data sets the tutorials read (``docs/tutorials``): each maker
writes, under a tutorial's folder, the files its commands name, in the real set's format."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from conftest import WORDS, _chunk_corpus

SPEAKERS = ("ROMEO", "JULIET", "FIRST CITIZEN", "KING RICHARD II")


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def play(n_speeches: int = 300, seed: int = 0) -> str:
    """tiny-shakespeare's format: a speaker's name and a colon on a line, the speech, a blank line."""
    rng = random.Random(seed)
    speeches = []
    for _ in range(n_speeches):
        lines = []
        for _ in range(rng.randint(1, 3)):
            start = rng.randrange(len(WORDS) - 7)
            lines.append(" ".join(WORDS[start:start + 7]).capitalize() + rng.choice(",.;!?"))
        speeches.append(f"{rng.choice(SPEAKERS)}:\n" + "\n".join(lines))
    return "\n\n".join(speeches) + "\n"


def char_lm(folder: Path) -> None:
    """``data/tinyshakespeare.txt``: about 24 KB of plain text in the play's layout."""
    _write(folder, "tinyshakespeare.txt", play())


def youtube_video(rng: random.Random, n: int = 60) -> str:
    """The YouTube Spam Collection's CSV: a header, quoted CONTENT, CLASS 1 for spam (which asks for a visit)."""
    rows = ["COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS"]
    for i in range(n):
        spam = i % 2
        words = rng.sample(WORDS, 5) + (["check", "out", "my", "channel!"] if spam else ["love", "this", "song,"])
        rng.shuffle(words)
        content = " ".join(words)
        rows.append(f'id{i},author {i},2014-01-{1 + i % 28:02d}T10:00:00,"{content}",{spam}')
    return "\n".join(rows) + "\n"


def classify(folder: Path) -> None:
    """``data/Youtube01-Psy.csv`` .. ``Youtube05-Shakira.csv``: 60 comments each."""
    rng = random.Random(0)
    for video in ("01-Psy", "02-KatyPerry", "03-LMFAO", "04-Eminem", "05-Shakira"):
        _write(folder, f"Youtube{video}.csv", youtube_video(rng))


def treebank(n_lines: int, seed: int) -> str:
    """Mikolov's ``ptb.*.txt``: a lower-case sentence a line between spaces, numbers as ``N``, rare words
    ``<unk>``."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        start = rng.randrange(len(WORDS) - 8)
        lines.append(" " + " ".join(WORDS[start:start + 8]) + rng.choice([" <unk>", " N years", " n't", ""]) + " ")
    return "\n".join(lines) + "\n"


def word_lm(folder: Path) -> None:
    """``data/ptb/ptb.{train,valid,test}.txt``."""
    for split, n, seed in (("train", 1500, 0), ("valid", 150, 1), ("test", 150, 2)):
        _write(folder, f"ptb/ptb.{split}.txt", treebank(n, seed))


def transfer(folder: Path) -> None:
    """The Penn Treebank to pretrain on, the YouTube comments to classify."""
    word_lm(folder)
    classify(folder)


def tag(folder: Path) -> None:
    """``data/conll2000/train.txt`` and ``test.txt``: CoNLL-2000's ``word POS chunk`` lines, a blank line
    between sentences."""
    _write(folder, "conll2000/train.txt", _chunk_corpus(n=120, seed=0))
    _write(folder, "conll2000/test.txt", _chunk_corpus(n=30, seed=1))


LETTER_SOUNDS = {"A": "AE", "B": "B", "C": "K", "D": "D", "E": "EH", "F": "F", "G": "G", "H": "HH", "I": "IH",
                 "K": "K", "L": "L", "M": "M", "N": "N", "O": "AA", "P": "P", "R": "R", "S": "S", "T": "T",
                 "U": "AH", "V": "V", "W": "W", "Z": "Z"}


def pronunciations(n: int, seed: int) -> str:
    """CMUdict's g014b2b split: ``WORD<TAB>PH1 PH2 ...``, here one phoneme a letter."""
    rng = random.Random(seed)
    letters = sorted(LETTER_SOUNDS)
    words = {"".join(rng.choices(letters, k=rng.randint(3, 8))) for _ in range(n)}
    return "".join(f"{w}\t{' '.join(LETTER_SOUNDS[c] for c in w)}\n" for w in sorted(words))


def seq2seq(folder: Path) -> None:
    """``data/g014b2b.train``, ``data/g014b2b.test`` and ``data/words.txt`` (a word a line, to pronounce)."""
    _write(folder, "g014b2b.train", pronunciations(600, seed=0))
    _write(folder, "g014b2b.test", pronunciations(60, seed=1))
    _write(folder, "words.txt", "RECURRENT\nNETWORK\nTENSOR\n")


TEXT_DATA: dict[str, Callable[[Path], None]] = {
    "char-lm": char_lm,
    "word-lm": word_lm,
    "classify": classify,
    "tag": tag,
    "seq2seq": seq2seq,
    "transfer": transfer,
}
