"""Utterances and their transcripts for a CTC speech recogniser (``task="ctc"``),
in padded, length-bucketed batches.

Files: TSV manifests, ``audio path<TAB>transcript`` a line
(:func:`rnnkit.data.audio.read_manifest`); ``val_path`` and ``test_path`` are
manifests too, else validation and test are a random split of the training
manifest by ``val_fraction`` / ``test_fraction``, the same in every run (seed 0).

Two objects turn files into model inputs and outputs, and both go into the
run folder's ``config.json``:

- ``tokenizer``, a :class:`rnnkit.data.audio.SpeechFeatures` (``kind = "speech"``): samples ->
  normalised features. Log-mel features (``mel_bands`` M, 25 ms windows every
  10 ms), ``frame_stack`` k frames joined into one step, then
  z = (f - mean) / std per feature, mean and std from the training split only.
  It plays the part a tokenizer plays for text (as a series'
  :class:`rnnkit.data.series.SeriesScaler` does).
- ``target_tokenizer``, a :class:`rnnkit.data.chars.CharTokenizer` of the
  training transcripts (no unknown character). A CTC label id is its token id
  + 1, because id 0 is CTC's blank (:data:`rnnkit.models.ctc_search.BLANK`):
  :func:`label_ids` and :func:`label_text` convert.

A batch is a :class:`rnnkit.data.batches.PairBatch` ``(x, x_lengths, y, y_lengths)``: features x (B, T', F) float32
padded with 0 after each utterance's T' steps (F = k M), x_lengths (B,), label
ids y (B, U) padded with ``IGNORE`` (-100), y_lengths (B,).

CTC can only emit a transcript of U labels from T' steps if T' >= U + r, r the
number of adjacent repeated labels (a repeat needs a blank between its two
copies). A longer transcript is refused (``long_transcripts="refuse"``: an
error naming the manifest line) or dropped and counted
(``"skip"``: each split's ``skipped``), never silently, so the loss is always
finite.

Training can augment its utterances afresh each epoch (``speed_perturb``, ``noise_snr`` on the
waveform, which is then kept in memory, ``vtlp`` in the filterbank that reads it; SpecAugment's
``time_masks`` and ``freq_masks`` on the features: :mod:`rnnkit.data.augment`); validation, test,
``eval`` and ``predict`` read the clean features. ``utterance_norm`` normalises each band over its
utterance before the z-scoring, everywhere (the run's features remember it).

Features are computed once, at load, and kept in memory as float32 tensors:
a few thousand short utterances (3,000 of 2 s at 40 bands are ~100 MB).
"""

from __future__ import annotations

import dataclasses
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import DataConfig, check_at_least, check_choice, setting
from rnnkit.data.audio import SpeechFeatures, raw_features, read_manifest, read_wav
from rnnkit.data.augment import Augmentation, AugmentedBatcher, parse_numbers
from rnnkit.data.batches import PairBatch
from rnnkit.data.chars import CharTokenizer
from rnnkit.data.files import file_digest, read_text
from rnnkit.data.sequences import IGNORE, BucketBatcher, Examples
from rnnkit.errors import ConfigError, DataError


