"""Where training runs and in what precision: the device a name asks for
(``--device auto`` takes a GPU when there is one), and bf16 only where the
hardware multiplies it natively (``--precision auto`` takes it there)."""

from __future__ import annotations

import torch

from rnnkit.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """The torch device ``--device`` names (``auto``: CUDA if there is one, else the CPU), or a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices natively (CPU: AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(name: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``--precision`` on ``device`` (``auto``: bf16 where it has bf16 matrix
    units), or a ConfigError when bf16 is asked of a device without them."""
    if name == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if name == "bf16" and not bf16_supported(device):
        raise ConfigError(f"--precision bf16: this {device.type} has no bf16 matrix units (AVX-512 BF16 or "
                          f"AMX), so bf16 would be slower than fp32; use --precision fp32 or auto")
    return name
