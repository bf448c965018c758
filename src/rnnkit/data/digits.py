"""Spoken digit strings joined from the Free Spoken Digit Dataset's (FSDD)
recordings, for a CTC recogniser: the splits by take and speaker, and pauses
that hold each recording's own background.

The strings are real speech, FSDD recordings of one digit each; only their
concatenation with pauses between them is constructed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rnnkit.data.audio import read_wav, write_wav
from rnnkit.errors import ConfigError, DataError

FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")  # {digit}_{speaker}_{take}.wav
FSDD_RATE = 8000
FSDD_TEST_TAKES = range(0, 5)  # the official split: takes 0-4 test, 5-49 train
PAUSE_FILLS = ("noise", "zeros")
FLOOR_FRAME = 256  # samples of a frame in floor_spectrum: 32 ms at 8 kHz
FLOOR_QUANTILE = 0.2  # the quietest fifth of a recording's frames are its background


def floor_spectrum(samples: np.ndarray) -> tuple[float, np.ndarray]:
    """A recording's background: (rms, power spectrum (FLOOR_FRAME // 2 + 1,)) of its quietest frames.

    Frames of FLOOR_FRAME samples, hop FLOOR_FRAME / 2; the frames whose mean square is at most the
    FLOOR_QUANTILE quantile are the background (a trimmed recording still has a few between or around
    its sounds); rms = sqrt(mean over them of mean_n x_n^2), and the spectrum is their mean |rfft(hann x)|^2.
    A recording shorter than a frame is one frame, padded with zeros."""
    x = np.asarray(samples, np.float64)
    if len(x) < FLOOR_FRAME:
        x = np.pad(x, (0, FLOOR_FRAME - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, FLOOR_FRAME)[::FLOOR_FRAME // 2]  # (frames, FLOOR_FRAME)
    power = (frames ** 2).mean(1)  # (frames,)
    quiet = frames[power <= np.quantile(power, FLOOR_QUANTILE)]  # (q, FLOOR_FRAME), q >= 1
    spectrum = (np.abs(np.fft.rfft(quiet * np.hanning(FLOOR_FRAME), axis=1)) ** 2).mean(0)  # (FLOOR_FRAME/2 + 1,)
    return float(np.sqrt((quiet ** 2).mean())), spectrum


def floor_noise(rms: float, spectrum: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of Gaussian noise shaped to ``spectrum`` (from :func:`floor_spectrum`) at ``rms``.

    White noise w, W = rfft(w), scaled bin by bin by sqrt(spectrum) interpolated onto the length's
    frequencies, back by irfft, then scaled to the given rms: y = rms * v / ||v||_rms. float32 (N,)."""
    if length == 0:
        return np.zeros(0, np.float32)
    white = np.fft.rfft(rng.standard_normal(length))  # (length // 2 + 1,)
    shape = np.sqrt(np.interp(np.fft.rfftfreq(length), np.fft.rfftfreq(FLOOR_FRAME), spectrum))
    coloured = np.fft.irfft(white * shape, n=length)  # (length,)
    level = np.sqrt((coloured ** 2).mean())
    return (coloured * (rms / level if level > 0 else 0.0)).astype(np.float32)


def _fsdd_files(recordings: Path) -> list:
    """(name match, path) of each FSDD recording in the folder, sorted; an error naming it if none."""
    if not recordings.is_dir():
        raise DataError(f"{recordings}: no such folder; give FSDD's recordings/ folder")
    named = [(m, f) for f in sorted(recordings.iterdir()) if (m := FSDD_NAME.match(f.name))]
    if not named:
        raise DataError(f"{recordings} holds no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav); "
                        f"give FSDD's recordings/ folder")
    return named


def fsdd_speakers(recordings: Path) -> list[str]:
    """The speakers of an FSDD recordings folder, sorted by name."""
    return sorted({m[2] for m, _ in _fsdd_files(Path(recordings))})


