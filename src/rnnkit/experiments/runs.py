"""Experiments that compare training settings run rnnkit's own Trainer, as
``rnnkit train`` does, on a character model of a text, in a temporary run
folder: what they measure is what a user of those settings gets."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from rnnkit.config import DataConfig, ModelConfig
from rnnkit.data import TextData
from rnnkit.tasks import LanguageModelTraining, named
from rnnkit.training.trainer import Trainer


def train_on_text(text: str, model: dict, train: dict, data: dict | None = None,
                  callbacks: tuple[Callable[[Trainer], None], ...] = ()) -> Trainer:
    """A character language model of ``text`` with these ModelConfig, TrainConfig
    and DataConfig settings, trained to its budget; the Trainer, with its model
    and metrics rows (``trainer.rows``), after the run folder is gone."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "text.txt"
        path.write_text(text)
        corpus = TextData.from_file(path, DataConfig(tokenizer="char", **(data or {})))
        config = LanguageModelTraining(device="cpu", sample_length=0, **train)
        torch.manual_seed(config.seed)  # the initialisation, as rnnkit train seeds it
        lm = named("lm")
        trainer = Trainer(lm.build_model(ModelConfig(**model), corpus.tokenizer), corpus, config,
                          out=Path(folder) / "run", callbacks=callbacks, quiet=True, task=lm)
        trainer.fit()
    return trainer
