"""The lectures' cell variants (kernels/leaky.py, lnlstm.py, lngru.py): each
step against its equations written plainly with known weights, the
properties that define it, its layer node against its per-step reference,
and a short training run that must learn. (Gradcheck and the agreement of
engines and backends run for every registered cell in test_kernels.py and
test_engines.py.)"""

import math

import pytest
import torch
from conftest import _make_text

from rnnkit.data.batches import StreamBatch
from rnnkit.kernels import CELLS, engine
from rnnkit.kernels.leaky import leak_rates
from rnnkit.layers import Recurrent
from rnnkit.models import LanguageModel

UNIGRAM_ENTROPY = 3.09  # nats/char of _make_text(200): what a model that ignores context reaches


def known_weights(cell, seed=0):
    """Every parameter of ``cell`` drawn from a seeded generator (float64), gains near 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5 + (1.0 if "gain" in name else 0.0))
    return cell


def train_briefly(cell: str, steps: int = 120, keep: list | None = None, **settings) -> float:
    """The last batch's loss of a 2 x 32 character model after ``steps`` Adam steps on
    random 32-character windows of _make_text(200); deterministic. The model is appended to ``keep``."""
    text = _make_text(200)
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = LanguageModel(len(chars), cell=cell, hidden_size=32, num_layers=2, embedding_dim=16, dropout=0.0,
                          **settings)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # at these sizes a second thread only waits, and slows to a crawl on a busy machine
    try:
        for _ in range(steps):
            starts = torch.randint(0, len(ids) - 33, (16,), generator=g).tolist()
            x = torch.stack([ids[j:j + 32] for j in starts])  # (16, 32)
            y = torch.stack([ids[j + 1:j + 33] for j in starts])
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    if keep is not None:
        keep.append(model)
    return loss.item()


def node_and_steps_agree(layer, x, lengths):
    """The layer's outputs, final state and gradients on its layer node and on unroll's steps."""
    results = []
    for nodes in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine, "LAYER_NODES", nodes)
            if nodes:  # the node must run, not fall back to the steps it is compared with
                patch.setattr(engine, "unroll", lambda *args: pytest.fail("the layer node fell back to unroll"))
            layer.zero_grad()
            x.grad = None
            out, state = layer(x, lengths=lengths)
            (out.sin().sum() + sum(s.cos().sum() for s in state)).backward()
            results.append([out, *state, x.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*results):  # to fp32 rounding of each tensor's scale (a norm's 1/σ magnifies it)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.detach().abs().max()))


# -- leaky integrators ------------------------------------------------------------

def test_leak_rates_spread_geometrically_from_one_to_one_over_the_timescale():
    torch.testing.assert_close(leak_rates(3, 4.0), torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))
    assert leak_rates(1, 100.0).tolist() == [1.0]
    alpha = CELLS["leaky"](2, 5, leak_timescale=16.0).alpha
    assert alpha.tolist() == pytest.approx([1, 0.5, 0.25, 0.125, 0.0625])
    with pytest.raises(ValueError, match="leak_timescale must be >= 1, got 0.5"):
        CELLS["leaky"](2, 5, leak_timescale=0.5)


def test_leaky_step_equals_its_equation_with_known_weights():
    cell = known_weights(CELLS["leaky"](3, 3, leak_timescale=4.0).double())  # α = 1, 1/2, 1/4
    g = torch.Generator().manual_seed(1)
    x, h = (torch.randn(2, 3, generator=g, dtype=torch.float64) for _ in range(2))
    u = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    alpha = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    expected = (1 - alpha) * h + alpha * u
    out, (h_new,) = cell(x, (h,))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(h_new, expected)
    torch.testing.assert_close(cell.gates(cell.project_input(x), cell.project_hidden(h), (h,))["candidate"][1], u)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # fp32: both layer nodes; fp64: the steps
def test_leaky_with_timescale_one_is_the_vanilla_rnn_on_the_same_weights(dtype):
    torch.manual_seed(0)
    rnn = Recurrent("rnn", 5, 7, num_layers=2, engine="explicit").to(dtype)
    leaky = Recurrent("leaky", 5, 7, num_layers=2, leak_timescale=1.0).to(dtype)
    assert all(c.alpha.eq(1).all() for c in leaky.cells)
    leaky.load_state_dict({**rnn.state_dict(), **{k: v for k, v in leaky.state_dict().items() if "alpha" in k}})
    x = torch.randn(3, 6, 5, dtype=dtype)
    lengths = torch.tensor([6, 2, 4])
    for a, b in zip(rnn(x, lengths=lengths), leaky(x, lengths=lengths)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("padded", [False, True])
def test_leaky_layer_node_equals_its_steps_with_and_without_padding(padded):
    torch.manual_seed(0)
    layer = Recurrent("leaky", 5, 16, num_layers=2, bidirectional=True, leak_timescale=10.0)
    x = torch.randn(4, 9, 5, requires_grad=True)
    node_and_steps_agree(layer, x, torch.tensor([9, 3, 5, 1]) if padded else None)


def test_leak_rates_are_a_buffer_saved_with_the_weights_not_a_parameter():
    model = LanguageModel(10, cell="leaky", hidden_size=6, num_layers=2, leak_timescale=32.0)
    state = model.state_dict()
    assert state["rnn.cells.1.alpha"].tolist() == pytest.approx(leak_rates(6, 32.0).tolist())
    assert not any("alpha" in name for name, _ in model.named_parameters())
    other = LanguageModel(10, cell="leaky", hidden_size=6, num_layers=2, leak_timescale=2.0)
    other.load_state_dict(state)
    assert other.rnn.cells[0].alpha.equal(model.rnn.cells[0].alpha)


def learned_and_fixed(rates: torch.Tensor, dtype=torch.float64, **layer):
    """A learned-leak layer and a fixed-leak one on the same weights, the fixed one's α set to ``rates``
    and the learned one's w to logit(rates)."""
    torch.manual_seed(0)
    fixed = Recurrent("leaky", 5, len(rates), leak_timescale=10.0, **layer).to(dtype)
    learned = Recurrent("leaky", 5, len(rates), leak_timescale=10.0, learn_leak=True, **layer).to(dtype)
    with torch.no_grad():
        for f, c in zip(fixed.cells, learned.cells):
            f.alpha.copy_(rates)
            c.leak_logit.copy_(torch.log(rates / (1 - rates)))
    learned.load_state_dict({k: v for k, v in fixed.state_dict().items() if "alpha" not in k}, strict=False)
    return learned, fixed


