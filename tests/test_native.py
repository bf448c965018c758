"""The compiled gate steps (rnnkit.native) and the layer nodes on them, against
the torch ops they replace and torch.nn.LSTM / GRU."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from rnnkit import native
from rnnkit.errors import ConfigError
from rnnkit.gates import LSTMGates
from rnnkit.layers import Recurrent, native_loop
from test_cli import TINY, assert_user_error
from test_recurrent import _without_the_layer_nodes


def compiled_library():
    try:
        native._compiler()
    except OSError as error:
        pytest.skip(f"the native kernels need a C compiler: {error}")
    library = native.library()
    assert library is not None, "a compiler is there, so the kernels must build and load"
    return library


def test_native_lstm_step_equals_the_equations_in_float64():
    compiled_library()
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


@pytest.mark.parametrize("loop", ["native", "unroll"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
def test_explicit_layer_node_in_fp32_equals_torch_nn(cell, loop, monkeypatch):
    """The whole-sequence node of each cell (rnnkit.layers.native_loop): outputs,
    final state and the gradients of the weights and the initial state; and
    unroll's per-step nodes, where the LSTM's gate step runs the same kernel."""
    if cell in ("lstm", "gru"):
        compiled_library()
    _without_the_layer_nodes(monkeypatch, loop)
    torch.manual_seed(0)
    relu = dict(nonlinearity="relu") if cell == "rnn_relu" else {}
    ours = Recurrent(cell.removesuffix("_relu"), 8, 32, num_layers=2, bidirectional=True, engine="explicit",
                     **relu)
    ref = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "rnn_relu": nn.RNN}[cell](
        8, 32, 2, batch_first=True, bidirectional=True, **relu)
    ref.load_state_dict(ours.torch_state_dict())
    x = torch.randn(5, 30, 8)
    assert native_loop.applies(ours.cells[0], x, None, ours.cells[0].weight_hh) == (loop == "native")
    state = [torch.randn(4, 5, 32, requires_grad=True) for _ in range(ours.state_size)]
    ref_state = [s.detach().clone().requires_grad_() for s in state]
    out, final = ours(x, tuple(state))
    ref_out, ref_final = ref(x, tuple(ref_state) if cell == "lstm" else ref_state[0])
    ref_final = ref_final if cell == "lstm" else (ref_final,)
    for a, b in ((out, ref_out), *zip(final, ref_final)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    (out.pow(2).sum() + sum(s.pow(2).sum() for s in final)).backward()
    (ref_out.pow(2).sum() + sum(s.pow(2).sum() for s in ref_final)).backward()
    grads = {name: p.grad for name, p in zip(ours.torch_state_dict(), ours.parameters())}
    for name, p in ref.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(state, ref_state):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_native_setting_off_bad_value_and_a_failing_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached: every load builds
    assert native.load("off") is None
    with pytest.raises(ConfigError, match="RNNKIT_NATIVE must be one of"):
        native.load("fast")
    for compiler in ("false", str(tmp_path / "no-such-cc")):  # fails, and is not there
        with pytest.warns(UserWarning, match="native LSTM/GRU kernels unavailable.*RNNKIT_NATIVE=off"):
            assert native.load("auto", compiler=compiler) is None
    assert not list(tmp_path.rglob("*.so"))


def test_a_bad_native_setting_is_refused_in_one_line(corpus, tmp_path):
    out = subprocess.run([sys.executable, "-m", "rnnkit", "train", str(corpus), "--out", str(tmp_path / "run"),
                          "--engine", "explicit", "--max-steps", "1", *map(str, TINY)],
                         env={**os.environ, "RNNKIT_NATIVE": "fast"}, capture_output=True, text=True)
    assert_user_error(out, "RNNKIT_NATIVE must be one of")


def test_auto_engine_trains_a_gru_or_rnn_on_its_layer_node_and_runs_everything_else_fused(monkeypatch):
    compiled_library()
    calls = []
    run = native_loop.run
    monkeypatch.setattr(native_loop, "run", lambda *args: calls.append(args[0]) or run(*args))
    torch.manual_seed(0)
    gru = Recurrent("gru", 8, 32, num_layers=2)
    fused = Recurrent("gru", 8, 32, num_layers=2, engine="fused")
    fused.load_state_dict(gru.state_dict())
    x = torch.randn(5, 30, 8)
    assert gru.engine == "auto" and gru.engine_for(x) == "explicit"
    out, (h,) = gru(x)
    assert calls == list(gru.cells)  # one node per layer
    fused_out, (fused_h,) = fused(x)
    torch.testing.assert_close(out, fused_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h, fused_h, rtol=1e-4, atol=1e-5)
    assert gru.engine_for(x, torch.tensor([30, 29, 30, 30, 30])) == "fused"  # padding: packed sequences
    with torch.no_grad():
        assert gru.engine_for(x) == "fused"
    assert Recurrent("rnn", 8, 32).engine_for(x) == "explicit"  # whose node needs no compiler
    for cell in ("lstm", "mingru"):
        assert Recurrent(cell, 8, 32).engine_for(x) == "fused"
    assert Recurrent("gru", 8, 32, engine="explicit").engine_for(x, torch.tensor([30, 29, 30, 30, 30])) \
        == "explicit"
