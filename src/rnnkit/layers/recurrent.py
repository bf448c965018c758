"""The recurrent layer: cells unrolled over time, stacked and bidirectional.

Two interchangeable engines run over the *same parameters* (the rule and the
machinery are in :mod:`rnnkit.kernels.engine`): ``"fused"``, torch's RNN
kernels for the whole stack (a scan for the minimal cells), and
``"explicit"``, rnnkit's own loop over its cells, which every cell supports,
each layer and direction through :func:`rnnkit.kernels.run_layer`. ``"auto"``
(the default) picks one from the cell, the device and whether the layer
reads padded batches (``padded``): :func:`rnnkit.kernels.choose_engine`.

Shapes (batch-first): x (B, T, I); outputs (B, T, D*H) with ``merge="concat"``
or (B, T, H) otherwise; state a tuple of one (``rnn``, ``gru``: ``(h,)``) or
two (``lstm``, ``lnlstm``: ``(h, c)``) tensors of shape (L*D, B, H), ordered as in
``torch.nn.LSTM``: layer-major, forward direction before reverse.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.errors import ConfigError, DataError
from rnnkit.kernels import State, cell_class, choose_engine, length_mask, run_layer
from rnnkit.kernels.skip import with_skip
from rnnkit.layers.dropout import dropout, locked_dropout

MERGE_MODES = ("concat", "sum", "mul", "avg")


class Recurrent(nn.Module):
    """A stack of recurrent layers over one cell type.

    Args:
        cell: a registered cell's name (:data:`rnnkit.kernels.CELLS`): ``"rnn"``,
            ``"lstm"``, ``"gru"``, ``"leaky"``, ``"lnlstm"``, ``"lngru"``, ``"mingru"``,
            ``"minlstm"``, ...
        input_size: I, features per input step.
        hidden_size: H, units per layer and direction.
        num_layers: L, stacked layers; layer k > 0 reads layer k-1's outputs
            (both directions concatenated, as in ``torch.nn.LSTM``).
        dropout: dropout probability on the outputs of every layer except the
            last (Zaremba et al. 2014), in training mode only.
        locked_dropout: one dropout mask per sequence, the same at every time
            step (variational dropout, Gal & Ghahramani 2016; AWD-LSTM's
            "locked" dropout), instead of a fresh mask at every step.
        weight_drop: DropConnect on the recurrent weights (AWD-LSTM's weight
            drop, Merity et al. 2018): in training, each forward call drops
            this fraction of every W_hh's entries (one mask for all steps and
            the batch), scaling the rest by 1/(1-p); the state's own path is
            regularised without changing what the cell computes at test time.
        input_noise: σ of Gaussian noise added to the inputs in training mode
            (x + σ ε, ε ~ N(0, I), fresh at every call; none in evaluation mode).
        weight_noise: σ of Gaussian noise added to every W_hh in training mode,
            one draw per forward call (a training step) for all steps and the
            batch (Graves 2011's weight noise, on the recurrent weights); in
            evaluation mode the weights themselves. With ``weight_drop`` the
            noise is added to the dropped matrix. Both draw from torch's
            global generator, so a seed fixes them.
        skip_steps: d >= 2 adds skip connections through time: each step also
            reads the layer's own output d steps back, h_{t-d}, through a weight
            ``weight_skip`` per cell (:mod:`rnnkit.kernels.skip`); the state then
            holds d - 1 more tensors, (h_{t-2}, ..., h_{t-d}), after the cell's
            own. Explicit engine only (``engine="fused"`` is refused; ``"auto"``
            resolves to explicit); 0: none.
        bidirectional: add a reverse-time direction (D = 2).
        merge: how the last layer's two directions are combined: ``concat``
            (B, T, 2H), ``sum``, ``mul`` or ``avg`` (B, T, H).
        engine: ``"auto"``, ``"fused"`` or ``"explicit"`` (see the module docstring);
            ``engine_for(device)`` tells which one runs.
        padded: whether the layer reads padded batches (``lengths`` given), as
            classifiers and taggers do; ``"auto"`` chooses the engine for that
            kind of batch. Results do not depend on it.
        nonlinearity: ``"tanh"`` or ``"relu"`` for ``cell="rnn"``.
        batchnorm: batch normalisation of every layer's outputs (as torch-rnn's
            ``-batchnorm 1``): ``nn.BatchNorm1d`` over the layer's D*H features,
            statistics over the batch and time steps (over the valid positions
            only, with ``lengths``: padding stays zero and counts for nothing),
            before the dropout between layers; running statistics in
            evaluation mode. The fused engine then runs the stack layer by layer.
        **cell_kwargs: passed to every cell (``bias``, ``forget_bias``,
            ``leak_timescale``, ``learn_leak``, ``input_init``, ``recurrent_init``).

    ``forward(x, state=None, lengths=None) -> (outputs, state)``: with
    ``lengths`` (B,), each sequence stops at its length: its state is the
    state after its last valid step and its outputs beyond it are zero.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False, merge: str = "concat",
                 engine: str = "auto", nonlinearity: str = "tanh", locked_dropout: bool = False,
                 weight_drop: float = 0.0, padded: bool = False, batchnorm: bool = False,
                 input_noise: float = 0.0, weight_noise: float = 0.0, skip_steps: int = 0, **cell_kwargs):
        super().__init__()
        cell_type = cell_class(cell)
        choose_engine(engine, cell, "cpu")  # an engine this cell has
        if merge not in MERGE_MODES:
            raise ConfigError(f"Recurrent: merge must be one of {MERGE_MODES}, got {merge!r}")
        if num_layers < 1:
            raise ConfigError(f"Recurrent: num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"Recurrent: dropout must be in [0, 1), got {dropout}")
        if not 0.0 <= weight_drop < 1.0:
            raise ConfigError(f"Recurrent: weight_drop must be in [0, 1), got {weight_drop}")
        if weight_drop and not cell_type.hidden_weights:
            raise ConfigError(f"Recurrent: weight_drop drops recurrent weights, which {cell} has not")
        if input_noise < 0 or weight_noise < 0:
            raise ConfigError(f"Recurrent: input_noise and weight_noise must be >= 0, got {input_noise} and "
                              f"{weight_noise}")
        if weight_noise and not cell_type.hidden_weights:
            raise ConfigError(f"Recurrent: weight_noise perturbs recurrent weights, which {cell} has not")
        if skip_steps:
            _check_skip(cell, skip_steps, engine)
            cell_type, cell_kwargs = with_skip(cell_type), {**cell_kwargs, "skip_steps": skip_steps}
        self.cell_type = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.locked_dropout = locked_dropout
        self.weight_drop = weight_drop
        self.input_noise = input_noise
        self.weight_noise = weight_noise
        self.skip_steps = skip_steps
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.merge = merge
        self.engine = engine
        self.padded = padded
        self.nonlinearity = nonlinearity
        if cell == "rnn":
            cell_kwargs["nonlinearity"] = nonlinearity
        self.bias = cell_kwargs.get("bias", True)
        D = self.num_directions
        # cells[layer * D + direction], the order of torch's flat weights
        self.cells = nn.ModuleList(
            cell_type(input_size if layer == 0 else D * hidden_size, hidden_size, **cell_kwargs)
            for layer in range(num_layers) for _ in range(D))
        self.state_size = self.cells[0].state_size
        # norms[layer], over the layer's outputs (B, T, D*H); None without batchnorm
        self.norms = nn.ModuleList(nn.BatchNorm1d(D * hidden_size) for _ in range(num_layers)) if batchnorm else None

    @property
    def output_size(self) -> int:
        """Width of the outputs: D*H when bidirectional with ``merge="concat"``, else H."""
        return self.num_directions * self.hidden_size if self.merge == "concat" else self.hidden_size

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zero state: ``state_size`` tensors of shape (L*D, B, H)."""
        w = self.cells[0].weight_ih
        return tuple(torch.zeros(self.num_layers * self.num_directions, batch_size, self.hidden_size,
                                 device=device or w.device, dtype=dtype or w.dtype)
                     for _ in range(self.state_size))

    def forward(self, x: Tensor, state: State | None = None,
                lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """x (B, T, I) -> outputs (B, T, D*H or H), state (L*D, B, H) each."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"Recurrent: expected input of shape (B, T, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        B, T, _ = x.shape
        if state is None:
            state = self.init_state(B, x.device, x.dtype)
        expected = (self.num_layers * self.num_directions, B, self.hidden_size)
        if len(state) != self.state_size or any(s.shape != expected for s in state):
            raise ValueError(f"Recurrent: expected a state of {self.state_size} tensor(s) of shape "
                             f"{expected}, got {[tuple(s.shape) for s in state]}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
                raise ValueError(f"Recurrent: lengths must have shape ({B},) with values in [1, {T}], "
                                 f"got shape {tuple(lengths.shape)}")
            if int(lengths.min()) == T:  # nothing is padded: skip packing (torch's packed GRU is slower)
                lengths = None
        if self.input_noise and self.training:
            x = x + self.input_noise * torch.randn_like(x)  # (B, T, I); padding's noise reaches nothing
        engine = self.engine_for(x.device)
        if engine == "fused" and self.cells[0].fused_kernel() is not None:
            outputs, state = self._forward_fused(x, state, lengths)
        else:
            outputs, state = self._forward_layers(x, state, lengths, engine)
        if self.bidirectional:
            outputs = merge_directions(*outputs.chunk(2, dim=-1), self.merge)
        return outputs, state

    def engine_for(self, device: torch.device | str) -> str:
        """The engine this layer runs on ``device``: ``engine``, with "auto"
        resolved for its kind of batch (:func:`rnnkit.kernels.choose_engine`); explicit
        with skip connections (which refuse "fused")."""
        if self.skip_steps:
            _check_skip(self.cell_type, self.skip_steps, self.engine)
            return "explicit"
        return choose_engine(self.engine, self.cell_type, device, self.padded)

    # -- fused engine ---------------------------------------------------------

    def flat_weights(self) -> list[Tensor]:
        """Parameters in torch's flat order: per layer and direction
        ``weight_ih, weight_hh[, bias_ih, bias_hh]``."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        return [getattr(cell, n) for cell in self.cells for n in names]

    def _recurrent_weight(self, cell) -> Tensor:
        """W_hh of a cell as this forward call uses it: in training, with weight drop a fresh
        mask (DropConnect: dropout of the matrix's entries), with weight noise W_hh + σ ε,
        ε ~ N(0, I) drawn afresh."""
        weight = cell.weight_hh
        if self.weight_drop and self.training:
            weight = dropout(weight, self.weight_drop)
        if self.weight_noise and self.training:
            weight = weight + self.weight_noise * torch.randn_like(weight)  # (G*H, H)
        return weight

    def _drop_between(self, x: Tensor) -> Tensor:
        """Dropout on a layer's outputs (B, T, F) before the next layer reads them."""
        if self.locked_dropout:
            return locked_dropout(x, self.dropout, self.training)
        return dropout(x, self.dropout, self.training)

    def _normalise(self, layer: int, x: Tensor, lengths: Tensor | None) -> Tensor:
        """Batch normalisation of a layer's outputs x (B, T, F) with ``norms[layer]``
        (x itself without batchnorm): statistics over the valid positions only, padding left zero."""
        if self.norms is None:
            return x
        mask = None if lengths is None else length_mask(lengths, x.shape[1])  # (B, T), True at valid positions
        rows = x.reshape(-1, x.shape[-1]) if mask is None else x[mask]  # (valid positions, F)
        if self.training and rows.shape[0] < 2:
            raise DataError(f"batch normalisation needs at least 2 steps in a training batch to take statistics "
                            f"over; this one has {rows.shape[0]}: raise --batch-size or drop --batchnorm")
        normed = self.norms[layer](rows)  # a feature's statistics over the valid positions of B and T
        return normed.view_as(x) if mask is None else x.new_zeros(x.shape).index_put((mask,), normed)

    def _forward_fused(self, x: Tensor, state: State, lengths: Tensor | None):
        weights = self.flat_weights()
        if (self.weight_drop or self.weight_noise) and self.training:
            per_cell = len(weights) // len(self.cells)  # weight_ih, weight_hh[, biases]
            for k, cell in enumerate(self.cells):
                weights[k * per_cell + 1] = self._recurrent_weight(cell)
        # between layers the kernel draws a fresh mask per step, with bernoulli_, which is slow on a
        # CPU (rnnkit.layers.dropout): run the layers one at a time for locked dropout, and on a CPU;
        # and for batchnorm, which the kernel has not
        between = self.training and self.dropout and self.num_layers > 1
        if self.norms is None and not (between and (self.locked_dropout or x.device.type == "cpu")):
            return self._fused(x, state, lengths, weights, self.num_layers, self.dropout)
        D, per = self.num_directions, len(weights) // self.num_layers
        finals = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self._drop_between(x)
            s = tuple(t[layer * D:(layer + 1) * D] for t in state)
            x, s = self._fused(x, s, lengths, weights[layer * per:(layer + 1) * per], 1, 0.0)
            x = self._normalise(layer, x, lengths)
            finals.append(s)
        return x, tuple(torch.cat([f[i] for f in finals]) for i in range(self.state_size))

    def _fused(self, x: Tensor, state: State, lengths: Tensor | None, weights: list[Tensor],
               num_layers: int, dropout: float):
        kernel = self.cells[0].fused_kernel()
        hx = state if self.cell_type == "lstm" else state[0]
        args = (weights, self.bias, num_layers, dropout, self.training, self.bidirectional)
        if lengths is None:
            result = kernel(x, hx, *args, True)  # batch_first=True
            return result[0], tuple(result[1:])
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        hx = tuple(s.index_select(1, order) for s in state)
        result = kernel(packed.data, packed.batch_sizes, hx if self.cell_type == "lstm" else hx[0], *args)
        outputs, _ = pad_packed_sequence(
            packed._replace(data=result[0]), batch_first=True, total_length=x.shape[1])
        return outputs, tuple(s.index_select(1, unorder) for s in result[1:])

    # -- explicit engine and scans ---------------------------------------------

    def _forward_layers(self, x: Tensor, state: State, lengths: Tensor | None, engine: str):
        """Layer by layer and direction by direction, each through
        :func:`rnnkit.kernels.run_layer`."""
        D = self.num_directions
        T = x.shape[1]
        if lengths is not None:
            steps = torch.arange(T, device=x.device)
            # index that reverses each sequence within its own length (an involution)
            rev = torch.where(length_mask(lengths, T), lengths[:, None] - 1 - steps[None, :], steps[None, :])
        final: list[list[Tensor]] = [[] for _ in range(self.state_size)]
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = self._drop_between(layer_input)
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                s0 = tuple(s[k] for s in state)
                inp = layer_input
                if direction == 1:
                    inp = _reverse(inp, rev) if lengths is not None else inp.flip(1)
                cell = self.cells[k]
                out, sT = run_layer(cell, inp, s0, lengths, self._recurrent_weight(cell), engine)
                if direction == 1:
                    out = _reverse(out, rev) if lengths is not None else out.flip(1)
                outputs.append(out)
                for i, s in enumerate(sT):
                    final[i].append(s)
            layer_input = self._normalise(layer, torch.cat(outputs, dim=-1) if D == 2 else outputs[0], lengths)
        return layer_input, tuple(torch.stack(f) for f in final)

    # -- torch.nn interoperability --------------------------------------------

    def torch_state_dict(self) -> dict[str, Tensor]:
        """The parameters under ``torch.nn.LSTM/GRU/RNN`` names
        (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...)."""
        out = {}
        for k, cell in enumerate(self.cells):
            layer, direction = divmod(k, self.num_directions)
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name, p in cell.named_parameters():
                out[name + suffix] = p.detach()
        return out

    @torch.no_grad()
    def load_torch_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Copy weights from a ``torch.nn.LSTM/GRU/RNN`` state dict of the same shape."""
        ours = self.torch_state_dict()
        if set(state_dict) != set(ours):
            raise ValueError(f"Recurrent: state dict keys {sorted(state_dict)} do not match {sorted(ours)}")
        for name, p in ours.items():
            if state_dict[name].shape != p.shape:
                raise ValueError(f"Recurrent: {name} has shape {tuple(state_dict[name].shape)}, "
                                 f"expected {tuple(p.shape)}")
            p.copy_(state_dict[name])

    def extra_repr(self) -> str:
        """The cell, engine, layers, direction, merge, dropout and the regularisers that are on."""
        return (f"cell={self.cell_type!r}, engine={self.engine!r}, layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, merge={self.merge!r}, dropout={self.dropout}, "
                f"batchnorm={self.norms is not None}"
                + (f", skip_steps={self.skip_steps}" if self.skip_steps else "")
                + (f", input_noise={self.input_noise}" if self.input_noise else "")
                + (f", weight_noise={self.weight_noise}" if self.weight_noise else ""))


def engines_in(module: nn.Module, device: torch.device | str) -> dict[str, str]:
    """The engine each recurrent layer inside ``module`` runs on ``device``, by
    the layer's name in the module ("rnn", "encoder.layer", ...)."""
    return {name: m.engine_for(device) for name, m in module.named_modules() if isinstance(m, Recurrent)}


def use_engines(module: nn.Module, engines: dict[str, str] | str) -> None:
    """Put the recurrent layers inside ``module`` on ``engines``: one engine for
    all, or one per layer name (as :func:`engines_in` gives them). One engine
    for a module without recurrent layers (a tdnn) is a ConfigError."""
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, Recurrent)]
    if isinstance(engines, str) and not layers:
        raise ConfigError(f"--engine {engines} picks the engine of recurrent layers, and this model has none "
                          f"(a tdnn or esn encoder); drop --engine")
    for name, m in layers:
        engine = engines if isinstance(engines, str) else engines.get(name, m.engine)
        choose_engine(engine, m.cell_type, "cpu")  # one this cell has
        if m.skip_steps:
            _check_skip(m.cell_type, m.skip_steps, engine)
        m.engine = engine


def _check_skip(cell: str, skip_steps: int, engine: str) -> None:
    """A ConfigError unless skip connections of ``skip_steps`` can run for ``cell`` on ``engine``."""
    if skip_steps < 2:
        raise ConfigError(f"Recurrent: skip_steps must be 0 (none) or >= 2 (1 is the ordinary recurrence), "
                          f"got {skip_steps}")
    if not cell_class(cell).hidden_weights:
        raise ConfigError(f"Recurrent: skip connections read h_(t-d) as the recurrence reads h_(t-1), and {cell} "
                          f"has no recurrence on h (its gates read x_t only)")
    if engine == "fused":
        raise ConfigError("skip connections through time run on the explicit engine (torch's fused kernels "
                          "have no input for h_(t-d)); use --engine explicit or auto")


def merge_directions(fwd: Tensor, bwd: Tensor, mode: str) -> Tensor:
    """The two directions' features (..., H) each -> (..., 2H) for ``concat``,
    else (..., H): their ``sum``, product (``mul``) or average (``avg``)."""
    if mode == "concat":
        return torch.cat([fwd, bwd], dim=-1)
    if mode == "sum":
        return fwd + bwd
    if mode == "mul":
        return fwd * bwd
    return (fwd + bwd) / 2


def _reverse(x: Tensor, rev: Tensor) -> Tensor:
    """Reverse each sequence of x (B, T, F) within its length; rev (B, T) from forward."""
    return x.gather(1, rev.unsqueeze(-1).expand_as(x))
