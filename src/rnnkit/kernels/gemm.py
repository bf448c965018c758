"""Matrix products on the fastest CPU kernel that torch carries.

torch multiplies fp32 matrices on a CPU with MKL, and MKL chooses its code
path by CPU vendor: on processors not made by Intel it runs generic AVX2
kernels even where the CPU has AVX-512. oneDNN, which torch also carries (its
LSTM/GRU/RNN kernels and bf16 products use it), chooses by instruction set.
On this project's AMD EPYC (``rnnkit bench``) oneDNN multiplied fp32 matrices
much faster than MKL at a language model's shapes (benchmarks/NOTEBOOK.md,
"What this machine showed").

The products that rnnkit forms itself (input projections, the explicit
engine's steps and its weight gradient, the output layer, generation) go
through :func:`linear` and :func:`mm`. They run on oneDNN for fp32 CPU
tensors on x86 CPUs not made by Intel, outside autocast, and are ``F.linear`` / ``@``
everywhere else (GPUs, bf16 autocast, which already uses oneDNN, float64,
Intel CPUs). The choice is made once per process from the CPU vendor, not by
timing, so that a run and its resumption do the same arithmetic; the
environment variable ``RNNKIT_FP32_GEMM=onednn`` or ``=default`` overrides it
(read at the first product, so that a bad value is a one-line CLI error).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import ConfigError

BACKENDS = ("onednn", "default")


def _cpu_vendor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _choose_backend() -> str:
    asked = os.environ.get("RNNKIT_FP32_GEMM", "")
    if asked and asked not in BACKENDS:
        raise ConfigError(f"RNNKIT_FP32_GEMM must be one of {BACKENDS}, got {asked!r}")
    has_onednn = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    if asked == "onednn" and not has_onednn:
        raise ConfigError("RNNKIT_FP32_GEMM=onednn: this torch build has no oneDNN; unset it")
    if asked:
        return asked
    vendor = _cpu_vendor()  # MKL's generic path is an x86 matter: elsewhere torch's default stays
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return "onednn" if has_onednn and x86 and vendor and "GenuineIntel" not in vendor else "default"


_backend: str | None = None  # chosen at the first product; tests set it


def fp32_backend() -> str:
    """"onednn" or "default": where fp32 CPU products run in this process."""
    global _backend
    if _backend is None:
        _backend = _choose_backend()
    return _backend


def uses_onednn(*tensors: Tensor) -> bool:
    """True when a product of these tensors (any shape) runs on oneDNN rather than torch's default (never while
    a graph is traced for export: ONNX has no oneDNN op, and F.linear is the same product)."""
    return (fp32_backend() == "onednn" and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing()
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors))


def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (N, K) @ weight (M, K)^T + bias (M,) -> (N, M) on oneDNN; weight may be a transposed view (read in
    place)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def mm(a: Tensor, b: Tensor) -> Tensor:
    """a (M, K) @ b (K, N) -> (M, N), without autograd (for hand-written backwards)."""
    if not uses_onednn(a, b):
        return a @ b
    # oneDNN reads the second operand in any layout but copies a first operand
    # that is not contiguous (a transposed view, as in a weight gradient dY^T X):
    # form a @ b or (a @ b)^T = b^T a^T, whichever copies the smaller matrix
    if a.is_contiguous() or a.numel() <= b.numel():
        return onednn_linear(a.contiguous(), b.t(), None)
    return onednn_linear(b.t(), a, None).t().contiguous()


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b with its backward on oneDNN: dx = dy W, dW = dy^T x, db = sum dy."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return onednn_linear(x, weight, bias)  # (..., O)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, weight = ctx.saved_tensors
        dy2 = dy.contiguous().view(-1, dy.shape[-1])  # (N, O)
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            dx = mm(dy2, weight).view(x.shape)  # (N, I)
        if ctx.needs_input_grad[1]:
            dweight = mm(dy2.t(), x.reshape(-1, x.shape[-1]))  # (O, I)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            dbias = dy2.sum(0)
        return dx, dweight, dbias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear``: x (..., I), weight (O, I), bias (O,) -> (..., O), on oneDNN
    where :func:`uses_onednn` says so."""
    if not uses_onednn(x, weight):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _OneDNNLinear.apply(x, weight, bias)
    return onednn_linear(x, weight, bias)


