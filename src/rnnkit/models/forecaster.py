"""A forecaster: the next values of a numeric series at every step, from the
values before them and what is known in advance (covariates), read left to
right by an encoder and turned into a distribution by a head (the recurrent
pattern "output at every step" with real-valued outputs).

    u_t = [x_t ; k_t]                            (B, T, C + K)  x_t = y_(t-1)
    h_t = encoder(u_1..u_t)                      (B, T, H)
    gaussian:  μ_t = W_μ h_t + b_μ               (B, T, C)
               σ²_t = softplus(W_σ h_t + b_σ) + σ²_min
               loss = mean_(t, c) ½ (log 2π + log σ²_t + (y_t - μ_t)² / σ²_t)
    squared:   μ_t = W_μ h_t + b_μ; loss = mean_(t, c) (y_t - μ_t)²
    ar_order q > 0:  μ_t,c += Σ_(j=1..q) a_(j,c) x_(t-j+1),c + a_(0,c)       (y_(t-1) .. y_(t-q))

The autoregressive component (q = ``ar_order``) is LSTNet's "highway"
(Lai et al. 2018): a linear AR(q) per channel over the last q values, added
to the head's mean (the variance is the head's alone) and trained jointly,
so the forecast follows scale changes and linear dynamics a small recurrent
net learns slowly. Before training (:meth:`Forecaster.start_from_ar`, called by
the task) it is set to the AR(q) fitted by least squares on the training part
and the head's output to 0, so the untrained model is that linear model and
training learns what it leaves (Zhang 2003's hybrid; the AR weights take no
weight decay). Values before the start of a window are read as 0, so a
window's first q - 1 steps see a truncated sum; they are left out of the loss
(q < ``seq_len``, which the task checks).

The Gaussian head is DeepAR's (Salinas et al. 2017): a mean and a variance
per channel, the variance kept positive by a softplus, trained by the
negative log-likelihood (``F.gaussian_nll_loss``). Deviation: DeepAR scales
each series by its own mean inside the model; here the data layer has
already z-scored each channel with the training part's statistics.

Training is teacher-forced (x_t is the observed y_(t-1)); with scheduled
sampling (``teacher_forcing`` ε < 1, set by the task each step) each row's
x_t is, with chance 1 - ε, the model's own draw for step t - 1 instead
(Bengio et al. 2015), with no gradient through the draw. A forecast
(:meth:`Forecaster.forecast`) reads a window of observed values, then feeds
its own draws back for the steps after it: sampled paths (gaussian) or the
point path (squared).

The encoder is a seam (:data:`ENCODERS`): anything with
``forward(u (B, T, I), state) -> (h (B, T, H), state)`` and ``output_size``
that :func:`build_encoder` can build from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import ModelConfig, check_choice, setting
from rnnkit.errors import ConfigError
from rnnkit.data.batches import ForecastBatch
from rnnkit.kernels import State, cell_options
from rnnkit.layers import Recurrent
from rnnkit.layers.dropout import dropout
from rnnkit.models.encoder import ReservoirSettings, reservoir

LIKELIHOODS = ("gaussian", "squared")
MIN_VARIANCE = 1e-6  # σ²_min, in the z-scored units: keeps the NLL bounded on a series that repeats exactly


def recurrent_encoder(config: "ForecasterConfig", input_size: int) -> nn.Module:
    """The recurrent stack, read left to right: ``forward(u, state) -> (h, state)``."""
    c = config
    return Recurrent(c.cell, input_size, c.hidden_size, c.num_layers, dropout=c.dropout, bidirectional=False,
                     engine=c.engine, weight_drop=c.weight_drop, batchnorm=c.batchnorm,
                     **cell_options(c.cell, c), input_init=c.input_init, recurrent_init=c.recurrent_init)


# --encoder NAME -> a builder (config, input_size) -> encoder module; an esn's readout (the head's mean) is
# fitted in closed form (rnnkit.training.closed_form: readout_rows, set_readout)
ENCODERS = {"rnn": recurrent_encoder, "esn": reservoir}


@dataclass
class ForecasterConfig(ReservoirSettings, ModelConfig):
    """:class:`rnnkit.config.ModelConfig` (smaller defaults: a series has few inputs) and the
    forecaster's encoder and head."""

    hidden_size: int = setting("units per layer (char-rnn: rnn_size)", default=64)
    num_layers: int = setting("stacked recurrent layers", default=1)
    dropout: float = setting("dropout on embeddings, between layers and before the output layer", default=0.0)
    encoder: str = setting("what reads the inputs: classify, tag, seq2seq, ctc: rnn (the recurrent cells) or "
                           "tdnn (a time-delay network: 1-D convolutions over time, the finite-window baseline); "
                           "forecast: rnn; classify, tag, forecast: also esn (an echo state reservoir whose readout "
                           "is fitted in closed form, no backpropagation)", default="rnn")
    likelihood: str = setting("forecast: the head and its loss: gaussian (a mean and a variance per channel, the "
                              "negative log-likelihood, as DeepAR; forecasts are sampled paths) or squared "
                              "(the mean alone, squared error; forecasts are one point path)", default="gaussian")
    ar_order: str = setting("forecast: q, the order of a linear autoregression per channel over the last q values "
                            "added to the forecast's mean (LSTNet's highway), fitted by least squares on the "
                            "training part before training, which then learns the rest (the recurrent part's "
                            "output starts at 0); auto: q by AIC on the training part; 0 = none", default=0)

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "encoder", tuple(ENCODERS))
        check_choice(self, "likelihood", LIKELIHOODS)
        self.check_reservoir()
        # a number once decided (config.json holds it so); "auto" until the task has read the data
        if self.ar_order != "auto":
            given = self.ar_order
            try:
                self.ar_order = int(given)
            except (TypeError, ValueError):
                self.ar_order = -1
            if self.ar_order < 0:
                raise ConfigError(f"--ar-order must be >= 0 (0 = no autoregressive component) or auto; got {given}")

