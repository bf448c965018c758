import pytest
import torch

from rnnkit.layers.dropout import dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_the_mask_keeps_1_minus_p_of_the_entries_each_scaled_to_keep_the_expectation(p):
    torch.manual_seed(0)
    n = 1 << 20
    mask = keep_mask((n,), p, torch.empty(0))
    kept = mask > 0
    # binomial: 5 standard deviations of the kept fraction at n = 2^20 is under 0.0025
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    assert torch.unique(mask[kept]).numel() == 1 and mask[~kept].eq(0).all()
    dropped = round(p * 65536)
    assert mask[kept][0].item() == pytest.approx(65536 / (65536 - dropped), rel=1e-7)
    assert abs(mask.double().mean().item() - 1) < 5 * ((1 / (1 - p) - 1) / n) ** 0.5  # E[mask] = 1


def test_every_16_bit_lane_of_the_random_words_is_uniform():
    # one 64-bit word gives four draws: each of them must be uniform, not only their union
    torch.manual_seed(1)
    mask = keep_mask((1 << 18, 4), 0.5, torch.empty(0)) > 0  # (words, lanes)
    for lane in mask.float().mean(0).tolist():
        assert abs(lane - 0.5) < 5 * (0.25 / (1 << 18)) ** 0.5


def test_dropout_is_seeded_has_the_masked_gradient_and_is_identity_in_evaluation():
    x = torch.randn(4, 7, 33, requires_grad=True)  # an odd count: the last random word is partly used
    torch.manual_seed(3)
    y = dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.3), y)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y / x).detach())  # dL/dx = the mask, 0 or 1/(1-p)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    assert dropout(x, 1.0).eq(0).all()  # F.dropout's answer
    assert dropout(x.bfloat16(), 0.3).dtype == torch.bfloat16


def test_dropout_of_a_weight_matrix_zeroes_a_fraction_p_and_keeps_the_expectation():  # weight drop
    torch.manual_seed(0)
    w = torch.ones(400, 500)
    dropped = dropout(w, 0.3)
    assert abs((dropped == 0).float().mean().item() - 0.3) < 0.01
    assert torch.all((dropped == 0) | torch.isclose(dropped, torch.tensor(1 / 0.7)))
    assert abs(dropped.mean().item() - 1.0) < 0.02


@pytest.mark.parametrize("p", [1.0, -0.1])
def test_a_drop_probability_outside_0_to_1_is_refused(p):
    with pytest.raises(ValueError, match="dropout probability must be in"):
        keep_mask((10,), p, torch.empty(0))


def test_the_drop_probability_never_reaches_one_by_rounding():
    mask = keep_mask((1000,), 1 - 1e-7, torch.empty(0))
    assert torch.isfinite(mask).all()
