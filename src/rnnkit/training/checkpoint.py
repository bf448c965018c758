"""The trainer's state in a run folder's last.safetensors, for exact resume.

last.safetensors (written by :func:`rnnkit.training.runs.save_tensors`:
atomically, with a checksum) holds the tensors::

    model.<name>            the weights, named as in the model's state_dict
    optim.<pid>.<key>       the optimizer's tensor state (exp_avg, step, ...) of parameter <pid>,
                            its place in the optimizer's parameter groups
    carry.<i>               the recurrent state carried to the next batch, part i of a language
                            model's (h,) or (h, c), each (L*D, B, H) with every rank's streams
    rng.cpu, rng.cpu.<r>    the CPU random state of rank 0, and of rank r > 0 under torchrun (a
                            rank resumed without one seeds from the run's seed, its rank and step)
    rng.cuda                the CUDA random state, for one process on a GPU

and, as JSON metadata, the trainer's :class:`Progress` (``step``,
``epoch``, ``batch_index``, ``elapsed``, ``best_val`` (null before any
validation), ``evals_without_improvement``, ``log_sum``, ``log_norm_sum``,
``log_count``, ``skipped_steps``, ``nonfinite_in_a_row``, ``lr_scale``),
then ``param_groups`` (the optimizer's, of which only the parameter ids are
read back: the hyperparameters are the resumed run's settings),
``optim_scalars`` (the optimizer's state that is not a tensor, as
``"<pid>.<key>": number``), ``optimizer`` (its name) and ``config_sha256``
(:func:`rnnkit.training.run_config.structure_digest`, what the weights mean).

Checkpoints written before 2026-12-05 lack log_norm_sum, skipped_steps,
nonfinite_in_a_row and lr_scale, which are back-filled as 0, 0, 0 and 1, and
config_sha256 (nothing to check); one without ``optimizer`` is taken to be
of the resumed run's optimizer.
Nothing is trusted: every tensor and every value is checked for its name,
shape, dtype or type before any of them is used.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.errors import CheckpointError
from rnnkit.training import distributed
from rnnkit.training.optim import all_finite
from rnnkit.training.runs import check_tensors, load_tensors, save_tensors


@dataclass
class Progress:
    """Where training is and the bookkeeping a resumed run continues from."""

    step: int = 0  # steps taken
    epoch: int = 0  # 0-based
    batch_index: int = 0  # batches of this epoch taken
    elapsed: float = 0.0  # seconds of training, evaluation not counted
    best_val: float = math.inf  # the best validation criterion so far
    evals_without_improvement: int = 0  # for --patience
    log_sum: float = 0.0  # the losses, gradient norms and steps since the last metrics line
    log_norm_sum: float = 0.0
    log_count: int = 0
    skipped_steps: int = 0  # steps whose loss or gradient was not finite, in all
    nonfinite_in_a_row: int = 0  # and in a row
    lr_scale: float = 1.0  # halved at each such step under --on-nonfinite lower_lr


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress,
                    carry: tuple[Tensor, ...] | None, *, group: distributed.Group | None, device: torch.device,
                    optimizer_name: str, config_sha256: str | None) -> None:
    """Write last.safetensors at ``path``: ``model``, ``optimizer`` (named ``optimizer_name``),
    ``progress``, the state ``carry``-ed to the next batch and the random state. Under torchrun
    every rank calls it, and rank 0 writes the global state that the ranks' carried states
    and random states are gathered into (so a run resumes on any number of ranks)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    scalars = {}
    for pid, entries in opt_state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    carry, rngs = carry or (), [torch.get_rng_state()]
    if group:  # the global state: every rank's streams (state (L*D, B, H)), every rank's random state
        carry = tuple(distributed.gather_rows(s, dim=1) for s in carry)
        rngs = distributed.gather_objects(rngs[0])
    for i, s in enumerate(carry):
        tensors[f"carry.{i}"] = s
    for rank, rng in enumerate(rngs):
        tensors["rng.cpu" if rank == 0 else f"rng.cpu.{rank}"] = rng
    if device.type == "cuda" and not group:
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    best = progress.best_val if math.isfinite(progress.best_val) else None
    meta = {**dataclasses.asdict(progress), "best_val": best, "param_groups": opt_state["param_groups"],
            "optim_scalars": scalars, "optimizer": optimizer_name, "config_sha256": config_sha256}
    if group is None or group.main:
        save_tensors(path, tensors, meta)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                    group: distributed.Group | None, device: torch.device, optimizer_name: str, batch_size: int,
                    seed: int) -> tuple[Progress, tuple[Tensor, ...] | None]:
    """Take up the run in last.safetensors at ``path``. Every part is checked against
    ``model``, ``optimizer`` (named ``optimizer_name``) and the global ``batch_size`` before
    any is used; then the weights, the optimizer state and this process's random state
    are put back (a rank the run was not saved with seeds from ``seed``, its rank and the
    step). Returns the progress and this process's state for its next batch."""
    tensors, meta = load_tensors(path)
    params = [p for group in optimizer.param_groups for p in group["params"]]  # optimizer state's ids
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_tensors(path, model_sd, model.state_dict(), "this model's settings (resume without changing "
                                                      "model flags)")
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            p = params[int(pid)] if pid.isdigit() and int(pid) < len(params) else None
            if p is None or not v.is_floating_point() or (v.dim() and (v.shape, v.dtype) != (p.shape, p.dtype)):
                raise CheckpointError(f"{path} holds an optimizer state {k} {v.dtype} {tuple(v.shape)} that fits "
                                      f"no parameter of this model; restore the run folder or train again")
            state.setdefault(int(pid), {})[key] = v.to(device)
    carry_keys = sorted((k for k in tensors if k.startswith("carry.")), key=lambda k: int(k[6:]))
    carry = {k: tensors[k] for k in carry_keys}
    if carry and hasattr(model, "init_state"):  # a language model's state, fp32 or bf16 (autocast)
        zero = model.init_state(batch_size)
        if [s.shape for s in carry.values()] != [s.shape for s in zero] or not all_finite(carry.values()) or \
                not all(s.is_floating_point() for s in carry.values()):
            raise CheckpointError(f"{path} holds a recurrent state that does not fit this model and batch size; "
                                  f"restore the run folder or train again")
    rngs = [v for k, v in tensors.items() if k == "rng.cpu" or k.startswith("rng.cpu.")]
    if not rngs or any((r.shape, r.dtype) != (torch.get_rng_state().shape, torch.uint8) for r in rngs):
        raise CheckpointError(f"{path} has no valid random state (rng.cpu); restore the run folder or train again")
    rank = group.rank if group else 0
    rng = tensors.get("rng.cpu" if rank == 0 else f"rng.cpu.{rank}")  # None: resumed on more ranks
    if meta.get("optimizer", optimizer_name) != optimizer_name:
        raise CheckpointError(f"{path.parent} trained with --optimizer {meta['optimizer']}, whose state does not "
                              f"carry over to {optimizer_name}; resume with --optimizer {meta['optimizer']}")
    try:
        groups = _optimizer_groups(meta, state, optimizer)
        progress = _progress(meta)
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, TypeError, ValueError) as e:
        raise altered(path, e) from None
    model.load_state_dict(model_sd)
    own = tuple(carry[k].to(device) for k in carry_keys) or None
    if own and group:  # this rank's streams
        own = tuple(distributed.own_rows(s, 1, group) for s in own)
    if rng is not None:
        torch.set_rng_state(rng)
    else:
        torch.manual_seed(seed + rank + progress.step)
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    return progress, own


