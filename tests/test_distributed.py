"""Data-parallel training with torch.distributed: two gloo processes launched by
torchrun train exactly as one process that sees the same global batch, only
rank 0 writes, and a run resumes on another number of processes."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit import DataConfig, LanguageModel, TextData
from rnnkit.data.batches import LabelledBatch, StreamBatch
from rnnkit.training.distributed import Group, rows
from rnnkit.training.evaluate import stream_sums
from rnnkit.training.runs import LAST, load_tensors

WORKER = Path(__file__).with_name("distributed_worker.py")
EVAL_WORKER = Path(__file__).with_name("distributed_eval_worker.py")
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not TORCHRUN.exists(),
                                reason="needs torch.distributed and torchrun")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, make_text, spam_table):
    folder = tmp_path_factory.mktemp("ddp")
    (folder / "corpus.txt").write_text(make_text(200))
    (folder / "spam.csv").write_text(spam_table(96))
    words = sorted(set(make_text(120).split())) * 8  # every character in the training split
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    return folder


def worker(folder, *jobs, processes=1):
    """Runs the jobs ("TASK:OUT:STEPS[:nan-on-rank-1-at-step-3]") in turn in one launch of the worker."""
    launcher = [str(TORCHRUN), "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else [sys.executable]
    done = subprocess.run([*launcher, str(WORKER), str(folder), *jobs], env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def trained(folder):
    """The runs the tests below compare, made in two launches (one of two processes, then one of
    one) rather than one launch each: two processes for 10 steps of each task, for 7 steps of a
    language model to resume on one process, and for 8 steps with a NaN on rank 1 at step 3; one
    process for the same 10 steps of each task, 12 straight, and the resumed run to 12."""
    worker(folder, "lm:lm-two:10", "classify:classify-two:10", "seq2seq:seq2seq-two:10", "lm:switched:7",
           "lm:nan:8:nan-on-rank-1-at-step-3", processes=2)
    worker(folder, "lm:lm-one:10", "classify:classify-one:10", "seq2seq:seq2seq-one:10", "lm:straight:12",
           "lm:switched:12")
    return folder


def weights(run):
    tensors, meta = load_tensors(run / LAST)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim."))}, meta


def assert_same_weights(a, b):
    (wa, ma), (wb, mb) = weights(a), weights(b)
    assert ma["step"] == mb["step"] and wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-9, atol=1e-12, msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["lm", "classify", "seq2seq"])
def test_two_processes_train_exactly_as_one_that_sees_the_global_batch(trained, task):
    folder = trained
    assert_same_weights(folder / f"{task}-one", folder / f"{task}-two")
    one, two = (json.loads(line) for line in ((folder / f"{task}-{n}" / "metrics.jsonl").read_text().splitlines()[-1]
                                              for n in ("one", "two")))
    # weights equal to 1e-9, and a language model's ranks validate their own streams (fp32 sums over other rows)
    assert one["step"] == two["step"] and one.keys() == two.keys() and "val_loss" in one
    for key in (k for k in one if k.startswith("val_")):  # loss, accuracy, F1, decoded error rates, BLEU
        assert one[key] == pytest.approx(two[key], rel=1e-6), key


@pytest.mark.slow
def test_a_run_resumes_on_another_number_of_processes(trained):
    """Two processes for 7 steps, then one for 5 more: the run of one process for 12 (the LM's
    carried states of both ranks' streams are in the checkpoint)."""
    assert_same_weights(trained / "straight", trained / "switched")


@pytest.mark.slow
def test_a_nan_on_one_rank_skips_the_step_on_every_rank(trained):
    rows = [json.loads(line) for line in (trained / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["skipped_steps"]) for r in rows if "nonfinite" in r] == [(3, 1)]
    assert weights(trained / "nan")[1]["step"] == 8  # and training went on, in step


@pytest.mark.slow
def test_rnnkit_train_under_torchrun_prints_and_writes_once(folder, tmp_path):
    done = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node=2", "-m", "rnnkit", "train",
                           str(folder / "corpus.txt"), "--hidden-size", "16", "--num-layers", "1", "--batch-size", "8",
                           "--seq-len", "16", "--max-steps", "6", "--eval-every", "3", "--sample-length", "0",
                           "--device", "cpu", "--out", str(tmp_path / "run")], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("2 processes") == 1 and done.stdout.count("done (budget) after 6 steps") == 1
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6  # one writer


