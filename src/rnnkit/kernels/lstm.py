"""The LSTM: its equations, its step as one autograd node, and its whole
sequence as one autograd node on the C kernels of ``lstm.c``.

Three forms of the same arithmetic, fastest last:

- :meth:`LSTMCell.activate` without autograd (:func:`lstm_gates`, generation);
- :class:`LSTMGates`: one step as one node with its backward by hand, on
  torch ops (the reference, and any dtype or device) or on the C kernels
  (fp32 on a CPU); unroll's per-step loop calls it;
- :class:`_LSTMLayer`: the whole time loop as one node, every per-step
  tensor written by the C kernels into buffers made once per sequence, the
  recurrent weight gradient as one product. Per step t, with
  xp_t = x_t W_ih^T + b_ih + b_hh from one product over all steps::

      gates_t = h_{t-1} W_hh^T + xp_t;   h_t, c_t = LSTM(gates_t, c_{t-1})

  and backward from dout (B, T, H) and dc_T, for t = T..1::

      dgates_t = LSTM'(dout_t + dh_t, dc_t);   dh_{t-1} = dgates_t W_hh
      dW_hh = sum_t dgates_t^T h_{t-1} = DG^T Hprev    DG (T*B, 4H), Hprev (T*B, H): one product
      dxp_t = dgates_t                                (b_ih and b_hh get their share from xp)
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import gemm, native
from rnnkit.kernels.cell import Cell, State, by_length, cpu_node_takes, running_rows_product, tanh_by_sigmoid

_sigmoid_backward = torch.ops.aten.sigmoid_backward  # dy ⊙ σ(1-σ) from σ, one kernel instead of three
_tanh_backward = torch.ops.aten.tanh_backward  # dy ⊙ (1-tanh²) from tanh


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

    On a CPU ``engine="auto"`` runs it on the explicit engine over padded
    batches (classifiers, taggers), where its layer node measured faster than
    torch's packed kernel, and on the fused engine otherwise, where torch's
    kernel measured faster at a language model's shapes (benchmarks/RESULTS.md,
    "Padded batches"; NOTEBOOK.md, 2026-12-04).
    """

    name = "lstm"
    num_gates = 4
    gate_names = ("input", "forget", "cell", "output")  # the blocks of G*H rows, in order
    state_size = 2
    options = ("forget_bias",)
    explicit_on_cpu = ("padded",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 forget_bias: float = 1.0, **init):
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, bias, **init)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """As :meth:`Cell.reset_parameters`, then the forget block of ``bias_ih`` set to ``forget_bias``
        (unless ``input_init="torch"``, which keeps torch's uniform biases)."""
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

    def gates(self, xp: Tensor, hp: Tensor | None, state: State) -> dict[str, tuple[str, Tensor]]:
        i, f, g, o = (xp + hp).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        return {"input": ("sigmoid", i), "forget": ("sigmoid", f), "cell": ("tanh", g), "output": ("sigmoid", o),
                "tanh(c)": ("tanh", torch.tanh(f * state[1] + i * g))}

    def fused_kernel(self):
        return torch.lstm

    def step_kernel(self, batch_size: int) -> LSTMStep | None:
        """Generation's no-grad step on lstm.c (:class:`LSTMStep`): fp32 on a CPU, with the C kernels built."""
        return LSTMStep(batch_size, self.hidden_size) if native.handles(self.weight_hh) else None

    def layer(self, x: Tensor, state: State, lengths: Tensor | None,
              weight_hh: Tensor) -> tuple[Tensor, State] | None:
        """The sequence as one :class:`_LSTMLayer` node: fp32 on a CPU (or
        under bf16 autocast), with the C kernels built."""
        if not (cpu_node_takes(x, weight_hh) and native.library() is not None):
            return None

        def node(x, state, sizes, lengths):  # -> (outputs, c_T)
            xp = self.project_input(x, with_hidden_bias=True)  # (B, T, 4H), b_hh joined b_ih
            return _LSTMLayer.apply(xp, *state, weight_hh, sizes, lengths)

        return by_length(node, x, state, lengths)


