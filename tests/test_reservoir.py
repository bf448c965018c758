"""The echo state reservoir and the ridge readout (rnnkit.layers.reservoir):
NumPy and scikit-learn as oracles, the echo state property, the spectral
radius as set, and exact recovery of a linear target."""

import numpy as np
import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.layers.reservoir import Reservoir, RidgeFit


def numpy_states(res: Reservoir, u: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
    """The reservoir's update as a plain NumPy loop over one sequence u (T, I) -> (T, N)."""
    W_in, W, b = (t.double().numpy() for t in (res.weight_in, res.weight, res.bias))
    a, x = res.leak.double().numpy(), np.zeros(res.hidden_size) if x0 is None else x0
    out = []
    for u_t in u:
        x = (1 - a) * x + a * np.tanh(W_in @ u_t + W @ x + b)
        out.append(x)
    return np.array(out)


def test_states_equal_a_numpy_loop_for_leaky_units_and_padding_freezes_the_state():
    res = Reservoir(3, 40, spectral_radius=0.95, leak_rate=0.3, input_scaling=0.5, density=0.2, seed=1).double()
    u = torch.randn(2, 25, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([25, 17])
    states, (last,) = res(u, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        expected = numpy_states(res, u[b, :n].numpy())
        np.testing.assert_allclose(states[b, :n].numpy(), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(last[0, b].numpy(), expected[-1], rtol=0, atol=1e-12)
    assert states[1, 17:].abs().max() == 0  # zero beyond the length
    rates = torch.linspace(1.0, 0.1, 40)  # one rate a unit
    several = Reservoir(3, 40, leak_rate=rates, seed=1).double()
    np.testing.assert_allclose(several(u)[0][0].numpy(), numpy_states(several, u[0].numpy()), rtol=0, atol=1e-12)
    # carrying the state across two calls equals one call
    first, state = res(u[:, :10])
    second, _ = res(u[:, 10:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), res(u)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("radius", [0.5, 0.9, 1.3])
def test_the_spectral_radius_is_the_one_set(radius):
    res = Reservoir(1, 200, spectral_radius=radius, density=0.1, seed=2)
    measured = torch.linalg.eigvals(res.weight.double()).abs().max().item()
    assert measured == pytest.approx(radius, rel=1e-5)
    assert (res.weight != 0).float().mean().item() == pytest.approx(0.1, abs=0.01)  # the density as set


def test_two_initial_states_converge_below_radius_one_and_not_far_above():
    """The echo state property: for ρ < 1 the state forgets its start; at ρ = 3 (with weak input)
    the reservoir's own dynamics keep two starts apart."""
    u = np.random.default_rng(0).uniform(-1, 1, (300, 1))
    gaps = {}
    for radius in (0.8, 3.0):
        res = Reservoir(1, 100, spectral_radius=radius, input_scaling=0.1, density=0.1, seed=3).double()
        starts = np.random.default_rng(1).uniform(-1, 1, (2, 100))
        a, b = (numpy_states(res, u, x0) for x0 in starts)
        gaps[radius] = (np.linalg.norm(a[0] - b[0]), np.linalg.norm(a[-1] - b[-1]))
    assert gaps[0.8][1] < 1e-8 * gaps[0.8][0]
    assert gaps[3.0][1] > 0.1 * gaps[3.0][0]


def test_the_weights_are_buffers_drawn_from_the_seed_alone():
    torch.manual_seed(0)
    a = Reservoir(2, 30, seed=5)
    torch.manual_seed(1)
    b, c = Reservoir(2, 30, seed=5), Reservoir(2, 30, seed=6)
    assert list(a.parameters()) == []
    assert set(a.state_dict()) == {"weight_in", "bias", "weight", "leak"}
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.weight, c.weight)


def test_the_ridge_fit_over_batches_equals_numpy_lstsq_on_the_stacked_problem():
    rng = np.random.default_rng(0)
    X, Y, lam = rng.standard_normal((120, 7)), rng.standard_normal((120, 3)), 0.7
    fit = RidgeFit(7, 3, lam)
    for rows in np.array_split(np.arange(120), 5):  # five batches
        fit.add(torch.tensor(X[rows], dtype=torch.float32), torch.tensor(Y[rows]))
    weight, bias = fit.solve()
    # the same problem as ordinary least squares: [X 1; sqrt(λ) I 0] [W; c] = [Y; 0]
    Z = np.block([[X, np.ones((120, 1))], [np.sqrt(lam) * np.eye(7), np.zeros((7, 1))]])
    Z[:120, :7] = X.astype(np.float32)  # the features were given in float32
    expected, *_ = np.linalg.lstsq(Z, np.vstack([Y, np.zeros((7, 3))]), rcond=None)
    np.testing.assert_allclose(weight.numpy(), expected[:7].T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(bias.numpy(), expected[7], rtol=1e-9, atol=1e-10)


def test_the_ridge_fit_keeps_the_small_directions_of_an_ill_conditioned_problem():
    """Features whose singular values span 1 to 3e-8 (the Gram matrix's, 1 to 1e-15): a solver that
    drops directions below a cutoff (gelsd's) loses 40 % of the weights; the fit recovers them."""
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((400, 20)))
    V, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    X = U @ np.diag(np.logspace(0, -7.5, 20)) @ V.T
    w = rng.standard_normal(20)
    fit = RidgeFit(20, 1, 1e-30)
    fit.add(torch.tensor(X), torch.tensor(X @ w)[:, None])
    weight, bias = fit.solve()
    assert np.linalg.norm(weight[0].numpy() - w) < 0.02 * np.linalg.norm(w)
    assert abs(bias.item()) < 1e-9


def test_the_ridge_fit_equals_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model", reason="scikit-learn (the bench extra) is absent")
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((80, 5)), rng.standard_normal((80, 2))
    fit = RidgeFit(5, 2, 2.5)
    fit.add(torch.tensor(X), torch.tensor(Y))
    weight, bias = fit.solve()
    residual = Y - X @ weight.numpy().T - bias.numpy()
    np.testing.assert_allclose(fit.squared_errors(weight, bias).numpy(), (residual ** 2).sum(0), rtol=1e-9)
    oracle = linear_model.Ridge(alpha=2.5, fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(weight.numpy(), oracle.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bias.numpy(), oracle.intercept_, rtol=1e-9, atol=1e-12)


def test_the_readout_recovers_a_linear_function_of_the_states_exactly():
    res = Reservoir(1, 50, spectral_radius=0.9, density=0.3, seed=4).double()
    u = torch.rand(4, 200, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    states, _ = res(u)  # (4, 200, 50)
    true_w = torch.randn(2, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    true_c = torch.tensor([0.5, -2.0], dtype=torch.float64)
    fit = RidgeFit(50, 2, 0.0)
    for b in range(4):
        fit.add(states[b], states[b] @ true_w.T + true_c)
    weight, bias = fit.solve()
    torch.testing.assert_close(weight, true_w, rtol=0, atol=1e-6)
    torch.testing.assert_close(bias, true_c, rtol=0, atol=1e-6)


def test_a_small_sparse_draw_without_a_cycle_is_drawn_again_from_the_same_seed():
    small = [Reservoir(1, 8, density=0.1, seed=seed) for seed in range(20)]  # some first draws are nilpotent
    assert all(torch.linalg.eigvals(r.weight.double()).abs().max().item() == pytest.approx(0.9) for r in small)
    assert torch.equal(Reservoir(1, 8, density=0.1, seed=3).weight, small[3].weight)
    with pytest.raises(ConfigError, match="no recurrent cycle"):
        Reservoir(1, 1, density=1e-9)


def test_a_sparse_reservoir_gives_the_states_of_the_dense_product_with_and_without_a_gradient():
    res = Reservoir(2, 60, density=0.03, seed=7).double()  # below SPARSE_BELOW: compressed sparse rows
    u = torch.randn(3, 20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        sparse, _ = res(u)
    assert res._sparse is not None  # the sparse product ran
    dense, _ = res(u)  # with a gradient enabled: the dense product
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-13)
    np.testing.assert_allclose(sparse[0].numpy(), numpy_states(res, u[0].numpy()), rtol=0, atol=1e-12)
    with torch.no_grad():
        res.weight.mul_(0.5)  # changed in place: the sparse copy is made again
        torch.testing.assert_close(res(u)[0], torch.enable_grad()(res)(u)[0], rtol=0, atol=1e-13)


def test_bad_settings_and_shapes_say_what_was_expected():
    with pytest.raises(ValueError, match="leak_rate must be in"):
        Reservoir(1, 10, leak_rate=0.0)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 2\)"):
        Reservoir(2, 10)(torch.zeros(1, 3, 1))
    with pytest.raises(ValueError, match="no rows were added"):
        RidgeFit(3, 1, 1.0).solve()
