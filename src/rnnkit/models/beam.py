"""Beam search over a decoder, batched over sentences.

Each of the B sentences keeps K hypotheses (the beam). At every step each
hypothesis is extended by every choice of the decoder's distribution over
V + 1 (column V: end here), and each sentence keeps the K best extensions by
total log-probability score(y_1..y_t) = Σ log p(y_i | y_<i, x). Extensions
that end are set aside as finished, with their score normalised by length:

    normalised = score / n^α        (n: tokens before the end; α: ``length_penalty``)

α = 0 ranks by probability alone, which favours short outputs; α = 1 by the
mean log-probability per token. A sentence is done when K hypotheses have
finished (as fairseq stops); after ``max_length`` tokens every
hypothesis still running must end. The ``n_best`` finished hypotheses with the best
normalised scores are returned, best first.

The search is batched as (B * K) rows through the decoder: row b * K + k is
hypothesis k of sentence b. Beam size 1 is greedy decoding: the best
extension ends (it ranks first) or it continues.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.models.decoding import DecodeStrategy, decode


@dataclass
class Search:
    """How to decode: the beam (1: greedy), its length normalisation, outputs kept, longest output."""

    beam_size: int = 1
    length_penalty: float = 1.0
    n_best: int = 1
    max_length: int | None = None

    def check(self) -> "Search":
        """Self, or a ConfigError naming the flag when a size is below 1 or ``n_best`` exceeds the beam."""
        if self.beam_size < 1 or self.n_best < 1 or (self.max_length is not None and self.max_length < 1):
            raise ConfigError(f"--beam-size, --n-best and --max-length must be >= 1; got {self.beam_size}, "
                              f"{self.n_best} and {self.max_length}")
        if self.n_best > self.beam_size:
            raise ConfigError(f"--n-best {self.n_best} outputs need a beam at least as wide; "
                              f"give --beam-size {self.n_best} or more")
        if self.length_penalty < 0:
            raise ConfigError(f"--length-penalty must be >= 0; got {self.length_penalty}")
        return self


@dataclass
class Hypothesis:
    """A finished hypothesis: its ``tokens`` (without the end), ``score`` Σ log p (the end included),
    ``normalised`` score / len(tokens)^α, and its ``attention`` weights (U + 1, S) (None without attention)."""

    tokens: list[int]  # without the end
    score: float  # Σ log p, the end included
    normalised: float  # score / len(tokens)^α
    attention: Tensor | None = None  # (len(tokens) + 1, S): each token's step and the end's; None without


class Beam(DecodeStrategy):
    """Beam search as a :class:`rnnkit.models.decoding.DecodeStrategy` (the module docstring):
    B sentences of K hypotheses each, as B * K rows. ``initial_rows`` (B * K,) are the rows of the
    first state each hypothesis reads (sentence b's state K times); ``advance`` takes log-probabilities
    (B * K, C) and ``select`` the rows of the state each kept hypothesis extends;
    ``source_lengths`` (B,) cut each hypothesis's attention weights to its source. ``results()``
    -> per sentence its ``n_best`` hypotheses, best first."""

    def __init__(self, batch_size: int, beam_size: int, end: int, max_length: int, length_penalty: float = 1.0,
                 n_best: int = 1, source_lengths: Tensor | None = None, device: torch.device | str = "cpu"):
        if beam_size < 1 or not 1 <= n_best <= beam_size or max_length < 1:
            raise ValueError(f"beam_search: need beam_size >= 1, 1 <= n_best <= beam_size and max_length >= 1; "
                             f"got {beam_size}, {n_best} and {max_length}")
        super().__init__(max_length)
        B, K = batch_size, beam_size
        self.B, self.K, self.end = B, K, end
        self.length_penalty, self.n_best, self.source_lengths = length_penalty, n_best, source_lengths
        self.device = device
        self.initial_rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,) the sentence of each row
        self.scores = torch.full((B, K), float("-inf"), device=device)
        self.scores[:, 0] = 0.0  # one hypothesis to start from, not K copies of it
        self.history = torch.zeros(B, K, 0, dtype=torch.long, device=device)  # (B, K, t) tokens so far
        self.alphas = None  # (B, K, t, S)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(B)]
        self.ended = torch.zeros(B, dtype=torch.bool, device=device)  # (B,) sentences with K finished

    def advance(self, log_probs: Tensor, alpha: Tensor | None = None) -> Tensor:
        """log_probs (B*K, C) of every row's next token -> the next input tokens (B*K,); sets ``select`` (B*K,),
        the rows each kept hypothesis extends, and moves the hypotheses that chose the end to ``finished``."""
        B, K, end = self.B, self.K, self.end
        self.steps += 1
        t = self.steps  # t - 1 tokens before step t
        C = log_probs.shape[-1]
        candidates = self.scores[:, :, None] + log_probs.view(B, K, C)  # (B, K, C)
        if t == self.max_length + 1:  # everything still running ends here
            candidates[:, :, :end] = float("-inf")
        top, index = candidates.view(B, K * C).topk(min(2 * K, K * C), dim=1)  # (B, 2K)
        beam, choice = index // C, index % C
        ends = (choice == end) & torch.isfinite(top)
        for b, r in (ends[:, :K] & ~self.ended[:, None]).nonzero().tolist():
            k = int(beam[b, r])
            n = t - 1
            attention = None
            if alpha is not None:  # the tokens' steps and the step that chose the end
                last = alpha.view(B, K, 1, -1)[b, k]
                attention = (last if self.alphas is None else torch.cat([self.alphas[b, k], last]))
                attention = attention[:, :int(self.source_lengths[b])].cpu()
            self.finished[b].append(Hypothesis(self.history[b, k].tolist(), float(top[b, r]),
                                               float(top[b, r]) / max(n, 1) ** self.length_penalty, attention))
        self.ended |= torch.tensor([len(f) >= K for f in self.finished], device=self.ended.device)
        if bool(self.ended.all()):
            self.done = True
            return choice[:, :K].reshape(-1)
        kept, position = top.masked_fill(ends, float("-inf")).topk(K, dim=1)  # the K best that go on
        beam, choice = beam.gather(1, position), choice.gather(1, position)  # (B, K)
        kept = kept.masked_fill(self.ended[:, None], float("-inf"))
        self.history = torch.cat([self.history.gather(1, beam[:, :, None].expand(-1, -1, t - 1)),
                                  choice[:, :, None]], dim=2)
        if alpha is not None:  # each hypothesis's weights so far, its parent's and the step's own
            S = alpha.shape[-1]
            steps = alpha.view(B, K, 1, S) if self.alphas is None else torch.cat([self.alphas,
                                                                                   alpha.view(B, K, 1, S)], 2)
            self.alphas = steps.gather(1, beam[:, :, None, None].expand(-1, -1, t, S))  # (B, K, t, S)
        self.select = (torch.arange(B, device=beam.device)[:, None] * K + beam).view(-1)  # (B*K,) rows to continue
        self.scores = kept
        return choice.view(-1)

    def results(self) -> list[list[Hypothesis]]:
        """Per sentence its ``n_best`` finished hypotheses, best (by normalised score) first."""
        return [sorted(f, key=lambda h: -h.normalised)[:self.n_best] for f in self.finished]


@torch.no_grad()
def beam_search(model, x: Tensor, lengths: Tensor, beam_size: int = 5, max_length: int = 100,
                length_penalty: float = 1.0, n_best: int = 1) -> list[list[Hypothesis]]:
    """Decode x (B, S) with lengths (B,) through ``model`` (``start``, ``step``
    and ``end`` as :class:`rnnkit.models.seq2seq.Seq2Seq` has them) -> per
    sentence its ``n_best`` hypotheses, best first: :class:`Beam` in :func:`rnnkit.models.decoding.decode`."""
    return decode(model, x, lengths, Beam(x.shape[0], beam_size, model.end, max_length, length_penalty, n_best,
                                          lengths, x.device))
