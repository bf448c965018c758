"""Small generated stand-ins for the text data sets the tutorials read (``docs/tutorials``): each maker
writes, under a tutorial's folder, the files its commands name, in the real set's format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

TEXT_DATA: dict[str, Callable[[Path], None]] = {}
