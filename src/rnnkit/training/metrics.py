"""Task metrics in plain Python: chunk F1 as conlleval computes it, token
accuracy and a per-class classification report.

Units: :func:`chunk_f1` reports percentages (0..100), as conlleval.pl prints
them; :func:`accuracy` and :func:`classification_report`
report fractions (0..1), as scikit-learn does.

Chunks follow conlleval.pl (Tjong Kim Sang, CoNLL-2000, version 2004-01-26):
a tag is split at its first hyphen into a prefix and a type ("B-NP" is prefix
B, type NP; "I-ORG-X" is I, "ORG-X"); a tag without a hyphen is all prefix with
the empty type "" ("O"; plain "B"/"I" tags give untyped chunks). Between the
previous tag (prefix p, type u) and the current one (prefix c, type v):

- a chunk ends before the current tag if p is B or I and c is B, O or S;
  if p is E or S and c is B, I, E, O or S; or if p != O and u != v;
- a chunk starts at the current tag if c is B or S and p is B, I, E, O or S;
  if c is I or E and p is E, O or S; or if c != O and u != v.

So IOB1 ("I-NP" after O starts a chunk), IOB2 and IOE read as conlleval reads
them. The S- rules and E->B are those of the IOBES variants of conlleval.pl;
the 2004 original lacks them and would merge "E-X B-X" into one chunk.
conlleval's special tags "[", "]" and "." get no special meaning here. Every
sentence starts and ends outside a chunk, and a chunk closes where the next
one starts. Checked against conlleval.pl on random corpora: the counts agree
whenever every prefix is B, I, E, S or O (typed or not) and O is plain "O";
with other prefixes ("PER", "X-NP", "O-NP") conlleval can leave a chunk open
across a sentence break and count correct chunks differently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

_ENDS_BEFORE = {"B": set("BOS"), "I": set("BOS"), "E": set("BIEOS"), "S": set("BIEOS")}  # p -> c
_STARTS_AFTER = {"B": set("BIEOS"), "S": set("BIEOS"), "I": set("EOS"), "E": set("EOS")}  # c -> p


def _split(tag: str) -> tuple[str, str]:
    prefix, hyphen, type_ = tag.partition("-")
    return (prefix, type_) if hyphen else (tag, "")


def _chunk_ends(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    (p, u), (c, v) = prev, cur
    return c in _ENDS_BEFORE.get(p, ()) or (p != "O" and u != v)


def _chunk_starts(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    (p, u), (c, v) = prev, cur
    return p in _STARTS_AFTER.get(c, ()) or (c != "O" and u != v)


def chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The chunks of one sentence as (type, start, end_exclusive).

    >>> sorted(chunks(["B-NP", "I-NP", "O", "I-VP", "B-VP"]))
    [('NP', 0, 2), ('VP', 3, 4), ('VP', 4, 5)]
    """
    found = set()
    prev, start = ("O", ""), None  # start: where the open chunk began, None outside a chunk
    for i, tag in enumerate(tags):
        cur = _split(tag)
        if start is not None and (_chunk_ends(prev, cur) or _chunk_starts(prev, cur)):
            found.add((_split(tags[start])[1], start, i))
            start = None
        if _chunk_starts(prev, cur):
            start = i
        prev = cur
    if start is not None:
        found.add((_split(tags[start])[1], start, len(tags)))
    return found


def _check_pairs(gold: Sequence[Sequence], pred: Sequence[Sequence], who: str) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{who}: gold has {len(gold)} sentences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"{who}: sentence {i} has {len(g)} gold tags but {len(p)} predicted tags")


def _prf(correct: int, num_gold: int, num_pred: int, scale: float) -> dict[str, float]:
    """Precision, recall and F1 with conlleval's convention: 0 where undefined."""
    precision = scale * correct / num_pred if num_pred else 0.0
    recall = scale * correct / num_gold if num_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def chunk_tags(names) -> bool:
    """Whether tag ``names`` are chunk tags (a B-, I-, E- or S- prefix), scored by chunk F1."""
    return any(t[:2] in ("B-", "I-", "E-", "S-") for t in names)


