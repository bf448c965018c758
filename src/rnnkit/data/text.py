"""Text corpora for language modelling: reading, splitting, and batching as
contiguous parallel streams for truncated backpropagation through time.

Streams: the training split (N tokens) is cut into B contiguous streams of
L tokens; batch i of an epoch is columns [i*T, (i+1)*T) of every stream::

    stream 0: | chunk 0 | chunk 1 | chunk 2 | ...
    stream 1: | chunk 0 | chunk 1 | chunk 2 | ...

so row b of batch i+1 continues row b of batch i, and the hidden state
carried from one batch to the next belongs to the same stream (char-rnn).
Each epoch starts the streams at an offset in [0, T) drawn from the seed and
the epoch number, so chunk boundaries move between epochs.

A corpus too large for memory is a :class:`rnnkit.data.tokenfile.TokenFile`
instead of a tensor, and batches read their windows of it from disk.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import DataConfig
from rnnkit.data import tokenfile
from rnnkit.data.batches import StreamBatch, rows
from rnnkit.data.files import file_digest, read_text
from rnnkit.data.tokenizers import fit_tokenizer
from rnnkit.errors import DataError


def split_ids(ids: np.ndarray, val_fraction: float, test_fraction: float):
    """Cut a corpus in order: train | validation | test.

    Train is the first ``int(n * (1 - val - test))`` tokens, as nanoGPT cuts
    tiny-shakespeare (90/10: 1,003,854 train, 111,540 validation characters);
    test the last ``int(n * test)``; validation what lies between.
    """
    n = len(ids)
    n_train = int(n * (1.0 - val_fraction - test_fraction))
    n_test = int(n * test_fraction)
    return ids[:n_train], ids[n_train:n - n_test], ids[n - n_test:]


@functools.lru_cache(maxsize=64)
def _epoch_offset(seed: int, epoch: int, seq_len: int) -> int:
    """Where the streams of ``epoch`` start, in [0, seq_len); cached because the
    trainer asks for the epoch's batch count several times a step."""
    return int(np.random.default_rng([seed, epoch]).integers(seq_len))


