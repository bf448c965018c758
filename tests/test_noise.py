"""Gaussian noise injection (--input-noise σ, --weight-noise σ): in training mode the
recurrent layer reads x + σ ε and runs on W_hh + σ ε (one draw per call, per cell), exactly
the noiseless layer given those draws; in evaluation mode the noiseless layer itself; and a
seed fixes the draws, so training with noise is reproducible."""

import copy

import pytest
import torch

from rnnkit.data.batches import StreamBatch
from rnnkit.errors import ConfigError
from rnnkit.layers import Recurrent
from rnnkit.models import LanguageModel


def layers(engine: str, **noise):
    torch.manual_seed(0)
    noisy = Recurrent("lstm", 4, 6, num_layers=2, bidirectional=True, engine=engine, **noise)
    plain = Recurrent("lstm", 4, 6, num_layers=2, bidirectional=True, engine=engine)
    plain.load_state_dict(noisy.state_dict())
    return noisy, plain


@pytest.mark.parametrize("engine", ["fused", "explicit"])
def test_input_noise_is_x_plus_sigma_epsilon_in_training_and_nothing_in_evaluation(engine):
    noisy, plain = layers(engine, input_noise=0.3)
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 4])
    torch.manual_seed(7)
    out, state = noisy(x, lengths=lengths)
    torch.manual_seed(7)
    expected, expected_state = plain(x + 0.3 * torch.randn_like(x), lengths=lengths)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(state, expected_state)
    assert not torch.allclose(out, plain(x, lengths=lengths)[0], atol=1e-3)  # on in training
    assert not torch.allclose(noisy(x, lengths=lengths)[0], out, atol=1e-3)  # a fresh draw each call
    noisy.eval(), plain.eval()
    torch.testing.assert_close(noisy(x, lengths=lengths)[0], plain(x, lengths=lengths)[0], rtol=0, atol=0)


@pytest.mark.parametrize("engine", ["fused", "explicit"])
def test_weight_noise_is_w_hh_plus_sigma_epsilon_per_call_in_training_and_nothing_in_evaluation(engine):
    noisy, plain = layers(engine, weight_noise=0.2)
    x = torch.randn(3, 5, 4, requires_grad=True)
    torch.manual_seed(11)
    out, _ = noisy(x)
    perturbed = copy.deepcopy(plain)
    torch.manual_seed(11)
    with torch.no_grad():
        for cell in perturbed.cells:  # one draw per cell, in the layer's order (layer, then direction)
            cell.weight_hh += 0.2 * torch.randn_like(cell.weight_hh)
    torch.testing.assert_close(out, perturbed(x)[0])
    out.sum().backward()  # the gradient reaches the weights through the noise
    assert all(cell.weight_hh.grad.abs().sum() > 0 for cell in noisy.cells)
    assert not torch.allclose(out, plain(x)[0], atol=1e-3)
    noisy.eval(), plain.eval()
    torch.testing.assert_close(noisy(x)[0], plain(x)[0], rtol=0, atol=0)
    assert all(torch.equal(a.weight_hh, b.weight_hh) for a, b in zip(noisy.cells, plain.cells))  # never written


def train(seed: int, steps: int = 20, **noise) -> list[float]:
    torch.manual_seed(seed)
    model = LanguageModel(12, cell="gru", hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0, **noise)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        x = torch.randint(0, 12, (4, 10), generator=g)
        loss, _ = model.loss(StreamBatch(x, (x + 1) % 12))  # the next id: learnable
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_training_with_noise_is_reproducible_under_a_seed_and_still_learns():
    noise = dict(input_noise=0.1, weight_noise=0.05)
    first = train(0, **noise)
    assert first == train(0, **noise)
    assert first != train(0) and first[-1] < 0.8 * first[0]


def test_noise_settings_are_checked():
    with pytest.raises(ConfigError, match="input_noise must be >= 0.0; got -0.1"):
        LanguageModel(5, input_noise=-0.1)
    with pytest.raises(ConfigError, match="weight_noise perturbs recurrent weights, which mingru has not"):
        Recurrent("mingru", 3, 4, weight_noise=0.1)
