"""The minimal cells (Feng et al. 2024, "Were RNNs all we needed?"): gates
that read x_t only, so the recurrence is linear in h,

    h_t = a_t ⊙ h_{t-1} + b_t,   a_t, b_t from x_t alone,

and their fused engine runs it without a per-step graph (:meth:`MinimalCell.scan`):
a parallel log-space scan on a GPU, one autograd node with a hand-written
backward on a CPU. The explicit engine steps their ``recur`` as any cell's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.kernels.cell import Cell, State, length_mask


class MinimalCell(Cell):
    """A cell whose gates read x_t only: ``log_coefficients`` gives log a_t and
    log b_t of h_t = a_t ⊙ h_{t-1} + b_t from the projected inputs."""

    hidden_weights = False

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """xp (B, T, G*H) -> log a, log b (B, T, H)."""
        raise NotImplementedError

    def scan(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        """x (B, T, I) from ``state`` -> (outputs (B, T, H), final state): the
        parallel :func:`linear_scan` on a GPU, :func:`linear_recurrence` on a
        CPU. Past a sequence's end a_t = 1 and b_t = 0, so its state is frozen
        and h[:, -1] is its final state."""
        xp = self.project_input(x)  # (B, T, G*H)
        # in fp32 at least, also under bf16 autocast: the scan sums T logs of the coefficients
        log_a, log_b = self.log_coefficients(xp.to(torch.promote_types(xp.dtype, torch.float32)))  # (B, T, H)
        mask = None
        if lengths is not None:
            mask = length_mask(lengths, x.shape[1]).unsqueeze(-1)  # (B, T, 1)
            log_a = log_a.masked_fill(~mask, 0.0)
            log_b = log_b.masked_fill(~mask, float("-inf"))
        h0 = state[0].to(log_a.dtype)
        if x.is_cuda:
            h = linear_scan(log_a, log_b, h0)  # (B, T, H)
        else:
            h = linear_recurrence(log_a.exp(), log_b.exp(), h0)
        h = h.to(xp.dtype)
        last = h[:, -1]
        return (h * mask if mask is not None else h), (last,)


def _g(x: Tensor) -> Tensor:
    """g(x) = x + 1/2 for x >= 0, σ(x) below: positive and continuous, so that the
    state of a minimal cell stays positive and its scan can run in log space."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def _log_g(x: Tensor) -> Tensor:
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinGRUCell(MinimalCell):
    r"""Minimal GRU (Feng et al. 2024, "Were RNNs all we needed?"): the gates
    read x_t only, so the recurrence is linear in h and runs as a scan
    (:meth:`MinimalCell.scan`), not a loop of cell steps.

    .. math::
        z_t &= σ(W_{iz} x_t + b_{iz}) \\
        \tilde h_t &= g(W_{in} x_t + b_{in}) \\
        h_t &= (1 - z_t) ⊙ h_{t-1} + z_t ⊙ \tilde h_t

    with g(x) = x + 1/2 (x >= 0), σ(x) (x < 0), the paper's log-space variant:
    h stays positive (the state must start >= 0; zero by default).

    Shapes: x (B, I), h (B, H); ``weight_ih`` (2H, I) packed [W_iz | W_in]; no
    hidden-to-hidden weights. State: ``(h,)``. Deviation from the paper: no
    down/up projection and no residual connections around the layer.
    """

    name = "mingru"
    num_gates = 2
    gate_names = ("update", "candidate")  # the blocks of G*H rows, in order
    state_size = 1

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        kz, kh = xp.chunk(2, dim=1)  # (B, H) each
        z = torch.sigmoid(kz)
        h = state[0] + z * (_g(kh) - state[0])  # = (1 - z) ⊙ h + z ⊙ g(kh)
        return h, (h,)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        return {"update": ("sigmoid", torch.sigmoid(xp.chunk(2, dim=1)[0]))}

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """xp (B, T, 2H) -> log a, log b (B, T, H) of h_t = a_t ⊙ h_{t-1} + b_t."""
        kz, kh = xp.chunk(2, dim=-1)
        return -F.softplus(kz), -F.softplus(-kz) + _log_g(kh)  # log(1 - z), log z + log g


