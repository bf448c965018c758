"""``rnnkit eval`` and ``rnnkit predict`` for CTC runs (transcribe audio and
score the transcripts), and ``rnnkit digits`` (spoken digit strings from FSDD)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

from rnnkit.data.audio import build_digit_strings, read_manifest
from rnnkit.data.speech import SpeechData
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.ctc import LanguageModelScorer
from rnnkit.training.decode import evaluate_pairs, score, score_speech, transcribe
from rnnkit.training.plots import plot_alignment


@dataclasses.dataclass
class Fusion:
    """How to decode: prefix beam width (1: best path), and shallow fusion with a language model run."""

    beam_size: int = 1
    lm: str | None = None
    lm_weight: float = 0.5
    insertion_bonus: float = 0.0

    def check(self) -> "Fusion":
        if self.beam_size < 1:
            raise ConfigError(f"--beam-size must be >= 1; got {self.beam_size}")
        if self.lm and self.beam_size == 1:
            raise ConfigError("--lm fuses a language model into the prefix beam search: add --beam-size K (8 is "
                              "usual)")
        return self

    def scorer(self, target_tokenizer, device):
        if not self.lm:
            return None
        from rnnkit.training import load_run

        lm, lm_tokenizer, doc = load_run(self.lm, device)
        if doc["data"].task != "lm":
            raise ConfigError(f"--lm {self.lm} is a {doc['data'].task} run; give a language model's run folder")
        return LanguageModelScorer(lm, lm_tokenizer, target_tokenizer)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def run_eval(model, doc: dict, path: str | None, split: str, fusion: Fusion, as_json: bool) -> int:
    """Loss, token (digit, character) error rate and string accuracy on a split or a manifest."""
    data_cfg = doc["data"]
    features, target = doc["tokenizer"], doc["target_tokenizer"]
    if path:
        whole = dataclasses.replace(data_cfg, val_path=None, test_path=None, val_fraction=0.0, test_fraction=0.0)
        data, split, source = SpeechData.from_file(path, whole, target, features), "train", path
    else:
        data, source = SpeechData.from_file(data_cfg.path, data_cfg, target, features), f"{data_cfg.path} ({split})"
    part = getattr(data, split)
    if not len(part):
        raise DataError(f"{source} holds no utterances to evaluate; give a manifest as PATH")
    result = evaluate_pairs(model, data.eval_batches(split), endings=False)
    metrics = score_speech(model, data, split, fusion.beam_size, fusion.scorer(target, _device(model)),
                           fusion.lm_weight, fusion.insertion_bonus, progress=not as_json and sys.stderr.isatty())
    decoding = "best path" if fusion.beam_size == 1 else f"prefix beam {fusion.beam_size}"
    if fusion.lm:
        decoding += f", LM {fusion.lm} weight {fusion.lm_weight:g} bonus {fusion.insertion_bonus:g}"
    result.update(token_error_rate=metrics["token_error_rate"], string_accuracy=1 - metrics["sequence_error_rate"],
                  utterances=len(part), skipped=part.skipped, decoding=decoding)
    if as_json:
        print(json.dumps({"source": str(source), **result}))
        return 0
    print(f"{source}: {len(part):,} utterances ({part.skipped} skipped: transcript too long), "
          f"decoding {result['decoding']}\nloss {result['loss']:.4f} nats/label | "
          f"label error rate {100 * result['token_error_rate']:.2f}% | "
          f"whole-transcript accuracy {100 * result['string_accuracy']:.2f}%")
    return 0


def run_predict(model, doc: dict, path: str, output: str | None, fusion: Fusion, plot: str | None) -> int:
    """Transcribe a wav file or the audio of a manifest; ``path<TAB>transcript`` lines out,
    a manifest's own transcripts scored on stderr."""
    features = doc["tokenizer"]
    if Path(path).suffix.lower() == ".wav":
        items, gold = [(Path(path), None)], None
    else:
        items = read_manifest(path)
        gold = [t for _, t in items]
    inputs = [features.read(p) for p, _ in items]
    target = doc["target_tokenizer"]
    texts, posteriors = transcribe(model, inputs, target, fusion.beam_size, fusion.scorer(target, _device(model)),
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
        print(f"{path}: {len(gold):,} utterances with transcripts; label error rate "
              f"{100 * metrics['token_error_rate']:.2f}% | whole-transcript accuracy "
              f"{100 * (1 - metrics['sequence_error_rate']):.2f}%", file=sys.stderr)
    if plot:
        rows = ["blank"] + [target.decode([k]) for k in range(target.vocab_size)]
        step_ms = 10 * features.frame_stack
        plot_alignment(posteriors[0].T.numpy(), rows, [f"{t * step_ms}" for t in range(len(posteriors[0]))],
                       Path(plot), title=f"{items[0][0].name}: {texts[0]!r}", row_label="label",
                       column_label=f"time (ms; a step is {step_ms} ms)")
    return 0


def run_digits(recordings: str, out: str, seed: int, num_train: int, num_test: int, held_out_speaker: str | None):
    counts = build_digit_strings(Path(recordings), Path(out), seed=seed, num_train=num_train, num_test=num_test,
                                 held_out_speaker=held_out_speaker)
    print(f"{out}: " + ", ".join(f"{n:,} {split} utterances ({split}.tsv)" for split, n in counts.items()) +
          f"; train with: rnnkit train {Path(out) / 'train.tsv'} --task ctc --test-path {Path(out) / 'test.tsv'}")
    return 0
