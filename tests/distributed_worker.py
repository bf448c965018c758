"""One process of a data-parallel test run (test_distributed.py): trains a small
float64 model of TASK on the corpus in FOLDER into FOLDER/OUT, alone or as one of
torchrun's processes, for STEPS steps in all (resuming the run in OUT if it has one).

    python distributed_worker.py TASK FOLDER OUT STEPS
    torchrun --standalone --nproc-per-node 2 distributed_worker.py TASK FOLDER OUT STEPS [nan-on-rank-1-at-step-3]
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

task, folder, out, steps = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    dist.init_process_group("gloo")
if task == "lm":
    data = TextData.from_file(folder / "corpus.txt", DataConfig(batch_size=8, seq_len=16))
elif task == "classify":
    data = read_data(folder / "spam.csv", DataConfig(task="classify", batch_size=8))
else:
    data = PairData.from_file(folder / "pairs.tsv", PairConfig(batch_size=8, tokenizer="char",
                                                               target_tokenizer="char"))
spoil = sys.argv[5:] == ["nan-on-rank-1-at-step-3"]
torch.manual_seed(0)
model = named(task).build_model(ModelConfig(
    hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0, **({} if task == "lm" else {"bidirectional": True})),
    data.tokenizer, getattr(data, "labels", None), getattr(data, "target_tokenizer", None)).double()
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
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