@dataclass
class SpeechConfig(DataConfig):
    """:class:`rnnkit.config.DataConfig` and how audio becomes features, and what a transcript too
    long for its audio gets (the data settings of ``--task ctc``)."""

    task: str = setting("what to learn, a name in rnnkit.tasks.TASKS", default="ctc")
    sample_rate: int | None = setting("ctc: the audio's sample rate in Hz; every wav must have it (default: the "
                                      "first training file's)", default=None)
    mel_bands: int = setting("ctc: log-mel features per frame (25 ms windows every 10 ms)", default=40)
    frame_stack: int = setting("ctc: join this many consecutive frames into one step, to shorten the "
                               "sequences (Sak et al. 2015)", default=1)
    long_transcripts: str = setting("ctc: what to do with a transcript longer than its audio's frames can "
                                    "emit: refuse (an error naming it) or skip (with a count)", default="refuse")

    utterance_norm: bool = setting("ctc: normalise each mel band's mean and variance over each utterance, in "
                                   "training and evaluation alike (a feature, not an augmentation)", default=False)
    time_masks: int = setting("ctc: SpecAugment time masks per training utterance (Park et al. 2019); "
                              "never in evaluation", default=0)
    time_mask_width: int = setting("ctc: a time mask's widest span in frames (10 ms each), drawn in [0, W]",
                                   default=20)
    freq_masks: int = setting("ctc: SpecAugment frequency masks per training utterance; never in evaluation",
                              default=0)
    freq_mask_width: int = setting("ctc: a frequency mask's widest span in mel bands, drawn in [0, W]", default=8)
    speed_perturb: str | None = setting("ctc: comma-separated speed factors, one drawn per training utterance "
                                        "and epoch, the waveform resampled by it (Ko et al. 2015), e.g. "
                                        "0.9,1.0,1.1; never in evaluation", default=None)
    noise_snr: str | None = setting("ctc: mix noise into each training utterance at an SNR in dB drawn "
                                    "uniformly from LO,HI (or one value); never in evaluation", default=None)
    noise_kind: str = setting("ctc: the noise --noise-snr mixes in: white (Gaussian) or speech (another "
                              "training utterance)", default="white")
    vtlp: str | None = setting("ctc: vocal tract length perturbation (Jaitly & Hinton 2013): the mel "
                               "filterbank's frequencies warped by a factor drawn uniformly from LO,HI per training "
                               "utterance and epoch, e.g. 0.9,1.1; never in evaluation", default=None)

    def __post_init__(self):
        super().__post_init__()
        self.augmentation  # parses --speed-perturb and --noise-snr: a bad value is refused now
        check_at_least(self, "sample_rate", 1, optional=True)
        for name in ("time_masks", "time_mask_width", "freq_masks", "freq_mask_width"):
            check_at_least(self, name, 0)
        check_choice(self, "noise_kind", ("white", "speech"))
        check_at_least(self, "mel_bands", 1)
        check_at_least(self, "frame_stack", 1)
        check_choice(self, "long_transcripts", ("refuse", "skip"))


    @property
    def augmentation(self) -> Augmentation:
        """The training-time augmentation these settings ask for (:mod:`rnnkit.data.augment`)."""
        speeds = parse_numbers(self.speed_perturb, "speed_perturb")
        if any(not 0.5 <= c <= 2.0 for c in speeds):
            raise ConfigError(f"--speed-perturb: expected factors in [0.5, 2] such as 0.9,1.0,1.1; "
                              f"got {self.speed_perturb!r}")
        snr = parse_numbers(self.noise_snr, "noise_snr", (1, 2))
        if snr and snr[0] > snr[-1]:
            raise ConfigError(f"--noise-snr: expected LO,HI with LO <= HI (dB), such as 10,30; got {self.noise_snr!r}")
        vtlp = parse_numbers(self.vtlp, "vtlp", (1, 2))
        if any(not 0.7 <= a <= 1.3 for a in vtlp) or (vtlp and vtlp[0] > vtlp[-1]):
            raise ConfigError(f"--vtlp: expected LO,HI with 0.7 <= LO <= HI <= 1.3, such as 0.9,1.1; got {self.vtlp!r}")
        return Augmentation(self.time_masks, self.time_mask_width, self.freq_masks, self.freq_mask_width,
                            speeds, snr, self.noise_kind, vtlp)


def label_ids(tokenizer: CharTokenizer, text: str, what: str = "transcript") -> np.ndarray:
    """CTC label ids (U,) int64 of a transcript: token id + 1 (0 is the blank)."""
    return tokenizer.encode(text, what=what) + 1


def label_text(tokenizer: CharTokenizer, labels) -> str:
    """The transcript of CTC label ids (no blanks): the inverse of :func:`label_ids`."""
    return tokenizer.decode(np.asarray(labels, dtype=np.int64) - 1)


def frames_needed(transcript: str) -> int:
    """The fewest steps a CTC alignment of ``transcript`` needs: U + the number
    of adjacent repeated labels (each repeat needs a blank between)."""
    return len(transcript) + sum(a == b for a, b in zip(transcript, transcript[1:]))