class MinLSTMCell(MinimalCell):
    r"""Minimal LSTM (Feng et al. 2024): forget and input gates that read x_t
    only, normalised to sum to one, and no output gate.

    .. math::
        f_t &= σ(W_{if} x_t + b_{if}), \quad i_t = σ(W_{ii} x_t + b_{ii}) \\
        f'_t &= f_t / (f_t + i_t), \quad i'_t = i_t / (f_t + i_t) \\
        h_t &= f'_t ⊙ h_{t-1} + i'_t ⊙ g(W_{in} x_t + b_{in})

    with g as in :class:`MinGRUCell`. Shapes: ``weight_ih`` (3H, I) packed
    [W_if | W_ii | W_in]; no hidden-to-hidden weights. State: ``(h,)``.
    """

    name = "minlstm"
    num_gates = 3
    gate_names = ("forget", "input", "candidate")  # the blocks of G*H rows, in order
    state_size = 1

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        kf, ki, kh = xp.chunk(3, dim=1)  # (B, H) each
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        h = (f * state[0] + i * _g(kh)) / (f + i)
        return h, (h,)

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        kf, ki, _ = xp.chunk(3, dim=1)
        return {"forget": ("sigmoid", torch.sigmoid(kf)), "input": ("sigmoid", torch.sigmoid(ki))}

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """xp (B, T, 3H) -> log a, log b (B, T, H) of h_t = a_t ⊙ h_{t-1} + b_t."""
        kf, ki, kh = xp.chunk(3, dim=-1)
        diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + _log_g(kh)  # log f', log i' + log g


class _LinearRecurrence(torch.autograd.Function):
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 1..T as one autograd node: forward is a
    loop of one fused multiply-add per step, backward the same recurrence run
    backwards for g_t = dL/dh_t (all paths), then vectorised over all steps::

        g_t = dh_t + a_{t+1} ⊙ g_{t+1},   db_t = g_t,   da_t = g_t ⊙ h_{t-1},   dh_0 = a_1 ⊙ g_1
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        a, b = a.transpose(0, 1).contiguous(), b.transpose(0, 1).contiguous()  # (T, B, H)
        h = torch.empty_like(b)
        prev = h0  # (B, H)
        for t in range(a.shape[0]):
            prev = torch.addcmul(b[t], a[t], prev, out=h[t])
        ctx.save_for_backward(a, h, h0)
        return h.transpose(0, 1)  # (B, T, H)

    @staticmethod
    def backward(ctx, dh: Tensor):
        a, h, h0 = ctx.saved_tensors
        dh = dh.transpose(0, 1)  # (T, B, H)
        g = torch.empty_like(h)
        g[-1] = dh[-1]
        for t in range(a.shape[0] - 2, -1, -1):
            torch.addcmul(dh[t], a[t + 1], g[t + 1], out=g[t])
        hprev = torch.cat([h0.unsqueeze(0), h[:-1]])  # (T, B, H)
        return (g * hprev).transpose(0, 1), g.transpose(0, 1), a[0] * g[0]


def linear_recurrence(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t: a, b (B, T, H), h0 (B, H) -> h (B, T, H), in
    linear space, step by step but with no per-step autograd (T small ops each
    way). On a CPU this does O(T) work, where a parallel scan does more."""
    return _LinearRecurrence.apply(a, b, h0)


def linear_scan(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 1..T, all at once, in log space (Heinsen 2023):

        log h_t = A_t + logcumsumexp_k (log b_k - A_k),   A_t = sum_{j<=t} log a_j,

    with b_0 = h_0 and A_0 = 0. log_a, log_b (B, T, H); h0 (B, H) >= 0 -> h (B, T, H).
    Terms where b_k = 0 are -inf and drop out. Depth O(log T) on parallel
    hardware (a cumsum and a logcumsumexp over time), which is where it pays:
    on a 2-core CPU its logcumsumexp alone was slower than the whole of
    :func:`linear_recurrence` (benchmarks/NOTEBOOK.md, "Minimal cells"), so
    CPUs use that."""
    a_star = F.pad(log_a.cumsum(1), (0, 0, 1, 0))  # (B, T+1, H), A_0 = 0
    log_values = torch.cat([h0.to(log_b.dtype).log().unsqueeze(1), log_b], dim=1)  # (B, T+1, H)
    log_h = a_star + torch.logcumsumexp(log_values - a_star, dim=1)
    return log_h[:, 1:].exp()
