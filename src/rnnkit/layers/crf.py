"""A linear-chain conditional random field as an output layer for tagging.

Lafferty, McCallum and Pereira (2001), "Conditional Random Fields: Probabilistic
Models for Segmenting and Labeling Sequence Data"; used over BiLSTM emissions as
the BI-LSTM-CRF tagger of Huang, Xu and Yu (2015), arXiv:1508.01991.

Shapes (batch-first): emissions E (B, T, K), tags y (B, T), mask (B, T), where
K is the number of tags. The mask is True at valid positions; valid positions
form a prefix of each sequence (left-aligned padding) of length L >= 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LinearChainCRF(nn.Module):
    r"""Linear-chain CRF over K tags: the sequence-level loss and Viterbi decoding.

    With transitions A (K, K), where A[i, j] scores moving from tag i to tag j,
    start scores s (K,) and end scores e (K,), a tag sequence y_1..y_L of a
    sequence of valid length L scores

        score(y) = s[y_1] + sum_{t=1..L} E[t, y_t] + sum_{t=2..L} A[y_{t-1}, y_t] + e[y_L]

    and p(y | E) = exp(score(y)) / Z with Z summed over all K^L sequences. The
    forward algorithm computes log Z in O(L K^2) in log space:

        alpha_1(j) = s[j] + E[1, j]
        alpha_t(j) = logsumexp_i(alpha_{t-1}(i) + A[i, j]) + E[t, j]
        log Z      = logsumexp_j(alpha_L(j) + e[j])

    Viterbi decoding is the same recursion with max in place of logsumexp,
    keeping the argmax i of each step as a back-pointer:

        delta_t(j) = max_i(delta_{t-1}(i) + A[i, j]) + E[t, j],  y_L = argmax_j(delta_L(j) + e[j])

    Both loops run over time only and are vectorised over the batch; past a
    sequence's end its alpha (delta) is carried unchanged, so padding never
    changes a result.

    Args:
        num_tags: K, the number of tags.

    Parameters (initialised uniform in [-0.1, 0.1]):
        transitions (K, K), start_transitions (K,), end_transitions (K,).

    ``crf(emissions, tags, mask)`` is :meth:`nll`.
    """

    def __init__(self, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"LinearChainCRF: num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Transitions, start and end scores from U(-0.1, 0.1)."""
        for p in (self.transitions, self.start_transitions, self.end_transitions):
            nn.init.uniform_(p, -0.1, 0.1)

    def extra_repr(self) -> str:
        """``num_tags=K``."""
        return f"num_tags={self.num_tags}"

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """The loss, as :meth:`nll`: emissions (B, T, K), tags (B, T), mask (B, T) True at valid positions
        -> -log p(tags | emissions) (B,)."""
        return self.nll(emissions, tags, mask)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Negative log-likelihood -log p(tags | emissions) = log Z - score(tags), per sequence.

        Args:
            emissions: (B, T, K) float scores of each tag at each position.
            tags: (B, T) int64 gold tags; values at padded positions are ignored
                (any value, e.g. -100).
            mask: (B, T) bool, True at valid positions (a prefix of each
                sequence, at least one); None means all positions are valid.

        Returns:
            (B,) the loss of each sequence; average it for a batch loss.
        """
        mask = self._validate(emissions, mask, tags)
        tags = tags.masked_fill(~mask, 0)  # (B, T), padded tags replaced by a valid index
        emissions = emissions.masked_fill(~mask.unsqueeze(-1), 0.0)  # garbage (even NaN) never enters
        return self._log_partition(emissions, mask) - self._score(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Viterbi, batched: the highest-scoring tag sequence of each sequence
        as a (B, T) int64 tensor, 0 at padded positions. mask (B, T) is True
        at valid positions."""
        return self._viterbi(emissions, self._validate(emissions, mask))

    def _validate(self, emissions: Tensor, mask: Tensor | None, tags: Tensor | None = None) -> Tensor:
        K = self.num_tags
        if emissions.dim() != 3 or emissions.shape[2] != K or emissions.shape[1] == 0:
            raise ValueError(f"LinearChainCRF: expected emissions of shape (B, T, {K}) with T >= 1, "
                             f"got {tuple(emissions.shape)}")
        B, T, _ = emissions.shape
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=emissions.device)
        if mask.shape != (B, T):
            raise ValueError(f"LinearChainCRF: expected mask of shape ({B}, {T}), got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"LinearChainCRF: expected a torch.bool mask (True at valid positions), "
                             f"got {mask.dtype}")
        lengths = mask.sum(1)  # (B,)
        prefix = torch.arange(T, device=mask.device) < lengths.unsqueeze(1)  # (B, T)
        if not bool(mask[:, 0].all()) or not torch.equal(mask, prefix):
            raise ValueError("LinearChainCRF: mask must be True on a non-empty prefix of every sequence "
                             "(left-aligned padding)")
        if tags is not None:
            if tags.shape != (B, T):
                raise ValueError(f"LinearChainCRF: expected tags of shape ({B}, {T}), "
                                 f"got {tuple(tags.shape)}")
            if tags.dtype != torch.int64:
                raise ValueError(f"LinearChainCRF: expected tags of dtype torch.int64, got {tags.dtype}")
            valid = tags[mask]
            if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= K):
                raise ValueError(f"LinearChainCRF: tags at valid positions must be in [0, {K}), "
                                 f"got values in [{int(valid.min())}, {int(valid.max())}]")
        return mask

    def _score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """score(y) of the given tags, (B,). Padded tags are 0 and padded emissions 0."""
        weight = mask.to(emissions.dtype)  # (B, T)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T), E[t, y_t]
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1), A[y_{t-1}, y_t]
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (B,), y_L
        return (self.start_transitions[tags[:, 0]] + (emit * weight).sum(1)
                + (trans * weight[:, 1:]).sum(1) + self.end_transitions[last])

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z by the forward algorithm, (B,)."""
        alpha = self.start_transitions + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # (B, K, 1) + (K, K) -> (B, K_prev, K_next), summed over the previous tag
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)  # frozen after the end
        return torch.logsumexp(alpha + self.end_transitions, dim=1)

    def _viterbi(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Best paths (B, T), 0 at padded positions."""
        delta = self.start_transitions + emissions[:, 0]  # (B, K)
        pointers = []  # pointers[t-1][b, j]: best previous tag for tag j at step t
        for t in range(1, emissions.shape[1]):
            best, arg = (delta.unsqueeze(2) + self.transitions).max(dim=1)  # (B, K) each
            delta = torch.where(mask[:, t].unsqueeze(1), best + emissions[:, t], delta)
            pointers.append(arg)
        current = (delta + self.end_transitions).argmax(dim=1)  # (B,), the tag at each y_L
        paths = torch.zeros(mask.shape, dtype=torch.int64, device=emissions.device)  # (B, T)
        for t in range(emissions.shape[1] - 1, 0, -1):
            # positions past a sequence's end keep carrying its last tag until t = L - 1
            paths[:, t] = torch.where(mask[:, t], current, 0)
            previous = pointers[t - 1].gather(1, current.unsqueeze(1)).squeeze(1)  # (B,)
            current = torch.where(mask[:, t], previous, current)
        paths[:, 0] = current
        return paths