def lstm_gates(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The LSTM's element-wise step in the fewest ops, for steps without autograd
    (at batch 1 an op's fixed cost outweighs its arithmetic): gates (B, 4H),
    c (B, H) -> (h, c'). One sigmoid over all four blocks (the g block's is unused)."""
    H = c.shape[1]
    i, f, _, o = torch.sigmoid(gates).chunk(4, dim=1)
    c = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * H:3 * H]))
    return o * torch.tanh(c), c


class LSTMGates(torch.autograd.Function):
    """The LSTM's element-wise step as one autograd node, with its backward by hand
    (autograd would record a dozen nodes a step and concatenate the four gate
    gradients). Forward, from gates = [a_i | a_f | a_g | a_o] (B, 4H) and c (B, H)::

        i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
        c' = f ⊙ c + i ⊙ g;  h = o ⊙ tanh(c')

    Backward, from dh and dc' (the gradients reaching h and c')::

        dc = dc' + dh ⊙ o ⊙ (1 - tanh²(c'))
        [da_i | da_f | da_g | da_o] = [dc ⊙ g | dc ⊙ c | dc ⊙ i | dh ⊙ tanh(c')]
                                      ⊙ [i(1-i) | f(1-f) | 1-g² | o(1-o)]
        dc_prev = dc ⊙ f

    fp32 on a CPU runs lstm.c, one pass each way; the torch ops are the reference.
    """

    @staticmethod
    def forward(ctx, gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """gates (B, 4H), c (B, H) -> h, c' (B, H) each; on lstm.c for fp32 CPU tensors, else torch ops."""
        if native.handles(gates, c):
            h, c_new, act, tanh_c = _native_forward(gates, c)
            ctx.save_for_backward(act, c, tanh_c)
            return h, c_new
        H = c.shape[1]
        act = torch.sigmoid(gates)  # (B, 4H): i, f, o are final; the g block is replaced below
        act[:, 2 * H:3 * H] = tanh_by_sigmoid(gates[:, 2 * H:3 * H])
        i, f, g, o = act.chunk(4, dim=1)
        c_new = torch.addcmul(f * c, i, g)  # (B, H)
        tanh_c = tanh_by_sigmoid(c_new)
        ctx.save_for_backward(act, c, tanh_c)
        return o * tanh_c, c_new

    @staticmethod
    def backward(ctx, dh: Tensor, dc_new: Tensor) -> tuple[Tensor, Tensor]:
        """dh, dc' (B, H) -> dgates (B, 4H), dc_prev (B, H), by the equations above."""
        act, c, tanh_c = ctx.saved_tensors
        if native.handles(act, c, dh, dc_new):
            return _native_backward(act, c, tanh_c, dh, dc_new)
        H = c.shape[1]
        i, f, g, o = act.chunk(4, dim=1)
        dc = _tanh_backward(dh * o, tanh_c).add_(dc_new)  # (B, H)
        dact = torch.empty_like(act)  # (B, 4H): the gradient reaching i, f, g, o
        torch.mul(dc, g, out=dact[:, :H])
        torch.mul(dc, c, out=dact[:, H:2 * H])
        torch.mul(dc, i, out=dact[:, 2 * H:3 * H])
        torch.mul(dh, tanh_c, out=dact[:, 3 * H:])
        dgates = _sigmoid_backward(dact, act)  # the g block is replaced below
        _tanh_backward.grad_input(dact[:, 2 * H:3 * H], g, grad_input=dgates[:, 2 * H:3 * H])
        return dgates, dc * f


# -- the C kernels (lstm.c) ----------------------------------------------------

def step_forward(hp: Tensor, xp: Tensor | None, c: Tensor, act: Tensor, c_new: Tensor,
                 h: Tensor, h_copy: Tensor, tanh_c: Tensor) -> None:
    """The LSTM's step from hp (B, 4H, contiguous) + xp (B, 4H, any row stride;
    None: none) and c (B, H, any row stride) into act (B, 4H), c_new, h (any row
    stride), h_copy and tanh_c (B, H). hp, xp and h_copy are all fp32 or all
    bf16 (then xp is required; see lstm.c)."""
    B, H = c.shape
    native.library().rnnkit_lstm_forward(
        hp.data_ptr(), None if xp is None else xp.data_ptr(), 0 if xp is None else xp.stride(0),
        c.data_ptr(), c.stride(0), act.data_ptr(), c_new.data_ptr(), h.data_ptr(), h.stride(0),
        h_copy.data_ptr(), tanh_c.data_ptr(), B, H, hp.dtype == torch.bfloat16)


def step_backward(act: Tensor, c: Tensor, tanh_c: Tensor, dh: Tensor, dh_more: Tensor,
                  dc_new: Tensor, dgates: Tensor, dgates_copy: Tensor, dc_prev: Tensor) -> None:
    """The backward of :func:`step_forward` from the gradients reaching h
    (dh (B, H), any row stride, + dh_more) and c' (B, H, any row stride) into
    dgates (B, 4H) (any row stride), dgates_copy (B, 4H) and dc_prev (B, H). dh_more, dgates and dgates_copy
    are all fp32 or all bf16."""
    B, H = c.shape
    native.library().rnnkit_lstm_backward(
        act.data_ptr(), c.data_ptr(), c.stride(0), tanh_c.data_ptr(), dh.data_ptr(), dh.stride(0),
        dh_more.data_ptr(), dc_new.data_ptr(), dc_new.stride(0), dgates.data_ptr(), dgates.stride(0),
        dgates_copy.data_ptr(), dc_prev.data_ptr(), B, H, dgates.dtype == torch.bfloat16)


class LSTMStep:
    """The LSTM's step without autograd on lstm.c, for a decoding loop at batch size B (generation:
    :class:`rnnkit.models.stepping.Stepper`): one C call in place of the six torch ops of
    :func:`lstm_gates`, which at batch 1 cost more than their arithmetic. The same equations::

        a = hp + xp;  i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
        c' = f ⊙ c + i ⊙ g;  h = o ⊙ tanh(c')

    ``step(hp, xp, c, h_out, h_copy) -> c'``: hp (B, 4H) contiguous, the recurrent product with its
    biases; xp (B, 4H) contiguous or None, the input's part when it is not in hp; c (B, H), any row
    stride. h is written into ``h_out`` (B, H, any row stride: a column block of the next product's
    input) and into ``h_copy`` (B, H, contiguous: the new state); c' is a new (B, H). The gates'
    activations and tanh(c'), which only a backward reads, go to scratch made once."""

    def __init__(self, batch_size: int, hidden_size: int):
        self.batch_size, self.hidden_size = batch_size, hidden_size
        self.act = torch.empty(batch_size, 4 * hidden_size)  # scratch: [i | f | g | o]
        self.tanh_c = torch.empty(batch_size, hidden_size)  # scratch
        self.kernel = native.library().rnnkit_lstm_forward

    def __call__(self, hp: Tensor, xp: Tensor | None, c: Tensor, h_out: Tensor, h_copy: Tensor) -> Tensor:
        B, H = self.batch_size, self.hidden_size
        c_new = torch.empty(B, H)
        self.kernel(hp.data_ptr(), None if xp is None else xp.data_ptr(), 0 if xp is None else xp.stride(0),
                    c.data_ptr(), c.stride(0), self.act.data_ptr(), c_new.data_ptr(), h_out.data_ptr(),
                    h_out.stride(0), h_copy.data_ptr(), self.tanh_c.data_ptr(), B, H, 0)
        return c_new


def _native_forward(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """gates (B, 4H), c (B, H) -> h, c', and for the backward act = [i|f|g|o] (B, 4H) and tanh(c')."""
    gates, c = gates.contiguous(), native.rows(c)
    B, H = c.shape
    act = torch.empty(B, 4 * H)
    c_new, h, tanh_c = torch.empty(B, H), torch.empty(B, H), torch.empty(B, H)
    step_forward(gates, None, c, act, c_new, h, h, tanh_c)  # h is its own copy
    return h, c_new, act, tanh_c


def _native_backward(act: Tensor, c: Tensor, tanh_c: Tensor, dh: Tensor,
                     dc_new: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients reaching h and c' (B, H) -> those reaching gates (B, 4H) and c (B, H)."""
    c, dh, dc_new = native.rows(c), native.rows(dh), native.rows(dc_new)
    dgates, dc_prev = torch.empty(act.shape), torch.empty(c.shape)
    step_backward(act, c, tanh_c, dh, dh.new_zeros(dh.shape), dc_new, dgates, dgates, dc_prev)  # no product
    return dgates, dc_prev


def _forward_steps(xp: Tensor, prepared: Tensor, hs: Tensor, cs: Tensor, acts: Tensor, out: Tensor,
                   tanh_cs: Tensor, sizes: list[int]) -> None:
    """The time loop of :class:`_LSTMLayer`'s forward: at step t, hp = h_{t-1} W_hh^T for the
    ``sizes[t]`` rows still running, then :func:`step_forward` from hp and xp[:, t] into the
    buffers' step t (c, act, tanh(c), the outputs) and t + 1 (c, h). What it would take as views
    (eight a step) it takes as addresses, computed here from each buffer's strides: at batch 1
    the views cost more than the step's arithmetic (benchmarks/NOTEBOOK.md, 2026-12-07)."""
    kernel = native.library().rnnkit_lstm_forward
    B, T, G = xp.shape
    H = G // 4
    bf16 = xp.dtype == torch.bfloat16

    walk = native.walk

    (xp0, dxp), (c0, dc), (act0, dact), (out0, dout), (h0, dh), (tc0, dtc) = (
        walk(xp, 1), walk(cs, 0), walk(acts, 0), walk(out, 1), walk(hs, 0), walk(tanh_cs, 0))
    ld_xp, ld_out = xp.stride(0), out.stride(0)
    h_rows = hs.unbind(0)  # h_{t-1}, (B, H) each
    product = gemm.product_into(prepared, B, xp.dtype)
    for t, n in enumerate(sizes):
        hp = product(h_rows[t] if n == B else h_rows[t][:n])  # (n, 4H)
        kernel(hp.data_ptr(), xp0 + t * dxp, ld_xp, c0 + t * dc, H, act0 + t * dact, c0 + (t + 1) * dc,
               out0 + t * dout, ld_out, h0 + (t + 1) * dh, tc0 + t * dtc, n, H, bf16)


class _LSTMLayer(torch.autograd.Function):
    """(xp (B, T, 4H), h0, c0 (B, H), W_hh (4H, H), sizes, lengths) -> (outputs (B, T, H), c_T).

    ``sizes[t]`` rows run at step t (sequences sorted longest first, see
    :func:`rnnkit.kernels.cell.by_length`); the outputs past a sequence's
    end are zero and c_T is each sequence's c after its last step (``lengths``
    (B,), or None: all T). xp's dtype is the products': fp32, or bf16 under
    autocast, where h_{t-1}, W_hh and the gate gradients enter the products in
    bf16. The gate arithmetic, c and the outputs stay fp32."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, weight: Tensor, sizes: list[int],
                lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        B, T, G = xp.shape
        H = G // 4
        xp = xp.contiguous()
        prepared = gemm.prepare(weight, B, xp.dtype)
        fp32 = dict(dtype=torch.float32)
        ragged = lengths is not None
        # past a sequence's end: zero outputs, and a finite h_{t-1} for the weight gradient's product
        out = (xp.new_zeros if ragged else xp.new_empty)(B, T, H, **fp32)
        hs = (xp.new_zeros if ragged else xp.new_empty)(T + 1, B, H)  # h_{t-1} time-major, xp's dtype
        cs = xp.new_empty(T + 1, B, H, **fp32)  # c_{t-1} for step t's backward
        acts = xp.new_empty(T, B, G, **fp32)  # [i | f | g | o] of every step
        tanh_cs = xp.new_empty(T, B, H, **fp32)
        hs[0], cs[0] = h0, c0
        with torch.autocast(xp.device.type, enabled=False):  # each product in its operands' dtype
            _forward_steps(xp, prepared, hs, cs, acts, out, tanh_cs, sizes)
        c_last = cs[lengths, torch.arange(B)] if ragged else cs[T]
        ctx.save_for_backward(weight, hs, cs, acts, tanh_cs)
        ctx.sizes = sizes
        return out, c_last

    @staticmethod
    def backward(ctx, dout: Tensor, dc_last: Tensor):
        weight, hs, cs, acts, tanh_cs = ctx.saved_tensors
        T, B, H = tanh_cs.shape
        ragged = ctx.sizes[-1] < B
        low = dict(dtype=hs.dtype)  # the products' dtype
        prepared_t = gemm.prepare(weight.t(), B, hs.dtype)
        dout = dout if dout.stride(2) == 1 else dout.contiguous()  # (B, T, H), read a step at a time
        zeros_if_ragged = dout.new_zeros if ragged else dout.new_empty  # rows past an end stay zero
        dxp = zeros_if_ragged(B, T, 4 * H, **low)  # the gradient reaching xp, batch-major like xp
        dgates = zeros_if_ragged(T, B, 4 * H, **low)  # the same, time-major, for the products
        # dc of the step after, written in turns; a sequence's last step reads its dc_T from both
        dcs = [dc_last.clone(memory_format=torch.contiguous_format) for _ in range(2)]
        dh = dout.new_zeros(B, H, **low)  # the gradient reaching h_t from step t+1 (0 at a last step)
        for t in range(T - 1, -1, -1):
            n = ctx.sizes[t]
            step_backward(acts[t, :n], cs[t, :n], tanh_cs[t, :n], dout[:n, t], dh[:n], dcs[(t + 1) % 2][:n],
                          dxp[:n, t], dgates[t, :n], dcs[t % 2][:n])
            if t > 0 or ctx.needs_input_grad[1]:
                dh = running_rows_product(dgates[t], n, prepared_t, dh)  # (B, H)
        dweight = gemm.mm(dgates.view(T * B, 4 * H).t(), hs[:T].reshape(T * B, H))  # (4H, H)
        needs = ctx.needs_input_grad
        return (dxp, dh.float() if needs[1] else None, dcs[0] if needs[2] else None, dweight.float(),
                None, None)
