import itertools
import random
from collections import defaultdict

import numpy as np
import pytest
import torch

from rnnkit.data.words import WordTokenizer
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.glove import (
    GloVe,
    analogy,
    cooccurrence,
    embedding_from_vectors,
    fit_glove,
    load_vectors,
    nearest,
    save_vectors,
    train_glove,
    weighting,
)


def reference_cooccurrence(ids, window, symmetric):
    """X as a dict, by the definition: for each token, 1/d for each token d before it."""
    x = defaultdict(float)
    for t in range(len(ids)):
        for d in range(1, window + 1):
            if t - d >= 0:
                x[ids[t], ids[t - d]] += 1.0 / d
                if symmetric:
                    x[ids[t - d], ids[t]] += 1.0 / d
    return dict(x)


def as_dict(rows, cols, values):
    return {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, values)}


# ---- co-occurrence ----------------------------------------------------------------------

def test_cooccurrence_equals_a_hand_count():
    # stream a b c a (ids 0 1 2 0), window 2: left pairs (b,a) 1, (c,b) 1, (a,c) 1 at d = 1,
    # (c,a) 1/2, (a,b) 1/2 at d = 2; the two a's are 3 apart
    rows, cols, values = cooccurrence(np.array([0, 1, 2, 0]), 3, window=2)
    assert as_dict(rows, cols, values) == {(0, 1): 1.5, (1, 0): 1.5, (0, 2): 1.5, (2, 0): 1.5,
                                           (1, 2): 1.0, (2, 1): 1.0}
    assert rows.dtype == cols.dtype == np.int64
    # sorted by (row, col)
    assert list(zip(rows.tolist(), cols.tolist())) == sorted(zip(rows.tolist(), cols.tolist()))
    # left context only: X[i, j] sums 1/d over the j that come d before an i
    assert as_dict(*cooccurrence(np.array([0, 1, 2, 0]), 3, window=2, symmetric=False)) == {
        (1, 0): 1.0, (2, 1): 1.0, (0, 2): 1.0, (2, 0): 0.5, (0, 1): 0.5}
    # window 3 reaches the pair (a, a) at d = 3, counted from both sides as glove.c does
    assert as_dict(*cooccurrence(np.array([0, 1, 2, 0]), 3, window=3))[0, 0] == pytest.approx(2 / 3)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("window", [1, 3, 10])
def test_cooccurrence_matches_definition(symmetric, window):
    rng = random.Random(window)
    ids = [rng.randrange(7) for _ in range(60)]
    got = as_dict(*cooccurrence(np.array(ids), 7, window, symmetric))
    want = reference_cooccurrence(ids, window, symmetric)
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(want[k], rel=1e-12) for k in want)


def test_cooccurrence_of_short_streams_and_bad_ids():
    assert all(len(a) == 0 for a in cooccurrence(np.array([3]), 5))
    assert all(len(a) == 0 for a in cooccurrence(np.zeros(0, np.int64), 5))
    # a window longer than the stream counts every pair once
    assert as_dict(*cooccurrence(np.array([0, 1]), 2, window=50)) == {(0, 1): 1.0, (1, 0): 1.0}
    with pytest.raises(DataError, match=r"ids must lie in \[0, 3\), got \[0, 3\]"):
        cooccurrence(np.array([0, 3]), 3)
    with pytest.raises(DataError, match="1-D stream of integer ids"):
        cooccurrence(np.array([0.0, 1.0]), 3)
    with pytest.raises(ConfigError, match="window must be at least 1; got 0"):
        cooccurrence(np.array([0, 1]), 3, window=0)


# ---- model, gradients, AdaGrad ------------------------------------------------------------

def test_weighting_is_x_over_x_max_to_the_alpha_capped_at_one():
    x = torch.tensor([1.0, 50.0, 99.0, 100.0, 1000.0], dtype=torch.float64)
    want = [0.01 ** 0.75, 0.5 ** 0.75, 0.99 ** 0.75, 1.0, 1.0]
    assert weighting(x).tolist() == pytest.approx(want, rel=1e-12)
    assert weighting(torch.tensor([5.0]), x_max=10, alpha=1.0).item() == pytest.approx(0.5)


