"""The experiments' small models run on one thread: their matrices (64 units,
batches of 64) are too small for a second thread to pay for its handover,
and where another process shares the cores the threads wait on each other
(benchmarks/NOTEBOOK.md, 2026-12-05, "Threads")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to 1 inside, and back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
