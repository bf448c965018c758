"""A recurrent language model: embedding -> recurrent stack -> projection.

Output at every step, hidden-to-hidden recurrence (Goodfellow et al. 10.3):
the model reads tokens x_1..x_T and predicts x_{t+1} from h_t::

    e_t = E[x_t]                 (or one-hot(x_t) when embedding_dim = 0)
    h_t = RNN(e_t, h_{t-1})      (stacked cells, state carried across calls)
    p(x_{t+1} | x_{<=t}) = softmax(W_out h_t + b_out)

The loss is the mean cross-entropy in nats per token (log-softmax based).

Conditioned (``num_conditions`` K > 0; Goodfellow et al. 10.2.4, a vector
as an extra input at every step): a label k in [0, K) is embedded as
c = C[k] and read at every step beside the token, h_t = RNN([e_t; c], h_{t-1}),
so one model writes texts of each label (spam or not, ...).

Regularisers (``LanguageModelConfig``): dropout on e_t, between layers and on h_t
before W_out (Zaremba et al. 2014); ``locked_dropout``, one mask per
sequence for all steps (Gal & Ghahramani 2016); ``embedding_dropout``,
whole words dropped from E; ``tie_weights``, W_out = E (Press & Wolf 2017;
Inan et al. 2017), which needs E = H.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import ModelConfig, check_fraction, setting, smoothing
from rnnkit.data.batches import LabelledBatch, StreamBatch
from rnnkit.errors import ConfigError
from rnnkit.kernels import State, cell_options, gemm
from rnnkit.layers import Recurrent
from rnnkit.layers.dropout import dropout, keep_mask, locked_dropout
from rnnkit.models.decoding import Sampling, run
from rnnkit.models.stepping import Stepper

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # generate's weights: the model's own dtype, or bf16


@dataclass
class LanguageModelConfig(ModelConfig):
    """:class:`rnnkit.config.ModelConfig` and a language model's own regularisers."""

    locked_dropout: bool = setting("lm: one dropout mask per sequence for all time steps (variational / AWD-LSTM "
                                   "locked dropout) instead of a fresh mask per step", default=False)
    embedding_dropout: float = setting("lm: drop whole words from the embedding (every occurrence in a batch; "
                                       "Gal & Ghahramani 2016)", default=0.0)
    tie_weights: bool = setting("lm: the output layer reuses the input embedding (Press & Wolf 2017; needs "
                                "embedding_dim = hidden_size)", default=False)

    def __post_init__(self):
        super().__post_init__()
        check_fraction(self, "embedding_dropout")
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ConfigError(f"tie_weights needs embedding_dim = hidden_size; got {self.embedding_dim} and "
                              f"{self.hidden_size}")


class LMOutput(NamedTuple):
    """What a language model's forward pass computes besides the loss. The state is an output of the
    pass, as the logits are: truncated BPTT feeds it to the next call, so it travels with the logits and
    ``forward`` keeps every model's ``(outputs, loss)``."""

    logits: Tensor  # (B, T, V)
    state: State  # the recurrent state after the last step: a tuple of (L, B, H), (h,) or (h, c)


