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


@dataclass
class Search:
    """How to decode: the beam (1: greedy), its length normalisation, outputs kept, longest output."""

    beam_size: int = 1
    length_penalty: float = 1.0
    n_best: int = 1
    max_length: int | None = None

    def check(self) -> "Search":
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
    tokens: list[int]  # without the end
    score: float  # Σ log p, the end included
    normalised: float  # score / len(tokens)^α
    attention: Tensor | None = None  # (len(tokens) + 1, S): each token's step and the end's; None without


@torch.no_grad()
def beam_search(model, x: Tensor, lengths: Tensor, beam_size: int = 5, max_length: int = 100,
                length_penalty: float = 1.0, n_best: int = 1) -> list[list[Hypothesis]]:
    """Decode x (B, S) with lengths (B,) through ``model`` (``start``, ``step``
    and ``end`` as :class:`rnnkit.models.seq2seq.Seq2Seq` has them) -> per
    sentence its ``n_best`` hypotheses, best first."""
    if beam_size < 1 or not 1 <= n_best <= beam_size or max_length < 1:
        raise ValueError(f"beam_search: need beam_size >= 1, 1 <= n_best <= beam_size and max_length >= 1; "
                         f"got {beam_size}, {n_best} and {max_length}")
    model.eval()
    B, K, end = x.shape[0], beam_size, model.end
    state, memory = model.start(x, lengths)
    rows = torch.arange(B, device=x.device).repeat_interleave(K)  # (B*K,) the sentence of each row
    state = state.index_select(rows)
    memory = memory.index_select(rows) if memory is not None else None
    scores = torch.full((B, K), float("-inf"), device=x.device)
    scores[:, 0] = 0.0  # one hypothesis to start from, not K copies of it
    tokens = x.new_full((B * K,), end)
    history = x.new_zeros(B, K, 0)  # (B, K, t) tokens so far
    alphas = None  # (B, K, t, S)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=x.device)
    for t in range(1, max_length + 2):  # t - 1 tokens before step t
        log_probs, state, alpha = model.step(tokens, state, memory)  # (B*K, C)
        C = log_probs.shape[-1]
        candidates = scores[:, :, None] + log_probs.view(B, K, C)  # (B, K, C)
        if t == max_length + 1:  # everything still running ends here
            candidates[:, :, :end] = float("-inf")
        top, index = candidates.view(B, K * C).topk(min(2 * K, K * C), dim=1)  # (B, 2K)
        beam, choice = index // C, index % C
        ends = (choice == end) & torch.isfinite(top)
        for b, r in (ends[:, :K] & ~done[:, None]).nonzero().tolist():
            k = int(beam[b, r])
            n = t - 1
            attention = None
            if alpha is not None:  # the tokens' steps and the step that chose the end
                last = alpha.view(B, K, 1, -1)[b, k]
                attention = (last if alphas is None else torch.cat([alphas[b, k], last]))[:, :int(lengths[b])].cpu()
            finished[b].append(Hypothesis(history[b, k].tolist(), float(top[b, r]),
                                          float(top[b, r]) / max(n, 1) ** length_penalty, attention))
        done |= torch.tensor([len(f) >= K for f in finished], device=x.device)
        if bool(done.all()):
            break
        kept, position = top.masked_fill(ends, float("-inf")).topk(K, dim=1)  # the K best that go on
        beam, choice = beam.gather(1, position), choice.gather(1, position)  # (B, K)
        kept = kept.masked_fill(done[:, None], float("-inf"))
        history = torch.cat([history.gather(1, beam[:, :, None].expand(-1, -1, t - 1)), choice[:, :, None]], dim=2)
        if alpha is not None:  # each hypothesis's weights so far, its parent's and the step's own
            S = alpha.shape[-1]
            steps = alpha.view(B, K, 1, S) if alphas is None else torch.cat([alphas, alpha.view(B, K, 1, S)], 2)
            alphas = steps.gather(1, beam[:, :, None, None].expand(-1, -1, t, S))  # (B, K, t, S)
        flat = (torch.arange(B, device=x.device)[:, None] * K + beam).view(-1)  # (B*K,) rows to continue
        state = state.index_select(flat)
        scores, tokens = kept, choice.view(-1)
    return [sorted(f, key=lambda h: -h.normalised)[:n_best] for f in finished]
