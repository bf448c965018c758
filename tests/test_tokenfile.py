"""A corpus larger than memory trains from a token file on disk, batch by batch,
exactly as it would from memory; and its memory does not grow with it."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from rnnkit import DataConfig, LanguageModel, TextData, Trainer
from rnnkit.data import tokenfile
from rnnkit.errors import DataError
from rnnkit.tasks import LanguageModelTraining
from rnnkit.training import evaluate


@pytest.fixture
def streamed(monkeypatch, tmp_path):
    """Stream every corpus (chunks of 1,000 bytes), with the cache in tmp_path."""
    monkeypatch.setattr(tokenfile, "STREAM_BYTES", 0)
    monkeypatch.setattr(tokenfile, "CHUNK_BYTES", 1000)
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("kind", ["char", "byte"])
def test_a_streamed_corpus_gives_the_batches_splits_and_evaluation_of_one_in_memory(tmp_path, monkeypatch, kind,
                                                                                     make_text):
    path = tmp_path / "corpus.txt"
    path.write_text(make_text(300) + "caf\u00e9 \u4e2d\u6587 \U0001f600\n" * 50)  # characters across chunk ends
    config = DataConfig(batch_size=4, seq_len=16, tokenizer=kind, val_fraction=0.1, test_fraction=0.05)
    memory = TextData.from_file(path, config)
    with monkeypatch.context() as m:
        m.setattr(tokenfile, "STREAM_BYTES", 0)
        m.setattr(tokenfile, "CHUNK_BYTES", 1000)
        m.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
        disk = TextData.from_file(path, config)
    assert isinstance(disk.train, tokenfile.TokenFile) and disk.digest == memory.digest
    assert disk.tokenizer.to_dict() == memory.tokenizer.to_dict()
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(disk, split).tensor(), getattr(memory, split)), split
    for epoch in (0, 1):
        for (a, b), (c, d) in zip(disk.batcher(7).batches(epoch, 2), memory.batcher(7).batches(epoch, 2),
                                  strict=True):
            assert torch.equal(a, c) and torch.equal(b, d)
    torch.manual_seed(0)
    model = LanguageModel(memory.vocab_size, hidden_size=16, num_layers=1, embedding_dim=8).eval()
    for streams in (1, 3):
        assert evaluate(model, disk.val, streams=streams, chunk_len=5) == \
            evaluate(model, memory.val, streams=streams, chunk_len=5)


def test_a_streamed_run_trains_resumes_and_reuses_its_token_file(tmp_path, streamed, corpus):
    def trainer(steps):
        data = TextData.from_file(corpus, DataConfig(batch_size=4, seq_len=16))
        torch.manual_seed(0)
        model = LanguageModel(data.vocab_size, hidden_size=16, num_layers=1, embedding_dim=8)
        return Trainer(model, data, LanguageModelTraining(max_steps=steps, eval_every=3, sample_length=0, device="cpu"),
                       out=tmp_path / "run", quiet=True)

    trainer(4).fit()
    files = list((tmp_path / "cache" / "tokens").iterdir())
    assert len(files) == 1 and files[0].stat().st_size == len(corpus.read_bytes())  # ASCII: a byte a character
    assert trainer(6).fit(resume=True)["step"] == 6
    assert list((tmp_path / "cache" / "tokens").iterdir()) == files


def test_a_streamed_corpus_that_is_not_utf8_says_where(tmp_path, streamed):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello world\n" * 200 + b"\xff" + b"more\n" * 10)
    with pytest.raises(DataError, match="not UTF-8 text \\(byte 0xff at offset 2400\\); use --tokenizer byte"):
        TextData.from_file(path, DataConfig(batch_size=4, seq_len=16))


@pytest.mark.slow
def test_memory_does_not_grow_with_the_corpus(tmp_path):
    """Peak RSS of training a few steps (with an evaluation) on 0.1 GB and on 0.4 GB of text,
    each above the streaming threshold: within 50 MB of each other (a corpus held whole, even
    one byte a character, would differ by 300 MB)."""
    line = b"the quick brown fox jumps over the lazy dog while a small cat sleeps near an old red barn\n"
    script = textwrap.dedent("""
        import resource, sys
        from rnnkit.cli.main import main
        main(sys.argv[1:])
        print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNKIT_CACHE": str(tmp_path / "cache")}
    peaks = {}
    for gigabytes in (0.1, 0.4):
        path = tmp_path / "big.txt"
        with open(path, "wb") as f:
            block = line * (2**20 // len(line))
            for _ in range(int(gigabytes * 1e9) // len(block)):
                f.write(block)
        done = subprocess.run([sys.executable, "-c", script, "train", str(path), "--hidden-size", "64",
                               "--num-layers", "1", "--batch-size", "32", "--seq-len", "64", "--max-steps", "20",
                               "--eval-every", "10", "--eval-streams", "64", "--val-fraction", "0.00006",
                               "--sample-length", "0", "--device", "cpu", "--out", str(tmp_path / f"run{gigabytes}")],
                              capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        peaks[gigabytes] = int(done.stdout.split("peak ")[-1])
        path.unlink()
        for f in (tmp_path / "cache" / "tokens").iterdir():
            f.unlink()
    print(peaks)
    assert abs(peaks[0.4] - peaks[0.1]) < 50e6, peaks
