"""Labelled sequences for classification and tagging, in padded,
length-bucketed batches.

A batch is a :class:`rnnkit.data.batches.LabelledBatch` ``(x, lengths, y)``: token ids x (B, T) int64 padded with 0
after each sequence's end (for a numeric series, vectors x (B, T, F)),
lengths (B,) int64 >= 1, and labels y (B,) for classification (or a
conditioned language model's conditions) or (B, T) for tagging, padded with ``IGNORE`` (-100, what
``F.cross_entropy`` skips). The mask of valid positions, True where
``t < lengths[b]``, is :func:`rnnkit.layers.length_mask`.

Bucketing: each epoch shuffles the examples (from the seed and the epoch),
sorts windows of 50 batches' worth by length and cuts them into batches,
then shuffles the batch order, so a batch holds sequences of similar length
(little padding) while the data order still changes every epoch.

Splits: validation and test come from ``val_path`` / ``test_path`` where
given (CoNLL-2000's test file), else from a random split of the training
file by ``val_fraction`` / ``test_fraction``, stratified by label for
classification and the same in every run (seed 0), so runs that differ in
their settings are scored on the same examples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import CHAR_FEATURES_NEED_WORDS, DataConfig
from rnnkit.data.batches import LabelledBatch
from rnnkit.data.files import file_digest
from rnnkit.data.series import SeriesScaler, read_series, windows
from rnnkit.data.tables import read_conll, read_table
from rnnkit.data.tokenizers import fit_tokenizer
from rnnkit.data.words import SpelledWordTokenizer
from rnnkit.errors import ConfigError, DataError

BUCKET_BATCHES = 50
IGNORE = -100  # the label at padded positions, which F.cross_entropy skips


@dataclass
class Examples:
    """Token ids per example and one label id per example (classify) or per token (tag)."""

    ids: list[np.ndarray]
    labels: list  # int per example, or an int64 array per example

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "Examples":
        """The examples at ``index``, in its order."""
        return Examples([self.ids[i] for i in index], [self.labels[i] for i in index])


def collate(ids: list[np.ndarray], labels: list) -> LabelledBatch:
    """Pad a list of examples into one :class:`LabelledBatch` (x, lengths, y); see the module docstring."""
    lengths = torch.tensor([len(s) for s in ids], dtype=torch.long)
    T = int(lengths.max())
    x = torch.zeros((len(ids), T) + ids[0].shape[1:], dtype=torch.from_numpy(ids[0][:0]).dtype)  # (B, T[, F])
    for b, s in enumerate(ids):
        x[b, :len(s)] = torch.from_numpy(s)
    if labels and np.ndim(labels[0]) == 0:
        y = torch.tensor(labels, dtype=torch.long)  # (B,)
    else:
        y = torch.full((len(ids), T), IGNORE, dtype=torch.long)  # (B, T)
        for b, s in enumerate(labels):
            y[b, :len(s)] = torch.from_numpy(np.asarray(s, dtype=np.int64))
    return LabelledBatch(x, lengths, y)


class BucketBatcher:
    """Padded, length-bucketed batches over ``examples``; deterministic in
    (seed, epoch). ``collate(ids, labels)`` makes a batch (default :func:`collate`)."""

    def __init__(self, examples: Examples, batch_size: int, seed: int, shuffle: bool = True, collate=collate):
        if len(examples) == 0:
            raise DataError("no training examples")
        self.examples = examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.collate = collate

    def num_batches(self, epoch: int) -> int:
        """Batches in an epoch: the examples over the batch size, rounded up."""
        return -(-len(self.examples) // self.batch_size)

    def _order(self, epoch: int) -> list[np.ndarray]:
        n, B = len(self.examples), self.batch_size
        if not self.shuffle:
            return [np.arange(i, min(i + B, n)) for i in range(0, n, B)]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        lengths = np.array([len(s) for s in self.examples.ids])
        batches = []
        for start in range(0, n, B * BUCKET_BATCHES):
            window = order[start:start + B * BUCKET_BATCHES]
            window = window[np.argsort(lengths[window], kind="stable")]
            batches += [window[i:i + B] for i in range(0, len(window), B)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def tokens_per_batch(self) -> float:
        """Input tokens (or frames) a batch holds on average, padding left out."""
        return sum(len(s) for s in self.examples.ids) / self.num_batches(0)

    def heaviest_batch(self, size: int):
        """A batch of the ``size`` longest examples (input and label lengths added up):
        padded to the longest, the step that needs the most memory."""
        lengths = np.array([len(s) + (np.size(y) if np.ndim(y) else 0)
                            for s, y in zip(self.examples.ids, self.examples.labels)])
        return self.batch(np.argsort(-lengths, kind="stable")[:size])

    def batch(self, index: np.ndarray):
        """The batch of the examples at ``index``, made by ``collate``."""
        return self.collate([self.examples.ids[i] for i in index], [self.examples.labels[i] for i in index])

    def batches(self, epoch: int, start: int = 0):
        """The epoch's batches in its seeded order, from batch ``start`` on (to resume), each made by ``collate``."""
        for index in self._order(epoch)[start:]:
            yield self.batch(index)


