"""Pairs of sequences for sequence to sequence: a source and its target,
tokenized each with its own tokenizer, in padded, length-bucketed batches.

Files: a TSV of source and target columns (``source_column``,
``target_column``; CMUdict's ``WORD<TAB>PH1 PH2 ...``, Tatoeba's
``English<TAB>French``), or, with ``source_lang`` and ``target_lang``,
parallel files ``PATH.LANG`` (or ``PATH.LANG.gz``) whose lines pair up
(Multi30K's ``train.de.gz`` and ``train.en.gz``). ``val_path`` and
``test_path`` are read the same way.

A batch is a :class:`rnnkit.data.batches.PairBatch` ``(x, x_lengths, y, y_lengths)``: source ids x (B, S) padded
with 0, target ids y (B, U) padded with ``IGNORE``, lengths (B,) >= 1.

Splits: validation and test come from their files where given, else from
the training file by ``val_fraction`` / ``test_fraction``, cut by source
(every pair of a source lands in one split: a word's several pronunciations
never straddle train and test) with seed 0. Each split keeps its texts, so
that decoded outputs are scored against every reference of their source
(:meth:`PairData.references`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import TOKENIZERS, DataConfig, check_at_least, check_choice, setting
from rnnkit.data.batches import PairBatch
from rnnkit.data.files import exists, file_digest, read_text
from rnnkit.data.sequences import IGNORE, BucketBatcher, Examples
from rnnkit.data.tokenizers import fit_tokenizer
from rnnkit.errors import ConfigError, DataError


@dataclass
class PairConfig(DataConfig):
    """:class:`rnnkit.config.DataConfig` and how a file of pairs is laid out and its targets tokenized
    (the data settings of ``--task seq2seq``)."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="seq2seq")
    target_tokenizer: str = setting("seq2seq: the target side's tokenizer, as --tokenizer (auto: the same kind "
                                    "as the source's)", default="auto")
    source_column: int = setting("seq2seq: the TSV column of the source (0-based)", default=0)
    target_column: int = setting("seq2seq: the TSV column of the target (0-based)", default=1)
    source_lang: str | None = setting("seq2seq: read parallel files PATH.LANG (or PATH.LANG.gz), this one the "
                                      "source; the same for --val-path and --test-path", default=None)
    target_lang: str | None = setting("seq2seq: the target language of the parallel files", default=None)

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "target_tokenizer", TOKENIZERS)
        check_at_least(self, "source_column", 0)
        check_at_least(self, "target_column", 0)
        if self.source_column == self.target_column:
            raise ConfigError(f"source_column and target_column are both {self.source_column}; give two columns")
        if (self.source_lang is None) != (self.target_lang is None) or (self.source_lang and
                                                                       self.source_lang == self.target_lang):
            raise ConfigError("source_lang and target_lang name the two parallel files: give both, different")


def collate_pairs(sources: list[np.ndarray], targets: list[np.ndarray]) -> PairBatch:
    """Pad pairs into one :class:`PairBatch` (x, x_lengths, y, y_lengths); see the module docstring."""
    x_lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
    y_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    x = torch.zeros(len(sources), int(x_lengths.max()), dtype=torch.long)  # (B, S)
    y = torch.full((len(targets), int(y_lengths.max())), IGNORE, dtype=torch.long)  # (B, U)
    for b, (s, t) in enumerate(zip(sources, targets)):
        x[b, :len(s)] = torch.from_numpy(s)
        y[b, :len(t)] = torch.from_numpy(t)
    return PairBatch(x, x_lengths, y, y_lengths)


def pair_files(path: str | Path, config: PairConfig) -> list[Path]:
    """The file(s) a path names: itself, or its two parallel files."""
    if not config.source_lang:
        return [Path(path)]
    files = []
    for lang in (config.source_lang, config.target_lang):
        plain, packed = Path(f"{path}.{lang}"), Path(f"{path}.{lang}.gz")
        if not exists(plain) and not exists(packed):
            raise DataError(f"{path}: neither {plain} nor {packed} exists; --source-lang and --target-lang "
                            f"name the parallel files PATH.LANG")
        files.append(plain if exists(plain) else packed)
    return files


