"""Reading a training file: its text or bytes, with clear errors, and its digest.

A path may also name a file inside a zip archive, ``ARCHIVE.zip/MEMBER``
(Tatoeba's ``fra-eng.zip/fra.txt``), or an archive of one file by itself.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

from rnnkit.errors import DataError


def _archive_of(p: Path) -> tuple[Path, str] | None:
    """(the zip file, the member's name or "") where p is a zip or lies inside one."""
    for archive in (p, *p.parents):
        if archive.suffix == ".zip" and archive.is_file():
            return archive, p.relative_to(archive).as_posix().removeprefix(".")
    return None


def _read_member(archive: Path, member: str) -> bytes:
    """A member's bytes; no member named: the archive's only file."""
    try:
        with zipfile.ZipFile(archive) as z:
            files = sorted((i for i in z.infolist() if not i.is_dir()), key=lambda i: -i.file_size)
            names = [i.filename for i in files]  # largest first
            if not member and len(names) == 1:
                member = names[0]
            if member not in names:
                listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
                what = f"has no file {member}" if member else f"holds {len(names)} files"
                raise DataError(f"{archive} {what} ({listed}); name one as {archive}/{names[0] if names else 'FILE'}")
            return z.read(member)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{archive} is not a whole zip file ({e}); download or copy it again") from None


def exists(path: str | Path) -> bool:
    """Whether ``path`` names a file, or a member of a zip archive that exists."""
    inside = _archive_of(Path(path))
    if not inside:
        return Path(path).is_file()
    try:
        with zipfile.ZipFile(inside[0]) as z:
            return not inside[1] or inside[1] in z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return True  # there is something; reading it gives the error


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file or of a zip archive's member, with one-line errors."""
    p = Path(path)
    inside = _archive_of(p)
    if inside:
        return _read_member(*inside)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if p.is_dir():
        raise DataError(f"{path} is a directory; give a text file (concatenate the files you want)")
    try:
        return p.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None


def read_text(path: str | Path, tokenizer_kind: str = "char") -> str | bytes:
    """The file's text (``char``) or raw bytes (``byte``), with clear errors;
    a ``.gz`` file is decompressed first."""
    p = Path(path)
    raw = read_bytes(p)
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
        raise not_utf8(path, raw[e.start], e.start) from None


def not_utf8(path, byte: int, offset: int) -> DataError:
    """The error for a text that is not UTF-8, naming the first bad byte."""
    return DataError(f"{path} is not UTF-8 text (byte 0x{byte:02x} at offset {offset}); "
                     f"use --tokenizer byte to train on raw bytes")


def file_digest(path: str | Path, *more: str | Path | None) -> str:
    """SHA-256 of a file, or, with more files (None skipped), of their digests together."""
    digests = [hashlib.sha256(read_bytes(p)).hexdigest() for p in (path, *more) if p]
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
