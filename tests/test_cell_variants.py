"""The lectures' cell variants (kernels/leaky.py, lnlstm.py, lngru.py): each
step against its equations written plainly with known weights, the
properties that define it, its layer node against its per-step reference,
and a short training run that must learn. (Gradcheck and the agreement of
engines and backends run for every registered cell in test_kernels.py and
test_engines.py.)"""

import pytest
import torch
from conftest import _make_text

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


def train_briefly(cell: str, steps: int = 120, **settings) -> float:
    """The last batch's loss of a 2 x 32 character model after ``steps`` Adam steps on
    random 32-character windows of _make_text(200); deterministic."""
    text = _make_text(200)
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = LanguageModel(len(chars), cell=cell, hidden_size=32, num_layers=2, embedding_dim=16, dropout=0.0,
                          **settings)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - 33, (16,), generator=g).tolist()
        x = torch.stack([ids[j:j + 32] for j in starts])  # (16, 32)
        y = torch.stack([ids[j + 1:j + 33] for j in starts])
        _, loss, _ = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def node_and_steps_agree(layer, x, lengths):
    """The layer's outputs, final state and gradients on its layer node and on unroll's steps."""
    results = []
    for nodes in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine, "LAYER_NODES", nodes)
            layer.zero_grad()
            x.grad = None
            out, state = layer(x, lengths=lengths)
            (out.sin().sum() + sum(s.cos().sum() for s in state)).backward()
            results.append([out, *state, x.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


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


def test_a_leaky_model_learns_beyond_the_unigram_entropy():
    assert train_briefly("leaky") < UNIGRAM_ENTROPY - 1.2


def test_leak_timescale_only_for_the_leaky_cell_and_at_least_one(corpus, tmp_path, cli_here, user_error,
                                                                 tiny_lm_flags):
    user_error(cli_here("train", corpus, "--out", tmp_path / "a", "--cell", "lstm", "--leak-timescale", 10,
                        *tiny_lm_flags), "--leak-timescale needs --cell leaky")
    user_error(cli_here("train", corpus, "--out", tmp_path / "b", "--cell", "leaky", "--leak-timescale", 0.5,
                        *tiny_lm_flags), "leak_timescale must be >= 1.0; got 0.5")
