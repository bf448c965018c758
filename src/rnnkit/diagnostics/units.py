"""What single units do over a text, and how surprised the model is by each
character.

:func:`read_text` runs a language model over a text as one stream and keeps,
for every character, every unit's activation in every layer (h, and tanh(c)
for an LSTM, the cell state as Karpathy, Johnson & Fei-Fei 2015 drew it) and
the model's surprisal

    s_t = -log2 p(x_t | x_<t)   bits

which is high where the text does what the model did not expect: a language
model is a density estimate, and low density marks the unusual (a typo, a
foreign word, an anomaly in a log).

:func:`find_units` looks for units that track something a person can name,
by the correlation of each unit's activation with features of the text
(:func:`text_features`: inside quotes, the position in the line, the depth
of brackets), as Karpathy et al. found such cells by looking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.diagnostics.tracing import recorded, recordings

OPENING, CLOSING = "([{", ")]}"


@dataclass
class Reading:
    """A language model's reading of a text of N tokens."""

    activations: dict[str, np.ndarray]  # "rnn layer 1 h" -> (N, H): after reading token t
    surprisal: np.ndarray  # (N,) bits; NaN at t = 0, which nothing predicts


@torch.no_grad()
def read_text(model: nn.Module, ids: Tensor) -> Reading:
    """``model`` (a :class:`rnnkit.models.LanguageModel`) over token ids (N,) from a zero
    state, in evaluation mode."""
    if not hasattr(model, "generate"):
        raise ValueError("reading a text takes a language model (--task lm): others do not predict the next token")
    with recorded(model) as traces:
        (logits, _), _ = model(ids[None].to(next(model.parameters()).device))  # (1, N, V)
    activations = {}
    for r in recordings(model, traces):
        activations[f"{r.name} h"] = torch.cat([s.after[0] for s in r.steps]).float().cpu().numpy()
        if len(r.steps[0].after) == 2:  # an LSTM's cell state, squashed as its output reads it
            activations[f"{r.name} tanh(c)"] = torch.cat([s.after[1] for s in r.steps]).tanh().float().cpu().numpy()
    log_p = F.log_softmax(logits[0, :-1].float(), dim=-1).gather(1, ids[1:, None].to(logits.device))[:, 0]
    surprisal = np.concatenate([[np.nan], (-log_p / np.log(2)).cpu().numpy()])
    return Reading(activations, surprisal)


def text_features(text: str) -> dict[str, np.ndarray]:
    """Features of each character of ``text`` (N,), as they stand after reading it:
    inside quotes (1 from an opening " to its closing one, which ends it), the
    position in the line (characters since the last newline) and the depth of
    brackets ((, [ and { open, ), ] and } close)."""
    quoted, column, depth = np.zeros(len(text)), np.zeros(len(text)), np.zeros(len(text))
    inside, col, level = False, 0, 0
    for t, ch in enumerate(text):
        inside = inside != (ch == '"')
        col = 0 if ch == "\n" else col + 1
        level = level + (ch in OPENING) - (ch in CLOSING and level > 0)
        quoted[t], column[t], depth[t] = inside, col, level
    return {"inside quotes": quoted, "position in line": column, "bracket depth": depth}


@dataclass
class Finding:
    """A unit whose activation follows a text feature: the ``feature``'s name, the ``layer`` (a key of
    ``Reading.activations``), the ``unit``, and Pearson's ``correlation`` r between them."""

    feature: str
    layer: str  # a key of Reading.activations
    unit: int
    correlation: float  # Pearson's r of the unit's activation with the feature


def find_units(activations: dict[str, np.ndarray], features: dict[str, np.ndarray],
               top: int = 3) -> list[Finding]:
    """For each feature, the ``top`` units of any layer whose activations correlate
    most with it (by |r|); a feature that does not vary in the text finds none."""
    found = []
    for feature, f in features.items():
        if f.std() == 0:
            continue
        fz = (f - f.mean()) / f.std()
        scored = []
        for layer, a in activations.items():
            std = a.std(axis=0)
            r = np.where(std > 0, ((a - a.mean(axis=0)) * fz[:, None]).mean(axis=0) / np.where(std > 0, std, 1), 0.0)
            scored += [(abs(r[u]), layer, u, float(r[u])) for u in range(a.shape[1])]
        scored.sort(key=lambda s: -s[0])
        found += [Finding(feature, layer, unit, r) for _, layer, unit, r in scored[:top]]
    return found
