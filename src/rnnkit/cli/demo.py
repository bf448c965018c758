"""``rnnkit demo``: char-rnn's "Linux source code" experiment, on Python.

The corpus is the Python standard library's own source, which every Python
installation has, so the demo needs no download and rnnkit ships no text.
"""

from __future__ import annotations

import sysconfig
import time
from pathlib import Path

import torch

from rnnkit.config import DataConfig
from rnnkit.data import TextData
from rnnkit.errors import DataError
from rnnkit.models import LanguageModel
from rnnkit.tasks import LanguageModelTraining, Trainer

DEMO_CORPUS_BYTES = 3_000_000


def stdlib_corpus(max_bytes: int | None = None) -> str:
    """Top-level ``.py`` files of the standard library, sorted by name, up to ``max_bytes``
    (default ``DEMO_CORPUS_BYTES``, read at the call: a test sets a smaller one)."""
    max_bytes = DEMO_CORPUS_BYTES if max_bytes is None else max_bytes
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        size += len(text)
        if size >= max_bytes:
            break
    return "".join(parts)


def run_demo(time_limit: float, out: str | None) -> int:
    """``rnnkit demo``: the default character model trained on the standard library's Python source for
    ``time_limit`` seconds into ``out``, samples at each evaluation; exit code 0."""
    out_dir = Path(out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "corpus.txt"
    text = stdlib_corpus()
    if len(text) < 100_000:
        raise DataError(f"found only {len(text):,} characters of standard-library source; "
                        f"train on a text file instead: rnnkit train FILE")
    corpus.write_text(text, encoding="utf-8")
    data = TextData.from_file(corpus, DataConfig())
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size)  # the default recipe of `rnnkit train`
    cfg = LanguageModelTraining(time_limit=time_limit, eval_every=100, sample_length=300, seed=0)
    trainer = Trainer(model, data, cfg, out=out_dir)
    print(f"rnnkit demo: a 2 x 512 LSTM learns to write Python from {len(text):,} characters of the "
          f"standard library ({corpus}), for {time_limit:.0f}s on {trainer.device} in {trainer.precision}. "
          f"Samples follow each evaluation.", flush=True)
    result = trainer.fit()
    print(f"validation loss {result.get('val_loss', float('nan')):.3f} nats/char after "
          f"{result['step']} steps; try: rnnkit sample {out_dir} --prime 'def ' --sample-length 500")
    return 0
