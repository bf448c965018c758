"""LinearChainCRF against brute force over all K^T tag sequences, plus padding,
gradients, learning and errors."""

import itertools

import pytest
import torch
from torch.func import functional_call

from rnnkit.layers.crf import LinearChainCRF

K = 3


def make_crf(seed: int = 0) -> LinearChainCRF:
    torch.manual_seed(seed)
    crf = LinearChainCRF(K).double()
    with torch.no_grad():  # larger than the default init, so that transitions matter
        for p in crf.parameters():
            p.normal_(0.0, 1.0)
    return crf


def path_score(crf: LinearChainCRF, emissions: torch.Tensor, path) -> torch.Tensor:
    """score(y) of one unpadded sequence, emissions (L, K), written term by term."""
    total = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
    for t, tag in enumerate(path):
        total = total + emissions[t, tag]
        if t > 0:
            total = total + crf.transitions[path[t - 1], tag]
    return total


def brute_force(crf: LinearChainCRF, emissions: torch.Tensor):
    """(log Z, best path, {path: score}) by enumerating all K^L paths of emissions (L, K)."""
    paths = itertools.product(range(K), repeat=emissions.shape[0])
    scores = {p: path_score(crf, emissions, p) for p in paths}
    log_z = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
    return log_z, list(max(scores, key=lambda p: scores[p].item())), scores


@pytest.mark.parametrize("T", [1, 2, 3, 4])
def test_nll_and_viterbi_match_brute_force(T):
    crf = make_crf(T)
    emissions = torch.randn(4, T, K, dtype=torch.float64)
    tags = torch.randint(0, K, (4, T))
    nll = crf.nll(emissions, tags)
    paths = crf.decode(emissions)
    for b in range(4):
        log_z, best, scores = brute_force(crf, emissions[b])
        gold = tuple(tags[b].tolist())
        torch.testing.assert_close(nll[b], log_z - scores[gold])
        assert paths[b].tolist() == best


def test_variable_lengths_match_brute_force_per_sequence_and_batched_decoding_equals_one_at_a_time():
    crf = make_crf(1)
    lengths = [4, 1, 3, 2]
    emissions = torch.randn(4, 4, K, dtype=torch.float64)
    mask = torch.arange(4) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.randint(0, K, (4, 4)).masked_fill(~mask, -100)  # -100 must be ignored, not indexed
    nll = crf.nll(emissions, tags, mask)
    paths = crf.decode(emissions, mask)
    for b, L in enumerate(lengths):
        log_z, best, scores = brute_force(crf, emissions[b, :L])
        torch.testing.assert_close(nll[b], log_z - scores[tuple(tags[b, :L].tolist())])
        assert paths[b, :L].tolist() == best
        assert torch.equal(paths[b, :L], crf.decode(emissions[b:b + 1, :L])[0])  # the batch changes nothing
    assert paths[~mask].eq(0).all()


def test_padding_never_changes_a_result():
    crf = make_crf(2)
    emissions = torch.randn(1, 3, K, dtype=torch.float64, requires_grad=True)
    tags = torch.tensor([[2, 0, 1]])
    alone_nll = crf.nll(emissions, tags)
    (alone_grad,) = torch.autograd.grad(alone_nll.sum(), emissions)

    # the same sequence second in a batch of length 6, padded with garbage scores and tags
    padded = torch.randn(3, 6, K, dtype=torch.float64) * 100
    padded[1, 3:] = torch.tensor([float("nan"), float("inf"), -1e30])
    padded[1, :3] = emissions.detach()[0]
    padded.requires_grad_(True)
    mask = torch.arange(6) < torch.tensor([6, 3, 5]).unsqueeze(1)
    padded_tags = torch.randint(0, K, (3, 6))
    padded_tags[1] = torch.tensor([2, 0, 1, -100, 7, 12345])
    nll = crf.nll(padded, padded_tags, mask)
    (grad,) = torch.autograd.grad(nll[1], padded)

    torch.testing.assert_close(nll[1], alone_nll[0])
    torch.testing.assert_close(grad[1, :3], alone_grad[0])
    assert grad[1, 3:].eq(0).all() and torch.isfinite(nll).all()
    assert torch.equal(crf.decode(padded.detach(), mask)[1, :3], crf.decode(emissions.detach())[0])