SMALL_GEMV = 1 << 18  # weight elements (1 MiB in fp32) below which a single row's product skips oneDNN


def prepare(weight: Tensor, batch_size: int, dtype: torch.dtype | None = None) -> Tensor:
    """weight (O, I) as a constant for many products of ``batch_size`` rows, in
    ``dtype`` (default: its own): laid out once in oneDNN's blocked format where
    oneDNN does the product (fp32 where :func:`uses_onednn` would, and bf16 on
    every CPU, where torch's bf16 products are oneDNN's), so that no product
    reorders it again.

    A small weight (below ``SMALL_GEMV`` elements) multiplied one row at a time
    stays dense in its own dtype for torch's default kernel: oneDNN's fixed
    cost a call, whatever the size, is several times a character model's
    output layer (65 x 512) on MKL, whose fp32 also beat either kernel's bf16
    there (benchmarks/NOTEBOOK.md, "Generation, later").

    A larger fp32 weight multiplied one row at a time is stored transposed,
    W^T (I, O) contiguous, and handed back as its (O, I) view: ``F.linear``
    then reads it as MKL's matrix-vector product likes it, row after row of
    W^T, which took 0.28 ms against oneDNN's 0.35 for a 2 x 512 LSTM step's two
    products (CPU time, benchmarks/NOTEBOOK.md, 2026-12-07, "rnnkit at batch 1")."""
    if batch_size == 1 and weight.numel() < SMALL_GEMV:
        return weight.detach().contiguous()
    if batch_size == 1 and (dtype or weight.dtype) == torch.float32 == weight.dtype and weight.device.type == "cpu":
        return weight.detach().t().contiguous().t()  # (O, I), strides (1, O)
    weight = weight.detach().to(dtype or weight.dtype).contiguous()
    bf16_on_cpu = (weight.dtype == torch.bfloat16 and weight.device.type == "cpu"
                   and torch.backends.mkldnn.is_available())
    return torch.ops.mkldnn._reorder_linear_weight(weight, batch_size) if bf16_on_cpu or uses_onednn(weight) \
        else weight


def product_into(weight: Tensor, batch_size: int, dtype: torch.dtype, bias: Tensor | None = None):
    """``f(x) -> x @ weight^T (+ bias)`` for a :func:`prepare`-d weight (O, I) and x (n, I) of
    ``dtype``, n <= ``batch_size``, for a time loop that uses each result before its next call:
    where the weight is dense and of x's dtype, into one (batch_size, O) buffer that every call
    writes again (``torch.mm``/``torch.addmm`` with ``out=``: no allocation, and the fewest layers
    of dispatch, which at batch 1 cost more than the product); else :func:`prepared_linear`'s new
    tensor."""
    if weight.is_mkldnn or weight.dtype != dtype:
        return lambda x: prepared_linear(x, weight, bias)
    weight_t = weight.t()  # (I, O)
    buffer = torch.empty(batch_size, weight.shape[0], dtype=dtype, device=weight.device)

    def rows(n: int) -> Tensor:
        return buffer if n == batch_size else buffer[:n]

    if bias is None:
        return lambda x: torch.mm(x, weight_t, out=rows(x.shape[0]))
    return lambda x: torch.addmm(bias, x, weight_t, out=rows(x.shape[0]))


def prepared_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (B, I) @ a :func:`prepare`-d weight^T (+ bias) -> (B, O) in x's dtype;
    the product runs in the weight's dtype, the bias cast to it too (a small weight :func:`prepare`-d for
    one row stays in its own dtype while a caller's bias may come in x's). No autograd."""
    xw = x if x.dtype == weight.dtype else x.to(weight.dtype)
    bias = bias if bias is None or bias.dtype == weight.dtype else bias.to(weight.dtype)
    y = onednn_linear(xw, weight, bias) if weight.is_mkldnn else F.linear(xw, weight, bias)
    return y if y.dtype == x.dtype else y.to(x.dtype)
