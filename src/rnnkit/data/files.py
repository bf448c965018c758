"""Reading a training file: its text or bytes, with clear errors, and its digest."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from rnnkit.errors import DataError


def read_text(path: str | Path, tokenizer_kind: str = "char") -> str | bytes:
    """The file's text (``char``) or raw bytes (``byte``), with clear errors;
    a ``.gz`` file is decompressed first."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if p.is_dir():
        raise DataError(f"{path} is a directory; give a text file (concatenate the files you want)")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    if p.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is not a whole gzip file ({e}); download or copy it again") from None
    if not raw:
        raise DataError(f"{path} is empty")
    if tokenizer_kind == "byte":
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        f"use --tokenizer byte to train on raw bytes") from None


def file_digest(path: str | Path, *more: str | Path | None) -> str:
    """SHA-256 of a file, or, with more files (None skipped), of their digests together."""
    digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (path, *more) if p]
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
