"""The recurrent layer: both engines equal torch.nn on shared weights, and each other."""

import itertools

import pytest
import torch
from torch import nn

from rnnkit.kernels import LSTMCell
from rnnkit.layers import Recurrent
from rnnkit.layers.dropout import dropout

TORCH_RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
CASES = list(itertools.product(["rnn", "lstm", "gru"], [False, True], [1, 2, 3]))


def make_pair(cell, bidirectional, num_layers, input_size=5, H=4):
    torch.manual_seed(0)
    ours = Recurrent(cell, input_size, H, num_layers, bidirectional=bidirectional).double()
    ref = TORCH_RNNS[cell](input_size, H, num_layers, batch_first=True, bidirectional=bidirectional).double()
    ref.load_state_dict(ours.torch_state_dict())
    return ours, ref


def random_state(layer, B, generator):
    return tuple(torch.randn(layer.num_layers * layer.num_directions, B, layer.hidden_size,
                             dtype=torch.float64, generator=generator) for _ in range(layer.state_size))


@pytest.mark.parametrize("cell,bidirectional,num_layers", CASES)
def test_engines_equal_torch_nn_outputs_and_gradients(cell, bidirectional, num_layers):
    ours, ref = make_pair(cell, bidirectional, num_layers)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, 5, dtype=torch.float64, generator=g)
    state = random_state(ours, 3, g)
    upstream = torch.randn(3, 7, ours.output_size, dtype=torch.float64, generator=g)

    ref_out, ref_state = ref(x, state if cell == "lstm" else state[0])
    ref_state = ref_state if cell == "lstm" else (ref_state,)
    (ref_out * upstream).sum().add(sum(s.sum() for s in ref_state)).backward()
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}

    for engine in ("fused", "explicit"):
        ours.engine = engine
        ours.zero_grad()
        out, new_state = ours(x, state)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
        for a, b in zip(new_state, ref_state):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        (out * upstream).sum().add(sum(s.sum() for s in new_state)).backward()
        grads = {k: p.grad for k, p in zip(ours.torch_state_dict(), ours.parameters())}
        for k, grad in ref_grads.items():
            torch.testing.assert_close(grads[k], grad, rtol=1e-9, atol=1e-11, msg=f"{engine} {k}")


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True)])
def test_on_a_cpu_both_engines_drop_out_between_layers_with_the_same_masks(cell, bidirectional):
    # the fused engine runs its layers one at a time with rnnkit's dropout between them,
    # as the explicit engine does: the same seed gives the same output, and masks do drop
    torch.manual_seed(0)
    layer = Recurrent(cell, 5, 6, num_layers=3, dropout=0.5, bidirectional=bidirectional).double().train()
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    outputs = {}
    for engine in ("fused", "explicit"):
        layer.engine = engine
        torch.manual_seed(7)
        outputs[engine], _ = layer(x)
    torch.testing.assert_close(outputs["fused"], outputs["explicit"], rtol=1e-10, atol=1e-12)
    no_dropout, _ = layer.eval()(x)
    assert not torch.allclose(outputs["fused"], no_dropout)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "avg"])
def test_merge_modes_combine_the_two_directions(merge):
    torch.manual_seed(0)
    layer = Recurrent("gru", 3, 4, num_layers=2, bidirectional=True, merge=merge).double()
    concat = Recurrent("gru", 3, 4, num_layers=2, bidirectional=True).double()
    concat.load_state_dict(layer.state_dict())
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    fwd, bwd = concat(x)[0].chunk(2, dim=-1)
    expected = {"concat": torch.cat([fwd, bwd], -1), "sum": fwd + bwd, "mul": fwd * bwd,
                "avg": (fwd + bwd) / 2}[merge]
    for engine in ("fused", "explicit"):
        layer.engine = engine
        torch.testing.assert_close(layer(x)[0], expected)
    assert layer.output_size == expected.shape[-1]


