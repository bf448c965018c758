"""The kernels seam: every cell's step against its equations, every layer node
against torch.nn with and without padding, the C kernels' build and cache,
the engine choice, and a new cell added as one class."""

import ctypes
import os
import stat

import pytest
import torch
from conftest import EXPLICIT_BACKENDS
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.errors import ConfigError
from rnnkit.kernels import CELLS, Cell, GRUCell, LSTMCell, choose_engine, native
from rnnkit.kernels.gru import GRUGates
from rnnkit.kernels.lstm import LSTMGates, lstm_gates
from rnnkit.layers import Recurrent

TORCH_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "rnn_relu": nn.RNN}


# -- one step -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_registered_cells_step_passes_gradcheck_in_float64(name):
    torch.manual_seed(0)
    cell = CELLS[name](3, 4).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    # the minimal cells' log-space form needs h >= 0
    state = tuple(torch.rand(2, 4, dtype=torch.float64, requires_grad=True) for _ in range(cell.state_size))
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def step(x, *state_and_params):
        state = state_and_params[:cell.state_size]
        h, new = torch.func.functional_call(cell, dict(zip(names, state_and_params[cell.state_size:])),
                                            (x, state))
        return (h,) + new

    assert torch.autograd.gradcheck(step, (x, *state, *params))


def test_lstm_gate_step_and_generations_step_equal_the_equations_and_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    gates = (3 * torch.randn(4, 4 * 5, generator=g, dtype=torch.float64)).requires_grad_()
    c = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LSTMGates.apply, (gates, c))
    i, f, g, o = gates.chunk(4, dim=1)  # the equations written plainly
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    plain = (torch.sigmoid(o) * torch.tanh(c_new), c_new)
    for step in (LSTMGates.apply, lstm_gates):  # the training node and generation's step
        for ours, expected in zip(step(gates, c), plain):
            torch.testing.assert_close(ours, expected)


def test_gru_gate_step_equals_the_equations_and_passes_gradcheck():
    g = torch.Generator().manual_seed(0)
    xp, hp = ((2 * torch.randn(4, 3 * 5, generator=g, dtype=torch.float64)).requires_grad_() for _ in range(2))
    h = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(GRUGates.apply, (xp, hp, h))
    xr, xz, xn = xp.chunk(3, 1)
    hr, hz, hn = hp.chunk(3, 1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    torch.testing.assert_close(GRUGates.apply(xp, hp, h), (1 - z) * n + z * h)


def test_the_c_lstm_step_equals_the_equations_in_float64_also_when_saturated(native_kernels):
    g = torch.Generator().manual_seed(0)
    B, H = 6, 40
    gates = 3 * torch.randn(B, 4 * H, generator=g)
    gates[0, :8] = torch.tensor([0.0, 1e4, -1e4, 60.0, -60.0, 100.0, -100.0, 1e-3])  # saturation
    c_row = torch.randn(1, H, generator=g)  # expanded to row stride 0, as a broadcast state
    upstream = torch.randn(B, 7, H, generator=g)
    dh, dc_new = upstream[:, 3], torch.randn(B, H, generator=g)  # dh: rows 7H apart, as from a stack
    assert native.handles(gates, c_row)

    def run(dtype):
        gates_d, c_row_d = (t.to(dtype, copy=True).requires_grad_() for t in (gates, c_row))
        h, c_out = LSTMGates.apply(gates_d, c_row_d.expand(B, H))  # float64 takes the torch ops
        torch.autograd.backward([h, c_out], [dh.to(dtype), dc_new.to(dtype)])
        return [h, c_out, gates_d.grad, c_row_d.grad]

    for ours, reference in zip(run(torch.float32), run(torch.float64)):
        assert ours.dtype == torch.float32 and torch.isfinite(ours).all()
        torch.testing.assert_close(ours, reference.float(), rtol=1e-5, atol=2e-6)


def test_golden_numbers_catch_gate_order_mistakes():
    # constant weights and a hand computation: with W_ih = W_hh = 0 and biases
    # (i, f, g, o) = (0, 0, 1, 0) the LSTM gives c = σ(0)·tanh(1), h = σ(0)·tanh(c)
    cell = LSTMCell(2, 1)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        cell.bias_ih.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))
    h, (h2, c) = cell(torch.ones(1, 2))
    expected_c = 0.5 * torch.tanh(torch.tensor(1.0))
    torch.testing.assert_close(c, expected_c.reshape(1, 1))
    torch.testing.assert_close(h, (0.5 * torch.tanh(expected_c)).reshape(1, 1))
    # GRU with z saturated to 1 keeps its state whatever the input
    gru = GRUCell(2, 1)
    with torch.no_grad():
        for p in gru.parameters():
            p.zero_()
        gru.bias_ih.copy_(torch.tensor([0.0, 50.0, 3.0]))
    h, _ = gru(torch.ones(1, 2), (torch.full((1, 1), 0.25),))
    torch.testing.assert_close(h, torch.full((1, 1), 0.25))


