"""``rnnkit eval`` and ``rnnkit predict`` for sequence-to-sequence runs:
decode sources (greedy or beam search) and score the outputs against their
references (:mod:`rnnkit.training.decode`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from rnnkit.data.files import read_text
from rnnkit.data.pairs import PairData, encode_line, references
from rnnkit.errors import ConfigError, DataError
from rnnkit.training.decode import decode, evaluate_pairs, score, score_pairs
from rnnkit.training.plots import plot_alignment


@dataclasses.dataclass
class Search:
    """How to decode: the beam (1: greedy), its length normalisation, outputs kept, longest output."""

    beam_size: int = 1
    length_penalty: float = 1.0
    n_best: int = 1
    max_length: int | None = None

    def check(self) -> "Search":
        if self.beam_size < 1 or self.n_best < 1 or (self.max_length is not None and self.max_length < 1):
            raise ConfigError(f"--beam-size, --n-best and --max-length must be >= 1; got {self.beam_size}, "
                              f"{self.n_best} and {self.max_length}")
        if self.n_best > self.beam_size:
            raise ConfigError(f"--n-best {self.n_best} outputs need a beam at least as wide; "
                              f"give --beam-size {self.n_best} or more")
        if self.length_penalty < 0:
            raise ConfigError(f"--length-penalty must be >= 0; got {self.length_penalty}")
        return self


def _decoded(model, target_tokenizer, sources_ids, search: Search, progress: bool):
    hyps = decode(model, sources_ids, search.beam_size, search.length_penalty, search.n_best, search.max_length,
                  progress=progress)
    return hyps, [[target_tokenizer.decode(h.tokens) for h in n_best] for n_best in hyps]


def run_eval(run: str, model, doc: dict, path: str | None, split: str, search: Search, as_json: bool) -> int:
    """Teacher-forced loss and the decoded outputs' metrics on a split of the run's pairs or on PATH."""
    data_cfg = doc["data"]
    tokenizers = (doc["tokenizer"], doc["target_tokenizer"])
    if path:  # the whole file, read as the run read its pairs
        whole = dataclasses.replace(data_cfg, val_path=None, test_path=None, val_fraction=0.0, test_fraction=0.0)
        data, split, source = PairData.from_file(path, whole, tokenizers), "train", path
    else:
        data, source = PairData.from_file(data_cfg.path, data_cfg, tokenizers), f"{data_cfg.path} ({split} split)"
    pairs = getattr(data, split)
    if not len(pairs):
        raise DataError(f"{source} holds no pairs to evaluate; give a file of pairs as PATH")
    result = evaluate_pairs(model, data.eval_batches(split))
    result.update(score_pairs(model, data, split, search.beam_size, search.length_penalty, search.max_length,
                              progress=not as_json and sys.stderr.isatty()))
    result["decoding"] = "greedy" if search.beam_size == 1 else \
        f"beam {search.beam_size}, length penalty {search.length_penalty:g}"
    if as_json:
        print(json.dumps({"source": str(source), **result}))
        return 0
    print(f"{source}: {len(pairs):,} pairs, {result['sources']:,} distinct sources, decoding {result['decoding']}\n"
          f"loss {result['loss']:.4f} nats/token | perplexity {result['perplexity']:.3f} | "
          f"sequence error rate {100 * result['sequence_error_rate']:.2f}% | "
          f"token error rate {100 * result['token_error_rate']:.2f}% | "
          f"BLEU {result['bleu']:.2f} | chrF {result['chrf']:.2f}")
    return 0


def run_predict(model, doc: dict, path: str, output: str | None, search: Search, plot: str | None) -> int:
    """Decode each line of ``path`` (a source, or a pair in the run's TSV
    columns); write ``source<TAB>output`` lines (with ``n_best`` > 1, n
    lines a source with the score as a third column); where the lines carry
    targets, their metrics go to stderr."""
    data_cfg = doc["data"]
    source_tok, target_tok = doc["tokenizer"], doc["target_tokenizer"]
    if plot and doc["model"].attention == "none":
        raise ConfigError("--attention-plot draws the decoder's attention, which this run has not "
                          "(--attention none); drop the flag")
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} has no lines to decode")
    paired = not data_cfg.source_lang and all("\t" in line for line in lines)
    if paired:
        cells = [line.split("\t") for line in lines]
        need = max(data_cfg.source_column, data_cfg.target_column) + 1
        short = next((n for n, c in enumerate(cells, start=1) if len(c) < need), None)
        if short:
            raise DataError(f"{path} line {short} has fewer than {need} columns (the run's source column "
                            f"{data_cfg.source_column}, target column {data_cfg.target_column})")
        sources = [c[data_cfg.source_column].strip() for c in cells]
        targets = [c[data_cfg.target_column].strip() for c in cells]
    else:
        sources, targets = [line.strip() for line in lines], None
    ids = [encode_line(source_tok, s, f"{path} line {n}") for n, s in enumerate(sources, start=1)]
    hyps, outputs = _decoded(model, target_tok, ids, search, progress=sys.stderr.isatty())
    out = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        for s, texts, n_best in zip(sources, outputs, hyps):
            for text, h in zip(texts, n_best):
                out.write(f"{s}\t{text}" + (f"\t{h.score:.4f}" if search.n_best > 1 else "") + "\n")
    finally:
        if output:
            out.close()
    if targets is not None:
        refs = references(sources, targets)
        metrics = score([outputs[sources.index(s)][0] for s in refs], list(refs.values()),
                        data_cfg.target_tokenizer_kind)
        print(f"{path}: {metrics['sources']:,} sources with targets; sequence error rate "
              f"{100 * metrics['sequence_error_rate']:.2f}% | token error rate "
              f"{100 * metrics['token_error_rate']:.2f}% | BLEU {metrics['bleu']:.2f}", file=sys.stderr)
    if plot:
        first = hyps[0][0]  # the first source's best output
        plot_alignment(first.attention.float().numpy(), [target_tok.decode([t]) for t in first.tokens] + ["</s>"],
                       [source_tok.decode([int(i)]) for i in ids[0]], Path(plot),
                       title=f"{sources[0]} -> {outputs[0][0]}")
    return 0
