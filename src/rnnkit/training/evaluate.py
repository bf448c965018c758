"""Language-model evaluation: loss in nats/token, bits/token, perplexity.

Three protocols over a split of N tokens, all scoring the N - 1 predictions:

- streams (``window=None``): the split read as ``streams`` contiguous
  streams with the state carried (``streams=1`` reads it as one, as char-rnn
  evaluates; more streams are faster and lose only the cold starts);
- windows (``window=W``): independent windows of W tokens, each from a zero
  state, the protocol that fits a W-token-context model such as nanoGPT;
- dynamic (:func:`evaluate_dynamic`): one stream, and the model goes on
  learning from the text it has already scored (Mikolov's RNNLM toolkit;
  Krause et al., "Dynamic Evaluation of Neural Sequence Models", 2018).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.batches import to_device
from rnnkit.data.tokenfile import as_tensor
from rnnkit.training.decode import evaluating
from rnnkit.training.distributed import gather_shares, share
from rnnkit.training.metrics import accuracy, chunk_f1, chunk_tags, classification_report


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, streams: int = 1, window: int | None = None,
             chunk_len: int = 1024, windows_per_batch: int = 256) -> dict:
    """Evaluate ``model`` on ``ids`` (N,) int64; returns loss, bpc, perplexity, tokens."""
    if len(ids) < 2:
        raise ValueError(f"evaluate: need at least 2 tokens, got {len(ids)}")
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with evaluating(model):
        if window:
            ids = as_tensor(ids)
            n = (len(ids) - 1) // window * window  # full windows only
            rest = len(ids) - 1 - n
            x = ids[:n].view(-1, window)
            y = ids[1:n + 1].view(-1, window)
            if rest:  # the last partial window, so every prediction counts
                x_tail, y_tail = ids[n:n + rest].view(1, -1), ids[n + 1:].view(1, -1)
            for i in range(0, len(x), windows_per_batch):
                total, count = _add(model, x[i:i + windows_per_batch], y[i:i + windows_per_batch],
                                    None, device, total, count)[:2]
            if rest:
                total, count = _add(model, x_tail, y_tail, None, device, total, count)[:2]
        else:
            total, count = stream_sums(model, ids, streams, chunk_len)
    return metrics_of(total, count)


@torch.no_grad()
def stream_sums(model, ids, streams: int, chunk_len: int = 1024, rank: int = 0, world: int = 1) -> tuple[float, int]:
    """(summed loss, predictions) of ``model`` (in the mode it is in) over ``ids`` read as
    ``streams`` contiguous streams with the state carried, and the tail they leave;
    with ``world`` > 1, over streams ``rank``, ``rank + world``, ... only (rank 0
    takes the tail), so that the sums of all ranks are the whole split's."""
    device = next(model.parameters()).device
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    L = (len(ids) - 1) // streams
    mine = np.arange(rank, streams, world)
    total, count, state = 0.0, 0, None
    if len(mine):
        for x, y in _stream_chunks(ids, streams, L, chunk_len, mine):
            total, count, state = _add(model, x, y, state, device, total, count)
    if rank == 0 and streams * L < len(ids) - 1:  # the tail the streams did not cover
        tail = as_tensor(ids[streams * L:])
        total, count = _add(model, tail[:-1].view(1, -1), tail[1:].view(1, -1), None, device, total, count)[:2]
    return total, count


def _stream_chunks(ids, streams: int, L: int, chunk_len: int, rows: np.ndarray):
    """(x, y) of streams ``rows`` of ``streams`` contiguous streams of L predictions,
    ``chunk_len`` columns at a time: from a tensor's views, or read from a token file."""
    if torch.is_tensor(ids):
        index = torch.from_numpy(rows)
        x = ids[:streams * L].view(streams, L)[index]
        y = ids[1:streams * L + 1].view(streams, L)[index]
        for i in range(0, L, chunk_len):
            yield x[:, i:i + chunk_len], y[:, i:i + chunk_len]
        return
    starts = rows * L
    for i in range(0, L, chunk_len):
        w = ids.windows(starts + i, min(chunk_len, L - i) + 1)  # (rows, n + 1)
        yield w[:, :-1], w[:, 1:]


def metrics_of(total: float, count: int) -> dict:
    """loss (nats/token), bpc, perplexity and tokens from a summed loss over ``count`` predictions."""
    loss = total / count
    return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss), "tokens": count}


