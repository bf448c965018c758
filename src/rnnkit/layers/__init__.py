"""Layers that unroll cells over time, and what sits around them."""

from rnnkit.layers.recurrent import MERGE_MODES, Recurrent, engines_in, length_mask, merge_directions, use_engines

__all__ = ["MERGE_MODES", "Recurrent", "engines_in", "length_mask", "merge_directions", "use_engines"]