@pytest.mark.parametrize("cell,bidirectional", list(itertools.product(["rnn", "lstm", "gru"], [False, True])))
def test_padding_never_changes_a_sequence_result(cell, bidirectional):
    torch.manual_seed(0)
    layer = Recurrent(cell, 3, 4, num_layers=2, bidirectional=bidirectional).double()
    lengths = torch.tensor([5, 2, 7])
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    for engine in ("fused", "explicit"):
        layer.engine = engine
        out, state = layer(x, lengths=lengths)
        for b, n in enumerate(lengths.tolist()):
            alone, alone_state = layer(x[b:b + 1, :n])
            torch.testing.assert_close(out[b, :n], alone[0])
            assert torch.all(out[b, n:] == 0), "outputs past the end must be zero"
            for s, a in zip(state, alone_state):
                torch.testing.assert_close(s[:, b], a[:, 0])


@pytest.mark.parametrize("engine", ["fused", "explicit"])
def test_chunked_calls_with_carried_state_equal_one_pass(engine):
    torch.manual_seed(0)
    layer = Recurrent("lstm", 3, 4, num_layers=2, engine=engine).double()
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    whole, whole_state = layer(x)
    first, state = layer(x[:, :5])
    second, state = layer(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    stepped, state = [], None
    for t in range(12):  # one step a call, as streaming would
        h, state = layer(x[:, t:t + 1], state)
        stepped.append(h)
    torch.testing.assert_close(torch.cat(stepped, 1), whole)
    for a, b in zip(state, whole_state):
        torch.testing.assert_close(a, b)


def test_dropout_only_between_layers_and_only_in_training():
    torch.manual_seed(0)
    layer = Recurrent("lstm", 3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(2, 6, 3)
    layer.eval()
    for engine in ("fused", "explicit"):
        layer.engine = engine
        a, _ = layer(x)
        b, _ = layer(x)
        torch.testing.assert_close(a, b)
    layer.train()
    assert not torch.allclose(layer(x)[0], layer(x)[0])
    one = Recurrent("lstm", 3, 4, num_layers=1, dropout=0.5).train()
    torch.testing.assert_close(one(x)[0], one(x)[0])  # nothing after the last layer


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True), ("rnn", False)])
def test_weight_drop_is_torch_nn_with_a_dropped_recurrent_matrix_per_call(cell, bidirectional):
    # in training each call draws one DropConnect mask per W_hh (in cell order) and runs
    # the cell with the dropped matrix, on both engines; in evaluation it changes nothing
    ours, ref = make_pair(cell, bidirectional, num_layers=2)
    ours.weight_drop = 0.5
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    upstream = torch.randn(3, 6, ours.output_size, dtype=torch.float64)
    ours.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    torch.manual_seed(7)
    dropped = {f"weight_hh_l{k // ours.num_directions}" + ("_reverse" if k % ours.num_directions else ""):
               dropout(c.weight_hh.detach(), 0.5) for k, c in enumerate(ours.cells)}
    with torch.no_grad():
        for name, w in dropped.items():
            getattr(ref, name).copy_(w)
    ref_out, _ = ref(x)
    (ref_out * upstream).sum().backward()
    for engine in ("fused", "explicit"):
        ours.engine = engine
        ours.zero_grad()
        torch.manual_seed(7)
        out, _ = ours(x)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
        (out * upstream).sum().backward()
        grads = dict(zip(ours.torch_state_dict(), (p.grad for p in ours.parameters())))
        for name, w in dropped.items():  # dL/dW = mask / (1 - p) * dL/dW_dropped
            expected = getattr(ref, name).grad * (w != 0) * 2
            torch.testing.assert_close(grads[name], expected, rtol=1e-9, atol=1e-11, msg=f"{engine} {name}")


def test_weight_drop_refuses_cells_without_recurrent_weights_and_bad_fractions():
    with pytest.raises(ValueError, match="weight_drop drops recurrent weights, which minlstm has not"):
        Recurrent("minlstm", 3, 4, weight_drop=0.2)
    with pytest.raises(ValueError, match=r"weight_drop must be in \[0, 1\), got 1.5"):
        Recurrent("lstm", 3, 4, weight_drop=1.5)


