"""The lectures' claims as experiments, each one command that prints a table
and draws a plot: ``rnnkit experiment NAME``. Each module's ``run(quick)``
returns (:class:`Table`, matplotlib figure): its rows as data, which
``Table.markdown`` prints; ``quick`` is the tests' small configuration, which
must already show the effect. An experiment on a data set the package does
not ship takes its path as ``run(quick, data)``."""

import inspect

from rnnkit.experiments import (clipping, echo_state, linear, numerics, optimizers, regularisation, symmetry,
                                vanishing)
from rnnkit.experiments.table import Table

EXPERIMENTS = {"linear": linear, "symmetry": symmetry, "clipping": clipping, "vanishing": vanishing,
               "optimizers": optimizers, "regularisation": regularisation, "echo-state": echo_state,
               "numerics": numerics}


def reads_data(name: str) -> bool:
    """Whether the experiment ``name`` reads a data set given by path (``run(quick, data)``)."""
    return "data" in inspect.signature(EXPERIMENTS[name].run).parameters


__all__ = ["EXPERIMENTS", "Table", "reads_data"]
