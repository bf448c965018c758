import math
import random

import numpy as np
import pytest

from rnnkit.errors import DataError
from rnnkit.models.ngram import KneserNey

V = 20


def structured_corpus(n: int = 3000, seed: int = 0) -> list[int]:
    """Ids 0..17 of a vocabulary of 20 (18 and 19 never occur): a noisy
    second-order Markov chain, so every order sees a mix of counts."""
    rng = random.Random(seed)
    toks = [0, 1]
    for _ in range(n - 2):
        if rng.random() < 0.7:
            toks.append((toks[-1] + 2 * toks[-2]) % 18)
        else:
            toks.append(rng.randrange(18))
    return toks


def total_prob(lm: KneserNey, context: tuple[int, ...]) -> float:
    return sum(math.exp(lm.log_prob(context, w)) for w in range(lm.vocab_size))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("kwargs", [{}, {"modified": False}, {"discount": 0.8, "modified": False}])
def test_every_contexts_distribution_sums_to_one(order, kwargs):
    toks = structured_corpus()
    lm = KneserNey(order, **kwargs).fit(toks, V)
    rng = random.Random(1)
    contexts = [(), (18,), (19, 18, 19), tuple(toks[:3]), tuple(toks[-3:])]  # unseen, start, end
    contexts += [tuple(toks[i:i + rng.randrange(1, 5)]) for i in rng.sample(range(len(toks) - 5), 8)]
    contexts += [tuple(rng.randrange(V) for _ in range(rng.randrange(1, 5))) for _ in range(8)]
    for context in contexts:
        assert total_prob(lm, context) == pytest.approx(1.0, abs=1e-9), context


def test_bigram_probabilities_equal_a_hand_computation():
    # Stream "a b a b c" = 0 1 0 1 2, V = 4 (id 3 never occurs), plain KN.
    lm = KneserNey(order=2, modified=False).fit([0, 1, 0, 1, 2], vocab_size=4)
    # Bigram raw counts: (0,1): 2, (1,0): 1, (1,2): 1 -> n1 = 2, n2 = 1, D = 2 / (2 + 2) = 0.5.
    # Unigram continuation counts (distinct left neighbours; the stream start is one):
    # 0: {start, 1} = 2, 1: {0} = 1, 2: {1} = 1 -> n1 = 2, n2 = 1, D = 0.5 again.
    assert lm.discounts == [(0.5,) * 3, (0.5,) * 3]
    assert lm.num_ngrams == [3, 3]
    # Unigram: total 4, three types, so gamma() = 0.5 * 3 / 4 and each token gets gamma() / V on top.
    uniform = 0.5 * 3 / 4 / 4
    p1 = {0: (2 - 0.5) / 4 + uniform, 1: (1 - 0.5) / 4 + uniform,
          2: (1 - 0.5) / 4 + uniform, 3: uniform}
    assert p1 == {0: 0.46875, 1: 0.21875, 2: 0.21875, 3: 0.09375}
    # After 1: c(1 .) = 2 over two types (0 and 2), so gamma(1) = 0.5 * 2 / 2.
    p_after_1 = {w: max((w in (0, 2)) - 0.5, 0) / 2 + 0.5 * p1[w] for w in range(4)}
    # After 0: c(0 .) = 2, all on 1, so gamma(0) = 0.5 * 1 / 2.
    p_after_0 = {w: max(2 * (w == 1) - 0.5, 0) / 2 + 0.25 * p1[w] for w in range(4)}
    assert p_after_1[0] == 0.484375 and p_after_0[1] == 0.8046875
    for w in range(4):
        assert lm.log_prob((1,), w) == pytest.approx(math.log(p_after_1[w]), abs=1e-12)
        assert lm.log_prob((0,), w) == pytest.approx(math.log(p_after_0[w]), abs=1e-12)
        assert lm.log_prob((), w) == pytest.approx(math.log(p1[w]), abs=1e-12)
        # 2 is seen only at the stream's end (never followed) and 3 never: full backoff.
        assert lm.log_prob((2,), w) == pytest.approx(math.log(p1[w]), abs=1e-12)
        assert lm.log_prob((3,), w) == pytest.approx(math.log(p1[w]), abs=1e-12)
        # Only the last order - 1 = 1 context tokens count.
        assert lm.log_prob((2, 2, 0), w) == lm.log_prob((0,), w)