def collate_speech(features: list[torch.Tensor], labels: list[np.ndarray]) -> PairBatch:
    """Pad utterances into one :class:`PairBatch` (x, x_lengths, y, y_lengths); see the module docstring."""
    x_lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
    y_lengths = torch.tensor([len(y) for y in labels], dtype=torch.long)
    x = torch.zeros(len(features), int(x_lengths.max()), features[0].shape[1])  # (B, T', F)
    y = torch.full((len(labels), int(y_lengths.max())), IGNORE, dtype=torch.long)  # (B, U)
    for b, (f, t) in enumerate(zip(features, labels)):
        x[b, :len(f)] = f
        y[b, :len(t)] = torch.from_numpy(t)
    return PairBatch(x, x_lengths, y, y_lengths)


@dataclass
class SpeechSplit:
    """One split: its utterances' audio files and transcripts, their features
    and label ids (``examples.ids`` the features (T', F), ``examples.labels``
    the label ids (U,)), and how many utterances were skipped as too long."""

    audio: list[Path]
    transcripts: list[str]
    examples: Examples
    skipped: int = 0
    waveforms: list[torch.Tensor] | None = None  # (N,) each, kept for training's waveform augmentation

    def __len__(self) -> int:
        return len(self.transcripts)


@dataclass
class SpeechData:
    """Features and transcripts of a CTC task, split. ``tokenizer`` is the
    :class:`SpeechFeatures` (input side), ``target_tokenizer`` the
    :class:`CharTokenizer` of the transcripts (label id = token id + 1).
    ``SpeechData.from_file("digits/train.tsv", SpeechConfig())``."""

    tokenizer: SpeechFeatures
    target_tokenizer: CharTokenizer
    train: SpeechSplit
    val: SpeechSplit
    test: SpeechSplit
    config: SpeechConfig
    digest: str = ""

    @property
    def num_features(self) -> int:
        """F, the width of a feature vector (the :class:`SpeechFeatures`')."""
        return self.tokenizer.num_features

    @property
    def vocab_size(self) -> int:
        """CTC labels, the blank included: the characters + 1."""
        return self.target_tokenizer.vocab_size + 1

    def batcher(self, seed: int) -> BucketBatcher:
        """Training's batches: augmented afresh each epoch when the settings ask (never evaluation's)."""
        augmentation = self.config.augmentation
        if augmentation.active:
            return AugmentedBatcher(self.train.examples, self.config.batch_size, seed, augmentation, self.tokenizer,
                                    self.train.waveforms, collate_speech)
        return BucketBatcher(self.train.examples, self.config.batch_size, seed, collate=collate_speech)

    def eval_batches(self, split: str = "val", batch_size: int = 64):
        """Batches of a split in manifest order (no shuffling), for evaluation."""
        examples = getattr(self, split).examples
        if not len(examples):
            return iter(())
        return BucketBatcher(examples, batch_size, 0, shuffle=False, collate=collate_speech).batches(0)

    @classmethod
    def from_file(cls, path: str | Path, config: SpeechConfig, tokenizer: CharTokenizer | None = None,
                  features: SpeechFeatures | None = None) -> "SpeechData":
        """Read the manifests, compute the features, split and check them; a
        given ``tokenizer`` (the transcripts') and ``features`` (a resumed
        run's) are used as they are, else fitted on the training split."""
        config = dataclasses.replace(config, path=str(path))
        if features is not None:  # a resumed run reads its audio as it was trained to
            for name in ("sample_rate", "mel_bands", "frame_stack", "utterance_norm"):
                if getattr(config, name) not in (None, getattr(features, name)):
                    raise ConfigError(f"{name} is {getattr(config, name)} but the run's features were "
                                      f"computed with {getattr(features, name)}; pass --{name.replace('_', '-')} "
                                      f"{getattr(features, name)} or train a new run")
            config = dataclasses.replace(config, mel_bands=features.mel_bands, frame_stack=features.frame_stack,
                                         utterance_norm=features.utterance_norm)
        rate = config.sample_rate or (features.sample_rate if features else None) or _first_rate(path)
        config = dataclasses.replace(config, sample_rate=rate)  # a saved run knows the rate it reads
        manifests = {"train": path, "val": config.val_path or path, "test": config.test_path or path}
        every = _read(path)
        fractions = (0.0 if config.val_path else config.val_fraction,
                     0.0 if config.test_path else config.test_fraction)
        order = np.random.default_rng(0).permutation(len(every))
        n_val, n_test = (int(round(len(every) * f)) for f in fractions)
        index = {"train": order[n_val + n_test:], "val": order[:n_val], "test": order[n_val:n_val + n_test]}
        utterances = {split: [every[i] for i in np.sort(part)] for split, part in index.items()}
        for split, given in (("val", config.val_path), ("test", config.test_path)):
            if given:
                utterances[split] = _read(given)

        keep_waves = config.augmentation.on_waveform
        kept, skipped, waves = {}, {}, []  # split -> [(line, audio, transcript, raw features (T', F))], count
        for split, items in utterances.items():
            kept[split], skipped[split] = [], 0
            for line, audio, text in items:
                samples = read_wav(audio, rate)  # (N,)
                f = raw_features(samples, rate, config.mel_bands, config.frame_stack, config.utterance_norm)  # (T', F)
                need = frames_needed(text)
                if len(f) >= need:
                    kept[split].append((line, audio, text, f))
                    if keep_waves and split == "train":
                        waves.append(torch.from_numpy(samples))
                elif config.long_transcripts == "skip":
                    skipped[split] += 1
                else:
                    raise DataError(f"{manifests[split]} line {line}: its transcript needs {need} steps for CTC "
                                    f"({len(text)} labels and their repeats) but its audio gives {len(f)} at "
                                    f"--frame-stack {config.frame_stack}; lower --frame-stack, or pass "
                                    f"--long-transcripts skip")
        if not kept["train"]:
            raise DataError(f"{path}: no training utterances are left after the split"
                            f"{' and the skipped ones' if skipped['train'] else ''}; lower --val-fraction"
                            f"{' or --frame-stack' if skipped['train'] else ''}")

        if tokenizer is None:
            tokenizer = CharTokenizer.fit("".join(text for _, _, text, _ in kept["train"]), unk=False)
        if features is None:
            features = SpeechFeatures.fit([f for *_, f in kept["train"]], config.mel_bands, config.frame_stack,
                                          rate, config.utterance_norm)
        splits = {}
        for split, items in kept.items():
            _check_characters(tokenizer, items, manifests[split])
            where = str(manifests[split])
            examples = Examples([features.normalise(f) for *_, f in items],
                                [label_ids(tokenizer, text, where) for _, _, text, _ in items])
            splits[split] = SpeechSplit([a for _, a, _, _ in items], [t for _, _, t, _ in items], examples,
                                        skipped[split], waves if split == "train" and keep_waves else None)
        digest = file_digest(path, config.val_path, config.test_path)
        return cls(features, tokenizer, splits["train"], splits["val"], splits["test"], config, digest)


