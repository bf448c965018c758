"""Each model's inference as graphs another runtime can run: modules whose
inputs and outputs are plain tensors, for ``torch.onnx.export``
(:mod:`rnnkit.training.export` writes them; ``rnnkit export RUN``).

A :class:`Graph` is one such module with its named inputs and outputs, their
shapes (a letter for an axis that varies: B batch, T time, S source length;
a number for a fixed one) and a maker of example inputs of any batch and time.
The graphs per model:

- language model, :class:`LanguageModelStep`: token ids (B, T) and the
  carried state, each (L, B, H) -> logits (B, T, V) and the next state; T = 1
  is one step of generation, T > 1 reads a prime in one call;
- classifier, :class:`Scores`: ids (B, T) and lengths (B,) -> label scores (B, K);
- tagger, :class:`Scores`: ids (B, T) and lengths (B,) -> emission scores
  (B, T, K) (a CRF's transitions are data beside the graph, decoded by Viterbi);
- CTC recogniser, :class:`Scores`: features (B, T, I) and lengths (B,) ->
  per-frame log-probabilities (B, T, V), blank at 0;
- seq2seq, :class:`Seq2SeqEncoder` (source -> the decoder's first state and
  the memory it attends over) and :class:`Seq2SeqDecoderStep` (one token ->
  log-probabilities over the next, the next state, the attention weights).

Padding: a sequence's results never depend on what lies past its length (the
recurrent layers stop at it), so a padded batch gives each row what it gives
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.layers.attention import Memory
from rnnkit.models.seq2seq import DecoderState

Shape = tuple[int | str, ...]  # a number: a fixed size; a letter: an axis that varies (B, T, S)


class Port(NamedTuple):
    """One input or output of a graph: its name, dtype ("int64", "float32", "bool") and shape."""

    name: str
    dtype: str
    shape: Shape
    doc: str = ""


class Graph(NamedTuple):
    """A module to export (positional tensors in, a tuple of tensors out), its ``inputs`` and
    ``outputs`` in order, and ``example(batch, time)``: inputs of that batch size and length
    (with padding: lengths from 1 to ``time``, one row at ``time``)."""

    name: str
    module: nn.Module
    inputs: list[Port]
    outputs: list[Port]
    example: Callable[[int, int], tuple[Tensor, ...]]
    doc: str


def state_names(state_size: int) -> list[str]:
    """The names of a cell state's tensors: ["h"] or ["h", "c"]."""
    return ["h", "c", *(f"s_{k + 2}" for k in range(state_size - 2))][:state_size]


def example_lengths(batch: int, time: int, generator: torch.Generator) -> Tensor:
    """Lengths (B,) in [1, time], the first row ``time`` long and, with two rows or more, one row
    shorter: a padded batch."""
    lengths = torch.randint(1, time + 1, (batch,), generator=generator)
    lengths[0] = time
    if batch > 1 and time > 1:
        lengths[-1] = torch.randint(1, time, (), generator=generator)
    return lengths


