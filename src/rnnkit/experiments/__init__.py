"""The lectures' claims as experiments, each one command that prints a table
and draws a plot: ``rnnkit experiment NAME``. Each module's ``run(quick)``
returns (markdown table, matplotlib figure); ``quick`` is the tests' small
configuration, which must already show the effect."""

from rnnkit.experiments import linear, symmetry

EXPERIMENTS = {"linear": linear, "symmetry": symmetry}

__all__ = ["EXPERIMENTS"]
