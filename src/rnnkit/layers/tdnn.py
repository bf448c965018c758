"""A time-delay neural network (Waibel et al. 1989): stacked 1-D convolutions
over time, the finite-response baseline the lectures contrast with recurrence.

Layer k maps (B, T, C_in) to (B, T, H)::

    h_t = ReLU(b + Σ_{j=0}^{K-1} W_j x_{t-j})              causal (sees the past only)
    h_t = ReLU(b + Σ_{j=-(K-1)/2}^{(K-1)/2} W_j x_{t-j})   centred (sees both sides)

so the top layer's h_t depends on a window of L(K-1)+1 inputs and nothing
outside it: the memory a recurrent state carries without bound is here cut
off at a fixed horizon. Positions beyond each sequence's length are zeroed
before every layer, so padding never changes a result (a sequence alone is
padded with zeros by the convolution too).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers.dropout import dropout
from rnnkit.layers.recurrent import length_mask


class TimeDelay(nn.Module):
    """Args: input_size (I), hidden_size (H), num_layers, kernel_size (K; odd when
    not causal), causal, dropout (between layers).

    ``forward(x, lengths) -> (outputs (B, T, H), None)``: the same contract as
    :class:`rnnkit.layers.Recurrent`, with no state to carry.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, kernel_size: int = 5,
                 causal: bool = False, dropout: float = 0.0):
        super().__init__()
        if kernel_size < 1 or (not causal and kernel_size % 2 == 0):
            raise ValueError(f"TimeDelay: kernel_size must be >= 1 and odd when not causal, got {kernel_size}")
        self.kernel_size, self.causal, self.dropout = kernel_size, causal, dropout
        self.hidden_size = self.output_size = hidden_size
        self.convs = nn.ModuleList(nn.Conv1d(input_size if k == 0 else hidden_size, hidden_size, kernel_size)
                                   for k in range(num_layers))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, None]:
        """x (B, T, I), lengths (B,) -> (outputs (B, T, H), None), zero beyond each length."""
        mask = length_mask(lengths, x.shape[1])[..., None]  # (B, T, 1)
        pad = (self.kernel_size - 1, 0) if self.causal else ((self.kernel_size - 1) // 2,) * 2
        h = x
        for k, conv in enumerate(self.convs):
            if k > 0:
                h = dropout(h, self.dropout, self.training)
            h = h * mask  # (B, T, C): zero beyond each length
            h = F.relu(conv(F.pad(h.transpose(1, 2), pad))).transpose(1, 2)  # (B, T, H)
        return h * mask, None
