"""Minimal cells (minGRU, minLSTM): the parallel scan equals the step loop, in
values and gradients, with carried state, stacking, both directions and
padding; and a language model over them learns."""

import pytest
import torch

from rnnkit import LanguageModel, Recurrent
from rnnkit.kernels.minimal import linear_recurrence, linear_scan


def test_linear_scan_equals_the_recurrence_over_long_sequences():
    g = torch.Generator().manual_seed(0)
    B, T, H = 2, 2048, 3
    a = torch.rand(B, T, H, generator=g, dtype=torch.float64) * 0.5 + 0.5  # strong and weak forgetting
    b = torch.rand(B, T, H, generator=g, dtype=torch.float64)
    h0 = torch.rand(B, H, generator=g, dtype=torch.float64)
    h, expected = h0, []
    for t in range(T):
        h = a[:, t] * h + b[:, t]
        expected.append(h)
    expected = torch.stack(expected, 1)
    torch.testing.assert_close(linear_scan(a.log(), b.log(), h0), expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(linear_recurrence(a, b, h0), expected, rtol=1e-12, atol=0)
    # fp32, as training runs it: relative error stays small after 2,048 steps
    got = linear_scan(a.float().log(), b.float().log(), h0.float())
    torch.testing.assert_close(got.double(), expected, rtol=2e-4, atol=0)
    got = linear_recurrence(a.float(), b.float(), h0.float())
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=0)


def test_the_two_scans_have_the_same_gradients():
    # the CPU's linear_recurrence (hand-written backward) and the GPU's log-space
    # linear_scan (autograd), both checked here on the CPU in float64
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 6, 3, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.rand(2, 6, 3, generator=g, dtype=torch.float64).requires_grad_()
    h0 = torch.rand(2, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(linear_recurrence, (a, b, h0))
    up = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    grads = [torch.autograd.grad((f(a, b, h0) * up).sum(), (a, b, h0))
             for f in (linear_recurrence, lambda a, b, h0: linear_scan(a.log(), b.log(), h0))]
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_scan_equals_step_loop_in_values_and_gradients(cell, bidirectional):
    torch.manual_seed(0)
    layer = Recurrent(cell, 3, 4, num_layers=2, bidirectional=bidirectional).double()
    D = 2 if bidirectional else 1
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    state = (torch.rand(2 * D, 3, 4, dtype=torch.float64),)  # carried state, positive as the cells keep it
    lengths = torch.tensor([7, 3, 5])
    results = {}
    for engine in ("fused", "explicit"):
        layer.engine = engine
        layer.zero_grad()
        out, (h,) = layer(x, state, lengths=lengths)
        (out.sin().sum() + h.cos().sum()).backward()
        results[engine] = out, h, [p.grad.clone() for p in layer.parameters()]
    (out_s, h_s, g_s), (out_l, h_l, g_l) = results["fused"], results["explicit"]
    torch.testing.assert_close(out_s, out_l, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_s, h_l, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_s, g_l):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert torch.all(out_s[1, 3:] == 0)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_scan_passes_gradcheck_in_float64(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, 2, 3).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h0: layer(x, (h0,))[0], (x, h0))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_minimal_cells_have_no_hidden_to_hidden_weights(cell):
    layer = Recurrent(cell, 3, 4)
    assert sorted(layer.torch_state_dict()) == ["bias_ih_l0", "weight_ih_l0"]
    assert layer.torch_state_dict()["weight_ih_l0"].shape == ({"mingru": 2, "minlstm": 3}[cell] * 4, 3)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_minimal_cell_language_model_learns_and_generates_like_its_forward(cell):
    torch.manual_seed(0)
    text = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 40 + [0])  # a cycle: perfectly predictable
    model = LanguageModel(8, cell=cell, hidden_size=32, num_layers=2, embedding_dim=8, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = text[:-1].view(4, -1), text[1:].view(4, -1)
    for _ in range(150):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = list(model.generate([0, 1], 10, temperature=0))
    model.eval()  # generate runs without dropout; so must the forward pass it is checked against
    (logits, _), _ = model(torch.tensor([[0, 1] + out]))
    assert logits[0, 1:-1].argmax(-1).tolist() == out
