"""A model's parts that a language model's weights can start (ULMFiT, Howard
& Ruder 2018), and its layers from the top down, for fine-tuning them at
their own rates and unfreezing them one at a time.

Every model that reads tokens has the same three parts below its head: an
embedding E (V, E), a stack of recurrent layers, and (a language model
only) the output layer W_out (V, H) over the same vocabulary. A classifier,
a tagger and seq2seq's encoder hold the first two in their
:class:`rnnkit.models.encoder.Encoder`; seq2seq's decoder has an embedding
of its target tokens (V_t + 1, E) besides. :func:`parts` finds them;
:func:`copy_rows` copies a vocabulary's rows into another's by the token
each row stands for, never by index (the two vocabularies number their
words differently); :func:`layer_groups` lists the parameters from the top
(the head: everything that is not embedding or recurrent) down to the
embedding.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import torch
from torch import nn

from rnnkit.layers import Recurrent
from rnnkit.models.encoder import Encoder
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.seq2seq import Seq2Seq


class Parts(NamedTuple):
    """What a language model's weights can start: ``embedding`` (an ``nn.Embedding`` over the
    input tokens, or None), ``recurrent`` (the stack), ``output`` (a language model's output layer
    over the same vocabulary, else None), ``target_embedding`` (seq2seq's decoder's, else None)."""

    embedding: nn.Embedding | None
    recurrent: Recurrent
    output: nn.Linear | None = None
    target_embedding: nn.Embedding | None = None


def parts(model: nn.Module) -> Parts | None:
    """The parts of ``model`` a language model can start; None for a model without them (a tdnn or
    esn encoder, vectors for inputs)."""
    if isinstance(model, LanguageModel):
        return Parts(model.embedding, model.rnn, model.head)
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, Encoder) or not isinstance(encoder.layer, Recurrent):
        return None
    return Parts(encoder.embedding, encoder.layer, None, model.embedding if isinstance(model, Seq2Seq) else None)


@torch.no_grad()
def copy_rows(target: torch.Tensor, target_tokens: list[str], source: torch.Tensor,
              source_tokens: list[str], rescale_rest: bool = False) -> int:
    """Copy each row of ``source`` (V_s, ...) into the row of ``target`` (V_t, ...) that stands for
    the same token (``*_tokens``: each row's token, :func:`rnnkit.data.tokenizers.token_strings`);
    the rows of tokens ``source`` lacks stay as their initialisation drew them or, with
    ``rescale_rest``, scaled by σ(source) / σ(those rows): fresh rows of the size the copied rows
    have (an embedding initialised N(0, 1) beside a language model's rows of σ 0.06 would give the
    new words 17 times their weight). Returns the rows copied."""
    where = {token: i for i, token in enumerate(source_tokens)}
    pairs = [(i, where[token]) for i, token in enumerate(target_tokens) if token in where]
    if pairs:
        to, frm = (torch.tensor(column, device=target.device) for column in zip(*pairs))
        target[to] = source[frm.to(source.device)].to(target.dtype)
    rest = torch.ones(len(target), dtype=torch.bool, device=target.device)
    rest[[i for i, _ in pairs]] = False
    if rescale_rest and rest.sum() > 1:
        target[rest] *= (source.float().std() / target[rest].float().std()).to(target.dtype)
    return len(pairs)


def _layer_of(name: str, directions: int) -> int:
    """The layer of a recurrent stack's parameter ``name`` ("cells.3.weight_ih" with two directions: 1)."""
    kind, index = re.match(r"(\w+)\.(\d+)\.", name).groups()
    return int(index) // directions if kind == "cells" else int(index)


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """``model``'s parameters from the top down: [the head (all that is not below), the top recurrent
    layer, ..., the first recurrent layer, the embedding]: ULMFiT's layers, each fine-tuned at its
    own rate and unfrozen in this order. A parameter shared by two parts (a language model's tied
    output layer is its embedding) belongs to the lowest."""
    found = parts(model)
    if found is None:
        raise ValueError(f"{type(model).__name__}: no recurrent stack over an embedding to group by layer")
    rnn = found.recurrent
    below: list[list[nn.Parameter]] = [[] for _ in range(rnn.num_layers)]
    for name, p in rnn.named_parameters():
        below[_layer_of(name, rnn.num_directions)].append(p)
    groups = [layer for layer in reversed(below)]
    if found.embedding is not None:
        groups.append([found.embedding.weight])
    taken = {id(p) for group in groups for p in group}
    head = [p for p in model.parameters() if id(p) not in taken]
    return [head, *groups]
