"""Gradual unfreezing (ULMFiT, Howard & Ruder 2018, sec. 3.3): fine-tuning a
model started from a language model, at first only its head learns, then
one more layer from the top each period, until every layer does; so the
fresh head's first, large gradients do not wash out what the pretrained
layers know.

A frozen parameter has ``requires_grad`` False: no gradient reaches it, so
the optimizer neither steps it nor decays it nor keeps state for it (torch's
optimizers skip a parameter whose gradient is None), and backpropagation
stops at the lowest unfrozen layer. The layers are
:func:`rnnkit.models.transfer.layer_groups`'s, the same that
``--lr-layer-decay`` gives each its rate.
"""

from __future__ import annotations

from torch import nn

from rnnkit.models.transfer import layer_groups


def unfrozen_layers(step: int, every: int, num_groups: int) -> int:
    """How many layer groups from the top learn at training step ``step`` (0-based) when one more is
    unfrozen every ``every`` steps: 1 (the head) for steps [0, every), 2 for [every, 2 every), ...,
    at most ``num_groups``."""
    return min(1 + step // every, num_groups)


def unfreeze(model: nn.Module, step: int, config) -> dict:
    """Freeze and unfreeze ``model``'s layers for training step ``step`` as ``config.unfreeze_every``
    says (a :class:`rnnkit.config.TrainConfig`; nothing without it); what goes into the step's
    metrics line: the layers learning, with the head counted as one."""
    every = getattr(config, "unfreeze_every", None)
    if not every:
        return {}
    groups = layer_groups(model)
    learning = unfrozen_layers(step, every, len(groups))
    for depth, group in enumerate(groups):
        for p in group:
            p.requires_grad_(depth < learning)
    return {"unfrozen_layers": learning}
