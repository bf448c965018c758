"""One process of a data-parallel test run (test_distributed.py): for each JOB in
turn, trains a small float64 model of TASK on the corpus in FOLDER into
FOLDER/OUT, alone or as one of torchrun's processes, for STEPS steps in all
(resuming the run in OUT if it has one). Several jobs share one launch: a
torchrun start costs more than a small job.

    python distributed_worker.py FOLDER TASK:OUT:STEPS [TASK:OUT:STEPS ...]
    torchrun --standalone --nproc-per-node 2 distributed_worker.py FOLDER TASK:OUT:STEPS[:nan-on-rank-1-at-step-3] ...
"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from rnnkit import DataConfig, ModelConfig, Trainer
from rnnkit.data import PairConfig, PairData, TextData
from rnnkit.tasks import named, read_data
from rnnkit.training.runs import LAST


def train(folder: Path, task: str, out: str, steps: int, spoil: bool) -> None:
    if task == "lm":
        data = TextData.from_file(folder / "corpus.txt", DataConfig(batch_size=8, seq_len=16))
    elif task == "classify":
        data = read_data(folder / "spam.csv", DataConfig(task="classify", batch_size=8))
    else:
        data = PairData.from_file(folder / "pairs.tsv", PairConfig(batch_size=8, tokenizer="char",
                                                                   target_tokenizer="char"))
    torch.manual_seed(0)
    shape = ModelConfig(hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0,
                        **({} if task == "lm" else {"bidirectional": True}))
    model = named(task).build_model(shape, data.tokenizer, getattr(data, "labels", None),
                                    getattr(data, "target_tokenizer", None)).double()
    config = named(task).train_config(max_steps=steps, eval_every=5, log_every=1, precision="fp32", device="cpu",
                                      optimizer="adam", lr=1e-2, warmup_steps=2, lr_schedule="constant",  # any budget
                                      on_nonfinite="skip", **({"sample_length": 0} if task == "lm" else {}))
    trainer = Trainer(model, data, config, out=folder / out, quiet=True)
    if spoil:  # one rank's loss is NaN at step 3
        loss = model.loss

        def spoiled(batch, state=None):
            value, state = loss(batch, state)
            return (value * float("nan") if trainer.step + 1 == 3 and dist.get_rank() == 1 else value), state

        model.loss = spoiled
    trainer.fit(resume=(folder / out / LAST).exists())


folder = Path(sys.argv[1])
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    dist.init_process_group("gloo")
for job in sys.argv[2:]:
    task, out, steps, *spoil = job.split(":")
    train(folder, task, out, int(steps), spoil == ["nan-on-rank-1-at-step-3"])
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
