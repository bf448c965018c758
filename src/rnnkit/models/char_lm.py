"""Contextual string embeddings (Akbik, Blythe and Vollgraf 2018, "Contextual
String Embeddings for Sequence Labeling"): a word's features are the states
of two character language models, one reading the sentence forwards and one
backwards, at the word's edges, so the same word gets different features in
different sentences, and a word no vocabulary holds still gets rich ones.

A sentence of words w_1..w_n is read as characters joined by single spaces,
with a space before and after: s = " w_1 w_2 ... w_n " (length L). Word i
spans characters a_i..b_i of s. The forward model reads s_1..s_L, the
backward one s_L..s_1 (it was trained on reversed text), each a stack whose
top layer gives the states

    →h_j = LM_f(s_1, ..., s_j)       ←h_j = LM_b(s_L, ..., s_j)      (H_f,), (H_b,)

and word i's features are the forward state at the space after it (having
read the word and everything before) and the backward state at the space
before it (having read the word and everything after), as in the paper's
equation (2):

    f_i = [→h_{b_i + 1} ; ←h_{a_i - 1}]                              (H_f + H_b,)

The two models are ``rnnkit train`` language-model runs over characters
(``--tokenizer char``); a character one of them never saw reads as its
first non-space character. Frozen by default (no gradient, evaluation mode:
the features of a word in a sentence never change); ``tune`` trains them
with the tagger.

Frozen, a sentence's features are a function of its characters alone, so
they are computed once: a cache keyed by the sentence's character stream s
(Flair does the same) holds f_1..f_n of every sentence read so far, and a
batch runs the two models over the sentences not yet in it only. From the
second epoch on a step costs what the word-level tagger's does plus a
lookup a sentence (about 4 kB of features a word at H_f = H_b = 512 in
fp32). Loading weights into either model empties the cache; ``tune``
bypasses it (the features change as the models learn).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.config import to_dict
from rnnkit.models.language_model import LanguageModel

DIRECTIONS = ("forward", "backward")


def lm_spec(model: LanguageModel, chars: str) -> dict:
    """What :class:`ContextualChars` needs to rebuild one direction's model without its run
    folder: the characters its ids stand for (``chars[i]`` is id i) and its config."""
    return {"chars": chars, "config": to_dict(model.config)}


class ContextualChars(nn.Module):
    """``forward(chars (B, T, C), mask (B, T)) -> (B, T, H_f + H_b)`` for the spelled words
    of a batch (character ids of ``alphabet``: 0 padding, 1 unknown, 2 + i for ``alphabet[i]``;
    :class:`rnnkit.data.words.SpelledWordTokenizer`), mask True at the words there are;
    padded words get zeros.

    Args:
        spec: ``{"alphabet": the spelled words' characters (the tokenizer's ``alphabet``),
            "forward": lm_spec(...), "backward": lm_spec(...)}``.
        tune: train the two language models with the rest (default: frozen).
    """

    def __init__(self, spec: dict, tune: bool = False):
        super().__init__()
        self.tune, alphabet = tune, spec["alphabet"]
        self.models = nn.ModuleList(LanguageModel(len(spec[d]["chars"]), **spec[d]["config"]) for d in DIRECTIONS)
        for d in DIRECTIONS:  # spelled id -> this model's id; the space is the last spelled id
            chars = spec[d]["chars"]
            index = {c: i for i, c in enumerate(chars)}
            fallback = next(i for i, c in enumerate(chars) if not c.isspace())
            table = [fallback, fallback] + [index.get(c, fallback) for c in alphabet] + [index.get(" ", fallback)]
            self.register_buffer(f"ids_{d}", torch.tensor(table, dtype=torch.long), persistent=False)
        self.space = len(alphabet) + 2
        self.cache: dict[bytes, Tensor] = {}  # frozen: a sentence's stream s -> its features (n, H_f + H_b)
        if not tune:
            self.models.requires_grad_(False)
        for model in self.models:  # new weights, new features
            model.register_load_state_dict_pre_hook(self._forget)

    @property
    def output_size(self) -> int:
        """H_f + H_b: the two language models' hidden sizes."""
        return sum(m.config.hidden_size for m in self.models)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but a frozen (not ``tune``) pair of language models stays in evaluation mode."""
        super().train(mode)
        if not self.tune:  # frozen: no dropout either, a word's features are fixed
            self.models.eval()
        return self

    def forward(self, chars: Tensor, mask: Tensor) -> Tensor:
        """chars (B, T, C), mask (B, T) True at the words there are -> f_i (B, T, H_f + H_b): the forward
        state at the space after each word and the backward state at the space before it, zero where mask is False."""
        stream, total, after, start = self._streams(chars, mask)
        if self.tune:
            return self._features(stream, total, after, start) * mask[..., None]
        counts = mask.sum(1).tolist()  # (B,) words a sentence
        keys = [row[:n].cpu().numpy().tobytes() for row, n in zip(stream, total.tolist())]
        new_rows: dict[bytes, int] = {}  # a sentence not in the cache -> its first row (a batch may hold it twice)
        for b, key in enumerate(keys):
            if key not in self.cache:
                new_rows.setdefault(key, b)
        missing = list(new_rows.values())
        if missing:
            rows = torch.tensor(missing, device=chars.device)
            width = int(total[rows].max())
            with torch.no_grad():
                new = self._features(stream[rows, :width], total[rows], after[rows], start[rows])  # (M, T, H)
            for row, b in zip(new, missing):
                self.cache[keys[b]] = row[:counts[b]].clone()  # (n_b, H)
        first = self.cache[keys[0]]
        out = first.new_zeros(*mask.shape, self.output_size, device=chars.device)  # (B, T, H): padding stays 0
        for b, key in enumerate(keys):
            out[b, :counts[b]] = self.cache[key]
        return out

    def _forget(self, *_) -> None:
        """Empty the cache (a load_state_dict hook of either model)."""
        self.cache.clear()

    def _streams(self, chars: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(stream (B, L) of spelled ids, s = " w_1 ... w_n " then spaces; its lengths L_b (B,); b_i + 1 and
        a_i (B, T), the positions of the space after word i and of its first character)."""
        lengths = ((chars != 0).sum(-1) * mask).long()  # (B, T) characters a word, 0 for padding
        steps = (lengths + 1) * mask  # (B, T) a word and the space after it
        after = torch.cumsum(steps, 1)  # (B, T) b_i + 1: the space after word i (s_0 is the first space)
        start = after - lengths  # (B, T) a_i
        total = after[:, -1] + 1 if after.shape[1] else torch.ones_like(mask[:, 0], dtype=torch.long)  # (B,) L
        width = int(total.max())
        stream = chars.new_full((chars.shape[0], width), self.space)  # (B, L) spelled ids, spaces between
        where = start[..., None] + torch.arange(chars.shape[-1], device=chars.device)  # (B, T, C)
        real = (chars != 0) & mask[..., None]
        rows = torch.arange(chars.shape[0], device=chars.device)[:, None, None].expand_as(where)
        stream[rows[real], where[real]] = chars[real]
        return stream, total, after, start

    def _features(self, stream: Tensor, total: Tensor, after: Tensor, start: Tensor) -> Tensor:
        """f_i (B, T, H_f + H_b) of equation (2), the two models run over the streams (B, L); rows past a
        sentence's words are to be ignored."""
        position = torch.arange(stream.shape[1], device=stream.device)
        backwards = (total[:, None] - 1 - position).clamp(min=0)  # (B, L): s read right to left, then padding
        reversed_stream = torch.where(position < total[:, None], stream.gather(1, backwards), self.space)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.tune):
            forward = self._states("forward", stream)  # (B, L, H_f)
            backward = self._states("backward", reversed_stream)  # (B, L, H_b): index r is s_{L-1-r}
        before = (total[:, None] - 1 - (start - 1)).clamp(min=0)  # (B, T) a_i - 1 in the backward reading
        return torch.cat([_pick(forward, after), _pick(backward, before)], dim=-1)  # (B, T, H_f + H_b)

    def model(self, direction: str) -> LanguageModel:
        """The ``"forward"`` or ``"backward"`` language model."""
        return self.models[DIRECTIONS.index(direction)]

    def _states(self, direction: str, stream: Tensor) -> Tensor:
        """The top layer's states (B, L, H) of one model over spelled ids (B, L)."""
        model = self.model(direction)
        ids = getattr(self, f"ids_{direction}")[stream]
        h, _ = model.rnn(model.embed(ids))
        return h


def _pick(states: Tensor, index: Tensor) -> Tensor:
    """states (B, L, H) at index (B, T) -> (B, T, H)."""
    return states.gather(1, index[..., None].expand(-1, -1, states.shape[-1]))