def build_digit_strings(recordings: Path, out: Path, seed: int = 0, num_train: int = 3000, num_test: int = 500,
                        min_digits: int = 3, max_digits: int = 7, held_out_speaker: str | None = "theo",
                        pause_ms: tuple[float, float] = (50, 300), pause_fill: str = "noise") -> dict:
    """Build spoken digit strings from FSDD recordings; returns utterances per split.

    Each utterance joins ``min_digits``..``max_digits`` recordings of ONE
    speaker, drawn at random from that split's takes, with a pause of a length
    drawn uniformly from ``pause_ms`` before, between and after them. One
    speaker per utterance, as in real speech: mixed speakers would make voice
    changes a cue to digit boundaries that no test utterance has.

    ``pause_fill`` "noise" fills each pause with the background of the
    recording before it (the first pause, the first recording's): noise of
    that recording's floor level and spectrum (:func:`floor_noise`), as a
    microphone left open between words would record. "zeros" leaves exact
    digital silence, which no real recording has, and whose contrast with a
    speaker's own floor differs from speaker to speaker (FSDD's floors span
    0.0005-0.011 RMS). The digits and pause lengths drawn are the same either
    way for a seed. A recording with no quiet frames (a tone, a clip cut
    tight on both sides) lends its pauses its quietest sound: use "zeros".

    Splits, never mixed: ``train`` uses takes 5-49 and ``test`` takes 0-4 (the
    official FSDD split) of every speaker except ``held_out_speaker``, which is
    left out of both and gets its own set ``speaker`` of ``num_test`` utterances
    from all of its takes (a speaker-independent test). ``None`` holds out no one.

    Writes mono 16-bit 8 kHz wav files ``out/{split}/NNNNN.wav``, manifests
    ``out/{split}.tsv`` (audio path relative to the manifest<TAB>digits, e.g.
    ``3071``) and the provenance ``out/sources.tsv`` (audio path<TAB>source
    files<TAB>pauses in samples, space-separated, in order). Deterministic
    given ``seed``.
    """
    recordings, out = Path(recordings), Path(out)
    if not 1 <= min_digits <= max_digits:
        raise ConfigError(f"build_digit_strings: expected 1 <= min_digits <= max_digits, "
                          f"got {min_digits}, {max_digits}")
    if not 0 <= pause_ms[0] <= pause_ms[1]:
        raise ConfigError(f"build_digit_strings: expected 0 <= pause_ms[0] <= pause_ms[1], got {pause_ms}")
    if pause_fill not in PAUSE_FILLS:
        raise ConfigError(f"build_digit_strings: pause_fill must be one of {', '.join(PAUSE_FILLS)}; "
                          f"got {pause_fill!r}")
    named = _fsdd_files(recordings)
    speakers = sorted({m[2] for m, _ in named})
    if held_out_speaker is not None and held_out_speaker not in speakers:
        raise DataError(f"{recordings}: held-out speaker {held_out_speaker!r} is not among its speakers "
                        f"({', '.join(speakers)}); pass one of them or None")
    audio = {f.name: read_wav(f, FSDD_RATE) for _, f in named}  # every recording once: ~21 MB for FSDD
    pools: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}, "speaker": {}}
    for m, f in named:
        speaker, take = m[2], int(m[3])
        split = "speaker" if speaker == held_out_speaker else "test" if take in FSDD_TEST_TAKES else "train"
        pools[split].setdefault(speaker, []).append(f.name)
    sizes = {"train": num_train, "test": num_test, "speaker": num_test if held_out_speaker else 0}
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, 1])  # apart from rng: the draws of digits and pauses never depend on it
    floors: dict[str, tuple[float, np.ndarray]] = {}  # recording -> its floor_spectrum, computed when first used

    def pause(after: str, length: int) -> np.ndarray:
        if pause_fill == "zeros":
            return np.zeros(length, np.float32)
        if after not in floors:
            floors[after] = floor_spectrum(audio[after])
        return floor_noise(*floors[after], length, noise_rng)

    lo, hi = (round(ms * FSDD_RATE / 1000) for ms in pause_ms)
    counts, sources = {}, []
    for split, size in sizes.items():
        if not size:
            continue
        pool = pools[split]
        if not pool:
            raise DataError(f"{recordings} has no recordings for the {split} split; give all of FSDD's recordings")
        names = sorted(pool)
        (out / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(size):
            takes = pool[names[rng.integers(len(names))]]
            chosen = [takes[j] for j in rng.integers(len(takes), size=rng.integers(min_digits, max_digits + 1))]
            silences = rng.integers(lo, hi + 1, size=len(chosen) + 1)
            pieces = [pause(chosen[0], silences[0])]
            for name, gap in zip(chosen, silences[1:]):
                pieces += [audio[name], pause(name, gap)]
            rel = f"{split}/{i:05d}.wav"
            write_wav(out / rel, np.concatenate(pieces), FSDD_RATE)
            lines.append(f"{rel}\t{''.join(n[0] for n in chosen)}\n")
            sources.append(f"{rel}\t{' '.join(chosen)}\t{' '.join(map(str, silences))}\n")
        (out / f"{split}.tsv").write_text("".join(lines))
        counts[split] = size
    (out / "sources.tsv").write_text("".join(sources))
    return counts
