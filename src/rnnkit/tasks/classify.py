"""Sequence classification (``--task classify``): one output at the end, a
label a text, read from a CSV/TSV table (the text and label columns found
by name, or the label as the column with few values); or a label a whole
numeric recording, from a manifest of recording files or the Bonn EEG
archive, decided from its windows (:mod:`rnnkit.tasks.recordings`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rnnkit.config import DataConfig, setting
from rnnkit.data import LabelledData
from rnnkit.data.sequences import read_labelled_table
from rnnkit.data.tables import LabelColumn, TextColumn, read_table, write_table
from rnnkit.data.tokenizers import choose_tokenizer
from rnnkit.data.recordings import RecordingScaler
from rnnkit.data.windows import RecordingData, RecordingSettings
from rnnkit.models import ClassifierConfig, SequenceClassifier
from rnnkit.models.portable import Port
from rnnkit.tasks import recordings
from rnnkit.tasks.labelled import LabelledTask, examples_to_predict, labelling_endpoint, predict_and_write


@dataclass
class ClassifyData(TextColumn, LabelColumn, RecordingSettings, DataConfig):
    """:class:`rnnkit.config.DataConfig`, the columns of the table's texts and labels, and how
    recordings are cut into windows and split (:class:`rnnkit.data.windows.RecordingSettings`)."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="classify")


class ClassifyTask(LabelledTask):
    """``--task classify``: a label a text (or a whole recording), the sequence classifier."""

    name = "classify"
    summary = "classify (one label a text)"
    model_class = SequenceClassifier
    metrics = (*LabelledTask.metrics, "window_accuracy")  # the windows' own, for recordings
    model_config = ClassifierConfig
    data_config = ClassifyData
    rules = {**LabelledTask.rules, **recordings.RULES,
             "washout": (lambda c: False, "--task tag or forecast --encoder esn (a readout of every step; a "
                                          "classifier's reads the pooled vector)")}

    def token_kinds(self, choice) -> set[str]:
        return {"none"} if recordings.recordings(choice) else super().token_kinds(choice)

    def decide(self, data_cfg):
        """``--tokenizer auto`` from the texts (:func:`rnnkit.data.tokenizers.choose_tokenizer`); for
        recordings, the window, stride and frame from their lengths."""
        if recordings.is_recordings(data_cfg.path):
            return recordings.decide(data_cfg)
        if data_cfg.tokenizer != "auto":
            return data_cfg, []
        kind, why = choose_tokenizer(self._texts(data_cfg, data_cfg.path)[0])
        return dataclasses.replace(data_cfg, tokenizer=kind), [f"tokenizer auto: {kind} ({why})"]

    @staticmethod
    def _texts(config, path):
        return read_labelled_table(path, config.text_column, config.label_column)

    def read_data(self, config, run=None, spell=False):
        config, _ = self.decide(self.own(config))
        if recordings.is_recordings(config.path):
            return recordings.read_data(config, run)
        return LabelledData.from_texts(
            config.path, config, lambda path: self._texts(config, path), run.tokenizer if run else None,
            run.labels if run else None, stratify=True, spell=spell)

    def unit_of(self, data) -> str:
        return "windows" if isinstance(data, RecordingData) else super().unit_of(data)

    def describe(self, data) -> str:
        return recordings.describe(data) if isinstance(data, RecordingData) else super().describe(data)

    def reports(self, data) -> tuple[str, ...]:
        return self.metrics if isinstance(data, RecordingData) else LabelledTask.metrics

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        if isinstance(data, RecordingData):
            return recordings.validate(model, data, split)
        return super().validate(model, data, split, group, config)

    def export_graphs(self, model, run):
        """The classifier: ids (B, T) (or a recording's windows, vectors (B, T, I)) and lengths -> scores (B, K)."""
        scores = Port("scores", "float32", ("B", len(run.labels)), "label scores (logits): softmax gives p(label | "
                      "text); the labels are export.json's, in order")
        return [self.scores_graph(model, run, "classifier", scores, "label scores of padded texts")], {}

    def predict(self, run, model, doc, request) -> int:
        if isinstance(doc.tokenizer, RecordingScaler):
            return recordings.predict(model, doc, request)
        tokenizer = doc.tokenizer
        cfg, labels = doc.data, doc.labels
        table = read_table(request.input, cfg.text_column, cfg.label_column, require_labels=False)
        batches = examples_to_predict(table.texts, table.labels, lambda text: labels[0], tokenizer, labels,
                                      request.input, per_token=False)
        return predict_and_write(model, batches, labels, lambda f, predicted: write_table(f, table, predicted),
                                 request.out, request.input, "examples" if table.labels is not None else None,
                                 gold=table.labels)

    def endpoints(self, model, run, limits):
        """``predict``: the label of each text. A run of recordings serves nothing: a request carries
        data, not the files a manifest names."""
        if isinstance(run.tokenizer, RecordingScaler):
            return {}
        return {"predict": labelling_endpoint(model, run, limits, "texts", "the label of each text", per_token=False)}
