"""Validation split over data-parallel processes: how long one validation of an
untrained model takes when every rank validates the whole split (one process,
one thread: what each rank did before the split) and when two gloo processes
under torchrun share its batches (one thread each), with the metrics of both,
which must be equal. Also one process on two threads, the same cores used by
intra-op parallelism instead.

Tasks, on ../shared/data (the real splits of the recipes):
- g2p: CMUdict grapheme-to-phoneme, 2 x 256 LSTM encoder-decoder with
  attention, 3 % of g014b2b.train: teacher-forced loss and greedy decoding;
- tag: CoNLL-2000 chunking, 2 x 256 bidirectional LSTM tagger, 20 % of
  train.txt: loss, accuracy and chunk F1.

    python benchmarks/split_validation.py [--data ../shared/data] [--repeats 3]

Prints the command and one markdown table (the fastest of ``--repeats`` validations).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from rnnkit import DataConfig, ModelConfig
from rnnkit.data import PairData
from rnnkit.tasks import named, read_data
from rnnkit.training.distributed import current, gather_objects

from common import DATA, markdown_table, print_command, run, torchrun

TASKS = ("g2p", "tag")


def setup(task: str, data_dir: Path):
    if task == "g2p":
        data = PairData.from_file(data_dir / "cmudict_g2p" / "g014b2b.train", DataConfig(
            task="seq2seq", tokenizer="char", target_tokenizer="word", val_fraction=0.03))
        settings = ModelConfig(hidden_size=256, num_layers=2, embedding_dim=64)
    else:
        data = read_data(data_dir / "conll2000" / "train.txt", DataConfig(task="tag", val_fraction=0.2))
        settings = ModelConfig(hidden_size=256, num_layers=2, embedding_dim=64, bidirectional=True)
    torch.manual_seed(0)
    model = named(data.config.task).build_model(settings, data.tokenizer, getattr(data, "labels", None),
                                                getattr(data, "target_tokenizer", None))
    return data, model


def measure(task: str, data_dir: Path, repeats: int) -> dict:
    """The fastest of ``repeats`` validations (after one to warm up) in this process's group, and the metrics."""
    group = current()
    data, model = setup(task, data_dir)
    named(data.config.task).validate(model, data, "val", group=group)
    best = float("inf")
    for _ in range(repeats):
        if group:
            dist.barrier()
        start = time.perf_counter()
        metrics = named(data.config.task).validate(model, data, "val", group=group)
        best = min(best, time.perf_counter() - start)
    if group:  # the slowest rank's time is the validation's
        best = max(gather_objects(best))
    return {"seconds": best, "metrics": metrics, "examples": len(data.val)}


def worker(args) -> None:
    dist.init_process_group("gloo")
    results = {task: measure(task, args.data, args.repeats) for task in TASKS}
    if dist.get_rank() == 0:
        Path(args.worker).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


def alone(args, threads: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run([sys.executable, __file__, "--alone", out.name, "--data", str(args.data), "--repeats", str(args.repeats)],
            env={"OMP_NUM_THREADS": str(threads)})
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--alone", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.alone:
        results = {task: measure(task, args.data, args.repeats) for task in TASKS}
        Path(args.alone).write_text(json.dumps(results))
        return None
    if not (args.data / "cmudict_g2p").is_dir() or not (args.data / "conll2000").is_dir():
        sys.exit(f"split_validation: no cmudict_g2p and conll2000 under {args.data}; pass --data")
    print_command()
    one_thread, two_threads = alone(args, 1), alone(args, 2)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        torchrun(__file__, "--worker", out.name, "--data", str(args.data), "--repeats", str(args.repeats))
        split = json.loads(Path(out.name).read_text())
    rows = []
    for task in TASKS:
        a, b, s = one_thread[task], two_threads[task], split[task]
        rows.append([task, f"{a['examples']:,}", f"{a['seconds']:.2f}", f"{b['seconds']:.2f}", f"{s['seconds']:.2f}",
                     f"{a['seconds'] / s['seconds']:.2f}x", "yes" if a["metrics"] == s["metrics"] else "NO"])
    print("\n" + markdown_table(["task", "examples", "whole split, 1 thread (s)", "1 process, 2 threads (s)",
                                  "split, 2 processes (s)", "speed-up of the split", "metrics equal"], rows))


if __name__ == "__main__":
    main()
