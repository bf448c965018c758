"""A corpus larger than memory: its token ids in a file, read a batch at a time.

A plain text file above ``STREAM_BYTES`` (and read with the char or byte
tokenizer) is never held whole. It is read in chunks of ``CHUNK_BYTES``:
once to hash it and fit the vocabulary (the code points it holds), once to
encode each chunk into a token file (one byte a token for up to 256 tokens,
else two or four) in the cache folder (``RNNKIT_CACHE``, else
``~/.cache/rnnkit``), named by the corpus's SHA-256 and the vocabulary, and
reused. With the byte tokenizer the corpus is its own token file. Batches and
evaluation then read windows of it with ``pread``, so the process holds a
batch, never the corpus, and its memory does not grow with the corpus.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.chars import ByteTokenizer, CharTokenizer, _code_points
from rnnkit.data.files import not_utf8
from rnnkit.errors import DataError

STREAM_BYTES = 64 * 2**20  # plain files above this are streamed (read whole, a text peaks at many times its size)
CHUNK_BYTES = 16 * 2**20


class TokenFile:
    """Token ids ``[start, stop)`` of a file of ``dtype`` values; slicing gives a
    TokenFile of the slice, :meth:`windows` and :meth:`tensor` read int64 tensors."""

    def __init__(self, path: str | Path, dtype, start: int = 0, stop: int | None = None):
        self.path, self.dtype = Path(path), np.dtype(dtype)
        total = self.path.stat().st_size // self.dtype.itemsize
        self.start, self.stop = start, total if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice) -> "TokenFile":
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a TokenFile takes contiguous slices")
        r = range(self.start, self.stop)[index]
        return TokenFile(self.path, self.dtype, r.start, r.stop)

    def _read(self, fd: int, start: int, n: int) -> np.ndarray:
        size = self.dtype.itemsize
        data = os.pread(fd, n * size, (self.start + start) * size)
        return np.frombuffer(data, dtype=self.dtype)

    def windows(self, starts, n: int) -> torch.Tensor:
        """(len(starts), n) int64: the ``n`` tokens from each of ``starts`` (within this slice)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            rows = [self._read(fd, int(s), n) for s in starts]
        finally:
            os.close(fd)
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    def tensor(self) -> torch.Tensor:
        """The whole slice as an int64 tensor (for small slices)."""
        return self.windows([0], len(self))[0]


def as_tensor(ids) -> torch.Tensor:
    """A split's token ids as a tensor: ``ids`` itself, or a token file's slice read whole."""
    return ids if torch.is_tensor(ids) else ids.tensor()


def streamable(path: str | Path, kind: str) -> bool:
    """Whether ``path`` is a plain file large enough to stream with tokenizer ``kind``."""
    p = Path(path)
    return kind in ("char", "byte") and p.suffix != ".gz" and p.is_file() and p.stat().st_size > STREAM_BYTES


def _chunks(path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def _texts(path: Path):
    """The file's text, chunk by chunk (a character split between chunks comes whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    for raw in _chunks(path):
        try:
            yield raw, decoder.decode(raw)
        except UnicodeDecodeError as e:
            raise not_utf8(path, raw[e.start], offset + e.start) from None
        offset += len(raw)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{path} ends inside a UTF-8 character; use --tokenizer byte") from None


def scan(path: str | Path, kind: str) -> tuple[str, object]:
    """(SHA-256, tokenizer) of a corpus read in chunks: the char tokenizer's
    vocabulary is every code point the file holds."""
    path, h = Path(path), hashlib.sha256()
    if kind == "byte":
        for raw in _chunks(path):
            h.update(raw)
        return h.hexdigest(), ByteTokenizer()
    seen = np.zeros(0, dtype=np.int64)
    for raw, text in _texts(path):
        h.update(raw)
        if text.isascii():  # one byte a character: count the 256 values instead of sorting
            seen = np.union1d(seen, np.flatnonzero(np.bincount(np.frombuffer(raw, np.uint8), minlength=256)))
        else:
            seen = np.union1d(seen, np.unique(_code_points(text)))
    if not len(seen):
        raise DataError(f"{path} is empty")
    return h.hexdigest(), CharTokenizer(seen)


def token_file(path: str | Path, digest: str, tokenizer) -> TokenFile:
    """The corpus's token ids as a file: the corpus itself for bytes, else its
    encoding in the cache folder, written chunk by chunk (and atomically) once."""
    path = Path(path)
    if isinstance(tokenizer, ByteTokenizer):
        return TokenFile(path, np.uint8)
    dtype = np.dtype(np.uint8 if tokenizer.vocab_size <= 256 else np.uint16 if tokenizer.vocab_size <= 65536
                     else np.int32)
    key = hashlib.sha256((digest + json.dumps(tokenizer.to_dict())).encode()).hexdigest()[:32]
    folder = Path(os.environ.get("RNNKIT_CACHE") or Path.home() / ".cache" / "rnnkit") / "tokens"
    target = folder / f"{key}.{dtype.name}"
    if target.exists():
        return TokenFile(target, dtype)
    folder.mkdir(parents=True, exist_ok=True)
    lut = np.zeros(256, dtype=np.int64)  # an ASCII byte -> its token (only for bytes in the vocabulary)
    ascii_cps = tokenizer.code_points[tokenizer.code_points < 256]
    lut[ascii_cps] = np.searchsorted(tokenizer.code_points, ascii_cps)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            for raw, text in _texts(path):
                ids = lut[np.frombuffer(raw, np.uint8)] if text.isascii() else tokenizer.encode(text, what=str(path))
                out.write(ids.astype(dtype).tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return TokenFile(target, dtype)
