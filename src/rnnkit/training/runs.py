"""The run folder, rnnkit's unit of persistence, and its format version.

A run folder holds::

    config.json          every setting, the tokenizer (and a seq2seq or ctc run's
                         target tokenizer), the label names (classify, tag), the engine
                         of each recurrent layer, rnnkit and format versions
                         (its format, reader and writer: rnnkit.training.run_config)
    model.safetensors    the best weights so far (lowest validation loss)
    last.safetensors     the last weights with the full trainer state, for exact resume
                         (its tensors and keys: rnnkit.training.checkpoint)
    metrics.jsonl        one JSON object per log step and per evaluation
    loss.png             the loss curves, redrawn at each evaluation
    run.lock             held (flock) by the trainer writing the folder; names its process

Tensors are stored with safetensors (never pickle); each file's metadata
carries a SHA-256 of its tensors, checked on load, so a truncated or altered
file is reported instead of loaded. Every write goes to a temporary file,
is flushed to disk (fsync) and renamed into place, and the rename is made
durable by syncing the folder: a crash, a kill -9 or Ctrl-C never leaves
half a file, and a write that fails (a full disk) leaves the previous file.

A run folder may come from anyone, so nothing in it is trusted: nothing is
unpickled (the trainer state is safetensors and JSON too, so no file is
ever read with ``torch.load``, with or without ``weights_only``); each
checkpoint records a SHA-256 of the parts of config.json its weights depend
on (model settings, task, tokenizers, labels), so an edited config.json is
refused before a model is built from it; and every tensor must have the
name, shape and dtype the model expects before any is loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnnkit.errors import CheckpointError, DataError
from rnnkit.layers import use_engines

FORMAT_VERSION = 1  # of the tensor files; config.json has its own (rnnkit.training.run_config)
CONFIG, BEST, LAST, METRICS, PLOT, LOCK = "config.json", "model.safetensors", "last.safetensors", \
    "metrics.jsonl", "loss.png", "run.lock"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename: a crash leaves the old file
    or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the user's usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself reaches the disk
    finally:
        os.close(folder)


def write_output(path: Path, data: bytes) -> None:
    """A file the user asked for (a report, a plot): its folder made, the file written
    atomically; a failed write is one line naming the file and the fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as e:
        raise DataError(f"could not write {path}: {e.strerror or e}; pass --out elsewhere") from None


def default_folder(data_path: str | None) -> Path:
    """The run folder of a corpus when no --out is given: runs/<its name>."""
    return Path("runs") / Path(data_path or "run").stem


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of a run's metrics.jsonl ([] without one), less a torn last line of a killed process."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(run_dir: Path, step: int) -> list[dict]:
    """Cut a run's metrics.jsonl back to its rows up to ``step`` (a resumed run redoes the
    steps after its checkpoint); returns them ([] without the file)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = [r for r in read_metrics(run_dir) if r["step"] <= step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return rows


def remove_partial_writes(run_dir: Path) -> None:
    """Delete temporary files that a killed writer left in ``run_dir`` (call with the lock held)."""
    for tmp in Path(run_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold ``run_dir``'s lock for the block; a second holder is refused with a CheckpointError.

    The lock is an ``flock`` on ``run.lock``, which the kernel releases when the
    process ends, however it ends: a lock left by a killed trainer is simply
    free, so a stale lock is taken over without guessing whether its process
    lives. The file stays (deleting it would let two processes lock two
    different files); it holds the holder's pid and host for the message.
    """
    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise CheckpointError(f"{run_dir} is in use by {holder}, which is training in it; wait for it to end, "
                              f"stop it, or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write tensors and JSON-able ``meta`` atomically, with a checksum."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    metadata = {"rnnkit": json.dumps(meta or {}), "sha256": _digest(tensors),
                "format_version": str(FORMAT_VERSION)}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def _corrupt(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} is corrupt (truncated or altered); restore it or train again")


def _safetensors_metadata(path: Path, head: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file that starts with ``head``."""
    try:
        (header_len,) = struct.unpack("<Q", head[:8])
        metadata = json.loads(head[8:8 + header_len]).get("__metadata__") or {}
    except Exception:  # any parse failure of a damaged file is the same problem for the user
        raise _corrupt(path) from None
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path} has format version {metadata.get('format_version')!r}; this "
                              f"rnnkit reads {FORMAT_VERSION}")
    return metadata


def read_metadata(path: Path) -> dict:
    """The JSON ``meta`` that :func:`save_tensors` stored, read from the file's header
    alone (its tensors and checksum are checked when :func:`load_tensors` reads it)."""
    with open(path, "rb") as f:
        head = f.read(8)
        header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if not 0 < header_len <= 100_000_000:
            raise _corrupt(path)
        metadata = _safetensors_metadata(path, head + f.read(header_len))
    try:
        return json.loads(metadata.get("rnnkit", "{}"))
    except json.JSONDecodeError:
        raise _corrupt(path) from None


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_tensors`, verifying its checksum."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    raw = path.read_bytes()
    metadata = _safetensors_metadata(path, raw)
    try:
        tensors = st_load(raw)
        meta = json.loads(metadata.get("rnnkit", "{}"))
    except Exception:
        raise _corrupt(path) from None
    if metadata.get("sha256") != _digest(tensors) or not isinstance(meta, dict):
        raise _corrupt(path)
    return tensors, meta


def check_tensors(path: Path, given: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    """Refuse ``given`` unless it has exactly the names, shapes and dtypes of ``expected``."""
    missing, unexpected = sorted(expected.keys() - given.keys()), sorted(given.keys() - expected.keys())
    if missing or unexpected:
        names = ", ".join([f"{n} missing" for n in missing[:3]] + [f"{n} unexpected" for n in unexpected[:3]])
        raise CheckpointError(f"{path} does not fit {what} ({names}); restore the run folder or train again")
    for name, tensor in given.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise CheckpointError(f"{path} does not fit {what} ({name} is {tensor.dtype} {tuple(tensor.shape)}, "
                                  f"expected {want.dtype} {tuple(want.shape)}); restore the run folder or train "
                                  f"again")


def load_weights(model, run_dir: str | Path, which: str = BEST, engines: dict[str, str] | str | None = None):
    """``model`` (built from the run's config.json by its task) with the weights of ``which``
    (BEST or LAST) of ``run_dir``, each checked for name, shape and dtype first, on ``engines``
    (the engines the run trained on, or one it is asked to use), in evaluation mode (no dropout;
    ``.train()`` it to train)."""
    path = Path(run_dir) / which
    tensors, _ = load_tensors(path)
    use_engines(model, engines or {})
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if which == BEST or k.startswith("model.")}
    check_tensors(path, weights, model.state_dict(), "its config.json")
    model.load_state_dict(weights)
    return model.eval()
