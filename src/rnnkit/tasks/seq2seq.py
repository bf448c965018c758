"""Sequence to sequence (``--task seq2seq``): an encoder reads the source,
an attentive decoder writes the target (Goodfellow et al. 10.4), from a TSV
of source and target columns or a pair of parallel files.

Validation gives the teacher-forced loss and the greedy outputs' token and
sequence error rates and BLEU; the best checkpoint is the one with the
lowest token error rate. ``rnnkit eval`` and ``rnnkit predict`` decode
greedily or by beam search (:class:`rnnkit.models.beam.Search`) and score
the outputs against their references (:mod:`rnnkit.training.decode`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rnnkit.config import CHAR_FEATURES_NEED_WORDS, TrainConfig, to_dict
from rnnkit.data.files import read_text
from rnnkit.data.pairs import PairConfig, PairData, encode_line, read_pairs, references
from rnnkit.data.tokenizers import choose_tokenizer
from rnnkit.errors import ConfigError, DataError
from rnnkit.models import Seq2Seq, Seq2SeqConfig
from rnnkit.models.beam import Search
from rnnkit.models.portable import seq2seq_graphs
from rnnkit.tasks.base import Task
from rnnkit.tasks.labelled import ENCODER_RULES
from rnnkit.tasks.serving import Endpoint, Field, RequestError, check_texts, texts_field
from rnnkit.training.decode import decode, error_rates, evaluate_pairs, score, score_pairs
from rnnkit.training.optim import ScheduledSampling, schedule_teacher_forcing
from rnnkit.training.plots import plot_alignment
from rnnkit.training.report import figure_html, note_html

TSV = "--task seq2seq over a TSV (not --source-lang)"


@dataclass
class Seq2SeqTraining(ScheduledSampling, TrainConfig):
    """:class:`rnnkit.config.TrainConfig` and scheduled sampling
    (:class:`rnnkit.training.optim.ScheduledSampling`): how often the decoder reads its own
    tokens instead of the target's as training goes on."""

    def __post_init__(self):
        super().__post_init__()
        self.check_sampling()


def _attending(choice) -> bool:
    return choice.model.attention != "none"


