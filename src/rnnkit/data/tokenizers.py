"""Every kind of tokenizer by name: fitted on a corpus (:func:`fit_tokenizer`)
or restored from the dict it saved in a run folder (:func:`tokenizer_from_dict`).

The kinds: ``char`` and ``byte`` (:mod:`rnnkit.data.chars`), ``word``,
``bpe`` and ``spelled-word`` (:mod:`rnnkit.data.words`), and four that play
a tokenizer's part for vectors: a numeric series' scaler, ``series``
(:mod:`rnnkit.data.series`), a series to forecast's z-scores, ``zscore``
(:mod:`rnnkit.data.forecast`), recordings' scaler and framing, ``recordings``
(:mod:`rnnkit.data.recordings`), and audio's features, ``speech``
(:mod:`rnnkit.data.audio`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from rnnkit.data.audio import SpeechFeatures
from rnnkit.data.chars import ByteTokenizer, CharTokenizer
from rnnkit.data.forecast import ForecastScaler
from rnnkit.data.recordings import RecordingScaler
from rnnkit.data.series import SeriesScaler
from rnnkit.data.words import EOS, UNK, BPETokenizer, SpelledWordTokenizer, WordTokenizer
from rnnkit.errors import CheckpointError, ConfigError


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


ONE_TOKEN_SHARE = 0.9  # lines of a single token, at least: read as characters (spellings, pronunciations)
OPEN_VOCABULARY = (10_000, 0.4)  # distinct words, at least, and the share of them seen once: read as subwords


def choose_tokenizer(lines: list[str]) -> tuple[str, str]:
    """The tokenizer kind for ``auto`` from what ``lines`` (one side of the
    training examples) look like, and why, in a few words:

    - ``char`` when at least 90 % of the lines are one whitespace token (a
      word to spell, pronounce or transliterate): as words, every word the
      training lines lack would be ``<unk>``;
    - ``bpe`` when the words form a large open vocabulary (10,000 distinct
      words or more, 40 % or more of them seen once), so that a word level
      vocabulary would be mostly rare words and leave many unknown;
    - ``word`` otherwise."""
    words = Counter(w for line in lines for w in line.split())
    single = sum(len(line.split()) <= 1 for line in lines) / max(len(lines), 1)
    if single >= ONE_TOKEN_SHARE:
        return "char", f"{single:.0%} of its lines are one token"
    once = sum(n == 1 for n in words.values()) / max(len(words), 1)
    if len(words) >= OPEN_VOCABULARY[0] and once >= OPEN_VOCABULARY[1]:
        return "bpe", f"{len(words):,} distinct words, {once:.0%} of them seen once"
    return "word", f"{len(words):,} distinct words"


def tokenizer_from_dict(d: dict):
    """The tokenizer a run folder's config.json saved (any kind, by its ``kind``), or a CheckpointError."""
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
    if kind == "zscore":
        return ForecastScaler.from_dict(d)
    if kind == "recordings":
        return RecordingScaler.from_dict(d)
    if kind == "speech":
        return SpeechFeatures.from_dict(d)
    raise CheckpointError(f"unknown tokenizer kind {kind!r} in config.json")


def token_strings(tokenizer) -> list[str]:
    """What each id of ``tokenizer`` stands for, in id order: the strings by which two vocabularies
    are matched (a language model's rows copied into another model's, :mod:`rnnkit.models.transfer`).
    Words as they are (``<unk>``, ``<eos>`` included), a character itself (``<unk>`` for a
    classifier's unknown character), a byte as ``<0x41>``, a BPE token as the library spells it."""
    kind = tokenizer.kind
    if kind == "word":
        return list(tokenizer.words)
    if kind == "spelled-word":
        return list(tokenizer.word_tokenizer.words)
    if kind == "char":
        return ["<unk>"] * tokenizer.unk + [chr(c) for c in tokenizer.code_points.tolist()]
    if kind == "byte":
        return [f"<0x{b:02X}>" for b in range(256)]
    if kind == "bpe":
        vocab = tokenizer.tokenizer.get_vocab()  # token -> id
        return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    raise ConfigError(f"a {kind} tokenizer has no vocabulary of tokens to match with a language model's")


def extend_vocabulary(base, fitted):
    """The tokenizer of ``fitted``'s kind and policy (its special tokens, ``<unk>`` for unknown
    characters or not) whose vocabulary is ``base``'s (a language model's) and then the tokens
    ``fitted`` (fitted on the new data's training part) adds: ULMFiT's vocabulary for a model started
    from a language model. A byte or BPE tokenizer has nothing to add (every string encodes): ``base``."""
    kind = fitted.kind
    if kind == "spelled-word":
        return SpelledWordTokenizer(extend_vocabulary(base, fitted.word_tokenizer), fitted.alphabet)
    if kind in ("byte", "bpe"):
        return base
    if kind == "char":
        return CharTokenizer(np.union1d(base.code_points, fitted.code_points), fitted.unk)
    specials = [UNK, EOS] if fitted.eos else [UNK]
    seen = set(base.words)
    words = [w for w in base.words if w not in (UNK, EOS)] + [w for w in fitted.words[len(specials):]
                                                                 if w not in seen]
    return WordTokenizer(specials + words, fitted.lowercase, fitted.eos, fitted.pattern)
