"""Keep freed memory mapped, so that a training step does not fault its pages in again.

glibc's malloc serves large blocks (above 128 KiB, a threshold it raises to at
most 32 MiB) with fresh pages from mmap and unmaps them when they are freed.
A training step allocates and frees the same large activations at every step
((B*T, G*H) fp32 is 52 MB for a 2 x 512 LSTM at 64 x 100), so every step
pays a page fault for every 4 KiB of them again. On this project's virtual
machines filling or multiplying freshly allocated memory took several times as
long as reused memory (benchmarks/NOTEBOOK.md, "What this machine showed").

:func:`keep_freed_memory` raises glibc's mmap threshold to 1 GiB and its trim
threshold to 2 GiB - 1: blocks come from the heap and stay mapped after they are
freed, as tcmalloc or jemalloc would keep them (PyTorch's CPU performance
guide recommends those). The process's RSS then stays at its high-water mark.
The Trainer calls it; it is a no-op off glibc, and ``RNNKIT_KEEP_FREED_MEMORY=0``
turns it off (``=1``, the default, keeps it on; anything else is refused).

:func:`heap_in_use` reads glibc's count of the bytes malloc has handed out and
not taken back, which :mod:`rnnkit.training.footprint` uses to measure what a
training step holds.
"""

from __future__ import annotations

import ctypes
import os
import platform

from rnnkit.errors import ConfigError

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
_applied = False


class _MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h, glibc >= 2.33)
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_in_use() -> int | None:
    """Bytes that malloc has handed out and not taken back, in every arena: blocks in
    use on the heaps (``uordblks``) plus blocks mapped on their own (``hblkhd``).
    None where the C library is not glibc >= 2.33."""
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when they are in force."""
    global _applied
    asked = os.environ.get("RNNKIT_KEEP_FREED_MEMORY", "1")
    if asked not in ("0", "1"):
        raise ConfigError(f"RNNKIT_KEEP_FREED_MEMORY must be 0 or 1, got {asked!r}")
    if _applied:
        return True
    if asked == "0" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
    return _applied