def test_initialisation_is_orthogonal_recurrent_glorot_input_and_forget_bias_one():
    cell = LSTMCell(10, 8)
    for block in cell.weight_hh.detach().split(8):
        torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
    limit = (6 / (10 + 8)) ** 0.5
    assert cell.weight_ih.abs().max() <= limit
    assert torch.all(cell.bias_ih[8:16] == 1) and torch.all(cell.bias_hh == 0)
    assert torch.all(cell.bias_ih[:8] == 0) and torch.all(cell.bias_ih[16:] == 0)
    assert torch.all(LSTMCell(10, 8, forget_bias=0.0).bias_ih == 0)


# -- a whole layer on each backend ------------------------------------------------

def _torch_reference(cell, ours, x, state, lengths):
    """torch.nn's layer with ours's weights over x (packed by lengths): outputs and final state."""
    relu = dict(nonlinearity="relu") if cell == "rnn_relu" else {}
    ref = TORCH_LAYERS[cell](ours.input_size, ours.hidden_size, ours.num_layers, batch_first=True,
                             bidirectional=ours.bidirectional, **relu)
    ref.load_state_dict(ours.torch_state_dict())
    hx = tuple(state) if cell == "lstm" else state[0]
    if lengths is None:
        out, final = ref(x, hx)
    else:
        packed, final = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False), hx)
        out, _ = pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])
    return ref, out, final if cell == "lstm" else (final,)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("backend", EXPLICIT_BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
def test_explicit_engine_on_each_backend_equals_torch_nn_with_and_without_padding(cell, backend, padded,
                                                                                 explicit_backend):
    """Outputs, final states and the gradients of the weights and the initial
    state, of a 2-layer bidirectional layer in fp32; with padding against
    torch's packed sequences (the layer nodes run the still-running rows of each step)."""
    explicit_backend(backend)
    torch.manual_seed(0)
    relu = dict(nonlinearity="relu") if cell == "rnn_relu" else {}
    ours = Recurrent(cell.removesuffix("_relu"), 8, 32, num_layers=2, bidirectional=True, engine="explicit",
                     **relu)
    x = torch.randn(5, 30, 8)
    lengths = torch.tensor([7, 30, 1, 19, 30]) if padded else None  # longest first is not an involution
    state = [torch.randn(4, 5, 32, requires_grad=True) for _ in range(ours.state_size)]
    ref_state = [s.detach().clone().requires_grad_() for s in state]
    out, final = ours(x, tuple(state), lengths=lengths)
    ref, ref_out, ref_final = _torch_reference(cell, ours, x, ref_state, lengths)
    for a, b in ((out, ref_out), *zip(final, ref_final)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    (out.pow(2).sum() + sum(s.pow(2).sum() for s in final)).backward()
    (ref_out.pow(2).sum() + sum(s.pow(2).sum() for s in ref_final)).backward()
    grads = {name: p.grad for name, p in zip(ours.torch_state_dict(), ours.parameters())}
    for name, p in ref.named_parameters():  # fp32 sums' rounding scales with the largest entry (ReLU: ~2e3)
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5 * max(1.0, p.grad.abs().max().item()),
                                   msg=name)
    for a, b in zip(state, ref_state):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5 * max(1.0, b.grad.abs().max().item()))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_layer_node_runs_without_autograd_as_with_it(cell, native_kernels):
    torch.manual_seed(0)
    layer = Recurrent(cell, 8, 16, num_layers=2, engine="explicit")
    x, lengths = torch.randn(4, 12, 8), torch.tensor([12, 3, 9, 12])
    with_grad, state = layer(x, lengths=lengths)
    with torch.no_grad():
        without, state_without = layer(x, lengths=lengths)
    torch.testing.assert_close(without, with_grad.detach(), rtol=0, atol=0)
    for a, b in zip(state_without, state):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


# -- building the C kernels ---------------------------------------------------------

def test_kernel_signatures_are_read_from_the_c_declarations():
    found = native.signatures("void rnnkit_scale(const float *x, int64_t ld_x, float *out,\n int64_t n) {}\n"
                              "static void helper(int x) {}")
    assert found == {"rnnkit_scale": [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]}
    with pytest.raises(TypeError, match="neither a pointer nor an int64_t"):
        native.signatures("void rnnkit_bad(float x) {}")
    exported = {name for source in native.sources() for name in native.signatures(source.read_text())}
    assert exported == {"rnnkit_lstm_forward", "rnnkit_lstm_backward", "rnnkit_gru_forward", "rnnkit_gru_backward",
                        "rnnkit_lnlstm_forward", "rnnkit_lnlstm_backward", "rnnkit_lngru_forward",
                        "rnnkit_lngru_backward"}


