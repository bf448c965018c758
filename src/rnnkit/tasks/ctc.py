"""Connectionist temporal classification (``--task ctc``): labels that are
ordered but not aligned, a transcript for audio (Graves et al. 2006), from
manifests of wav files and transcripts; ``rnnkit digits`` makes spoken
digit strings from the Free Spoken Digit Dataset.

Validation gives the loss and the best-path transcripts' token (label:
digit, character) and sequence (whole-transcript) error rates; the best
checkpoint is the one with the lowest token error rate. ``rnnkit eval`` and ``rnnkit predict`` decode by
best path or prefix beam search, fused with a character language model's
run (:class:`rnnkit.models.ctc_search.Fusion`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from rnnkit.config import CHAR_FEATURES_NEED_WORDS, to_dict
from rnnkit.data.audio import read_manifest
from rnnkit.data.digits import build_digit_strings
from rnnkit.data.speech import SpeechConfig, SpeechData
from rnnkit.errors import ConfigError, DataError
from rnnkit.models import CTCRecognizer, EncoderConfig
from rnnkit.models.ctc import LanguageModelScorer
from rnnkit.models.ctc_search import Fusion
from rnnkit.models.portable import Port, Scores
from rnnkit.tasks.base import Task
from rnnkit.tasks.labelled import ENCODER_RULES
from rnnkit.tasks.serving import Endpoint, Field, RequestError
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.deprecated import old_json_keys
from rnnkit.training.decode import error_rates, evaluate_pairs, score, score_speech, transcribe
from rnnkit.training.plots import plot_alignment
from rnnkit.training.report import figure_html
from rnnkit.training.run_config import read_run, run_task
from rnnkit.training.runs import load_weights


class CTCTask(Task):
    """``--task ctc``: a transcript for audio by CTC, the recogniser, best-path or prefix beam decoding."""

    name = "ctc"
    summary = "ctc (a transcript for audio, unaligned)"
    model_config = EncoderConfig
    data_config = SpeechConfig
    rules = {**ENCODER_RULES,
             "label_smoothing": (lambda c: False, "--task lm, classify, tag or seq2seq (CTC's loss sums over "
                                                  "alignments, not over one label a step)"),
             "time_mask_width": (lambda c: c.data.time_masks > 0, "--time-masks 1 or more"),
             "freq_mask_width": (lambda c: c.data.freq_masks > 0, "--freq-masks 1 or more"),
             "noise_kind": (lambda c: c.data.noise_snr is not None, "--noise-snr LO,HI")}
    eval_options = frozenset({"beam_size", "lm", "lm_weight", "insertion_bonus"})
    predict_options = eval_options | {"posteriorgram"}

    def token_kinds(self, choice) -> set[str]:
        return {"none"}  # audio, read as vectors

    def decide(self, data_cfg):
        return data_cfg, []  # the sample rate is the first file's (rnnkit.data.SpeechData)

    # -- data and model --------------------------------------------------------------------------

    def read_data(self, config, run=None, spell=False):
        if spell:
            raise ConfigError(CHAR_FEATURES_NEED_WORDS)
        config = self.own(config)
        return SpeechData.from_file(config.path, config, *((run.target_tokenizer, run.tokenizer) if run else ()))

    def build_model(self, model_cfg, tokenizer, labels=None, target_tokenizer=None):
        # the transcripts' characters and CTC's blank
        return CTCRecognizer(tokenizer.num_features, target_tokenizer.vocab_size + 1, **to_dict(model_cfg))

    def unit_of(self, data) -> str:
        return "utterances"

    def describe(self, data) -> str:
        skipped = sum(getattr(data, split).skipped for split in ("train", "val", "test"))
        return (f"{data.tokenizer.num_features} features a step -> {data.target_tokenizer.vocab_size} characters"
                + (f", {skipped} utterances skipped: transcript too long for the audio" if skipped else ""))

    # -- training --------------------------------------------------------------------------------

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        if not len(getattr(data, split)):
            return {}
        decoded = score_speech(model, data, split, group=group)  # best path
        return {**evaluate_pairs(model, data.eval_batches(split), endings=False, group=group),
                **{k: decoded[k] for k in ("token_error_rate", "sequence_error_rate")}}

    criterion_name = "token_error_rate"
    metrics = ("loss", "perplexity", "token_error_rate", "sequence_error_rate")

    def criterion(self, metrics: dict) -> float:
        """The transcripts' token error rate (as for seq2seq, the loss can rise while they improve)."""
        return metrics["token_error_rate"]

    def next_step(self, out) -> str:
        return f"score the decoded outputs with: rnnkit eval {out}"

    # -- commands --------------------------------------------------------------------------------

    def export_graphs(self, model, run):
        """The encoder and its output layer: features (B, T, I) and lengths -> log-probabilities (B, T, V)."""
        log_probs = Port("log_probs", "float32", ("B", "T", model.num_labels), "per-frame log-probabilities, the "
                         "blank at 0; best path: argmax per frame, merge repeats, drop blanks")
        return [Scores(model).graph("ctc", log_probs, "per-frame label log-probabilities of padded utterances",
                                    num_features=model.num_features)], {}

    def decoding(self, request) -> Fusion:
        if request.lm is None and (request.lm_weight is not None or request.insertion_bonus is not None):
            raise ConfigError("--lm-weight and --insertion-bonus shape the fusion with a language model: "
                              "add --lm RUN or drop them")
        return Fusion(request.beam_size or 1, request.lm, 0.5 if request.lm_weight is None else request.lm_weight,
                      request.insertion_bonus or 0.0).check()

    @staticmethod
    def _scorer(fusion: Fusion, target_tokenizer, device):
        """The language model of ``fusion.lm`` (a run folder) over the transcripts' characters, or None."""
        if not fusion.lm:
            return None
        lm_task = LanguageModelTask()
        task = run_task(fusion.lm)
        if task != lm_task.name:
            raise ConfigError(f"--lm {fusion.lm} is a {task} run; give a language model's run folder")
        run = read_run(fusion.lm, lambda name: lm_task.configs())
        lm = load_weights(lm_task.build_from(run), fusion.lm, engines=run.engines).to(device)
        return LanguageModelScorer(lm, run.tokenizer, target_tokenizer)

    def evaluate(self, run, model, doc, request) -> int:
        """Loss, token (digit, character) and sequence (whole-transcript) error rates on a split or a manifest."""
        fusion, path, split, as_json = self.decoding(request), request.path, request.split or "val", request.json
        data_cfg = doc.data
        features, target = doc.tokenizer, doc.target_tokenizer
        if path:
            whole = dataclasses.replace(data_cfg, val_path=None, test_path=None, val_fraction=0.0, test_fraction=0.0)
            data, split, source = SpeechData.from_file(path, whole, target, features), "train", path
        else:
            data, source = SpeechData.from_file(data_cfg.path, data_cfg, target, features), f"{data_cfg.path} ({split})"
        part = getattr(data, split)
        if not len(part):
            raise DataError(f"{source} holds no utterances to evaluate; give a manifest as PATH")
        result = evaluate_pairs(model, data.eval_batches(split), endings=False)
        metrics = score_speech(model, data, split, fusion.beam_size, self._scorer(fusion, target, _device(model)),
                               fusion.lm_weight, fusion.insertion_bonus, progress=not as_json and sys.stderr.isatty())
        decoding = "best path" if fusion.beam_size == 1 else f"prefix beam {fusion.beam_size}"
        if fusion.lm:
            decoding += f", LM {fusion.lm} weight {fusion.lm_weight:g} bonus {fusion.insertion_bonus:g}"
        result.update(token_error_rate=metrics["token_error_rate"], sequence_error_rate=metrics["sequence_error_rate"],
                      utterances=len(part), skipped=part.skipped, decoding=decoding)
        if as_json:
            print(json.dumps({"source": str(source), **result, **old_json_keys(result)}))
            return 0
        print(f"{source}: {len(part):,} utterances ({part.skipped} skipped: transcript too long), "
              f"decoding {result['decoding']}\nloss {result['loss']:.4f} nats/label | {error_rates(result)}")
        return 0


    def predict(self, run, model, doc, request) -> int:
        """Transcribe a wav file or the audio of a manifest; ``path<TAB>transcript`` lines out,
        a manifest's own transcripts scored on stderr."""
        fusion = self.decoding(request)
        path, output, plot = request.input, request.out, request.posteriorgram
        features = doc.tokenizer
        if Path(path).suffix.lower() == ".wav":
            items, gold = [(Path(path), None)], None
        else:
            items = read_manifest(path)
            gold = [t for _, t in items]
        inputs = [features.read(p) for p, _ in items]
        target = doc.target_tokenizer
        scorer = self._scorer(fusion, target, _device(model))
        texts, posteriors = transcribe(model, inputs, target, fusion.beam_size, scorer,
                                       fusion.lm_weight, fusion.insertion_bonus, posteriors=bool(plot),
                                       progress=sys.stderr.isatty())
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
        try:
            for (p, _), text in zip(items, texts):
                out.write(f"{p}\t{text}\n")
        finally:
            if output:
                out.close()
        if gold:
            metrics = score(texts, [[t] for t in gold], "char")
            print(f"{path}: {len(gold):,} utterances with transcripts; {error_rates(metrics)}", file=sys.stderr)
        if plot:
            rows = ["blank"] + [target.decode([k]) for k in range(target.vocab_size)]
            step_ms = 10 * features.frame_stack
            plot_alignment(posteriors[0].T.numpy(), rows, [f"{t * step_ms}" for t in range(len(posteriors[0]))],
                           Path(plot), title=f"{items[0][0].name}: {texts[0]!r}", row_label="label",
                           column_label=f"time (ms; a step is {step_ms} ms)")
        return 0

    def endpoints(self, model, run, limits):
        """``transcribe``: a mono PCM wav at the run's sample rate, sent base64-encoded in the JSON (so
        one body limit bounds it), transcribed as `rnnkit predict RUN FILE.wav` transcribes it (no
        language-model fusion: that would name a run folder)."""
        features, target = run.tokenizer, run.target_tokenizer

        def transcribe_wav(values) -> dict:
            try:
                data = base64.b64decode(values["wav"], validate=True)
            except binascii.Error:
                raise RequestError("'wav' is not base64; send the wav file's bytes base64-encoded") from None
            # the wav reader reads a file: the bytes go to one of ours, which the request does not name
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "request.wav"
                path.write_bytes(data)
                try:
                    inputs = [features.read(path)]
                except DataError as e:
                    raise RequestError(str(e).replace(str(path), "'wav'").replace("request.wav", "in.wav"),
                                       422) from None
            texts, _ = transcribe(model, inputs, target, values["beam_size"], None, 0.0, 0.0)
            return {"transcript": texts[0]}

        fields = {"wav": Field("base64", f"a mono PCM wav at {features.sample_rate} Hz, base64", required=True,
                               low=1),
                  "beam_size": Field("int", "1: best path; more: prefix beam search", 1, low=1, high=64)}
        return {"transcribe": Endpoint("the transcript of a recording", fields, transcribe_wav, limits=limits)}

    # -- rnnkit report -------------------------------------------------------------------------------

    def report_sections(self, model, doc, data, text, chars, missing):
        super().report_sections(model, doc, data, text, chars, missing)
        if data is None:
            return []
        part = data.val if len(data.val) else data.train
        target = doc.target_tokenizer
        texts, posteriors = transcribe(model, list(part.examples.ids[:3]), target, posteriors=True)
        step_ms = 10 * doc.tokenizer.frame_stack
        rows = ["blank"] + [target.decode([k]) for k in range(target.vocab_size)]
        return [("CTC posteriorgrams", "".join(
            figure_html(plot_alignment(p.T.numpy(), rows, [f"{t * step_ms}" for t in range(len(p))], None,
                                       title=f"{truth!r} heard as {text!r}", row_label="label",
                                       column_label=f"time (ms; a step is {step_ms} ms)"))
            for text, p, truth in zip(texts, posteriors, part.transcripts)))]


def _device(model) -> torch.device:
    return next(model.parameters()).device


def run_digits(recordings: str, out: str, seed: int, num_train: int, num_test: int, held_out_speaker: str | None,
               pause_fill: str = "noise"):
    """``rnnkit digits``: write spoken digit strings' train/test manifests to ``out``, print what it wrote; 0."""
    counts = build_digit_strings(Path(recordings), Path(out), seed=seed, num_train=num_train, num_test=num_test,
                                 held_out_speaker=held_out_speaker, pause_fill=pause_fill)
    print(f"{out}: " + ", ".join(f"{n:,} {split} utterances ({split}.tsv)" for split, n in counts.items()) +
          f"; train with: rnnkit train {Path(out) / 'train.tsv'} --task ctc --test-path {Path(out) / 'test.tsv'}")
    return 0
