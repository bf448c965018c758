"""Character and byte tokenizers.

- ``CharTokenizer``: one token per Unicode code point seen in the training
  text. Characters unseen in training are an error that names them (there
  is no silent ``<unk>``): the model cannot know them.
- ``ByteTokenizer``: the 256 byte values; reads any file at all, and decodes
  with U+FFFD for bytes that do not form valid UTF-8.

Both encode to a 1-D ``int64`` NumPy array and save themselves as a small
JSON-able dict in the run folder's ``config.json``.
"""

from __future__ import annotations

import codecs

import numpy as np

from rnnkit.errors import CheckpointError, DataError


class CharTokenizer:
    kind = "char"

    def __init__(self, code_points):
        self.code_points = np.array(sorted(set(int(c) for c in code_points)), dtype=np.int64)  # (V,)
        if len(self.code_points) == 0:
            raise DataError("char tokenizer: empty vocabulary")

    @classmethod
    def fit(cls, text: str) -> "CharTokenizer":
        return cls(np.unique(_code_points(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.code_points)

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        cps = _code_points(text)
        ids = np.searchsorted(self.code_points, cps)
        ids = np.minimum(ids, self.vocab_size - 1)
        unseen = self.code_points[ids] != cps
        if unseen.any():
            chars = sorted({chr(c) for c in cps[unseen]})
            shown = ", ".join(repr(c) for c in chars[:10]) + (", ..." if len(chars) > 10 else "")
            raise DataError(f"{what} has {len(chars)} character(s) the model never saw in training: "
                            f"{shown}; remove them (or train with --tokenizer byte)")
        return ids

    def decode(self, ids) -> str:
        return "".join(chr(c) for c in self.code_points[np.asarray(ids, dtype=np.int64)])

    def default_prime(self) -> str:
        """A newline if the vocabulary has one (texts start after one), else its first character."""
        return "\n" if 10 in self.code_points else chr(self.code_points[0])

    def stream_decoder(self):
        """A function from one token id to the text it completes (always one char)."""
        return lambda i: chr(self.code_points[i])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "code_points": self.code_points.tolist()}


class ByteTokenizer:
    kind = "byte"
    vocab_size = 256

    def encode(self, text: str | bytes, what: str = "text") -> np.ndarray:
        data = text.encode("utf-8") if isinstance(text, str) else text
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8)).decode("utf-8", errors="replace")

    def default_prime(self) -> str:
        return "\n"

    def stream_decoder(self):
        """A function from one byte to the text it completes: '' until a UTF-8
        character is whole, so multi-byte characters print correctly."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: decoder.decode(bytes([int(i)]))

    def to_dict(self) -> dict:
        return {"kind": self.kind}


def fit_tokenizer(kind: str, text: str | bytes, config, eos: bool = True):
    """A tokenizer of ``kind`` fitted on ``text`` as ``config`` (a DataConfig)
    says; ``eos``: word tokens end every line with ``<eos>``."""
    from rnnkit.data.words import BPETokenizer, WordTokenizer

    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer.fit(text)
    if kind == "word":
        return WordTokenizer.fit(text, max_vocab_size=config.max_vocab_size, min_count=config.min_count,
                                 lowercase=config.lowercase, eos=eos, pattern=config.word_pattern,
                                 what=str(config.path or "the corpus"))
    return BPETokenizer.fit(text, vocab_size=config.max_vocab_size or 2000)


def tokenizer_from_dict(d: dict):
    from rnnkit.data.words import BPETokenizer, WordTokenizer

    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d["code_points"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        return WordTokenizer.from_dict(d)
    if kind == "bpe":
        return BPETokenizer.from_dict(d)
    if kind == "series":
        from rnnkit.data.series import SeriesScaler

        return SeriesScaler.from_dict(d)
    raise CheckpointError(f"unknown tokenizer kind {kind!r} in config.json")


def _code_points(text: str) -> np.ndarray:
    # UTF-32 holds one code point per 4 bytes: a vectorised ord() over the text
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(np.int64)
