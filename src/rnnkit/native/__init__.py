"""Native kernels for the LSTM's and GRU's element-wise steps, compiled on first use.

The explicit engine's LSTM step as torch ops (:class:`rnnkit.gates.LSTMGates`)
is about eight kernels forward and nine backward, each a pass over (B, 4H)
or (B, H) floats. ``gates.c`` does each direction in one pass: at (64, 4 x 512)
in fp32 a forward and backward took 56 us against 217 on this project's CPU
(2 threads). The GRU's kernels do the same for its step. The kernels hold the
cells' arithmetic only; autograd, the time loop and the products stay in
torch (:class:`rnnkit.gates.LSTMGates` and :mod:`rnnkit.layers.native_loop`
call them).

The source is compiled once per machine with the system's C compiler (``CC``,
else ``cc``, ``gcc`` or ``clang``) into ``$XDG_CACHE_HOME/rnnkit`` (default
``~/.cache/rnnkit``), under a name that hashes the source, the compiler and
the CPU, since ``-march=native`` ties the library to the CPU. Where there is no
compiler, or compiling fails, rnnkit warns once and uses the torch ops: the
results agree to fp32 rounding. ``RNNKIT_NATIVE=off`` turns the kernels off.
They compute in fp32 on a CPU; the layer's loop also exchanges bf16 with the
products under autocast. Other dtypes and devices use the torch ops.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.errors import ConfigError

SOURCE = Path(__file__).with_name("gates.c")
SETTINGS = ("auto", "off")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared")  # not -ffast-math: see gates.c
# gates.c's functions, their arguments in order: P a tensor's data, N a size or a row stride
SIGNATURES = {
    # hp, xp, c, act, c_new, h, h_copy, tanh_c, B, H, bf16
    "rnnkit_lstm_forward": "P PN PN P P PN P P NNN",
    # act, c, tanh_c, dh, dh_more, dc_new, dgates, dgates_copy, dc_prev, B, H, bf16
    "rnnkit_lstm_backward": "P PN P PN P PN PN P P NNN",
    # hp, xp, h, rz, n, hn, hmn, out, h_copy, B, H, bf16
    "rnnkit_gru_forward": "P PN PN P P P P PN P NNN",
    # rz, n, hn, hmn, dout, dh_direct, dh_more, dxp, dhp, dh_direct_out, B, H, bf16
    "rnnkit_gru_backward": "P P P P PN P P PN P P NNN",
}


def _cpu_identity() -> str:
    """What -march=native depends on: the first CPU's description in /proc/cpuinfo
    (model and feature flags), without the lines that change while it runs."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        first = cpuinfo.read_text().split("\n\n")[0].splitlines()
        return "\n".join(line for line in first if not line.lower().startswith(("cpu mhz", "bogomips")))
    import platform
    return platform.machine() + platform.processor()


def _compiler() -> str:
    compiler = os.environ.get("CC") or next(
        (path for name in ("cc", "gcc", "clang") if (path := shutil.which(name))), None)
    if compiler is None:
        raise OSError("no C compiler found (cc, gcc or clang; or set CC)")
    return compiler


