"""Sequence classification (``--task classify``): one output at the end, a
label a text, read from a CSV/TSV table (the text and label columns found
by name, or the label as the column with few values)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rnnkit.config import DataConfig, setting
from rnnkit.data import LabelledData
from rnnkit.data.sequences import read_labelled_table
from rnnkit.data.tables import LabelColumn, TextColumn, read_table, write_table
from rnnkit.data.tokenizers import choose_tokenizer
from rnnkit.models import ClassifierConfig, SequenceClassifier
from rnnkit.tasks.labelled import LabelledTask, examples_to_predict, predict_and_write


@dataclass
class ClassifyData(TextColumn, LabelColumn, DataConfig):
    """:class:`rnnkit.config.DataConfig` and the columns of the table's texts and labels."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="classify")


class ClassifyTask(LabelledTask):
    name = "classify"
    summary = "classify (one label a text)"
    model_class = SequenceClassifier
    model_config = ClassifierConfig
    data_config = ClassifyData
    rules = {**LabelledTask.rules,
             "washout": (lambda c: False, "--task tag --encoder esn (a readout of every step; a classifier's reads "
                                          "the pooled vector)")}

    def decide(self, data_cfg):
        """``--tokenizer auto`` from the texts (:func:`rnnkit.data.tokenizers.choose_tokenizer`)."""
        if data_cfg.tokenizer != "auto":
            return data_cfg, []
        kind, why = choose_tokenizer(self._texts(data_cfg, data_cfg.path)[0])
        return dataclasses.replace(data_cfg, tokenizer=kind), [f"tokenizer auto: {kind} ({why})"]

    @staticmethod
    def _texts(config, path):
        return read_labelled_table(path, config.text_column, config.label_column)

    def read_data(self, config, run=None, spell=False):
        config, _ = self.decide(self.own(config))
        return LabelledData.from_texts(
            config.path, config, lambda path: self._texts(config, path), run.tokenizer if run else None,
            run.labels if run else None, stratify=True, spell=spell)

    def predict(self, run, model, doc, request) -> int:
        tokenizer = doc.tokenizer
        cfg, labels = doc.data, doc.labels
        table = read_table(request.input, cfg.text_column, cfg.label_column, require_labels=False)
        batches = examples_to_predict(table.texts, table.labels, lambda text: labels[0], tokenizer, labels,
                                      request.input, per_token=False)
        return predict_and_write(model, batches, labels, lambda f, predicted: write_table(f, table, predicted),
                                 request.out, request.input, "examples" if table.labels is not None else None)
