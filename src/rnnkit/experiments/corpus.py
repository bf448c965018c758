"""The text the experiments train on, which every Python ships: the first 200 kB
of its own ``argparse`` module's source (nothing to download)."""

from __future__ import annotations

import argparse
from pathlib import Path


def python_source() -> str:
    return Path(argparse.__file__).read_text()[:200_000]
