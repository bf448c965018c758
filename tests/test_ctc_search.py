"""CTC decoding against brute force (every alignment enumerated) and against
``F.ctc_loss``: exact labelling probabilities, the repeat rule, what a beam
keeps, best path, shallow fusion with a language model, and bad inputs."""

import math
from collections import Counter, defaultdict
from itertools import product

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models.ctc_search import BLANK, ctc_greedy, ctc_prefix_beam_search


def collapse(path, blank=BLANK):
    """Merge repeats, then drop blanks: (1, 1, 0, 1, 2) -> (1, 1, 2)."""
    return tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k))


def path_logp(lp, path):
    return sum(lp[t][k] for t, k in enumerate(path))


def logsumexp(xs):
    return torch.tensor(xs, dtype=torch.float64).logsumexp(0).item()


def brute_force(lp, blank=BLANK, keep=lambda path: True):
    """labelling -> log of the summed probability of every alignment (kept by ``keep``) collapsing to it."""
    groups = defaultdict(list)
    for path in product(range(len(lp[0])), repeat=len(lp)):
        if keep(path):
            groups[collapse(path, blank)].append(path_logp(lp, path))
    return {labels: logsumexp(v) for labels, v in groups.items()}


def beam_reference(lp, beam_size):
    """What a beam of ``beam_size`` returns, by brute force: after each frame t keep
    the labellings of the most probable groups of alignments of frames 1..t, counting
    only the alignments whose collapse was kept after every earlier frame."""
    kept = [{()}]
    for t in range(1, len(lp) + 1):
        groups = defaultdict(list)
        for path in product(range(len(lp[0])), repeat=t):
            if all(collapse(path[:s]) in kept[s] for s in range(1, t)):
                groups[collapse(path)].append(path_logp(lp, path))
        totals = {labels: logsumexp(v) for labels, v in groups.items()}
        kept.append(set(sorted(totals, key=totals.get, reverse=True)[:beam_size]))
    return sorted(((list(labels), totals[labels]) for labels in kept[-1]), key=lambda hyp: -hyp[1])


def random_log_probs(T, V, seed):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(T, V, generator=g, dtype=torch.float64)).log_softmax(-1)  # (T, V)


def table(rows):
    """Probabilities per frame (T, V) -> log-probabilities."""
    return torch.tensor(rows, dtype=torch.float64).log()


@pytest.mark.parametrize("V", [3, 4])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_keeping_everything_returns_every_labelling_with_its_exact_log_probability(T, V, seed):
    lp = random_log_probs(T, V, seed)
    blank = seed % V  # the blank is not always 0
    exact = brute_force(lp.tolist(), blank)
    hyps = ctc_prefix_beam_search(lp, beam_size=1000, blank=blank)
    assert {tuple(labels) for labels, _ in hyps} == set(exact)
    for labels, score in hyps:
        assert score == pytest.approx(exact[tuple(labels)], abs=1e-9)
    assert hyps[0][0] == list(max(exact, key=exact.get))
    assert [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)
    assert logsumexp([s for _, s in hyps]) == pytest.approx(0.0, abs=1e-9)  # the labellings' probabilities sum to 1


def test_scores_equal_minus_ctc_loss():
    T, V = 8, 3
    lp = random_log_probs(T, V, seed=5)
    hyps = ctc_prefix_beam_search(lp, beam_size=600)
    # every string of 1s and 2s that fits in 8 frames, n labels with r repeats needing n + r <= 8:
    # sum over n of 2 C(n - 1, r) for r <= min(n - 1, 8 - n), plus the empty one
    assert len(hyps) == 109
    targets = torch.tensor([k for labels, _ in hyps for k in labels], dtype=torch.long)
    target_lengths = torch.tensor([len(labels) for labels, _ in hyps])
    N = len(hyps)
    # F.ctc_loss wants time-first log-probs (T, N, V): the same utterance once per hypothesis
    loss = F.ctc_loss(lp[:, None, :].expand(T, N, V), targets, torch.full((N,), T), target_lengths,
                      blank=BLANK, reduction="none")  # (N,)
    assert torch.allclose(-loss, torch.tensor([s for _, s in hyps], dtype=torch.float64), rtol=0, atol=1e-9)
    assert logsumexp([s for _, s in hyps]) == pytest.approx(0.0, abs=1e-9)


def test_a_small_beam_scores_only_the_alignments_it_kept_never_more_than_ctc_loss():
    T, V = 20, 6
    lp = random_log_probs(T, V, seed=3)
    hyps = ctc_prefix_beam_search(lp, beam_size=4)
    assert len(hyps) == 4
    targets = torch.tensor([k for labels, _ in hyps for k in labels], dtype=torch.long)
    # time-first for F.ctc_loss: (T, N, V)
    loss = F.ctc_loss(lp[:, None, :].expand(T, 4, V), targets, torch.full((4,), T),
                      torch.tensor([len(labels) for labels, _ in hyps]), reduction="none")  # (N,)
    scores = torch.tensor([s for _, s in hyps], dtype=torch.float64)
    assert (scores <= -loss + 1e-9).all()