def test_modified_discounts_equal_a_hand_computation():
    # Order 1 uses raw counts: ids 0-3 once (n1 = 4), 4-5 twice (n2 = 2),
    # 6 three times (n3 = 1), 7 four times (n4 = 1); 8 and 9 never; total 15.
    toks = [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 7, 7, 7, 7]
    lm = KneserNey(order=1).fit(toks, vocab_size=10)
    # Y = 4 / (4 + 2 * 2) = 0.5; D1 = 1 - 2 * 0.5 * 2 / 4; D2 = 2 - 3 * 0.5 * 1 / 2; D3+ = 3 - 4 * 0.5 * 1 / 1.
    assert lm.discounts == [(0.5, 1.25, 1.0)]
    gamma = (0.5 * 4 + 1.25 * 2 + 1.0 * 2) / 15
    expected = {0: (1 - 0.5) / 15, 4: (2 - 1.25) / 15, 6: (3 - 1.0) / 15, 7: (4 - 1.0) / 15, 9: 0.0}
    for w, p in expected.items():
        assert lm.log_prob((5, 5), w) == pytest.approx(math.log(p + gamma / 10), abs=1e-12)


def test_higher_order_helps_on_structured_stream():
    # After 0 the next token is 1, 2 or 3 (a bigram cannot tell which), but the
    # token before the 0 decides it: a trigram predicts the stream almost perfectly.
    pattern = [0, 1, 0, 2, 0, 3]
    train, test = pattern * 200, pattern * 20
    ppl = {n: KneserNey(n).fit(train, 6).evaluate(test)["perplexity"] for n in (1, 2, 3)}
    assert ppl[1] > 3.0  # about exp(0.5 ln 2 + 0.5 ln 6) = 3.46
    assert 1.6 < ppl[2] < 2.0  # about exp(0.5 ln 3) = 1.73
    assert ppl[3] < 1.05


def test_evaluate_scores_each_token_from_its_stream_history():
    toks = structured_corpus(500)
    lm = KneserNey(3).fit(toks, V)
    test = structured_corpus(60, seed=5) + [19, 3]
    logps = [lm.log_prob(tuple(test[max(0, i - 2):i]), test[i]) for i in range(1, len(test))]
    result = lm.evaluate(np.array(test))
    assert result["tokens"] == len(test) - 1
    assert result["loss"] == pytest.approx(-sum(logps) / len(logps), rel=1e-12)
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert result["bpc"] == pytest.approx(result["loss"] / math.log(2))


def test_unseen_token_has_positive_probability():
    toks = structured_corpus(500)
    lm = KneserNey(3).fit(toks, V)
    for context in [(), tuple(toks[:2]), (18, 19)]:
        for w in (18, 19):
            assert math.isfinite(lm.log_prob(context, w))
            assert lm.log_prob(context, w) < lm.log_prob(context, toks[0])


def test_fixed_discount_is_used_at_every_order():
    lm = KneserNey(3, discount=0.75, modified=False).fit(structured_corpus(200), V)
    assert lm.discounts == [(0.75,) * 3] * 3


@pytest.mark.parametrize("kwargs, match", [
    ({"order": 0}, "order must be an integer >= 1, got 0"),
    ({"order": 2.5}, "order must be an integer >= 1, got 2.5"),
    ({"discount": 1.5, "modified": False}, r"discount must be in \(0, 1\], got 1.5"),
    ({"discount": 0.5}, "pass modified=False"),
])
def test_bad_settings_are_refused_with_the_accepted_range(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KneserNey(**kwargs)


@pytest.mark.parametrize("tokens, vocab_size, match", [
    ([], 5, "expected at least 1 token"),
    ([0, 1, 5, 2], 5, r"token id 5 at position 2 is outside the vocabulary \[0, 5\)"),
    ([0, -1], 5, "token id -1 at position 1"),
    ([0.0, 1.0], 5, "expected integer token ids, got dtype float64"),
    ([[0, 1], [1, 0]], 5, r"expected a 1-D stream of token ids, got shape \(2, 2\)"),
])
def test_bad_training_data_is_refused_with_its_position(tokens, vocab_size, match):
    with pytest.raises(DataError, match=match):
        KneserNey(2).fit(tokens, vocab_size)


def test_queries_before_fit_or_outside_the_vocabulary_are_refused():
    with pytest.raises(RuntimeError, match="call fit"):
        KneserNey(2).evaluate([0, 1])
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1, got 0"):
        KneserNey(2).fit([0], 0)
    lm = KneserNey(2).fit([0, 1, 2], 3)
    with pytest.raises(DataError, match="token id 3 at position 1"):
        lm.log_prob((0,), 3)
    with pytest.raises(DataError, match="token id 7 at position 0"):
        lm.log_prob((7,), 0)
    with pytest.raises(DataError, match="expected at least 2 token"):
        lm.evaluate([1])
    with pytest.raises(DataError, match="outside the vocabulary"):
        lm.evaluate([0, 1, 3])