def _read(path: str | Path) -> list[tuple[int, Path, str]]:
    """(manifest line, audio path, transcript) of each utterance of a manifest
    (:func:`read_manifest` skips blank lines, and so do the line numbers here)."""
    numbers = [n for n, line in enumerate(read_text(path, "char").splitlines(), start=1) if line.strip()]
    return [(n, audio, text) for n, (audio, text) in zip(numbers, read_manifest(path))]


def _first_rate(path: str | Path) -> int:
    """The sample rate of the manifest's first audio file (read first, for its errors)."""
    audio = read_manifest(path)[0][0]
    read_wav(audio)
    with wave.open(str(audio), "rb") as w:
        return w.getframerate()


def _check_characters(tokenizer: CharTokenizer, items, manifest) -> None:
    """Transcripts may only use the training transcripts' characters: CTC has no unknown label."""
    known = {chr(c) for c in tokenizer.code_points.tolist()}
    first: dict[str, int] = {}  # unseen character -> its first manifest line
    for line, _, text, _ in items:
        for ch in set(text) - known:
            first.setdefault(ch, line)
    if first:
        chars = sorted(first, key=first.get)
        shown = ", ".join(f"{c!r} (line {first[c]})" for c in chars[:10]) + (", ..." if len(chars) > 10 else "")
        raise DataError(f"{manifest} has {len(chars)} character(s) the training transcripts lack: {shown}; "
                        f"remove them, or train on utterances that use them")
