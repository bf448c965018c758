"""Layers that unroll cells over time."""

from rnnkit.layers.recurrent import ENGINES, MERGE_MODES, Recurrent

__all__ = ["ENGINES", "MERGE_MODES", "Recurrent"]