def test_gradcheck_layer_explicit_bidirectional_with_lengths():
    torch.manual_seed(0)
    layer = Recurrent("lstm", 2, 3, num_layers=2, bidirectional=True, engine="explicit").double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, lengths=torch.tensor([4, 2]))[0], (x,))


def test_bad_shapes_give_clear_errors():
    layer = Recurrent("gru", 3, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 3\), got \(2, 5, 4\)"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="expected a state"):
        layer(torch.randn(2, 5, 3), (torch.zeros(1, 3, 4),))
    with pytest.raises(ValueError, match=r"LSTMCell: expected input of shape \(B, 32\), got \(2, 31\)"):
        LSTMCell(32, 8)(torch.randn(2, 31))
    with pytest.raises(ValueError, match="engine must be one of"):
        Recurrent("gru", 3, 4, engine="fast")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_explicit_weight_gradients_when_only_early_steps_reach_the_loss(cell):
    # the explicit engine forms the recurrent weight gradient of all steps in one
    # product after the time loop; steps that no loss depends on must add nothing
    torch.manual_seed(0)
    layer = Recurrent(cell, 3, 4, num_layers=2).double()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    grads = {}
    for engine in ("fused", "explicit"):
        layer.engine = engine
        layer.zero_grad()
        layer(x)[0][:, :4].pow(2).sum().backward()
        grads[engine] = [p.grad.clone() for p in layer.parameters()]
    for a, b in zip(grads["fused"], grads["explicit"]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11)


def _output_and_gradients(layer, run, bf16: bool = True):
    """run() under (bf16) autocast -> its output in fp32 and the gradients of
    sum(output^2) with respect to layer's parameters."""
    layer.zero_grad()
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        out = run()
    out.float().pow(2).sum().backward()
    return out.float(), [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("backend", ["layer node", "steps"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_explicit_engine_under_bf16_autocast_follows_fp32(cell, backend, explicit_backend):
    # under autocast the per-step products and the weight gradient are bf16
    explicit_backend(backend)
    torch.manual_seed(0)
    layer = Recurrent(cell, 16, 32, num_layers=2, engine="explicit")
    x = torch.randn(4, 12, 16)
    out32, grads32 = _output_and_gradients(layer, lambda: layer(x)[0], bf16=False)
    out16, grads16 = _output_and_gradients(layer, lambda: layer(x)[0])
    torch.testing.assert_close(out16, out32, rtol=0.05, atol=0.02)
    for a, b in zip(grads16, grads32):
        assert (a - b).norm() <= 0.05 * b.norm() + 1e-3


@pytest.mark.parametrize("backend", ["layer node", "steps"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_explicit_engine_under_bf16_autocast_equals_the_cell_stepped_by_autograd(cell, backend, explicit_backend):
    """The explicit engine's bf16 path (W laid out once in bf16 for both ways, the
    weight gradient as one bf16 product) against the cell run step by step
    under autocast with autograd's own backward: the same bf16 roundings in
    another order."""
    explicit_backend(backend)
    torch.manual_seed(0)
    layer = Recurrent(cell, 16, 32, engine="explicit")
    x = torch.randn(8, 12, 16)

    def stepped():
        state, outs = layer.cells[0].init_state(8), []
        for t in range(12):
            h, state = layer.cells[0](x[:, t], state)
            outs.append(h)
        return torch.stack(outs, 1)

    out_engine, grads_engine = _output_and_gradients(layer, lambda: layer(x)[0])
    out_stepped, grads_stepped = _output_and_gradients(layer, stepped)
    torch.testing.assert_close(out_engine, out_stepped, rtol=0.02, atol=0.01)
    for a, b in zip(grads_engine, grads_stepped):
        assert (a - b).norm() <= 0.02 * b.norm() + 1e-4


def test_gradcheck_explicit_parameters_with_lengths():
    torch.manual_seed(0)
    layer = Recurrent("gru", 2, 3, num_layers=2, bidirectional=True, engine="explicit").double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(*params):
        out, state = torch.func.functional_call(layer, dict(zip(names, params)), (x,),
                                                {"lengths": torch.tensor([5, 2, 4])})
        return out, *state

    assert torch.autograd.gradcheck(f, params)