class StreamBatcher:
    """:class:`StreamBatch` (x, y), each (B, T), of contiguous parallel streams over ``ids``."""

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, seed: int):
        self.ids = ids
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        needed = batch_size * seq_len + seq_len
        if len(ids) < needed:
            raise DataError(
                f"the training split has {len(ids):,} tokens, fewer than --batch-size {batch_size} x "
                f"--seq-len {seq_len} + {seq_len} = {needed:,}; lower --batch-size or --seq-len")

    def _offset(self, epoch: int) -> int:
        return _epoch_offset(self.seed, epoch, self.seq_len)

    def _stream_len(self, epoch: int) -> int:
        return (len(self.ids) - 1 - self._offset(epoch)) // self.batch_size

    def num_batches(self, epoch: int) -> int:
        """Batches in an epoch: each stream's length (after the epoch's seeded offset) over ``seq_len``."""
        return self._stream_len(epoch) // self.seq_len

    def tokens_per_batch(self) -> int:
        """B × T tokens: every batch is as long."""
        return self.batch_size * self.seq_len

    def heaviest_batch(self, size: int):
        """A batch of ``size`` streams (every batch is as heavy)."""
        return rows(next(self.batches(0)), 0, size)

    def batches(self, epoch: int, start: int = 0):
        """Yield :class:`StreamBatch` (x, y) for batches ``start, start+1, ...`` of ``epoch``; y is x shifted by one."""
        B, T, L = self.batch_size, self.seq_len, self._stream_len(epoch)
        off = self._offset(epoch)
        if isinstance(self.ids, tokenfile.TokenFile):  # row b: tokens off + b L + i T ... + T, read from disk
            starts = off + np.arange(B) * L
            for i in range(start, L // T):
                w = self.ids.windows(starts + i * T, T + 1)  # (B, T + 1)
                yield StreamBatch(w[:, :-1], w[:, 1:])
            return
        x = self.ids[off:off + B * L].view(B, L)  # (B, L)
        y = self.ids[off + 1:off + 1 + B * L].view(B, L)
        for i in range(start, L // T):
            yield StreamBatch(x[:, i * T:(i + 1) * T], y[:, i * T:(i + 1) * T])


@dataclass
class TextData:
    """A tokenized corpus split into train / validation / test, with its batcher.

    ``TextData.from_file("input.txt", DataConfig(...))`` reads, tokenizes,
    splits, and checks that the training split is long enough.
    """

    tokenizer: object  # rnnkit.data.tokenizers or rnnkit.data.words
    train: torch.Tensor  # (N_train,) int64
    val: torch.Tensor
    test: torch.Tensor
    config: DataConfig
    digest: str = ""

    def reversed(self) -> "TextData":
        """The same splits, each read backwards (last token first): a backward language model's
        data. In memory, also for a corpus read from a token file."""
        return dataclasses.replace(self, **{split: torch.flip(getattr(self, split), [0])
                                            for split in ("train", "val", "test")})

    @classmethod
    def from_file(cls, path: str | Path, config: DataConfig | None = None, tokenizer=None) -> "TextData":
        """Train on ``path``; validation and test are ``config.val_path`` and
        ``config.test_path`` where given (Penn Treebank's files), else cut off
        the end of ``path`` by ``val_fraction`` and ``test_fraction``."""
        config = dataclasses.replace(config or DataConfig(), path=str(path))
        if config.tokenizer == "auto":  # a language model of any text: characters
            config = dataclasses.replace(config, tokenizer="char")
        kind = config.tokenizer
        if tokenfile.streamable(path, kind):
            return cls._streamed(path, config, tokenizer)
        text = read_text(path, "byte" if kind == "byte" else "char")
        if tokenizer is None:
            tokenizer = fit_tokenizer(kind, text, config)
        ids = tokenizer.encode(text, what=str(path))
        if len(ids) < 2:
            raise DataError(f"{path} has {len(ids)} token(s); a language model needs at least 2")
        val_fraction = 0.0 if config.val_path else config.val_fraction
        test_fraction = 0.0 if config.test_path else config.test_fraction
        splits = list(split_ids(ids, val_fraction, test_fraction))
        for i, extra in ((1, config.val_path), (2, config.test_path)):
            if extra:
                splits[i] = tokenizer.encode(read_text(extra, "byte" if kind == "byte" else "char"), what=extra)
        train, val, test = (torch.from_numpy(np.ascontiguousarray(s)) for s in splits)
        digest = file_digest(path, config.val_path, config.test_path)
        data = cls(tokenizer, train, val, test, config, digest)
        data.batcher(seed=0)  # fail now, not at the first step, if the split is too short
        return data

    @classmethod
    def _streamed(cls, path, config: DataConfig, tokenizer) -> "TextData":
        """A corpus read in chunks into a token file (:mod:`rnnkit.data.tokenfile`),
        split as :meth:`from_file` splits one in memory."""
        digest, fitted = tokenfile.scan(path, config.tokenizer)
        tokenizer = tokenizer or fitted
        if tokenizer.to_dict() != fitted.to_dict():  # resumed: the run's own vocabulary
            raise DataError(f"{path} holds other characters than the run's vocabulary; resume needs the same corpus")
        ids = tokenfile.token_file(path, digest, tokenizer)
        splits = list(split_ids(ids, 0.0 if config.val_path else config.val_fraction,
                                0.0 if config.test_path else config.test_fraction))
        for i, extra in ((1, config.val_path), (2, config.test_path)):
            if extra:
                text = read_text(extra, "byte" if config.tokenizer == "byte" else "char")
                splits[i] = torch.from_numpy(tokenizer.encode(text, what=extra))
        more = [file_digest(p) for p in (config.val_path, config.test_path) if p]
        if more:  # as file_digest joins several files' digests
            digest = hashlib.sha256("".join([digest, *more]).encode()).hexdigest()
        data = cls(tokenizer, *splits, config, digest)
        data.batcher(seed=0)
        return data

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size V."""
        return self.tokenizer.vocab_size

    def batcher(self, seed: int) -> StreamBatcher:
        """The training split's :class:`StreamBatcher`, seeded by ``seed``."""
        return StreamBatcher(self.train, self.config.batch_size, self.config.seq_len, seed)
