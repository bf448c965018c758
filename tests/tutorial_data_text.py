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


def tag(folder: Path) -> None:
    """``data/conll2000/train.txt`` and ``test.txt``: CoNLL-2000's ``word POS chunk`` lines, a blank line
    between sentences."""
    _write(folder, "conll2000/train.txt", _chunk_corpus(n=120, seed=0))
    _write(folder, "conll2000/test.txt", _chunk_corpus(n=30, seed=1))


TEXT_DATA: dict[str, Callable[[Path], None]] = {
    "char-lm": char_lm,
    "classify": classify,
    "tag": tag,
}
