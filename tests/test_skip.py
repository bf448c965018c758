"""Skip connections through time (--skip-steps d, rnnkit.kernels.skip): each step also reads
the layer's output d steps back. Held to a hand-written loop over torch.nn's own cells reading
[x_t, h_(t-d)] as their input, to float64 gradcheck, to chunked runs with the state carried,
to padding, and to generation step by step; refused where it cannot run."""

import pytest
import torch
from torch import nn

from rnnkit.data.batches import PairBatch
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent, use_engines
from rnnkit.models import LanguageModel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.stepping import Stepper

TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
I, H = 3, 4


def hand_written(layer: Recurrent, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None, d: int):
    """The recurrence written out: torch.nn's cell over the input [x_t, h_(t-d)] with
    weight_ih = [W_ih | W_skip], from h_0 (and c_0), h_k = 0 for k < 0. Returns (B, T, H)."""
    ours = layer.cells[0]
    ref = TORCH_CELLS[layer.cell_type](I + H, H).double()
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([ours.weight_ih, ours.weight_skip], dim=1))
        for name in ("weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name).copy_(getattr(ours, name))
    hs = [h0]  # hs[k] = h_k for k >= 0
    c = c0
    for t in range(1, x.shape[1] + 1):
        skip = hs[t - d] if t - d >= 0 else torch.zeros_like(h0)
        inp = torch.cat([x[:, t - 1], skip], dim=1)
        if c is None:
            hs.append(ref(inp, hs[-1]))
        else:
            h, c = ref(inp, (hs[-1], c))
            hs.append(h)
    return torch.stack(hs[1:], dim=1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("d", [2, 5])
def test_a_skip_layer_is_the_hand_written_loop_over_x_and_h_t_minus_d(cell, d):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, skip_steps=d).double()
    x = torch.randn(2, 9, I, dtype=torch.float64)
    h0 = torch.randn(2, H, dtype=torch.float64)
    c0 = torch.randn(2, H, dtype=torch.float64) if cell == "lstm" else None
    own = (h0[None],) if c0 is None else (h0[None], c0[None])
    history = tuple(torch.zeros(1, 2, H, dtype=torch.float64) for _ in range(d - 1))
    out, state = layer(x, own + history)
    expected = hand_written(layer, x, h0, c0, d)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert len(state) == len(own) + d - 1  # h (and c), then h_(T-1) .. h_(T-d+1)
    torch.testing.assert_close(state[len(own)][0], expected[:, -2])
    torch.testing.assert_close(state[-1][0], expected[:, -d])


@pytest.mark.parametrize("cell", ["lstm", "gru", "leaky", "lnlstm"])
def test_a_skip_layer_passes_gradcheck_in_float64(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, bidirectional=True, skip_steps=3).double()
    x = torch.randn(2, 6, I, dtype=torch.float64, requires_grad=True)
    skip = layer.cells[0].weight_skip

    def outputs(x, skip_weight):
        del layer.cells[0].weight_skip
        layer.cells[0].weight_skip = skip_weight  # a plain tensor in the parameter's place, for gradcheck
        try:
            return layer(x, lengths=torch.tensor([6, 4]))[0]
        finally:
            del layer.cells[0].weight_skip
            layer.cells[0].weight_skip = skip

    assert torch.autograd.gradcheck(outputs, (x, skip.detach().clone().requires_grad_(True)))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_chunks_with_the_state_carried_equal_one_run_and_padding_changes_nothing(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, skip_steps=4).double()
    x = torch.randn(3, 11, I, dtype=torch.float64)
    whole, final = layer(x)
    first, state = layer(x[:, :5])
    second, state = layer(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(state, final)
    lengths = torch.tensor([11, 4, 7])
    padded, padded_state = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = layer(x[b:b + 1, :n])
        torch.testing.assert_close(padded[b:b + 1, :n], alone)
        assert not padded[b, n:].any()  # zero past the end
        for s, a in zip(padded_state, alone_state):
            torch.testing.assert_close(s[:, b:b + 1], a)


def test_generation_step_by_step_equals_the_forward_pass():
    torch.manual_seed(0)
    model = LanguageModel(13, cell="lstm", hidden_size=16, num_layers=2, embedding_dim=8, skip_steps=3).eval()
    seq = torch.randint(13, (2, 12))
    reference = model(seq)[0].logits.log_softmax(-1)  # (B, T, V)
    stepper = Stepper(model.embed, model.rnn.cells, model.head.weight, model.head.bias, 2)
    states = [cell.init_state(2) for cell in model.rnn.cells]
    for t in range(seq.shape[1]):
        logits, states = stepper(seq[:, t], states)
        torch.testing.assert_close(logits.log_softmax(-1), reference[:, t], rtol=0, atol=1e-5)


def test_a_skip_layer_takes_a_weight_dropped_w_hh_and_a_seq2seq_encoder_takes_skips():
    torch.manual_seed(0)
    layer = Recurrent("lstm", I, H, skip_steps=2, weight_drop=0.5)
    x = torch.randn(2, 6, I)
    assert not torch.allclose(layer(x)[0], layer.eval()(x)[0])  # the dropped W_hh reaches the steps
    model = Seq2Seq(9, 6, cell="gru", hidden_size=8, num_layers=2, embedding_dim=4, skip_steps=3)
    batch = PairBatch(torch.randint(0, 9, (3, 5)), torch.tensor([5, 2, 4]), torch.randint(0, 6, (3, 4)),
                      torch.tensor([4, 1, 3]))
    loss, _ = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.layer.cells[0].weight_skip.grad.abs().sum() > 0


def test_skip_connections_are_refused_where_they_cannot_run():
    with pytest.raises(ConfigError, match="run on the explicit engine"):
        Recurrent("lstm", I, H, skip_steps=2, engine="fused")
    with pytest.raises(ConfigError, match="mingru has no recurrence on h"):
        Recurrent("mingru", I, H, skip_steps=2)
    with pytest.raises(ConfigError, match="skip_steps must be 0 \\(none\\) or >= 2"):
        LanguageModel(5, skip_steps=1)
    layer = Recurrent("lstm", I, H, skip_steps=2)
    assert layer.engine_for("cpu") == "explicit"  # auto: torch's fused LSTM has no input for h_(t-d)
    with pytest.raises(ConfigError, match="run on the explicit engine"):
        use_engines(layer, "fused")


def test_the_gradient_from_60_steps_back_survives_with_skips_where_the_plain_rnn_s_vanishes():
    """The lecture's point: a tanh RNN at initialisation passes ‖∂h_60/∂x_1‖ ~ 1e-6 back over 59 steps;
    with skips of 5 steps the same weights (and W_skip) pass it on at order 1."""
    norms = {}
    for d in (0, 5):
        torch.manual_seed(0)
        layer = Recurrent("rnn", 4, 32, skip_steps=d).double()
        x = torch.randn(8, 60, 4, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(layer(x)[0][:, -1].sum(), x)
        norms[d] = g[:, 0].norm().item()  # what reaches the first step's input
    assert norms[0] < 1e-4 and norms[5] > 1e4 * norms[0], norms
