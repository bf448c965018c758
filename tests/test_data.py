"""Tokenizers, splits and stream batching."""

import numpy as np
import pytest
import torch

from rnnkit.config import DataConfig
from rnnkit.data import ByteTokenizer, CharTokenizer, StreamBatcher, TextData, read_text, split_ids
from rnnkit.data.tokenizers import tokenizer_from_dict
from rnnkit.errors import DataError


def test_char_tokenizer_round_trips_unicode_and_saves_itself():
    text = "naïve café — 東京 🙂\n"
    tok = CharTokenizer.fit(text)
    assert tok.vocab_size == len(set(text))
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    again = tokenizer_from_dict(tok.to_dict())
    assert again.decode(again.encode(text)) == text
    assert "".join(tok.stream_decoder()(i) for i in ids) == text


def test_char_tokenizer_names_unseen_characters():
    tok = CharTokenizer.fit("abc")
    with pytest.raises(DataError, match=r"prime has 2 character\(s\) the model never saw in training: 'x', 'z'"):
        tok.encode("axzb", what="prime")


def test_byte_tokenizer_reads_anything_and_streams_multibyte_characters():
    tok = ByteTokenizer()
    raw = bytes(range(256))
    assert tok.encode(raw).tolist() == list(range(256))
    text = "é東🙂"
    decode = tok.stream_decoder()
    pieces = [decode(i) for i in tok.encode(text)]
    assert "".join(pieces) == text
    assert pieces[0] == ""  # half a character prints nothing yet


def test_split_is_in_order_train_val_test():
    ids = np.arange(1000)
    train, val, test = split_ids(ids, 0.1, 0.05)
    assert (len(train), len(val), len(test)) == (850, 100, 50)
    assert np.array_equal(np.concatenate([train, val, test]), ids)


def test_streams_continue_across_batches_and_targets_are_shifted():
    ids = torch.arange(1000)
    batcher = StreamBatcher(ids, batch_size=4, seq_len=10, seed=3)
    batches = list(batcher.batches(epoch=0))
    assert len(batches) == batcher.num_batches(0)
    for (x0, y0), (x1, _) in zip(batches, batches[1:]):
        assert torch.equal(y0, x0 + 1)
        assert torch.equal(x1[:, 0], x0[:, -1] + 1), "row b of batch i+1 must continue row b of batch i"
    # the streams are disjoint contiguous stretches of the corpus
    firsts = [x[:, 0] for x, _ in batches[:1]][0]
    assert torch.all(firsts[1:] - firsts[:-1] == (len(ids) - 1 - firsts[0].item()) // 4)
    # epochs start at different offsets, the same for the same seed
    starts = {StreamBatcher(ids, 4, 10, seed=3)._offset(e) for e in range(20)}
    assert len(starts) > 1
    assert next(batcher.batches(5))[0][0, 0] == next(StreamBatcher(ids, 4, 10, 3).batches(5))[0][0, 0]
    # resuming mid-epoch gives the same batches
    assert torch.equal(list(batcher.batches(0, start=3))[0][0], batches[3][0])


def test_too_short_corpus_says_what_to_lower(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("hello world\n" * 20)
    with pytest.raises(DataError, match="lower --batch-size or --seq-len"):
        TextData.from_file(path, DataConfig(batch_size=64, seq_len=100))


@pytest.mark.parametrize("content,tokenizer,message", [
    (None, "char", "no such file"),
    (b"", "char", "is empty"),
    (b"caf\xe9 latin-1", "char", "not UTF-8 text .* use --tokenizer byte"),
])
def test_read_text_names_a_missing_empty_or_undecodable_file_and_a_directory(tmp_path, content, tokenizer, message):
    path = tmp_path / "f.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_text(path, tokenizer)
    with pytest.raises(DataError, match="is a directory"):
        read_text(tmp_path, tokenizer)


def test_text_data_uses_the_last_tenth_for_validation(corpus):
    data = TextData.from_file(corpus, DataConfig(batch_size=4, seq_len=16))
    n = len(corpus.read_text())
    assert len(data.train) == int(n * 0.9) and len(data.train) + len(data.val) == n
    assert data.tokenizer.decode(data.val.numpy()) == corpus.read_text()[-len(data.val):]
