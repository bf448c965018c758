"""Sequence tagging (``--task tag``): an output at every step, a tag a
word, from CoNLL columns (chunks, parts of speech); or a label a sample of
a numeric recording (a CSV or ARFF series: EEG eye state), split in time
and read as vectors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import DataConfig, setting
from rnnkit.data import LabelledData
from rnnkit.data.sequences import collate, label_ids, read_tagged_sentences
from rnnkit.data.series import SERIES_SUFFIXES, read_series, write_series
from rnnkit.data.tables import LabelColumn, read_conll, write_conll
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.models import SequenceTagger, TaggerConfig
from rnnkit.models.char_lm import DIRECTIONS, lm_spec
from rnnkit.models.portable import Port
from rnnkit.tasks.labelled import LabelledTask, examples_to_predict, labelling_endpoint, predict_and_write
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.training.metrics import chunk_tags
from rnnkit.training.run_config import read_run
from rnnkit.training.runs import BEST, load_weights

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
    """``--task tag``: a tag a word (or a label a sample of a recording), the sequence tagger."""

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
        "char_lm": (lambda c: not _series(c.data.path), CONLL),
        "char_lm_tune": (lambda c: bool(c.model.char_lm), "--char-lm FWD,BWD"),
    }

    criterion_name = "1 - chunk F1 (no chunk tags: loss)"

    def reports(self, data) -> tuple[str, ...]:
        """Loss and accuracy over tokens, and chunk F1 where the tags are chunks."""
        return self.metrics if chunk_tags(data.labels) else ("loss", "accuracy")

    def criterion(self, metrics: dict) -> float:
        """1 - F1 where the tags are chunks (B-/I- prefixes: conlleval's score), the loss otherwise.

        A chunker is judged by F1, and F1 goes on rising after the validation loss turns up (the
        tagger grows confident on its errors): on CoNLL-2000 with --char-lm the loss rose from 0.107
        (step 3,276) to 0.138 while val F1 rose from 93.97 to 94.20 and test F1 from 93.51 to 93.68."""
        return 1.0 - metrics["f1"] if "f1" in metrics else metrics["loss"]

    def spelling(self, model_cfg) -> bool:
        model_cfg = self.own(model_cfg)
        return super().spelling(model_cfg) or bool(model_cfg.char_lm)  # the words' characters, in sentences

    def build_model(self, model_cfg, tokenizer, labels=None, target_tokenizer=None):
        """The tagger; a new one with ``char_lm`` starts its two character language models from
        their runs (their structure is kept in its config, ``char_lm_spec``, so the run needs them no more)."""
        model_cfg = self.own(model_cfg)  # a plain ModelConfig (the Python API) has no char_lm
        if not model_cfg.char_lm or model_cfg.char_lm_spec is not None:
            return super().build_model(model_cfg, tokenizer, labels)
        models = char_language_models(model_cfg.char_lm)
        spec = {"alphabet": tokenizer.alphabet, **{d: lm_spec(lm, chars) for d, (lm, chars) in models.items()}}
        model = super().build_model(dataclasses.replace(model_cfg, char_lm_spec=spec), tokenizer, labels)
        for d, (lm, _) in models.items():
            if not next(model.parameters()).is_meta:  # sized on the meta device first: nothing to copy into
                model.encoder.context.model(d).load_state_dict(lm.state_dict())
        return model

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

    def export_graphs(self, model, run):
        """The tagger's emission scores (B, T, K); with a CRF, crf.json beside them: its transitions,
        decoded by Viterbi (:class:`rnnkit.layers.crf.LinearChainCRF`'s recursion, written out there)."""
        emissions = Port("emissions", "float32", ("B", "T", len(run.labels)), "per-step tag scores: argmax per "
                         "step, or with crf.json Viterbi over them; rows past a length are to be ignored")
        graph = self.scores_graph(model, run, "tagger", emissions, "emission scores of padded sentences")
        if model.crf is None:
            return [graph], {}
        crf = model.crf
        return [graph], {"crf.json": {
            "labels": run.labels, "transitions": crf.transitions.tolist(),
            "start": crf.start_transitions.tolist(), "end": crf.end_transitions.tolist(),
            "viterbi": "transitions[i][j] scores tag j after tag i. For one sentence of length L with emissions "
                       "E (L, K): delta_1(j) = start[j] + E[1][j]; delta_t(j) = max_i(delta_(t-1)(i) + "
                       "transitions[i][j]) + E[t][j], keeping the argmax i; the last tag is argmax_j(delta_L(j) + "
                       "end[j]), the others follow the kept argmaxes back"}}

    def predict(self, run, model, doc, request) -> int:
        tokenizer = doc.tokenizer
        cfg, labels, path = doc.data, doc.labels, request.input
        if _series(path):  # every sample of a recording, read as one sequence
            x, gold, header, rows = read_series(path, cfg.label_column, num_features=tokenizer.num_features)
            known = set(labels)
            y = label_ids([g if g in known else labels[0] for g in gold], labels, path) if gold else \
                np.zeros(len(x), dtype=np.int64)  # a gold label unseen in training is only scored
            batches = [collate([tokenizer.transform(x, str(path))], [y])]
            return predict_and_write(model, batches, labels,
                                     lambda f, predicted: write_series(f, path, header, rows, predicted[0]),
                                     request.out, path, "series" if gold else None, gold=[gold] if gold else None)
        sentences = read_conll(path, cfg.word_column, cfg.tag_column, require_tags=False)
        texts = [" ".join(w) for w in sentences.words]
        batches = examples_to_predict(texts, sentences.tags, lambda text: [labels[0]] * len(text.split()),
                                      tokenizer, labels, path, per_token=True)
        return predict_and_write(model, batches, labels,
                                 lambda f, predicted: write_conll(f, sentences, predicted), request.out, path,
                                 "sentences" if sentences.tags is not None else None, gold=sentences.tags)

    def endpoints(self, model, run, limits):
        """``tag``: a tag each word of each sentence (words split at white space). A run of series
        (a tag each sample of a recording) serves nothing yet."""
        if getattr(run.tokenizer, "num_features", None):
            return {}
        return {"tag": labelling_endpoint(model, run, limits, "sentences", "a tag each word of each sentence",
                                          per_token=True)}


def char_language_models(runs: str) -> dict:
    """{"forward": (model, characters), "backward": ...} of ``--char-lm FWD,BWD``: two language-model
    runs over characters, the second trained on reversed text; anything else is one line naming it."""
    paths = [p.strip() for p in runs.split(",")]
    if len(paths) != 2 or not all(paths):
        raise ConfigError(f"--char-lm takes two runs, FWD,BWD; got {runs!r}")
    models = {}
    for direction, path in zip(DIRECTIONS, paths):
        model, run = _language_model(path)
        if run.labels:  # each text conditioned on a label
            raise ConfigError(f"--char-lm: {path} is a conditioned language model; train one of a text")
        if run.tokenizer.kind != "char":
            raise ConfigError(f"--char-lm: {path} reads {run.tokenizer.kind} tokens; the features are a character "
                              f"model's: train it with --tokenizer char")
        if run.data.reverse != (direction == "backward"):
            fix = "--reverse true" if direction == "backward" else "without --reverse"
            raise ConfigError(f"--char-lm: the {direction} model {path} reads the text "
                              f"{'backwards' if run.data.reverse else 'forwards'}; train it {fix}")
        models[direction] = (model, run.tokenizer.decode(range(run.tokenizer.vocab_size)))
    return models


def _language_model(path: str):
    """(model with its best weights, run) of a language-model run folder."""
    def configs(task: str):
        if task != LanguageModelTask.name:
            raise CheckpointError(f"--char-lm: {path} is a {task} run, not a language model of a text; train one "
                                  f"with `rnnkit train TEXT --tokenizer char`")
        return LanguageModelTask.configs()

    run = read_run(path, configs)
    with torch.device("cpu"):  # real weights, also where the tagger is sized on the meta device
        return load_weights(LanguageModelTask().build_from(run), path, BEST, run.engines), run
