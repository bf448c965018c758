"""Audio input for a CTC speech recogniser: wav files, log-mel features, frame
stacking and TSV manifests (spoken digit strings from the Free Spoken Digit
Dataset are built in :mod:`rnnkit.data.digits`).

Shapes: N samples, T frames, F features per frame, M mel bands, K = n_fft // 2 + 1
frequency bins, k frames stacked into one.

Wav files are read with the standard library's ``wave`` module (mono PCM,
8-, 16- or 32-bit); features are computed with ``torch.stft``.

Every problem with a file is one line naming the file (and line) and the fix.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.files import read_text
from rnnkit.errors import CheckpointError, ConfigError, DataError

_SCALE = {1: 128.0, 2: 32768.0, 4: 2147483648.0}  # full scale of 8-, 16-, 32-bit PCM
_DTYPE = {1: np.uint8, 2: "<i2", 4: "<i4"}


def read_wav(path: str | Path, sample_rate: int | None = None) -> np.ndarray:
    """The samples of a mono PCM wav file, (N,) float32 in [-1, 1).

    8-bit (unsigned, centred on 128), 16- and 32-bit (signed) PCM are read and
    scaled by their full scale; 24-bit and float wav files are refused with the
    conversion to make. Given ``sample_rate``, a file at another rate is an error
    (it would silently shift every mel band): resample it first.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if p.is_dir():
        raise DataError(f"{path} is a directory; give a wav file")
    if p.stat().st_size == 0:
        raise DataError(f"{path} is empty; re-record or re-export it")
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except EOFError:
        raise DataError(f"{path} is cut short (incomplete wav header); re-export it") from None
    except wave.Error as e:
        raise DataError(f"{path} is not a PCM wav file the wave module reads ({e}); "
                        f"convert it, e.g. `sox {p.name} -b 16 -e signed-integer out.wav`") from None
    if channels != 1:
        raise DataError(f"{path} has {channels} channels; rnnkit reads mono wav: mix it down, "
                        f"e.g. `sox {p.name} -c 1 out.wav`")
    if width not in _SCALE:
        raise DataError(f"{path} is {8 * width}-bit; rnnkit reads 8-, 16- or 32-bit PCM: convert it, "
                        f"e.g. `sox {p.name} -b 16 out.wav`")
    if len(raw) < frames * width:
        raise DataError(f"{path} is truncated: its header says {frames} samples but it holds "
                        f"{len(raw) // width}; re-export it")
    if sample_rate is not None and rate != sample_rate:
        raise DataError(f"{path} is {rate} Hz but the model reads {sample_rate} Hz; resample it, "
                        f"e.g. `sox {p.name} -r {sample_rate} out.wav`")
    x = np.frombuffer(raw, dtype=_DTYPE[width]).astype(np.float64)  # (N,)
    if width == 1:
        x -= 128.0
    return (x / _SCALE[width]).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write (N,) float samples in [-1, 1] as a mono 16-bit PCM wav file (clipped)."""
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def hz_to_mel(f):
    """HTK mel scale: m = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`: f = 700 (10^(m / 2595) - 1)."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


VTLP_KNEE = 0.6  # of the Nyquist frequency: Jaitly & Hinton 2013's 4,800 Hz at 16 kHz


def warp_frequencies(freqs: np.ndarray, alpha: float, sample_rate: int) -> np.ndarray:
    """Vocal tract length perturbation's frequency map (Jaitly & Hinton 2013), piecewise linear:

        w(f) = alpha f                                         for f <= k min(alpha, 1) / alpha
        w(f) = N - (N - k min(alpha, 1)) / (N - k min(alpha, 1) / alpha) (N - f)   above,

    N the Nyquist frequency and k = VTLP_KNEE N: a factor alpha > 1 moves the formants up (a
    shorter vocal tract), < 1 down, and 0 and N stay where they are."""
    nyquist = sample_rate / 2
    knee = VTLP_KNEE * nyquist * min(alpha, 1.0)
    bend = knee / alpha
    f = np.asarray(freqs, dtype=np.float64)
    return np.where(f <= bend, alpha * f, nyquist - (nyquist - knee) / (nyquist - bend) * (nyquist - f))


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None, warp: float = 1.0) -> torch.Tensor:
    """Triangular mel filters, (M, K) float32 with K = n_fft // 2 + 1.

    The M + 2 edge frequencies are equally spaced on the HTK mel scale
    m(f) = 2595 log10(1 + f / 700) from m(f_min) to m(f_max) (default the
    Nyquist frequency): f_0 < f_1 < ... < f_{M+1}. Filter i (0-based) has its
    corners at f_i, f_{i+1}, f_{i+2} and weighs bin frequency f = j sr / n_fft by

        w_i(f) = max(0, min((f - f_i) / (f_{i+1} - f_i), (f_{i+2} - f) / (f_{i+2} - f_{i+1})))

    so it peaks at 1 at its centre f_{i+1} (no area normalisation, as HTK and
    torchaudio's default ``norm=None``), and between the first and the last
    centre the filters sum to 1. With ``warp`` = alpha != 1 each bin is weighed
    at its warped frequency w(f) (:func:`warp_frequencies`): its energy counts
    where a vocal tract alpha times shorter would have put it.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ConfigError(f"mel_filterbank: expected 0 <= f_min < f_max <= {sample_rate / 2} Hz, "
                          f"got f_min={f_min}, f_max={f_max}")
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (M + 2,)
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (K,)
    if warp != 1.0:
        freqs = warp_frequencies(freqs, warp, sample_rate)
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # each (M, 1)
    rising, falling = (freqs - lo) / (centre - lo), (hi - freqs) / (hi - centre)  # (M, K)
    fb = np.maximum(0.0, np.minimum(rising, falling))  # (M, K)
    if (fb.max(axis=1) == 0).any():
        raise ConfigError(f"mel_filterbank: {n_mels} mel bands are too narrow for n_fft={n_fft} "
                          f"(some fall between two FFT bins); use fewer bands or a longer window")
    return torch.from_numpy(fb).float()


def log_mel(samples, sample_rate: int, n_mels: int = 40, window_ms: float = 25.0,
            hop_ms: float = 10.0, warp: float = 1.0) -> torch.Tensor:
    """Log-mel features of a mono signal, (T, M) float32, T = 1 + N // hop.

    Power spectrum |STFT|^2 with a Hann window of ``window_ms`` (n_fft the next
    power of two, the window zero-padded to it), frames every ``hop_ms``,
    centred (the signal padded with zeros by n_fft / 2 at both ends, so a clip
    shorter than a window still gives frames); then the mel filterbank and
    log(mel + 1e-6). The floor keeps exact digital silence at log(1e-6) ≈ -13.8
    instead of -inf, far below speech energy. ``warp``: the filterbank's
    vocal tract length perturbation (:func:`mel_filterbank`).
    """
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float32)  # (N,)
    if x.dim() != 1:
        raise DataError(f"log_mel: expected mono samples of shape (N,), got {tuple(x.shape)}; mix it down first")
    win = round(sample_rate * window_ms / 1000)
    hop = round(sample_rate * hop_ms / 1000)
    n_fft = 1 << max(0, win - 1).bit_length()  # next power of two >= win
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=torch.hann_window(win),
                      center=True, pad_mode="constant", return_complex=True)  # (K, T)
    power = spec.abs() ** 2  # (K, T)
    mel = mel_filterbank(n_fft, sample_rate, n_mels, warp=warp) @ power  # (M, T)
    return torch.log(mel + 1e-6).T.contiguous()  # (T, M)


def stack_frames(features: torch.Tensor, k: int) -> torch.Tensor:
    """Concatenate k consecutive frames into one: (T, F) -> (ceil(T / k), k F).

    Row t is frames t k, ..., t k + k - 1 side by side, in order; the last group
    is padded by repeating the last frame (zeros would look like a band of
    silence the signal never had). Shortens sequences k times, as in Sak et al.
    2015, "Fast and accurate recurrent neural network acoustic models for speech
    recognition". k = 1 returns the input.
    """
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"stack_frames: expected k a positive integer, got {k!r}")
    if k == 1:
        return features
    T, F = features.shape
    pad = -T % k
    if pad and T:
        features = torch.cat([features, features[-1:].expand(pad, F)])  # (T + pad, F)
    return features.reshape(-1, k * F)  # (ceil(T / k), k F)


def read_manifest(path: str | Path) -> list[tuple[Path, str]]:
    """The (audio path, transcript) pairs of a TSV manifest: one utterance a
    line, ``audio path<TAB>transcript``; relative audio paths are resolved
    against the manifest's folder; blank lines are skipped."""
    path = Path(path)
    pairs = []
    for number, line in enumerate(read_text(path, "char").splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("\t", 1)
        if len(cells) < 2:
            raise DataError(f"{path} line {number}: one column; expected audio path<TAB>transcript")
        audio, transcript = cells[0].strip(), cells[1].strip()
        if not transcript:
            raise DataError(f"{path} line {number}: empty transcript; transcribe the utterance or remove the line")
        audio_path = path.parent / audio  # an absolute audio path stays as it is
        if not audio_path.is_file():
            raise DataError(f"{path} line {number}: audio file {audio} does not exist; "
                            f"fix the path or remove the line")
        pairs.append((audio_path, transcript))
    if not pairs:
        raise DataError(f"{path} has no utterances; give lines of audio path<TAB>transcript")
    return pairs


STD_FLOOR = 1e-5  # a feature constant over the training split is centred, not blown up


def utterance_normalise(features: torch.Tensor) -> torch.Tensor:
    """Mean and variance normalisation per band over one utterance's frames (T, M) -> (T, M):
    z_tm = (f_tm - mean_t f_tm) / std_t f_tm (std floored at STD_FLOOR). It removes what is constant
    over an utterance: a channel's and largely a voice's spectral envelope."""
    mean = features.mean(0, keepdim=True)  # (1, M)
    std = features.std(0, correction=0, keepdim=True)  # (1, M)
    return (features - mean) / torch.where(std > STD_FLOOR, std, 1.0)


def raw_features(samples, sample_rate: int, mel_bands: int, frame_stack: int,
                 utterance_norm: bool = False, warp: float = 1.0) -> torch.Tensor:
    """Samples (N,) -> stacked log-mel features (T', k M) float32, each band normalised over the
    utterance first given ``utterance_norm`` (:func:`utterance_normalise`), not yet over the training set;
    ``warp``, the filterbank's vocal tract length perturbation (training's augmentation only)."""
    features = log_mel(samples, sample_rate, mel_bands, warp=warp)  # (T, M)
    return stack_frames(utterance_normalise(features) if utterance_norm else features, frame_stack)


class SpeechFeatures:
    """The input side of a CTC run: samples -> normalised features (``kind = "speech"``).

    ``transform(samples)`` is :func:`raw_features` (with ``utterance_norm``, each band normalised
    over the utterance first) then z = (f - mean) / std,
    (T', F) float32 with F = ``frame_stack`` * ``mel_bands``; ``read(path)``
    does the same for a wav file, which must be at ``sample_rate``. ``mean``
    and ``std`` (F,) are the training split's. ``vocab_size = 0``: the inputs
    are vectors, not ids.
    """

    kind = "speech"
    vocab_size = 0

    def __init__(self, mel_bands: int, frame_stack: int, sample_rate: int, mean, std, utterance_norm: bool = False):
        self.mel_bands, self.frame_stack, self.sample_rate = int(mel_bands), int(frame_stack), int(sample_rate)
        self.utterance_norm = bool(utterance_norm)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)  # (F,)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)  # (F,)
        if self.mean.shape != (self.num_features,) or self.std.shape != (self.num_features,):
            raise CheckpointError(f"speech features: expected mean and std of {self.num_features} values "
                                  f"(frame_stack {self.frame_stack} x mel_bands {self.mel_bands}), got "
                                  f"{len(self.mean)} and {len(self.std)}")

    @classmethod
    def fit(cls, features: list[torch.Tensor], mel_bands: int, frame_stack: int,
            sample_rate: int, utterance_norm: bool = False) -> "SpeechFeatures":
        """Mean and std per feature over every step of ``features`` (each (T', F), raw)."""
        every = torch.cat(features).double()  # (Σ T', F)
        std = every.std(0, correction=0)
        return cls(mel_bands, frame_stack, sample_rate, every.mean(0), torch.where(std > STD_FLOOR, std, 1.0),
                   utterance_norm)

    @property
    def num_features(self) -> int:
        """F = ``frame_stack`` × ``mel_bands``, the width of a feature vector."""
        return self.frame_stack * self.mel_bands

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features (T', F) -> (T', F) z-scores, float32."""
        return ((features - self.mean) / self.std).float()

    def transform(self, samples, warp: float = 1.0) -> torch.Tensor:
        """Mono samples (N,) at ``sample_rate`` -> normalised features (T', F) float32 (``warp``:
        :func:`raw_features`)."""
        return self.normalise(raw_features(samples, self.sample_rate, self.mel_bands, self.frame_stack,
                                           self.utterance_norm, warp))

    def read(self, path: str | Path) -> torch.Tensor:
        """The normalised features (T', F) of a wav file at ``sample_rate``."""
        return self.transform(read_wav(path, self.sample_rate))

    def to_dict(self) -> dict:
        """The JSON-able dict :meth:`from_dict` reads back (config.json's tokenizer entry)."""
        return {"kind": self.kind, "mel_bands": self.mel_bands, "frame_stack": self.frame_stack,
                "sample_rate": self.sample_rate, "utterance_norm": self.utterance_norm, "mean": self.mean.tolist(),
                "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "SpeechFeatures":
        """The features :meth:`to_dict` saved, or a CheckpointError naming the missing key."""
        try:
            # a run saved before utterance_norm existed read its features without it
            return cls(d["mel_bands"], d["frame_stack"], d["sample_rate"], d["mean"], d["std"],
                       d.get("utterance_norm", False))
        except KeyError as e:
            raise CheckpointError(f"speech features in config.json lack {e}") from None