def random_pairs(num_pairs, vocab_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(vocab_size, (num_pairs,), generator=g)  # with repeats: gradients must add up
    cols = torch.randint(vocab_size, (num_pairs,), generator=g)
    counts = torch.rand(num_pairs, generator=g, dtype=torch.float64) * 300 + 0.1  # both sides of x_max
    return rows, cols, counts


def test_forward_is_the_glove_loss():
    model = GloVe(6, 4, generator=torch.Generator().manual_seed(0)).double()
    rows, cols, counts = random_pairs(9, 6)
    pred, loss = model(rows, cols, counts)
    for k in range(9):
        i, j = rows[k], cols[k]
        want = model.weight[i] @ model.context_weight[j] + model.bias[i] + model.context_bias[j]
        assert pred[k].item() == pytest.approx(want.item(), rel=1e-12)
    f = torch.clamp(counts / 100, max=1) ** 0.75
    assert loss.item() == pytest.approx((f * (pred - counts.log()) ** 2).sum().item(), rel=1e-12)


def test_pair_gradients_match_autograd():
    model = GloVe(6, 4, generator=torch.Generator().manual_seed(1)).double()
    rows, cols, counts = random_pairs(40, 6, seed=1)
    _, loss = model(rows, cols, counts)
    loss.backward()
    hand_loss, (dw, dwc, db, dbc) = model.pair_gradients(rows, cols, counts)
    assert hand_loss.item() == pytest.approx(loss.item(), rel=1e-12)
    for param, pair_grads, index in ((model.weight, dw, rows), (model.context_weight, dwc, cols),
                                     (model.bias, db, rows), (model.context_bias, dbc, cols)):
        summed = torch.zeros_like(param).index_add_(0, index, pair_grads)
        torch.testing.assert_close(summed, param.grad, rtol=1e-12, atol=1e-12)


def test_fit_equals_torch_adagrad_when_words_in_a_batch_are_distinct():
    # each word in one pair as a row and in one as a column: the per-pair steps are then
    # exactly torch.optim.Adagrad's on the batch's J
    v = 8
    g = torch.Generator().manual_seed(2)
    rows, cols = torch.randperm(v, generator=g), torch.randperm(v, generator=g)
    counts = torch.rand(v, generator=g, dtype=torch.float64) * 200 + 0.5
    ours = GloVe(v, 5, generator=torch.Generator().manual_seed(3)).double()
    oracle = GloVe(v, 5, generator=torch.Generator().manual_seed(3)).double()
    fit_glove(ours, rows, cols, counts, epochs=4, batch_size=v, lr=0.05)
    opt = torch.optim.Adagrad(oracle.parameters(), lr=0.05, eps=1e-10)
    for _ in range(4):
        opt.zero_grad()
        oracle(rows, cols, counts)[1].backward()
        opt.step()
    for a, b in zip(ours.parameters(), oracle.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_a_word_in_two_pairs_of_a_batch_takes_both_steps():
    # s gets both squares first (2g²), then each pair steps lr g / √(2g²): √2 times the
    # single pair's first step lr g / √(g²)
    model = GloVe(4, 3, generator=torch.Generator().manual_seed(0)).double()
    rows, cols, counts = torch.tensor([1]), torch.tensor([2]), torch.tensor([7.0], dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    once = GloVe(4, 3).double()
    once.load_state_dict(model.state_dict())
    fit_glove(once, rows, cols, counts, epochs=1)
    fit_glove(model, rows.repeat(2), cols.repeat(2), counts.repeat(2), epochs=1, batch_size=2)
    for b, p1, p2 in zip(before, once.parameters(), model.parameters()):
        torch.testing.assert_close(p2 - b, 2 ** 0.5 * (p1 - b), rtol=1e-6, atol=1e-15)  # ε aside
    moved = [(p1 - b).abs().sum(-1) if p1.dim() == 2 else (p1 - b).abs() for b, p1 in zip(before, once.parameters())]
    assert moved[0].nonzero().flatten().tolist() == [1] and moved[1].nonzero().flatten().tolist() == [2]


def test_fit_lowers_the_cost_and_checks_its_input():
    rows, cols, counts = random_pairs(200, 15, seed=4)
    model = GloVe(15, 8, generator=torch.Generator().manual_seed(0))
    history = fit_glove(model, rows, cols, counts, epochs=30, batch_size=32)
    assert len(history) == 30
    assert history[-1] < 0.1 * history[0]
    assert all(b <= a * 1.05 for a, b in itertools.pairwise(history))
    with pytest.raises(DataError, match="counts must be positive"):
        fit_glove(model, rows, cols, torch.zeros(200), epochs=1)
    with pytest.raises(DataError, match=r"cols must lie in \[0, 15\)"):
        fit_glove(model, rows, cols + 1, counts, epochs=1)
    with pytest.raises(DataError, match="no co-occurring pairs"):
        fit_glove(model, [], [], [], epochs=1)


# ---- training on a corpus -----------------------------------------------------------------

CLASSES = [  # twins, their left contexts, their right contexts
    (("cat", "dog"), ("feed", "pet", "wash"), ("sleeps", "barks", "eats")),
    (("car", "truck"), ("drive", "park", "fix"), ("stalls", "honks", "speeds")),
    (("apples", "pears"), ("peel", "slice", "buy"), ("ripen", "rot", "fall")),
    (("shirt", "coat"), ("iron", "fold", "wear"), ("shrinks", "tears", "fades")),
]


def synthetic_corpus(n_lines=3000, seed=0):
    """Lines "left the x and y right" with x, y twins of one class. Twins share
    every context; 40 % of the time a left or right word comes from any
    class, so counts vary and the other words have contexts of their own."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        twins, left, right = rng.choice(CLASSES)
        left = rng.choice(CLASSES)[1] if rng.random() < 0.4 else left
        right = rng.choice(CLASSES)[2] if rng.random() < 0.4 else right
        lines.append(f"{rng.choice(left)} the {rng.choice(twins)} and {rng.choice(twins)} {rng.choice(right)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained():
    text = synthetic_corpus()
    tok = WordTokenizer.fit(text)
    # lr 0.2: the toy has ~900 pairs of large counts, and AdaGrad's steps at the paper's 0.05
    # shrink before the vectors have left their common starting direction
    vectors = train_glove(tok.encode(text), tok.vocab_size, dim=10, window=2, epochs=60, batch_size=32, lr=0.2)
    return vectors, tok.words


def test_words_in_the_same_contexts_are_nearest_neighbours(trained):
    vectors, words = trained
    assert vectors.shape == (len(words), 10) and vectors.dtype == np.float32
    for twins, _, _ in CLASSES:
        for a, b in (twins, twins[::-1]):
            (first, cos), (_, second) = nearest(vectors, words, a, k=2)
            assert first == b and cos > second + 0.01  # 96 of 96 twins first over 12 seeds, margin >= 0.018


def test_train_glove_is_deterministic_per_seed():
    text = synthetic_corpus(100)
    tok = WordTokenizer.fit(text)
    ids = tok.encode(text)
    a, b = (train_glove(ids, tok.vocab_size, dim=4, epochs=2, seed=5) for _ in range(2))
    c = train_glove(ids, tok.vocab_size, dim=4, epochs=2, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# ---- using the vectors --------------------------------------------------------------------

WORDS = ["man", "woman", "king", "queen", "apple"]
VECTORS = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [-1, 0.2, 0]], dtype=np.float32)


def test_nearest_ranks_by_cosine_without_the_query():
    got = nearest(VECTORS, WORDS, "queen", k=3)
    assert [w for w, _ in got] == ["woman", "king", "man"]  # woman and king tie at 2/√6: vocabulary order
    assert got[0][1] == pytest.approx(2 / 6 ** 0.5) and got[2][1] == pytest.approx(1 / 3 ** 0.5)
    assert len(nearest(VECTORS, WORDS, "man", k=100)) == 4
    with pytest.raises(DataError, match="'prince' is not in the vocabulary"):
        nearest(VECTORS, WORDS, "prince")


def test_analogy_answers_queen_by_cosine_and_never_a_query_word():
    (best, cos), *_ = analogy(VECTORS, WORDS, "man", "woman", "king")
    unit = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    target = unit[1] - unit[0] + unit[2]
    assert best == "queen" and cos == pytest.approx(unit[3] @ target / np.linalg.norm(target))
    assert all(w not in ("man", "woman", "king") for w, _ in analogy(VECTORS, WORDS, "man", "woman", "king", k=5))


def test_vectors_file_round_trips_exactly_and_refuses_words_with_spaces(tmp_path):
    words = ["<unk>", "<eos>", "don't", "café", "N", "$"]
    vectors = (np.random.default_rng(0).normal(size=(6, 7)) * 10.0 ** np.arange(-3, 4)).astype(np.float32)
    path = tmp_path / "vectors.txt"
    save_vectors(path, vectors, words)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and lines[3].split(" ")[0] == "café" and len(lines[3].split(" ")) == 8
    got, got_words = load_vectors(path)
    assert got_words == words
    np.testing.assert_array_equal(got, vectors)  # exactly: nine significant digits hold a float32
    with pytest.raises(DataError, match="'new york' is empty or holds whitespace"):
        save_vectors(tmp_path / "bad.txt", vectors[:1], ["new york"])


def test_load_vectors_reads_word2vec_headers_and_words_with_spaces(tmp_path):
    # a word2vec header line, and a word that holds a space (some of Stanford's files have them)
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\nthe 0.5 -1 2\nat&t inc. 1 2 3\n", encoding="utf-8")
    vectors, words = load_vectors(path)
    assert words == ["the", "at&t inc."]
    np.testing.assert_array_equal(vectors, [[0.5, -1, 2], [1, 2, 3]])
    path.write_text("the 0.5 -1 2\nof 1 2\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2 has 2 numbers, expected a word and 3"):
        load_vectors(path)


def test_embedding_from_vectors_fills_found_rows(tmp_path):
    file_words = ["the", "cat", "<eos>", "sat"]
    file_vectors = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    vocabulary = ["<unk>", "<eos>", "the", "dog", "sat"]
    weight, found = embedding_from_vectors((file_vectors, file_words), vocabulary, 3, std=0.01)
    assert found == 3 and weight.shape == (5, 3) and weight.dtype == torch.float32
    for row, word in ((1, "<eos>"), (2, "the"), (4, "sat")):
        assert torch.equal(weight[row], torch.from_numpy(file_vectors[file_words.index(word)]))
    for row in (0, 3):  # missing: small and random, not a copy of anything
        assert 0 < weight[row].abs().max() < 0.1
    assert not torch.equal(weight[0], weight[3])
    # from a dict, and through the file format
    by_dict, n = embedding_from_vectors(dict(zip(file_words, file_vectors)), vocabulary, 3, std=0.01)
    assert n == 3 and torch.equal(by_dict, weight)
    save_vectors(tmp_path / "v.txt", file_vectors, file_words)
    assert torch.equal(embedding_from_vectors(load_vectors(tmp_path / "v.txt"), vocabulary, 3, std=0.01)[0], weight)
    # it fits an nn.Embedding of the vocabulary
    emb = torch.nn.Embedding(5, 3)
    emb.weight.data.copy_(weight)
    with pytest.raises(DataError, match=r"expected vectors of shape \(4,\), got \(3,\)"):
        embedding_from_vectors((file_vectors, file_words), vocabulary, 4)


def test_embedding_from_vectors_default_scale():
    vectors = np.random.default_rng(1).normal(scale=0.4, size=(200, 16)).astype(np.float32)
    words = [f"w{i}" for i in range(200)]
    weight, found = embedding_from_vectors((vectors, words), ["unknown"] * 500, 16)
    assert found == 0
    assert weight.std().item() == pytest.approx(float(vectors.std()), rel=0.05)
