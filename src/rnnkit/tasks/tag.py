"""Sequence tagging (``--task tag``): an output at every step, a tag a
word, from CoNLL columns (chunks, parts of speech); or a label a sample of
a numeric recording (a CSV or ARFF series: EEG eye state), split in time
and read as vectors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.config import DataConfig, setting
from rnnkit.data import LabelledData
from rnnkit.data.sequences import collate, label_ids, read_tagged_sentences
from rnnkit.data.series import SERIES_SUFFIXES, read_series, write_series
from rnnkit.data.tables import LabelColumn, read_conll, write_conll
from rnnkit.errors import ConfigError
from rnnkit.models import SequenceTagger, TaggerConfig
from rnnkit.tasks.labelled import LabelledTask, examples_to_predict, labelling_endpoint, predict_and_write

CONLL = "--task tag on CoNLL columns"


def _series(path) -> bool:
    """A numeric recording (read as vectors), not CoNLL columns of words."""
    return Path(path or "").suffix.lower() in SERIES_SUFFIXES


@dataclass
class TagData(LabelColumn, DataConfig):
    """:class:`rnnkit.config.DataConfig` and the columns of a CoNLL file's words and tags (a series:
    of its labels)."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="tag")
    word_column: int = setting("tag: the CoNLL column of the words (0-based)", default=0)
    tag_column: int = setting("tag: the CoNLL column of the tags (-1: the last; CoNLL-U UPOS: 3)", default=-1)


class TagTask(LabelledTask):
    name = "tag"
    summary = "tag (one label a token)"
    model_class = SequenceTagger
    model_config = TaggerConfig
    data_config = TagData
    rules = {
        **LabelledTask.rules,
        "label_smoothing": (lambda c: not c.model.crf, "a softmax at every step (--crf false; a CRF's loss is over "
                                                       "whole tag sequences)"),
        "word_column": (lambda c: not _series(c.data.path), CONLL),
        "tag_column": (lambda c: not _series(c.data.path), CONLL),
        "label_column": (lambda c: _series(c.data.path), "--task classify, or a series to tag"),
        "seq_len": (lambda c: _series(c.data.path),
                    "a language model over a text, or a series to tag (other batches hold whole examples)"),
    }

    def token_kinds(self, choice) -> set[str]:
        return {"none"} if _series(choice.data.path) else super().token_kinds(choice)

    def check(self, model_cfg, data_cfg) -> None:
        if data_cfg.tokenizer not in ("auto", "word"):
            raise ConfigError(f"tokenizer {data_cfg.tokenizer!r} does not apply to --task tag: a CoNLL file's "
                              f"tokens are its words; leave --tokenizer unset")

    def decide(self, data_cfg):
        """A CoNLL file's tokens are its words; a series has none."""
        return (data_cfg, []) if _series(data_cfg.path) else super().decide(data_cfg)

    def read_data(self, config, run=None, spell=False):
        config = self.own(config)
        self.check(None, config)
        tokenizer, labels = (run.tokenizer, run.labels) if run else (None, None)
        if _series(config.path):
            return LabelledData.from_series(config.path, config, config.label_column, tokenizer, labels)
        config, _ = self.decide(config)
        return LabelledData.from_texts(
            config.path, config, lambda path: read_tagged_sentences(path, config.word_column, config.tag_column),
            tokenizer, labels, per_token=True, spell=spell)

    def predict(self, run, model, doc, request) -> int:
        tokenizer = doc.tokenizer
        cfg, labels, path = doc.data, doc.labels, request.input
        if _series(path):  # every sample of a recording, read as one sequence
            x, gold, header, rows = read_series(path, cfg.label_column, num_features=tokenizer.num_features)
            y = label_ids(gold, labels, path) if gold else np.zeros(len(x), dtype=np.int64)
            batches = [collate([tokenizer.transform(x, str(path))], [y])]
            return predict_and_write(model, batches, labels,
                                     lambda f, predicted: write_series(f, path, header, rows, predicted[0]),
                                     request.out, path, "series" if gold else None)
        sentences = read_conll(path, cfg.word_column, cfg.tag_column, require_tags=False)
        texts = [" ".join(w) for w in sentences.words]
        batches = examples_to_predict(texts, sentences.tags, lambda text: [labels[0]] * len(text.split()),
                                      tokenizer, labels, path, per_token=True)
        return predict_and_write(model, batches, labels,
                                 lambda f, predicted: write_conll(f, sentences, predicted), request.out, path,
                                 "sentences" if sentences.tags is not None else None)

    def endpoints(self, model, run, limits):
        """``tag``: a tag each word of each sentence (words split at white space). A run of series
        (a tag each sample of a recording) serves nothing yet."""
        if getattr(run.tokenizer, "num_features", None):
            return {}
        return {"tag": labelling_endpoint(model, run, limits, "sentences", "a tag each word of each sentence",
                                          per_token=True)}
