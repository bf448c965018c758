"""Decoding a sequence-to-sequence model over many sources, and scoring
what it writes against the references.

Metrics (fractions 0..1, BLEU and chrF 0..100 as sacreBLEU prints them):

- ``sequence_error_rate``: the share of sources whose output matches none
  of their references exactly (CMUdict's word error rate, WER: a word with
  several pronunciations is right when any of them comes out);
- ``token_error_rate``: Σ_sources min_r d(output, r) / Σ_sources |r*|, with d
  the edit distance over tokens (whitespace-separated words for word and
  BPE targets, characters for char and byte targets) and r* the reference
  that attains the minimum, the longest of those that tie (CMUdict's
  phoneme error rate, PER);
- ``bleu`` and ``chrf``: sacreBLEU's corpus BLEU (13a tokenisation) and chrF
  over the detokenised outputs, every reference of a source a reference stream.

Edit distances come from rapidfuzz, BLEU and chrF from sacreBLEU.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from tqdm import tqdm

from rnnkit.data.batches import to_device
from rnnkit.data.pairs import collate_pairs, references
from rnnkit.data.speech import collate_speech, label_text
from rnnkit.models.beam import Hypothesis, beam_search
from rnnkit.training.distributed import gather_shares, share


@contextmanager
def evaluating(model):
    """``model`` in eval mode inside the block and in its own mode after (the
    trainer decodes its validation split between training steps)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def decode(model, sources: list, beam_size: int = 1, length_penalty: float = 1.0, n_best: int = 1,
           max_length: int | None = None, batch_size: int = 64, progress: bool = False,
           group=None) -> list[list[Hypothesis]]:
    """The ``n_best`` hypotheses of every source (token ids (S,) each), in
    their order. Sources are decoded in batches of similar length, which the
    ranks of ``group`` share (:mod:`rnnkit.training.distributed`); the
    longest output allowed is ``max_length`` tokens (default 2 S + 10)."""
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    decoded = []  # a batch's hypotheses
    bar = tqdm(total=len(sources), disable=not progress, unit="sentence", leave=False)
    with evaluating(model):
        for index in share(batches, group):
            x, lengths, _, _ = collate_pairs([sources[i] for i in index], [sources[i] for i in index])
            limit = max_length or 2 * int(lengths.max()) + 10
            decoded.append(beam_search(model, x.to(device), lengths.to(device), beam_size, limit, length_penalty,
                                       n_best))
            bar.update(len(index))
    bar.close()
    results: list = [None] * len(sources)
    for index, hyps in zip(batches, gather_shares(decoded, group)):
        for i, h in zip(index, hyps):
            results[i] = h
    return results


@torch.no_grad()
def transcribe(model, features: list[torch.Tensor], target_tokenizer, beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, insertion_bonus: float = 0.0, posteriors: bool = False,
               progress: bool = False, group=None) -> tuple[list[str], list[torch.Tensor]]:
    """A CTC recogniser's transcripts of utterances ``features`` (T', F each):
    best path for ``beam_size`` 1, else the prefix beam search fused with
    ``lm`` (a :class:`rnnkit.models.ctc_search.PrefixScorer`); with
    ``posteriors``, also each utterance's label probabilities (T', V). The
    ranks of ``group`` share the batches (:mod:`rnnkit.training.distributed`)."""
    device = next(model.parameters()).device
    batch = 32 if beam_size == 1 else 1  # the prefix search runs one utterance at a time
    starts = range(0, len(features), batch)
    done = []  # a batch's (transcripts, posteriors)
    with evaluating(model):
        for start in tqdm(list(share(starts, group)), disable=not progress, unit="batch", leave=False):
            chunk = features[start:start + batch]
            x, lengths, _, _ = collate_speech(chunk, [np.ones(1, dtype=np.int64)] * len(chunk))  # no labels
            x, lengths = x.to(device), lengths.to(device)
            labels = model.decode(x, lengths, beam_size, lm, lm_weight, insertion_bonus)
            done.append(([label_text(target_tokenizer, ids) for ids in labels],
                         [p.cpu() for p in model.posteriors(x, lengths)] if posteriors else []))
    done = gather_shares(done, group)
    return [t for texts, _ in done for t in texts], [p for _, probs in done for p in probs]


