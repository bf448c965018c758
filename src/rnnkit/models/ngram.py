"""An interpolated Kneser-Ney n-gram language model: the Markov-assumption,
localist baseline that neural language models are measured against.

The model of order n predicts w from the previous n - 1 tokens only, with one
free parameter per seen n-gram and no sharing between similar words. It is
interpolated Kneser-Ney (Chen & Goodman 1998, "An empirical study of
smoothing techniques for language modeling", sections 2.7 and 3.5). Write
h for a context of k - 1 tokens and h' for h without its first token::

    p_k(w | h) = max(c_k(h w) - D_k(c_k(h w)), 0) / c_k(h •)  +  γ_k(h) p_{k-1}(w | h')
    γ_k(h)     = (D_k(1) N_1(h •) + D_k(2) N_2(h •) + D_k(3) N_3+(h •)) / c_k(h •)
    p_0(w)     = 1 / V

- c_n is the raw count at the highest order n; every lower order k < n uses
  the continuation count c_k(g) = N_1+(• g), the number of distinct tokens
  seen just before the k-gram g (the stream's start counts as one such
  token, as ``<s>`` does in sentence-level training).
- c_k(h •) = Σ_w c_k(h w); N_r(h •) is the number of distinct w with
  c_k(h w) = r (N_3+: at least 3).
- D_k(0) = 0. Modified KN (the default) has three discounts per order,
  D_k(1), D_k(2) and D_k(3+) for counts of 3 or more. Plain interpolated KN has
  one, D_k(r) = D_k for every r >= 1.
- A context never seen followed by a token (c_k(h •) = 0) backs off fully:
  p_k(w | h) = p_{k-1}(w | h'), that is, its interpolation weight is 1.
- The unigram level (k = 1, h empty) interpolates with the uniform
  distribution, so every token of the vocabulary, seen in training or not,
  has positive probability. Each level sums to 1 over the vocabulary.

Discounts are estimated per order from its counts of counts n_r (the number
of k-grams with c_k = r), as Chen & Goodman recommend (their eq. 26)::

    Y = n_1 / (n_1 + 2 n_2)
    plain KN:  D = Y
    modified:  D(1) = 1 - 2 Y n_2 / n_1,  D(2) = 2 - 3 Y n_3 / n_2,  D(3+) = 3 - 4 Y n_4 / n_3

Deviation: on tiny or degenerate corpora a denominator above can be zero;
that estimate then falls back to ``FALLBACK_DISCOUNT``. Every estimate is
then clipped to [``DISCOUNT_FLOOR``, r] (r = 1 for plain KN): a discount of
0 would give a context no backoff mass, and an unseen token probability 0;
one above r would make a count negative. The chosen values are in
``model.discounts``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rnnkit.errors import ConfigError, DataError

DISCOUNT_FLOOR = 0.1
FALLBACK_DISCOUNT = 0.5


class KneserNey:
    """Interpolated (modified) Kneser-Ney n-gram language model over token ids.

    Args:
        order: n, the number of tokens in the longest n-gram (1 = unigram).
        discount: one fixed D in (0, 1] for every order and count (plain
            interpolated KN; needs ``modified=False``). ``None`` estimates the
            discounts per order from the training counts of counts.
        modified: three estimated discounts per order (D1, D2, D3+, Chen &
            Goodman's modified KN, usually better) instead of one.

    Attributes after :meth:`fit`: ``vocab_size`` (V); ``discounts``, where
    ``discounts[k - 1]`` is ``(D_k(1), D_k(2), D_k(3+))`` for order k; and
    ``num_ngrams``, the number of distinct k-grams of each order, one
    probability term each (the model's size: nothing is shared between them).

    Example::

        >>> lm = KneserNey(order=3).fit([0, 1, 2, 0, 1, 2, 0, 1], vocab_size=4)
        >>> round(math.exp(lm.log_prob((0, 1), 2)), 3)
        0.656
    """

    def __init__(self, order: int = 5, discount: float | None = None, modified: bool = True):
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ConfigError(f"KneserNey: order must be an integer >= 1, got {order!r}")
        if discount is not None:
            if not 0 < discount <= 1:
                raise ConfigError(f"KneserNey: discount must be in (0, 1], got {discount!r}")
            if modified:
                raise ConfigError(f"KneserNey: discount={discount} fixes one discount for every "
                                  "count, but modified=True asks for three; pass modified=False")
        self.order = order
        self.discount = discount
        self.modified = modified
        self.vocab_size: int | None = None
        self.discounts: list[tuple[float, float, float]] = []
        # Per order k (index k - 1): the discounted term of each seen k-gram g = h w,
        # max(c - D(c), 0) / c(h •), and the backoff weight γ(h) of each seen context h.
        self._alpha: list[dict[tuple[int, ...], float]] = []
        self._gamma: list[dict[tuple[int, ...], float]] = []

    def fit(self, tokens: Sequence[int] | np.ndarray, vocab_size: int) -> KneserNey:
        """Count the n-grams of one stream of token ids in [0, vocab_size) and
        compute every probability term. Refitting replaces the previous fit."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) \
                or vocab_size < 1:
            raise ConfigError(f"KneserNey: vocab_size must be an integer >= 1, got {vocab_size!r}")
        toks = _as_ids(tokens, int(vocab_size), "fit", min_len=1)
        self.vocab_size = int(vocab_size)
        counts = _count(toks, self.order)
        self.discounts, self._alpha, self._gamma = [], [], []
        for k in range(1, self.order + 1):
            d = self._discounts(counts[k - 1])
            alpha, gamma = _level(counts[k - 1], d)
            self.discounts.append(d)
            self._alpha.append(alpha)
            self._gamma.append(gamma)
        return self

    def log_prob(self, context: tuple[int, ...], token: int) -> float:
        """ln p(token | context); only the last ``order - 1`` context tokens are used,
        and a shorter context uses the orders it can."""
        self._check_fitted("log_prob")
        ids = _as_ids(list(context) + [token], self.vocab_size, "log_prob", min_len=1)
        return math.log(self._prob(ids, len(ids) - 1))

    def evaluate(self, tokens: Sequence[int] | np.ndarray) -> dict:
        """Score a stream as rnnkit's neural models are scored: predict each of
        tokens[1:] from the up to ``order - 1`` tokens before it in the stream
        (so the first few predictions see a shorter history); tokens[0] is
        context only. To have the first token predicted as a sentence start,
        prepend the boundary id (for PTB, ``<eos>``).

        Returns loss (mean nats per prediction), bpc (loss / ln 2: bits per
        character, or per token), perplexity (exp(loss)) and tokens (the
        number of predictions, len(tokens) - 1)."""
        self._check_fitted("evaluate")
        toks = _as_ids(tokens, self.vocab_size, "evaluate", min_len=2)
        total = 0.0
        for i in range(1, len(toks)):
            total -= math.log(self._prob(toks, i))
        loss = total / (len(toks) - 1)
        return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss),
                "tokens": len(toks) - 1}

    @property
    def num_ngrams(self) -> list[int]:
        """The number of distinct n-grams seen, per order 1..n."""
        return [len(alpha) for alpha in self._alpha]

    def _prob(self, toks: list[int], i: int) -> float:
        """p(toks[i] | toks[i-n+1:i]), from the uniform level up (the recursion above)."""
        p = 1.0 / self.vocab_size
        for k in range(1, min(self.order, i + 1) + 1):
            h = tuple(toks[i - k + 1:i])
            gamma = self._gamma[k - 1].get(h)
            if gamma is None:
                # Unseen context: weight 1 on the lower order; every longer context
                # ends with this one, so it is unseen too.
                break
            p = self._alpha[k - 1].get(h + (toks[i],), 0.0) + gamma * p
        return p

    def _discounts(self, counts: dict[tuple[int, ...], int]) -> tuple[float, float, float]:
        if self.discount is not None:
            return (self.discount,) * 3
        n = Counter(c for c in counts.values() if c <= 4)
        n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
        y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else FALLBACK_DISCOUNT
        if not self.modified:
            return (_clip(y, 1),) * 3
        d1 = 1 - 2 * y * n2 / n1 if n1 else FALLBACK_DISCOUNT
        d2 = 2 - 3 * y * n3 / n2 if n2 else FALLBACK_DISCOUNT
        d3 = 3 - 4 * y * n4 / n3 if n3 else FALLBACK_DISCOUNT
        return _clip(d1, 1), _clip(d2, 2), _clip(d3, 3)

    def _check_fitted(self, caller: str) -> None:
        if self.vocab_size is None:
            raise RuntimeError(f"KneserNey.{caller}: call fit() first")

    def __repr__(self) -> str:
        return (f"KneserNey(order={self.order}, discount={self.discount}, "
                f"modified={self.modified}, vocab_size={self.vocab_size})")


