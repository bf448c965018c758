"""GloVe word vectors (Pennington, Socher & Manning 2014, "GloVe: Global
Vectors for Word Representation"), written out in torch: co-occurrence
counts, the weighted least-squares model, its AdaGrad training, and the
tools around the vectors (neighbours, analogies, the GloVe text format, an
embedding matrix for a model's vocabulary).

Co-occurrence (the paper's section 4.2). X_ij sums, over every occurrence
of word i, 1/d for each occurrence of word j at distance d = 1..window::

    X_ij = Σ_{t, d : x_t = i, x_{t-d} = j, 1 <= d <= window} 1/d    (left context)
    X    = A + Aᵀ  with A the left-context counts                    (symmetric)

Model and loss (eq. 8 and 9). Word vectors w_i and context vectors w̃_j (E
each), biases b_i and b̃_j, over the nonzero X_ij only (log 0 is undefined)::

    J = Σ_{ij : X_ij > 0} f(X_ij) (w_iᵀ w̃_j + b_i + b̃_j - log X_ij)²
    f(x) = (x / x_max)^α  if x < x_max,  else 1          (x_max = 100, α = 3/4)

Training: AdaGrad (Duchi et al. 2011) at rate 0.05 over the nonzero pairs in
a new random order each epoch, one step per pair, in minibatches
(:func:`fit_glove`), with the gradients written out by hand
(:meth:`GloVe.pair_gradients`).

The vectors used afterwards are W + W̃ (section 4.2: the sum is slightly
better than W alone, and W and W̃ are equivalent when X is symmetric).

Shapes: V vocabulary, E vector size (``embedding_dim``), N pairs in a batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError, DataError, TrainingError


def cooccurrence(ids, vocab_size: int, window: int = 10,
                 symmetric: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero co-occurrence counts of one stream of token ids, weighted
    1/d at distance d (module docstring), as triplets sorted by (row, col).

    Args:
        ids: (T,) token ids in [0, vocab_size), one stream (sentences joined
            with ``<eos>``; windows run across that token as across any other).
        window: the largest distance d counted.
        symmetric: count the context on both sides (X = A + Aᵀ, GloVe's
            default); otherwise the left context only: X_ij sums 1/d over
            each j that comes d tokens before an i.

    Returns:
        (rows (P,) int64, cols (P,) int64, values (P,) float64) with P the
        number of nonzero X_ij. A word pair with itself (i = j at distance d)
        counts twice in the symmetric case, once from each side, as in
        GloVe's ``cooccur.c``.

    Every occurrence of a pair becomes one int64 code, sorted then summed:
    about 3 x 8 bytes for each of the 2 x window x T occurrences at the peak
    (about 400 MB for Penn Treebank's 0.93 M tokens at window 10), a few seconds.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"cooccurrence: expected a 1-D stream of integer ids, got shape {ids.shape} "
                        f"of {ids.dtype}")
    if window < 1:
        raise ConfigError(f"window must be at least 1; got {window}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise DataError(f"cooccurrence: ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    ids, bits = ids.astype(np.int64), window.bit_length()
    if vocab_size * vocab_size << bits >= 1 << 63:
        raise ConfigError(f"cooccurrence: vocab_size {vocab_size:,} with window {window} is too large "
                          "to key the pairs in 64 bits")
    # one int64 code per occurrence of a pair: (row * V + col) << bits | d. NumPy's sort of plain
    # integers is several times faster than an argsort, and the distance rides along in the code
    codes = []
    for d in range(1, min(window, ids.size - 1) + 1):
        later, earlier = ids[d:], ids[:-d]
        codes.append((later * vocab_size + earlier) << bits | d)
        if symmetric:  # the right context: the same pair seen from the earlier word
            codes.append((earlier * vocab_size + later) << bits | d)
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    codes = np.concatenate(codes)
    codes.sort()
    inverse_distance = np.r_[0.0, 1.0 / np.arange(1, 1 << bits)]  # 1/d at index d
    weights = inverse_distance[codes & ((1 << bits) - 1)]
    keys = np.right_shift(codes, bits, out=codes)  # in place: the codes are the largest arrays here
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    rows, cols = np.divmod(keys[starts], vocab_size)
    return rows, cols, np.add.reduceat(weights, starts)


def weighting(x: Tensor, x_max: float = 100.0, alpha: float = 0.75) -> Tensor:
    """f(x) = (x / x_max)^α for counts x of any shape, capped at 1 from x_max on (eq. 9): rare pairs,
    whose counts are noisy, weigh less; frequent ones do not dominate."""
    return (x / x_max).pow(alpha).clamp(max=1.0)


class GloVe(nn.Module):
    """The GloVe model: ``forward(rows, cols, counts) -> (prediction, loss)``
    for the pairs (rows[k], cols[k]) with counts X (N,) > 0::

        prediction_k = w_{rows[k]}ᵀ w̃_{cols[k]} + b_{rows[k]} + b̃_{cols[k]}     (N,)
        loss = Σ_k f(X_k) (prediction_k - log X_k)²                            ()

    The loss is a sum, as J is: a minibatch's loss is its part of J.

    Parameters (initialised uniform in ±0.5 / E, as GloVe's ``glove.c``):
        ``weight`` W (V, E), ``context_weight`` W̃ (V, E), ``bias`` b (V,),
        ``context_bias`` b̃ (V,).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, x_max: float = 100.0, alpha: float = 0.75,
                 generator: torch.Generator | None = None):
        super().__init__()
        if vocab_size < 1 or embedding_dim < 1:
            raise ConfigError(f"GloVe: vocab_size and embedding_dim must be at least 1; "
                              f"got {vocab_size} and {embedding_dim}")
        if x_max <= 0 or alpha < 0:
            raise ConfigError(f"GloVe: expected x_max > 0 and alpha >= 0; got {x_max} and {alpha}")
        self.vocab_size, self.embedding_dim, self.x_max, self.alpha = vocab_size, embedding_dim, x_max, alpha
        scale = 0.5 / embedding_dim

        def uniform(*shape):
            return nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * scale)

        self.weight, self.context_weight = uniform(vocab_size, embedding_dim), uniform(vocab_size, embedding_dim)
        self.bias, self.context_bias = uniform(vocab_size), uniform(vocab_size)

    def forward(self, rows: Tensor, cols: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """rows, cols (N,) word and context ids, counts X (N,) -> (prediction (N,), loss ()) as the class docstring
        writes them."""
        pred = ((self.weight[rows] * self.context_weight[cols]).sum(-1)  # (N,)
                + self.bias[rows] + self.context_bias[cols])
        err = pred - counts.log()
        return pred, (weighting(counts, self.x_max, self.alpha) * err * err).sum()

    @torch.no_grad()
    def pair_gradients(self, rows: Tensor, cols: Tensor, counts: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The loss of ``forward`` and its gradients by hand, one row per pair::

            e_k = prediction_k - log X_k,   g_k = 2 f(X_k) e_k
            ∂J/∂w_i = Σ_{k: rows[k] = i} g_k w̃_{cols[k]}    ∂J/∂b_i = Σ_{k: rows[k] = i} g_k
            ∂J/∂w̃_j = Σ_{k: cols[k] = j} g_k w_{rows[k]}    ∂J/∂b̃_j = Σ_{k: cols[k] = j} g_k

        Returns (loss, (dW (N, E), dW̃ (N, E), db (N,), db̃ (N,))), the terms
        of the sums before they are added up per word (``index_add_`` of
        dW over rows gives the gradient of ``weight``, and so on): training
        updates only the words in the batch, where autograd would build
        dense (V, E) gradients.
        """
        # index_select: several times faster than advanced indexing on CPU
        w, wc = self.weight.index_select(0, rows), self.context_weight.index_select(0, cols)  # (N, E)
        err = ((w * wc).sum(-1) + self.bias.index_select(0, rows) + self.context_bias.index_select(0, cols)
               - counts.log())  # (N,)
        fe = weighting(counts, self.x_max, self.alpha) * err
        g = 2 * fe
        return (fe * err).sum(), (g[:, None] * wc, g[:, None] * w, g, g)

    @torch.no_grad()
    def vectors(self) -> Tensor:
        """W + W̃ (V, E), the paper's word vectors."""
        return self.weight + self.context_weight


def _adagrad(param: Tensor, sum_sq: Tensor, index: Tensor, grads: Tensor, lr: float, eps: float = 1e-10) -> None:
    """AdaGrad on the rows ``index`` (N,) of ``param``, one gradient g (N, ...)
    per pair: s += g² for every pair, then θ -= lr g / (√s + ε) for every
    pair, so a word in several pairs of the batch takes each pair's step."""
    sum_sq.index_add_(0, index, grads * grads)
    # the source scaled here, not by index_add_'s alpha: alpha takes a path several times slower
    param.index_add_(0, index, grads.div(sum_sq.index_select(0, index).sqrt_().add_(eps)).mul_(-lr))


@torch.no_grad()
def fit_glove(model: GloVe, rows, cols, counts, epochs: int = 15, batch_size: int = 4096, lr: float = 0.05,
              seed: int = 0, log: Callable[[str], None] | None = None) -> list[float]:
    """Train ``model`` on the pairs (rows, cols) with counts X > 0 (from
    :func:`cooccurrence`): each epoch visits every pair once, in a new random
    order (``seed``), ``batch_size`` pairs at a time, with AdaGrad (Duchi et
    al. 2011) at rate ``lr`` (0.05 in the paper), one step per pair as in the
    paper's stochastic training. For each parameter θ in w_i, w̃_j, b_i, b̃_j
    of a pair, with g its gradient from :meth:`GloVe.pair_gradients`::

        s_θ += g²,   θ -= lr g / (√s_θ + ε)          (s_θ starts at 0, ε = 1e-10)

    Within a batch every pair reads the parameters from before the batch
    (as ``glove.c``'s threads read them without locks), the squares of all
    its pairs are added to s, then each pair's step; with distinct words in
    a batch this is exactly ``torch.optim.Adagrad`` on the batch's J. Only
    the words of a batch move.

    Returns the cost of each epoch, the mean f(X)(prediction - log X)² per
    pair, measured as the epoch goes (each batch before its update); ``log``
    gets one line per epoch (``glove.c`` prints half this cost).

    Deviation from the authors' ``glove.c``: its sums start at 1 and add
    (lr g)², so it steps θ -= g / √(1/lr² + Σ_past g²): plain SGD at rate lr
    while the sum is small, AdaGrad at rate 1 once it is large. On Penn
    Treebank (``benchmarks/glove.py``) that rule ended at a higher cost and
    scored worse on word similarity and analogies than the AdaGrad here
    (benchmarks/NOTEBOOK.md, "GloVe word vectors").
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ConfigError(f"fit_glove: expected epochs >= 0, batch_size >= 1 and lr > 0; "
                          f"got {epochs}, {batch_size} and {lr}")
    dtype = model.weight.dtype
    rows, cols = torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
    counts = torch.as_tensor(counts).to(dtype)
    if not (rows.shape == cols.shape == counts.shape and rows.dim() == 1):
        raise DataError(f"fit_glove: expected rows, cols and counts of one shape (P,), got "
                        f"{tuple(rows.shape)}, {tuple(cols.shape)} and {tuple(counts.shape)}")
    if len(counts) == 0:
        raise DataError("fit_glove: no co-occurring pairs to train on (is the corpus shorter than 2 tokens?)")
    if (counts <= 0).any():
        raise DataError("fit_glove: counts must be positive (the loss takes log X)")
    for name, ids in (("rows", rows), ("cols", cols)):
        if ids.min() < 0 or ids.max() >= model.vocab_size:
            raise DataError(f"fit_glove: {name} must lie in [0, {model.vocab_size}), "
                            f"got [{ids.min()}, {ids.max()}]")
    params = (model.weight, model.context_weight, model.bias, model.context_bias)
    sums = [torch.zeros_like(p) for p in params]
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(counts), generator=gen)
        for first in range(0, len(order), batch_size):
            batch = order[first:first + batch_size]
            i, j = rows.index_select(0, batch), cols.index_select(0, batch)
            loss, grads = model.pair_gradients(i, j, counts.index_select(0, batch))
            total += loss.item()
            for p, s_sq, index, g in zip(params, sums, (i, j, i, j), grads):
                _adagrad(p.data, s_sq, index, g, lr)
        cost = total / len(counts)
        if not math.isfinite(cost):
            raise TrainingError(f"fit_glove: the cost became {cost} in epoch {epoch + 1}; lower lr")
        history.append(cost)
        if log is not None:
            log(f"glove epoch {epoch + 1}/{epochs}: cost {cost:.4f} ({time.perf_counter() - start:.1f} s)")
    return history


def train_glove(ids, vocab_size: int, dim: int = 100, window: int = 10, epochs: int = 15,
                x_max: float = 100.0, alpha: float = 0.75, batch_size: int = 4096, lr: float = 0.05,
                seed: int = 0, symmetric: bool = True, log: Callable[[str], None] | None = None) -> np.ndarray:
    """GloVe vectors (V, dim) float32 for the token stream ``ids``: counts
    (:func:`cooccurrence`), a :class:`GloVe` model seeded by ``seed``,
    :func:`fit_glove`, then W + W̃. Words that never occur keep their
    small random initial vectors."""
    start = time.perf_counter()
    rows, cols, values = cooccurrence(ids, vocab_size, window, symmetric)
    if log is not None:
        log(f"glove: {len(values):,} nonzero co-occurrences of {vocab_size:,} words, window {window} "
            f"({time.perf_counter() - start:.1f} s)")
    model = GloVe(vocab_size, dim, x_max, alpha, generator=torch.Generator().manual_seed(seed))
    fit_glove(model, rows, cols, values, epochs, batch_size, lr, seed, log)
    return model.vectors().numpy()


# ---- using the vectors ---------------------------------------------------------------------

def _unit_rows(vectors) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _word_index(words: Sequence[str], vectors, *queries: str) -> list[int]:
    if len(words) != len(vectors):
        raise DataError(f"expected one word per vector, got {len(words)} words for {len(vectors)} vectors")
    index = {w: i for i, w in reversed(list(enumerate(words)))}  # the first of duplicates
    missing = [q for q in queries if q not in index]
    if missing:
        raise DataError(f"{missing[0]!r} is not in the vocabulary of the vectors")
    return [index[q] for q in queries]


def _top(scores: np.ndarray, words: Sequence[str], exclude: list[int], k: int) -> list[tuple[str, float]]:
    scores = scores.copy()
    scores[exclude] = -np.inf
    k = min(k, len(scores) - len(set(exclude)))
    best = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
    best = best[np.lexsort((best, -scores[best]))]  # ties in vocabulary order
    return [(words[b], float(scores[b])) for b in best]


def nearest(vectors, words: Sequence[str], query: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words whose vectors (V, E) have the largest cosine with the
    query's, best first, the query itself left out: [(word, cosine), ...]."""
    (q,) = _word_index(words, vectors, query)
    unit = _unit_rows(vectors)
    return _top(unit @ unit[q], words, [q], k)


def analogy(vectors, words: Sequence[str], a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
    """a : b :: c : ?, by 3CosAdd (Mikolov et al. 2013; the paper's section
    4.1): the words d with the largest cos(d, b - a + c) on unit vectors,
    a, b and c left out: [(word, cosine), ...]."""
    ia, ib, ic = _word_index(words, vectors, a, b, c)
    unit = _unit_rows(vectors)
    target = unit[ib] - unit[ia] + unit[ic]
    return _top(unit @ (target / max(np.linalg.norm(target), 1e-12)), words, [ia, ib, ic], k)


def save_vectors(path, vectors, words: Sequence[str]) -> None:
    """GloVe's text format: one line per word, the word then its E numbers,
    separated by single spaces. Nine significant digits, so float32 vectors
    load back exactly."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise DataError(f"save_vectors: expected vectors (V, E) and V words, got {vectors.shape} "
                        f"and {len(words)} words")
    bad = next((w for w in words if not w or len(w.split()) != 1 or w != w.strip()), None)
    if bad is not None:
        raise DataError(f"save_vectors: the word {bad!r} is empty or holds whitespace; "
                        "the GloVe text format cannot store it")
    line = " ".join(["%.9g"] * vectors.shape[1])
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{w} {line % tuple(v)}\n" for w, v in zip(words, vectors.tolist()))


def load_vectors(path) -> tuple[np.ndarray, list[str]]:
    """Vectors (V, E) float32 and their words from a GloVe text file (as
    :func:`save_vectors` writes; a word2vec text header "V E" on the first
    line is skipped). The numbers are the last E fields of each line, so a
    word holding spaces (as in some of Stanford's files) is read whole."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such vectors file")
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    first = lines[0].split() if lines else []
    if len(first) == 2 and all(f.isdigit() for f in first):
        lines = lines[1:]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise DataError(f"{path}: no vectors in the file")
    dim = len(lines[0].rstrip().split(" ")) - 1
    words, numbers = [], []
    for n, ln in enumerate(lines, 1):
        parts = ln.rstrip().split(" ")
        if len(parts) <= dim or not parts[0]:
            raise DataError(f"{path}: line {n} has {len(parts) - 1} numbers, expected a word and {dim}")
        words.append(" ".join(parts[:-dim]))
        numbers.append(" ".join(parts[-dim:]))
    try:
        vectors = np.array(" ".join(numbers).split(), dtype=np.float32).reshape(len(words), dim)
    except ValueError as e:
        raise DataError(f"{path}: not a vectors file ({e})") from None
    return vectors, words


def embedding_from_vectors(vectors_by_word, vocabulary_words: Sequence[str], dim: int,
                           std: float | None = None, seed: int = 0) -> tuple[Tensor, int]:
    """An embedding matrix (V, dim) float32 for a model's vocabulary, to copy
    into its ``nn.Embedding.weight``: row i is the vector of
    ``vocabulary_words[i]`` when the file has that word (exactly, no
    lower-casing), else random normal N(0, std²). ``std`` defaults to the
    standard deviation of all the given vectors' numbers, so unknown rows
    have the scale of known ones.

    ``vectors_by_word``: a dict word -> (dim,) vector, or the pair
    (vectors (N, dim), words) that :func:`load_vectors` returns (the first of
    duplicate words wins). Returns (weight, the number of vocabulary words
    found).
    """
    if isinstance(vectors_by_word, dict):
        table = {w: np.asarray(v, dtype=np.float32) for w, v in vectors_by_word.items()}
    else:
        vectors, words = vectors_by_word
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(words):
            raise DataError(f"embedding_from_vectors: expected vectors (N, E) and N words, got "
                            f"{vectors.shape} and {len(words)} words")
        table = {}
        for w, v in zip(words, vectors):
            table.setdefault(w, v)
    wrong = next((v.shape for v in table.values() if v.shape != (dim,)), None)
    if wrong is not None:
        raise DataError(f"embedding_from_vectors: expected vectors of shape ({dim},), got {wrong}")
    if std is None:
        std = float(np.std(np.stack(list(table.values())))) if table else 0.1
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(len(vocabulary_words), dim, generator=gen) * std
    found = 0
    for i, w in enumerate(vocabulary_words):
        v = table.get(w)
        if v is not None:
            weight[i] = torch.from_numpy(v)
            found += 1
    return weight, found


@torch.no_grad()
def init_embedding(embedding: nn.Embedding, vocabulary_words: Sequence[str], path) -> int:
    """Copy the vectors file at ``path`` into ``embedding`` (V, E) for a
    vocabulary, rescaled to the standard deviation of the embedding's own
    initialisation: the vectors give the geometry, the model keeps the scale
    its other weights expect (N(0, 1) for an encoder's input, U(±0.1) for a
    tied output layer). Returns how many of the vocabulary's words the file had."""
    weight, found = embedding_from_vectors(load_vectors(path), vocabulary_words, embedding.embedding_dim)
    embedding.weight.copy_(weight * (embedding.weight.std() / weight.std()))
    return found