class LanguageModelStep(nn.Module):
    """``(ids (B, T), *state (L, B, H) each[, condition (B,)]) -> (logits (B, T, V), *next state)``:
    a :class:`rnnkit.models.LanguageModel`'s forward pass from a carried state. Generation feeds
    the prime (T tokens) from a zero state, then each chosen token (T = 1) with the state returned."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, *state_and_condition: Tensor) -> tuple[Tensor, ...]:
        """ids (B, T), the state tensors (L, B, H) each, then the condition (B,) if the model has one ->
        (logits (B, T, V), *next state)."""
        n = self.model.rnn.state_size
        state, condition = state_and_condition[:n], (state_and_condition[n:] or (None,))[0]
        (logits, state), _ = self.model(ids, state=tuple(state), condition=condition)
        return (logits, *state)

    def graph(self) -> Graph:
        """The step's export graph: named, typed ports with symbolic shapes, and example inputs."""
        m = self.model
        L, H, V = m.rnn.num_layers, m.rnn.hidden_size, m.vocab_size
        names = state_names(m.rnn.state_size)
        inputs = [Port("ids", "int64", ("B", "T"), "token ids: the prime, then one chosen token a step")]
        inputs += [Port(f"state_{s}", "float32", (L, "B", H), "the carried state; zeros to start") for s in names]
        if m.condition is not None:
            inputs.append(Port("condition", "int64", ("B",), "the label id to write texts of"))
        outputs = [Port("logits", "float32", ("B", "T", V), "next-token scores; softmax(logits / temperature)")]
        outputs += [Port(f"next_state_{s}", "float32", (L, "B", H), "the state to feed back") for s in names]

        def example(batch: int, time: int) -> tuple[Tensor, ...]:
            g = torch.Generator().manual_seed(batch * 1000 + time)
            ids = torch.randint(0, V, (batch, time), generator=g)
            state = tuple(0.5 * torch.randn(L, batch, H, generator=g) for _ in names)
            condition = (torch.randint(0, m.num_conditions, (batch,), generator=g),) if m.condition is not None else ()
            return (ids, *state, *condition)

        return Graph("step", self, inputs, outputs, example, "one or more steps of the language model from a "
                     "carried state (generation outside Python: feed back next_state_*)")