class LanguageModel(nn.Module):
    """Args: ``vocab_size`` (V), ``num_conditions`` (K labels to condition on;
    0 = none) and the fields of :class:`LanguageModelConfig` as keywords
    (``cell``, ``hidden_size``, ``num_layers``, ``embedding_dim``, ``dropout``,
    ``engine``, ...).

    ``forward(idx, targets=None, state=None, condition=None) -> (outputs, loss)``
    as every model's: idx (B, T) int64; outputs an :class:`LMOutput` (logits
    (B, T, V), state); loss a scalar (None without targets; targets of -100
    are skipped); condition (B,) label ids. ``state`` is the recurrent state
    to start from and, in the outputs, the state after the last step, to pass
    to the next call (truncated BPTT carries it from batch to batch).
    """

    def __init__(self, vocab_size: int, num_conditions: int = 0, **config):
        super().__init__()
        self.config = LanguageModelConfig(**config)
        c = self.config
        if c.bidirectional:
            raise ConfigError("a language model predicts the next token, so it cannot read the sequence "
                              "backwards; drop --bidirectional")
        self.vocab_size = vocab_size
        self.num_conditions = num_conditions
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim) if c.embedding_dim else None
        self.condition = nn.Embedding(num_conditions, c.embedding_dim or 16) if num_conditions else None
        input_size = (c.embedding_dim or vocab_size) + (self.condition.embedding_dim if num_conditions else 0)
        self.rnn = Recurrent(c.cell, input_size, c.hidden_size, c.num_layers,
                             dropout=c.dropout, engine=c.engine, locked_dropout=c.locked_dropout,
                             weight_drop=c.weight_drop, batchnorm=c.batchnorm,
                             input_noise=c.input_noise, weight_noise=c.weight_noise, skip_steps=c.skip_steps,
                             **cell_options(c.cell, c),  # forget_bias, ...
                             input_init=c.input_init, recurrent_init=c.recurrent_init)
        self.head = nn.Linear(c.hidden_size, vocab_size)
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=1.0)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if c.tie_weights:  # one (V, H) matrix reads the input and scores the output (E = H), so it
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # starts small, as an output layer
            self.head.weight = self.embedding.weight         # does (Zaremba et al.; Merity et al.)

    def init_state(self, batch_size: int) -> State:
        """The zero state for ``batch_size`` sequences: ``state_size`` tensors (L, B, H) (the recurrent layer's)."""
        return self.rnn.init_state(batch_size)

    def embed(self, idx: Tensor, condition: Tensor | None = None) -> Tensor:
        """idx (B, T) -> (B, T, E), or one-hot (B, T, V) when embedding_dim = 0;
        a conditioned model appends C[condition] (B, T, E_c) at every step."""
        e = self._embed_tokens(idx)
        if self.condition is None:
            return e
        if condition is None:
            raise ValueError("LanguageModel: this model is conditioned; pass condition (B,) label ids")
        c = self.condition(condition.to(idx.device).expand(idx.shape[0]))  # (B, E_c)
        return torch.cat([e, c[:, None, :].expand(-1, idx.shape[1], -1).to(e.dtype)], dim=-1)

    def _embed_tokens(self, idx: Tensor) -> Tensor:
        if self.embedding is None:
            return F.one_hot(idx, self.vocab_size).to(self.head.weight.dtype)
        weight = self.embedding.weight  # (V, E)
        p = self.config.embedding_dropout
        if self.training and p:  # drop whole words: a row of the embedding, for the whole batch
            weight = weight * keep_mask((weight.shape[0], 1), p, weight)
        return self.drop(F.embedding(idx, weight))

    def drop(self, x: Tensor) -> Tensor:
        """Dropout on embeddings and on the top layer's outputs (B, T, F): one
        mask per sequence with ``locked_dropout``, else one per step."""
        if self.config.locked_dropout:
            return locked_dropout(x, self.config.dropout, self.training)
        return dropout(x, self.config.dropout, self.training)

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: State | None = None,
                condition: Tensor | None = None) -> tuple[LMOutput, Tensor | None]:
        """idx (B, T), targets (B, T) or None, state or None, condition (B,) or None -> (LMOutput(logits
        (B, T, V), state), mean cross-entropy or None), as the class docstring says."""
        if idx.dim() != 2:
            raise ValueError(f"LanguageModel: expected token ids of shape (B, T), got {tuple(idx.shape)}")
        h, state = self.rnn(self.embed(idx, condition), state)  # (B, T, H)
        logits = gemm.linear(self.drop(h), self.head.weight, self.head.bias)  # (B, T, V)
        loss = None
        if targets is not None:
            # in fp32 at least, also when the logits come from bf16 autocast
            wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
            loss = F.cross_entropy(wide.reshape(-1, self.vocab_size), targets.reshape(-1),
                                   label_smoothing=smoothing(self))
        return LMOutput(logits, state), loss

    def loss(self, batch: StreamBatch | LabelledBatch, state: State | None = None) -> tuple[Tensor, State | None]:
        """The training contract, by the kind of batch:

        - :class:`StreamBatch` (x, y) each (B, T) -> (mean loss in nats/token, state to carry);
        - :class:`LabelledBatch` (x, lengths, y), for a conditioned model: independent texts x (B, T) padded
          after each length, each with its label y (B,) as the condition -> (mean loss over their next-token
          predictions, None).
        """
        if isinstance(batch, StreamBatch):
            (_, state), loss = self(batch.x, batch.y, state)
            return loss, state
        if not isinstance(batch, LabelledBatch):
            raise TypeError(f"LanguageModel.loss: expected a StreamBatch or a LabelledBatch, "
                            f"got {type(batch).__name__}")
        x, y = batch.x[:, :-1], batch.x[:, 1:].clone()  # (B, T-1): predict each next token
        y[torch.arange(y.shape[1], device=y.device)[None, :] >= (batch.lengths[:, None] - 1)] = -100  # padding
        _, loss = self(x, y, None, batch.y)
        return loss, None

    def loss_terms(self, batch: StreamBatch | LabelledBatch) -> int:
        """How many predictions :meth:`loss` averages over: every target of a
        stream batch; each text's tokens after its first in a conditioned one."""
        if isinstance(batch, StreamBatch):
            return batch.y.numel()
        return int((batch.lengths - 1).clamp(min=0).sum())

    @torch.no_grad()
    def generate(self, prime: Tensor | list[int], length: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None, precision: str = "fp32",
                 condition: int | None = None) -> Iterator[int | Tensor]:
        """Yield ``length`` tokens continuing ``prime``: ids (T,) give an int per
        step; a batch of primes (B, T) gives a (B,) tensor per step. T >= 1.

        The prime is read in one pass; then each token costs one cell step per
        layer, whatever the length so far, because the state is carried. Steps
        run on a :class:`rnnkit.models.stepping.Stepper` (weights prepared once:
        the first layer's input projection as a table, fused products),
        ``precision="bf16"`` with bf16 weights: half the bytes a step reads,
        faster at batch 1, logits within bf16 rounding of fp32. A conditioned
        model writes for the label id ``condition`` (the same for the whole batch).
        Each token is drawn by a :class:`rnnkit.models.decoding.Sampling` strategy
        in the decoding loop every decoder shares (:func:`rnnkit.models.decoding.run`).
        """
        if self.rnn.bidirectional:
            raise ValueError("LanguageModel.generate: a bidirectional model needs the whole sequence")
        if precision not in PRECISIONS:
            raise ValueError(f"LanguageModel.generate: precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        was_training = self.training
        self.eval()
        try:
            device = self.head.weight.device
            prime = torch.as_tensor(prime, dtype=torch.long, device=device)
            batched = prime.dim() == 2
            if prime.dim() not in (1, 2) or prime.shape[-1] == 0:
                raise ValueError(f"LanguageModel.generate: prime must be ids (T,) or (B, T) with T >= 1, "
                                 f"got shape {tuple(prime.shape)}")
            prime = prime.view(-1, prime.shape[-1])  # (B, T)
            cond = None if condition is None else torch.tensor([condition], device=device)
            if self.condition is not None and cond is None:
                raise ValueError("LanguageModel.generate: this model is conditioned; pass condition (a label id)")
            (logits, state), _ = self(prime, condition=cond)
            logits = logits[:, -1]  # (B, V)
            cells = self.rnn.cells
            stepper = Stepper(lambda idx: self.embed(idx, cond), cells, self.head.weight, self.head.bias,
                              prime.shape[0], PRECISIONS[precision], norms=self.rnn.norms)
            layer_states = [tuple(s[k] for s in state) for k in range(len(cells))]  # L x ((B, H), ...)

            def step(token: Tensor, layer_states):
                return *stepper(token, layer_states), None  # logits (B, V), the states, no attention

            strategy = Sampling(length, temperature, top_k, top_p, generator)
            for token in run(strategy, step, layer_states, logits):  # (B,) each
                yield token if batched else int(token)
        finally:
            self.train(was_training)