def test_learned_leak_rates_start_at_the_fixed_ones_and_equal_the_fixed_cell_at_the_same_alpha():
    cell = CELLS["leaky"](2, 5, leak_timescale=16.0, learn_leak=True)
    torch.testing.assert_close(cell.rates(), torch.tensor([0.9975274, 0.5, 0.25, 0.125, 0.0625]))
    assert sorted(n for n, _ in cell.named_parameters()) == ["bias_hh", "bias_ih", "leak_logit", "weight_hh",
                                                            "weight_ih"]
    assert "alpha" not in cell.state_dict()  # learned: the parameter is the rates' only record
    rates = torch.tensor([0.9, 0.5, 0.2, 0.05], dtype=torch.float64)
    learned, fixed = learned_and_fixed(rates, num_layers=2, bidirectional=True, engine="explicit")
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5])
    for a, b in zip(learned(x, lengths=lengths), fixed(x, lengths=lengths)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_learned_leak_rates_pass_gradcheck_in_float64():
    """The layer's outputs against its equations written out with α = σ(w), and gradcheck of the
    outputs in w, the inputs and the initial state (the steps: float64 takes no layer node)."""
    rates = torch.tensor([0.9, 0.5, 0.2], dtype=torch.float64)
    learned, _ = learned_and_fixed(rates, engine="explicit")
    cell = learned.cells[0]
    x = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    h, expected = h0[0], []
    for t in range(x.shape[1]):
        u = torch.tanh(x[:, t] @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
        h = h + torch.sigmoid(cell.leak_logit) * (u - h)
        expected.append(h)
    torch.testing.assert_close(learned(x, (h0,))[0], torch.stack(expected, 1), rtol=1e-12, atol=1e-12)

    def outputs(w, x, h0):
        del cell.leak_logit
        cell.leak_logit = w  # a plain tensor in the parameter's place, so gradcheck can perturb it
        try:
            return learned(x, (h0,))[0]
        finally:
            del cell.leak_logit
            cell.leak_logit = torch.nn.Parameter(w.detach().clone())

    w = cell.leak_logit.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(outputs, (w, x, h0))


@pytest.mark.parametrize("padded", [False, True])
def test_the_leaky_layer_node_s_leak_rate_gradient_equals_its_steps(padded):
    torch.manual_seed(0)
    layer = Recurrent("leaky", 5, 16, num_layers=2, bidirectional=True, leak_timescale=10.0, learn_leak=True)
    x = torch.randn(4, 9, 5, requires_grad=True)
    node_and_steps_agree(layer, x, torch.tensor([9, 3, 5, 1]) if padded else None)
    assert all(c.leak_logit.grad.abs().min() > 0 for c in layer.cells)  # every unit's rate gets a gradient


def test_a_leaky_model_with_learned_rates_learns_and_moves_its_rates():
    models = []
    assert train_briefly("leaky", learn_leak=True, keep=models) < UNIGRAM_ENTROPY - 1.2
    start = LanguageModel(10, cell="leaky", hidden_size=32, num_layers=2, learn_leak=True).rnn.cells[0].rates()
    assert (models[0].rnn.cells[0].rates() - start).abs().max() > 0.05


def test_a_leaky_model_learns_beyond_the_unigram_entropy():
    assert train_briefly("leaky") < UNIGRAM_ENTROPY - 1.2


def test_leak_timescale_only_for_the_leaky_cell_and_at_least_one(corpus, tmp_path, cli_here, user_error,
                                                                 tiny_lm_flags):
    user_error(cli_here("train", corpus, "--out", tmp_path / "a", "--cell", "lstm", "--leak-timescale", 10,
                        *tiny_lm_flags), "--leak-timescale needs --cell leaky")
    user_error(cli_here("train", corpus, "--out", tmp_path / "b", "--cell", "leaky", "--leak-timescale", 0.5,
                        *tiny_lm_flags), "leak_timescale must be >= 1.0; got 0.5")


# -- layer-normalised LSTM and GRU ----------------------------------------------------

def plain_ln(a, gain, bias, blocks):
    """LN per block of H entries, written out: (a - mean) / sqrt(biased variance + 1e-5) * gain + bias."""
    parts = []
    for block in a.chunk(blocks, dim=-1):
        mean = block.mean(-1, keepdim=True)
        var = ((block - mean) ** 2).mean(-1, keepdim=True)
        parts.append((block - mean) / torch.sqrt(var + 1e-5))
    return torch.cat(parts, dim=-1) * gain + bias


def test_lnlstm_step_equals_its_equations_with_known_weights():
    cell = known_weights(CELLS["lnlstm"](3, 4).double())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, generator=g, dtype=torch.float64)
    h, c = (torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(2))
    a = (plain_ln(x @ cell.weight_ih.T, cell.ln_ih_gain, cell.ln_ih_bias, 4)
         + plain_ln(h @ cell.weight_hh.T, cell.ln_hh_gain, cell.ln_hh_bias, 4))
    i, f, gg, o = a.chunk(4, dim=1)  # torch's gate order
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    h_new = torch.sigmoid(o) * torch.tanh(plain_ln(c_new, cell.ln_c_gain, cell.ln_c_bias, 1))
    out, (h_out, c_out) = cell(x, (h, c))
    for ours, expected in ((out, h_new), (h_out, h_new), (c_out, c_new)):
        torch.testing.assert_close(ours, expected)
    gates = cell.gates(cell.project_input(x), h @ cell.weight_hh.T, (h, c))
    torch.testing.assert_close(gates["forget"][1], torch.sigmoid(f))


def test_lngru_step_equals_its_equations_with_known_weights():
    cell = known_weights(CELLS["lngru"](3, 4).double())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, generator=g, dtype=torch.float64)
    h = torch.randn(2, 4, generator=g, dtype=torch.float64)
    xr, xz, xn = plain_ln(x @ cell.weight_ih.T, cell.ln_ih_gain, cell.ln_ih_bias, 3).chunk(3, dim=1)
    hr, hz, hn = plain_ln(h @ cell.weight_hh.T, cell.ln_hh_gain, cell.ln_hh_bias, 3).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    out, (h_out,) = cell(x, (h,))
    torch.testing.assert_close(out, (1 - z) * n + z * h)
    torch.testing.assert_close(h_out, out)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_ln_layer_nodes_equal_their_steps_with_and_without_padding(cell, padded, bias, native_kernels):
    """The C nodes (lnlstm.c, lngru.c) against the cells' torch ops step by step,
    gains and biases off 1 and 0."""
    torch.manual_seed(0)
    layer = Recurrent(cell, 5, 16, num_layers=2, bidirectional=True, bias=bias)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if "ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 9, 5, requires_grad=True)
    node_and_steps_agree(layer, x, torch.tensor([9, 3, 5, 1]) if padded else None)


