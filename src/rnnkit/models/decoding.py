"""Left-to-right decoding: one loop over a model's steps, and the strategies that choose each token.

A decoder is a function ``step(tokens, state) -> (scores, state, attention)``: the tokens chosen
last (N,) and the model's state for those N rows give the scores of the next choice (N, C) (C
choices; for seq2seq column ``end`` ends the sequence), the next state and the attention
weights (N, S) or None. :func:`run` is the loop every decoder shares::

    scores = the first choice's scores        (a language model's prime, seq2seq's <s> step)
    repeat:
        tokens = strategy.advance(scores, attention)      the next input of every row
        stop if strategy.done
        state = state.index_select(strategy.select)       beam search's reordering (if any)
        scores, state, attention = step(tokens, state)

A :class:`DecodeStrategy` (after OpenNMT-py's) keeps what the loop does not: the hypotheses
still alive, which rows of the state continue, which have finished, and the results. Three
strategies share it:

- :class:`Greedy`: the likeliest choice, argmax_c scores[n, c], until every row has ended;
- :class:`rnnkit.models.beam.Beam`: the K best hypotheses by total log-probability; beam size
  1 chooses as greedy does (the best extension ends or goes on);
- :class:`Sampling`: a draw from softmax(scores / temperature), restricted to the top-k and the
  nucleus (:func:`rnnkit.models.sampling.sample_next`); temperature 0 is greedy.

Greedy and sampling read only the order and the softmax of the scores, the same for logits z
and log-probabilities z - logsumexp(z), so a language model passes its logits; beam search adds
scores up and needs log-probabilities.

CTC's prefix beam search (:mod:`rnnkit.models.ctc_search`) is not one of these: it does not
step a model's state token by token but sums over the alignments of whole per-frame
distributions computed in one pass, merging prefixes that different alignments reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from rnnkit.models.sampling import RaceNoise, sample_next

Step = Callable[[Tensor, Any], tuple[Tensor, Any, "Tensor | None"]]


class DecodeStrategy:
    """How the next tokens are chosen, and what has been decoded so far.

    ``advance(scores, attention)`` takes the scores (N, C) of the N rows alive and returns their
    next input tokens (N',); ``select`` (N',) the rows of the state those continue (None: the
    same rows, in order); ``done`` whether decoding has ended; ``results()`` what was decoded.
    ``max_length`` bounds the tokens a row may emit (before its end).
    """

    def __init__(self, max_length: int):
        self.max_length = max_length
        self.steps = 0  # advances so far
        self.done = max_length < 1
        self.select: Tensor | None = None
        self.initial_rows: Tensor | None = None  # the rows of the first state each row reads (None: its own)

    def advance(self, scores: Tensor, attention: Tensor | None = None) -> Tensor:
        """scores (N, C) of the N rows alive (and their attention weights (N, S), if any) -> the next input
        tokens (N',); updates ``select`` and ``done``."""
        raise NotImplementedError

    def results(self):
        """What was decoded (each strategy's docstring says in what form)."""
        raise NotImplementedError


def run(strategy: DecodeStrategy, step: Step, state, scores: Tensor,
        attention: Tensor | None = None) -> Iterator[Tensor]:
    """The decoding loop of the module docstring: yields each step's chosen tokens (N,), from the
    scores of the first choice (N, C) and the state that produced them."""
    while not strategy.done:
        tokens = strategy.advance(scores, attention)
        yield tokens
        if strategy.done:
            return
        if strategy.select is not None:
            state = state.index_select(strategy.select)
        scores, state, attention = step(tokens, state)


@torch.no_grad()
def decode(model, x: Tensor, lengths: Tensor, strategy: DecodeStrategy):
    """Decode sources x (B, S) with lengths (B,) through an encoder-decoder (``start``, ``step`` and
    ``end`` as :class:`rnnkit.models.seq2seq.Seq2Seq` has them) by ``strategy``, in :func:`run`'s
    loop from <s> (the end symbol's input id) -> ``strategy.results()``."""
    model.eval()
    state, memory = model.start(x, lengths)
    rows = strategy.initial_rows
    if rows is not None:  # several hypotheses of a sentence read its state (beam search)
        state = state.index_select(rows)
        memory = memory.index_select(rows) if memory is not None else None
    tokens = x.new_full((x.shape[0] if rows is None else len(rows),), model.end)  # <s>

    def step(tokens: Tensor, state):
        return model.step(tokens, state, memory)

    scores, state, attention = step(tokens, state)
    for _ in run(strategy, step, state, scores, attention):
        pass
    return strategy.results()


class Greedy(DecodeStrategy):
    """The likeliest choice at every step, for B rows: y_t = argmax_c scores_t[c]. A row ends when
    it chooses ``end`` (None: never); decoding ends when every row has, or after ``max_length``
    tokens. ``results()`` -> each row's tokens (without the end) and its attention weights
    (U_b + 1, S_b), cut to ``source_lengths`` (B,): each token's step and the step that chose the
    end (empty without attention)."""

    def __init__(self, batch_size: int, end: int | None, max_length: int, source_lengths: Tensor | None = None,
                 device: torch.device | str = "cpu"):
        super().__init__(max_length)
        self.end, self.source_lengths = end, source_lengths
        self.running = torch.ones(batch_size, dtype=torch.bool, device=device)  # (B,) not yet ended
        self.outputs: list[Tensor] = []  # each (B,), -1 after a row's end
        self.weights: list[Tensor | None] = []  # each (B, S) or None

    def advance(self, scores: Tensor, attention: Tensor | None = None) -> Tensor:
        """scores (B, C) -> the argmax tokens (B,); a row that chooses ``end`` stops (its later outputs are -1)."""
        tokens = scores.argmax(-1)  # (B,)
        if self.end is not None:
            self.running &= tokens != self.end
        self.outputs.append(torch.where(self.running, tokens, -1))
        self.weights.append(attention)
        self.steps += 1
        self.done = self.steps >= self.max_length or not bool(self.running.any())
        return tokens

    def results(self) -> tuple[list[list[int]], list[Tensor]]:
        """(each row's tokens without the end, each row's attention weights (U_b + 1, S_b) or an empty (0, 0))."""
        steps = torch.stack(self.outputs, dim=1).tolist()  # (B, steps), -1 after the end
        result = [row[:row.index(-1)] if -1 in row else row for row in steps]
        if self.weights[0] is None:
            return result, [self.running.new_zeros(0, 0, dtype=torch.long) for _ in result]
        alphas = torch.stack(self.weights, dim=1)  # (B, steps, S)
        return result, [alphas[b, :len(r) + 1, :int(self.source_lengths[b])].cpu() for b, r in enumerate(result)]


class Sampling(DecodeStrategy):
    """A draw from softmax(scores / ``temperature``) at every step, restricted to the ``top_k``
    likeliest choices and the nucleus of probability ``top_p`` (:func:`sample_next`; temperature 0
    is greedy), for ``max_length`` steps. The draws come from ``generator``, many steps at a time
    (:class:`RaceNoise`): the same seed gives the same tokens. ``results()`` -> the tokens (B, steps)."""

    def __init__(self, max_length: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None):
        super().__init__(max_length)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.noise = RaceNoise(generator)
        self.tokens: list[Tensor] = []

    def advance(self, scores: Tensor, attention: Tensor | None = None) -> Tensor:
        """scores (B, C) -> a token (B,) drawn from each row's tempered, top-k and top-p restricted softmax."""
        token = sample_next(scores, self.temperature, self.top_k, self.top_p, noise=self.noise)  # (B,)
        self.tokens.append(token)
        self.steps += 1
        self.done = self.steps >= self.max_length
        return token

    def results(self) -> Tensor:
        """The drawn tokens (B, steps)."""
        return torch.stack(self.tokens, dim=1)