def test_the_cache_key_changes_with_the_flags_and_the_compiler(monkeypatch, tmp_path, native_kernels):
    compiler = native._compiler()
    key = native.cache_key(compiler)
    assert native.cache_key(compiler) == key
    monkeypatch.setattr(native, "FLAGS", native.FLAGS + ("-DRNNKIT_TEST",))
    assert native.cache_key(compiler) != key
    monkeypatch.undo()
    other = tmp_path / "cc"  # the same compiler under another identity
    other.write_text(f'#!/bin/sh\nexec {compiler} "$@"\n')
    other.chmod(other.stat().st_mode | stat.S_IEXEC)
    assert native.cache_key(str(other)) != key


def test_native_setting_off_a_bad_value_a_failing_and_a_hanging_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached: every load builds
    assert native.load("off") is None
    with pytest.raises(ConfigError, match="RNNKIT_NATIVE must be one of"):
        native.load("fast")
    hanging = tmp_path / "slow-cc"
    hanging.write_text("#!/bin/sh\nsleep 30\n")
    hanging.chmod(hanging.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(native, "COMPILE_SECONDS", 0.5)
    for compiler in ("false", str(tmp_path / "no-such-cc"), str(hanging)):  # fails, is not there, hangs
        with pytest.warns(UserWarning, match="native cell kernels unavailable.*RNNKIT_NATIVE=off"):
            assert native.load("auto", compiler=compiler) is None
    assert not list(tmp_path.rglob("*.so"))


def test_a_bad_native_setting_is_refused_in_one_line(corpus, tmp_path, cli, user_error, tiny_lm_flags):
    result = cli("train", corpus, "--out", tmp_path / "run", "--engine", "explicit", "--max-steps", 1,
                 *tiny_lm_flags, env={**os.environ, "RNNKIT_NATIVE": "fast"})
    user_error(result, "RNNKIT_NATIVE must be one of")


# -- the engine ----------------------------------------------------------------------

def test_auto_picks_the_engine_from_cell_device_and_kind_of_batch_never_from_one_call(monkeypatch, native_kernels):
    cells = ("rnn", "lstm", "gru", "mingru", "minlstm")
    assert [choose_engine("auto", cell, "cpu") for cell in cells] == ["explicit", "fused", "explicit", "fused", "fused"]
    assert [choose_engine("auto", cell, "cpu", padded=True) for cell in cells] == \
        ["explicit", "explicit", "explicit", "fused", "fused"]
    assert choose_engine("auto", "gru", "cuda") == "fused" and choose_engine("auto", "lstm", "cuda", True) == "fused"
    assert choose_engine("fused", "gru", "cpu") == "fused" and choose_engine("explicit", "lstm", "cuda") == "explicit"
    with pytest.raises(ConfigError, match="engine must be one of auto, fused, explicit; got 'fast'"):
        choose_engine("fast", "gru", "cpu")
    # the same engine for a batch with or without padding, with or without autograd: train and evaluate agree
    calls = []
    layer_node = GRUCell.layer
    monkeypatch.setattr(GRUCell, "layer", lambda *args: calls.append(args[0]) or layer_node(*args))
    gru = Recurrent("gru", 8, 32, num_layers=2)
    x = torch.randn(5, 30, 8)
    gru(x)
    gru(x, lengths=torch.tensor([30, 29, 30, 30, 30]))
    with torch.no_grad():
        gru(x)
    assert calls == list(gru.cells) * 3  # one node per layer, every call
    assert Recurrent("lstm", 8, 32, padded=True).engine_for("cpu") == "explicit"  # as classifiers build it


def test_a_new_cell_is_one_class_that_runs_on_the_explicit_engine(monkeypatch):
    """A leaky integrator (Jaeger 2002) written as a Cell with its equation
    alone: registered by its name, it runs in a stacked bidirectional layer
    with padding, trains (gradcheck), and has no fused engine to ask for."""

    class LeakyCell(Cell):
        name = "test-leaky"

        def combine(self, xp, hp, state):  # h_t = (1 - a) h_{t-1} + a tanh(xp + hp), a = 0.3
            h = 0.7 * state[0] + 0.3 * torch.tanh(xp + hp)
            return h, (h,)

    # the class registered itself; registered again through monkeypatch, which removes it after the test
    # (monkeypatch.delitem would put it back when undone, leaving it for the next test in this process)
    del CELLS["test-leaky"]
    monkeypatch.setitem(CELLS, "test-leaky", LeakyCell)
    assert choose_engine("auto", "test-leaky", "cpu") == "explicit"
    with pytest.raises(ConfigError, match="cell test-leaky has no fused engine"):
        Recurrent("test-leaky", 2, 3, engine="fused")
    torch.manual_seed(0)
    layer = Recurrent("test-leaky", 2, 3, num_layers=2, bidirectional=True).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])
    assert torch.autograd.gradcheck(lambda x: layer(x, lengths=lengths)[0], (x,))
    out, (h,) = layer(x, lengths=lengths)
    assert out[1, 2:].eq(0).all() and h.shape == (4, 3, 3)