def read_pairs(path: str | Path, config: PairConfig) -> tuple[list[str], list[str]]:
    """(sources, targets) of a TSV or of parallel files; blank lines of a TSV
    are skipped. A line without both sides is an error naming it."""
    files = pair_files(path, config)
    if len(files) == 2:
        sides = [read_text(f).splitlines() for f in files]
        if len(sides[0]) != len(sides[1]):
            raise DataError(f"{files[0]} has {len(sides[0]):,} lines but {files[1]} has {len(sides[1]):,}; "
                            f"parallel files must pair line by line")
        for n, pair in enumerate(zip(*sides), start=1):
            for f, side in zip(files, pair):
                if not side.strip():
                    raise DataError(f"{f} line {n} is empty; remove it from both files")
        return sides[0], sides[1]
    sources, targets = [], []
    need = max(config.source_column, config.target_column) + 1
    for n, line in enumerate(read_text(files[0]).splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < need:
            raise DataError(f"{path} line {n} has {len(cells)} column(s) but the pairs need {need} "
                            f"(source in column {config.source_column}, target in {config.target_column}, "
                            f"0-based, separated by tabs)")
        source, target = cells[config.source_column].strip(), cells[config.target_column].strip()
        for side, text in (("source", source), ("target", target)):
            if not text:
                raise DataError(f"{path} line {n} has an empty {side}; remove the line")
        sources.append(source)
        targets.append(target)
    if not sources:
        raise DataError(f"{path} holds no pairs")
    return sources, targets


def _split_by_source(sources: list[str], fractions: tuple[float, float]):
    """Indices (train, val, test), whole groups of equal sources cut by the fractions (seed 0)."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        groups.setdefault(s, []).append(i)
    order = np.random.default_rng(0).permutation(len(groups))
    members = list(groups.values())
    n_val, n_test = (int(round(len(members) * f)) for f in fractions)
    parts = (order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test])
    return [np.sort(np.array([i for g in part for i in members[g]], dtype=np.int64)) for part in parts]


@dataclass
class PairSplit:
    """One split: the pairs' texts and their ids (``examples.ids`` the
    sources', ``examples.labels`` the targets')."""

    sources: list[str]
    targets: list[str]
    examples: Examples

    def __len__(self) -> int:
        return len(self.sources)


@dataclass
class PairData:
    """Source and target tokenizers and the train / val / test splits of a
    sequence-to-sequence task. ``PairData.from_file("g014b2b.train",
    PairConfig(tokenizer="char", target_tokenizer="word"))``; a tokenizer
    ``auto`` reads words (the target: the source's kind)."""

    tokenizer: object  # the source's
    target_tokenizer: object
    train: PairSplit
    val: PairSplit
    test: PairSplit
    config: PairConfig
    digest: str = ""

    @property
    def vocab_size(self) -> int:
        """The source tokenizer's vocabulary size."""
        return self.tokenizer.vocab_size

    def batcher(self, seed: int) -> BucketBatcher:
        """The training pairs' :class:`BucketBatcher` (of :class:`PairBatch`), seeded by ``seed``."""
        return BucketBatcher(self.train.examples, self.config.batch_size, seed, collate=collate_pairs)

    def eval_batches(self, split: str = "val", batch_size: int = 128):
        """Batches of a split in file order, for evaluation (none for an empty split)."""
        examples = getattr(self, split).examples
        if not len(examples):
            return iter(())
        return BucketBatcher(examples, batch_size, 0, shuffle=False, collate=collate_pairs).batches(0)

    @classmethod
    def from_file(cls, path: str | Path, config: PairConfig, tokenizers=None) -> "PairData":
        """Read, tokenize and split; given ``tokenizers`` (source, target; a
        resumed run's) are used as they are, else fitted on the training pairs."""
        config = dataclasses.replace(config, path=str(path))
        sources, targets = read_pairs(path, config)
        fractions = (0.0 if config.val_path else config.val_fraction,
                     0.0 if config.test_path else config.test_fraction)
        index = dict(zip(("train", "val", "test"), _split_by_source(sources, fractions)))
        texts = {split: ([sources[i] for i in index[split]], [targets[i] for i in index[split]])
                 for split in index}
        for split, extra in (("val", config.val_path), ("test", config.test_path)):
            if extra:
                texts[split] = read_pairs(extra, config)
        if not texts["train"][0]:
            raise DataError(f"{path}: no training pairs are left after the split; lower --val-fraction")
        if tokenizers is None:
            train_sources, train_targets = texts["train"]
            tokenizers = tuple(fit_tokenizer(kind, ("" if kind == "char" else "\n").join(side), config, lm=False,
                                             unknown=False)
                               for kind, side in ((_kind(config.tokenizer), train_sources),
                                                  (_kind(config.target_tokenizer, config.tokenizer),
                                                   train_targets)))
        source_tok, target_tok = tokenizers
        splits = {}
        for split, (ss, ts) in texts.items():
            where = {"train": path, "val": config.val_path or path, "test": config.test_path or path}[split]
            ids = [encode_line(source_tok, s, f"{where}: source {n}") for n, s in enumerate(ss, start=1)]
            target_ids = [encode_line(target_tok, t, f"{where}: target {n}") for n, t in enumerate(ts, start=1)]
            splits[split] = PairSplit(ss, ts, Examples(ids, target_ids))
        digest = file_digest(*pair_files(path, config),
                             *(f for p in (config.val_path, config.test_path) if p for f in pair_files(p, config)))
        return cls(source_tok, target_tok, splits["train"], splits["val"], splits["test"], config, digest)


def _kind(name: str, auto: str = "word") -> str:
    """A tokenizer kind, ``auto`` read as ``auto`` (the target's: the source's kind; the source's: words)."""
    return ("word" if auto == "auto" else auto) if name == "auto" else name


def encode_line(tokenizer, text: str, what: str) -> np.ndarray:
    """The ids of one side of a pair; a side without tokens is an error naming it."""
    ids = tokenizer.encode(text, what=what)
    if len(ids) == 0:
        raise DataError(f"{what} has no tokens; remove it")
    return ids


def references(sources: list[str], targets: list[str]) -> dict[str, list[str]]:
    """Every target of each source, in file order (a word's several pronunciations)."""
    refs: dict[str, list[str]] = {}
    for s, t in zip(sources, targets):
        refs.setdefault(s, []).append(t)
    return refs