@pytest.mark.parametrize("beam_size", [1, 2, 3])
@pytest.mark.parametrize("T, V, seed", [(4, 3, 0), (5, 3, 1), (4, 4, 2), (5, 4, 3)])
def test_a_small_beam_returns_what_brute_force_keeping_that_beam_returns(beam_size, T, V, seed):
    lp = random_log_probs(T, V, seed)
    hyps = ctc_prefix_beam_search(lp, beam_size=beam_size)
    expected = beam_reference(lp.tolist(), beam_size)
    assert [labels for labels, _ in hyps] == [labels for labels, _ in expected]
    assert [s for _, s in hyps] == pytest.approx([s for _, s in expected], abs=1e-9)


def test_a_repeated_label_needs_a_blank_between():
    # frames (blank, 1, 2); "1 1" has one alignment, 1 - 1; 1 1 1 and 1 1 - are "1"
    lp = table([[.2, .7, .1], [.6, .3, .1], [.2, .7, .1]])
    scores = {tuple(labels): s for labels, s in ctc_prefix_beam_search(lp, beam_size=100)}
    assert scores[(1, 1)] == pytest.approx(math.log(.7 * .6 * .7), abs=1e-12)
    exact = brute_force(lp.tolist())
    assert scores.keys() == exact.keys()
    for labels, s in exact.items():
        assert scores[labels] == pytest.approx(s, abs=1e-12)
    two_frames = {tuple(labels) for labels, _ in ctc_prefix_beam_search(lp[:2], beam_size=100)}
    assert (1, 1) not in two_frames and (1,) in two_frames


def test_beam_search_beats_the_best_path_where_alignments_add_up():
    # best path "- -" -> [] (0.36); but "1" has three alignments: 0.24 + 0.24 + 0.16
    lp = table([[.6, .4], [.6, .4]])
    assert ctc_greedy(lp[None], torch.tensor([2])) == [[]]
    assert ctc_prefix_beam_search(lp, beam_size=1)[0][0] == []  # beam 1 dropped "1" after frame 1
    (labels, score), _ = ctc_prefix_beam_search(lp, beam_size=2)
    assert labels == [1] and score == pytest.approx(math.log(.64), abs=1e-12)


def test_beam_one_is_not_best_path():
    # best path 2 - 1 -> [2, 1]; beam 1 keeps [2] after frame 2 (p_b .30, p_nb .10) and
    # then prefers it: .40 * .40 + .10 * .19 = .179 against [2, 1]: .40 * .41 = .164
    lp = table([[.4, .1, .5], [.6, .2, .2], [.4, .41, .19]])
    assert ctc_greedy(lp[None], torch.tensor([3])) == [[2, 1]]
    [(labels, score)] = ctc_prefix_beam_search(lp, beam_size=1)
    assert labels == [2] and score == pytest.approx(math.log(.179), abs=1e-12)


def test_prune_drops_exactly_the_alignments_entering_a_label_below_the_threshold():
    T, V = 5, 4
    lp = random_log_probs(T, V, seed=7)
    prune = math.log(0.15)
    y = lp.tolist()

    def keep(path):  # every frame where a new label starts must reach the threshold
        return all(y[t][k] >= prune for t, k in enumerate(path) if k != BLANK and (t == 0 or path[t - 1] != k))

    exact = brute_force(y, keep=keep)
    hyps = ctc_prefix_beam_search(lp, beam_size=1000, prune=prune)
    assert {tuple(labels) for labels, _ in hyps} == set(exact)
    assert len(exact) < len(brute_force(y))
    for labels, score in hyps:
        assert score == pytest.approx(exact[tuple(labels)], abs=1e-9)
    assert ctc_prefix_beam_search(lp, beam_size=50, prune=-1e9) == ctc_prefix_beam_search(lp, beam_size=50)


@pytest.mark.parametrize("T, V, seed, blank", [(1, 3, 0, 0), (3, 4, 1, 0), (5, 3, 2, 2), (5, 4, 3, 0), (4, 4, 4, 1)])
def test_greedy_is_the_collapsed_best_path(T, V, seed, blank):
    lp = random_log_probs(T, V, seed)
    y = lp.tolist()
    best = max(product(range(V), repeat=T), key=lambda path: path_logp(y, path))
    assert ctc_greedy(lp[None], torch.tensor([T]), blank=blank) == [list(collapse(best, blank))]