def _build(compiler: str, target: Path) -> None:
    """Compile SOURCE into target, with OpenMP where the compiler has it (else
    one thread, with its SIMD pragmas, else without)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")  # renamed when complete
    for openmp in (["-fopenmp"], ["-fopenmp-simd"], []):
        run = subprocess.run([compiler, *FLAGS, *openmp, str(SOURCE), "-o", str(partial), "-lm"],
                             capture_output=True, text=True)
        if run.returncode == 0:
            os.replace(partial, target)
            return
    errors = run.stderr.strip().splitlines()
    raise OSError(f"{compiler} failed: {errors[0] if errors else run.returncode}")


def load(setting: str | None = None, compiler: str | None = None) -> ctypes.CDLL | None:
    """The compiled library, building it if needed; None when ``setting`` (default
    ``RNNKIT_NATIVE``) is "off" or it cannot be built (with a warning)."""
    setting = os.environ.get("RNNKIT_NATIVE", "auto") if setting is None else setting
    if setting not in SETTINGS:
        raise ConfigError(f"RNNKIT_NATIVE must be one of {SETTINGS}, got {setting!r}")
    if setting == "off" or sys.platform == "win32":
        return None
    try:
        compiler = compiler or _compiler()
        key = hashlib.sha256("\n".join([SOURCE.read_text(), compiler, *FLAGS, _cpu_identity()])
                             .encode()).hexdigest()[:16]
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = cache_home / "rnnkit" / f"gates-{key}.so"
        if not path.exists():
            _build(compiler, path)
        library = ctypes.CDLL(str(path))  # after torch, so its OpenMP is torch's libgomp
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"rnnkit: native LSTM/GRU kernels unavailable ({error}); using torch ops, "
                      "which are slower. RNNKIT_NATIVE=off silences this", stacklevel=2)
        return None
    kinds = {"P": ctypes.c_void_p, "N": ctypes.c_int64}
    for name, signature in SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes = [kinds[kind] for kind in signature.replace(" ", "")]
        function.restype = None
    return library


library = cache(load)  # the process's library: built or found at the first use


def handles(*tensors: Tensor) -> bool:
    """Whether the kernels apply: 2-d fp32 CPU tensors, and the library is there."""
    return (all(t.dtype == torch.float32 and t.device.type == "cpu" and t.dim() == 2 for t in tensors)
            and library() is not None)


def _rows(t: Tensor) -> Tensor:
    """t with contiguous rows (any row stride), as the kernels read it."""
    return t if t.stride(1) == 1 else t.contiguous()


def lstm_step_forward(hp: Tensor, xp: Tensor | None, c: Tensor, act: Tensor, c_new: Tensor,
                      h: Tensor, h_copy: Tensor, tanh_c: Tensor) -> None:
    """The LSTM's step from hp (B, 4H, contiguous) + xp (B, 4H, any row stride;
    None: none) and c (B, H, any row stride) into act (B, 4H), c_new, h (any row
    stride), h_copy and tanh_c (B, H). hp, xp and h_copy are all fp32 or all
    bf16 (then xp is required; see gates.c)."""
    B, H = c.shape
    library().rnnkit_lstm_forward(hp.data_ptr(), None if xp is None else xp.data_ptr(),
                                  0 if xp is None else xp.stride(0), c.data_ptr(), c.stride(0),
                                  act.data_ptr(), c_new.data_ptr(), h.data_ptr(), h.stride(0),
                                  h_copy.data_ptr(), tanh_c.data_ptr(), B, H, hp.dtype == torch.bfloat16)


def lstm_step_backward(act: Tensor, c: Tensor, tanh_c: Tensor, dh: Tensor, dh_more: Tensor,
                       dc_new: Tensor, dgates: Tensor, dgates_copy: Tensor, dc_prev: Tensor) -> None:
    """The backward of :func:`lstm_step_forward` from the gradients reaching h
    (dh, any row stride, + dh_more) and c' (any row stride) into dgates (B, 4H,
    any row stride), dgates_copy and dc_prev. dh_more, dgates and dgates_copy
    are all fp32 or all bf16."""
    B, H = c.shape
    library().rnnkit_lstm_backward(act.data_ptr(), c.data_ptr(), c.stride(0), tanh_c.data_ptr(), dh.data_ptr(),
                                   dh.stride(0), dh_more.data_ptr(), dc_new.data_ptr(), dc_new.stride(0),
                                   dgates.data_ptr(), dgates.stride(0), dgates_copy.data_ptr(),
                                   dc_prev.data_ptr(), B, H, dgates.dtype == torch.bfloat16)


def gru_step_forward(hp: Tensor, xp: Tensor, h: Tensor, rz: Tensor, n: Tensor, hn: Tensor, hmn: Tensor,
                     out: Tensor, h_copy: Tensor) -> None:
    """The GRU's step from hp (B, 3H, contiguous), xp (B, 3H) and h (B, H), each read
    with any row stride, into rz (B, 2H), n, hn, hmn (B, H), out (B, H, any row
    stride) and h_copy. hp, xp and h_copy are all fp32 or all bf16 (see gates.c)."""
    B, H = h.shape
    library().rnnkit_gru_forward(hp.data_ptr(), xp.data_ptr(), xp.stride(0), h.data_ptr(), h.stride(0),
                                 rz.data_ptr(), n.data_ptr(), hn.data_ptr(), hmn.data_ptr(), out.data_ptr(),
                                 out.stride(0), h_copy.data_ptr(), B, H, hp.dtype == torch.bfloat16)


def gru_step_backward(rz: Tensor, n: Tensor, hn: Tensor, hmn: Tensor, dout: Tensor, dh_direct: Tensor,
                      dh_more: Tensor, dxp: Tensor, dhp: Tensor, dh_direct_out: Tensor) -> None:
    """The backward of :func:`gru_step_forward` from the gradients reaching h'
    (dout, any row stride, + dh_direct + dh_more) into dxp (B, 3H, any row
    stride), dhp (B, 3H) and dh_direct_out = dh' z (B, H). dh_more, dxp and dhp
    are all fp32 or all bf16."""
    B, H = dh_direct.shape
    library().rnnkit_gru_backward(rz.data_ptr(), n.data_ptr(), hn.data_ptr(), hmn.data_ptr(), dout.data_ptr(),
                                  dout.stride(0), dh_direct.data_ptr(), dh_more.data_ptr(), dxp.data_ptr(),
                                  dxp.stride(0), dhp.data_ptr(), dh_direct_out.data_ptr(), B, H,
                                  dhp.dtype == torch.bfloat16)


def lstm_forward(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """gates (B, 4H), c (B, H) -> h, c', and for the backward act = [i|f|g|o] (B, 4H) and tanh(c')."""
    gates, c = gates.contiguous(), _rows(c)
    B, H = c.shape
    act = torch.empty(B, 4 * H)
    c_new, h, tanh_c = torch.empty(B, H), torch.empty(B, H), torch.empty(B, H)
    lstm_step_forward(gates, None, c, act, c_new, h, h, tanh_c)  # h is its own copy
    return h, c_new, act, tanh_c


def lstm_backward(act: Tensor, c: Tensor, tanh_c: Tensor, dh: Tensor, dc_new: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients reaching h and c' (B, H) -> those reaching gates (B, 4H) and c (B, H)."""
    c, dh, dc_new = _rows(c), _rows(dh), _rows(dc_new)
    dgates, dc_prev = torch.empty(act.shape), torch.empty(c.shape)
    lstm_step_backward(act, c, tanh_c, dh, dh.new_zeros(dh.shape), dc_new, dgates, dgates, dc_prev)  # no product
    return dgates, dc_prev