def _stratified_split(labels: list[int], fractions: tuple[float, float], seed: int):
    """Indices (train, val, test): each class cut by the fractions after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    labels = np.asarray(labels)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = (int(round(len(members) * f)) for f in fractions)
        parts[1].extend(members[:n_val])
        parts[2].extend(members[n_val:n_val + n_test])
        parts[0].extend(members[n_val + n_test:])
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


@dataclass
class LabelledData:
    """Labelled examples, split, with the tokenizer and the label names: texts
    with one label each (a classifier's, or a conditioned language model's
    conditions), sentences with a tag a word, or a numeric recording with a
    label a sample.

    ``LabelledData.from_texts("spam.csv", DataConfig(), read)`` reads
    examples with ``read(path) -> (texts, labels)`` (:func:`read_labelled_table`
    for a table); ``per_token=True`` takes a list of tags a text (CoNLL
    columns, :func:`read_tagged_sentences`). :meth:`from_series` reads a
    numeric recording.
    """

    tokenizer: object
    labels: list[str]  # label (or tag) names; the id of a label is its index
    train: Examples
    val: Examples
    test: Examples
    config: DataConfig
    digest: str = ""
    sources: dict = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size (0 for vectors)."""
        return self.tokenizer.vocab_size

    @property
    def num_labels(self) -> int:
        """K, the label names."""
        return len(self.labels)

    def batcher(self, seed: int) -> BucketBatcher:
        """The training examples' :class:`BucketBatcher`, seeded by ``seed``."""
        return BucketBatcher(self.train, self.config.batch_size, seed)

    def eval_batches(self, split: str = "val", batch_size: int = 128):
        """Batches of a split in file order (no shuffling), for evaluation."""
        examples = getattr(self, split)
        return BucketBatcher(examples, batch_size, 0, shuffle=False).batches(0) if len(examples) else iter(())

    @classmethod
    def from_texts(cls, path: str | Path, config: DataConfig, read, tokenizer=None, labels: list[str] | None = None,
                   *, per_token: bool = False, stratify: bool = False, lm: bool = False,
                   spell: bool = False) -> "LabelledData":
        """Read ``path`` (and ``config.val_path``, ``config.test_path``) with
        ``read(path) -> (texts, names)``, tokenize and split; a given
        ``tokenizer`` and ``labels`` (a resumed run's) are used as they are.

        ``per_token``: ``names`` holds a list of tags a text, one a
        whitespace-separated word; ``stratify``: the random split keeps each
        label's share; ``lm``: tokens for a language model (a character
        vocabulary fitted on every text, which has no unknown symbol; word
        tokens with ``<eos>``); ``spell``: the words come with their
        spellings (a :class:`SpelledWordTokenizer`, for ``char_features``).
        ``config.tokenizer`` ``auto`` reads words."""
        config = dataclasses.replace(config, path=str(path))
        texts, names = read(path)
        given = {"val": config.val_path, "test": config.test_path}
        extras = {split: read(p) for split, p in given.items() if p}
        strata = names if stratify else [0] * len(texts)
        fractions = (0.0 if config.val_path else config.val_fraction,
                     0.0 if config.test_path else config.test_fraction)
        index = dict(zip(("train", "val", "test"), _stratified_split(strata, fractions, 0)))
        if tokenizer is None:  # from the training part only: held-out words and characters stay unknown
            kind = "word" if config.tokenizer == "auto" else config.tokenizer
            fit_on = range(len(texts)) if lm and kind == "char" else index["train"]
            train_text = "\n".join(texts[i] for i in fit_on)
            tokenizer = fit_tokenizer(kind, train_text, config, lm=lm)
            if spell:
                if kind != "word" or lm:
                    raise ConfigError(CHAR_FEATURES_NEED_WORDS)
                tokenizer = SpelledWordTokenizer.fit(tokenizer, train_text)
        if labels is None:  # the labels of every file: a test label unseen in training scores as a miss
            groups = names + [n for _, extra_names in extras.values() for n in extra_names]
            labels = sorted({n for g in groups for n in (g if per_token else [g])})
        examples = encode_examples(texts, names, tokenizer, labels, path, per_token)
        splits = {split: examples.subset(i) for split, i in index.items()}
        for split, (extra_texts, extra_names) in extras.items():
            splits[split] = encode_examples(extra_texts, extra_names, tokenizer, labels, given[split], per_token)
        train, val, test = splits["train"], splits["val"], splits["test"]
        if len(train) == 0:
            raise DataError(f"{path}: no training examples are left after the split; lower --val-fraction")
        digest = file_digest(path, config.val_path, config.test_path)
        return cls(tokenizer, labels, train, val, test, config, digest)

    @classmethod
    def from_series(cls, path, config: DataConfig, label_column: str, scaler=None, labels=None) -> "LabelledData":
        """A numeric recording with a label a sample, split in time (see
        :mod:`rnnkit.data.series`): training windows of ``config.seq_len``
        samples, the held-out parts whole; a given ``scaler`` and ``labels``
        (a resumed run's) are used as they are."""
        config = dataclasses.replace(config, path=str(path))
        x, names, _, _ = read_series(path, label_column)
        n = len(x)
        n_val = 0 if config.val_path else int(n * config.val_fraction)
        n_test = 0 if config.test_path else int(n * config.test_fraction)
        n_train = n - n_val - n_test
        cut = (n_train, n_train + n_val)
        parts = {"train": (x[:cut[0]], names[:cut[0]]), "val": (x[cut[0]:cut[1]], names[cut[0]:cut[1]]),
                 "test": (x[cut[1]:], names[cut[1]:])}
        given = {"val": config.val_path, "test": config.test_path}
        for split, extra in given.items():
            if extra:
                parts[split] = read_series(extra, label_column)[:2]
        if n_train < 2:
            raise DataError(f"{path}: {n_train} training sample(s) are left after the split; lower "
                            f"--val-fraction / --test-fraction")
        scaler = scaler or SeriesScaler.fit(parts["train"][0])  # fitted on training samples only
        labels = labels or sorted({v for _, part_names in parts.values() for v in part_names})
        splits = {}
        for split, (xs, ys) in parts.items():
            z, y = scaler.transform(xs, str(path)), label_ids(ys, labels, given.get(split) or path)
            spans = windows(len(z), config.seq_len) if split == "train" else ([(0, len(z))] if len(z) else [])
            splits[split] = Examples([z[a:b] for a, b in spans], [y[a:b] for a, b in spans])
        digest = file_digest(path, config.val_path, config.test_path)
        return cls(scaler, labels, splits["train"], splits["val"], splits["test"], config, digest)