@pytest.mark.slow
def test_every_task_s_validation_is_split_over_the_ranks_and_gives_every_rank_the_figures_of_one(
        tmp_path, make_text, spam_table, chunk_corpus):
    from test_ctc import random_texts, write_manifest

    (tmp_path / "corpus.txt").write_text(make_text(200))
    (tmp_path / "spam.csv").write_text(spam_table(1000))  # 300 to validate: 3 batches
    (tmp_path / "chunks.txt").write_text(chunk_corpus(1000))
    rng = random.Random(0)
    words = {"".join(rng.choices("abcdef", k=rng.randint(3, 8))) for _ in range(700)}  # 180 sources to validate
    (tmp_path / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in sorted(words)))
    write_manifest(tmp_path, "speech", random_texts(300, 0))
    for processes in (1, 2):
        launcher = [str(TORCHRUN), "--standalone", f"--nproc-per-node={processes}"] if processes > 1 \
            else [sys.executable]
        done = subprocess.run([*launcher, str(EVAL_WORKER), str(tmp_path)], env=ENV, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, *ranks = (json.loads((tmp_path / name).read_text()) for name in ("eval-1-0.json", "eval-2-0.json",
                                                                          "eval-2-1.json"))
    for task, alone in one.items():
        assert ranks[0][task]["metrics"] == ranks[1][task]["metrics"], task  # every rank decides alike
        if task == "lm":  # streams split: each chunk's loss sums in fp32 over other rows
            for key, value in alone["metrics"].items():
                assert ranks[0][task]["metrics"][key] == pytest.approx(value, rel=1e-6), (task, key)
            continue
        assert ranks[0][task]["metrics"] == alone["metrics"], task  # the same batches, the same sums in order
        whole = {"evaluated": alone["examples"], "decoded": alone["sources"] if task in ("seq2seq", "ctc") else 0}
        assert {k: alone[k] for k in whole} == whole, task
        for count in (k for k, n in whole.items() if n):
            shares = [r[task][count] for r in ranks]
            assert sum(shares) == whole[count] and 0 < min(shares), (task, count, shares)


def test_the_ranks_streams_of_a_validation_split_add_up_to_the_whole(corpus):
    data = TextData.from_file(corpus, DataConfig(batch_size=4, seq_len=16))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, hidden_size=16, num_layers=1, embedding_dim=8).eval()
    whole = stream_sums(model, data.val, 5, chunk_len=7)
    parts = [stream_sums(model, data.val, 5, chunk_len=7, rank=r, world=3) for r in range(3)]
    assert sum(c for _, c in parts) == whole[1] == len(data.val) - 1
    assert sum(t for t, _ in parts) == pytest.approx(whole[0], rel=1e-6)  # each batch sums in fp32
    assert parts[1][1] == 2 * ((len(data.val) - 1) // 5)  # streams 1 and 4 (rank 0 has 0, 3 and the tail)


def test_any_batch_splits_over_the_ranks_and_a_rank_without_rows_runs_one_at_weight_0():
    batch = LabelledBatch(torch.arange(5)[:, None], torch.ones(5, dtype=torch.long), torch.arange(5))
    parts = [rows(batch, Group(r, 2)) for r in range(2)]
    assert [p[0].y.tolist() for p in parts] == [[0, 1], [2, 3, 4]] and all(p[1] for p in parts)
    assert all(type(p[0]) is LabelledBatch for p in parts)  # the kind of batch kept, so a model reads its names
    part, has_rows = rows(StreamBatch(torch.zeros(1, 3), torch.zeros(1, 3)), Group(0, 2))
    assert not has_rows and type(part) is StreamBatch and part.x.shape == (1, 3)
