"""The oneDNN product path gives torch's results: values and gradients, in the
layer, the explicit engine and generation."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.kernels import gemm
from rnnkit.layers import Recurrent
from rnnkit.models import LanguageModel

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@pytest.fixture(params=["onednn", "default"])
def backend(request, monkeypatch):
    monkeypatch.setattr(gemm, "_backend", request.param)
    return request.param


def test_onednn_is_used_only_for_fp32_cpu_outside_autocast(monkeypatch):
    monkeypatch.setattr(gemm, "_backend", "onednn")
    x = torch.randn(2, 3)
    assert gemm.uses_onednn(x, x)
    assert not gemm.uses_onednn(x.double(), x.double())
    with torch.autocast("cpu", torch.bfloat16):
        assert not gemm.uses_onednn(x, x)
    monkeypatch.setattr(gemm, "_backend", "default")
    assert not gemm.uses_onednn(x, x)


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_equals_f_linear_in_values_and_gradients(backend, shape, with_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(24, 16, generator=g, requires_grad=True)
    b = torch.randn(24, generator=g, requires_grad=True) if with_bias else None
    upstream = torch.randn(*shape[:-1], 24, generator=g)

    y = gemm.linear(x, w, b)
    (y * upstream).sum().backward()
    ours = [y.detach(), x.grad, w.grad] + ([b.grad] if with_bias else [])
    for t in (x, w, b):
        if t is not None:
            t.grad = None
    y_ref = F.linear(x, w, b)
    (y_ref * upstream).sum().backward()
    ref = [y_ref.detach(), x.grad, w.grad] + ([b.grad] if with_bias else [])
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


def test_mm_of_contiguous_and_transposed_operands(backend):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 30, generator=g), torch.randn(30, 20, generator=g)
    torch.testing.assert_close(gemm.mm(a, b), a @ b, rtol=1e-5, atol=1e-5)
    for width in (20, 40):  # dY^T X with the smaller and with the larger dY (each copies the smaller)
        d, x = torch.randn(50, width, generator=g), torch.randn(50, 30, generator=g)
        torch.testing.assert_close(gemm.mm(d.t(), x), d.t() @ x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_explicit_engine_in_fp32_equals_torch_nn(backend, cell):
    torch.manual_seed(0)
    ours = Recurrent(cell, 8, 16, num_layers=2, engine="explicit")
    ref = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](8, 16, 2, batch_first=True)
    ref.load_state_dict(ours.torch_state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 9, 8, generator=g)
    upstream = torch.randn(4, 9, 16, generator=g)
    out, _ = ours(x)
    (out * upstream).sum().backward()
    ref_out, _ = ref(x)
    (ref_out * upstream).sum().backward()
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    grads = {k: p.grad for k, p in zip(ours.torch_state_dict(), ours.parameters())}
    for name, p in ref.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_generation_logits_agree_between_backends(monkeypatch):
    torch.manual_seed(0)
    model = LanguageModel(11, cell="lstm", hidden_size=32, num_layers=2, embedding_dim=8).eval()
    idx = torch.randint(11, (2, 12))
    results = {}
    for name in gemm.BACKENDS:
        monkeypatch.setattr(gemm, "_backend", name)
        results[name] = list(model.generate(idx, 20, temperature=0))
        (logits, _), _ = model(idx)
        results[name + " logits"] = logits
    torch.testing.assert_close(results["onednn logits"], results["default logits"], rtol=1e-5, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(results["onednn"], results["default"]))


@pytest.mark.parametrize("value,expected", [("onednn", "onednn"), ("default", "default")])
def test_environment_variable_chooses_the_backend(value, expected):
    code = "from rnnkit.kernels import gemm; print(gemm.fp32_backend())"
    out = subprocess.run([sys.executable, "-c", code], env={"RNNKIT_FP32_GEMM": value},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_a_nonsense_backend_is_refused_in_one_line(corpus, tmp_path, cli, user_error, tiny_lm_flags):
    out = cli("train", corpus, "--out", tmp_path / "run", "--max-steps", 1, *tiny_lm_flags,
              env={**os.environ, "RNNKIT_FP32_GEMM": "fast"})
    user_error(out, "RNNKIT_FP32_GEMM must be one of")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_batch_of_one_under_bf16_gives_the_rows_result_in_a_larger_batch(cell):
    """A single row's small weight stays dense fp32 (``SMALL_GEMV``) while the GRU's bias comes in the
    products' bf16: the product must take both in one dtype (the last batch of an epoch can be one row)."""
    torch.manual_seed(0)
    layer = Recurrent(cell, 8, 16, engine="explicit")
    x = torch.randn(3, 9, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        alone, _ = layer(x[:1])  # (1, T, H)
        together, _ = layer(x)  # (3, T, H)
    torch.testing.assert_close(alone.float(), together[:1].float(), rtol=2e-2, atol=2e-2)