class Scores(nn.Module):
    """``(x, lengths (B,)) -> model(x, lengths)[0]``: a classifier's label scores (B, K), a tagger's
    emission scores (B, T, K) or a CTC recogniser's log-probabilities (B, T, V), x ids (B, T) or
    feature vectors (B, T, I)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor]:
        """x (B, T) or (B, T, I), lengths (B,) -> (the model's scores,) as the class docstring lists them."""
        return (self.model(x, lengths)[0],)

    def graph(self, name: str, output: Port, doc: str, vocab_size: int = 0, num_features: int = 0) -> Graph:
        """``vocab_size`` for ids x (B, T), else ``num_features`` for vectors x (B, T, I)."""
        x = (Port("ids", "int64", ("B", "T"), "token ids, padded after each length with any id")
             if vocab_size else
             Port("features", "float32", ("B", "T", num_features), "frames, padded after each length"))

        def example(batch: int, time: int) -> tuple[Tensor, ...]:
            g = torch.Generator().manual_seed(batch * 1000 + time)
            xs = (torch.randint(0, vocab_size, (batch, time), generator=g) if vocab_size
                  else torch.randn(batch, time, num_features, generator=g))
            return xs, example_lengths(batch, time, g)

        inputs = [x, Port("lengths", "int64", ("B",), "each sequence's length, 1 to T")]
        return Graph(name, self, inputs, [output], example, doc)


class Carried(NamedTuple):
    """Which parts of a seq2seq decoder's state a step reads (a graph drops inputs it does not read):
    ``states`` its cells' (L, B, F) tensors (none with ``decoder_recurrence="output"``), ``feed``
    h~_(t-1) with input feeding, ``end`` log p of ending with ``sequence_end="stop"``, ``step`` t - 1
    for an output-recurrent decoder's position code."""

    states: int
    feed: bool
    end: bool
    step: bool


def carried(model) -> Carried:
    """Which parts of ``model``'s decoder state its step reads (:class:`Carried`)."""
    hidden = model.config.decoder_recurrence == "hidden"
    return Carried(model.cells[0].state_size if hidden else 0, model.feeding, model.stop_bit, not hidden)


def _pack(model, state: DecoderState) -> tuple[Tensor, ...]:
    """A DecoderState as the tensors a graph carries (:func:`carried`): per-layer states stacked (L, B, F)."""
    c = carried(model)
    stacked = tuple(torch.stack([layer[i] for layer in state.layers]) for i in range(c.states))
    step = state.step if torch.is_tensor(state.step) else torch.full_like(state.end, state.step, dtype=torch.long)
    return (*stacked, *((state.feed,) if c.feed else ()), *((state.end,) if c.end else ()),
            *((step,) if c.step else ()))


class Seq2SeqEncoder(nn.Module):
    """``(ids (B, S), lengths (B,)) -> (*state (L, B, F) each[, feed (B, F)][, end (B,)][, step (B,)][, keys
    (B, S, F), values (B, S, F), mask (B, S)])``: :meth:`rnnkit.models.Seq2Seq.start`, its state as
    :func:`carried` says."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        """ids (B, S), lengths (B,) -> the flat tuple of the class docstring."""
        state, memory = self.model.start(ids, lengths)
        return (*_pack(self.model, state), *(() if memory is None else memory))


class Seq2SeqDecoderStep(nn.Module):
    """``(tokens (B,), *state[, keys, values, mask]) -> (log_probs (B, V + 1), *next state[, weights (B, S)])``:
    :meth:`rnnkit.models.Seq2Seq.step`, the state as :func:`carried` says. The first tokens are
    </s>'s id V (the start symbol)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        """tokens (B,), the flat state and memory -> (log_probs (B, V + 1), *next state[, weights (B, S)])."""
        m, c = self.model, carried(self.model)
        n = c.states
        layers = [tuple(s[k] for s in rest[:n]) for k in range(len(m.cells))] if n else []
        rest = rest[n:]
        feed = rest[0] if c.feed else torch.zeros(len(tokens), m.size)  # (B, F), unread without input feeding
        rest = rest[c.feed:]
        end = rest[0] if c.end else torch.full((len(tokens),), float("-inf"))  # (B,), unread with an </s>
        rest = rest[c.end:]
        step = rest[0] if c.step else 0  # (B,), read by an output-recurrent decoder only
        memory = Memory(*rest[c.step:]) if m.attention is not None else None
        log_probs, state, weights = m.step(tokens, DecoderState(layers, feed, end, step), memory)
        return (log_probs, *_pack(m, state), *(() if weights is None else (weights,)))


def seq2seq_graphs(model) -> list[Graph]:
    """The encoder and the decoder step of a :class:`rnnkit.models.Seq2Seq`."""
    m, c = model, carried(model)
    F_, V = m.size, m.vocab_size
    attends = m.attention is not None
    state = [Port(f"state_{s}", "float32", (len(m.cells), "B", F_)) for s in state_names(c.states)]
    carry = [Port("feed", "float32", ("B", F_), "the attentional state h~ of the previous step (input feeding)")]
    carry = carry[:c.feed] + [Port("end", "float32", ("B",), "log p of ending after the previous token (stop)")][:c.end]
    carry += [Port("step", "int64", ("B",), "the step's position t - 1 (output recurrence)")][:c.step]
    memory = [Port("keys", "float32", ("B", "S", F_)), Port("values", "float32", ("B", "S", F_)),
              Port("mask", "bool", ("B", "S"), "True at valid source positions")] if attends else []
    source = [Port("ids", "int64", ("B", "S"), "source token ids, padded after each length"),
              Port("lengths", "int64", ("B",), "each source's length")]

    def source_example(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time)
        return torch.randint(0, m.encoder.vocab_size, (batch, time), generator=g), example_lengths(batch, time, g)

    encoder = Seq2SeqEncoder(m)

    def step_example(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time + 1)
        with torch.no_grad():
            start = encoder(*source_example(batch, time))
        return (torch.randint(0, V + 1, (batch,), generator=g), *start)

    nexts = [p._replace(name="next_" + p.name) for p in state + carry]
    weights = [Port("weights", "float32", ("B", "S"), "attention over the source")] if attends else []
    return [Graph("encoder", encoder, source, state + carry + memory, source_example,
                  "the source read once: the decoder's first state and the memory it attends over"),
            Graph("decoder_step", Seq2SeqDecoderStep(m),
                  [Port("tokens", "int64", ("B",), f"the previous tokens; {V} (</s>) to start"), *state, *carry,
                   *memory],
                  [Port("log_probs", "float32", ("B", V + 1), f"the next choice; column {V}: end"), *nexts, *weights],
                  step_example, "one decoder step: feed back next_*; stop at column V (</s>)")]
