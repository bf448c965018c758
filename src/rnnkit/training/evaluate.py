"""Language-model evaluation: loss in nats/token, bits/token, perplexity.

Two protocols over a split of N tokens, both scoring the N - 1 predictions:

- streams (``window=None``): the split read as ``streams`` contiguous
  streams with the state carried (``streams=1`` reads it as one, as char-rnn
  evaluates; more streams are faster and lose only the cold starts);
- windows (``window=W``): independent windows of W tokens, each from a zero
  state, the protocol that fits a W-token-context model such as nanoGPT.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, streams: int = 1, window: int | None = None,
             chunk_len: int = 1024, windows_per_batch: int = 256) -> dict:
    """Evaluate ``model`` on ``ids`` (N,) int64; returns loss, bpc, perplexity, tokens."""
    if len(ids) < 2:
        raise ValueError(f"evaluate: need at least 2 tokens, got {len(ids)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        if window:
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
            streams = max(1, min(streams, (len(ids) - 1) // 2))
            L = (len(ids) - 1) // streams
            x = ids[:streams * L].view(streams, L)
            y = ids[1:streams * L + 1].view(streams, L)
            state = None
            for i in range(0, L, chunk_len):
                total, count, state = _add(model, x[:, i:i + chunk_len], y[:, i:i + chunk_len],
                                           state, device, total, count)
            if streams * L < len(ids) - 1:  # the tail the streams did not cover
                tail_x, tail_y = ids[streams * L:-1].view(1, -1), ids[streams * L + 1:].view(1, -1)
                total, count = _add(model, tail_x, tail_y, None, device, total, count)[:2]
    finally:
        model.train(was_training)
    loss = total / count
    return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss), "tokens": count}


def _add(model, x, y, state, device, total, count):
    logits, _, state = model(x.to(device), state=state)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1),
                           reduction="sum")
    return total + loss.item(), count + y.numel(), state
