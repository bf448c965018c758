"""Character and byte tokenizers.

- ``CharTokenizer``: one token per Unicode code point seen in the training
  text. For a language model, characters unseen in training are an error
  that names them (there is no silent ``<unk>``: a model must not learn to
  write one); for a classifier or tagger (``unk=True``) they all read as
  one unknown character, id 0, so a comment with a new emoji still gets a
  label.
- ``ByteTokenizer``: the 256 byte values; reads any file at all, and decodes
  with U+FFFD for bytes that do not form valid UTF-8.

Both encode to a 1-D ``int64`` NumPy array and save themselves as a small
JSON-able dict in the run folder's ``config.json``
(:mod:`rnnkit.data.tokenizers` makes any kind by name).
"""

from __future__ import annotations

import codecs

import numpy as np

from rnnkit.errors import DataError


class CharTokenizer:
    """One token per code point of the training text (the module docstring): ``fit(text, unk)``, then
    ``encode(text) -> (N,) int64`` and ``decode(ids)``; with ``unk`` id 0 is the unknown character."""

    kind = "char"

    def __init__(self, code_points, unk: bool = False):
        self.code_points = np.array(sorted(set(int(c) for c in code_points)), dtype=np.int64)  # (V,)
        if len(self.code_points) == 0:
            raise DataError("char tokenizer: empty vocabulary")
        self.unk = bool(unk)  # id 0 is the unknown character; the code points follow

    @classmethod
    def fit(cls, text: str, unk: bool = False) -> "CharTokenizer":
        """The code points of ``text``, sorted; ``unk`` adds id 0 for characters it lacks."""
        return cls(np.unique(_code_points(text)), unk)

    @property
    def vocab_size(self) -> int:
        """V: the code points, plus one for the unknown character with ``unk``."""
        return len(self.code_points) + self.unk

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        """(N,) int64 ids of ``text``'s characters; one the vocabulary lacks is id 0 with ``unk``, else a
        DataError naming them and ``what`` (the file)."""
        cps = _code_points(text)
        ids = np.searchsorted(self.code_points, cps)
        ids = np.minimum(ids, len(self.code_points) - 1)
        unseen = self.code_points[ids] != cps
        if self.unk:
            return np.where(unseen, 0, ids + 1)
        if unseen.any():
            chars = sorted({chr(c) for c in cps[unseen]})
            shown = ", ".join(repr(c) for c in chars[:10]) + (", ..." if len(chars) > 10 else "")
            raise DataError(f"{what} has {len(chars)} character(s) the model never saw in training: "
                            f"{shown}; remove them (or train with --tokenizer byte)")
        return ids

    def decode(self, ids) -> str:
        """The text of ``ids``; the unknown character shows as U+FFFD."""
        ids = np.asarray(ids, dtype=np.int64) - self.unk
        return "".join("\ufffd" if i < 0 else chr(self.code_points[i]) for i in ids.tolist())

    def default_prime(self) -> str:
        """A newline if the vocabulary has one (texts start after one), else its first character."""
        return "\n" if 10 in self.code_points else chr(self.code_points[0])

    def stream_decoder(self):
        """A function from one token id to the text it completes (always one char)."""
        code_points, shift = self.code_points, int(self.unk)
        return lambda i: "\ufffd" if i < shift else chr(code_points[i - shift])

    def to_dict(self) -> dict:
        """The JSON-able dict :func:`rnnkit.data.tokenizers.tokenizer_from_dict` reads back."""
        return {"kind": self.kind, "code_points": self.code_points.tolist(), "unk": self.unk}


class ByteTokenizer:
    """The 256 byte values as tokens: reads any file; decodes invalid UTF-8 as U+FFFD."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str | bytes, what: str = "text") -> np.ndarray:
        """(N,) int64 byte values of ``text`` (UTF-8 encoded when a str); never refuses a text."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        """The text of byte ``ids``, U+FFFD where they do not form valid UTF-8."""
        return bytes(np.asarray(ids, dtype=np.uint8)).decode("utf-8", errors="replace")

    def default_prime(self) -> str:
        """A newline: texts start after one."""
        return "\n"

    def stream_decoder(self):
        """A function from one byte to the text it completes: '' until a UTF-8
        character is whole, so multi-byte characters print correctly."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: decoder.decode(bytes([int(i)]))

    def to_dict(self) -> dict:
        """The JSON-able dict :func:`rnnkit.data.tokenizers.tokenizer_from_dict` reads back."""
        return {"kind": self.kind}


def _code_points(text: str) -> np.ndarray:
    # UTF-32 holds one code point per 4 bytes: a vectorised ord() over the text
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(np.int64)
