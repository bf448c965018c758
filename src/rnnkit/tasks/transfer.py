"""Starting a model from a language model's run (``--init-from RUN``;
ULMFiT, Howard & Ruder 2018): the one seam every task that reads tokens goes
through (classify, tag, seq2seq, and lm itself for ULMFiT's middle step, a
language model fine-tuned on the task's own text).

1. :meth:`Pretrained.read`: the run folder, refused in one line when it is
   missing or damaged, or not a plain language model's.
2. :meth:`Pretrained.settle`: the new run's settings made to fit: ``--tokenizer
   auto`` becomes the language model's kind; another kind, another word
   splitting, cell, hidden size, layer count or embedding width is refused
   in one line naming what differs; the encoder reads one way, as the
   language model did (an explicit ``--bidirectional true`` is refused).
3. :meth:`Pretrained.read_data`: the task reads its data as always, then
   again with the language model's vocabulary extended by the words the new
   training data adds (:func:`rnnkit.data.tokenizers.extend_vocabulary`).
4. :meth:`Pretrained.copy_into`: the recurrent layers' weights copied whole,
   the embedding's rows (and a language model's output rows; seq2seq's
   target embedding where its tokens are of the same kind) copied by the
   token each stands for; the new words' rows are the seeded initialisation's,
   scaled to the language model's rows' standard deviation, and the task's
   head is fresh.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from torch import nn

from rnnkit.data.tokenizers import extend_vocabulary, token_strings
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.models.transfer import copy_rows, parts
from rnnkit.tasks import load_run, read_run
from rnnkit.training.run_config import CONFIG, Run

MATCHED = ("cell", "hidden_size", "num_layers", "embedding_dim")  # what the copied weights' shapes depend on
UNITS = {"word": "words", "spelled-word": "words", "char": "characters"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class Pretrained:
    """A language model's run, read to start another model from: its folder ``path``, its config
    (``run``, a :class:`rnnkit.training.run_config.Run`) and its best weights (``model``)."""

    path: str
    run: Run
    model: nn.Module

    @classmethod
    def read(cls, path: str) -> "Pretrained":
        """The run in folder ``path``; a one-line error when there is none, it is damaged, or it is
        not an unconditioned language model with an embedding."""
        if not (Path(path) / CONFIG).is_file():
            raise CheckpointError(f"--init-from {path}: no run folder there (no {CONFIG}); give the folder "
                                  f"`rnnkit train --task lm --out RUN` wrote")
        run = read_run(path)  # a damaged config.json or checkpoint: a CheckpointError naming the file
        if run.task != "lm":
            raise ConfigError(f"--init-from {path} is a {run.task} run, not a language model; give a run of "
                              f"`rnnkit train --task lm`")
        if run.labels:
            raise ConfigError(f"--init-from {path} is a conditioned language model (--condition-column); give "
                              f"one trained on plain text")
        if not run.model.embedding_dim:
            raise ConfigError(f"--init-from {path} has no embedding (--embedding-dim 0, one-hot inputs); give a "
                              f"language model with --embedding-dim > 0")
        model, _, _ = load_run(path)
        return cls(str(path), run, model)

    @property
    def kind(self) -> str:
        """The pretrained run's tokenizer kind (char, word, ...)."""
        return self.run.tokenizer.kind

    def settle(self, model_cfg, data_cfg):
        """(model_cfg, data_cfg) of the new run made to fit the language model (see the module
        docstring); a ConfigError naming the first setting that cannot."""
        lm, tok, path = self.run.model, self.run.tokenizer, self.path
        if data_cfg.tokenizer == "auto":
            data_cfg = dataclasses.replace(data_cfg, tokenizer=self.kind)
        elif data_cfg.tokenizer != self.kind:
            raise ConfigError(f"--init-from {path} reads {self.kind} tokens and this run --tokenizer "
                              f"{data_cfg.tokenizer}; give --tokenizer {self.kind} (or drop --tokenizer)")
        if self.kind == "word":
            for name, theirs in (("lowercase", tok.lowercase), ("word_pattern", tok.pattern)):
                if getattr(data_cfg, name) != theirs:
                    raise ConfigError(f"--init-from {path} split its words with {_flag(name)} {theirs}, this "
                                      f"run {getattr(data_cfg, name)}; give {_flag(name)} {theirs}")
        for name in MATCHED:
            if getattr(model_cfg, name) != getattr(lm, name):
                raise ConfigError(f"--init-from {path} has {_flag(name)} {getattr(lm, name)} and this run "
                                  f"{getattr(model_cfg, name)}; give {_flag(name)} {getattr(lm, name)}")
        if model_cfg.embeddings:
            raise ConfigError(f"--init-from {path} starts the embedding itself; drop --embeddings")
        if getattr(model_cfg, "char_features", 0):
            raise ConfigError(f"--init-from {path}: a language model reads no spellings, so its first layer "
                              f"cannot take them; drop --char-features")
        if model_cfg.bidirectional:
            raise ConfigError(f"--init-from {path} reads left to right, and its layers cannot read backwards; "
                              f"drop --bidirectional true")
        return dataclasses.replace(model_cfg, bidirectional=False), data_cfg

    def read_data(self, task, data_cfg, spell: bool = False):
        """``task``'s data of ``data_cfg``, tokenized over the language model's vocabulary and the
        tokens the training part adds (the rest of the task's reading is its own)."""
        fitted = task.read_data(data_cfg, spell=spell)
        fixed = SimpleNamespace(tokenizer=extend_vocabulary(self.run.tokenizer, fitted.tokenizer),
                                labels=getattr(fitted, "labels", None),
                                target_tokenizer=getattr(fitted, "target_tokenizer", None))
        return task.read_data(data_cfg, fixed, spell=spell)

    def copy_into(self, model: nn.Module, data) -> str:
        """Start ``model`` (built over ``data``'s tokenizers) from the language model; what was
        copied, for `rnnkit train`'s first line ("init from RUN: 9,812 of 10,234 words, 2 layers")."""
        source, target = parts(self.model), parts(model)
        if target is None or target.embedding is None:
            raise ConfigError(f"--init-from {self.path}: this model has no recurrent encoder over an embedding "
                              f"to start; use --encoder rnn and --embedding-dim > 0")
        theirs, ours = source.recurrent.state_dict(), target.recurrent.state_dict()
        for name in sorted(set(theirs) | set(ours)):
            if name not in theirs or name not in ours or theirs[name].shape != ours[name].shape:
                shapes = [tuple(sd[name].shape) if name in sd else "none" for sd in (ours, theirs)]
                raise ConfigError(f"--init-from {self.path}: the recurrent layers differ at {name} ({shapes[0]} "
                                  f"here, {shapes[1]} in the language model); train with its settings")
        target.recurrent.load_state_dict(theirs)
        lm_tokens, tokens = token_strings(self.run.tokenizer), token_strings(data.tokenizer)
        rows = copy_rows(target.embedding.weight, tokens, source.embedding.weight, lm_tokens, rescale_rest=True)
        if target.output is not None:  # a language model from a language model: its output rows too
            copy_rows(target.output.weight, tokens, source.output.weight, lm_tokens)
            copy_rows(target.output.bias, tokens, source.output.bias, lm_tokens)
        unit = UNITS.get(data.tokenizer.kind, "tokens")
        note = (f"init from {self.path}: {rows:,} of {len(tokens):,} {unit}, "
                f"{source.recurrent.num_layers} layer{'s' * (source.recurrent.num_layers > 1)}")
        target_tok = getattr(data, "target_tokenizer", None)
        if target.target_embedding is not None and target_tok is not None and target_tok.kind == self.kind:
            shared = copy_rows(target.target_embedding.weight, token_strings(target_tok), source.embedding.weight,
                               lm_tokens, rescale_rest=True)  # the decoder's <s> row (the last) has no string
            note += f", the decoder's embedding {shared:,} of {target_tok.vocab_size:,} {unit}"
        return note
