"""A stack of cells run one token at a time, for generation.

At batch 1 a step does two FLOPs per weight it reads, so its time is the time
to stream the weights from cache (12.6 MB a character for a 2 x 512 LSTM in
fp32) plus the overhead of each op. :class:`Stepper` prepares the weights once
per ``generate`` call so that a step reads fewer bytes in fewer ops:

- the first layer's input projection of every token is a (V, G*H) table
  that a step indexes instead of multiplying;
- in a layer above, a cell that reads its two products only as their sum
  (RNN, LSTM: those that define ``activate``) gets W_ih x + W_hh h + b_ih + b_hh as one
  product of [x, h] (B, I + H) by [W_ih | W_hh] (G*H, I + H);
- the weights are laid out once for the product kernel
  (:func:`rnnkit.kernels.gemm.prepare`), in fp32 or, with ``dtype=torch.bfloat16``,
  in bf16: half the bytes to stream, products rounded to bf16, gate
  equations and state in the model's dtype (small weights at batch 1, such
  as a character model's output layer, stay in fp32: no faster in bf16).

A stack of cells that each have a C step (``cell.step_kernel``: the fp32
LSTM's) runs on :class:`_KernelStack`: per layer one product and one C call
that writes h straight into the next product's input, instead of a
concatenation and the gate equations' torch ops (with bf16 weights the
product's input and output are converted as above, the C step is fp32). At batch 1 the step's time
was mostly the fixed cost of those small ops (benchmarks/NOTEBOOK.md,
2026-12-07, "rnnkit at batch 1").

A cell that defines its own ``project_input`` (the layer-normalised cells)
gets its input projected by it, in the model's dtype. A step computes what
``cell.recur`` computes (up to the order of summation, or bf16 rounding),
for every cell; tests check it against the model's forward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import Cell, State, gemm


def _bias(*biases: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """The sum of a layer's biases in ``dtype`` (its prepared weight's); None without biases."""
    if biases[0] is None:
        return None
    total = sum(b.detach() for b in biases)
    return total.to(dtype or total.dtype)


class _Layer:
    """One cell's step from its input (projected already for the first layer)."""

    def __init__(self, cell: Cell, first: bool, batch_size: int, dtype: torch.dtype | None):
        self.cell = cell
        self.first = first
        hidden = cell.hidden_weights
        # a cell with its own input projection (the layer-normalised ones) is asked for it
        self.own_input = type(cell).project_input is not Cell.project_input
        self.fused = not first and hidden and hasattr(cell, "activate") and not self.own_input
        if self.fused:
            # (G*H, I + H), laid out column by column: at batch 1 the layout gemm.prepare keeps (one copy, not two)
            both = torch.cat([cell.weight_ih.t(), cell.weight_hh.t()]).t()
            self.weight = gemm.prepare(both, batch_size, dtype)
            self.bias = _bias(cell.bias_ih, cell.bias_hh, dtype=self.weight.dtype)
        else:
            self.weight_ih = None if first or self.own_input else gemm.prepare(cell.weight_ih, batch_size, dtype)
            self.bias_ih = None if self.weight_ih is None else _bias(cell.bias_ih, dtype=self.weight_ih.dtype)
            self.weight_hh = gemm.prepare(cell.weight_hh, batch_size, dtype) if hidden else None  # (G*H, H)
            self.bias_hh = _bias(cell.bias_hh, dtype=self.weight_hh.dtype) if hidden else None

    def __call__(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """x: the input (B, I), or for the first layer its projection (B, G*H)."""
        if self.fused:
            pre = gemm.prepared_linear(torch.cat([x, state[0]], dim=1), self.weight, self.bias)  # (B, G*H)
            return self.cell.activate(pre, state)
        if self.first:
            xp = x
        elif self.own_input:
            xp = self.cell.project_input(x)  # (B, G*H)
        else:
            xp = gemm.prepared_linear(x, self.weight_ih, self.bias_ih)
        if self.weight_hh is None:
            return self.cell.recur(xp, state)
        return self.cell.combine(xp, gemm.prepared_linear(state[0], self.weight_hh, self.bias_hh), state)


class Stepper:
    """Token ids (B,) and per-layer states -> next-token logits (B, V) and new states.

    Args: ``embed`` (idx (1, V) -> (1, V, I)), ``cells`` (bottom first), the
    output layer's ``head_weight`` (V, H) and ``head_bias``, ``batch_size``,
    the weights' ``dtype`` (fp32 or bf16) and the layer's batch ``norms``
    (``nn.BatchNorm1d`` of each layer's outputs, or None), applied with their
    running statistics as in evaluation mode. Built in no-grad mode from the
    present weights; build another after the weights change.
    """

    @torch.no_grad()
    def __init__(self, embed, cells, head_weight: Tensor, head_bias: Tensor | None, batch_size: int,
                 dtype: torch.dtype | None = None, norms=None):
        vocab = torch.arange(head_weight.shape[0], device=head_weight.device).view(1, -1)
        self.table = cells[0].project_input(embed(vocab)[0])  # (V, G*H), in the model's dtype
        self.layers = [_Layer(cell, k == 0, batch_size, dtype) for k, cell in enumerate(cells)]
        # y = x ⊙ scale + shift per layer: batch norm's evaluation mode, (x - mean) / sqrt(var + ε) ⊙ γ + β
        self.norms = [None] * len(cells) if norms is None else [_evaluation_norm(n) for n in norms]
        self.head_weight = gemm.prepare(head_weight, batch_size, dtype)
        self.head_bias = _bias(head_bias, dtype=self.head_weight.dtype)
        self.kernels = _KernelStack.build(self.layers, batch_size) if norms is None else None

    @torch.no_grad()
    def __call__(self, token: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
        """token (B,), states (one per layer, as the cells take them) -> logits (B, V) and new states
        (new tensors; the ones given are not changed)."""
        if self.kernels is not None:
            x, new_states = self.kernels(self.table.index_select(0, token), states)  # (B, H)
            return gemm.prepared_linear(x, self.head_weight, self.head_bias), new_states  # (B, V)
        x = self.table.index_select(0, token)  # (B, G*H)
        new_states = []
        for layer, norm, state in zip(self.layers, self.norms, states):
            x, state = layer(x, state)  # (B, H)
            if norm is not None:
                x = torch.addcmul(norm[1], x, norm[0])
            new_states.append(state)
        return gemm.prepared_linear(x, self.head_weight, self.head_bias), new_states  # (B, V)


class _KernelStack:
    """The fp32 step of a stack whose cells each have a C step (``cell.step_kernel``), with h
    written where the next product reads it. Layer k > 0 multiplies its input buffer [x | h]
    (B, I + H), made once, by [W_ih | W_hh]; layer k's C step writes its h into the state
    it returns (a new (B, H)) and into a block of a buffer::

        layer 0:      hp = h W_hh^T + b_hh, xp = the table's row;  h -> layer 1's x block
        layer k > 0:  hp = [x | h] [W_ih | W_hh]^T + b;            h -> its own h block
                      (and a copy into layer k+1's x block, below the top)

    A layer's own h block holds the h of the state it returned last; a state from elsewhere
    (the prime's, or beam search's reordering) is copied in first."""

    def __init__(self, layers: list[_Layer], kernels: list, batch_size: int):
        self.layers, self.kernels = layers, kernels
        cells = [layer.cell for layer in layers]
        self.inputs = [None] + [torch.zeros(batch_size, cell.input_size + cell.hidden_size) for cell in cells[1:]]
        self.x_blocks = [None] + [buf[:, :cell.input_size] for buf, cell in zip(self.inputs[1:], cells[1:])]
        self.h_blocks = [None] + [buf[:, cell.input_size:] for buf, cell in zip(self.inputs[1:], cells[1:])]
        self.written: list[Tensor | None] = [None] * len(layers)  # the h each own h block holds

    @classmethod
    def build(cls, layers: list[_Layer], batch_size: int) -> _KernelStack | None:
        """The stack on C steps, or None unless every layer has one (and each layer above the
        first multiplies [x | h] as one product)."""
        kernels = [layer.cell.step_kernel(batch_size) for layer in layers]
        if any(k is None for k in kernels) or not all(layer.fused for layer in layers[1:]) \
                or not all(layer.cell.hidden_weights for layer in layers):
            return None
        return cls(layers, kernels, batch_size)

    def __call__(self, xp: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
        """xp (B, G*H): the first layer's input projection -> the top layer's h (B, H), new states."""
        new_states = []
        top = len(self.layers) - 1
        for k, (layer, kernel, state) in enumerate(zip(self.layers, self.kernels, states)):
            h, c = state
            h_new = h.new_empty(h.shape)  # (B, H)
            if k == 0:
                hp = gemm.prepared_linear(h, layer.weight_hh, layer.bias_hh)  # (B, G*H)
                h_out = self.x_blocks[1] if top > 0 else h_new
            else:
                if h is not self.written[k]:
                    self.h_blocks[k].copy_(h)
                hp = gemm.prepared_linear(self.inputs[k], layer.weight, layer.bias)  # (B, G*H), bias included
                h_out, xp = self.h_blocks[k], None
            c_new = kernel(hp, xp, c, h_out, h_new)
            if 0 < k < top:
                self.x_blocks[k + 1].copy_(h_new)
            self.written[k] = h_new
            new_states.append((h_new, c_new))
        return new_states[-1][0], new_states


def _evaluation_norm(norm) -> tuple[Tensor, Tensor]:
    """(scale, shift) (F,) each of an ``nn.BatchNorm1d`` in evaluation mode."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    shift = -norm.running_mean * scale
    if norm.affine:
        scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
    return scale.detach(), shift.detach()
