"""Layers that unroll cells over time, and what sits around them."""

from rnnkit.layers.recurrent import MERGE_MODES, Recurrent, length_mask, merge_directions

__all__ = ["MERGE_MODES", "Recurrent", "length_mask", "merge_directions"]
