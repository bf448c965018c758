"""``rnnkit predict RUN INPUT``: labels for a table (classify) or tags for a
CoNLL file (tag), written in the input's own format with the prediction as
a new last column. Where INPUT carries gold labels, their accuracy (and F1)
goes to stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from rnnkit.data.sequences import BucketBatcher, collate, encode_examples, label_ids
from rnnkit.data.series import SERIES_SUFFIXES, read_series, write_series
from rnnkit.data.tables import read_conll, read_table, write_conll, write_table
from rnnkit.errors import ConfigError
from rnnkit.training import load_run
from rnnkit.training.evaluate import evaluate_labelled


def run_predict(run: str, path: str, output: str | None, device, engine: str | None = None) -> int:
    model, tokenizer, doc = load_run(run, device, engine=engine)
    data_cfg, labels = doc["data"], doc.get("labels")
    task = data_cfg.task
    if task == "lm":
        raise ConfigError(f"{run} is a language model; use `rnnkit sample {run}` or `rnnkit eval {run} TEXT`")
    if task == "tag" and Path(path).suffix.lower() in SERIES_SUFFIXES:
        return _predict_series(model, tokenizer, labels, data_cfg, path, output)
    if task == "classify":
        source = read_table(path, data_cfg.text_column, data_cfg.label_column, require_labels=False)
        texts, gold = source.texts, source.labels
    else:
        source = read_conll(path, data_cfg.word_column, data_cfg.tag_column, require_tags=False)
        texts, gold = [" ".join(w) for w in source.words], source.tags
    placeholder = gold if gold is not None else [
        labels[0] if task == "classify" else [labels[0]] * len(t.split()) for t in texts]
    examples = encode_examples(texts, placeholder, tokenizer, labels, path, task)  # unseen gold labels: an error
    batches = BucketBatcher(examples, 128, 0, shuffle=False).batches(0)
    result = evaluate_labelled(model, batches, labels)
    write = write_table if task == "classify" else write_conll
    if output:
        with open(output, "w", newline="", encoding="utf-8") as f:
            write(f, source, result["predicted"])
    else:
        write(sys.stdout, source, result["predicted"])
    if gold is not None:
        _report(path, result, "examples" if task == "classify" else "sentences")
    return 0


def _report(path, result: dict, unit: str) -> None:
    scores = f"accuracy {result['accuracy']:.4f}" + (f" | F1 {result['f1']:.4f}" if "f1" in result else "")
    print(f"{path}: {result['examples']:,} {unit} with labels; {scores}", file=sys.stderr)


def _predict_series(model, scaler, labels, data_cfg, path, output) -> int:
    """Tag every sample of a numeric recording, read as one sequence."""
    x, gold, header, rows = read_series(path, data_cfg.label_column, num_features=scaler.num_features)
    y = label_ids(gold, labels, path) if gold else np.zeros(len(x), dtype=np.int64)
    batch = collate([scaler.transform(x, str(path))], [y])
    result = evaluate_labelled(model, [batch], labels)
    predicted = result["predicted"][0]
    if output:
        with open(output, "w", newline="", encoding="utf-8") as f:
            write_series(f, path, header, rows, predicted)
    else:
        write_series(sys.stdout, path, header, rows, predicted)
    if gold:
        _report(path, result, "series")
    return 0

