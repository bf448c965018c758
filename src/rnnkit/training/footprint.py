"""What a training run needs in memory, known before it starts.

A training step holds, beyond what the process holds already (the data, the
weights W, the libraries):

- the gradients, as large as the weights: W bytes;
- the optimizer's state: Adam and AdamW keep two moments (2W), momentum,
  Nesterov, AdaGrad and RMSProp one buffer (W), plain SGD none;
- the activations the forward pass keeps for backpropagation through time;
- and at each checkpoint, a copy of the weights and optimizer state and the
  file's bytes: 2 (W + optimizer state).

The activations grow linearly with the batch size B at a given length, so they
are measured, not modelled: the memory the allocator has handed out when a
forward pass of the heaviest batch (the longest examples) has run, minus
before, at batch sizes 4 and 8 (after one pass that lets first-call caches
settle; each the median of three passes, since on a CPU one pass's count can
differ from the others'), extrapolated to B::

    a(B) = a(4) + (B - 4) (a(8) - a(4)) / 4

On a CPU the allocator's count is glibc's (:func:`rnnkit.kernels.memory.heap_in_use`),
on a GPU torch's. The measurement leaves the model, its buffers and the random
state as they were, so a run's trajectory does not depend on it. The
allocator's fragmentation comes on top, so the process's peak stands somewhat
above the estimate (benchmarks/NOTEBOOK.md, 2026-12-06; the test allows 25 %).
"""

from __future__ import annotations

import contextlib
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.data.batches import to_device
from rnnkit.errors import ConfigError
from rnnkit.kernels.memory import heap_in_use

OPTIMIZER_BUFFERS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2,
                     "adamw": 2}


def size(n: float | None) -> str:
    """Bytes ``n`` for people: ``"1.2 MB"``, or ``"unknown"`` for None."""
    if n is None:
        return "unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} B"


@dataclass
class Footprint:
    """The memory a training run needs, in bytes: ``weights``, ``gradients``, ``optimizer_state`` and
    ``activations`` (a step's forward pass at the heaviest batch; None where it cannot be measured), for
    ``parameters`` and ``tokens_per_step``; what the process holds now (``resident``) and what the
    machine can still give (``available``), both None where unknown."""

    parameters: int
    weights: int  # bytes, as are the sizes below
    gradients: int
    optimizer_state: int
    activations: int | None  # kept by a step's forward pass at the heaviest batch; None: not measurable here
    tokens_per_step: float  # input tokens (or frames) a step reads, on average
    resident: int | None  # the process's resident memory now: data, weights, libraries
    available: int | None  # what the machine (or its container, or the GPU) can still give

    @property
    def checkpoint(self) -> int:
        """A checkpoint's copy of the weights and optimizer state, and its file's bytes."""
        return 2 * (self.weights + self.optimizer_state)

    @property
    def step(self) -> int | None:
        """What training adds to the process: gradients, optimizer state, activations, checkpoints."""
        return None if self.activations is None else \
            self.gradients + self.optimizer_state + self.activations + self.checkpoint

    @property
    def fits(self) -> bool:
        """Whether :attr:`step` fits in what is available (True when either is unknown)."""
        return self.step is None or self.available is None or self.step <= self.available

    def describe(self) -> str:
        """The footprint in three lines, as ``rnnkit train --dry-run`` prints it."""
        return (f"{self.parameters:,} parameters; {self.tokens_per_step:,.0f} tokens a step\n"
                f"memory: weights {size(self.weights)}; training adds gradients {size(self.gradients)} + optimizer "
                f"state {size(self.optimizer_state)} + activations {size(self.activations)} (heaviest batch) + "
                f"checkpoint copies {size(self.checkpoint)} = {size(self.step)}\n"
                f"the process holds {size(self.resident)} now (data, weights, libraries), so it peaks near "
                f"{size(None if self.step is None or self.resident is None else self.resident + self.step)}; "
                f"available: {size(self.available)}")


def refuse_oversized(model, optimizer: str, device: torch.device) -> None:
    """A ConfigError when ``model``'s weights, gradients and optimizer state alone
    exceed the memory available. Give it the model built on the ``meta`` device,
    where building costs nothing, before building it for real."""
    n = sum(p.numel() for p in model.parameters())
    need = 4 * n * (2 + OPTIMIZER_BUFFERS[optimizer])  # fp32 weights and gradients, the optimizer's buffers
    available = _available(device)
    if available is not None and need > available:
        raise ConfigError(f"a model of {n:,} parameters needs {size(need)} for its weights, gradients and "
                          f"optimizer state, and {size(available)} are available; lower --hidden-size, "
                          f"--num-layers or --embedding-dim")


def measure(model, batcher, batch_size: int, optimizer: str, device: torch.device, precision: str) -> Footprint:
    """The :class:`Footprint` of training ``model`` on ``batcher``'s batches of ``batch_size``
    with ``optimizer`` on ``device`` at ``precision`` (activations measured by a forward pass)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return Footprint(parameters=sum(p.numel() for p in model.parameters()), weights=weights, gradients=weights,
                     optimizer_state=OPTIMIZER_BUFFERS[optimizer] * weights,
                     activations=_activations(model, batcher, batch_size, device, precision),
                     tokens_per_step=batcher.tokens_per_batch(), resident=_resident(device),
                     available=_available(device))


def _activations(model, batcher, batch_size: int, device: torch.device, precision: str) -> int | None:
    small = (4, 8) if batch_size > 8 else (batch_size,)
    with _untouched(model, device):
        _held_by_forward(model, batcher.heaviest_batch(2), device, precision)  # first-call caches and layouts
        held = [held_by_forward(model, batcher.heaviest_batch(b), device, precision) for b in small]
    if None in held:
        return None
    if len(held) == 1:
        return held[0]
    slope = (held[1] - held[0]) / (small[1] - small[0])
    return max(0, round(held[0] + (batch_size - small[0]) * slope))


def held_by_forward(model, batch, device: torch.device, precision: str, passes: int = 3) -> int | None:
    """The median over ``passes`` forward passes of the bytes each holds for its backward.
    On a CPU glibc's count of one pass can differ from the next's
    (benchmarks/NOTEBOOK.md, 2026-12-06, "Footprint"), and the extrapolation
    magnifies an error at batch 4 or 8 tenfold."""
    held = [_held_by_forward(model, batch, device, precision) for _ in range(passes)]
    return None if None in held else round(statistics.median(held))


def _held_by_forward(model, batch, device: torch.device, precision: str) -> int | None:
    batch = to_device(batch, device)
    before = _in_use(device)
    if before is None:
        return None
    with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
        loss, state = model.loss(batch, None)
    held = _in_use(device) - before
    del loss, state
    return held


@contextlib.contextmanager
def _untouched(model, device: torch.device):
    """Run the block on ``model`` in training mode and restore its mode, buffers and the random state."""
    was_training = model.training
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    model.train()
    try:
        yield
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)


def _in_use(device: torch.device) -> int | None:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else heap_in_use()


def _resident(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _available(device: torch.device) -> int | None:
    """Free memory of the GPU, or what the kernel says it can still give (MemAvailable),
    capped by the container's limit (cgroup v2) where there is one."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to respect
    return available
