"""Training, evaluation and the run folder."""

from rnnkit.training.device import resolve_device, resolve_precision
from rnnkit.training.evaluate import evaluate, evaluate_dynamic
from rnnkit.training.optim import build_optimizer, learning_rate
from rnnkit.training.trainer import Trainer

__all__ = ["Trainer", "build_optimizer", "evaluate", "evaluate_dynamic", "learning_rate", "resolve_device",
           "resolve_precision"]
