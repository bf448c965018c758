"""Recurrent cells: one step of recurrence, written out as its equations.

A cell maps ``(x_t, state) -> (h_t, state)`` where ``state`` is a tuple,
``(h,)`` or ``(h, c)``, each of shape (B, H). Every cell splits its step in
two so that a layer can project the inputs of all time steps in one matrix
product and run only the recurrent part in the time loop::

    xp = cell.project_input(x)          # (B, T, G*H)  one GEMM for all steps
    h, state = cell.recur(xp[:, t], state)  # (B, H)   per step

and ``recur`` itself is ``combine(xp, project_hidden(h), state)``: one matrix
product, then the cell's element-wise gate equations in ``combine``. A layer
that sees this split computes the recurrent weight gradient of all steps in
one product (see :mod:`rnnkit.layers.unroll`). ``cell(x_t, state)`` does a
whole step.

Parameters are named and packed as in ``torch.nn.RNNCell/LSTMCell/GRUCell``
(``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` (G*H),
``bias_hh`` (G*H)), gates stacked in torch's order (LSTM i, f, g, o; GRU
r, z, n), so the same weights run on torch's fused kernels. The minimal
cells (minGRU z, n; minLSTM f, i, n) have no hidden-to-hidden weights.

Notation: σ is the logistic sigmoid, ⊙ the element-wise product.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import gemm
from rnnkit.gates import GRUGates, LSTMGates, lstm_gates

State = tuple[Tensor, ...]

INPUT_INITS = ("glorot", "torch")
RECURRENT_INITS = ("orthogonal", "glorot", "torch")


class Cell(nn.Module):
    """Shared parameters, initialisation and shape checks of all cells.

    Subclasses set ``num_gates`` (G) and ``state_size`` (number of state
    tensors) and implement ``combine`` (or ``recur``, for a step that is not
    one product of h followed by element-wise equations).

    Initialisation (per gate block of H rows, so each gate gets a properly
    scaled matrix): input weights Glorot-uniform (``input_init="glorot"``),
    recurrent weights orthogonal (``recurrent_init="orthogonal"``, Saxe et
    al. 2014), biases zero; ``"torch"`` selects torch's U(-1/√H, 1/√H) for
    all parameters instead.
    """

    num_gates: int = 1
    state_size: int = 1
    hidden_weights: bool = True  # False for cells whose gates read x_t only
    # Cells whose combine reads xp and hp only as their sum also define
    # ``activate(xp + hp, state)``: one product of [x, h] by [W_ih | W_hh] can then form it.

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 input_init: str = "glorot", recurrent_init: str = "orthogonal"):
        super().__init__()
        name = type(self).__name__
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"{name}: input_size and hidden_size must be >= 1, "
                             f"got {input_size} and {hidden_size}")
        if input_init not in INPUT_INITS:
            raise ValueError(f"{name}: input_init must be one of {INPUT_INITS}, got {input_init!r}")
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"{name}: recurrent_init must be one of {RECURRENT_INITS}, "
                             f"got {recurrent_init!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.input_init = input_init
        self.recurrent_init = recurrent_init
        gh = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size))  # (G*H, I)
        self.bias_ih = nn.Parameter(torch.empty(gh)) if bias else None
        hidden = self.hidden_weights
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size)) if hidden else None  # (G*H, H)
        self.bias_hh = nn.Parameter(torch.empty(gh)) if bias and hidden else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        H = self.hidden_size
        bound = 1.0 / math.sqrt(H)
        for weight, scheme in ((self.weight_ih, self.input_init), (self.weight_hh, self.recurrent_init)):
            if weight is None:
                continue
            for block in weight.split(H, dim=0):  # one (H, fan_in) block per gate
                if scheme == "torch":
                    nn.init.uniform_(block, -bound, bound)
                elif scheme == "orthogonal":
                    nn.init.orthogonal_(block)
                else:
                    nn.init.xavier_uniform_(block)
        for b in (self.bias_ih, self.bias_hh):
            if b is not None:
                nn.init.uniform_(b, -bound, bound) if self.input_init == "torch" else nn.init.zeros_(b)

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zero state: ``state_size`` tensors of shape (B, H)."""
        device = device if device is not None else self.weight_ih.device
        dtype = dtype if dtype is not None else self.weight_ih.dtype
        return tuple(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
                     for _ in range(self.state_size))

    def project_input(self, x: Tensor, with_hidden_bias: bool = False) -> Tensor:
        """``x @ weight_ih^T + bias_ih``: (..., I) -> (..., G*H); plus ``bias_hh``
        when ``with_hidden_bias`` (for steps that then add h W_hh^T alone)."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input of shape (..., {self.input_size}), "
                             f"got {tuple(x.shape)}")
        bias = self.bias_ih
        if with_hidden_bias and bias is not None:
            bias = bias + self.bias_hh
        return gemm.linear(x, self.weight_ih, bias)

    def project_hidden(self, h: Tensor) -> Tensor:
        """``h @ weight_hh^T + bias_hh``: (B, H) -> (B, G*H)."""
        return gemm.linear(h, self.weight_hh, self.bias_hh)

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        """One step from the projected input xp (B, G*H) -> (h (B, H), new state).
        A cell whose step is not one product of h followed by element-wise
        equations overrides this instead of ``combine``."""
        return self.combine(xp, self.project_hidden(state[0]), state)

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        """The element-wise gate equations: xp, hp (B, G*H) -> (h (B, H), new state)."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One step: x (B, I), state tuple of (B, H) -> (h (B, H), new state)."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input of shape (B, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        for s in state:
            if s.shape != (x.shape[0], self.hidden_size):
                raise ValueError(f"{type(self).__name__}: expected state of shape "
                                 f"({x.shape[0]}, {self.hidden_size}), got {tuple(s.shape)}")
        return self.recur(self.project_input(x), state)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(Cell):
    r"""Vanilla (Elman) recurrent cell, the cell of min-char-rnn.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with φ = tanh (default) or relu (``nonlinearity="relu"``).

    Shapes: x (B, I), h (B, H); ``weight_ih`` (H, I), ``weight_hh`` (H, H).
    State: ``(h,)``.
    """

    num_gates = 1
    state_size = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", **init):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **init)

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        return self.activate(xp + hp, state)

    def activate(self, pre: Tensor, state: State) -> tuple[Tensor, State]:
        """h = φ(pre) from the summed pre-activation pre (B, H)."""
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, (h,)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(Cell):
    r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997, with the
    forget gate of Gers et al. 2000).

    .. math::
        i_t &= σ(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= σ(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= σ(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t ⊙ c_{t-1} + i_t ⊙ g_t \\
        h_t &= o_t ⊙ \tanh(c_t)

    Shapes: x (B, I), h and c (B, H); ``weight_ih`` (4H, I) packed
    [W_ii | W_if | W_ig | W_io], ``weight_hh`` (4H, H) likewise. State:
    ``(h, c)``.

    Initialisation: as :class:`Cell`, plus the forget-gate bias set to
    ``forget_bias`` (default 1, Jozefowicz et al. 2015) so that memory is
    kept early in training. torch keeps two biases; ``bias_ih`` carries the
    forget bias and ``bias_hh`` stays zero, so their sum is ``forget_bias``.
    """

    num_gates = 4
    state_size = 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 forget_bias: float = 1.0, **init):
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, bias, **init)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias and self.input_init != "torch":
            H = self.hidden_size
            self.bias_ih[H:2 * H].fill_(self.forget_bias)

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        return self.activate(xp + hp, state)

    def activate(self, gates: Tensor, state: State) -> tuple[Tensor, State]:
        """The gate equations from the summed pre-activations gates (B, 4H)."""
        if torch.is_grad_enabled() and (gates.requires_grad or state[1].requires_grad):
            h, c = LSTMGates.apply(gates, state[1])  # one node, backward by hand
        else:
            h, c = lstm_gates(gates, state[1])  # fewest ops, for generation
        return h, (h, c)


class GRUCell(Cell):
    r"""Gated recurrent unit (Cho et al. 2014), in torch's formulation.

    .. math::
        r_t &= σ(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= σ(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t ⊙ (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Deviation from the paper: the reset gate multiplies ``W_hn h + b_hn``
    after the matrix product (as cuDNN and torch do), not ``h`` before it.

    Shapes: x (B, I), h (B, H); ``weight_ih`` (3H, I) packed
    [W_ir | W_iz | W_in], ``weight_hh`` (3H, H) likewise. State: ``(h,)``.
    """

    num_gates = 3
    state_size = 1

    def combine(self, xp: Tensor, hp: Tensor, state: State) -> tuple[Tensor, State]:
        h = GRUGates.apply(xp, hp, state[0])
        return h, (h,)


def _g(x: Tensor) -> Tensor:
    """g(x) = x + 1/2 for x >= 0, σ(x) below: positive and continuous, so that the
    state of a minimal cell stays positive and its scan can run in log space."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def _log_g(x: Tensor) -> Tensor:
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinGRUCell(Cell):
    r"""Minimal GRU (Feng et al. 2024, "Were RNNs all we needed?"): the gates
    read x_t only, so the recurrence is linear in h and runs as a scan
    (:func:`rnnkit.layers.unroll.scan`), not a loop of cell steps.

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

    num_gates = 2
    state_size = 1
    hidden_weights = False

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        kz, kh = xp.chunk(2, dim=1)  # (B, H) each
        z = torch.sigmoid(kz)
        h = state[0] + z * (_g(kh) - state[0])  # = (1 - z) ⊙ h + z ⊙ g(kh)
        return h, (h,)

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """xp (B, T, 2H) -> log a, log b (B, T, H) of h_t = a_t ⊙ h_{t-1} + b_t."""
        kz, kh = xp.chunk(2, dim=-1)
        return -F.softplus(kz), -F.softplus(-kz) + _log_g(kh)  # log(1 - z), log z + log g


class MinLSTMCell(Cell):
    r"""Minimal LSTM (Feng et al. 2024): forget and input gates that read x_t
    only, normalised to sum to one, and no output gate.

    .. math::
        f_t &= σ(W_{if} x_t + b_{if}), \quad i_t = σ(W_{ii} x_t + b_{ii}) \\
        f'_t &= f_t / (f_t + i_t), \quad i'_t = i_t / (f_t + i_t) \\
        h_t &= f'_t ⊙ h_{t-1} + i'_t ⊙ g(W_{in} x_t + b_{in})

    with g as in :class:`MinGRUCell`. Shapes: ``weight_ih`` (3H, I) packed
    [W_if | W_ii | W_in]; no hidden-to-hidden weights. State: ``(h,)``.
    """

    num_gates = 3
    state_size = 1
    hidden_weights = False

    def recur(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        kf, ki, kh = xp.chunk(3, dim=1)  # (B, H) each
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        h = (f * state[0] + i * _g(kh)) / (f + i)
        return h, (h,)

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """xp (B, T, 3H) -> log a, log b (B, T, H) of h_t = a_t ⊙ h_{t-1} + b_t."""
        kf, ki, kh = xp.chunk(3, dim=-1)
        diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + _log_g(kh)  # log f', log i' + log g


CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell, "mingru": MinGRUCell, "minlstm": MinLSTMCell}
SCAN_CELLS = ("mingru", "minlstm")
