"""The language model (``--task lm``): output at every step, the next token.

Two kinds of data: a text read as contiguous streams for truncated BPTT
(:class:`rnnkit.data.TextData`), or, with ``--condition-column``, each text
of a table learnt whole and conditioned on its label (a
:class:`rnnkit.data.LabelledData` of texts framed by newlines). Validation
gives loss, bits and perplexity per token; ``rnnkit sample`` writes text,
``rnnkit eval`` scores a text as one stream, in windows or dynamically,
and the report draws units and surprisal over a text.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from rnnkit.config import (CHAR_FEATURES_NEED_WORDS, DataConfig, SampleConfig, TrainConfig, check_at_least, from_dict,
                           setting, to_dict)
from rnnkit.data import LabelledData, TextData, read_text
from rnnkit.data.files import exists
from rnnkit.data.sequences import read_labelled_table
from rnnkit.data.tables import TextColumn
from rnnkit.data.tokenfile import as_tensor
from rnnkit.errors import ConfigError, DataError
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.models.portable import LanguageModelStep
from rnnkit.tasks.base import Task
from rnnkit.tasks.serving import Endpoint, Field, RequestError
from rnnkit.training.decode import evaluating
from rnnkit.training.device import resolve_precision
from rnnkit.training.distributed import all_sum
from rnnkit.training.evaluate import evaluate, evaluate_dynamic, evaluate_texts, metrics_of, stream_sums
from rnnkit.training.report import note_html, units_section

STREAM = "a language model over a text (--task lm without --condition-column)"


@dataclass
class LanguageModelData(TextColumn, DataConfig):
    """:class:`rnnkit.config.DataConfig`, and the columns of a table whose texts are learnt each
    conditioned on its label."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="lm")
    condition_column: str | None = setting("lm: learn each text of a table conditioned on the label in this "
                                           "column (sample with --condition LABEL)", default=None)
    reverse: bool = setting("lm: learn the text read backwards, last character first (a backward language "
                            "model, for a tagger's --char-lm); samples come out reversed", default=False)


@dataclass
class LanguageModelTraining(TrainConfig):
    """:class:`rnnkit.config.TrainConfig` and what a language model's evaluations read and write."""

    eval_streams: int = setting("lm: parallel streams for validation during training (eval uses 1)", default=16)
    sample_length: int = setting("lm: characters sampled at each evaluation (0 = none)", default=200)

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, "eval_streams", 1)
        check_at_least(self, "sample_length", 0)


def _stream(choice) -> bool:
    """A text read as contiguous streams (not texts of a table, each with its label)."""
    return not choice.data.condition_column


def bits_name(tokenizer) -> str:
    """What the "bpc" metric (loss / ln 2) counts for ``tokenizer``'s tokens: "bpc" (bits a character) for
    characters and bytes, "bits/word" or "bits/bpe" for words and pieces."""
    kind = getattr(tokenizer, "kind", "char")  # a task without a tokenizer has no bits either
    return "bpc" if kind in ("char", "byte") else f"bits/{kind}"


