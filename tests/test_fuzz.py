"""Property-based tests (hypothesis): tokenizers, batchers, the sampler and the
settings take any Unicode, bytes and numbers, and either work or say what is
wrong as an RnnkitError; the command line answers any flag value with a result
or one clear line and exit code 2, never a traceback.

The examples are drawn from a fixed seed (the profile in conftest.py), so CI
is reproducible; ``--hypothesis-profile explore`` draws new ones, many more."""

import contextlib
import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from rnnkit.cli.main import main
from rnnkit.config import DataConfig, ModelConfig, TrainConfig, from_dict
from rnnkit.data.chars import ByteTokenizer, CharTokenizer
from rnnkit.data.sequences import BucketBatcher, Examples
from rnnkit.data.text import StreamBatcher
from rnnkit.data.words import BPETokenizer, WordTokenizer
from rnnkit.errors import ConfigError, DataError, RnnkitError
from rnnkit.models.sampling import sample_next

texts = st.text(max_size=300)
nonempty_texts = st.text(min_size=1, max_size=300)


# -- tokenizers -------------------------------------------------------------------


@given(nonempty_texts)
def test_a_char_tokenizer_reads_back_any_text_it_was_fitted_on(text):
    tok = CharTokenizer.fit(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text and ids.min() >= 0 and ids.max() < tok.vocab_size


@given(nonempty_texts, nonempty_texts)
def test_a_char_tokenizer_names_unseen_characters_or_reads_them_as_unknown(fitted, other):
    strict, lenient = CharTokenizer.fit(fitted), CharTokenizer.fit(fitted, unk=True)
    unseen = set(other) - set(fitted)
    if unseen:
        with pytest.raises(DataError, match="character"):
            strict.encode(other)
    ids = lenient.encode(other)
    assert len(ids) == len(other) and ids.max() < lenient.vocab_size
    assert lenient.decode(ids) == "".join("\ufffd" if c in unseen else c for c in other)


@given(st.binary(max_size=300), texts)
def test_bytes_read_back_as_the_utf8_decoder_reads_them(data, text):
    tok = ByteTokenizer()
    assert tok.decode(tok.encode(data)) == data.decode("utf-8", errors="replace")
    assert tok.decode(tok.encode(text)) == text


@given(texts, texts, st.one_of(st.none(), st.integers(1, 50)), st.integers(1, 3), st.booleans())
def test_word_tokens_stay_in_the_vocabulary_for_any_text(fitted, other, max_vocab, min_count, lowercase):
    try:
        tok = WordTokenizer.fit(fitted, max_vocab_size=max_vocab, min_count=min_count, lowercase=lowercase)
    except RnnkitError:
        return  # a text without words, a vocabulary too small for the special tokens: said so
    for text in (fitted, other):
        ids = tok.encode(text)
        assert ids.dtype == np.int64 and (len(ids) == 0 or 0 <= ids.min() <= ids.max() < tok.vocab_size)
        assert isinstance(tok.decode(ids), str)


@given(nonempty_texts, texts, st.integers(1, 300))
def test_subword_tokens_stay_in_the_vocabulary_and_decode(fitted, other, vocab_size):
    try:
        tok = BPETokenizer.fit(fitted, vocab_size=vocab_size)
    except RnnkitError:
        return
    ids = tok.encode(other)
    assert len(ids) == 0 or 0 <= ids.min() <= ids.max() < tok.vocab_size
    assert isinstance(tok.decode(ids), str)


# -- batchers ---------------------------------------------------------------------


@given(st.integers(0, 400), st.integers(1, 16), st.integers(1, 40), st.integers(0, 3), st.integers(0, 2**31))
def test_stream_batches_are_the_corpus_cut_into_contiguous_streams_or_a_clear_error(n, B, T, epoch, seed):
    ids = torch.arange(n)
    try:
        batcher = StreamBatcher(ids, B, T, seed)
    except DataError as e:
        assert n < B * T + T and "lower --batch-size or --seq-len" in str(e)
        return
    batches = list(batcher.batches(epoch))
    assert len(batches) == batcher.num_batches(epoch) >= 1
    for i, (x, y) in enumerate(batches):
        assert x.shape == y.shape == (B, T) and torch.equal(y, x + 1)  # y is x one token on
        if i:  # each stream goes on where the last batch left it
            assert torch.equal(x[:, 0], batches[i - 1][0][:, -1] + 1)
    assert [torch.equal(a[0], b[0]) for a, b in zip(batches, batcher.batches(epoch))] == [True] * len(batches)


@given(st.lists(st.integers(1, 30), min_size=1, max_size=80), st.integers(1, 20), st.integers(0, 3),
       st.integers(0, 2**31))
def test_bucketed_batches_hold_every_example_once_an_epoch_padded_to_the_longest(lengths, B, epoch, seed):
    examples = Examples([np.full(n, i + 1, dtype=np.int64) for i, n in enumerate(lengths)], list(range(len(lengths))))
    batcher = BucketBatcher(examples, B, seed)
    seen = []
    for x, n, y in batcher.batches(epoch):
        assert x.shape == (len(y), int(n.max())) and len(y) <= B
        for row, length, label in zip(x, n, y):
            assert length == lengths[label] and (row[:length] == label + 1).all() and (row[length:] == 0).all()
        seen += y.tolist()
    assert sorted(seen) == list(range(len(lengths))) and len(seen) == len(lengths)
    _, n, _ = batcher.heaviest_batch(B)
    assert sorted(n.tolist(), reverse=True) == sorted(lengths, reverse=True)[:len(n)]


# -- the sampler ------------------------------------------------------------------


logit_values = st.one_of(st.floats(-1e30, 1e30, allow_nan=False), st.just(-math.inf))


@given(st.integers(1, 4).flatmap(lambda B: st.integers(1, 30).flatmap(
           lambda V: st.lists(st.lists(logit_values, min_size=V, max_size=V), min_size=B, max_size=B))),
       st.floats(0, 100), st.one_of(st.none(), st.integers(1, 40)), st.one_of(st.none(), st.floats(0.001, 1.0)),
       st.integers(0, 2**31))
def test_sampling_draws_an_allowed_token_for_any_logits(rows, temperature, top_k, top_p, seed):
    logits = torch.tensor(rows, dtype=torch.float32)
    assume(torch.isfinite(logits).any(dim=1).all())  # a row with no possible token is no distribution
    tokens = sample_next(logits, temperature, top_k, top_p, torch.Generator().manual_seed(seed))
    assert tokens.shape == (len(rows),)
    for row, t in zip(logits, tokens):
        assert torch.isfinite(row[t])  # never a token of probability 0
        if top_k is not None and temperature > 0:  # among the k likeliest (ties count with them)
            assert (row > row[t]).sum() < top_k
        if temperature == 0:
            assert row[t] == row.max()


# -- settings ---------------------------------------------------------------------


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=5)


