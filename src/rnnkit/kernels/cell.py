"""The cell contract: one step of recurrence, and what a layer may ask of a cell.

A cell maps ``(x_t, state) -> (h_t, state)`` where ``state`` is a tuple,
``(h,)`` or ``(h, c)``, each of shape (B, H). Every cell splits its step in
two so that a layer can project the inputs of all time steps in one matrix
product and run only the recurrent part in the time loop::

    xp = cell.project_input(x)              # (B, T, G*H)  one GEMM for all steps
    h, state = cell.recur(xp[:, t], state)  # (B, H)       per step

and ``recur`` itself is ``combine(xp, project_hidden(h), state)``: one matrix
product, then the cell's element-wise gate equations in ``combine``. A layer
that sees this split computes the recurrent weight gradient of all steps in
one product (:mod:`rnnkit.kernels.unroll`). ``cell(x_t, state)`` does a
whole step.

Parameters are named and packed as in ``torch.nn.RNNCell/LSTMCell/GRUCell``
(``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` (G*H),
``bias_hh`` (G*H)), gates stacked in torch's order, so the same weights run
on torch's fused kernels. Cells whose gates read x_t only have no
hidden-to-hidden weights (``hidden_weights = False``).

Every concrete cell sets ``name``, which registers it in :data:`CELLS`: a
layer, a model and the command line then know it by that name. What a cell
may add for speed (a whole sequence as one autograd node, a scan, torch's
fused kernel) is described on :class:`Cell`.

Notation: σ is the logistic sigmoid, ⊙ the element-wise product.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.kernels import gemm

State = tuple[Tensor, ...]

INPUT_INITS = ("glorot", "torch")
RECURRENT_INITS = ("orthogonal", "glorot", "torch")
CELLS: dict[str, type["Cell"]] = {}  # name -> cell class, filled as each cell's module is imported


class Cell(nn.Module):
    """Shared parameters, initialisation and shape checks of all cells.

    Subclasses set ``name`` (registers the cell), ``num_gates`` (G) and
    ``state_size`` (number of state tensors), and implement ``combine`` (or
    ``recur``, for a step that is not one product of h followed by element-wise
    equations). They may add:

    - ``activate(pre, state)``: when ``combine`` reads xp and hp only as their
      sum, the gate equations from that sum; a layer then folds b_hh into the
      input projection, and generation forms the sum in one product;
    - ``layer(x, state, lengths, weight_hh)``: the whole sequence as one
      autograd node with a hand-written backward (the explicit engine's fast
      path), or None where it does not apply (the layer then unrolls the steps);
    - ``fused_kernel()``: torch's fused kernel for a stack of these cells
      (``torch.lstm``, ...), the fused engine;
    - ``step_kernel(batch_size)``: generation's no-grad step on the C kernels
      (one call in place of the gate equations' torch ops), or None;
    - ``scan(x, state, lengths)``: the fused engine of a cell torch has no
      kernel for, when its recurrence is linear in h;
    - ``explicit_on_cpu``: the batches, "unpadded" and/or "padded", for which
      ``engine="auto"`` runs it on the explicit engine on a CPU (where its
      layer node beat torch's kernel);
    - ``options``: the names of the :class:`rnnkit.config.ModelConfig` fields
      that only this cell reads (passed to its constructor).

    Initialisation (per gate block of H rows, so each gate gets a properly
    scaled matrix): input weights Glorot-uniform (``input_init="glorot"``),
    recurrent weights orthogonal (``recurrent_init="orthogonal"``, Saxe et
    al. 2014), biases zero; ``"torch"`` selects torch's U(-1/√H, 1/√H) for
    all parameters instead.
    """

    name: str = ""
    num_gates: int = 1
    gate_names: tuple[str, ...] = ()  # a name for each block of H rows of the weights
    state_size: int = 1
    hidden_weights: bool = True
    explicit_on_cpu: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    recorder = None  # set inside rnnkit.kernels.trace.recording(): records steps called one at a time

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            CELLS[cls.name] = cls

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

    @classmethod
    def engines(cls) -> tuple[str, ...]:
        """The engines this cell runs on: explicit always, fused where torch has
        its kernel or the cell has a scan."""
        fused = cls.fused_kernel is not Cell.fused_kernel or hasattr(cls, "scan")
        return ("fused", "explicit") if fused else ("explicit",)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise the weights by ``input_init`` and ``recurrent_init``, one (H, ·) gate block at a time
        (:func:`init_blocks`); biases U(-1/√H, 1/√H) with ``input_init="torch"``, else zero."""
        H = self.hidden_size
        bound = 1.0 / math.sqrt(H)
        for weight, scheme in ((self.weight_ih, self.input_init), (self.weight_hh, self.recurrent_init)):
            if weight is not None:
                init_blocks(weight, scheme, H)
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

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        """The values of the step's squashing nonlinearities, for diagnostics
        (saturation): name -> (``"sigmoid"`` or ``"tanh"``, values (B, H)),
        from the step's xp, hp (None without W_hh) and the state before it."""
        return {}

    def layer(self, x: Tensor, state: State, lengths: Tensor | None,
              weight_hh: Tensor) -> tuple[Tensor, State] | None:
        """x (B, T, I) from ``state`` -> (outputs (B, T, H), final state) as one
        node, or None: this cell has no such node, or it does not take this call."""
        return None

    def fused_kernel(self):
        """torch's kernel for a stack of these cells, or None."""
        return None

    def step_kernel(self, batch_size: int):
        """A no-grad step of ``batch_size`` rows on the C kernels for generation, or None (the
        default: the step runs on ``activate``/``recur``). See :class:`rnnkit.kernels.lstm.LSTMStep`."""
        return None

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
        if Cell.recorder is not None:  # diagnostics record this step (rnnkit.kernels.trace)
            return Cell.recorder(self, x, state)
        return self.recur(self.project_input(x), state)

    def extra_repr(self) -> str:
        """``input_size, hidden_size, bias=...``, as torch's cells print."""
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


@torch.no_grad()
def init_blocks(weight: Tensor, scheme: str, hidden_size: int) -> None:
    """Initialise ``weight`` (G*H, fan_in) one (H, fan_in) gate block at a time by ``scheme``:
    ``"orthogonal"``, ``"glorot"`` (Xavier-uniform) or ``"torch"`` (U(-1/√H, 1/√H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for block in weight.split(hidden_size, dim=0):
        if scheme == "torch":
            nn.init.uniform_(block, -bound, bound)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(block)
        else:
            nn.init.xavier_uniform_(block)


def cell_class(name: str) -> type[Cell]:
    """The cell registered as ``name``, or a ConfigError that lists the cells."""
    if name not in CELLS:
        raise ConfigError(f"cell must be one of {', '.join(CELLS)}; got {name!r}")
    return CELLS[name]


def cell_options(name: str, settings) -> dict:
    """The settings only the cell ``name`` reads (its ``options``), taken from
    ``settings`` (a :class:`rnnkit.config.ModelConfig`), as keywords for its constructor."""
    return {option: getattr(settings, option) for option in cell_class(name).options}


def tanh_by_sigmoid(x: Tensor) -> Tensor:
    """tanh(x) = 2σ(2x) - 1 for x of any shape, without autograd: torch's CPU tanh measured several
    times slower than its sigmoid (benchmarks/NOTEBOOK.md, "What this machine
    showed"); the absolute error stays at the dtype's resolution of 1."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def cpu_node_takes(x: Tensor, weight: Tensor) -> bool:
    """Whether a layer node on a CPU takes x (B, T, I) with W_hh: both fp32 on a
    CPU, T >= 1, outside autocast or under bf16 autocast (the node multiplies
    in bf16 then, as autocast would)."""
    autocast = torch.is_autocast_enabled(x.device.type)
    if autocast and torch.get_autocast_dtype(x.device.type) != torch.bfloat16:
        return False
    return x.shape[1] > 0 and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (x, weight))


def length_mask(lengths: Tensor, T: int) -> Tensor:
    """lengths (B,) -> mask (B, T), True at valid positions t < lengths[b]."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def final_state(outputs: Tensor, lengths: Tensor | None) -> Tensor:
    """Each sequence's output at its last valid step: outputs (B, T, H) -> (B, H)."""
    if lengths is None:
        return outputs[:, -1]
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]


def batch_sizes(lengths: Tensor | None, batch_size: int, steps: int) -> list[int]:
    """How many sequences still run at each step, for lengths (B,) sorted longest
    first (all ``batch_size`` at every step without lengths)."""
    if lengths is None:
        return [batch_size] * steps
    counts = torch.bincount(lengths.cpu(), minlength=steps + 1)  # sequences of each length
    return (lengths.numel() - counts.cumsum(0)[:steps]).tolist()


def running_rows_product(d: Tensor, n: int, prepared: Tensor, previous: Tensor) -> Tensor:
    """The first n rows of d (B, G*H), the sequences still running at this step
    (:func:`by_length`), times a :func:`rnnkit.kernels.gemm.prepare`-d weight:
    a layer node's dh_{t-1} = dgates_t W_hh in its backward. A new (B, H) when all
    B rows run, else ``previous`` with its first n rows overwritten and the rest
    kept as they are (zero: those sequences end later in the batch's time)."""
    if n == d.shape[0]:
        return gemm.prepared_linear(d, prepared)
    previous[:n] = gemm.prepared_linear(d[:n], prepared)
    return previous


def by_length(node, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
    """A layer node over a batch sorted longest first: ``node(x, state, sizes,
    lengths) -> (outputs, *more final state)`` gets the batch reordered so that
    the first ``sizes[t]`` rows are the sequences still running at step t (as
    torch's packed sequences are), and ``lengths`` in that order (None without
    padding). Returns the outputs (B, T, H) in the batch's order and the final
    state: each sequence's last output, then ``more``."""
    B, T = x.shape[:2]
    order = None if lengths is None else torch.argsort(lengths, descending=True, stable=True)

    def sort(t: Tensor) -> Tensor:
        return t if order is None else t.index_select(0, order)

    def unsort(t: Tensor) -> Tensor:
        return t if order is None else t.index_select(0, torch.argsort(order))

    sorted_lengths = None if lengths is None else lengths[order]
    outputs, *more = node(sort(x), tuple(map(sort, state)), batch_sizes(sorted_lengths, B, T), sorted_lengths)
    outputs = unsort(outputs)
    return outputs, (final_state(outputs, lengths), *map(unsort, more))