def build_encoder(config: ForecasterConfig, input_size: int) -> nn.Module:
    """The encoder ``config.encoder`` names (rnn, tdnn or esn), reading inputs of width ``input_size``."""
    return ENCODERS[config.encoder](config, input_size)


class Prediction(NamedTuple):
    """A forecaster's output: ``mean`` μ (B, T, C) and ``variance`` σ² (B, T, C) (None for squared error),
    in z-scored units, and the encoder's ``state`` after the last step."""

    mean: Tensor  # (B, T, C) μ, z-scored units
    variance: Tensor | None  # (B, T, C) σ², None for squared error
    state: State | None  # the encoder's after the last step


class Forecaster(nn.Module):
    """Args: ``num_channels`` (C), ``num_covariates`` (K), and the fields of
    :class:`ForecasterConfig` as keywords.

    ``forward(x, covariates, targets=None, state=None) -> (Prediction, loss)``
    for previous values x (B, T, C), known inputs covariates (B, T, K) and
    targets (B, T, C); ``loss(batch, state)`` the Trainer's entry point on a
    :class:`ForecastBatch`; ``forecast(...)`` multi-step paths.
    """

    def __init__(self, num_channels: int, num_covariates: int = 0, **config):
        super().__init__()
        self.config = ForecasterConfig(**{**config, "bidirectional": False})
        self.num_channels, self.num_covariates = num_channels, num_covariates
        self.encoder = build_encoder(self.config, num_channels + num_covariates)
        self.gaussian = self.config.likelihood == "gaussian"
        self.head = nn.Linear(self.encoder.output_size, num_channels * (2 if self.gaussian else 1))
        q = self.config.ar_order
        if q == "auto":
            raise ConfigError("--ar-order auto is decided from the training data (rnnkit train); a model is built "
                              "with a number")
        # a_(1..q, c) and a_(0,c) as a depthwise convolution over time: weight (C, 1, q), oldest value first
        self.autoregressive = nn.Conv1d(num_channels, num_channels, q, groups=num_channels) if q else None
        if q:
            nn.init.zeros_(self.autoregressive.weight)  # the recurrent forecaster alone until start_from_ar
            nn.init.zeros_(self.autoregressive.bias)
            self.autoregressive.weight.no_decay = True  # weight decay would pull the fitted AR towards 0
        self.teacher_forcing = 1.0  # ε: the chance of reading the observed previous value (scheduled sampling)

    @torch.no_grad()
    def readout_rows(self, batch: ForecastBatch) -> tuple[Tensor, Tensor]:
        """What the head's mean regresses in a closed-form fit (an esn): the states h_t (n, H) of the
        teacher-forced windows past each one's first ``washout`` steps, and the values y_t (n, C)."""
        h, _ = self.encoder(torch.cat([batch.x, batch.covariates], dim=-1))  # (B, T, H)
        w = self.config.washout
        return h[:, w:].reshape(-1, h.shape[-1]), batch.y[:, w:].reshape(-1, self.num_channels)

    @torch.no_grad()
    def set_readout(self, weight: Tensor, bias: Tensor, mse: Tensor) -> None:
        """Set the head to a readout fitted in closed form: μ_t = W h_t + c (weight (C, H), bias (C,));
        a Gaussian head's variance is each channel's mean squared error on the fitted rows, the
        same at every step (its weights 0, its bias softplus⁻¹(mse - σ²_min))."""
        C = self.num_channels
        self.head.weight[:C] = weight
        self.head.bias[:C] = bias
        if self.gaussian:
            excess = (mse.to(self.head.bias.dtype) - MIN_VARIANCE).clamp_min(1e-6)  # (C,)
            self.head.weight[C:] = 0.0
            self.head.bias[C:] = excess + torch.log(-torch.expm1(-excess))  # softplus⁻¹

    @torch.no_grad()
    def start_from_ar(self, weight: Tensor, intercept: Tensor, variance: Tensor) -> None:
        """Start as a linear AR(q) fitted in closed form (:mod:`rnnkit.models.linear_ar`): the AR
        component's weight (C, q) (oldest lag first) and intercept (C,), the head's output 0 (its
        weights and bias; a Gaussian head's variance each channel's residual variance (C,)), so the
        untrained model's mean is the AR's forecast and training learns the residual."""
        self.autoregressive.weight.copy_(weight.view_as(self.autoregressive.weight))
        self.autoregressive.bias.copy_(intercept)
        H = self.head.in_features
        self.set_readout(torch.zeros(self.num_channels, H), torch.zeros(self.num_channels), variance)

    @property
    def unscored_steps(self) -> int:
        """The first q - 1 steps of a window, whose AR sum reads values before it as 0: left out of the loss."""
        return max(0, self.config.ar_order - 1)

    def _head(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """h (B, T, H) -> μ (B, T, C), σ² (B, T, C) or None."""
        out = self.head(dropout(h, self.config.dropout, self.training))
        if not self.gaussian:
            return out, None
        mean, raw = out.chunk(2, dim=-1)
        return mean, F.softplus(raw) + MIN_VARIANCE

    def autoregression(self, x: Tensor) -> Tensor:
        """x (B, T, C) -> Σ_j a_(j,c) x_(t-j+1),c + a_(0,c) (B, T, C), values before x read as 0; zeros for q = 0."""
        if self.autoregressive is None:
            return torch.zeros_like(x)
        padded = F.pad(x.float().transpose(1, 2), (self.config.ar_order - 1, 0))  # (B, C, q - 1 + T)
        with torch.autocast(x.device.type, enabled=False):  # fp32 under bf16 training: bf16's 3 digits would
            return self.autoregressive(padded).transpose(1, 2)  # blur a near-exact linear fit; (B, T, C)

    def _check(self, x: Tensor, covariates: Tensor) -> None:
        C, K = self.num_channels, self.num_covariates
        if x.dim() != 3 or x.shape[-1] != C or covariates.shape != (*x.shape[:2], K):
            raise ValueError(f"Forecaster: expected x (B, T, {C}) and covariates (B, T, {K}), got "
                             f"{tuple(x.shape)} and {tuple(covariates.shape)}")

    def forward(self, x: Tensor, covariates: Tensor, targets: Tensor | None = None,
                state: State | None = None) -> tuple[Prediction, Tensor | None]:
        """x (B, T, C), covariates (B, T, K), targets (B, T, C) or None -> (Prediction, the loss or None):
        μ_t = head(h_t) + the autoregressive term; the loss skips the first steps whose AR sum is not whole."""
        self._check(x, covariates)
        h, state = self.encoder(torch.cat([x, covariates], dim=-1), state)  # (B, T, H)
        mean, variance = self._head(h)
        mean = mean + self.autoregression(x)
        s = min(self.unscored_steps, x.shape[1] - 1)  # the steps whose AR sum is whole
        loss = None if targets is None else \
            self.nll(mean[:, s:], None if variance is None else variance[:, s:], targets[:, s:])
        return Prediction(mean, variance, state), loss

    def nll(self, mean: Tensor, variance: Tensor | None, targets: Tensor) -> Tensor:
        """The mean loss per value: Gaussian negative log-likelihood in nats, or squared error."""
        if variance is None:
            return F.mse_loss(mean, targets)
        return F.gaussian_nll_loss(mean, targets, variance, full=True, eps=MIN_VARIANCE)

    def draw(self, mean: Tensor, variance: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """A value from the predicted distribution (μ itself for squared error)."""
        if variance is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + variance.sqrt() * noise

    def loss(self, batch: ForecastBatch, state: State | None = None) -> tuple[Tensor, None]:
        """A :class:`ForecastBatch` -> (the loss, no carried state): teacher-forced, or with scheduled sampling
        while training with ``teacher_forcing`` below 1."""
        if not self.training or self.teacher_forcing >= 1.0:
            return self(batch.x, batch.covariates, batch.y)[1], None
        return self._scheduled_sampling_loss(batch), None

    def _scheduled_sampling_loss(self, batch: ForecastBatch) -> Tensor:
        """Step by step, each row reading its own previous draw with chance 1 - ε."""
        x, k, y = batch
        B, T, _ = x.shape
        state, previous, means, variances, read = None, None, [], [], []
        for t in range(T):
            x_t = x[:, t:t + 1]  # (B, 1, C)
            if previous is not None:
                own = torch.rand(B, 1, 1, device=x.device) >= self.teacher_forcing
                x_t = torch.where(own, previous, x_t)
            read.append(x_t)
            h, state = self.encoder(torch.cat([x_t, k[:, t:t + 1]], dim=-1), state)
            mean, variance = self._head(h)
            mean = mean + self._last_autoregression(read)
            means.append(mean)
            variances.append(variance)
            previous = self.draw(mean, variance).detach()
        s = min(self.unscored_steps, T - 1)
        return self.nll(torch.cat(means, 1)[:, s:], torch.cat(variances, 1)[:, s:] if self.gaussian else None,
                        y[:, s:])

    def _last_autoregression(self, read: list[Tensor]) -> Tensor:
        """The AR term of the newest step from the values read so far (each (B, 1, C)): (B, 1, C)."""
        if self.autoregressive is None:
            return torch.zeros_like(read[-1])
        return self.autoregression(torch.cat(read[-self.config.ar_order:], dim=1))[:, -1:]

    @torch.no_grad()
    def forecast(self, x: Tensor, covariates: Tensor, horizon: int, num_samples: int = 1,
                 generator: torch.Generator | None = None) -> Tensor:
        """Paths of ``horizon`` steps after each window: (B, N, horizon, C), z-scored.

        x (B, T, C) is a window of observed values and covariates (B, T + horizon - 1, K) the
        known inputs of its target steps and of the horizon's (the window's last output
        predicts the first step after it). Each of the N = ``num_samples`` paths feeds its
        own draws back (squared error: the one point path, N = 1)."""
        B, T, C = x.shape
        N = num_samples if self.gaussian else 1
        prediction, _ = self(x, covariates[:, :T])
        state = tuple(s.repeat_interleave(N, dim=1) for s in prediction.state)  # (L, B * N, H)
        mean = prediction.mean[:, -1:].repeat_interleave(N, dim=0)  # (B * N, 1, C)
        variance = None if prediction.variance is None else prediction.variance[:, -1:].repeat_interleave(N, dim=0)
        future = covariates[:, T:].repeat_interleave(N, dim=0)  # (B * N, horizon - 1, K)
        newest = x[:, T - min(self.config.ar_order, T):].repeat_interleave(N, dim=0)  # the AR's values
        read = list(newest.split(1, dim=1))
        steps = []
        for h in range(horizon):
            value = self.draw(mean, variance, generator)  # (B * N, 1, C)
            steps.append(value)
            if h + 1 < horizon:
                out, state = self.encoder(torch.cat([value, future[:, h:h + 1]], dim=-1), state)
                mean, variance = self._head(out)
                read.append(value)
                mean = mean + self._last_autoregression(read)
        return torch.cat(steps, dim=1).view(B, N, horizon, C)
