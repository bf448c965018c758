"""Training-time augmentation of speech for a CTC recogniser, so that it hears
more voices than its training speakers have: speed perturbation and noise
mixing on the waveform, SpecAugment's masks on the features. Evaluation and
prediction never see any of them (:class:`AugmentedBatcher` makes training's
batches only). Per-utterance normalisation is a feature, not an augmentation:
it lives in :func:`rnnkit.data.audio.raw_features` and applies everywhere.

Shapes: N samples, T frames, M mel bands, k frames stacked into one step,
T' = ceil(T / k) steps, F = k M features a step.

- **Speed perturbation** (Ko et al. 2015): the waveform resampled by a factor
  c drawn from a list (``0.9,1.0,1.1``) and played at the original rate:
  N -> round(N / c) samples, tempo and pitch both times c.
- **Noise mixing**: x' = x + g n, n white Gaussian noise or another training
  utterance (tiled to length from a random start), g chosen so that
  10 log10(mean(x^2) / mean((g n)^2)) is an SNR drawn uniformly in [lo, hi] dB.
- **Vocal tract length perturbation** (Jaitly & Hinton 2013): the mel
  filterbank's frequency axis warped by a factor alpha drawn uniformly from
  [lo, hi] (``0.9,1.1``), :func:`rnnkit.data.audio.warp_frequencies`: the
  formants move as a vocal tract alpha times shorter would put them, the
  tempo stays (speed perturbation changes both).
- **SpecAugment** (Park et al. 2019), on the normalised log-mel features:
  ``time_masks`` times, frames [t0, t0 + t) with t uniform in [0, W_T] and t0
  uniform in [0, T - t] set to 0; ``freq_masks`` times, bands [f0, f0 + f)
  with f uniform in [0, W_F], f0 in [0, M - f], set to 0 in every frame. 0 is
  the training mean after the z-scoring. Time warping is left out (the paper
  found it the least useful).

A batch's draws come from a generator seeded by (seed, epoch, batch position):
the same run makes the same batches, a resumed run continues them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data.sequences import BucketBatcher, Examples
from rnnkit.errors import ConfigError


def parse_numbers(text: str | None, name: str, count: tuple[int, int] = (1, 64)) -> tuple[float, ...]:
    """``"0.9,1.0,1.1"`` -> (0.9, 1.0, 1.1); a ConfigError naming the flag unless ``count`` allows their number."""
    if text is None:
        return ()
    try:
        values = tuple(float(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        values = ()
    if not count[0] <= len(values) <= count[1]:
        raise ConfigError(f"--{name.replace('_', '-')}: expected {count[0]} to {count[1]} comma-separated numbers; "
                          f"got {text!r}")
    return values


def speed_perturb(samples: torch.Tensor, factor: float) -> torch.Tensor:
    """(N,) -> (round(N / factor),): the waveform played ``factor`` times faster, y_j = x(j c) with x
    interpolated linearly between samples (no anti-alias filter: at factors near 1 it loses little)."""
    if factor == 1.0:
        return samples
    length = max(1, round(len(samples) / factor))
    position = (torch.arange(length, dtype=torch.float64) * factor).clamp(max=len(samples) - 1)  # (N / c,)
    left = position.floor().long()
    right = (left + 1).clamp(max=len(samples) - 1)
    frac = (position - left).float()
    return samples[left] * (1 - frac) + samples[right] * frac


def mix_noise(samples: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """x + g n with g such that the signal-to-noise ratio of the mix is ``snr_db``:
    10 log10(mean(x^2) / mean((g n)^2)) = snr_db. ``noise`` (N,) as long as ``samples``;
    a silent signal or noise is returned unchanged (no ratio to keep)."""
    signal_power, noise_power = samples.double().pow(2).mean(), noise.double().pow(2).mean()
    if signal_power == 0 or noise_power == 0:
        return samples
    gain = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (samples.double() + gain * noise.double()).float()


def spec_augment(features: torch.Tensor, mel_bands: int, rng: np.random.Generator, time_masks: int = 0,
                 time_mask_width: int = 0, freq_masks: int = 0, freq_mask_width: int = 0) -> torch.Tensor:
    """SpecAugment's time and frequency masks on stacked features (T', k M) -> a masked copy (T', k M).

    The k frames of a step are unstacked to (T' k, M), so a time mask covers frames (10 ms each) and a
    frequency mask the same bands of every frame; masked values are 0 (the mean, after z-scoring).
    """
    steps, width = features.shape
    k = width // mel_bands
    frames = features.reshape(steps * k, mel_bands).clone()  # (T' k, M)
    for _ in range(time_masks):
        t = int(rng.integers(0, min(time_mask_width, len(frames)) + 1))
        t0 = int(rng.integers(0, len(frames) - t + 1))
        frames[t0:t0 + t] = 0.0
    for _ in range(freq_masks):
        f = int(rng.integers(0, min(freq_mask_width, mel_bands) + 1))
        f0 = int(rng.integers(0, mel_bands - f + 1))
        frames[:, f0:f0 + f] = 0.0
    return frames.reshape(steps, width)  # (T', k M)


@dataclass(frozen=True)
class Augmentation:
    """What :class:`AugmentedBatcher` does to a training utterance (the ``--task ctc`` settings of the
    same names, parsed): ``speed_factors`` () or the factors to draw from, ``noise_snr`` () or (lo, hi) dB,
    ``noise_kind`` white or speech (another training utterance), ``vtlp`` () or the warp's (lo, hi)."""

    time_masks: int = 0
    time_mask_width: int = 0
    freq_masks: int = 0
    freq_mask_width: int = 0
    speed_factors: tuple[float, ...] = ()
    noise_snr: tuple[float, ...] = ()
    noise_kind: str = "white"
    vtlp: tuple[float, ...] = ()  # () or (lo, hi): the warp factor's range

    @property
    def on_waveform(self) -> bool:
        """Whether the features must be computed again from the (perturbed) waveform."""
        return any(c != 1.0 for c in self.speed_factors) or bool(self.noise_snr) or bool(self.vtlp)

    @property
    def active(self) -> bool:
        """Whether any augmentation is on (a waveform change or a mask of non-zero width)."""
        return self.on_waveform or (self.time_masks > 0 and self.time_mask_width > 0) or \
            (self.freq_masks > 0 and self.freq_mask_width > 0)


class AugmentedBatcher(BucketBatcher):
    """:class:`BucketBatcher`'s batches of the training split, each utterance augmented afresh.

    ``examples`` are the clean normalised features (T', F) and label ids; ``waveforms`` the utterances'
    samples (N,) float32 (needed with speed perturbation or noise); ``features`` the run's
    :class:`rnnkit.data.audio.SpeechFeatures`, which turns a perturbed waveform into normalised features.
    An utterance that speed perturbation made too short for its transcript (fewer steps than CTC needs)
    keeps its clean features.
    """

    def __init__(self, examples: Examples, batch_size: int, seed: int, augmentation: Augmentation, features,
                 waveforms: list[torch.Tensor] | None, collate):
        super().__init__(examples, batch_size, seed, collate=collate)
        if augmentation.on_waveform and waveforms is None:
            raise ConfigError("speed perturbation and noise mixing need the training waveforms")
        self.augmentation, self.features, self.waveforms = augmentation, features, waveforms

    def augment(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        """Utterance ``i``'s features (T', F), augmented with draws from ``rng``."""
        a, clean = self.augmentation, self.examples.ids[i]
        x = clean
        if a.on_waveform:
            samples = self.waveforms[i]  # (N,)
            if a.speed_factors:
                samples = speed_perturb(samples, float(a.speed_factors[rng.integers(len(a.speed_factors))]))
            if a.noise_snr:
                snr = float(rng.uniform(a.noise_snr[0], a.noise_snr[-1]))
                samples = mix_noise(samples, self._noise(len(samples), i, rng), snr)
            # drawn after the others, so that runs without it make the batches they made before it existed
            warp = float(rng.uniform(a.vtlp[0], a.vtlp[-1])) if a.vtlp else 1.0
            x = self.features.transform(samples.numpy(), warp)  # (T'', F)
            labels = np.asarray(self.examples.labels[i])
            if len(x) < len(labels) + int((labels[1:] == labels[:-1]).sum()):  # CTC could not emit it
                x = clean
        return spec_augment(x, self.features.mel_bands, rng, a.time_masks, a.time_mask_width, a.freq_masks,
                            a.freq_mask_width)

    def _noise(self, length: int, i: int, rng: np.random.Generator) -> torch.Tensor:
        """(length,) noise: white Gaussian, or another training utterance tiled from a random start."""
        if self.augmentation.noise_kind == "white" or len(self.waveforms) < 2:
            return torch.from_numpy(rng.standard_normal(length).astype(np.float32))
        j = int(rng.integers(len(self.waveforms) - 1))
        other = self.waveforms[j + (j >= i)].numpy()  # any utterance but i
        start = int(rng.integers(len(other)))
        return torch.from_numpy(np.resize(np.roll(other, -start), length))

    def batches(self, epoch: int, start: int = 0):
        """As :meth:`BucketBatcher.batches`, each utterance augmented afresh, seeded by (seed, epoch, batch)."""
        for position, index in enumerate(self._order(epoch)[start:], start):
            rng = np.random.default_rng([self.seed, epoch, position])
            yield self.collate([self.augment(int(i), rng) for i in index], [self.examples.labels[i] for i in index])