def test_greedy_batched_equals_one_at_a_time_and_ignores_padding():
    B, T, V = 4, 9, 5
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(B, T, V, generator=g).log_softmax(-1)  # (B, T, V)
    lengths = torch.tensor([9, 3, 0, 6])
    out = ctc_greedy(log_probs, lengths)
    assert out == [ctc_greedy(log_probs[b:b + 1, :L], lengths[b:b + 1])[0] for b, L in enumerate(lengths.tolist())]
    assert out[2] == [] and any(len(labels) > 1 for labels in out)
    valid = torch.arange(T)[None, :, None] < lengths[:, None, None]  # (B, T, 1), True at valid frames
    garbage = torch.randn(B, T, V, generator=g).log_softmax(-1)
    assert ctc_greedy(torch.where(valid, log_probs, garbage), lengths) == out


class HistoryBigram:
    """A bigram LM whose state is the whole prefix, so calls can be counted per prefix.
    ``rows[k]`` is log p(next | last label k); row 0 (the blank's id) is the start."""

    def __init__(self, rows):
        self.rows = torch.tensor(rows, dtype=torch.float64).log()  # (V, V)
        self.scored, self.advanced = Counter(), Counter()

    def initial(self):
        return ()

    def log_probs(self, state):
        self.scored[state] += 1
        return self.rows[state[-1] if state else 0]

    def advance(self, state, label):
        self.advanced[state, label] += 1
        return state + (label,)

    def logp(self, labels):
        return sum(self.rows[([0] + labels)[i], k].item() for i, k in enumerate(labels))


# the blank's column (1.0 = log 0) must be ignored
PREFERS_2 = [[1.0, .01, .98], [1.0, .01, .01], [1.0, .01, .01]]


def test_a_strong_language_model_flips_the_best_labelling_and_weight_zero_leaves_it():
    lp = table([[.01, .6, .39], [.01, .6, .39]])
    plain = ctc_prefix_beam_search(lp, beam_size=8)
    assert plain[0][0] == [1]
    lm = HistoryBigram(PREFERS_2)
    assert ctc_prefix_beam_search(lp, beam_size=8, lm=lm, lm_weight=0.0) == plain
    assert not lm.scored  # weight 0: the LM is never run
    assert ctc_prefix_beam_search(lp, beam_size=8, lm=lm, lm_weight=2.0)[0][0] == [2]


def test_fused_score_is_ctc_plus_weighted_lm_plus_bonus_and_the_lm_runs_once_per_prefix():
    lp = random_log_probs(4, 3, seed=11)
    exact = brute_force(lp.tolist())
    lm = HistoryBigram([[.9, .3, .6], [.5, .2, .7], [.1, .5, .4]])
    hyps = ctc_prefix_beam_search(lp, beam_size=1000, lm=lm, lm_weight=0.7, insertion_bonus=0.3)
    assert {tuple(labels) for labels, _ in hyps} == set(exact)
    for labels, score in hyps:
        assert score == pytest.approx(exact[tuple(labels)] + 0.7 * lm.logp(labels) + 0.3 * len(labels), abs=1e-9)
    assert lm.scored and max(lm.scored.values()) == 1 and max(lm.advanced.values()) == 1
    assert () in lm.scored


def test_insertion_bonus_favours_longer_outputs():
    # [1]: .27 + .03 + .06 = .36 against [1, 2]: .6 * .45 = .27
    lp = table([[.3, .6, .1], [.45, .1, .45]])
    assert ctc_prefix_beam_search(lp, beam_size=8)[0][0] == [1]
    (labels, score), *_ = ctc_prefix_beam_search(lp, beam_size=8, insertion_bonus=1.0)
    assert labels == [1, 2] and score == pytest.approx(math.log(.27) + 2.0, abs=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: ctc_prefix_beam_search(torch.zeros(1, 4, 3)), r"expected log_probs of shape \(T, V\), got \(1, 4, 3\)"),
    (lambda: ctc_prefix_beam_search(torch.zeros(4, 3), beam_size=0), "beam_size must be at least 1, got 0"),
    (lambda: ctc_prefix_beam_search(torch.zeros(4, 3), blank=3), r"blank must be a label id in 0\.\.2"),
    (lambda: ctc_prefix_beam_search(torch.zeros(4, 3), blank=-1), r"blank must be a label id in 0\.\.2"),
    (lambda: ctc_prefix_beam_search(torch.zeros(2, 3), lm=HistoryBigram([[.5, .5]] * 2), lm_weight=1.0),
     r"PrefixScorer.log_probs: expected a tensor of shape \(V,\) = \(3,\), got \(2,\)"),
    (lambda: ctc_greedy(torch.zeros(4, 3), torch.tensor([4])), r"expected log_probs of shape \(B, T, V\)"),
    (lambda: ctc_greedy(torch.zeros(2, 4, 3), torch.tensor([4])), r"expected lengths of shape \(B,\) = \(2,\)"),
    (lambda: ctc_greedy(torch.zeros(2, 4, 3), torch.tensor([4, 5])), r"lengths must lie in 0\.\.T = 0\.\.4"),
    (lambda: ctc_greedy(torch.zeros(2, 4, 3), torch.tensor([4, 1]), blank=3), "blank must be a label id"),
])
def test_bad_inputs_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