@pytest.mark.parametrize("cls", [ModelConfig, DataConfig, TrainConfig])
@given(data=st.data())
def test_settings_from_any_json_are_a_config_or_a_config_error(cls, data):
    names = [f.name for f in dataclasses.fields(cls)]
    values = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=8), json_values, max_size=4))
    try:
        from_dict(cls, values)
    except ConfigError:
        pass


# -- the command line -------------------------------------------------------------


def run(argv):
    """Exit code, stdout and stderr of ``rnnkit ARGV`` in this process; argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


TRAIN_FLAGS = sorted({f.name for cls in (ModelConfig, DataConfig, TrainConfig) for f in dataclasses.fields(cls)}
                     - {"path", "out", "device"})  # out: a path to write; device cuda is a documented error
flag_values = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                        st.sampled_from(["", "none", "nan", "inf", "-inf", "0", "-1", "1e309", "true", "lstm",
                                         "\u00e9\u4e2d\U0001f600", "--", "x" * 300]),
                        st.text(max_size=20))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 60)
    return path


@given(st.lists(st.tuples(st.sampled_from(TRAIN_FLAGS), flag_values), min_size=1, max_size=3))
def test_train_answers_any_flag_values_with_a_plan_or_one_clear_line(tiny_corpus, flags):
    """A dry run (data, model and memory, nothing trained) on flags with any values."""
    argv = ["train", tiny_corpus, "--dry-run", "--device", "cpu", "--hidden-size", "16", "--num-layers", "1",
            "--batch-size", "4", "--seq-len", "16"]
    for name, value in flags:
        argv += ["--" + name.replace("_", "-"), value]
    code, out, err = run(argv)
    assert code in (0, 2) and "Traceback" not in err, (argv, err)
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("rnnkit"), (argv, err)  # "rnnkit: error: ..." or argparse's


@given(st.sampled_from(["--temperature", "--top-k", "--top-p", "--sample-length", "--seed", "--prime", "--num-samples",
                        "--precision", "--condition"]), flag_values)
def test_sample_answers_any_flag_value_with_text_or_one_clear_line(trained_run, flag, value):
    code, out, err = run(["sample", trained_run, "--sample-length", "5", flag, value])
    assert code in (0, 2) and "Traceback" not in err, (flag, value, err)
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("rnnkit"), (flag, value, err)


@pytest.fixture(scope="module")
def trained_run(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    code, _, err = run(["train", tiny_corpus, "--hidden-size", "16", "--num-layers", "1", "--batch-size", "4",
                        "--seq-len", "16", "--max-steps", "2", "--device", "cpu", "--sample-length", "0",
                        "--out", out])
    assert code == 0, err
    return out

