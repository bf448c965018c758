"""Sequence tagging on real data: rnnkit's BiLSTM tagger with a softmax or a
CRF output layer, and a time-delay (tdnn) baseline, in one run.

Data (``--data-dir``, default ``../shared/data`` from the repo):

- ``conll2000/{train,test}.txt``: CoNLL-2000 chunking (Tjong Kim Sang &
  Buchholz 2000; WSJ 15-18 train, 20 test), ``word POS chunk`` per line.
  Words only (the POS column is not used); the chunk tag is the last column.
  10 % of train.txt (random, seed 0: ``DataConfig.val_fraction``) is held out
  for choosing the checkpoint; score: chunk F1 on test.txt as conlleval
  computes it. Models: BiLSTM + softmax, BiLSTM + CRF (Huang et al. 2015's
  BI-LSTM-CRF without its spelling and context features and pretrained
  embeddings), and a centred tdnn of kernel 5 (each tag sees the word and
  two words either side).
- ``ud_english_ewt/en_ewt-ud-{train,dev,test}.conllu``: UD English-EWT,
  words (column 1) and UPOS (column 3); dev chooses the checkpoint; score:
  UPOS accuracy on test. Models: BiLSTM + softmax, BiLSTM + CRF.

Each model is also run with character-level word features
(``char_features=25``: a bidirectional LSTM of 25 units a direction over
each word's characters, concatenated with its embedding; Lample et al. 2016),
which is how taggers read words their vocabulary lacks.

The ``charlm`` models add each word's contextual string embedding (Akbik
et al. 2018): the states of two character language models at its edges,
``--char-lm FWD,BWD``, runs of ``rnnkit train`` on raw text that holds no
test sentence (wikitext-2 is Wikipedia; CoNLL-2000's test is WSJ section 20,
EWT's is web text; ``benchmarks/charlm_text.py`` adds PTB without section 20's
sentences and CoNLL-2000's training sentences), the backward one with
``--reverse true``; their pretraining is not counted in the budget. Frozen,
their features are computed once a sentence (a cache in the model).

Every model goes through rnnkit's public API: ``rnnkit.read_data``
(tokenizer fitted on the training part only; words seen fewer than
``--min-count`` times there are ``<unk>``, so the ``<unk>`` row is trained),
``Trainer.fit`` for ``--minutes`` of training (evaluation time not counted;
the cosine schedule spans the budget), the checkpoint with the best
validation loss, and ``Trainer.test`` for its test scores. ``load_run`` and
``evaluate_labelled`` give that checkpoint's predictions, for the accuracy
on test tokens that are ``<unk>`` against known ones.

    python benchmarks/tagging.py [--data-dir ../shared/data] [--minutes 3] [--quick] [--char-lm FWD,BWD]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import DATA, markdown_table

# the official token counts of the test files (SOURCES.md), checked after reading
TEST_TOKENS = {"conll2000": 47_377, "ewt": 25_094}
# (key, corpus, name, ModelConfig overrides)
MODELS = (
    ("conll-bilstm", "conll2000", "BiLSTM + softmax", {}),
    ("conll-crf", "conll2000", "BiLSTM + CRF", {"crf": True}),
    ("conll-tdnn", "conll2000", "tdnn, centred, kernel 5 (+ softmax)", {"encoder": "tdnn"}),
    ("ewt-bilstm", "ewt", "BiLSTM + softmax", {}),
    ("ewt-crf", "ewt", "BiLSTM + CRF", {"crf": True}),
    ("conll-chars", "conll2000", "BiLSTM + softmax, char features", {"char_features": 25}),
    ("conll-crf-chars", "conll2000", "BiLSTM + CRF, char features", {"crf": True, "char_features": 25}),
    ("ewt-chars", "ewt", "BiLSTM + softmax, char features", {"char_features": 25}),
    ("ewt-crf-chars", "ewt", "BiLSTM + CRF, char features", {"crf": True, "char_features": 25}),
    ("conll-crf-charlm", "conll2000", "BiLSTM + CRF, char features, character LMs (--char-lm)",
     {"crf": True, "char_features": 25, "char_lm": True}),
    ("ewt-charlm", "ewt", "BiLSTM + softmax, char features, character LMs (--char-lm)",
     {"char_features": 25, "char_lm": True}),
    ("conll-glove", "conll2000", "BiLSTM + softmax, embedding from GloVe", {"glove": True}),
    ("ewt-glove", "ewt", "BiLSTM + softmax, embedding from GloVe", {"glove": True}),
)
CORPUS_NAMES = {"conll2000": "CoNLL-2000 chunking", "ewt": "UD English-EWT UPOS"}
PUBLISHED = {
    "conll2000": "Huang et al. 2015 BI-LSTM-CRF (words plus spelling and context features): 94.46 F1; "
                 "best CoNLL-2000 system (Kudo & Matsumoto, SVMs): 93.48",
    "ewt": "spaCy en_udv25_englishewt_trf (transformer, UD 2.5): 96.94 %; BERT-base: ~97.2-97.4 %; "
           "BiLSTM taggers (Plank et al. 2016, UD 1.2, English): ~95 % (recalled)",
}


# -- data -----------------------------------------------------------------------

def load_corpus(corpus: str, args, spell: bool = False):
    """The corpus as LabelledData (task tag); ``spell``: words with their spellings."""
    from rnnkit import read_data
    from rnnkit.tasks import TagData
    from rnnkit.data.words import UNK_ID

    common = dict(task="tag", min_count=args.min_count, lowercase=args.lowercase, batch_size=args.batch_size)
    if corpus == "conll2000":
        train = args.data_dir / "conll2000" / "train.txt"
        config = TagData(word_column=0, tag_column=-1, val_fraction=0.1,
                         test_path=str(args.data_dir / "conll2000" / "test.txt"), **common)
    else:
        root = args.data_dir / "ud_english_ewt"
        train = root / "en_ewt-ud-train.conllu"
        config = TagData(word_column=1, tag_column=3, val_path=str(root / "en_ewt-ud-dev.conllu"),
                         test_path=str(root / "en_ewt-ud-test.conllu"), **common)
    data = read_data(train, config, spell=spell)
    tokens = {split: sum(len(s) for s in getattr(data, split).ids) for split in ("train", "val", "test")}
    assert tokens["test"] == TEST_TOKENS[corpus], (corpus, tokens["test"])  # nothing dropped by the reader
    test_ids = word_ids(data.test)
    print(f"\n## {CORPUS_NAMES[corpus]}: {len(data.train):,} / {len(data.val):,} / {len(data.test):,} sentences "
          f"({tokens['train']:,} / {tokens['val']:,} / {tokens['test']:,} tokens) train / val / test; "
          f"{data.num_labels} tags; vocabulary {data.vocab_size:,} (min count {args.min_count}"
          f"{', lower-cased' if args.lowercase else ''}); <unk>: {np.mean(test_ids == UNK_ID):.2%} of test "
          f"tokens, {np.mean(word_ids(data.train) == UNK_ID):.2%} of train"
          f"{f'; alphabet {data.tokenizer.alphabet_size - 2}' if spell else ''}", flush=True)
    return data


def word_ids(examples) -> np.ndarray:
    """The word ids of all tokens of a split, in file order (column 0 of spelled ids)."""
    ids = np.concatenate(examples.ids)
    return ids[:, 0] if ids.ndim == 2 else ids


# -- one model --------------------------------------------------------------------

def unk_accuracy(data, predicted: dict) -> dict:
    """Tag accuracy on test tokens that are <unk> and on the others."""
    from rnnkit.data.words import UNK_ID

    is_unk = word_ids(data.test) == UNK_ID
    gold = np.array([t for s in predicted["gold"] for t in s])
    pred = np.array([t for s in predicted["predicted"] for t in s])
    assert len(gold) == len(is_unk), "predictions are not in test-file order"
    right = gold == pred
    return {"unk_tokens": int(is_unk.sum()), "test_tokens": len(is_unk),
            "unk_accuracy": float(right[is_unk].mean()) if is_unk.any() else float("nan"),
            "known_accuracy": float(right[~is_unk].mean())}


def run_model(data, name: str, overrides: dict, folder: Path, args) -> dict:
    """Train one tagger for the budget; test scores of its best checkpoint."""
    from rnnkit import TrainConfig, Trainer, load_run
    from rnnkit.models import TaggerConfig
    from rnnkit.tasks import named
    from rnnkit.training.evaluate import evaluate_labelled

    hidden = args.hidden_size
    if overrides.get("encoder") == "tdnn":  # as wide as the BiLSTM's concatenated output
        hidden = 2 * args.hidden_size
    overrides = dict(overrides)
    glove = overrides.pop("glove", False)
    if overrides.pop("char_lm", False):
        overrides["char_lm"] = args.char_lm
    model_cfg = TaggerConfig(cell="lstm", embedding_dim=args.embedding_dim, hidden_size=hidden, num_layers=1,
                             dropout=args.dropout, bidirectional=True, kernel_size=5,
                             **{"crf": False, "encoder": "rnn", **overrides})
    steps_per_epoch = -(-len(data.train) // args.batch_size)
    eval_every = max(1, round(steps_per_epoch / args.evals_per_epoch))
    budget = {"max_steps": args.steps} if args.steps else {"time_limit": args.minutes * 60}
    train_cfg = TrainConfig(optimizer="adam", lr=args.lr, **budget, eval_every=eval_every,
                            log_every=min(50, eval_every), precision=args.precision,
                            seed=args.seed, device="cpu")
    torch.manual_seed(args.seed)
    model = named("tag").build_model(model_cfg, data.tokenizer, data.labels)
    if glove:  # GloVe vectors of the training sentences, in the tagger's own vocabulary
        from rnnkit.models.glove import train_glove

        begun = time.perf_counter()
        vectors = train_glove(word_ids(data.train), data.vocab_size, dim=args.embedding_dim)
        with torch.no_grad():
            model.encoder.embedding.weight.copy_(torch.from_numpy(vectors) / vectors.std())  # the model's scale
        print(f"GloVe: {args.embedding_dim}-d vectors of the training words in {time.perf_counter() - begun:.0f} s "
              f"(not counted in the training budget)", flush=True)
    out = folder / name
    print(f"\n{name}: {sum(p.numel() for p in model.parameters()):,} parameters, {steps_per_epoch} steps an epoch, "
          f"evaluating every {eval_every}", flush=True)
    start = time.perf_counter()
    trainer = Trainer(model, data, train_cfg, out=out, quiet=args.quiet)
    result = trainer.fit()
    test = trainer.test()
    seconds = time.perf_counter() - start
    best, _, _ = load_run(out)
    predicted = evaluate_labelled(best, data.eval_batches("test"), data.labels)
    # the library's own figures for the best checkpoint are the ones reported
    assert abs(predicted["accuracy"] - test["accuracy"]) < 1e-9, (predicted["accuracy"], test)
    assert abs(predicted.get("f1", 0) - test.get("f1", 0)) < 1e-9, (predicted.get("f1"), test)
    vals = [r for r in trainer.rows if "val_loss" in r]
    task = named("tag")  # the kept checkpoint's evaluation: its criterion (chunks: F1; else the loss)
    best_row = min(vals, key=lambda r: task.criterion({k[4:]: v for k, v in r.items() if k.startswith("val_")}))
    row = {"steps": result["step"], "epochs": result["step"] / steps_per_epoch, "train_seconds": result["elapsed"],
           "seconds": seconds, "best_epoch": best_row["step"] / steps_per_epoch, "evaluations": len(vals),
           "val_accuracy": best_row["val_accuracy"], "val_f1": best_row.get("val_f1"),
           "accuracy": test["accuracy"], "f1": test.get("f1"), **unk_accuracy(data, predicted)}
    f1 = f"F1 {100 * row['f1']:.2f}  " if row["f1"] is not None else ""
    print(f"{name}: {row['steps']:,} steps ({row['epochs']:.1f} epochs, best at {row['best_epoch']:.1f}) in "
          f"{row['train_seconds']:.0f} s of training, {seconds:.0f} s in all; test {f1}accuracy "
          f"{100 * row['accuracy']:.2f} (<unk> {100 * row['unk_accuracy']:.2f} on {row['unk_tokens']:,} tokens, "
          f"known {100 * row['known_accuracy']:.2f})", flush=True)
    return row


# -- report -----------------------------------------------------------------------

def table(rows: dict[str, dict]) -> str:
    lines = []
    for key, corpus, name, _ in MODELS:
        if key not in rows:
            continue
        r = rows[key]
        if corpus == "conll2000":
            score, val = f"F1 **{100 * r['f1']:.2f}**", f"F1 {100 * r['val_f1']:.2f}"
        else:
            score, val = f"UPOS acc. **{100 * r['accuracy']:.2f}**", f"acc. {100 * r['val_accuracy']:.2f}"
        lines.append([CORPUS_NAMES[corpus], name, score, f"{100 * r['accuracy']:.2f}",
                      f"{100 * r['unk_accuracy']:.2f} / {100 * r['known_accuracy']:.2f}",
                      f"{r['unk_tokens']:,} of {r['test_tokens']:,} ({r['unk_tokens'] / r['test_tokens']:.2%})",
                      val, f"{r['steps']:,} ({r['epochs']:.1f})", f"{r['train_seconds']:.0f}"])
    return markdown_table(["corpus", "model", "test score", "test token acc.", "acc. on <unk> / known",
                           "<unk> test tokens", "best val", "steps (epochs)", "train s"], lines)


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data-dir", type=Path, default=DATA,
                   help="folder with conll2000/ and ud_english_ewt/ (default: ../shared/data from the repo)")
    p.add_argument("--minutes", type=float, default=3.0, help="training time per model (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 seconds a model")
    p.add_argument("--steps", type=int, default=None,
                   help="train each model for this many steps instead of --minutes (equal work, not equal time)")
    pretrained = ("glove", "charlm")
    p.add_argument("--models", nargs="+", default=[m[0] for m in MODELS if not any(k in m[0] for k in pretrained)],
                   choices=[m[0] for m in MODELS], help="default: all but the GloVe- and character-LM-started ones")
    p.add_argument("--embedding-dim", type=int, default=100)
    p.add_argument("--hidden-size", type=int, default=128, help="per direction (tdnn: twice this)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--min-count", type=int, default=2, help="training words seen fewer times are <unk>")
    p.add_argument("--lowercase", action="store_true", help="lower-case the words")
    p.add_argument("--evals-per-epoch", type=float, default=2)
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--char-lm", help="FWD,BWD: the two character language-model runs of the charlm models")
    p.add_argument("--quiet", action="store_true", help="no line per evaluation")
    args = p.parse_args()
    if args.quick:
        args.minutes = 10 / 60
    needed = {"conll2000": ["conll2000/train.txt", "conll2000/test.txt"],
              "ewt": [f"ud_english_ewt/en_ewt-ud-{s}.conllu" for s in ("train", "dev", "test")]}
    corpora = list(dict.fromkeys(corpus for key, corpus, _, _ in MODELS if key in args.models))
    missing = [f for c in corpora for f in needed[c] if not (args.data_dir / f).is_file()]
    if not args.char_lm and any("charlm" in key for key in args.models):
        sys.exit("tagging: the charlm models need --char-lm FWD,BWD (the docstring says how to train them)")
    if missing:
        sys.exit(f"tagging: no {missing[0]} in {args.data_dir}; pass --data-dir (the folder holding conll2000/ "
                 f"and ud_english_ewt/)")
    torch.set_num_threads(1)
    started = time.perf_counter()
    print(f"torch {torch.__version__}, 1 thread; {args.minutes:g} min a model; embedding {args.embedding_dim}, "
          f"hidden {args.hidden_size} a direction, 1 layer, dropout {args.dropout}, adam {args.lr:g} (cosine), "
          f"batch {args.batch_size}, min count {args.min_count}, {args.precision}", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="rnnkit-tagging-") as tmp:
        for corpus in corpora:
            for spell in (False, True):
                chosen = [(key, overrides) for key, c, _, overrides in MODELS if c == corpus and key in args.models
                          and bool(overrides.get("char_features") or overrides.get("char_lm")) == spell]
                if chosen:
                    data = load_corpus(corpus, args, spell)
                for key, overrides in chosen:
                    rows[key] = run_model(data, key, overrides, Path(tmp), args)
    print("\n" + table(rows))
    for corpus in corpora:
        print(f"\npublished, {CORPUS_NAMES[corpus]}: {PUBLISHED[corpus]}")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
