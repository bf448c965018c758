"""Decoding the output of a model trained with connectionist temporal
classification (CTC; Graves et al. 2006): best path and prefix beam search.

Shapes: B batch, T frames, V labels including the blank. Label id ``blank``
(0 by default, :data:`BLANK`) is the blank; the labels proper are the other ids.
A labelling ℓ is what an alignment π (one label per frame) collapses to:
merge repeated labels, then drop blanks, so "a a - a b" -> "a a b".

Prefix beam search (Hannun et al. 2014, "First-pass large vocabulary continuous
speech recognition using bi-directional recurrent DNNs"; Graves & Jaitly 2014).
Each prefix ℓ keeps the log-probability of the alignments of frames 1..t that
collapse to it, split by how they end: p_b in the blank, p_nb in a label.
With y_t(k) the log-probability of label k at frame t, ⊕ = logaddexp,
e the last label of ℓ and ℓ⁻ = ℓ without e::

    p_b^t(ℓ)  = (p_b^{t-1}(ℓ) ⊕ p_nb^{t-1}(ℓ)) + y_t(blank)
    p_nb^t(ℓ) = p_nb^{t-1}(ℓ) + y_t(e)                       staying on e keeps ℓ
              ⊕ p_b^{t-1}(ℓ⁻) + y_t(e)                        if e = last(ℓ⁻): a repeat
                                                              needs the blank between
              ⊕ (p_b^{t-1}(ℓ⁻) ⊕ p_nb^{t-1}(ℓ⁻)) + y_t(e)     otherwise
    p_b^0(∅) = 0,  p_nb^0(∅) = -inf,  log p(ℓ | x) = p_b^T(ℓ) ⊕ p_nb^T(ℓ)

After each frame only the ``beam_size`` prefixes with the best

    score(ℓ) = log p(ℓ | x) + λ log p_lm(ℓ) + β |ℓ|

survive (shallow fusion with a language model, weight λ = ``lm_weight``, and
an insertion bonus β). The alignments through a dropped prefix are lost, so a
returned log p(ℓ | x) sums the alignments that stayed in the beam at every
frame: exact when nothing they pass through was dropped, a lower bound
otherwise. Deviation from Hannun et al.: they fold the LM factor into p_nb;
here the LM part log p_lm(ℓ) = Σ_i log p_lm(ℓ_i | ℓ_<i) is kept apart (added
when a label is appended), so the CTC part stays a probability of ℓ.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.layers import length_mask

BLANK = 0
_NEG_INF = float("-inf")


@dataclass
class Fusion:
    """How to decode: prefix beam width (1: best path), and shallow fusion with a language model
    (``lm``: its run folder; weight λ and insertion bonus β as above)."""

    beam_size: int = 1
    lm: str | None = None
    lm_weight: float = 0.5
    insertion_bonus: float = 0.0

    def check(self) -> "Fusion":
        """Self, or a ConfigError when the beam is below 1 or ``lm`` is set with a beam of 1."""
        if self.beam_size < 1:
            raise ConfigError(f"--beam-size must be >= 1; got {self.beam_size}")
        if self.lm and self.beam_size == 1:
            raise ConfigError("--lm fuses a language model into the prefix beam search: add --beam-size K (8 is "
                              "usual)")
        return self


class PrefixScorer(Protocol):
    """A language model over the CTC labels, stepped one label at a time.

    ``initial()`` is the state of the empty prefix; ``log_probs(state)`` is
    log p(next label | prefix), a tensor (V,) over label ids (the blank's entry
    is ignored); ``advance(state, label)`` is the state after appending
    ``label``. States are opaque to the search, which calls ``log_probs`` and
    ``advance`` at most once per distinct prefix.
    """

    def initial(self) -> Any:
        """The state of the empty prefix."""

    def log_probs(self, state: Any) -> Tensor:
        """log p(next label | prefix) (V,) over label ids."""

    def advance(self, state: Any, label: int) -> Any:
        """The state after appending ``label`` to the prefix ``state`` stands for."""


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) without exponentiating anything above 0."""
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _check_blank(name: str, blank: int, V: int) -> None:
    if not 0 <= blank < V:
        raise ValueError(f"{name}: blank must be a label id in 0..{V - 1} (V = {V}), got {blank}")