def test_gradcheck_on_emissions_and_all_parameters():
    crf = make_crf(3)
    emissions = torch.randn(3, 4, K, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(4) < torch.tensor([4, 2, 1]).unsqueeze(1)
    tags = torch.randint(0, K, (3, 4))
    params = {name: p.detach().clone().requires_grad_(True) for name, p in crf.named_parameters()}

    def nll(emissions, transitions, start, end):
        weights = {"transitions": transitions, "start_transitions": start, "end_transitions": end}
        return functional_call(crf, weights, (emissions, tags, mask))

    inputs = (emissions, params["transitions"], params["start_transitions"], params["end_transitions"])
    assert torch.autograd.gradcheck(nll, inputs)


def test_learns_that_tag_2_always_follows_tag_1():
    # gold tags obey one rule (after 1 comes 2); the emissions point at the gold tag
    # everywhere except right after a 1, where they are flat, so only A can learn it
    gen = torch.Generator().manual_seed(0)
    B, T = 64, 8
    tags = torch.randint(0, 2, (B, T), generator=gen)
    for t in range(1, T):
        tags[:, t] = torch.where(tags[:, t - 1] == 1, 2, tags[:, t])
    emissions = 3.0 * torch.nn.functional.one_hot(tags, K).float()
    after_one = torch.zeros(B, T, dtype=torch.bool)
    after_one[:, 1:] = tags[:, :-1] == 1
    emissions[after_one] = 0.0
    assert after_one.any()

    torch.manual_seed(0)
    crf = LinearChainCRF(K)
    with torch.no_grad():
        crf.transitions[1, 0] = 1.0  # a wrong prior: 0 after 1
    assert not torch.equal(crf.decode(emissions), tags)
    initial = crf.nll(emissions, tags).mean().item()
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.1)
    for _ in range(150):
        loss = crf.nll(emissions, tags).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = crf.nll(emissions, tags).mean().item()

    assert initial > 2.0 and final < 0.3  # per sequence of 8 tags
    A = crf.transitions.detach()
    assert A[1, 2] > A[1, 0] + 2 and A[1, 2] > A[1, 1] + 2
    assert torch.equal(crf.decode(emissions), tags)


def test_errors_name_the_expected_and_actual_shapes():
    crf = LinearChainCRF(5)
    tags = torch.zeros(2, 3, dtype=torch.int64)
    expected = r"LinearChainCRF: expected emissions of shape \(B, T, 5\) with T >= 1, got \(2, 3, 4\)"
    with pytest.raises(ValueError, match=expected):
        crf.nll(torch.zeros(2, 3, 4), tags)
    with pytest.raises(ValueError, match=r"with T >= 1, got \(2, 0, 5\)"):
        crf.decode(torch.zeros(2, 0, 5))
    emissions = torch.zeros(2, 3, 5)
    with pytest.raises(ValueError, match=r"expected mask of shape \(2, 3\), got \(2, 4\)"):
        crf.decode(emissions, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"torch.bool mask"):
        crf.decode(emissions, torch.ones(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="left-aligned padding"):
        crf.decode(emissions, torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError, match="left-aligned padding"):
        crf.decode(emissions, torch.tensor([[False, False, False], [True, True, True]]))
    with pytest.raises(ValueError, match=r"expected tags of shape \(2, 3\), got \(2, 2\)"):
        crf.nll(emissions, torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"tags at valid positions must be in \[0, 5\)"):
        crf.nll(emissions, torch.full((2, 3), 5))
    with pytest.raises(ValueError, match="num_tags must be >= 1"):
        LinearChainCRF(0)
