"""Every kind of tokenizer by name: fitted on a corpus (:func:`fit_tokenizer`)
or restored from the dict it saved in a run folder (:func:`tokenizer_from_dict`).

The kinds: ``char`` and ``byte`` (:mod:`rnnkit.data.chars`), ``word``,
``bpe`` and ``spelled-word`` (:mod:`rnnkit.data.words`), and a numeric
series' scaler, ``series`` (:mod:`rnnkit.data.series`), which plays a
tokenizer's part for vectors.
"""

from __future__ import annotations

from rnnkit.data.chars import ByteTokenizer, CharTokenizer
from rnnkit.data.series import SeriesScaler
from rnnkit.data.words import BPETokenizer, SpelledWordTokenizer, WordTokenizer
from rnnkit.errors import CheckpointError


def fit_tokenizer(kind: str, text: str | bytes, config, lm: bool = True):
    """A tokenizer of ``kind`` fitted on ``text`` as ``config`` (a DataConfig)
    says. ``lm``: tokens for a language model, where word tokens end every
    line with ``<eos>``; otherwise (classify, tag) characters unseen in
    ``text`` read as one unknown character."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer.fit(text, unk=not lm)
    if kind == "word":
        return WordTokenizer.fit(text, max_vocab_size=config.max_vocab_size, min_count=config.min_count,
                                 lowercase=config.lowercase, eos=lm, pattern=config.word_pattern,
                                 what=str(config.path or "the corpus"))
    return BPETokenizer.fit(text, vocab_size=config.max_vocab_size or 2000)


def tokenizer_from_dict(d: dict):
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d["code_points"], d.get("unk", False))
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        return WordTokenizer.from_dict(d)
    if kind == "bpe":
        return BPETokenizer.from_dict(d)
    if kind == "spelled-word":
        return SpelledWordTokenizer.from_dict(d)
    if kind == "series":
        return SeriesScaler.from_dict(d)
    raise CheckpointError(f"unknown tokenizer kind {kind!r} in config.json")
