"""Diagnostics against answers known by construction: a linear recursion with a
chosen spectral radius, gates pinned open or shut, and the recorded forward
pass against the model's own on every engine."""

import math

import numpy as np
import pytest
import torch

from rnnkit import LanguageModel, SequenceClassifier, SequenceTagger
from rnnkit.data.batches import LabelledBatch, PairBatch, StreamBatch
from rnnkit.diagnostics import (
    find_units,
    gradient_flow,
    jacobian_norms,
    read_text,
    saturation,
    spectral_radii,
    text_features,
)
from rnnkit.kernels import CELLS
from rnnkit.layers import Recurrent
from rnnkit.models.seq2seq import Seq2Seq

H, T = 8, 12


def orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def linear_classifier(rho: float) -> SequenceClassifier:
    """A vanilla-RNN classifier whose recurrence stays at h = 0, where tanh' = 1: every step's
    Jacobian is W_hh = ρ Q, Q orthogonal, so a gradient shrinks or grows by exactly ρ a step."""
    torch.manual_seed(0)
    model = SequenceClassifier(20, 3, cell="rnn", hidden_size=H, num_layers=1, embedding_dim=4, bidirectional=False,
                               pooling="last", dropout=0.0).double()
    (cell,) = next(m for m in model.modules() if isinstance(m, Recurrent)).cells
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        cell.weight_hh.copy_(rho * orthogonal(H, 1))
    return model


def classify_batch(B: int = 4):
    x = torch.randint(0, 20, (B, T), generator=torch.Generator().manual_seed(2))
    return LabelledBatch(x, torch.full((B,), T), torch.arange(B) % 3)


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.25])
def test_a_linear_rnn_s_gradient_decays_or_grows_as_its_spectral_radius_predicts(rho):
    model = linear_classifier(rho)
    (flow,) = gradient_flow(model, classify_batch())
    lags = T - 1 - np.arange(T)
    np.testing.assert_allclose(flow.values, flow.values[-1] * rho ** lags, rtol=1e-10)
    (product,) = jacobian_norms(model, classify_batch())
    np.testing.assert_allclose(product.values, rho ** lags, rtol=1e-10)
    assert spectral_radii(model) == {"encoder.layer layer 1": {"h": pytest.approx(rho, rel=1e-12)}}


def test_the_jacobian_product_is_autograd_s_jacobian_of_the_unrolled_steps():
    """σ_max(∂h_n/∂h_k) of an LSTM layer (the c path included), against torch's Jacobian of h_n
    as a function of h_k through the remaining steps."""
    torch.manual_seed(3)
    model = SequenceClassifier(20, 3, cell="lstm", hidden_size=4, num_layers=1, embedding_dim=4, bidirectional=False,
                               pooling="last", dropout=0.0).double()
    batch = classify_batch(1)
    (curve,) = jacobian_norms(model, batch)
    (cell,) = next(m for m in model.modules() if isinstance(m, Recurrent)).cells
    x = model.encoder.embed(batch.x, batch.lengths)[0]  # (T, E)
    xp = cell.project_input(x).detach()

    def run_from(k, state):  # h_n from the state after step k, the inputs fixed
        for t in range(k + 1, T):
            _, state = cell.combine(xp[t:t + 1], cell.project_hidden(state[0]), state)
        return state[0][0]

    state = cell.init_state(1, dtype=torch.float64)
    for k in range(T):
        _, state = cell.combine(xp[k:k + 1], cell.project_hidden(state[0]), state)
        if k in (2, 7, T - 1):
            J = torch.autograd.functional.jacobian(lambda h: run_from(k, (h[None], state[1])), state[0][0].detach())
            assert curve.values[k] == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)), rel=1e-8)


def test_gates_pinned_open_or_shut_are_all_saturated():
    torch.manual_seed(0)
    model = SequenceClassifier(20, 3, cell="lstm", hidden_size=H, num_layers=1, embedding_dim=4,
                               bidirectional=False, dropout=0.0)
    (cell,) = next(m for m in model.modules() if isinstance(m, Recurrent)).cells
    with torch.no_grad():
        cell.bias_ih[:H] = -30.0  # input gate shut
        cell.bias_ih[H:2 * H] = 30.0  # forget gate open
    result = saturation(model, classify_batch())["encoder.layer layer 1"]
    assert result["input"] == (1.0, 0.0) and result["forget"] == (0.0, 1.0)
    assert result["tanh(c)"] == (0.0, 0.0)  # c stays 0: nothing is written into it


def test_spectral_radius_of_each_gate_block():
    torch.manual_seed(0)
    model = SequenceClassifier(20, 3, cell="gru", hidden_size=H, num_layers=2, embedding_dim=4, bidirectional=True)
    layer = next(m for m in model.modules() if isinstance(m, Recurrent))
    with torch.no_grad():
        layer.cells[3].weight_hh.copy_(torch.cat([0.5 * orthogonal(H, 1), torch.diag(torch.arange(1.0, H + 1)),
                                                  -3 * torch.eye(H, dtype=torch.float64)]))
    radii = spectral_radii(model)
    assert list(radii) == ["encoder.layer layer 1", "encoder.layer layer 1 backward", "encoder.layer layer 2",
                           "encoder.layer layer 2 backward"]
    assert radii["encoder.layer layer 2 backward"] == pytest.approx({"reset": 0.5, "update": H, "candidate": 3})


def test_every_cell_names_its_gate_blocks():
    for name, cls in CELLS.items():
        assert len(cls.gate_names) == cls.num_gates, name


