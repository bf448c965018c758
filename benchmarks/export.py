"""onnxruntime running `rnnkit export`'s graphs against rnnkit itself, side by
side in one process: greedy generation from a character language model
(characters a second) and classification of padded batches of sentences
(sentences a second), at batch 1 and 64.

One thread each (``torch.set_num_threads(1)``, onnxruntime's
``intra_op_num_threads=1``; run with ``OMP_NUM_THREADS=1``); the two take
turns in every round (:func:`common.in_turns`), so load from other processes
falls on both alike; the best round counts. The weights are untrained (speed
does not depend on them).

- generation: a ``--hidden-size`` x ``--num-layers`` LSTM over ``--vocab-size``
  characters. rnnkit: ``LanguageModel.generate(prime, N, temperature=0)``
  (its Stepper: weights laid out once, the first layer's input projection a
  table, an fp32 LSTM's step on lstm.c). onnxruntime: the exported step, fed its argmax and its state back N
  times in a Python loop, as a user of ``step.onnx`` would.
- classification: a bidirectional LSTM of ``--classifier-hidden`` over word
  ids (a 10,000-word vocabulary, embedding 64, max pooling), sentences of 5
  to 40 words (uniform), padded. rnnkit: the model's forward pass on the
  engine it chooses for padded batches (``engine="auto"``); onnxruntime:
  ``classifier.onnx``.

    OMP_NUM_THREADS=1 python benchmarks/export.py [--seconds 3] [--rounds 3] [--batch-sizes 1,64]
"""

from __future__ import annotations

import argparse
import tempfile
from types import SimpleNamespace

import numpy as np
import torch

import common
from rnnkit.models import LanguageModel, SequenceClassifier
from rnnkit.tasks import named
from rnnkit.training import export


def session(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def exported(task: str, model, folder: str, labels=None):
    """The onnxruntime session of ``model``'s one graph, exported as `rnnkit export` does."""
    model.eval()
    export.on_torch_ops(model, task)
    graphs, files = named(task).export_graphs(model, SimpleNamespace(labels=labels, tokenizer=None))
    out = export.write_export(graphs, f"{folder}/{task}", task, {"task": task}, files)
    return session(out / f"{graphs[0].name}.onnx")


def onnx_generate(step, prime: np.ndarray, length: int, layers: int, hidden: int) -> np.ndarray:
    """Greedy generation with ``step.onnx``: prime (B, 1) -> tokens (B, length)."""
    zeros = np.zeros((layers, prime.shape[0], hidden), dtype=np.float32)
    logits, h, c = step.run(None, {"ids": prime, "state_h": zeros, "state_c": zeros})
    tokens = []
    for _ in range(length):
        token = logits[:, -1].argmax(-1)[:, None]  # (B, 1)
        tokens.append(token)
        logits, h, c = step.run(None, {"ids": token, "state_h": h, "state_c": c})
    return np.concatenate(tokens, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per contestant and round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="(default 3)")
    parser.add_argument("--batch-sizes", default="1,64", help="(default 1,64)")
    parser.add_argument("--hidden-size", type=int, default=512, help="the language model's (default 512)")
    parser.add_argument("--num-layers", type=int, default=2, help="the language model's (default 2)")
    parser.add_argument("--vocab-size", type=int, default=65, help="characters (default 65)")
    parser.add_argument("--length", type=int, default=100, help="characters a generation call (default 100)")
    parser.add_argument("--classifier-hidden", type=int, default=128, help="(default 128)")
    args = parser.parse_args()
    common.print_command()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    L, H, V = args.num_layers, args.hidden_size, args.vocab_size
    lm = LanguageModel(V, cell="lstm", hidden_size=H, num_layers=L, embedding_dim=64)
    classifier = SequenceClassifier(10_000, 2, cell="lstm", hidden_size=args.classifier_hidden, num_layers=1,
                                    embedding_dim=64, pooling="max")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        step = exported("lm", lm, folder)
        onnx_classifier = exported("classify", classifier, folder, labels=["a", "b"])
        lm.rnn.engine = classifier.encoder.layer.engine = "auto"  # rnnkit as a user runs it
        rng = np.random.default_rng(0)
        for B in map(int, args.batch_sizes.split(",")):
            prime = rng.integers(0, V, (B, 1))
            same = onnx_generate(step, prime, 20, L, H)
            assert np.array_equal(same, torch.stack(list(lm.generate(torch.from_numpy(prime), 20, temperature=0)),
                                                    1).numpy()), "onnxruntime and rnnkit generate different text"
            batches = []
            for _ in range(8):
                lengths = rng.integers(5, 41, B)
                batches.append((torch.from_numpy(rng.integers(0, 10_000, (B, int(lengths.max())))),
                                torch.from_numpy(lengths)))

            def rnnkit_generate(_):
                for _ in lm.generate(torch.from_numpy(prime), args.length, temperature=0):
                    pass

            def rnnkit_classify(batch):
                with torch.no_grad():
                    classifier(*batch)

            chars = {"rnnkit": (rnnkit_generate, [None], lambda _: B * args.length),
                     "onnxruntime": (lambda _: onnx_generate(step, prime, args.length, L, H), [None],
                                     lambda _: B * args.length)}
            sentences = {"rnnkit": (rnnkit_classify, batches, lambda _: B),
                         "onnxruntime": (lambda b: onnx_classifier.run(None, {"ids": b[0].numpy(),
                                                                               "lengths": b[1].numpy()}),
                                         batches, lambda _: B)}
            for what, contestants in ((f"generation, {L} x {H} LSTM, chars/s", chars),
                                      (f"classification, bi-LSTM {args.classifier_hidden}, sentences/s",
                                       sentences)):
                best = {name: max(r) for name, r in common.in_turns(contestants, args.rounds, args.seconds).items()}
                rows.append([what, B, f"{best['rnnkit']:,.0f}", f"{best['onnxruntime']:,.0f}",
                             f"{best['onnxruntime'] / best['rnnkit']:.2f}"])
                print(common.markdown_row(rows[-1]), flush=True)
    print(common.markdown_table(["what", "batch", "rnnkit", "onnxruntime", "onnxruntime / rnnkit"], rows))


if __name__ == "__main__":
    main()