def altered(path: Path, error: Exception) -> CheckpointError:
    """The error for a trainer state that is not what :func:`save_checkpoint` writes."""
    return CheckpointError(f"{path} has an altered trainer state ({error}); restore the run folder or train "
                           f"again")


def _number(meta: dict, key: str, kind=float, default=None):
    """``meta[key]`` (``default`` where it is missing, if given), which must be an int
    (>= 0) or, for ``kind`` float, any finite number: a TypeError or ValueError if not."""
    value = meta.get(key, default) if default is not None else meta[key]
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise TypeError(f"{key} is {value!r}")
    if kind is int and value < 0 or kind is float and not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}")
    return value


def _optimizer_groups(meta: dict, state: dict[int, dict], optimizer: torch.optim.Optimizer) -> list[dict]:
    """The optimizer's parameter groups, whose parameters must be the checkpoint's; the
    scalars of its state are added to ``state``. The hyperparameters are this run's
    settings (a resumed run may change --weight-decay, say), not the checkpoint's."""
    groups = optimizer.state_dict()["param_groups"]
    saved = meta["param_groups"]
    if not isinstance(saved, list) or [g.get("params") if isinstance(g, dict) else None
                                       for g in saved] != [g["params"] for g in groups]:
        raise ValueError("its parameter groups do not fit this model")
    scalars = meta["optim_scalars"]
    if not isinstance(scalars, dict):
        raise TypeError("optim_scalars")
    for k in scalars:
        pid, key = k.split(".", 1)
        if not pid.isdigit() or int(pid) >= sum(len(g["params"]) for g in groups):
            raise ValueError(f"optim_scalars {k!r} names no parameter of this model")
        state.setdefault(int(pid), {})[key] = _number(scalars, k)  # a number, never a nested object
    return groups


def _progress(meta: dict) -> Progress:
    """The :class:`Progress` in ``meta``, every value type-checked."""
    number = functools.partial(_number, meta)
    step, epoch, batch_index = number("step", int), number("epoch", int), number("batch_index", int)
    elapsed = number("elapsed")
    best_val = math.inf if meta["best_val"] is None else number("best_val")
    evals_without_improvement = number("evals_without_improvement", int)
    log_sum, log_count = number("log_sum"), number("log_count", int)
    # checkpoints before 2026-12-05 lack these
    log_norm_sum = number("log_norm_sum", default=0.0)
    skipped_steps = number("skipped_steps", int, default=0)
    nonfinite_in_a_row = number("nonfinite_in_a_row", int, default=0)
    lr_scale = number("lr_scale", default=1.0)
    return Progress(step, epoch, batch_index, elapsed, best_val, evals_without_improvement, log_sum, log_norm_sum,
                    log_count, skipped_steps, nonfinite_in_a_row, lr_scale)