class Seq2SeqTask(Task):
    """``--task seq2seq``: a target sequence for a source sequence, the attentive encoder-decoder."""

    name = "seq2seq"
    summary = "seq2seq (a sequence for a sequence)"
    model_config = Seq2SeqConfig
    data_config = PairConfig
    train_config = Seq2SeqTraining
    rules = {
        **ENCODER_RULES,
        "input_feeding": (lambda c: _attending(c) and c.model.decoder_recurrence == "hidden",
                          "--task seq2seq with attention and --decoder-recurrence hidden"),
        "source_column": (lambda c: not c.data.source_lang, TSV),
        "target_column": (lambda c: not c.data.source_lang, TSV),
        "diagnostics_every": (lambda c: c.model.encoder == "rnn" or c.model.decoder_recurrence == "hidden",
                        "recurrent cells to inspect (--encoder rnn, or a seq2seq decoder with --decoder-recurrence "
                        "hidden)"),
        "scheduled_sampling": (lambda c: c.model.decoder_recurrence == "hidden",
                               "--task seq2seq with --decoder-recurrence hidden (the output decoder's "
                               "teacher-forced steps are what make it parallel)"),
        "sampling_steps": (lambda c: c.train.scheduled_sampling != "none",
                           "--scheduled-sampling linear, exponential or inverse_sigmoid"),
    }
    eval_options = frozenset({"beam_size", "length_penalty", "max_length"})
    predict_options = eval_options | {"n_best", "attention_plot"}

    def has_cells(self, choice) -> bool:
        return True  # the decoder's, also after a tdnn encoder

    def target_tokenizer_kind(self, data_cfg) -> str:
        """The target side's tokenizer: ``--target-tokenizer``, or the source's kind when auto."""
        return self.tokenizer_kind(data_cfg) if data_cfg.target_tokenizer == "auto" else data_cfg.target_tokenizer

    def token_kinds(self, choice) -> set[str]:
        return {self.tokenizer_kind(choice.data), self.target_tokenizer_kind(choice.data)}

    # -- data and model --------------------------------------------------------------------------

    def decide(self, data_cfg):
        """``--tokenizer auto`` and ``--target-tokenizer auto`` from the sources' and the targets'
        lines (:func:`rnnkit.data.tokenizers.choose_tokenizer`): one token a line, as in a
        pronunciation dictionary's words, reads as characters."""
        sides = [name for name in ("tokenizer", "target_tokenizer") if getattr(data_cfg, name) == "auto"]
        if not sides:
            return data_cfg, []
        lines = dict(zip(("tokenizer", "target_tokenizer"), read_pairs(data_cfg.path, data_cfg)))
        decided, notes = {}, []
        for name in sides:
            kind, why = choose_tokenizer(lines[name])
            decided[name] = kind
            notes.append(f"{name.replace('_', ' ')} auto: {kind} ({why})")
        return dataclasses.replace(data_cfg, **decided), notes

    def read_data(self, config, run=None, spell=False):
        if spell:
            raise ConfigError(CHAR_FEATURES_NEED_WORDS)
        config, _ = self.decide(self.own(config))
        return PairData.from_file(config.path, config, (run.tokenizer, run.target_tokenizer) if run else None)

    def build_model(self, model_cfg, tokenizer, labels=None, target_tokenizer=None):
        return Seq2Seq(tokenizer.vocab_size, target_tokenizer.vocab_size, **to_dict(model_cfg))

    def unit_of(self, data) -> str:
        return "pairs"

    def describe(self, data) -> str:
        return f"vocabularies {data.vocab_size} -> {data.target_tokenizer.vocab_size}"

    # -- training --------------------------------------------------------------------------------

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        if not len(getattr(data, split)):
            return {}
        decoded = score_pairs(model, data, split, group=group)  # greedy
        return {**evaluate_pairs(model, data.eval_batches(split), endings=True, group=group),
                **{k: decoded[k] for k in ("token_error_rate", "sequence_error_rate", "bleu")}}

    def before_step(self, model, step, config) -> dict:
        # the layers learning (gradual unfreezing), and the chance of reading the target's token
        return {**super().before_step(model, step, config), **schedule_teacher_forcing(model, config, step)}

    criterion_name = "token_error_rate"
    metrics = ("loss", "perplexity", "token_error_rate", "sequence_error_rate", "bleu")

    def criterion(self, metrics: dict) -> float:
        """The decoded outputs' token error rate: the loss can rise as the outputs grow confident
        while they still improve (benchmarks/NOTEBOOK.md, 2026-12-05, "CMUdict G2P: an hour, and
        which checkpoint to keep")."""
        return metrics["token_error_rate"]

    def next_step(self, out) -> str:
        return f"score the decoded outputs with: rnnkit eval {out}"

    # -- commands --------------------------------------------------------------------------------

    def decoding(self, request) -> Search:
        if request.length_penalty is not None and (request.beam_size or 1) == 1:
            raise ConfigError("--length-penalty ranks the outputs of a beam; greedy decoding has one: "
                              "add --beam-size K or drop it")
        return Search(request.beam_size or 1, 1.0 if request.length_penalty is None else request.length_penalty,
                      getattr(request, "n_best", None) or 1, request.max_length).check()

    def evaluate(self, run, model, doc, request) -> int:
        """Teacher-forced loss and the decoded outputs' metrics on a split of the run's pairs or on PATH."""
        search, path, split, as_json = self.decoding(request), request.path, request.split or "val", request.json
        data_cfg = doc.data
        tokenizers = (doc.tokenizer, doc.target_tokenizer)
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
              f"{error_rates(result)} | BLEU {result['bleu']:.2f} | chrF {result['chrf']:.2f}")
        return 0

    def predict(self, run, model, doc, request) -> int:
        """Decode each line of INPUT (a source, or a pair in the run's TSV columns); write
        ``source<TAB>output`` lines (with ``--n-best`` > 1, n lines a source with the score as a third
        column); where the lines carry targets, their metrics go to stderr."""
        search = self.decoding(request)
        path, output, plot = request.input, request.out, request.attention_plot
        data_cfg = doc.data
        source_tok, target_tok = doc.tokenizer, doc.target_tokenizer
        if plot and doc.model.attention == "none":
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
        hyps = decode(model, ids, search.beam_size, search.length_penalty, search.n_best, search.max_length,
                      progress=sys.stderr.isatty())
        outputs = [[target_tok.decode(h.tokens) for h in n_best] for n_best in hyps]
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
            metrics = score([outputs[sources.index(s)][0] for s in refs], list(refs.values()), target_tok.kind)
            print(f"{path}: {metrics['sources']:,} sources with targets; {error_rates(metrics)} | "
                  f"BLEU {metrics['bleu']:.2f}", file=sys.stderr)
        if plot:
            first = hyps[0][0]  # the first source's best output
            plot_alignment(first.attention.float().numpy(), [target_tok.decode([t]) for t in first.tokens] + ["</s>"],
                           [source_tok.decode([int(i)]) for i in ids[0]], Path(plot),
                           title=f"{sources[0]} -> {outputs[0][0]}")
        return 0

    def endpoints(self, model, run, limits):
        """``translate``: each source decoded as `rnnkit predict` decodes it, greedily or by beam search."""
        source_tok, target_tok = run.tokenizer, run.target_tokenizer

        def translate(values) -> dict:
            sources = [s.strip() for s in values["sources"]]
            check_texts(sources, limits, "sources")
            try:
                ids = [encode_line(source_tok, s, f"sources[{n}]") for n, s in enumerate(sources)]
            except DataError as e:
                raise RequestError(str(e), 422) from None
            longest = values["max_length"]
            if longest is None and 2 * max(map(len, ids)) + 10 > limits.max_length:  # decode's default, capped
                longest = limits.max_length
            search = Search(values["beam_size"], values["length_penalty"], 1, longest).check()
            hyps = decode(model, ids, search.beam_size, search.length_penalty, 1, search.max_length)
            return {"outputs": [target_tok.decode(n_best[0].tokens) for n_best in hyps],
                    "scores": [n_best[0].score for n_best in hyps]}

        fields = {"sources": texts_field(limits, "the sources to decode"),
                  "beam_size": Field("int", "1: greedy", 1, low=1, high=16),
                  "length_penalty": Field("float", "a beam's length penalty", 1.0, low=0, high=10),
                  "max_length": Field("int", "the longest output in tokens (default: twice the source's, and 10)",
                                      low=1, high=limits.max_length)}
        return {"translate": Endpoint("each source decoded", fields, translate, limits=limits)}

    # -- rnnkit report -------------------------------------------------------------------------------

    def export_graphs(self, model, run):
        """The encoder and the decoder step (:func:`rnnkit.models.portable.seq2seq_graphs`)."""
        return seq2seq_graphs(model), {}

    def report_sections(self, model, doc, data, text, chars, missing):
        super().report_sections(model, doc, data, text, chars, missing)
        if data is None:
            return []
        if doc.model.attention == "none":
            return [("Attention", note_html("This run has no attention (--attention none)."))]
        part = data.val if len(data.val) else data.train
        ids = list(part.examples.ids[:3])
        source, target = doc.tokenizer, doc.target_tokenizer
        figures = []
        for x, (best, *_) in zip(ids, decode(model, ids)):
            figures.append(figure_html(plot_alignment(
                best.attention.float().numpy(), [target.decode([t]) for t in best.tokens] + ["</s>"],
                [source.decode([int(i)]) for i in x], None,
                title=f"{source.decode(list(map(int, x)))} -> {target.decode(best.tokens)}")))
        return [("Attention", "".join(figures))]