def _clip(d: float, r: int) -> float:
    return min(max(d, DISCOUNT_FLOOR), r)


def _as_ids(tokens, vocab_size: int, caller: str, min_len: int) -> list[int]:
    """Validate a 1-D stream of ids in [0, vocab_size) and return it as a list of ints."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise DataError(f"KneserNey.{caller}: expected a 1-D stream of token ids, "
                        f"got shape {arr.shape}")
    if len(arr) < min_len:
        raise DataError(f"KneserNey.{caller}: expected at least {min_len} token(s), got {len(arr)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"KneserNey.{caller}: expected integer token ids, got dtype {arr.dtype}")
    bad = np.flatnonzero((arr < 0) | (arr >= vocab_size))
    if len(bad):
        raise DataError(f"KneserNey.{caller}: token id {arr[bad[0]]} at position {bad[0]} is "
                        f"outside the vocabulary [0, {vocab_size})")
    return arr.tolist()


def _count(toks: list[int], order: int) -> list[dict[tuple[int, ...], int]]:
    """counts[k - 1]: raw counts of the k-grams for k = order, continuation
    counts N_1+(• g) for k < order."""
    counts = [Counter(zip(*(toks[j:] for j in range(order))))]
    for k in range(order - 1, 0, -1):
        # Each distinct (k+1)-gram v g adds one distinct left neighbour v to g ...
        cont = Counter(g[1:] for g in counts[0])
        # ... and the first k-gram has the stream's start before it.
        cont[tuple(toks[:k])] += 1
        counts.insert(0, cont)
    return counts


def _level(counts: dict[tuple[int, ...], int], d: tuple[float, float, float]):
    """The discounted terms α(h w) and backoff weights γ(h) of one order."""
    total: dict[tuple[int, ...], int] = {}
    mass: dict[tuple[int, ...], float] = {}  # Σ_w D(c(h w)) over the seen w
    for g, c in counts.items():
        h = g[:-1]
        dc = d[min(c, 3) - 1]
        total[h] = total.get(h, 0) + c
        mass[h] = mass.get(h, 0.0) + dc
    alpha = {g: (c - d[min(c, 3) - 1]) / total[g[:-1]] for g, c in counts.items()}
    gamma = {h: mass[h] / t for h, t in total.items()}
    return alpha, gamma