class LanguageModelTask(Task):
    """``--task lm``: the next token of a text (or of each labelled text, conditioned), the language model."""

    name = "lm"
    summary = "lm (next token)"
    metrics = ("loss", "bpc", "perplexity")
    model_config = LanguageModelConfig
    data_config = LanguageModelData
    train_config = LanguageModelTraining
    rules = {
        "bidirectional": (lambda c: c.model.bidirectional is False,
                          "--task classify, tag, seq2seq or ctc (a language model reads left to right)"),
        "embeddings": (lambda c: c.data.tokenizer == "word" and c.model.embedding_dim > 0,
                       "word tokens and an embedding (--tokenizer word, --embedding-dim > 0)"),
        "text_column": (lambda c: not _stream(c), "--condition-column (the texts of a table)"),
        "seq_len": (_stream, STREAM),
        "reverse": (_stream, STREAM),
        "eval_streams": (_stream, STREAM),
        "init_from": (_stream, STREAM),  # a conditioned model's first layer reads the label too
    }
    eval_options = frozenset({"window", "dynamic", "segment"})

    def recurrent(self, choice) -> bool:
        return True

    def reads_both_ways(self, choice) -> bool:
        return False

    def tokenizer_kind(self, data_cfg) -> str:
        """Characters unless told otherwise: a language model of any text needs no vocabulary cap."""
        return data_cfg.tokenizer if data_cfg.tokenizer != "auto" else "char"

    # -- data and model --------------------------------------------------------------------------

    def read_data(self, config, run=None, spell=False):
        config, _ = self.decide(self.own(config))
        tokenizer = run.tokenizer if run else None
        if spell:
            raise ConfigError(CHAR_FEATURES_NEED_WORDS)
        if not config.condition_column:
            data = TextData.from_file(config.path, config, tokenizer)
            return data.reversed() if config.reverse else data
        # each text of the table framed by newlines (flattened to one line), conditioned on its label; a
        # character vocabulary is fitted on every text, as for a stream (characters have no unknown symbol)
        return LabelledData.from_texts(
            config.path, config, lambda path: _conditioned_texts(path, config), tokenizer,
            run.labels if run else None, stratify=True, lm=True)

    def build_model(self, model_cfg, tokenizer, labels=None, target_tokenizer=None):
        return LanguageModel(tokenizer.vocab_size, len(labels or ()), **to_dict(model_cfg))

    def unit_of(self, data) -> str:
        return "examples" if hasattr(data, "labels") else "tokens"  # texts of a table, or a stream

    # -- training --------------------------------------------------------------------------------

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        """Loss, bits and perplexity per token: a text read as ``config.eval_streams`` streams (one
        stream without a training ``config``), or each text of a table given its label."""
        ids, streams = getattr(data, split), config.eval_streams if config is not None else 1
        if hasattr(data, "labels"):  # texts, each with its condition
            if len(ids) == 0:
                return {}
            metrics = evaluate_texts(model, data.eval_batches(split), group)
        elif len(ids) < 2:
            return {}
        elif group is None:
            metrics = evaluate(model, ids, streams=streams)
        else:  # each rank its streams (rnnkit.training.distributed), the sums reduced
            with evaluating(model):
                total, count = all_sum(*stream_sums(model, ids, streams, rank=group.rank, world=group.world))
            metrics = metrics_of(total, int(count))
        return {k: metrics[k] for k in self.metrics}

    def describe_metrics(self, metrics: dict, data=None) -> str:
        """Nats, bits and perplexity a token: bits a character ("bpc") for characters and bytes, bits a word
        or a piece ("bits/word", "bits/bpe") otherwise."""
        bits = bits_name(data.tokenizer) if data is not None else "bpc"
        return f"{metrics['loss']:.4f} nats ({metrics['bpc']:.3f} {bits}, perplexity {metrics['perplexity']:.2f})"

    def evaluation_sample(self, model, data, config, generator) -> str | None:
        if not config.sample_length:
            return None
        return self.sample_text(model, data.tokenizer, getattr(data, "labels", None), config.sample_length, generator)

    def sample_text(self, model, tokenizer, labels, length, generator) -> str:
        prime = tokenizer.encode(tokenizer.default_prime())
        if not labels:
            return tokenizer.decode(list(model.generate(prime, length, temperature=0.8, generator=generator)))
        end = int(tokenizer.encode("\n")[-1])
        texts = []
        for k, label in enumerate(labels[:4]):  # a conditioned model: one text per label
            tokens = model.generate(prime, length, temperature=0.8, generator=generator, condition=k)
            ids = list(itertools.takewhile(lambda t: t != end, tokens))  # a text ends at its newline
            texts.append(f"[{label}] {tokenizer.decode(ids)}")
        return "\n".join(texts)

    def next_step(self, out) -> str:
        return f"sample with: rnnkit sample {out}"

    # -- commands --------------------------------------------------------------------------------

    def sample(self, run, model, tokenizer, doc, cfg, precision) -> int:
        prime = read_text(cfg.prime_file, "char") if cfg.prime_file else cfg.prime
        prime, prime_ids, condition = self._prime(run, tokenizer, doc.labels, cfg.condition, prime)
        seed = cfg.seed if cfg.seed is not None else torch.seed()
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        out = sys.stdout
        for n in range(cfg.num_samples):
            if cfg.num_samples > 1:
                out.write(f"{'-' * 20} sample {n + 1} {'-' * 20}\n")
            for piece in self._pieces(model, tokenizer, prime, prime_ids, cfg, generator, precision, condition):
                out.write(piece)
                out.flush()
            out.write("\n")
        return 0

    @staticmethod
    def _prime(run, tokenizer, labels, condition, prime) -> tuple:
        """(the prime as echoed, its ids, the condition's label id) for a sample of ``run``; a conditioned
        model writes one text (a line) of the label ``condition``, which it needs."""
        if labels:
            if condition not in labels:
                raise ConfigError(f"{run} writes texts of a label: pass --condition with one of {', '.join(labels)}")
            # texts were learnt as "\n" + text + "\n": start a text, and echo only the user's prime
            return prime, tokenizer.encode("\n" + prime, what="the prime text"), labels.index(condition)
        if condition is not None:
            raise ConfigError(f"{run} is not conditioned on labels; drop --condition")
        prime = prime or tokenizer.default_prime()
        return prime, tokenizer.encode(prime, what="the prime text"), None

    @staticmethod
    def _pieces(model, tokenizer, prime, prime_ids, cfg, generator, precision, condition) -> Iterator[str]:
        """The text of one sample as it is generated: the prime, then one piece a token (a
        conditioned text ends at its newline)."""
        end = int(tokenizer.encode("\n")[-1]) if condition is not None else None
        yield prime
        decode = tokenizer.stream_decoder(prime) if tokenizer.kind == "word" else tokenizer.stream_decoder()
        for token in model.generate(prime_ids, cfg.sample_length, cfg.temperature, cfg.top_k, cfg.top_p, generator,
                                    precision, condition):
            if token == end:
                return
            yield decode(token)

    def evaluate(self, run, model, doc, request) -> int:
        data_cfg, tokenizer, split = doc.data, doc.tokenizer, request.split or "val"
        if request.window is not None and request.window < 1:
            raise ConfigError(f"--window must be >= 1; got {request.window}")
        segment = request.segment
        if request.dynamic is None and segment is not None:
            raise ConfigError("--segment sets the segments of dynamic evaluation; add --dynamic LR or drop it")
        if request.dynamic is not None:
            segment = 50 if segment is None else segment
            if request.window is not None:
                raise ConfigError("--dynamic reads the text as one stream; drop --window or --dynamic")
            if request.dynamic < 0 or segment < 1:
                raise ConfigError(f"--dynamic needs a step size >= 0 and --segment >= 1; "
                                  f"got {request.dynamic} and {segment}")
        for path in (data_cfg.path, data_cfg.val_path, data_cfg.test_path):
            if not request.path and path and not exists(path):
                raise DataError(f"the run's corpus {path} is gone; give the text to evaluate as PATH")
        source = request.path or f"{data_cfg.path} ({split} split)"
        if data_cfg.condition_column:  # whole texts, each of its label: scored as the run validated them
            if request.window is not None or request.dynamic is not None:
                raise ConfigError(f"{run} reads whole texts of a label, not one stream: drop --window, --dynamic "
                                  f"and --segment")
            whole = dataclasses.replace(data_cfg, val_path=None, test_path=None, val_fraction=0.0,
                                        test_fraction=0.0)
            data = self.read_data(dataclasses.replace(whole, path=request.path) if request.path else data_cfg, doc)
            result = {**evaluate_texts(model, data.eval_batches("train" if request.path else split)),
                      "protocol": "whole texts, each given its label"}
        else:
            if request.path:
                ids = torch.from_numpy(tokenizer.encode(read_text(request.path, tokenizer.kind), what=request.path))
            else:
                ids = getattr(TextData.from_file(data_cfg.path, data_cfg, tokenizer), split)
            if len(ids) < 2:
                raise DataError(f"{source} has fewer than 2 tokens to evaluate; give a longer text as PATH")
            if request.dynamic is not None:
                result = evaluate_dynamic(model, ids, request.dynamic, segment)
                result["protocol"] = f"one stream, dynamic (SGD step {request.dynamic:g} after each {segment} tokens)"
            else:
                result = evaluate(model, ids, streams=1, window=request.window)
                result["protocol"] = f"windows of {request.window}" if request.window else "one stream"
        if request.json:
            print(json.dumps({"source": str(source), **result}))
        else:
            print(f"{source}: {result['tokens']:,} predictions, {result['protocol']}\n"
                  f"loss {result['loss']:.4f} nats/token | {result['bpc']:.4f} bits/token | "
                  f"perplexity {result['perplexity']:.3f}")
        return 0

    def predict(self, run, model, doc, request) -> int:
        raise ConfigError(f"{run} is a language model; use `rnnkit sample {run}` or `rnnkit eval {run} TEXT`")

    def endpoints(self, model, run, limits) -> dict[str, Endpoint]:
        """``sample``: a text streamed as it is generated, one piece a token, as `rnnkit sample`
        writes it (the same seed, the same text); ``surprisal`` (a language model of a stream): each
        token's s_t = -log2 p(x_t | x_<t) in bits, read from a zero state as `rnnkit eval` reads a text,
        and their mean, the bits per token."""
        device = next(model.parameters()).device
        precision = resolve_precision("auto", device)  # as `rnnkit sample` resolves it
        tokenizer, labels = run.tokenizer, run.labels

        def sample(values) -> Iterator[dict]:
            try:
                cfg = from_dict(SampleConfig, {k: v for k, v in values.items() if v is not None}, "the request")
                prime, prime_ids, condition = self._prime("this run", tokenizer, labels, cfg.condition, cfg.prime)
            except (ConfigError, DataError) as e:
                raise RequestError(str(e).replace("--condition", "'condition'"), 422) from None
            seed = cfg.seed if cfg.seed is not None else torch.seed()
            generator = torch.Generator(device=device).manual_seed(seed)
            for piece in self._pieces(model, tokenizer, prime, prime_ids, cfg, generator, precision, condition):
                if piece:
                    yield {"text": piece}

        defaults = SampleConfig()
        fields = {
            "prime": Field("str", "the text to start from", defaults.prime, high=limits.max_text),
            "sample_length": Field("int", "tokens to generate", 200, low=1, high=limits.max_length),
            "temperature": Field("float", "softmax temperature; 0 = greedy", defaults.temperature, low=0, high=100),
            "top_k": Field("int", "sample among the k likeliest tokens", low=1),
            "top_p": Field("float", "sample from the smallest set with total probability >= p", low=0, high=1),
            "seed": Field("int", "random seed (none: a fresh one)", low=0, high=2 ** 63 - 1),
            **({"condition": Field("str", f"the label to write a text of: {', '.join(labels)}", required=True)}
               if labels else {})}
        served = {"sample": Endpoint("a text the model writes, streamed one token at a time", fields, sample,
                                     stream=True, limits=limits)}
        if labels:  # texts of a table, each of its label: scored whole, not as a stream
            return served

        @torch.no_grad()
        def surprisal(values) -> dict:
            try:
                ids = torch.from_numpy(tokenizer.encode(values["text"], what="'text'")).long()  # (N,)
            except DataError as e:
                raise RequestError(str(e), 422) from None
            if len(ids) < 2:
                raise RequestError("'text' has fewer than 2 tokens; nothing to predict", 422)
            with evaluating(model):
                (logits, _), _ = model(ids[None].to(device))  # (1, N, V)
            log_p = torch.log_softmax(logits[0, :-1].float(), dim=-1).gather(1, ids[1:, None].to(device))[:, 0]
            bits = (-log_p / math.log(2)).tolist()  # (N - 1,): token t given the ones before it
            decode = tokenizer.stream_decoder("") if tokenizer.kind == "word" else tokenizer.stream_decoder()
            return {"tokens": [decode(int(i)) for i in ids], "bits": [None, *bits],
                    "bits_per_token": sum(bits) / len(bits), "loss": -float(log_p.mean())}

        served["surprisal"] = Endpoint(
            "each token's surprisal in bits, -log2 p(x_t | x_<t), and the mean: bits per token",
            {"text": Field("str", "the text to score", required=True, low=1, high=limits.max_text)},
            surprisal, limits=limits)
        return served

    # -- rnnkit report -------------------------------------------------------------------------------

    def export_graphs(self, model, run):
        """The model's step from a carried state (:class:`rnnkit.models.portable.LanguageModelStep`)."""
        return [LanguageModelStep(model).graph()], {}

    def report_sections(self, model, doc, data, text, chars, missing):
        if doc.data.condition_column:
            return super().report_sections(model, doc, data, text, chars, missing)
        if not (text or data is not None):
            return [("Units over the text, and surprisal", note_html(missing + " Or pass --text FILE."))]
        tokenizer = doc.tokenizer
        if text:
            ids = torch.from_numpy(tokenizer.encode(read_text(text, tokenizer.kind), what=text))
        else:
            ids = as_tensor((data.val if len(data.val) >= 2 else data.train)[:chars])
        if len(ids) < 2:
            raise DataError(f"{text or 'the validation split'} has fewer than 2 tokens to read")
        return [("Units over the text, and surprisal", units_section(model, tokenizer, ids[:chars].long()))]


def _conditioned_texts(path, config):
    """(texts, labels) of a table: each text framed by newlines and flattened to one line, so a
    newline starts and ends every text."""
    texts, labels = read_labelled_table(path, config.text_column, config.condition_column)
    return ["\n" + " ".join(t.split()) + "\n" for t in texts], labels
