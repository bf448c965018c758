"""The lectures' claims as experiments, each one command that prints a table
and draws a plot: ``rnnkit experiment NAME``. Each module's ``run(quick)``
returns (markdown table, matplotlib figure); ``quick`` is the tests' small
configuration, which must already show the effect."""

from rnnkit.experiments import clipping, echo_state, linear, optimizers, regularisation, symmetry, vanishing

EXPERIMENTS = {"linear": linear, "symmetry": symmetry, "clipping": clipping, "vanishing": vanishing,
               "optimizers": optimizers, "regularisation": regularisation, "echo-state": echo_state}

__all__ = ["EXPERIMENTS"]