def test_ln_cells_start_with_gains_one_biases_zero_and_the_lstms_forget_bias():
    lstm, gru = CELLS["lnlstm"](3, 4, forget_bias=2.0), CELLS["lngru"](3, 4)
    assert lstm.bias_ih is None and lstm.bias_hh is None  # β_x and β_h take their place
    assert lstm.ln_ih_bias.tolist() == [0.0] * 4 + [2.0] * 4 + [0.0] * 8
    for cell in (lstm, gru):
        for name, p in cell.named_parameters():
            if name.endswith("gain"):
                assert p.eq(1).all(), name
            elif name.startswith("ln_") and name != "ln_ih_bias" or cell is gru and name == "ln_ih_bias":
                assert p.eq(0).all(), name
    assert {n for n, _ in lstm.named_parameters()} == {"weight_ih", "weight_hh", "ln_ih_gain", "ln_ih_bias",
                                                     "ln_hh_gain", "ln_hh_bias", "ln_c_gain", "ln_c_bias"}
    assert {n for n, _ in CELLS["lnlstm"](3, 4, bias=False).named_parameters()} == {
        "weight_ih", "weight_hh", "ln_ih_gain", "ln_hh_gain", "ln_c_gain"}


@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_ln_cells_outputs_do_not_change_when_the_weights_are_rescaled(cell):
    """LN(s W h) = LN(W h) for s > 0 (up to ε): a property of the normalisation that
    the plain cell lacks, so the test fails if either LN were left out."""
    def outputs_after_rescaling(name, scale):
        torch.manual_seed(0)
        layer = Recurrent(name, 5, 16, num_layers=2).double()
        x = torch.randn(3, 12, 5, dtype=torch.float64)
        before = layer(x)[0]
        with torch.no_grad():
            for c in layer.cells:
                c.weight_hh.mul_(scale)
                c.weight_ih.mul_(1 / scale)
        return before, layer(x)[0]

    before, after = outputs_after_rescaling(cell, 3.0)
    torch.testing.assert_close(after, before, rtol=0, atol=2e-3)
    plain_before, plain_after = outputs_after_rescaling(cell[2:], 3.0)  # the plain lstm or gru
    assert (plain_after - plain_before).abs().max() > 0.1


