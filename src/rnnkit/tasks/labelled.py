"""What the classifier and the tagger share: labelled examples in padded
batches, an encoder (recurrent or tdnn) that may read each word's
spelling, validation by loss, accuracy and F1, and ``rnnkit predict``
writing the input's own format with the prediction as a new last column
(their accuracy and F1 on stderr where the input carries gold labels)."""

from __future__ import annotations

import sys
from collections import Counter

from rnnkit.config import to_dict
from rnnkit.data.sequences import BucketBatcher, encode_examples
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.models.portable import Graph, Port, Scores
from rnnkit.tasks.base import RESERVOIR_RULES, Task
from rnnkit.tasks.serving import Endpoint, RequestError, check_texts, texts_field
from rnnkit.training.evaluate import evaluate_labelled, score_labels

WORDS_AND_EMBEDDING = "word tokens and an embedding (--tokenizer word, --embedding-dim > 0)"
ENCODER_RULES = {"kernel_size": (lambda c: c.model.encoder == "tdnn", "--encoder tdnn"), **RESERVOIR_RULES}


def _words(choice) -> bool:
    return choice.task.token_kinds(choice) == {"word"}


class LabelledTask(Task):
    """A task of labelled examples (classify, tag): ``model_class`` is its model."""

    model_class = None
    metrics = ("loss", "accuracy", "f1")  # f1: macro F1 of labels, chunk F1 of chunk tags (score_labels)
    rules = {
        **ENCODER_RULES,
        "embeddings": (lambda c: _words(c) and c.model.embedding_dim > 0, WORDS_AND_EMBEDDING),
        "char_features": (_words, "--task classify or tag with word tokens (--tokenizer word)"),
    }

    def spelling(self, model_cfg) -> bool:
        return model_cfg.char_features > 0

    def build_model(self, model_cfg, tokenizer, labels=None, target_tokenizer=None):
        if not labels:
            raise CheckpointError(f"a {self.name} run needs its label names in config.json; restore it or "
                                  f"train again")
        return self.model_class(tokenizer.vocab_size, len(labels), getattr(tokenizer, "num_features", None),
                                getattr(tokenizer, "alphabet_size", 0), **to_dict(model_cfg))

    def describe(self, data) -> str:
        features = getattr(data.tokenizer, "num_features", None)
        inputs = f"{features} features a sample" if features else f"vocabulary {data.vocab_size:,}"
        return f"{inputs}, {len(data.labels)} labels"

    def scores_graph(self, model, run, name: str, output: Port, doc: str) -> Graph:
        """The graph of ``model(x, lengths)[0]`` for `rnnkit export`: x ids (B, T) or vectors (B, T, I)."""
        if model.encoder.spelling is not None:
            raise ConfigError(f"{self.name}: a model with --char-features reads each word's spelling too, which "
                              f"export does not carry yet; export a run trained without it")
        return Scores(model).graph(name, output, doc, model.encoder.vocab_size,
                                   getattr(run.tokenizer, "num_features", 0) or 0)

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        if len(getattr(data, split)) == 0:
            return {}
        metrics = evaluate_labelled(model, data.eval_batches(split), data.labels, group=group)
        return {k: metrics[k] for k in self.reports(data)}



def predict_and_write(model, batches, labels: list[str], write, output: str | None, path, unit: str | None,
                      gold: list | None = None) -> int:
    """Predict the labels of ``batches``, write them with ``write(file, predicted)`` to ``output``
    (stdout without one) and, where the input had ``gold`` labels (``unit``, what it counts; None
    without labels), their accuracy and F1 to stderr. A gold label the model was not trained on
    is counted as the error it is (as conlleval counts it), and said."""
    result = evaluate_labelled(model, batches, labels)
    if output:
        with open(output, "w", newline="", encoding="utf-8") as f:
            write(f, result["predicted"])
    else:
        write(sys.stdout, result["predicted"])
    if unit is not None:
        gold = result["gold"] if gold is None else gold
        scores = score_labels(gold, result["predicted"], labels)
        line = f"accuracy {scores['accuracy']:.4f}" + (f" | F1 {scores['f1']:.4f}" if "f1" in scores else "")
        print(f"{path}: {result['examples']:,} {unit} with labels; {line}", file=sys.stderr)
        unseen, per_token = unseen_labels(gold, labels), isinstance(gold[0], list)
        if unseen:
            shown = ", ".join(f"{name!r} ({n:,})" for name, n in unseen.most_common(5))
            print(f"{path}: {sum(unseen.values()):,} {'token' if per_token else 'example'}(s) carry "
                  f"{len(unseen)} gold label(s) the model was not trained on: {shown}; each counts as an error",
                  file=sys.stderr)
    return 0


def unseen_labels(gold: list, labels: list[str]) -> Counter:
    """How often each gold label outside ``labels`` occurs (tags a sentence are flattened)."""
    flat = [g for group in gold for g in group] if gold and isinstance(gold[0], list) else gold
    known = set(labels)
    return Counter(g for g in flat if g not in known)


def examples_to_predict(texts, gold, placeholder, tokenizer, labels, path, per_token: bool):
    """Batches of ``texts`` in file order. Without ``gold`` labels each text gets ``placeholder``;
    a gold label unseen in training is read as ``labels[0]`` here, and only scored (against the
    true gold, by :func:`predict_and_write`) never trained or predicted on."""
    if gold is None:
        names = [placeholder(t) for t in texts]
    else:
        known = set(labels)
        names = [[g if g in known else labels[0] for g in group] if per_token else (group if group in known
                 else labels[0]) for group in gold]
    examples = encode_examples(texts, names, tokenizer, labels, path, per_token)
    return BucketBatcher(examples, 128, 0, shuffle=False).batches(0)


def labelling_endpoint(model, run, limits, field: str, summary: str, per_token: bool) -> Endpoint:
    """An endpoint that labels a list of texts (``field``) as `rnnkit predict` does: a label each text,
    or with ``per_token`` a tag each of its words (split at white space); the reply holds them under
    ``"labels"`` (with ``"words"`` for tags)."""
    labels, tokenizer = run.labels, run.tokenizer

    def label(values) -> dict:
        texts = values[field]
        check_texts(texts, limits, field)
        words = [text.split() for text in texts]
        placeholders = [[labels[0]] * len(w) if per_token else labels[0] for w in words]
        try:
            batches = examples_to_predict([" ".join(w) for w in words], placeholders, None, tokenizer, labels,
                                          repr(field), per_token)
        except DataError as e:
            raise RequestError(str(e), 422) from None
        predicted = evaluate_labelled(model, batches, labels)["predicted"]
        return {"labels": predicted, **({"words": words} if per_token else {})}

    return Endpoint(summary, {field: texts_field(limits, f"the texts, each at most {limits.max_text:,} characters")},
                    label, limits=limits)
