"""Word and subword tokenizers.

- ``WordTokenizer``: one token per word, words split on whitespace or with a
  regular expression. The vocabulary is ``<unk>`` (id 0), ``<eos>`` (id 1,
  when ``eos=True``), then the words by descending count, ties in
  alphabetical order. Words outside the vocabulary become ``<unk>``: a word
  model cannot spell a word it has no row for. ``<eos>`` stands for each
  newline, so a corpus with one sentence per line, such as Penn Treebank,
  gets the usual "each line's words, then <eos>".
- ``BPETokenizer``: byte-level byte-pair encoding trained on the corpus with
  the Hugging Face ``tokenizers`` library. Every string encodes (the 256 byte
  values are in the vocabulary) and decodes back exactly.

Both offer the interface of ``CharTokenizer``: ``kind``, ``vocab_size``,
``encode(text, what) -> (N,) int64``, ``decode(ids)``, ``default_prime()``,
``stream_decoder()``, ``to_dict()``, and ``from_dict(d)`` to rebuild.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter

import numpy as np

from rnnkit.errors import CheckpointError, ConfigError, DataError

UNK, EOS = "<unk>", "<eos>"
UNK_ID, EOS_ID = 0, 1
# Past this many words an embedding plus softmax of V rows is rarely what was
# meant (a million rows of 512 floats is 2 GB with its gradient and Adam state).
MAX_UNCAPPED_VOCAB_SIZE = 1_000_000
# BPE trains on and encodes pieces of this many characters, in parallel
CHUNK_SIZE = 1 << 16


class WordTokenizer:
    """Words to ids, with ``<unk>`` for every word outside the vocabulary.

    Args:
        words: the vocabulary in id order, special tokens first (``<unk>``,
            then ``<eos>`` when ``eos``).
        lowercase: lower-case text before splitting it.
        eos: a newline is the token ``<eos>``; otherwise newlines are
            whitespace like any other.
        pattern: a regular expression whose matches are the words (for
            example ``r"\\w+|[^\\w\\s]"`` to split off punctuation); ``None``
            splits on whitespace. ``<unk>`` and ``<eos>`` written in the text
            are always whole tokens and map to their special ids.

    ``encode`` puts ``<eos>`` at each newline and none after a last line that
    has no newline, so a prime such as ``"the cat"`` continues its line.
    ``decode`` joins the words of a line with single spaces.
    """

    kind = "word"

    def __init__(self, words, lowercase: bool = False, eos: bool = True, pattern: str | None = None):
        self.words = [str(w) for w in words]
        self.lowercase, self.eos, self.pattern = bool(lowercase), bool(eos), pattern
        specials = [UNK, EOS] if self.eos else [UNK]
        if self.words[:len(specials)] != specials:
            raise DataError(f"word tokenizer: the vocabulary must start with {specials}, got {self.words[:2]}")
        if len(self.words) == len(specials):
            raise DataError("word tokenizer: the vocabulary has no words")
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            dup = next(w for w, n in Counter(self.words).items() if n > 1)
            raise DataError(f"word tokenizer: the vocabulary holds {dup!r} twice")
        self._regex = None if pattern is None else _compile(pattern)

    @classmethod
    def fit(cls, text: str, max_vocab_size: int | None = None, min_count: int = 1, lowercase: bool = False,
            eos: bool = True, pattern: str | None = None, what: str = "the corpus",
            max_uncapped_vocab_size: int = MAX_UNCAPPED_VOCAB_SIZE) -> WordTokenizer:
        """The words of ``text`` seen at least ``min_count`` times, the most
        frequent first, at most ``max_vocab_size`` tokens in all (special
        tokens included). Without ``max_vocab_size``, a vocabulary of more than
        ``max_uncapped_vocab_size`` tokens is refused with a DataError."""
        specials = [UNK, EOS] if eos else [UNK]
        if max_vocab_size is not None and max_vocab_size <= len(specials):
            raise ConfigError(f"max_vocab_size must be more than {len(specials)} (the special tokens "
                              f"{', '.join(specials)}); got {max_vocab_size}")
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1; got {min_count}")
        regex = None if pattern is None else _compile(pattern)
        counts = Counter(_word_tokens(text, lowercase, eos, regex))
        for special in specials:
            counts.pop(special, None)
        kept = [w for w, n in counts.items() if n >= min_count]
        if not kept:
            seen = f" seen at least {min_count} times" if min_count > 1 else ""
            raise DataError(f"{what} has no words{seen}")
        if max_vocab_size is None and len(kept) + len(specials) > max_uncapped_vocab_size:
            seen = f" seen at least {min_count} times" if min_count > 1 else ""
            raise DataError(f"{what} has {len(kept):,} distinct words{seen}; cap the vocabulary with "
                            f"--max-vocab-size N (e.g. 50000) or --min-count")
        kept.sort(key=lambda w: (-counts[w], w))
        if max_vocab_size is not None:
            kept = kept[:max_vocab_size - len(specials)]
        return cls(specials + kept, lowercase, eos, pattern)

    @property
    def vocab_size(self) -> int:
        """V: the words, the special tokens included."""
        return len(self.words)

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        """(N,) int64 ids; unknown words are ``<unk>`` (see ``unk_rate``), so
        ``what`` names nothing: no text is refused."""
        get, words = self.index.get, _word_tokens(text, self.lowercase, self.eos, self._regex)
        return np.array([get(w, UNK_ID) for w in words], dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of ``ids``: words joined as :meth:`stream_decoder` joins them."""
        decode = self.stream_decoder()
        return "".join(decode(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist())

    def unk_rate(self, ids) -> float:
        """The share of ``ids`` that are ``<unk>``: how much of a text the vocabulary misses."""
        ids = np.asarray(ids)
        return float((ids == UNK_ID).mean()) if ids.size else 0.0

    def default_prime(self) -> str:
        """A newline (a sentence start) with ``eos``, else the most frequent word."""
        return "\n" if self.eos else self.words[UNK_ID + 1]

    def stream_decoder(self, after: str = "\n"):
        """A function from one token id to the text it adds: the word, after a
        space unless it starts a line; a newline for ``<eos>``. ``after`` is
        the text already shown (the prime), to know whether a space is due;
        fed one id at a time the pieces add up to ``decode(ids)``."""
        words, eos = self.words, self.eos
        at_line_start = after == "" or after.endswith("\n")

        def decode(i) -> str:
            nonlocal at_line_start
            i = int(i)
            if eos and i == EOS_ID:
                at_line_start = True
                return "\n"
            piece = words[i] if at_line_start else " " + words[i]
            at_line_start = False
            return piece

        return decode

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back (config.json's tokenizer entry)."""
        return {"kind": self.kind, "words": self.words, "lowercase": self.lowercase, "eos": self.eos,
                "pattern": self.pattern}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        """The tokenizer :meth:`to_dict` saved, or a CheckpointError."""
        try:
            return cls(d["words"], d["lowercase"], d["eos"], d["pattern"])
        except (KeyError, TypeError, DataError, ConfigError) as e:
            raise CheckpointError(f"config.json: unusable word tokenizer ({e})") from None


# A word's spelling is cut to this many characters: its first and last half
# (prefixes and suffixes carry the morphology: un-, -ing, -ly, -ed).
MAX_WORD_CHARS = 20
PAD_CHAR_ID, UNK_CHAR_ID = 0, 1


class SpelledWordTokenizer:
    """Words with their spellings, for models that read the characters of a
    word as well as its vocabulary row (``--char-features``; Lample et al.
    2016): a word the vocabulary lacks is ``<unk>`` in column 0 but keeps its
    spelling, so "Brzezinski" still looks like a name and "overpriced" like
    an adjective.

    ``encode(text) -> (N, 1 + MAX_WORD_CHARS) int64``: per word, its id in
    ``words`` (a :class:`WordTokenizer`), then its characters' ids, padded
    with 0 (``PAD_CHAR_ID``); characters are 2 + their index in ``alphabet``,
    and a character training never saw is ``UNK_CHAR_ID`` (1). Spellings keep
    their case when ``words`` lower-cases, so capitals still mark names.
    """

    kind = "spelled-word"

    def __init__(self, words: WordTokenizer, alphabet: str):
        if words.eos:
            raise DataError("spelled words: the word tokenizer must not have <eos> (newlines are not words)")
        self.word_tokenizer = words
        self.alphabet = "".join(sorted(set(alphabet)))
        self._char_ids = {c: i + 2 for i, c in enumerate(self.alphabet)}

    @classmethod
    def fit(cls, words: WordTokenizer, text: str) -> SpelledWordTokenizer:
        """The alphabet of ``text`` (the training part), whitespace aside."""
        return cls(words, "".join(set(text) - set(" \t\n\r")))

    @property
    def vocab_size(self) -> int:
        """The word tokenizer's vocabulary size V."""
        return self.word_tokenizer.vocab_size

    @property
    def alphabet_size(self) -> int:
        """Character ids: the padding, the unknown character, then the alphabet."""
        return len(self.alphabet) + 2

    @property
    def words(self) -> list[str]:
        """The word tokenizer's words (id i is ``words[i]``)."""
        return self.word_tokenizer.words

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        """(N, 1 + MAX_WORD_CHARS) int64, as the class docstring says; a word longer than MAX_WORD_CHARS keeps
        its first and last halves' characters."""
        w = self.word_tokenizer
        tokens = _word_tokens(text, False, False, w._regex)  # the spelling keeps its case
        out = np.zeros((len(tokens), 1 + MAX_WORD_CHARS), dtype=np.int64)  # (N, 1 + C)
        get_word, get_char = w.index.get, self._char_ids.get
        half = MAX_WORD_CHARS // 2
        for n, token in enumerate(tokens):
            out[n, 0] = get_word(token.lower() if w.lowercase else token, UNK_ID)
            spelling = token if len(token) <= MAX_WORD_CHARS else token[:half] + token[-half:]
            out[n, 1:1 + len(spelling)] = [get_char(c, UNK_CHAR_ID) for c in spelling]
        return out

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back (config.json's tokenizer entry)."""
        return {"kind": self.kind, "words": self.word_tokenizer.to_dict(), "alphabet": self.alphabet}

    @classmethod
    def from_dict(cls, d: dict) -> SpelledWordTokenizer:
        """The tokenizer :meth:`to_dict` saved, or a CheckpointError."""
        try:
            return cls(WordTokenizer.from_dict(d["words"]), str(d["alphabet"]))
        except (KeyError, TypeError, DataError) as e:
            raise CheckpointError(f"config.json: unusable spelled-word tokenizer ({e})") from None


def _word_tokens(text: str, lowercase: bool, eos: bool, regex: re.Pattern | None) -> list[str]:
    """The words of ``text``, with ``<eos>`` at each newline when ``eos``."""
    if lowercase:
        text = text.lower()
    if not eos:
        return _split(text, regex)
    lines = text.split("\n")
    out = []
    for line in lines[:-1]:
        out += _split(line, regex)
        out.append(EOS)
    out += _split(lines[-1], regex)
    return out


def _split(s: str, regex: re.Pattern | None) -> list[str]:
    if regex is None:
        return s.split()
    # whole matches, not findall's groups: a pattern's own groups must not change the words
    return [w for w in (m.group(0) for m in regex.finditer(s)) if w]


def _compile(pattern: str) -> re.Pattern:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"pattern: {pattern!r} is not a regular expression ({e})") from None
    # the special tokens come first so a pattern cannot cut "<unk>" into "<", "unk", ">"
    return re.compile(f"(?:{re.escape(UNK)}|{re.escape(EOS)}|(?:{pattern}))")


class BPETokenizer:
    """Byte-level BPE: text as UTF-8 bytes, with the byte pairs most frequent
    in the training text merged into tokens until the vocabulary is full.

    A thin wrapper around a Hugging Face ``tokenizers.Tokenizer`` (``models.BPE``,
    ``pre_tokenizers.ByteLevel``, ``decoders.ByteLevel``), which it saves whole
    as JSON. There is no ``<unk>``: any string encodes, and decodes back exactly.
    """

    kind = "bpe"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._token_bytes = None  # per id, the bytes it stands for; built on first stream_decoder()

    @classmethod
    def fit(cls, text: str, vocab_size: int = 2000, min_frequency: int = 2) -> BPETokenizer:
        """Train on ``text`` up to ``vocab_size`` tokens (fewer if the text runs
        out of pairs seen ``min_frequency`` times). Deterministic for a given text."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 256:
            raise ConfigError(f"vocab_size must be at least 256 for byte-level BPE (the byte values); "
                              f"got {vocab_size}")
        if not text:
            raise DataError("BPE tokenizer: nothing to train on (empty text)")
        tok = Tokenizer(models.BPE())
        # no prefix space, no normaliser: decode(encode(text)) must give the text back exactly
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_chunks(text), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        """V: the trained tokenizer's vocabulary, the 256 byte values included."""
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        """(N,) int64 ids. Never refuses a text (``what`` is for the common signature)."""
        # chunks are cut where the pre-tokenizer cuts anyway, so the ids equal one
        # encode() of the whole text; encode_batch spreads them over the cores
        ids = [e.ids for e in self.tokenizer.encode_batch(list(_chunks(text)), add_special_tokens=False)]
        return np.fromiter((i for chunk in ids for i in chunk), dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of ``ids`` (byte-level: decode(encode(text)) gives the text back)."""
        return self.tokenizer.decode(np.asarray(ids, dtype=np.int64).reshape(-1).tolist())

    def default_prime(self) -> str:
        """A newline: texts start after one."""
        return "\n"

    def stream_decoder(self):
        """A function from one token id to the text it completes. A token may
        hold part of a UTF-8 character; its bytes wait in an incremental decoder
        until the character is whole, so each token costs O(1)."""
        if self._token_bytes is None:
            to_byte = _byte_level_decoding()
            vocab = sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            self._token_bytes = [bytes(to_byte[c] for c in token) for token, _ in vocab]
        token_bytes = self._token_bytes
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: decoder.decode(token_bytes[int(i)])

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back: the tokenizers library's own JSON."""
        return {"kind": self.kind, "tokenizer": self.tokenizer.to_str()}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        """The tokenizer :meth:`to_dict` saved, or a CheckpointError."""
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_str(d["tokenizer"]))
        except Exception as e:  # from_str raises a bare Exception
            raise CheckpointError(f"config.json: unusable BPE tokenizer ({e})") from None


def _chunks(text: str):
    """``text`` in pieces of about ``CHUNK_SIZE`` characters, cut only where
    the byte-level pre-tokenizer (GPT-2's regex) cuts whether or not the text
    ends there, so tokens do not depend on the cuts: after a lone newline
    between two non-spaces, or inside a run of spaces just before the space
    that joins the next word (``"a \\n| b"``). A cut after a longer run would
    not do: ``"\\n\\n"`` ending a string is one pre-token, before a word two."""
    boundary = re.compile(r"(?<=\S)\n(?=\S)|(?<=\s)(?= \S)")
    start = 0
    while len(text) - start > CHUNK_SIZE:
        m = boundary.search(text, start + CHUNK_SIZE)
        if m is None:
            break
        yield text[start:m.end()]
        start = m.end()
    yield text[start:]


def _byte_level_decoding() -> dict[str, int]:
    """The character GPT-2's byte-level BPE writes for each byte, inverted:
    printable Latin-1 bytes stand for themselves, the other 68 are shifted to
    U+0100 onwards in byte order (as ``tokenizers``' ByteLevel does)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    mapping = {chr(b): b for b in printable}
    mapping.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return mapping