def evaluate_dynamic(model, ids: torch.Tensor, lr: float, segment_len: int = 50) -> dict:
    """Dynamic evaluation of ``model`` on ``ids`` (N,) int64, read as one stream.

    The stream is cut into segments s_1, s_2, ... of ``segment_len`` tokens.
    Each segment is scored first and learnt from afterwards, so every
    prediction still sees only the text before it::

        score   L_k = -sum_{t in s_k} log p(x_{t+1} | x_<=t; theta_{k-1})
        learn   theta_k = theta_{k-1} - lr * grad L_k / |s_k|     (plain SGD)

    with the state carried across segments and backpropagation truncated at
    their boundaries. The gain comes from what the text repeats within itself
    and training never showed (names, a topic), so report it beside the
    static score, never instead of it. ``model`` is not changed: a copy
    learns. Returns what :func:`evaluate` does.
    """
    if len(ids) < 2:
        raise ValueError(f"evaluate_dynamic: need at least 2 tokens, got {len(ids)}")
    if lr < 0 or segment_len < 1:
        raise ValueError(f"evaluate_dynamic: need lr >= 0 and segment_len >= 1, got {lr} and {segment_len}")
    learner = copy.deepcopy(model).eval()  # no dropout; the caller's weights stay as they are
    optimizer = torch.optim.SGD([p for p in learner.parameters() if p.requires_grad], lr=lr)
    device = next(learner.parameters()).device
    ids = as_tensor(ids)
    x, y = ids[:-1].view(1, -1).to(device), ids[1:].view(1, -1).to(device)  # (1, N - 1)
    total, state = 0.0, None
    with torch.enable_grad():  # also when called under torch.no_grad()
        for i in range(0, x.shape[1], segment_len):
            (logits, state), _ = learner(x[:, i:i + segment_len], state=state)  # (1, S, V)
            loss = F.cross_entropy(logits[0].float(), y[0, i:i + segment_len], reduction="sum")
            total += loss.item()
            optimizer.zero_grad(set_to_none=True)
            (loss / logits.shape[1]).backward()
            optimizer.step()
            state = tuple(s.detach() for s in state)  # truncate BPTT at the segment boundary
    return metrics_of(total, x.shape[1])


def _add(model, x, y, state, device, total, count):
    (logits, state), _ = model(x.to(device), state=state)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1),
                           reduction="sum")
    return total + loss.item(), count + y.numel(), state


@torch.no_grad()
def evaluate_texts(model, batches, group=None) -> dict:
    """A conditioned language model over ``batches`` of independent texts
    (:class:`LabelledBatch`: texts, lengths, their labels as conditions): what
    :func:`evaluate` returns, each text's first token given and the others
    predicted; the batches split over the ranks of ``group``
    (:mod:`rnnkit.training.distributed`)."""
    device = next(model.parameters()).device
    sums = []  # (summed loss, predictions) a batch
    with evaluating(model):
        for batch in share(batches, group):
            loss, _ = model.loss(to_device(batch, device))
            n = int((batch.lengths - 1).sum())  # each text of length n predicts n - 1 tokens
            sums.append((loss.item() * n, n))
    sums = gather_shares(sums, group)
    return metrics_of(sum(t for t, _ in sums), sum(n for _, n in sums))


@torch.no_grad()
def evaluate_labelled(model, batches, labels: list[str], device=None, group=None) -> dict:
    """Loss and predictions of a classifier or tagger over ``batches`` of
    :class:`LabelledBatch` (x, lengths, y): loss (mean per example or token), accuracy, macro F1
    over the labels (classify) or, for tags with B-/I- prefixes, the chunk
    F1 of conlleval (tag); ``predicted`` and ``gold`` hold the label names.
    The batches split over the ranks of ``group`` (:mod:`rnnkit.training.distributed`)."""
    device = device or next(model.parameters()).device
    results = []  # a batch's (summed loss, terms, gold, predicted)
    with evaluating(model):
        for batch in share(batches, group):
            batch = to_device(batch, device)
            x, lengths, y = batch.x, batch.lengths, batch.y
            loss, _ = model.loss(batch)
            n = int(lengths.sum()) if y.dim() == 2 else len(y)
            pred = model.predict(x, lengths).cpu()
            if y.dim() == 1:
                gold = [labels[i] for i in y.tolist()]
                predicted = [labels[i] for i in pred.tolist()]
            else:
                spans = list(enumerate(lengths.tolist()))
                gold = [[labels[i] for i in y[b, :n_b].tolist()] for b, n_b in spans]
                predicted = [[labels[i] for i in pred[b, :n_b].tolist()] for b, n_b in spans]
            results.append((loss.item() * n, n, gold, predicted))
    results = gather_shares(results, group)
    gold = [g for r in results for g in r[2]]
    predicted = [p for r in results for p in r[3]]
    loss = sum(r[0] for r in results) / max(sum(r[1] for r in results), 1)
    return {"loss": loss, "examples": len(gold), **score_labels(gold, predicted, labels),
            "gold": gold, "predicted": predicted}


def score_labels(gold: list, predicted: list, labels: list[str]) -> dict:
    """Accuracy and F1 of ``predicted`` label names against ``gold`` ones: lists of tags a
    sentence (accuracy over tokens; conlleval's chunk F1 where the tags have B-/I-/E-/S- prefixes)
    or one label an example (macro F1 over ``labels`` and any gold label outside them, which
    the model cannot predict and so scores 0). Empty without examples."""
    if not gold:
        return {}
    if isinstance(gold[0], list):
        names = set(labels).union(*gold)
        result = {"accuracy": accuracy(gold, predicted)}  # over tokens
        if chunk_tags(names):
            result["f1"] = chunk_f1(gold, predicted)["f1"] / 100
        return result
    report = classification_report(gold, predicted, list(labels) + sorted(set(gold) - set(labels)))
    return {"accuracy": report["accuracy"], "f1": report["macro_f1"]}