@pytest.mark.parametrize("cell", ["leaky", "lnlstm", "lngru"])
def test_generation_step_by_step_equals_the_full_forward(cell):
    """Generation steps each layer alone (models/stepping.py), the layer above the first
    through the cell's own input projection: greedy tokens are the full forward's argmax."""
    torch.manual_seed(0)
    model = LanguageModel(11, cell=cell, hidden_size=16, num_layers=3, embedding_dim=8, dropout=0.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name:  # gains and biases off their initial 1 and 0
                p.add_(0.3 * torch.randn_like(p))
    prime = [1, 2, 3]
    out = list(model.generate(prime, 12, temperature=0))
    (logits, _), _ = model(torch.tensor([prime + out]))
    assert logits[0, len(prime) - 1:-1].argmax(-1).tolist() == out


@pytest.mark.parametrize("cell", ["leaky", "lnlstm", "lngru"])
def test_diagnostics_measure_the_new_cells(cell):
    from rnnkit.diagnostics import measure

    torch.manual_seed(0)
    model = LanguageModel(11, cell=cell, hidden_size=8, num_layers=2, embedding_dim=4, dropout=0.0)
    x = torch.randint(0, 11, (2, 10))
    result = measure(model, StreamBatch(x, torch.roll(x, -1, 1)))
    gate_names = CELLS[cell].gate_names
    assert all(set(r) == set(gate_names) for r in result["spectral_radius"].values())
    assert len(result["spectral_radius"]) == 2 and result["saturation"] and result["gradient_flow"]
    assert all(math.isfinite(v) for curve in result["gradient_flow"].values() for v in curve if v is not None)


@pytest.mark.parametrize("cell,bound", [("lnlstm", UNIGRAM_ENTROPY - 2.3), ("lngru", UNIGRAM_ENTROPY - 2.3)])
def test_ln_models_learn_beyond_the_unigram_entropy(cell, bound):
    assert train_briefly(cell) < bound
