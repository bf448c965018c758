"""When an evaluation rewrites the run folder's resume checkpoint and loss plot.

An evaluation always writes the best checkpoint (model.safetensors) when the
validation criterion improves: that file is what a run promises. The resume
checkpoint (last.safetensors) and the loss plot (loss.png) are rewritten only
when it is their turn, so that validating often (``--eval-every 10`` on a small
series) is not dominated by writing files:

    due  ⇔  first evaluation  or  step ≡ 0 (mod save_every)
            or  t_now - t_end(last rewrite) ≥ c / s

where c is the wall time the last rewrite took and s = :data:`SHARE`: the
rewrites take at most about s of the wall time, whatever their cost (a
checkpoint of a large model, a plot of a long run). The end of training and
Ctrl-C rewrite both unconditionally (:class:`rnnkit.training.Trainer`), so a
finished or interrupted run folder is complete and current; a crash loses at
most the steps since the last rewrite (``--save-every`` bounds them). With
several ranks the decision is the slowest clock's, so every rank takes part in
the same writes.
"""

from __future__ import annotations

import time
from typing import Callable

from rnnkit.training import distributed

SHARE = 0.1  # s: the most of the wall time the rewrites may take


class Rewrites:
    """Decides (``due``) and times (``run``) the rewrites of the resume checkpoint and the plot."""

    def __init__(self, share: float = SHARE):
        self.share = share
        self.cost = 0.0  # c, seconds: the last rewrite's
        self.ended = time.perf_counter()  # t_end of the last rewrite (the start of training before the first)
        self.first = True

    def due(self, step: int, save_every: int | None, group=None) -> bool:
        """Whether an evaluation at ``step`` rewrites the resume checkpoint and plot (the module's rule)."""
        waited = time.perf_counter() - self.ended
        if group:  # one decision for all ranks
            waited = distributed.all_max(waited)[0]
        return self.first or bool(save_every and step % save_every == 0) or waited >= self.cost / self.share

    def run(self, rewrite: Callable[[], None]) -> None:
        """Call ``rewrite()`` and time it, for the next :meth:`due`."""
        start = time.perf_counter()
        rewrite()
        self.ended = time.perf_counter()
        self.cost, self.first = self.ended - start, False
