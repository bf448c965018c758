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

import torch
from tqdm import tqdm

from rnnkit.data.pairs import collate_pairs
from rnnkit.models.beam import Hypothesis, beam_search


def decode(model, sources: list, beam_size: int = 1, length_penalty: float = 1.0, n_best: int = 1,
           max_length: int | None = None, batch_size: int = 64, progress: bool = False) -> list[list[Hypothesis]]:
    """The ``n_best`` hypotheses of every source (token ids (S,) each), in
    their order. Sources are decoded in batches of similar length; the
    longest output allowed is ``max_length`` tokens (default 2 S + 10)."""
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list = [None] * len(sources)
    bar = tqdm(total=len(sources), disable=not progress, unit="sentence", leave=False)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        x, lengths, _, _ = collate_pairs([sources[i] for i in index], [sources[i] for i in index])
        limit = max_length or 2 * int(lengths.max()) + 10
        hyps = beam_search(model, x.to(device), lengths.to(device), beam_size, limit, length_penalty, n_best)
        for i, h in zip(index, hyps):
            results[i] = h
        bar.update(len(index))
    bar.close()
    return results


def tokens_of(text: str, kind: str) -> list[str]:
    """The units of the token error rate: words, or characters for char and byte targets."""
    return list(text) if kind in ("char", "byte") else text.split()


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


@torch.no_grad()
def decoded_metrics(model, data, split: str) -> dict:
    """Greedy outputs of a split scored against its references: the token
    error rate and sequence error rate (and BLEU for seq2seq) of
    :func:`score`. For CTC the references are the transcripts and the tokens
    their labels (characters). The model's training mode is kept."""
    was_training = model.training
    try:
        return _decoded_metrics(model, data, split)
    finally:
        model.train(was_training)


def _decoded_metrics(model, data, split: str) -> dict:
    if data.config.task == "ctc":
        from rnnkit.data.speech import label_text

        device = next(model.parameters()).device
        model.eval()
        outputs, refs = [], []
        for x, lengths, y, y_lengths in data.eval_batches(split):
            labels = model.decode(x.to(device), lengths.to(device))
            outputs += [label_text(data.target_tokenizer, ids) for ids in labels]
            refs += [[label_text(data.target_tokenizer, row[:n].tolist())] for row, n in zip(y, y_lengths)]
        metrics = score(outputs, refs, "char")
        return {k: metrics[k] for k in ("token_error_rate", "sequence_error_rate")}
    from rnnkit.data.pairs import encode_line, references

    pairs = getattr(data, split)
    refs = references(pairs.sources, pairs.targets)
    sources = list(refs)
    hyps = decode(model, [encode_line(data.tokenizer, s, f"{split} source") for s in sources])
    outputs = [data.target_tokenizer.decode(h[0].tokens) for h in hyps]
    metrics = score(outputs, [refs[s] for s in sources], data.config.target_tokenizer_kind)
    return {k: metrics[k] for k in ("token_error_rate", "sequence_error_rate", "bleu")}


@torch.no_grad()
def evaluate_pairs(model, batches, endings: bool = True) -> dict:
    """The loss over ``batches`` of (x, x_lengths, y, y_lengths), teacher-forced
    for a seq2seq model: loss (nats per target token, each ending counted as a
    token when ``endings``, as a seq2seq loss counts them; a CTC loss does not)
    and perplexity."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for batch in batches:
            loss, _ = model.loss(tuple(t.to(device) for t in batch))
            n = int((batch[3] + endings).sum())
            total, count = total + loss.item() * n, count + n
    finally:
        model.train(was_training)
    return {"loss": total / count, "perplexity": math.exp(total / count)}