def ctc_greedy(log_probs: Tensor, lengths: Tensor, blank: int = BLANK) -> list[list[int]]:
    """Best path decoding: the likeliest label per frame, repeats merged and
    blanks dropped. log_probs (B, T, V), lengths (B,) valid frames per
    sequence (frames past a length are ignored) -> B label lists."""
    if log_probs.dim() != 3:
        raise ValueError(f"ctc_greedy: expected log_probs of shape (B, T, V), got {tuple(log_probs.shape)}")
    B, T, V = log_probs.shape
    if lengths.shape != (B,):
        raise ValueError(f"ctc_greedy: expected lengths of shape (B,) = ({B},), got {tuple(lengths.shape)}")
    if B and not (0 <= int(lengths.min()) and int(lengths.max()) <= T):
        raise ValueError(f"ctc_greedy: lengths must lie in 0..T = 0..{T}, got {lengths.tolist()}")
    _check_blank("ctc_greedy", blank, V)
    best = log_probs.argmax(dim=-1)  # (B, T)
    starts = torch.ones_like(best, dtype=torch.bool)  # (B, T), True where a new run of a label starts
    starts[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = starts & (best != blank) & length_mask(lengths.to(best.device), T)  # (B, T)
    return [best[b][keep[b]].tolist() for b in range(B)]


def ctc_prefix_beam_search(log_probs: Tensor, beam_size: int = 8, blank: int = BLANK,
                           lm: PrefixScorer | None = None, lm_weight: float = 0.0,
                           insertion_bonus: float = 0.0, prune: float | None = None) -> list[tuple[list[int], float]]:
    """Prefix beam search over one utterance (see the module docstring).

    Args:
        log_probs: (T, V) log-probabilities per frame, already cut to the
            utterance's valid length; not checked to be normalised.
        beam_size: prefixes kept after each frame, and the most returned.
        blank: the blank's label id.
        lm: optional :class:`PrefixScorer` for shallow fusion; not called when
            ``lm_weight`` is 0.
        lm_weight: λ, the weight of log p_lm(ℓ) in the ranking score.
        insertion_bonus: β, added per label of ℓ to the ranking score.
        prune: when given, a prefix is extended at frame t only by the labels
            with y_t(label) >= prune (staying on a label and the blank are
            never pruned); None considers every label.

    Returns:
        Up to ``beam_size`` (labels, score), best first, score the ranking
        score above; with no LM and β = 0 it is log p(labels | x). Prefixes
        no alignment reaches (log p = -inf) are left out, so the list is
        empty when no alignment has positive probability.
    """
    if log_probs.dim() != 2:
        raise ValueError("ctc_prefix_beam_search: expected log_probs of shape (T, V), got "
                         f"{tuple(log_probs.shape)}; pass one utterance, cut to its length")
    if beam_size < 1:
        raise ValueError(f"ctc_prefix_beam_search: beam_size must be at least 1, got {beam_size}")
    V = log_probs.shape[1]
    _check_blank("ctc_prefix_beam_search", blank, V)
    y = log_probs.detach().to(device="cpu", dtype=torch.float64).tolist()  # T lists of V floats
    use_lm = lm is not None and lm_weight != 0.0
    lm_states = {(): lm.initial()} if use_lm else {}
    lm_rows: dict[tuple[int, ...], list[float]] = {}  # prefix -> log p_lm(next label | prefix) (V)
    lm_score = {(): 0.0}  # prefix -> log p_lm(prefix)

    def lm_row(prefix: tuple[int, ...]) -> list[float]:
        # a prefix only grows from a parent whose row was needed, so the parent's state is there
        if prefix not in lm_rows:
            if prefix not in lm_states:
                lm_states[prefix] = lm.advance(lm_states[prefix[:-1]], prefix[-1])
            row = lm.log_probs(lm_states[prefix])
            if tuple(row.shape) != (V,):
                raise ValueError(f"PrefixScorer.log_probs: expected a tensor of shape (V,) = ({V},), "
                                 f"got {tuple(row.shape)}")
            lm_rows[prefix] = row.detach().to(device="cpu", dtype=torch.float64).tolist()
        return lm_rows[prefix]

    def score(item: tuple[tuple[int, ...], list[float]]) -> float:
        prefix, (p_b, p_nb) = item
        fused = _logaddexp(p_b, p_nb) + insertion_bonus * len(prefix)
        return fused + lm_weight * lm_score[prefix] if use_lm else fused

    beam: dict[tuple[int, ...], list[float]] = {(): [0.0, _NEG_INF]}  # prefix -> [p_b, p_nb]
    for y_t in y:
        labels = [k for k in range(V) if k != blank and (prune is None or y_t[k] >= prune)]
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_b, p_nb) in beam.items():
            p = _logaddexp(p_b, p_nb)
            stay = nxt.setdefault(prefix, [_NEG_INF, _NEG_INF])
            stay[0] = _logaddexp(stay[0], p + y_t[blank])
            last = prefix[-1] if prefix else None
            if last is not None:  # the label e repeated: still ℓ
                stay[1] = _logaddexp(stay[1], p_nb + y_t[last])
            row = lm_row(prefix) if use_lm and labels else None
            for k in labels:
                longer = prefix + (k,)
                ext = nxt.setdefault(longer, [_NEG_INF, _NEG_INF])
                ext[1] = _logaddexp(ext[1], (p_b if k == last else p) + y_t[k])
                if row is not None and longer not in lm_score:
                    lm_score[longer] = lm_score[prefix] + row[k]
        reachable = [item for item in nxt.items() if max(item[1]) > _NEG_INF]  # e.g. not "a a" from "a" at t = 2
        beam = dict(heapq.nlargest(beam_size, reachable, key=score))
    return sorted(((list(prefix), score((prefix, pair))) for prefix, pair in beam.items()),
                  key=lambda hyp: hyp[1], reverse=True)
