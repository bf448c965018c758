"""An encoder-decoder (sequence to sequence) with attention: one sequence in,
another of its own length out (Sutskever et al. 2014; Bahdanau et al. 2015;
Luong et al. 2015; Goodfellow et al. 10.4).

    o_1..o_S = Encoder(x_1..x_S)                        (B, S, F) bidirectional, stacked
    s_0 = the encoder's final states, directions merged per layer
    for t = 1, 2, ...:
        i_t = [E[y_{t-1}] ; h̃_{t-1}]                    input feeding (h̃_0 = 0; y_0 = <s>)
        h_t, s_t = Cells(i_t, s_{t-1})                  (B, F)  decoder_recurrence="hidden"
        c_t, α_t = Attention(h_t, o_1..o_S)             (B, F), (B, S)
        h̃_t = tanh(W_c [c_t ; h_t])                     (B, F)
        p(y_t | y_<t, x) = softmax(W_o h̃_t + b_o)        (B, V + 1)

The decoder has the encoder's output width F (2H for a bidirectional encoder
joined by concat), so the encoder's final states start it as they are and the
dot score needs no projection. ``attention="none"`` is the plain
encoder-decoder whose only view of the source is s_0 (h̃_t = h_t).

How the output ends (``sequence_end``):

- ``eos``: the output vocabulary has one more symbol, </s>, id V (also the
  input id of <s>); a sequence ends when </s> is chosen;
- ``stop``: the lectures' alternative, a Bernoulli output per step,
  p_t = σ(w_s · h̃_t + b_s), the probability that y_t is the last symbol.
  Then p(y_1..y_U) = Π_t p(y_t) Π_{t<U} (1 - p_t) p_U.

For decoding both are one distribution over V + 1 choices per step (column
V: end here): for ``stop``, log p_{t-1} for ending and
log(1 - p_{t-1}) + log p(y_t) for the tokens, so greedy and beam search do
not depend on the ending.

The decoder's recurrence (``decoder_recurrence``):

- ``hidden``: as above, h_t reads h_{t-1};
- ``output``: the lectures' decoder with output-to-hidden recurrence only
  (Goodfellow et al. 10.2.1, figure 10.4): h_t = tanh(W_h [E[y_{t-1}] ; P_t] + b_h),
  with P_t a sinusoidal code of the step t (Vaswani et al. 2017) so that h_t
  knows where it is, and no s_{t-1} or h̃_{t-1}. Under teacher forcing all
  steps are then independent and train as one batch of (B, U) positions.

Training feeds y_{t-1} from the target (teacher forcing) or, with
probability 1 - ``teacher_forcing`` per token, a token sampled from the
model's own distribution at t-1 (scheduled sampling, Bengio et al. 2015; the
trainer sets ``teacher_forcing`` from its schedule).

A batch is a :class:`rnnkit.data.batches.PairBatch` (x, x_lengths, y,
y_lengths): source ids x (B, S) padded with 0, target ids y (B, U) padded
with IGNORE, lengths >= 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import check_choice, setting, smoothing
from rnnkit.data.batches import PairBatch
from rnnkit.kernels import State, cell_class, cell_options
from rnnkit.layers import length_mask, merge_directions
from rnnkit.layers.attention import Attention, Memory
from rnnkit.layers.dropout import dropout
from rnnkit.models.decoding import Greedy, decode
from rnnkit.models.encoder import Encoder, EncoderConfig, reading_both_ways


@dataclass
class Seq2SeqConfig(EncoderConfig):
    """:class:`rnnkit.models.encoder.EncoderConfig` and the decoder's: its attention, its recurrence and how an
    output ends."""

    attention: str = setting("seq2seq: the decoder's attention score over the source: additive (Bahdanau), "
                             "dot or general (Luong), or none (the source reaches the decoder only through "
                             "the encoder's final state)", default="additive")
    input_feeding: bool = setting("seq2seq: feed each step's attentional state to the next step's input "
                                  "(Luong et al. 2015)", default=True)
    decoder_recurrence: str = setting("seq2seq: hidden (the decoder's state reads its previous state) or output "
                                      "(it reads only the previous output token, so teacher-forced steps "
                                      "train in parallel)", default="hidden")
    sequence_end: str = setting("seq2seq: how an output ends: eos (an end-of-sequence symbol) or stop (a "
                                "Bernoulli stop output at each step)", default="eos")

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "attention", ("additive", "dot", "general", "none"))
        check_choice(self, "decoder_recurrence", ("hidden", "output"))
        check_choice(self, "sequence_end", ("eos", "stop"))


class DecoderState(NamedTuple):
    """The decoder between steps: ``layers`` (a cell state per layer, each
    a tuple of (N, F)), ``feed`` h̃_{t-1} (N, F), ``end`` (N,) log p_{t-1} of
    ending after the previous token (``sequence_end="stop"``; -inf before the
    first), ``step`` t - 1 (an int, or a tensor (N,) of them in an exported step)."""

    layers: list[State]
    feed: Tensor
    end: Tensor
    step: int | Tensor

    def index_select(self, index: Tensor) -> "DecoderState":
        """The state of rows ``index`` (N',) (beam search's reordering)."""
        return DecoderState([tuple(s.index_select(0, index) for s in layer) for layer in self.layers],
                            self.feed.index_select(0, index), self.end.index_select(0, index), self.step)


def wide(t: Tensor) -> Tensor:
    """t (any shape) in fp32 at least (bf16 under autocast becomes fp32; fp64 stays): for losses and
    log-probabilities."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def step_code(t: Tensor, width: int) -> Tensor:
    """The sinusoidal code of steps t of any shape (...,) -> (..., width): sin and cos of t / 10000^(2k/width)."""
    k = torch.arange(width // 2, device=t.device, dtype=torch.float32)
    angles = t.float()[..., None] / torch.pow(10000.0, 2 * k / width)  # (..., width/2)
    code = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(code, (0, width - code.shape[-1]))


class Seq2Seq(nn.Module):
    """Args: ``source_vocab_size``, ``target_vocab_size`` (V, without </s>)
    and the fields of :class:`Seq2SeqConfig` as keywords (``bidirectional``
    None means True).

    ``forward(x, x_lengths, y, y_lengths=None) -> (logits, loss)`` scores the
    targets teacher-forced; ``loss(batch)`` is its mean negative
    log-likelihood per target token (</s> or the stop decision included). ``start(x, lengths)`` and
    ``step(tokens, state, memory)`` are the decoder one step at a time, which
    :func:`rnnkit.models.decoding.decode` drives with a strategy (:func:`greedy`,
    :func:`rnnkit.models.beam.beam_search`).
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, **config):
        super().__init__()
        self.config = c = reading_both_ways(config, Seq2SeqConfig)
        self.encoder = Encoder(source_vocab_size, c)
        self.size = F_ = self.encoder.output_size
        self.vocab_size = V = target_vocab_size
        self.end = V  # </s> as an output, <s> as an input
        self.stop_bit = c.sequence_end == "stop"
        self.embedding = nn.Embedding(V + 1, c.embedding_dim)
        E = c.embedding_dim
        self.feeding = c.input_feeding and c.attention != "none" and c.decoder_recurrence == "hidden"
        if c.decoder_recurrence == "hidden":
            cls = cell_class(c.cell)
            options = cell_options(c.cell, c)
            self.cells = nn.ModuleList(
                cls(E + F_ * self.feeding if k == 0 else F_, F_, input_init=c.input_init,
                    recurrent_init=c.recurrent_init, **options) for k in range(c.num_layers))
        else:
            self.hidden = nn.Linear(2 * E, F_)
        self.attention = Attention(c.attention, F_) if c.attention != "none" else None
        self.combine = nn.Linear(2 * F_, F_) if self.attention else None  # W_c
        self.head = nn.Linear(F_, V if self.stop_bit else V + 1)
        self.stop = nn.Linear(F_, 1) if self.stop_bit else None

    # -- the encoder side -------------------------------------------------------

    def start(self, x: Tensor, lengths: Tensor) -> tuple[DecoderState, Memory | None]:
        """Encode x (B, S) -> the decoder's first state and the memory it attends over."""
        outputs, state = self.encoder(x, lengths)  # (B, S, F), each (L*D, B, H)
        B = x.shape[0]
        memory = self.attention.memory(outputs, length_mask(lengths, x.shape[1])) if self.attention else None
        layers = []
        if self.config.decoder_recurrence == "hidden":
            for k, cell in enumerate(self.cells):
                if state is None:  # a tdnn encoder has no final state
                    layers.append(cell.init_state(B, x.device, outputs.dtype))
                    continue
                D = 2 if self.config.bidirectional else 1
                # this layer's (D, B, H) each: the cell's own state, not an encoder's skip history
                layer = [s[k * D:(k + 1) * D] for s in state[:cell.state_size]]
                if D == 2:
                    layer = [merge_directions(s[0], s[1], self.config.merge) for s in layer]
                else:
                    layer = [s[0] for s in layer]
                layers.append(tuple(layer))
        feed = outputs.new_zeros(B, self.size)
        end = torch.full((B,), float("-inf"), device=x.device, dtype=wide(outputs).dtype)
        return DecoderState(layers, feed, end, 0), memory

    # -- one decoder step -------------------------------------------------------

    def _decode(self, tokens: Tensor, state: DecoderState,
                memory: Memory | None) -> tuple[Tensor, DecoderState, Tensor | None]:
        """tokens y_{t-1} (N,) -> h̃_t (N, F), the next state, α_t (N, S) or None."""
        c = self.config
        e = dropout(self.embedding(tokens), c.dropout, self.training)  # (N, E)
        new_layers = []
        if c.decoder_recurrence == "hidden":
            x = torch.cat([e, state.feed.to(e.dtype)], dim=-1) if self.feeding else e  # (N, E [+ F])
            for k, (cell, s) in enumerate(zip(self.cells, state.layers)):
                h, s = cell(x, s)  # (N, F)
                new_layers.append(s)
                x = dropout(h, c.dropout, self.training) if k + 1 < len(self.cells) else h
        else:
            steps = state.step if torch.is_tensor(state.step) else torch.full_like(tokens, state.step)  # (N,)
            code = step_code(steps, e.shape[-1]).to(e.dtype)  # (N, E)
            h = torch.tanh(self.hidden(torch.cat([e, code], dim=-1)))  # (N, F)
        out, weights = self._attend(h.unsqueeze(1), memory)
        out = out.squeeze(1)
        return out, DecoderState(new_layers, out, state.end, state.step + 1), \
            None if weights is None else weights.squeeze(1)

    def _attend(self, h: Tensor, memory: Memory | None) -> tuple[Tensor, Tensor | None]:
        """Decoder states h (B, Q, F) -> h̃ (B, Q, F) and α (B, Q, S)."""
        if self.attention is None:
            return h, None
        context, weights = self.attention(h, memory)  # (B, Q, F), (B, Q, S)
        return torch.tanh(self.combine(torch.cat([context, h], dim=-1))), weights

    def _log_probs(self, out: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
        """h̃_t (..., F) and log p_{t-1} of ending before it (...,) -> log-probabilities
        over the V tokens and ending (..., V + 1), and log p_t (...,) of ending after y_t."""
        logits = wide(self.head(dropout(out, self.config.dropout, self.training)))
        if not self.stop_bit:
            return F.log_softmax(logits, dim=-1), end
        go_on = torch.log1p(-end.exp()).clamp_max(0)  # log(1 - p_{t-1})  (...,)
        tokens = F.log_softmax(logits, dim=-1) + go_on[..., None]
        return torch.cat([tokens, end[..., None]], dim=-1), F.logsigmoid(wide(self.stop(out)).squeeze(-1))

    def step(self, tokens: Tensor, state: DecoderState,
             memory: Memory | None) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step: the previous tokens (N,) -> log-probabilities (N, V + 1)
        of the next choice (column V: end), the next state, α (N, S) or None."""
        out, state, weights = self._decode(tokens, state, memory)
        log_probs, end = self._log_probs(out, state.end)
        return log_probs, state._replace(end=end), weights

    # -- training ---------------------------------------------------------------

    teacher_forcing: float = 1.0  # P(feed the target's y_{t-1}); the trainer's schedule sets it

    def forward(self, x: Tensor, x_lengths: Tensor, y: Tensor,
                y_lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced (or scheduled-sampling) scores of targets y (B, U) (padding may hold any id) ->
        (logits (B, U', V + 1), loss).

        With ``sequence_end="eos"`` the decoder reads <s> y_1..y_U, U' = U + 1 steps, and column V is
        </s> in the softmax: step t scores y_t, step U_b + 1 the ending of sequence b. With ``"stop"``
        it reads <s> y_1..y_{U-1}, U' = U, and column V is the stop output's logit w_s · h̃_t + b_s (a
        Bernoulli's, outside the softmax over the first V columns). ``loss`` is :meth:`loss`'s, the mean
        negative log-likelihood per target token and ending, given ``y_lengths`` (B,); None without.
        """
        B, U = y.shape
        if self.stop_bit:
            out = self._teacher_forced(x, x_lengths, y)  # (B, U, F)
            logits = wide(self.head(dropout(out, self.config.dropout, self.training)))  # (B, U, V)
            stops = wide(self.stop(out))  # (B, U, 1)
            if y_lengths is None:
                return torch.cat([logits, stops], dim=-1), None
            nll = F.cross_entropy(logits.reshape(B * U, -1), y.reshape(-1), reduction="sum",
                                  label_smoothing=smoothing(self))
            stops = stops.squeeze(-1)  # (B, U)
            last = (torch.arange(U, device=y.device)[None, :] == (y_lengths - 1)[:, None]).to(stops.dtype)  # (B, U)
            valid = length_mask(y_lengths, U)
            nll = nll + F.binary_cross_entropy_with_logits(stops[valid], last[valid], reduction="sum")
            return torch.cat([logits, stops[..., None]], dim=-1), nll / int((y_lengths + 1).sum())
        out = self._teacher_forced(x, x_lengths, torch.cat([y.clamp_min(0), y.new_zeros(B, 1)], dim=1))  # (B, U+1, F)
        logits = wide(self.head(dropout(out, self.config.dropout, self.training)))  # (B, U + 1, V + 1)
        if y_lengths is None:
            return logits, None
        # </s> after each target: y_1..y_U, </s>, then padding
        targets = torch.cat([y, y.new_full((B, 1), -100)], dim=1)  # (B, U + 1)
        targets[torch.arange(B, device=y.device), y_lengths] = self.end
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
                              label_smoothing=smoothing(self))
        return logits, nll / int((y_lengths + 1).sum())  # per token and ending

    def _teacher_forced(self, x: Tensor, x_lengths: Tensor, y: Tensor) -> Tensor:
        """The decoder's outputs h̃ (B, U, F) reading <s> y_1..y_{U-1} of y (B, U) (or, under scheduled
        sampling, its own choices in their place)."""
        state, memory = self.start(x, x_lengths)
        B, U = y.shape
        inputs = torch.cat([y.new_full((B, 1), self.end), y[:, :-1].clamp_min(0)], dim=1)  # <s> y_1..y_{U-1}
        sampling = self.training and self.teacher_forcing < 1.0
        if self.config.decoder_recurrence == "output" and not sampling:  # every step at once
            e = dropout(self.embedding(inputs), self.config.dropout, self.training)  # (B, U, E)
            code = step_code(torch.arange(U, device=x.device), e.shape[-1]).to(e.dtype)  # (U, E)
            h = torch.tanh(self.hidden(torch.cat([e, code.expand(B, U, -1)], dim=-1)))  # (B, U, F)
            return self._attend(h, memory)[0]
        outs, tokens = [], inputs[:, 0]
        for t in range(U):
            if t > 0:
                tokens = inputs[:, t]
                if sampling:
                    with torch.no_grad():
                        logits = wide(self.head(outs[-1]))[:, :self.vocab_size]  # (B, V): no </s> mid-sequence
                        own = torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(1)
                    coin = torch.rand(B, device=x.device) < self.teacher_forcing
                    tokens = torch.where(coin, tokens, own)
            out, state, _ = self._decode(tokens, state, memory)
            outs.append(out)
        return torch.stack(outs, dim=1)  # (B, U, F)

    def loss(self, batch: PairBatch, state=None) -> tuple[Tensor, None]:
        """A :class:`PairBatch` (x (B, S), x_lengths (B,), y (B, U), y_lengths (B,)) -> (the forward
        pass's mean negative log-likelihood per target token (each sequence's ending counts as one), no
        carried state)."""
        return self(batch.x, batch.x_lengths, batch.y, batch.y_lengths)[1], None

    def loss_terms(self, batch) -> int:
        """How many predictions :meth:`loss` averages over: each target token and its ending."""
        return int((batch.y_lengths + 1).sum())


def greedy(model: Seq2Seq, x: Tensor, lengths: Tensor, max_length: int) -> tuple[list[list[int]], list[Tensor]]:
    """The likeliest choice at every step, for a batch: x (B, S), lengths (B,)
    -> each sentence's tokens (without </s>) and its attention weights
    (U_b + 1, S_b): each token's step and the step that chose the end (empty
    without attention). At most ``max_length`` tokens. :class:`Greedy` in
    :func:`rnnkit.models.decoding.decode`, as beam search is :class:`rnnkit.models.beam.Beam`."""
    return decode(model, x, lengths, Greedy(x.shape[0], model.end, max_length, lengths, x.device))