def chunk_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Chunk precision, recall and F1 in percent over a corpus, as conlleval.pl.

    A predicted chunk is correct when a gold chunk has the same type, start and
    end. Returns ``precision``, ``recall``, ``f1`` (0..100), ``correct``,
    ``gold_chunks``, ``pred_chunks``, ``accuracy`` (percent of tokens whose tag
    is exactly right, which conlleval also prints) and ``per_type``: type ->
    {precision, recall, f1, gold_chunks, pred_chunks} for every type in gold
    or pred. Raises ValueError if the sentence counts or lengths differ.
    """
    _check_pairs(gold, pred, "chunk_f1")
    num_gold, num_pred, num_correct = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        g_chunks, p_chunks = chunks(g), chunks(p)
        num_gold.update(c[0] for c in g_chunks)
        num_pred.update(c[0] for c in p_chunks)
        num_correct.update(c[0] for c in g_chunks & p_chunks)
    per_type = {t: {**_prf(num_correct[t], num_gold[t], num_pred[t], 100.0),
                    "gold_chunks": num_gold[t], "pred_chunks": num_pred[t]}
                for t in sorted(num_gold | num_pred)}
    tokens = sum(len(g) for g in gold)
    right = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    total = (sum(num_correct.values()), sum(num_gold.values()), sum(num_pred.values()))
    return {**_prf(*total, 100.0), "correct": total[0], "gold_chunks": total[1], "pred_chunks": total[2],
            "accuracy": 100.0 * right / tokens if tokens else 0.0, "per_type": per_type}


def _flatten(seqs: Sequence) -> list:
    """A flat list from a flat sequence of labels or a sequence of sentences."""
    if all(isinstance(s, (list, tuple)) for s in seqs) and len(seqs):
        return [x for s in seqs for x in s]
    return list(seqs)


def accuracy(gold: Sequence, pred: Sequence) -> float:
    """Fraction (0..1) of equal labels; sentences (lists of tags) are flattened first."""
    if all(isinstance(s, (list, tuple)) for s in gold) and len(gold):
        _check_pairs(gold, pred, "accuracy")
    gold, pred = _flatten(gold), _flatten(pred)
    if len(gold) != len(pred):
        raise ValueError(f"accuracy: gold has {len(gold)} labels but pred has {len(pred)}")
    if not gold:
        raise ValueError("accuracy: no labels to compare")
    return sum(a == b for a, b in zip(gold, pred)) / len(gold)


def classification_report(y_true: Sequence[Hashable], y_pred: Sequence[Hashable],
                          labels: Sequence[Hashable] | None = None) -> dict:
    """Accuracy, per-class precision/recall/F1 and their macro average, as fractions.

    ``labels`` sets the classes reported and averaged over (default: every
    label in y_true or y_pred, sorted). Returns ``accuracy``, ``macro_f1``
    (the unweighted mean of the per-class F1) and ``per_class``: label ->
    {precision, recall, f1, support}, support being the label's count in y_true.
    Undefined precision or recall (no predictions or no examples) counts as 0.
    """
    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"classification_report: y_true has {len(y_true)} labels but "
                         f"y_pred has {len(y_pred)}")
    if not y_true:
        raise ValueError("classification_report: no labels to compare")
    labels = sorted(set(y_true) | set(y_pred)) if labels is None else list(labels)
    num_true, num_pred = Counter(y_true), Counter(y_pred)
    hits = Counter(a for a, b in zip(y_true, y_pred) if a == b)
    per_class = {c: {**_prf(hits[c], num_true[c], num_pred[c], 1.0), "support": num_true[c]} for c in labels}
    return {"accuracy": accuracy(y_true, y_pred),
            "macro_f1": sum(r["f1"] for r in per_class.values()) / len(labels) if labels else 0.0,
            "per_class": per_class}

