import random

import pytest

WORDS = ("the quick brown fox jumps over the lazy dog while a small cat sleeps "
         "near an old red barn and seven birds sing in the tall green tree").split()


def make_text(n_lines: int = 400, seed: int = 0) -> str:
    """A small corpus with structure a character model can learn fast."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        start = rng.randrange(len(WORDS) - 6)
        lines.append(f"{i % 7}: " + " ".join(WORDS[start:start + 6]) + ".")
    return "\n".join(lines) + "\n"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path