def read_labelled_table(path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a CSV/TSV table (:func:`rnnkit.data.tables.read_table`)."""
    table = read_table(path, text_column, label_column)
    return table.texts, table.labels


def read_tagged_sentences(path, word_column: int, tag_column: int) -> tuple[list[str], list[list[str]]]:
    """(sentences, tags) of CoNLL columns: a sentence's words joined by spaces, and its tags."""
    sentences = read_conll(path, word_column, tag_column)
    return [" ".join(w) for w in sentences.words], sentences.tags


def label_ids(names, labels: list[str], path) -> np.ndarray:
    """The ids of label ``names`` (int64); a name outside ``labels`` is an error naming the file."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DataError(f"{path} has {len(unknown)} label(s) the model was not trained on: {shown}; "
                        f"train with them or remove those examples")
    return np.array([index[n] for n in names], dtype=np.int64)


def encode_examples(texts, names, tokenizer, labels, path, per_token: bool = False) -> Examples:
    """Token ids and label ids (``per_token``: a list of tags a text, one a
    word); a label outside ``labels`` or an example without tokens is an
    error naming the file."""
    flat = label_ids([n for group in names for n in (group if per_token else [group])], labels, path)
    ids, ys, start = [], [], 0
    for n, (text, name) in enumerate(zip(texts, names), start=1):
        tokens = tokenizer.encode(text, what=str(path))
        if len(tokens) == 0:
            raise DataError(f"{path}: example {n} has no tokens; remove it")
        if per_token:
            if len(tokens) != len(name):  # a word the tokenizer split or dropped
                raise DataError(f"{path}: sentence {n} has {len(name)} words but {len(tokens)} tokens; "
                                f"words must not contain spaces")
            ys.append(flat[start:start + len(name)])
            start += len(name)
        else:
            ys.append(int(flat[n - 1]))
        ids.append(tokens)
    return Examples(ids, ys)