MODELS = {
    "lm": lambda cell: (LanguageModel(30, cell=cell, hidden_size=H, num_layers=2, embedding_dim=6),
                        StreamBatch(torch.randint(0, 30, (3, T)), torch.randint(0, 30, (3, T)))),
    "tag": lambda cell: (SequenceTagger(30, 5, cell=cell, hidden_size=H, num_layers=1, embedding_dim=6),
                         LabelledBatch(torch.randint(0, 30, (3, T)), torch.tensor([T, 5, 1]),
                                       torch.randint(0, 5, (3, T)))),
    "seq2seq": lambda cell: (Seq2Seq(30, 20, cell=cell, hidden_size=H, num_layers=1, embedding_dim=6),
                             PairBatch(torch.randint(0, 30, (3, T)), torch.tensor([T, 4, 2]),
                                       torch.randint(0, 20, (3, 5)), torch.tensor([5, 3, 1]))),
}


@pytest.mark.parametrize("task", list(MODELS))
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru"])
def test_recording_changes_nothing_and_covers_every_recurrent_step(task, cell):
    torch.manual_seed(0)
    model, batch = MODELS[task](cell)
    model.eval()
    expected = model.loss(batch)[0].item()
    flows = gradient_flow(model, batch)
    assert model.loss(batch)[0].item() == expected  # the engines are put back
    from rnnkit.diagnostics.tracing import recorded

    with recorded(model):
        assert model.loss(batch)[0].item() == pytest.approx(expected, rel=1e-5)
    assert all(np.isfinite(f.values[~np.isnan(f.values)]).all() for f in flows)
    assert all(p.grad is None for p in model.parameters())  # the model's gradients are left alone
    if task == "seq2seq":  # the encoder's steps, and the decoder's stepped one at a time (5 target tokens + end)
        assert [f.name for f in flows][-1] == "cells.0" and len(flows[-1].values) == 6
    if task == "tag":  # padded steps do not count
        assert len(flows) == 2 and not math.isnan(flows[0].values[T - 1])


# --- units and surprisal -----------------------------------------------------------------------

def test_a_unit_wired_to_copy_its_input_lights_up_on_that_character():
    """One-hot inputs, no recurrence: unit 0 reads only "a" (weight 2), unit 1 only "b" (weight -1)."""
    model = LanguageModel(4, cell="rnn", hidden_size=3, num_layers=1, embedding_dim=0).double()
    cell = model.rnn.cells[0]
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        cell.weight_ih[0, 1] = 2.0  # token 1 is "a"
        cell.weight_ih[1, 2] = -1.0  # token 2 is "b"
    ids = torch.tensor([0, 1, 1, 2, 3, 1, 0, 2])
    h = read_text(model, ids).activations["rnn layer 1 h"]
    np.testing.assert_allclose(h[:, 0], np.tanh(2.0) * (ids == 1).numpy(), rtol=1e-6)  # kept in fp32
    np.testing.assert_allclose(h[:, 1], np.tanh(-1.0) * (ids == 2).numpy(), rtol=1e-6)
    assert not h[:, 2].any()


def test_surprisal_is_minus_log2_of_the_probability_given_to_each_next_character():
    """A model that ignores its input and always predicts p = (1/2, 1/4, 1/8, 1/8)."""
    model = LanguageModel(4, cell="lstm", hidden_size=3, num_layers=1, embedding_dim=2).double()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.log(torch.tensor([0.5, 0.25, 0.125, 0.125])))
    reading = read_text(model, torch.tensor([3, 0, 1, 2, 3, 0]))
    assert math.isnan(reading.surprisal[0])
    np.testing.assert_allclose(reading.surprisal[1:], [1, 2, 3, 3, 1], rtol=1e-12)
    assert set(reading.activations) == {"rnn layer 1 h", "rnn layer 1 tanh(c)"}


def test_text_features_and_a_planted_quote_unit_is_found_first():
    text = 'say "hi (a [b])" now\nx "q" (y)\n'
    f = text_features(text)
    quoted = "".join(c for c, q in zip(text, f["inside quotes"]) if q)
    assert quoted == '"hi (a [b])' + '"q'  # an opening quote is inside, a closing one out
    assert f["position in line"][text.index("\n")] == 0 and f["position in line"][text.index("x")] == 1
    assert f["bracket depth"][text.index("b")] == 2 and f["bracket depth"][text.rindex("y")] == 1
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(text), 6))
    planted = noise.copy()
    planted[:, 4] = f["inside quotes"] + 0.05 * rng.normal(size=len(text))
    found = find_units({"rnn layer 1 h": noise, "rnn layer 2 h": planted}, f, top=2)
    quote = [x for x in found if x.feature == "inside quotes"]
    assert (quote[0].layer, quote[0].unit) == ("rnn layer 2 h", 4) and quote[0].correlation > 0.95
    assert abs(quote[1].correlation) < 0.8
    unquoted = find_units({"l": noise[:4]}, text_features("abcd"))  # no quotes, no brackets: nothing to track
    assert {x.feature for x in unquoted} == {"position in line"}


def test_measuring_puts_a_training_model_back_in_training_mode_on_its_engines():
    torch.manual_seed(0)
    model, batch = MODELS["lm"]("lstm")
    engines = [m.engine for m in model.modules() if isinstance(m, Recurrent)]
    model.train()
    gradient_flow(model, batch), jacobian_norms(model, batch), saturation(model, batch)
    assert model.training and all(m.training for m in model.modules())
    assert [m.engine for m in model.modules() if isinstance(m, Recurrent)] == engines
