"""One process of a split-evaluation test (test_distributed.py): validates an
untrained model of every task on the data in FOLDER, alone or as one of
torchrun's processes, and writes FOLDER/eval-W-R.json: each task's metrics and
how many examples this rank evaluated and decoded.

    python distributed_eval_worker.py FOLDER
    torchrun --standalone --nproc-per-node 2 distributed_eval_worker.py FOLDER
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from rnnkit import DataConfig, ModelConfig
from rnnkit.data import PairConfig, PairData, SpeechConfig, SpeechData, TextData
from rnnkit.tasks import LanguageModelData, LanguageModelTraining, named, read_data
from rnnkit.training.distributed import current

folder = Path(sys.argv[1])
world = int(os.environ.get("WORLD_SIZE", "1"))
if world > 1:
    dist.init_process_group("gloo")
group = current()
rank = group.rank if group else 0
char = {"tokenizer": "char", "val_fraction": 0.3}
datasets = {
    "lm": TextData.from_file(folder / "corpus.txt", DataConfig(**char)),
    "lm-texts": read_data(folder / "spam.csv", LanguageModelData(condition_column="CLASS", **char)),
    "classify": read_data(folder / "spam.csv", DataConfig(task="classify", val_fraction=0.3)),
    "tag": read_data(folder / "chunks.txt", DataConfig(task="tag", val_fraction=0.3)),
    "seq2seq": PairData.from_file(folder / "pairs.tsv", PairConfig(target_tokenizer="char", **char)),
    "ctc": SpeechData.from_file(folder / "speech.tsv", SpeechConfig(mel_bands=8, val_fraction=0.3)),
}
result = {}
for name, data in datasets.items():
    task = data.config.task
    torch.manual_seed(0)
    settings = ModelConfig(hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0)
    model = named(task).build_model(settings, data.tokenizer, getattr(data, "labels", None),
                                    getattr(data, "target_tokenizer", None))
    counts = {"evaluated": 0, "decoded": 0}

    def counting(method, key):
        def counted(*args, **kwargs):
            counts[key] += len(args[0][0] if key == "evaluated" else args[0])  # a batch's rows
            return method(*args, **kwargs)
        return counted

    model.loss = counting(model.loss, "evaluated")
    decoder = {"seq2seq": "start", "ctc": "decode"}.get(task)
    if decoder:
        setattr(model, decoder, counting(getattr(model, decoder), "decoded"))
    streams = LanguageModelTraining(eval_streams=4) if task == "lm" else None  # a text read as 4 streams
    metrics = named(task).validate(model, data, "val", group=group, config=streams)
    if task == "seq2seq":  # its loss starts the decoder too
        counts["decoded"] -= counts["evaluated"]
    result[name] = {"metrics": metrics, **counts, "examples": len(data.val),
                    "sources": len(set(data.val.sources)) if task == "seq2seq" else len(data.val)}
(folder / f"eval-{world}-{rank}.json").write_text(json.dumps(result))
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
