"""Character-level word features: a word's spelling read by a small
bidirectional LSTM (Lample et al. 2016, "Neural Architectures for Named
Entity Recognition", section 4.1), so a tagger can place words its
vocabulary lacks by their shape: capitals, digits, hyphens, suffixes.

For a word with characters c_1..c_n (ids, see
:class:`rnnkit.data.words.SpelledWordTokenizer`):

    u_i = C[c_i]                                  (W,)  character embedding
    →s = LSTM(u_1..u_n) after c_n, ←s = LSTM(u_n..u_1) after c_1
    f = [→s ; ←s]                                 (2W,) the word's features

Only the words that are there are read: padded positions of a batch get
zeros, and each word stops at its own length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.layers.recurrent import Recurrent


class Spelling(nn.Module):
    """``forward(chars (B, T, C), mask (B, T)) -> (B, T, 2W)`` for character
    ids padded with 0 and mask True at the words to read.

    Args:
        alphabet_size: character ids, the padding 0 included.
        width: W, the character embedding's width and the LSTM's units per direction.
    """

    def __init__(self, alphabet_size: int, width: int):
        super().__init__()
        self.embedding = nn.Embedding(alphabet_size, width, padding_idx=0)
        self.layer = Recurrent("lstm", width, width, bidirectional=True, padded=True)

    @property
    def output_size(self) -> int:
        """2W: the two directions' final states side by side."""
        return 2 * self.layer.hidden_size

    def forward(self, chars: Tensor, mask: Tensor) -> Tensor:
        """chars (B, T, C) ids padded with 0, mask (B, T) True at the words to read -> features (B, T, 2W), zero
        where mask is False."""
        words = chars[mask]  # (N, C), the N words of the batch
        lengths = (words != 0).sum(-1).clamp(min=1)  # (N,)
        words = words[:, :int(lengths.max())]  # spellings are left-aligned: cut the common padding
        _, (h, _) = self.layer(self.embedding(words), lengths=lengths)  # h (2, N, W): →, ← finals
        features = torch.cat([h[0], h[1]], dim=-1)  # (N, 2W)
        out = features.new_zeros(mask.shape + (self.output_size,))  # (B, T, 2W)
        out[mask] = features
        return out
