"""Word and byte-level BPE tokenizers."""

import json

import numpy as np
import pytest

from rnnkit.data import words
from rnnkit.data.tokenizers import tokenizer_from_dict
from rnnkit.data.words import EOS_ID, UNK_ID, BPETokenizer, WordTokenizer
from rnnkit.errors import CheckpointError, ConfigError, DataError


def _reloaded(tok):
    return tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))


# -- words ------------------------------------------------------------------------


def test_vocabulary_is_specials_then_words_by_count_with_ties_alphabetical():
    tok = WordTokenizer.fit("b a c a\nc d b a\n")  # a: 3; b, c: 2; d: 1
    assert tok.words == ["<unk>", "<eos>", "a", "b", "c", "d"]
    assert tok.vocab_size == 6
    assert tok.encode("a d\n").tolist() == [2, 5, EOS_ID]


def test_max_vocab_size_counts_the_special_tokens_and_keeps_the_most_frequent():
    text = "b a c a\nc d b a\n"
    assert WordTokenizer.fit(text, max_vocab_size=4).words == ["<unk>", "<eos>", "a", "b"]
    assert WordTokenizer.fit(text, min_count=2).words == ["<unk>", "<eos>", "a", "b", "c"]
    with pytest.raises(ConfigError, match="max_vocab_size must be more than 2"):
        WordTokenizer.fit(text, max_vocab_size=2)


def test_words_outside_the_vocabulary_and_the_literal_unk_share_id_0():
    # Penn Treebank writes rare words as "<unk>"; it must not become a second unknown token
    tok = WordTokenizer.fit("<unk> saw <unk>\nthe <unk> cat\n")
    assert tok.words.count("<unk>") == 1
    assert tok.words == ["<unk>", "<eos>", "cat", "saw", "the"]
    ids = tok.encode("the dog saw <unk>\n")
    assert ids.tolist() == [4, UNK_ID, 3, UNK_ID, EOS_ID]
    assert tok.decode(ids) == "the <unk> saw <unk>\n"
    assert tok.unk_rate(ids) == pytest.approx(2 / 5)


def test_eos_at_every_newline_and_none_after_an_unfinished_last_line():
    tok = WordTokenizer.fit("a b\nc\n\nd\n")
    a, b, c, d = (tok.index[w] for w in "abcd")
    assert tok.encode("a b\nc\n\nd\n").tolist() == [a, b, EOS_ID, c, EOS_ID, EOS_ID, d, EOS_ID]
    assert tok.encode("a  b").tolist() == [a, b]  # a prime continues its line
    assert tok.decode(tok.encode("a  b \nc\n\nd")) == "a b\nc\n\nd"
    assert tok.encode(tok.default_prime()).tolist() == [EOS_ID]


def test_without_eos_newlines_are_plain_whitespace():
    tok = WordTokenizer.fit("a b\nb\n", eos=False)
    assert tok.words == ["<unk>", "b", "a"]
    assert tok.encode("a\nb\n").tolist() == [2, 1]
    assert tok.default_prime() == "b"  # the most frequent word


def test_lowercase_folds_case_in_fit_and_encode():
    tok = WordTokenizer.fit("The the THE cat\n", lowercase=True)
    assert tok.words == ["<unk>", "<eos>", "the", "cat"]
    assert tok.encode("THE Cat").tolist() == [2, 3]
    assert WordTokenizer.fit("The the THE cat\n").vocab_size == 2 + 4


def test_regex_pattern_splits_punctuation_but_never_the_special_tokens():
    tok = WordTokenizer.fit("Hello, world! <unk> hello.\n", pattern=r"\w+|[^\w\s]")
    assert tok.words == ["<unk>", "<eos>", "!", ",", ".", "Hello", "hello", "world"]
    assert tok.decode(tok.encode("hello, <unk>!")) == "hello , <unk> !"
    # a pattern's own groups do not turn words into group captures
    grouped = WordTokenizer.fit("ab cd\n", pattern=r"(a|c)(b|d)")
    assert grouped.words[2:] == ["ab", "cd"]
    with pytest.raises(ConfigError, match=r"pattern: '\(' is not a regular expression"):
        WordTokenizer.fit("a", pattern="(")


def test_word_tokenizer_round_trips_through_its_dict(make_text):
    text = make_text(50)
    tok = WordTokenizer.fit(text, max_vocab_size=20, lowercase=True, pattern=r"\w+|[^\w\s]")
    again = _reloaded(tok)
    assert isinstance(again, WordTokenizer)
    assert again.words == tok.words and again.default_prime() == tok.default_prime()
    np.testing.assert_array_equal(again.encode(text), tok.encode(text))
    assert (tok.encode(text) == UNK_ID).any()  # the cap left words out, and they still agree
    with pytest.raises(CheckpointError, match="unusable word tokenizer"):
        WordTokenizer.from_dict({"kind": "word", "words": ["a", "<unk>"], "lowercase": False, "eos": False,
                                 "pattern": None})


def test_stream_decoder_adds_up_to_decode_and_spaces_after_a_prime(make_text):
    tok = WordTokenizer.fit(make_text(50))
    ids = tok.encode(make_text(5, seed=1))
    decode = tok.stream_decoder()
    assert "".join(decode(i) for i in ids) == tok.decode(ids)
    the = tok.index["the"]
    assert [tok.stream_decoder()(the), tok.stream_decoder("a cat")(the)] == ["the", " the"]


