"""An echo state network's reservoir and its readout fitted in closed form
(Jaeger 2001; Jaeger & Haas 2004; Lukoševičius 2012, "A practical guide to
applying echo state networks").

The reservoir is a recurrent layer whose weights are drawn once and never
trained. With leaky-integrator units at leak rate a, per step t::

    x_t = (1 - a) x_{t-1} + a tanh(W_in u_t + W x_{t-1} + b)        (B, N)

u_t (B, I) the input, x_t (B, N) the state, W_in (N, I) with entries from
U(-s, s) (s the input scaling), b (N,) from U(-s, s) (the input of a constant
1, as reservoirpy draws it), and W (N, N) sparse: a fraction d (the density)
of its entries from N(0, 1), the rest zero, then scaled so that its spectral
radius max |eig(W)| is ρ. For ρ < 1 (and a = 1: ordinary tanh units) the
state forgets where it started and becomes a function of the input's past
alone, the echo state property; past 1 the reservoir's own dynamics can
take over from the input.

The readout is linear in the state, y_t = W_out x_t + c, and is fitted by
ridge regression, no backpropagation::

    [W_out c]ᵀ = (ZᵀZ + λ D)⁻¹ ZᵀY,     Z = [X 1] (n, N + 1),   D = diag(1, ..., 1, 0)

(the intercept c is not penalised, as in scikit-learn's ``Ridge``).
:class:`RidgeFit` accumulates ZᵀZ (N+1, N+1) and ZᵀY (N+1, K) in float64
batch by batch, so a long series needs memory for those two and one batch,
never the (n, N) matrix of all states.

The weights are buffers, not parameters: no optimiser sees them, and they
are saved with the model's weights (``state_dict``), so a loaded model
computes the same states. The seed makes them reproducible from the
settings alone.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from rnnkit.errors import ConfigError
from rnnkit.layers.recurrent import length_mask

SPARSE_BELOW = 0.05  # the density at and below which the recurrent product is a sparse one


def spectral_radius_of(weight: Tensor) -> float:
    """max |λ_i| of ``weight`` (N, N), the eigenvalues in float64."""
    return torch.linalg.eigvals(weight.double()).abs().max().item()


def sparse_normal(size: int, density: float, generator: torch.Generator, tries: int = 100) -> Tensor:
    """(N, N) float64: a fraction ``density`` of the entries from N(0, 1), the rest zero. A small sparse
    draw can be nilpotent (all its eigenvalues 0: no radius to scale to); it is drawn again from the
    same generator, so the result still depends on the seed alone."""
    on = {"dtype": torch.float64, "device": "cpu"}  # also where a default device is set (the meta device)
    for _ in range(tries):
        weight = torch.randn(size, size, generator=generator, **on)
        weight = weight * (torch.rand(size, size, generator=generator, **on) < density)
        if spectral_radius_of(weight) > 1e-6:
            return weight
    raise ConfigError(f"a reservoir of {size} units at density {density} has no recurrent cycle (its matrix is "
                      f"nilpotent) in {tries} draws; raise the density or the size")


class Reservoir(nn.Module):
    """A leaky-integrator echo state reservoir (see the module's docstring).

    Args: ``input_size`` (I), ``hidden_size`` (N units), ``spectral_radius``
    (ρ of W), ``leak_rate`` (a in (0, 1]; 1: ordinary tanh units; or a
    tensor (N,) of one rate a unit, several time scales as
    :func:`rnnkit.kernels.leaky.leak_rates` spreads them),
    ``input_scaling`` (s: W_in and b from U(-s, s)), ``density`` (the fraction
    of W's entries that are not zero), ``seed`` (the draw of the weights, from
    a generator of its own: the global random state is untouched).

    Buffers: ``weight_in`` (N, I), ``weight`` (N, N), ``bias`` (N,), ``leak`` (N,).

    ``forward(u, state=None, lengths=None) -> (states (B, T, N), (x_T,))``
    for inputs u (B, T, I): the state after each step, and the state after
    each sequence's last step, x_T (1, B, N) (a one-layer
    :class:`rnnkit.layers.Recurrent`'s layout). A sequence's state is frozen
    after its length and its outputs are zero there. ``state`` (1, B, N)
    continues from a previous call (zeros without one). Equivalent to::

        x = zeros(N)
        for t in range(T):
            x = (1 - a) * x + a * tanh(weight_in @ u[t] + weight @ x + bias)
    """

    def __init__(self, input_size: int, hidden_size: int, spectral_radius: float = 0.9,
                 leak_rate: float | Tensor = 1.0, input_scaling: float = 1.0, density: float = 0.1, seed: int = 0):
        super().__init__()
        leak = torch.as_tensor(leak_rate, dtype=torch.float64, device="cpu").expand(hidden_size)  # (N,)
        if not ((leak > 0) & (leak <= 1)).all():
            raise ValueError(f"Reservoir: leak_rate must be in (0, 1], got {leak_rate}")
        if not 0.0 < density <= 1.0:
            raise ValueError(f"Reservoir: density must be in (0, 1], got {density}")
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.spectral_radius, self.density = spectral_radius, density
        self._sparse = None  # (what it was made from, W in compressed sparse rows), made when first used
        # drawn on the CPU, also where a default device is set (the meta device that sizes a model)
        g, on = torch.Generator().manual_seed(seed), {"dtype": torch.float64, "device": "cpu"}
        weight = sparse_normal(hidden_size, density, g)
        uniform = lambda *shape: input_scaling * (2 * torch.rand(*shape, generator=g, **on) - 1)  # noqa: E731
        self.register_buffer("weight_in", uniform(hidden_size, input_size).float())
        self.register_buffer("bias", uniform(hidden_size).float())
        self.register_buffer("weight", (weight * (spectral_radius / spectral_radius_of(weight))).float())
        self.register_buffer("leak", leak.float())

    def forward(self, u: Tensor, state: tuple[Tensor] | None = None, lengths: Tensor | None = None):
        """u (B, T, I), state (1, B, N) or None, lengths (B,) or None -> (states (B, T, N), (x_T (1, B, N),)),
        by the loop in the class docstring."""
        B, T, _ = u.shape
        if u.shape[-1] != self.input_size:
            raise ValueError(f"Reservoir: expected input of shape (B, T, {self.input_size}), got {tuple(u.shape)}")
        a = self.leak  # (N,)
        drive = u @ self.weight_in.T + self.bias  # (B, T, N): W_in u_t + b for every step at once
        x = state[0][0] if state is not None else drive.new_zeros(B, self.hidden_size)  # (B, N)
        running = length_mask(lengths, T) if lengths is not None else None  # (B, T), True at valid steps
        recur = self._recurrent_product(u.requires_grad or (state is not None and state[0].requires_grad))
        outputs = []
        for t in range(T):
            new = (1 - a) * x + a * torch.tanh(drive[:, t] + recur(x))  # (B, N)
            if running is not None:
                new = torch.where(running[:, t, None], new, x)  # frozen after each sequence's end
            outputs.append(new)
            x = new
        states = torch.stack(outputs, 1) if outputs else drive.new_zeros(B, 0, self.hidden_size)  # (B, T, N)
        if running is not None:
            states = states * running[..., None]
        return states, (x[None],)

    def _recurrent_product(self, needs_grad: bool):
        """x (B, N) -> x Wᵀ (B, N): with W in compressed sparse rows where few of its entries are not
        zero (density <= SPARSE_BELOW, 3 to 10 times faster there at N = 1000 on a CPU:
        benchmarks/NOTEBOOK.md, 2026-12-07), dense otherwise and where a gradient flows through x."""
        weight = self.weight
        if needs_grad or torch.is_grad_enabled() or self.density > SPARSE_BELOW or weight.device.type != "cpu":
            return lambda x: x @ weight.T
        key = (weight.data_ptr(), weight._version, weight.dtype)
        if self._sparse is None or self._sparse[0] != key:
            with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is not
                warnings.simplefilter("ignore", UserWarning)
                self._sparse = (key, weight.to_sparse_csr())
        sparse = self._sparse[1]
        return lambda x: (sparse @ x.T).T

    def extra_repr(self) -> str:
        """``input_size, hidden_size, spectral_radius=ρ``."""
        return f"{self.input_size}, {self.hidden_size}, spectral_radius={self.spectral_radius}"


class RidgeFit:
    """The ridge regression of targets Y (n, K) on features X (n, F) with an
    unpenalised intercept, accumulated over batches (see the module's docstring):
    ``add(X, Y)`` any number of times, then ``solve() -> (weight (K, F), bias (K,))``
    with ``ridge`` λ >= 0. The sums are float64 whatever the batches' dtype."""

    def __init__(self, num_features: int, num_outputs: int, ridge: float):
        if ridge < 0:
            raise ValueError(f"RidgeFit: ridge must be >= 0, got {ridge}")
        self.ridge = ridge
        self.gram = torch.zeros(num_features + 1, num_features + 1, dtype=torch.float64)  # ZᵀZ
        self.moment = torch.zeros(num_features + 1, num_outputs, dtype=torch.float64)  # ZᵀY
        self.target_squares = torch.zeros(num_outputs, dtype=torch.float64)  # Σ y_k², for the fit's error
        self.count = 0

    def add(self, features: Tensor, targets: Tensor) -> None:
        """Adds rows: features (n, F), targets (n, K)."""
        if features.dim() != 2 or targets.dim() != 2 or len(features) != len(targets):
            raise ValueError(f"RidgeFit: expected features (n, F) and targets (n, K), got {tuple(features.shape)} "
                             f"and {tuple(targets.shape)}")
        z = torch.cat([features.double(), features.new_ones(len(features), 1, dtype=torch.float64)], 1)  # (n, F+1)
        self.gram += z.T @ z
        self.moment += z.T @ targets.double()
        self.target_squares += (targets.double() ** 2).sum(0)
        self.count += len(z)

    def solve(self) -> tuple[Tensor, Tensor]:
        """(weight (K, F), bias (K,)) in float64 minimising Σ ||y - W x - c||² + λ ||W||²."""
        if self.count == 0:
            raise ValueError("RidgeFit: no rows were added")
        penalty = torch.full((len(self.gram),), self.ridge, dtype=torch.float64)
        penalty[-1] = 0.0  # the intercept is not penalised
        a = self.gram + torch.diag(penalty)
        solution, info = torch.linalg.solve_ex(a, self.moment)  # (F+1, K): LU, every direction kept
        if info.item() != 0 or not torch.isfinite(solution).all():
            # singular (λ = 0 with collinear features): the least-norm answer; gelsd drops the directions
            # below its cutoff, which would act as a penalty of its own where a is merely ill-conditioned
            solution = torch.linalg.lstsq(a, self.moment, driver="gelsd").solution
        return solution[:-1].T.contiguous(), solution[-1].clone()

    def squared_errors(self, weight: Tensor, bias: Tensor) -> Tensor:
        """(K,) float64: Σ_rows (y_k - W_k x - c_k)² of each output k over the rows added, from the sums
        alone: Σ y_k² - 2 (ZᵀY)_k · s_k + s_kᵀ ZᵀZ s_k, s_k = [W_k c_k] (F+1,)."""
        solution = torch.cat([weight.T, bias[None]]).double()  # (F+1, K)
        return self.target_squares - 2 * (solution * self.moment).sum(0) + (solution * (self.gram @ solution)).sum(0)
