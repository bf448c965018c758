"""``rnnkit predict RUN INPUT``: labels for a table (classify) or tags for a
CoNLL file (tag), written in the input's own format with the prediction as
a new last column. Where INPUT carries gold labels, their accuracy (and F1)
goes to stderr."""

from __future__ import annotations

import sys
from rnnkit.data.sequences import BucketBatcher, encode_examples
from rnnkit.data.tables import read_conll, read_table, write_conll, write_table
from rnnkit.errors import ConfigError
from rnnkit.training.evaluate import evaluate_labelled


def run_predict(run: str, path: str, output: str | None, device) -> int:
    from rnnkit.training import load_run

    model, tokenizer, doc = load_run(run, device)
    data_cfg, labels = doc["data"], doc.get("labels")
    task = data_cfg.task
    if task == "lm":
        raise ConfigError(f"{run} is a language model; use `rnnkit sample {run}` or `rnnkit eval {run} TEXT`")
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
        scores = f"accuracy {result['accuracy']:.4f}" + (f" | F1 {result['f1']:.4f}" if "f1" in result else "")
        print(f"{path}: {result['examples']:,} {'examples' if task == 'classify' else 'sentences'} with "
              f"labels; {scores}", file=sys.stderr)
    return 0

