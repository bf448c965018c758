"""The cells' C kernels: compiled on first use, loaded with ctypes.

Every ``*.c`` file beside this module (``lstm.c``, ``gru.c``, with the shared
``kernels.h``) is compiled once per machine into one shared library with the
system's C compiler (``CC``, else ``cc``, ``gcc`` or ``clang``), with a
time-out of ``COMPILE_SECONDS``. The library is cached in
``$XDG_CACHE_HOME/rnnkit`` (default ``~/.cache/rnnkit``) under a name that
hashes the sources, the compiler's identity (its path and ``--version``), the
flags and the CPU, since ``-march=native`` ties the library to the CPU.
Where there is no compiler, or compiling fails or times out, rnnkit warns
once and the cells use their torch ops, which agree to fp32 rounding.
``RNNKIT_NATIVE=off`` turns the kernels off.

The ctypes signatures are read from the C sources themselves: every exported
function is ``void rnnkit_<name>(...)``, each argument a pointer (a tensor's
data) or an ``int64_t`` (a size, a row stride or a flag), so a kernel's
signature is written once, in C.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.errors import ConfigError

HERE = Path(__file__).parent
SETTINGS = ("auto", "off")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared")  # not -ffast-math: see kernels.h
COMPILE_SECONDS = 120.0
_EXPORTED = re.compile(r"^void\s+(rnnkit_\w+)\s*\(([^)]*)\)", re.MULTILINE)


def sources() -> list[Path]:
    """The C sources compiled into the kernels' library (``kernels/*.c``)."""
    return sorted(HERE.glob("*.c"))


def signatures(text: str) -> dict[str, list]:
    """The ctypes argument types of every ``void rnnkit_*(...)`` function in C source ``text``."""
    found = {}
    for name, args in _EXPORTED.findall(text):
        kinds = []
        for arg in args.split(","):
            if "*" in arg:
                kinds.append(ctypes.c_void_p)
            elif arg.split()[-2:-1] == ["int64_t"]:
                kinds.append(ctypes.c_int64)
            else:
                raise TypeError(f"{name}: argument {arg.strip()!r} is neither a pointer nor an int64_t")
        found[name] = kinds
    return found


def _cpu_identity() -> str:
    """What -march=native depends on: the first CPU's description in /proc/cpuinfo
    (model and feature flags), without the lines that change while it runs."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        first = cpuinfo.read_text().split("\n\n")[0].splitlines()
        return "\n".join(line for line in first if not line.lower().startswith(("cpu mhz", "bogomips")))
    return platform.machine() + platform.processor()


def _compiler() -> str:
    compiler = os.environ.get("CC") or next(
        (path for name in ("cc", "gcc", "clang") if (path := shutil.which(name))), None)
    if compiler is None:
        raise OSError("no C compiler found (cc, gcc or clang; or set CC)")
    return compiler


def _compiler_identity(compiler: str) -> str:
    run = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=COMPILE_SECONDS)
    return compiler + "\n" + run.stdout


def cache_key(compiler: str) -> str:
    """A hash of the sources, headers, compiler, flags and CPU: the library's cached build is reused only
    while all of them are the same."""
    text = [path.read_text() for path in sorted(HERE.glob("*.[ch]"))]
    parts = [*text, _compiler_identity(compiler), *FLAGS, _cpu_identity()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _build(compiler: str, target: Path) -> None:
    """Compile every source into target, with OpenMP where the compiler has it
    (else one thread, with its SIMD pragmas, else without)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")  # renamed when complete
    files = [str(path) for path in sources()]
    for openmp in (["-fopenmp"], ["-fopenmp-simd"], []):
        run = subprocess.run([compiler, *FLAGS, *openmp, *files, "-o", str(partial), "-lm"],
                             capture_output=True, text=True, timeout=COMPILE_SECONDS)
        if run.returncode == 0:
            os.replace(partial, target)
            return
    errors = run.stderr.strip().splitlines()
    raise OSError(f"{compiler} failed: {errors[0] if errors else run.returncode}")


def load(setting: str | None = None, compiler: str | None = None) -> ctypes.CDLL | None:
    """The compiled library, building it if needed; None when ``setting`` (default
    ``RNNKIT_NATIVE``) is "off" or it cannot be built (with one warning)."""
    setting = os.environ.get("RNNKIT_NATIVE", "auto") if setting is None else setting
    if setting not in SETTINGS:
        raise ConfigError(f"RNNKIT_NATIVE must be one of {SETTINGS}, got {setting!r}")
    if setting == "off" or sys.platform == "win32":
        return None
    try:
        compiler = compiler or _compiler()
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = cache_home / "rnnkit" / f"kernels-{cache_key(compiler)}.so"
        if not path.exists():
            _build(compiler, path)
        library = ctypes.CDLL(str(path))  # after torch, so its OpenMP is torch's libgomp
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"rnnkit: native cell kernels unavailable ({error}); using torch ops, "
                      "which are slower. RNNKIT_NATIVE=off silences this", stacklevel=2)
        return None
    for source in sources():
        for name, argtypes in signatures(source.read_text()).items():
            function = getattr(library, name)
            function.argtypes = argtypes
            function.restype = None
    return library


library = cache(load)  # the process's library: built or found at the first use


def handles(*tensors: Tensor) -> bool:
    """Whether the kernels apply: 2-d (B, N) fp32 CPU tensors, the library is there, and no graph is being
    traced for export (a trace cannot see into a ctypes call; the torch ops compute the same)."""
    return (not torch.jit.is_tracing()
            and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.dim() == 2 for t in tensors)
            and library() is not None)


def rows(t: Tensor) -> Tensor:
    """t (B, N) with contiguous rows (any row stride), as the kernels read it."""
    return t if t.stride(1) == 1 else t.contiguous()


def walk(t: Tensor, axis: int) -> tuple[int, int]:
    """(address of index 0, bytes a step) of ``t`` along ``axis``, e.g. axis 1 of x (B, T, 4H): the
    kernels' time loops address step k as address + k * bytes, without making a view a step."""
    return t.data_ptr(), t.stride(axis) * t.element_size()