def tokens_of(text: str, kind: str) -> list[str]:
    """The units of the token error rate: words, or characters for char and byte targets."""
    return list(text) if kind in ("char", "byte") else text.split()


def error_rates(metrics: dict) -> str:
    """The two error rates of ``metrics`` as every printout shows them: named by their keys, in percent."""
    return " | ".join(f"{key.replace('_', ' ')} {100 * metrics[key]:.2f}%"
                      for key in ("sequence_error_rate", "token_error_rate"))


def score(outputs: list[str], references: list[list[str]], kind: str) -> dict:
    """Metrics of ``outputs`` (one per source) against each source's references
    (see the module docstring); ``kind`` is the target tokenizer's."""
    import sacrebleu
    from rapidfuzz.distance import Levenshtein

    wrong, errors, length = 0, 0, 0
    for out, refs in zip(outputs, references):
        out_tokens = tokens_of(out, kind)
        distance, minus_len = min((Levenshtein.distance(out_tokens, tokens_of(r, kind)), -len(tokens_of(r, kind)))
                                  for r in refs)  # the nearest reference; of equally near ones the longest
        ref_len = -minus_len
        wrong += " ".join(out_tokens) not in {" ".join(tokens_of(r, kind)) for r in refs}
        errors, length = errors + distance, length + ref_len
    streams = [[refs[k] if k < len(refs) else None for refs in references]
               for k in range(max(map(len, references)))]
    return {"sequence_error_rate": wrong / len(outputs), "token_error_rate": errors / max(length, 1),
            "bleu": sacrebleu.corpus_bleu(outputs, streams).score,
            "chrf": sacrebleu.corpus_chrf(outputs, streams).score, "sources": len(outputs)}


def score_pairs(model, data, split: str, beam_size: int = 1, length_penalty: float = 1.0,
                max_length: int | None = None, progress: bool = False, group=None) -> dict:
    """A seq2seq model's outputs for the distinct sources of a split of
    ``data`` (a :class:`rnnkit.data.PairData`), scored by :func:`score`
    against every target of their source (the ranks of ``group`` share the decoding)."""
    pairs = getattr(data, split)
    refs = references(pairs.sources, pairs.targets)
    first: dict[str, int] = {}  # source -> its first pair, whose ids it has
    for i, s in enumerate(pairs.sources):
        first.setdefault(s, i)
    ids = [pairs.examples.ids[first[s]] for s in refs]
    hyps = decode(model, ids, beam_size, length_penalty, max_length=max_length, progress=progress, group=group)
    outputs = [data.target_tokenizer.decode(h[0].tokens) for h in hyps]
    return score(outputs, list(refs.values()), data.target_tokenizer.kind)


def score_speech(model, data, split: str, beam_size: int = 1, lm=None, lm_weight: float = 0.0,
                 insertion_bonus: float = 0.0, progress: bool = False, group=None) -> dict:
    """A CTC recogniser's transcripts of a split of ``data`` (a
    :class:`rnnkit.data.SpeechData`), scored by :func:`score` against the
    manifest's transcripts, a character a token (the ranks of ``group`` share the decoding)."""
    part = getattr(data, split)
    texts, _ = transcribe(model, list(part.examples.ids), data.target_tokenizer, beam_size, lm, lm_weight,
                          insertion_bonus, progress=progress, group=group)
    return score(texts, [[t] for t in part.transcripts], "char")


@torch.no_grad()
def evaluate_pairs(model, batches, endings: bool = True, group=None) -> dict:
    """The loss over ``batches`` of :class:`PairBatch` (x, x_lengths, y, y_lengths), teacher-forced
    for a seq2seq model: loss (nats per target token, each ending counted as a
    token when ``endings``, as a seq2seq loss counts them; a CTC loss does not)
    and perplexity. The ranks of ``group`` share the batches."""
    device = next(model.parameters()).device
    sums = []  # (summed loss, target tokens) a batch
    with evaluating(model):
        for batch in share(batches, group):
            loss, _ = model.loss(to_device(batch, device))
            n = int((batch.y_lengths + endings).sum())
            sums.append((loss.item() * n, n))
    sums = gather_shares(sums, group)
    total, count = sum(t for t, _ in sums), sum(n for _, n in sums)
    return {"loss": total / count, "perplexity": math.exp(total / count)}