def test_an_uncapped_huge_vocabulary_is_refused_with_the_flag_to_cap_it():
    text = " ".join(f"w{i}" for i in range(50)) + " w0\n"
    with pytest.raises(DataError) as err:
        WordTokenizer.fit(text, what="big.txt", max_uncapped_vocab_size=40)
    message = str(err.value)
    assert message == ("big.txt has 50 distinct words; cap the vocabulary with --max-vocab-size N (e.g. 50000) "
                       "or --min-count")
    assert WordTokenizer.fit(text, max_vocab_size=30, max_uncapped_vocab_size=40).vocab_size == 30
    assert WordTokenizer.fit(text, min_count=2, max_uncapped_vocab_size=40).words == ["<unk>", "<eos>", "w0"]
    with pytest.raises(DataError, match="has no words"):
        WordTokenizer.fit(" \n\n")


# -- byte-level BPE -----------------------------------------------------------------

TRICKY = "Ça été naïve — 東京 🙂🙃 déjà vu\n\n\ttabs  and   spaces\r\nend 👩‍👩‍👧 ǅ\n"


@pytest.fixture(scope="module")
def bpe(make_text):
    return BPETokenizer.fit(make_text(200) + "café été naïve déjà\n" * 3, vocab_size=300)


def test_bpe_round_trips_any_text_exactly(bpe):
    for text in (TRICKY, "", " leading space", "\n", "x" * 1000):
        ids = bpe.encode(text)
        assert ids.dtype == np.int64
        assert bpe.decode(ids) == text
    assert bpe.tokenizer.token_to_id("<unk>") is None  # bytes cover everything; nothing is unknown


def test_bpe_training_is_deterministic_and_honours_vocab_size(bpe, make_text):
    text = make_text(200) + "café été naïve déjà\n" * 3
    again = BPETokenizer.fit(text, vocab_size=300)
    assert again.tokenizer.to_str() == bpe.tokenizer.to_str()
    np.testing.assert_array_equal(again.encode(text), bpe.encode(text))
    assert 256 < bpe.vocab_size <= 300
    assert len(bpe.encode(text)) < len(text.encode()) / 2  # it did learn merges
    assert BPETokenizer.fit("ab", vocab_size=5000, min_frequency=1).vocab_size < 5000  # runs out of pairs
    with pytest.raises(ConfigError, match="vocab_size must be at least 256"):
        BPETokenizer.fit(text, vocab_size=100)


def test_bpe_stream_decoder_waits_for_whole_characters(bpe):
    ids = bpe.encode(TRICKY)
    decode = bpe.stream_decoder()
    pieces = [decode(i) for i in ids]
    assert "".join(pieces) == bpe.decode(ids) == TRICKY
    # "🙂" was never seen: four byte tokens, the first three print nothing yet
    emoji = bpe.encode("🙂").tolist()
    decode = bpe.stream_decoder()
    assert [decode(i) for i in emoji] == ["", "", "", "🙂"]


def test_bpe_encode_in_chunks_equals_one_call(bpe, monkeypatch, make_text):
    text = make_text(100) + TRICKY + "a \n b\n\n\nc  \n  d\n" * 20
    monkeypatch.setattr(words, "CHUNK_SIZE", 7)
    chunks = list(words._chunks(text))
    assert len(chunks) > 100 and "".join(chunks) == text
    # the cuts fall where the pre-tokenizer cuts anyway ("\n\n" ending a chunk would be one pre-token)
    pre_tokens = bpe.tokenizer.pre_tokenizer.pre_tokenize_str
    assert [p for c in chunks for p, _ in pre_tokens(c)] == [p for p, _ in pre_tokens(text)]
    assert bpe.encode(text).tolist() == bpe.tokenizer.encode(text).ids


def test_bpe_round_trips_through_its_dict(bpe):
    again = _reloaded(bpe)
    assert isinstance(again, BPETokenizer) and again.vocab_size == bpe.vocab_size
    np.testing.assert_array_equal(again.encode(TRICKY), bpe.encode(TRICKY))
    decode = again.stream_decoder()
    assert "".join(decode(i) for i in bpe.encode(TRICKY)) == TRICKY
    with pytest.raises(CheckpointError, match="unusable BPE tokenizer"):
        BPETokenizer.from_dict({"kind": "bpe", "tokenizer": "{not json"})
    with pytest.raises(CheckpointError, match="unknown tokenizer kind 'chars'"):
        tokenizer_from_dict({"kind": "chars"})


@pytest.mark.parametrize("tokenizer, bits", [("word", "bits/word"), ("char", "bpc")])
def test_the_progress_line_names_the_bits_of_the_token_it_measures(corpus, tmp_path, cli_here, tokenizer, bits):
    """A word model's evaluations and test score say bits a word, a character model's bits a character."""
    result = cli_here("train", corpus, "--tokenizer", tokenizer, "--hidden-size", 16, "--embedding-dim", 8,
                      "--max-steps", 4, "--eval-every", 2, "--seq-len", 16, "--sample-length", 0,
                      "--test-path", corpus, "--out", tmp_path / "run")
    progress = [line for line in result.stdout.splitlines() if line.startswith("step ") and " val " in line]
    assert result.returncode == 0 and progress, result.stderr
    assert all(f" {bits}, perplexity" in line for line in progress), progress
    done = next(line for line in (result.stdout + result.stderr).splitlines() if line.startswith("done"))
    assert "test (best checkpoint) loss" in done and f", {bits} " in done, done
