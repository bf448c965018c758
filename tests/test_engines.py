"""The choice of engine never changes a reported number: a batch's loss and
gradients agree under every engine, every explicit backend and both fp32
product kernels, for every cell and every task (fp32 to float tolerance;
bf16 autocast within bf16 rounding of fp32)."""

import itertools

import pytest
import torch
from conftest import EXPLICIT_BACKENDS

from rnnkit.data.batches import LabelledBatch, StreamBatch
from rnnkit.kernels import CELLS, engine, gemm, native
from rnnkit.layers import use_engines
from rnnkit.models import LanguageModel, SequenceClassifier, SequenceTagger
from rnnkit.training.device import bf16_supported

SETTINGS = [("fused", None)] + [("explicit", backend) for backend in EXPLICIT_BACKENDS]
GEMMS = ("default", "onednn") if torch.backends.mkldnn.is_available() else ("default",)


def model_and_batch(task: str, cell: str, **more):
    torch.manual_seed(0)
    settings = dict(cell=cell, hidden_size=24, num_layers=2, embedding_dim=12, dropout=0.0, **more)
    g = torch.Generator().manual_seed(1)
    if task == "lm":
        x = torch.randint(0, 30, (4, 20), generator=g)
        return LanguageModel(30, **settings), StreamBatch(x, torch.roll(x, -1, 1))
    lengths = torch.tensor([7, 13, 1, 20])  # padded: each sequence stops at its length, in no order
    x = torch.randint(1, 30, (4, 20), generator=g) * (torch.arange(20) < lengths[:, None])
    if task == "classify":
        return SequenceClassifier(30, 3, **settings), LabelledBatch(x, lengths, torch.tensor([0, 2, 1, 2]))
    y = torch.randint(0, 3, (4, 20), generator=g).masked_fill(torch.arange(20) >= lengths[:, None], -100)
    return SequenceTagger(30, 3, **settings), LabelledBatch(x, lengths, y)


def loss_and_gradients(model, batch, engine_name, backend, gemm_backend, bf16=False):
    with pytest.MonkeyPatch.context() as patch:
        if backend in ("steps", "steps on torch ops"):
            patch.setattr(engine, "LAYER_NODES", False)
        if backend == "steps on torch ops":
            patch.setattr(native, "library", lambda: None)
        patch.setattr(gemm, "_backend", gemm_backend)
        use_engines(model, engine_name)
        model.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss, _ = model.loss(batch)
        loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("task", ["lm", "classify", "tag"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_batchs_loss_and_gradients_agree_under_every_engine_and_backend(cell, task, native_kernels):
    model, batch = model_and_batch(task, cell)
    settings = [(e, b) for e, b in SETTINGS if e in CELLS[cell].engines()]  # a new cell may have no fused engine
    reference_loss, reference = loss_and_gradients(model, batch, *settings[0], "default")
    for (engine_name, backend), gemm_backend in itertools.product(settings, GEMMS):
        loss, grads = loss_and_gradients(model, batch, engine_name, backend, gemm_backend)
        where = f"{engine_name} {backend or ''} {gemm_backend}"
        assert loss == pytest.approx(reference_loss, rel=1e-5), where
        for a, b in zip(grads, reference):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=where)


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="this CPU has no bf16 matrix units")
@pytest.mark.parametrize("task", ["lm", "classify"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "leaky", "lnlstm", "lngru"])
def test_under_bf16_autocast_every_engine_stays_within_bf16_rounding_of_fp32(cell, task, native_kernels):
    # mean pooling: max pooling's choice flips with bf16 rounding, on any engine
    model, batch = model_and_batch(task, cell, **({"pooling": "mean"} if task == "classify" else {}))
    settings = [(e, b) for e, b in SETTINGS if e in CELLS[cell].engines()]  # a new cell may have no fused engine
    reference_loss, reference = loss_and_gradients(model, batch, *settings[0], "default")
    for engine_name, backend in settings:
        loss, grads = loss_and_gradients(model, batch, engine_name, backend, "default", bf16=True)
        where = f"{engine_name} {backend or ''}"
        assert loss == pytest.approx(reference_loss, rel=0.02), where
        grads, reference_grads = torch.cat([g.flatten() for g in grads]), torch.cat([g.flatten() for g in reference])
        assert (grads - reference_grads).norm() <= 0.05 * reference_grads.norm(), where
