"""Every kind of tokenizer by name: fitted on a corpus (:func:`fit_tokenizer`)
or restored from the dict it saved in a run folder (:func:`tokenizer_from_dict`).

The kinds: ``char`` and ``byte`` (:mod:`rnnkit.data.chars`), ``word``,
``bpe`` and ``spelled-word`` (:mod:`rnnkit.data.words`), and two that play
a tokenizer's part for vectors: a numeric series' scaler, ``series``
(:mod:`rnnkit.data.series`), and audio's features, ``speech``
(:mod:`rnnkit.data.audio`).
"""

from __future__ import annotations

from rnnkit.data.audio import SpeechFeatures
from rnnkit.data.chars import ByteTokenizer, CharTokenizer
from rnnkit.data.series import SeriesScaler
from rnnkit.data.words import BPETokenizer, SpelledWordTokenizer, WordTokenizer
from rnnkit.errors import CheckpointError


def fit_tokenizer(kind: str, text: str | bytes, config, lm: bool = True, unknown: bool | None = None):
    """A tokenizer of ``kind`` fitted on ``text`` as ``config`` (a DataConfig)
    says. ``lm``: tokens for a language model, where word tokens end every
    line with ``<eos>``; otherwise characters unseen in ``text`` read as one
    unknown character (classify, tag), or with ``unknown=False`` are an
    error (seq2seq, whose outputs must not hold one)."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer.fit(text, unk=not lm if unknown is None else unknown)
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
    if kind == "speech":
        return SpeechFeatures.from_dict(d)
    raise CheckpointError(f"unknown tokenizer kind {kind!r} in config.json")
