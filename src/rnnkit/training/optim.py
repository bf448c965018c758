"""Optimizers by name (torch.optim), what a step does to the gradients before
the update (clipping, the L1 term), and the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from rnnkit.config import TrainConfig, check_at_least, check_choice, setting
from rnnkit.models.transfer import layer_groups


def penalised(p: nn.Parameter) -> bool:
    """Whether weight decay and L1 apply to p: weight matrices and embeddings, never
    biases or the norms' gains and biases (the 1-d parameters), nor a parameter a model marks
    ``no_decay`` (a forecaster's AR weights, fitted in closed form before training)."""
    return p.dim() >= 2 and not getattr(p, "no_decay", False)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` over ``model``'s parameters.

    Weight decay applies to weight matrices and embeddings only, never to
    biases (decoupled from the gradient for ``adamw``, an L2 term otherwise).

    Each optimizer gets the settings it has: ``momentum`` (momentum,
    nesterov), ``alpha`` (rmsprop), ``rho`` (adadelta), ``beta1``,
    ``beta2`` (adam, adamw) and ``eps`` (all but SGD's, torch's default when
    unset); the command line refuses the others for it.

    SGD, AdaGrad, Adam and AdamW run torch's fused implementation (one kernel
    over all parameters) on CPUs and GPUs: the same update, where the
    default on a CPU loops over the tensors with about ten ops each, a
    sizeable share of a small model's training step (benchmarks/NOTEBOOK.md,
    "Fused optimizer steps").
    """
    params = list(model.parameters())
    groups = [{"params": [p for p in layer if penalised(p)], "weight_decay": cfg.weight_decay_in_use, "lr_scale": scale}
              for layer, scale in layer_rates(model, cfg)]
    groups += [{"params": [p for p in layer if not penalised(p)], "weight_decay": 0.0, "lr_scale": scale}
               for layer, scale in layer_rates(model, cfg)]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    name, lr = cfg.optimizer, cfg.lr
    eps = {} if cfg.eps is None else {"eps": cfg.eps}  # else torch's own default, which differs by optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, fused=fused)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=name == "nesterov", fused=fused)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, fused=fused, **eps)
    if name == "rmsprop":  # char-rnn's optimizer; decay rate 0.95 there, alpha here (no fused kernel)
        return torch.optim.RMSprop(groups, lr=lr, alpha=cfg.alpha, **eps)
    if name == "adadelta":  # Zeiler 2012; torch scales its step by lr (1 in the paper); no fused kernel
        return torch.optim.Adadelta(groups, lr=lr, rho=cfg.rho, **eps)
    betas = (cfg.beta1, cfg.beta2)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, fused=fused, **eps)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused, **eps)


def layer_rates(model: nn.Module, cfg: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
    """The model's parameters and the share of the learning rate each learns at: all at 1, or with
    ``lr_layer_decay`` d discriminative rates (ULMFiT, Howard & Ruder 2018, sec. 3.2): layer l from
    the top (:func:`rnnkit.models.transfer.layer_groups`, the head l = 0, the embedding lowest) at
    η_l = η / d^l, the Trainer multiplying the schedule's η by each group's ``lr_scale``."""
    decay = getattr(cfg, "lr_layer_decay", None)
    if not decay:
        return [(list(model.parameters()), 1.0)]
    return [(layer, decay ** -depth) for depth, layer in enumerate(layer_groups(model))]


def add_l1_subgradient(model: nn.Module, strength: float) -> None:
    """The gradient of the L1 penalty ``strength * Σ|w|`` over the weight matrices
    and embeddings (as weight decay, never biases), added to their gradients:
    g <- g + strength * sign(w), 0 where w = 0. Under an adaptive optimizer
    (Adam, RMSProp, AdaGrad) the added term is rescaled with the rest, as an L2
    term is, so the penalty is not exact L1 there."""
    with torch.no_grad():
        for p in model.parameters():
            if penalised(p) and p.grad is not None:
                p.grad.add_(p.sign(), alpha=strength)


def gradient_norm(model: nn.Module) -> float:
    """The global L2 norm of the gradients ||(g_1, ..., g_n)||_2; NaN or inf when any element is."""
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=torch.promote_types(
        g.dtype, torch.float32)) for g in grads])).item()


def clip_gradients(model: nn.Module, clip_value: float | None, clip_norm: float | None) -> float:
    """Clip ``model``'s gradients to [-clip_value, clip_value] element-wise, then to a
    global norm of ``clip_norm`` (each when set); returns their global norm before
    clipping (NaN or inf if any element is), computed once: clip_grad_norm_ returns it."""
    params = model.parameters()
    if clip_value:  # element-wise clipping first changes the norm: measure before it
        norm = gradient_norm(model)
        torch.nn.utils.clip_grad_value_(params, clip_value)
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        return norm
    if clip_norm:
        return torch.nn.utils.clip_grad_norm_(params, clip_norm).item()
    return gradient_norm(model)


def all_finite(tensors) -> bool:
    """Whether every floating-point element of ``tensors`` (weights, a carried state) is finite."""
    return all(torch.isfinite(t).all().item() for t in tensors if t.is_floating_point())


DEFAULT_TIME_LIMIT = 300.0  # seconds of training when no budget is set


@dataclass
class Budget:
    """What ends training, whichever comes first: ``max_steps``, ``max_epochs`` (passes over
    the training split), ``time_limit`` seconds (:data:`DEFAULT_TIME_LIMIT` when none is set)."""

    max_steps: int | None = None
    max_epochs: float | None = None
    time_limit: float | None = None

    @classmethod
    def of(cls, cfg: TrainConfig) -> "Budget":
        """The budget ``cfg`` sets, or :data:`DEFAULT_TIME_LIMIT` seconds when it sets none."""
        if not cfg.has_budget:
            return cls(time_limit=DEFAULT_TIME_LIMIT)
        return cls(cfg.max_steps, cfg.max_epochs, cfg.time_limit)

    def spent(self, step: int, epochs: float, elapsed: float) -> float:
        """The share spent after ``step`` steps, ``epochs`` passes and ``elapsed`` seconds (>= 1: done)."""
        return max([0.0] + [used / limit for used, limit in ((step, self.max_steps), (epochs, self.max_epochs),
                                                           (elapsed, self.time_limit)) if limit])

    def describe(self) -> str:
        """"max-steps 500, time-limit 300": the limits set, as flags."""
        return ", ".join(f"{f.name.replace('_', '-')} {getattr(self, f.name):g}" for f in dataclasses.fields(self)
                         if getattr(self, f.name))


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate for ``step`` (0-based) at ``progress`` in [0, 1] of the budget.

    Linear warm-up over ``warmup_steps``, then ``constant``; ``step``:
    lr * lr_decay^floor(step / lr_decay_every), or with ``lr_decay_start`` s,
    lr * lr_decay^(1 + floor((step - s) / lr_decay_every)) from step s on; ``cosine``:
    lr * (m + (1 - m) * (1 + cos(pi * progress)) / 2) with m = min_lr_ratio; ``stlr``: the slanted
    triangular rate (:func:`slanted_triangular`, its own warm-up) with t / T = ``progress``.
    """
    if cfg.lr_schedule == "stlr":
        return cfg.lr * slanted_triangular(progress, cfg.stlr_cut_frac, cfg.stlr_ratio)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":
        if cfg.lr_decay_start is None:
            return cfg.lr * cfg.lr_decay ** (step // cfg.lr_decay_every)
        decays = 0 if step < cfg.lr_decay_start else 1 + (step - cfg.lr_decay_start) // cfg.lr_decay_every
        return cfg.lr * cfg.lr_decay ** decays
    m = cfg.min_lr_ratio
    return cfg.lr * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def slanted_triangular(progress: float, cut_frac: float, ratio: float) -> float:
    """The slanted triangular learning rate's share of its peak η_max (Howard & Ruder 2018, eq. 3)
    at t / T = ``progress`` of the T steps of training:

        cut = T · cut_frac
        p   = t / cut                                        if t < cut
              1 - (t - cut) / (cut · (1 / cut_frac - 1))     otherwise
        η_t = η_max · (1 + p · (ratio - 1)) / ratio

    a rise from η_max / ratio to η_max over the first ``cut_frac`` of training, then a fall back to
    η_max / ratio at its end (the paper floors cut to a whole step; here T · cut_frac is kept whole
    as a share of a budget that may be time). Past the end (p < 0) it stays at η_max / ratio."""
    x = min(max(progress, 0.0), 1.0)
    p = x / cut_frac if x < cut_frac else 1.0 - (x - cut_frac) / (cut_frac * (1.0 / cut_frac - 1.0))
    return (1.0 + max(p, 0.0) * (ratio - 1.0)) / ratio


SAMPLING_SCHEDULES = ("none", "linear", "exponential", "inverse_sigmoid")


@dataclass
class ScheduledSampling:
    """The settings of scheduled sampling (a mixin of a task's training config: seq2seq's,
    forecast's): how often the model reads its own previous output instead of the target's
    as training goes on (:func:`teacher_forcing`); :meth:`check_sampling` validates them."""

    scheduled_sampling: str = setting("seq2seq, forecast: feed the model its own previous outputs (sampled) "
                                      "instead of the target's, more often as training goes on (Bengio et al. "
                                      "2015): none (teacher forcing), linear, exponential or inverse_sigmoid",
                                      default="none")
    sampling_steps: int = setting("seq2seq, forecast: the step at which scheduled sampling feeds the model's "
                                  "own outputs half the time", default=5000)

    def check_sampling(self) -> None:
        """ConfigError naming the field when the schedule is unknown or ``sampling_steps`` below 1."""
        check_choice(self, "scheduled_sampling", SAMPLING_SCHEDULES)
        check_at_least(self, "sampling_steps", 1)


def schedule_teacher_forcing(model, cfg, step: int) -> dict:
    """Set ``model.teacher_forcing`` (the chance of reading the target's previous value) for
    training step ``step`` under ``cfg`` (a :class:`ScheduledSampling`); what goes into the
    step's metrics line ({} under teacher forcing throughout)."""
    if cfg.scheduled_sampling == "none":
        return {}
    model.teacher_forcing = teacher_forcing(cfg, step)
    return {"teacher_forcing": round(model.teacher_forcing, 4)}


def teacher_forcing(cfg, step: int) -> float:
    """The chance ε_i of feeding a sequence-to-sequence decoder the target's
    token (a forecaster the observed value) at training step i (scheduled sampling, Bengio et al. 2015), falling
    from 1 and crossing 1/2 at i = k = ``sampling_steps`` (``cfg``: a
    :class:`ScheduledSampling`):

    - ``linear``: ε_i = max(0, 1 - i / 2k);
    - ``exponential``: ε_i = 2^(-i/k)  (their k^i, with their k = 2^(-1/k));
    - ``inverse_sigmoid``: ε_i = c / (c + exp(i / c)) with c ln c = k, so ε_k = 1/2
      (it starts at c / (c + 1), 0.99 for k = 400);
    - ``none``: 1 (teacher forcing throughout).
    """
    schedule, k = cfg.scheduled_sampling, cfg.sampling_steps
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        return max(0.0, 1.0 - step / (2 * k))
    if schedule == "exponential":
        return 0.5 ** (step / k)
    lo, hi = 1.0, max(3.0, float(k))  # c ln c = k by bisection (c ln c rises from 0 at c = 1)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid * math.log(mid) < k else (lo, mid)
    c = (lo + hi) / 2
    return c / (c + math.exp(min(step / c, 700.0)))
