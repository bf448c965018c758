"""Data-parallel training over processes with torch.distributed.

``torchrun`` starts one process per CPU socket, GPU or machine and tells each
its place (RANK, WORLD_SIZE, LOCAL_RANK, and where to meet: MASTER_ADDR and
MASTER_PORT, or a rendezvous endpoint); :func:`join` turns that into a
process group (gloo on CPUs, NCCL on GPUs). The trainer then, at every step:

- gives rank r of W its rows of the global batch (``--batch-size`` is the
  global batch, a multiple of W): rows r B/W .. (r+1) B/W, which for a
  language model are its own streams, whose state it carries;
- weights the loss it backpropagates by its share of the batch's loss terms
  (tokens, or examples): with n_r terms on rank r and N in all, rank r
  backpropagates L_r n_r W / N, and DistributedDataParallel averages the
  gradients over the W ranks, so every rank holds

      (1/W) sum_r W (n_r / N) grad L_r = (1/N) sum_r n_r grad L_r = grad L,

  the gradient of the global batch's mean loss, as one process computes it;
- agrees with the others on what only a rank can see: its loss (a NaN
  anywhere skips the step everywhere), the time spent (the slowest rank's,
  so time budgets and schedules move together) and a stop request.

Validation is split too: a language model's streams go round the ranks and
the summed losses are reduced; every other task's evaluation batches go round
the ranks (:func:`share`) and their results (losses, predictions, decoded
outputs) come back to every rank in order (:func:`gather_shares`), so every
rank computes the metrics one process would, and all decide alike on the best
checkpoint and on stopping early.

Only rank 0 writes the run folder; checkpoints gather what differs between
ranks (the carried states, the random states) into one global state, so a
run resumes on any number of ranks that divides the batch.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rnnkit.data import batches
from rnnkit.data.batches import Batch
from rnnkit.errors import ConfigError


@dataclass(frozen=True)
class Group:
    """This process's place among ``world`` data-parallel processes."""

    rank: int
    world: int

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes the run folder and prints."""
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device_name: str) -> str:
    """Join the process group torchrun describes; returns the device to train on
    (this process's GPU by LOCAL_RANK, else the CPU)."""
    cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if device_name == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def current() -> Group | None:
    """The process group this process trains in, or None when it trains alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return Group(dist.get_rank(), dist.get_world_size())


class _Loss(nn.Module):
    """The model's training contract as a forward pass, for DistributedDataParallel to wrap."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, state):
        return self.model.loss(batch, state)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model.loss`` behind DistributedDataParallel, which broadcasts rank 0's
    weights now and averages the gradients in buckets during backward."""
    return DistributedDataParallel(_Loss(model), device_ids=[device.index] if device.type == "cuda" else None)


def rows(batch: Batch, group: Group) -> tuple[Batch, bool]:
    """Rank ``group.rank``'s rows of a global batch of b rows (every tensor batch-first):
    rows r b/W .. (r+1) b/W, rounded down, which split any batch (an epoch's last
    may be short); and whether there are any. A rank left without rows runs the
    first row, so as to take part in DDP's all-reduce, at weight 0 (no loss terms)."""
    b = len(batch.x)
    lo, hi = group.rank * b // group.world, (group.rank + 1) * b // group.world
    return (batches.rows(batch, lo, hi), True) if hi > lo else (batches.rows(batch, 0, 1), False)


def loss_terms(model: nn.Module, batch: Batch) -> int:
    """How many terms the model's mean loss averages over on ``batch``: its
    ``loss_terms(batch)``, or the examples (the batch's rows)."""
    count = getattr(model, "loss_terms", None)
    return int(count(batch)) if count is not None else len(batch.x)


def all_sum(*values: float) -> list[float]:
    """The sums over all ranks of each of ``values`` (float64, one collective)."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def all_max(*values: float) -> list[float]:
    """The maxima over all ranks of each of ``values`` (float64, one collective)."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def gather_rows(t: Tensor, dim: int) -> Tensor:
    """Every rank's ``t`` joined along ``dim`` in rank order (the global batch's rows)."""
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim)


def own_rows(t: Tensor, dim: int, group: Group) -> Tensor:
    """Rank ``group.rank``'s part of a global tensor split along ``dim``."""
    return t.chunk(group.world, dim)[group.rank].contiguous()


def barrier() -> None:
    """Wait until every rank gets here."""
    dist.barrier()


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def share(items, group: Group | None):
    """Rank r's share of a sequence of work items (evaluation batches): every
    W-th from the r-th, which balances batches sorted by length; all of them
    when training alone."""
    return items if group is None else itertools.islice(items, group.rank, None, group.world)


def gather_shares(results: list, group: Group | None) -> list:
    """The results of every rank's :func:`share` (one per item), put back in
    the items' order on every rank, so that what is computed from them is what
    one process computes."""
    if group is None:
        return results
    parts = gather_objects(results)
    everything: list = [None] * sum(map(len, parts))
    for rank, part in enumerate(parts):
        everything[rank::group.world] = part
    return everything
