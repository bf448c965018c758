"""Audio input: wav reading and its errors, mel filters, log-mel features, frame
stacking, manifests, and FSDD digit strings built from a fake recordings folder."""

import re
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.audio import (
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    read_manifest,
    read_wav,
    stack_frames,
    write_wav,
)
from rnnkit.data.digits import build_digit_strings, floor_noise, floor_spectrum
from rnnkit.errors import ConfigError, DataError

FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd"
SPEAKERS = ("alice", "bob", "carol")


def _write(path, frames: bytes, width=2, channels=1, rate=8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def _tone(freq, n, rate=8000, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


# --- read_wav -------------------------------------------------------------------------------------

def test_read_wav_round_trips_16_bit_pcm(tmp_path):
    pcm = np.array([0, 1, -1, 32767, -32768, 12345, -4321], dtype="<i2")
    x = read_wav(_write(tmp_path / "a.wav", pcm.tobytes()), sample_rate=8000)
    assert x.dtype == np.float32
    assert np.array_equal(x, pcm / 32768.0)
    tone = _tone(440, 800)
    write_wav(tmp_path / "b.wav", tone, 8000)
    assert np.abs(read_wav(tmp_path / "b.wav") - tone).max() <= 0.5 / 32768 + 1e-7


def test_read_wav_reads_8_bit_unsigned_and_32_bit_and_refuses_24_bit(tmp_path):
    eight = read_wav(_write(tmp_path / "8.wav", bytes([0, 128, 255]), width=1))
    assert np.allclose(eight, [-1.0, 0.0, 127 / 128])
    pcm32 = np.array([-2**31, 0, 2**30], dtype="<i4")
    assert np.allclose(read_wav(_write(tmp_path / "32.wav", pcm32.tobytes(), width=4)), [-1.0, 0.0, 0.5])
    with pytest.raises(DataError, match=r"24\.wav is 24-bit; rnnkit reads 8-, 16- or 32-bit PCM: convert it"):
        read_wav(_write(tmp_path / "24.wav", bytes(9), width=3))


def _bad_wavs(tmp_path):
    good = _write(tmp_path / "good.wav", np.zeros(100, "<i2").tobytes()).read_bytes()
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_bytes(b"hello, this is not audio at all\n" * 4)
    (tmp_path / "cut_header.wav").write_bytes(good[:20])
    (tmp_path / "truncated.wav").write_bytes(good[:44 + 120])  # header says 100 samples, 60 are there
    _write(tmp_path / "stereo.wav", np.zeros(200, "<i2").tobytes(), channels=2)
    _write(tmp_path / "fast.wav", np.zeros(100, "<i2").tobytes(), rate=16000)


@pytest.mark.parametrize("name, message", [
    ("missing.wav", r"missing\.wav: no such file"),
    ("folder.wav", r"folder\.wav is a directory"),
    ("empty.wav", r"empty\.wav is empty"),
    ("text.wav", r"text\.wav is not a PCM wav file .*RIFF.*convert it"),
    ("cut_header.wav", r"cut_header\.wav is cut short"),
    ("truncated.wav", r"truncated\.wav is truncated: its header says 100 samples but it holds 60"),
    ("stereo.wav", r"stereo\.wav has 2 channels; rnnkit reads mono wav: mix it down, e\.g\. `sox .* -c 1"),
    ("fast.wav", r"fast\.wav is 16000 Hz but the model reads 8000 Hz; resample it"),
])
def test_read_wav_names_each_bad_file_and_its_fix(tmp_path, name, message):
    _bad_wavs(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        read_wav(tmp_path / name, sample_rate=8000)
    assert "\n" not in str(info.value)


# --- mel filters and features ---------------------------------------------------------------------

def test_htk_mel_scale_golden_values():
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)  # the scale is built to put 1 kHz at ~1000 mel
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert np.allclose(mel_to_hz(hz_to_mel([0, 123.4, 4000])), [0, 123.4, 4000])


def test_mel_filters_are_unit_triangles_at_mel_equal_spacing():
    sr, n_fft, n_mels = 8000, 8192, 20  # bins every ~1 Hz, so each peak lands on a bin
    fb = mel_filterbank(n_fft, sr, n_mels, f_min=100.0, f_max=3800.0)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == torch.float32
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = 700 * (10 ** (np.linspace(2595 * np.log10(1 + 100 / 700), 2595 * np.log10(1 + 3800 / 700),
                                      n_mels + 2) / 2595) - 1)
    peaks = freqs[fb.argmax(dim=1).numpy()]
    assert np.all(np.diff(peaks) > 0)
    assert np.allclose(peaks, edges[1:-1], atol=sr / n_fft)
    assert np.allclose(np.diff(hz_to_mel(peaks)), np.diff(hz_to_mel(edges[1:-1])).mean(), atol=2.0)  # 1-Hz bins
    assert torch.all(fb.max(dim=1).values > 0.99) and torch.all(fb <= 1.0)  # 1 at the centre, off it by < 1 bin
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    assert np.allclose(fb.numpy(), tri, atol=1e-6)
    for i in range(n_mels):  # zero outside its two neighbours' centres, rising then falling
        row = fb[i].numpy()
        assert np.all(row[(freqs <= edges[i]) | (freqs >= edges[i + 2])] == 0)
        top = row.argmax()
        assert np.all(np.diff(row[:top + 1]) >= 0) and np.all(np.diff(row[top:]) <= 0)
    between = (freqs >= edges[1]) & (freqs <= edges[-2])
    assert np.allclose(fb.sum(dim=0).numpy()[between], 1.0, atol=1e-5)  # adjacent triangles sum to one


def test_mel_filterbank_refuses_bands_narrower_than_a_bin():
    with pytest.raises(ConfigError, match="too narrow for n_fft=64"):
        mel_filterbank(64, 8000, 80)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0, 3300.0])
def test_a_pure_tone_peaks_in_the_band_with_the_nearest_centre(freq):
    sr, n_mels = 8000, 40
    feats = log_mel(_tone(freq, sr), sr, n_mels=n_mels)
    centres = mel_to_hz(np.linspace(0, hz_to_mel(sr / 2), n_mels + 2))[1:-1]
    band = int(np.abs(centres - freq).argmin())
    assert int(feats[2:-2].mean(dim=0).argmax()) == band
    louder = log_mel(2 * _tone(freq, sr), sr, n_mels=n_mels)  # power: twice the amplitude is 4x
    assert torch.allclose(louder[2:-2, band] - feats[2:-2, band], torch.tensor(np.log(4.0)).float(), atol=1e-3)


@pytest.mark.parametrize("n, frames", [(8000, 101), (8039, 101), (8080, 102), (50, 1)])
def test_log_mel_has_one_frame_per_hop_plus_one_centred(n, frames):
    feats = log_mel(np.zeros(n, np.float32), 8000, n_mels=23)  # 25 ms window, hop 80 samples
    assert feats.shape == (frames, 23) and feats.dtype == torch.float32
    assert torch.allclose(feats, torch.full_like(feats, np.log(1e-6)))  # silence sits on the floor, not -inf
    loud = log_mel(_tone(1000, n), 8000, n_mels=23)
    assert loud.shape == feats.shape and loud.max() > 0


# --- stacking -------------------------------------------------------------------------------------

def test_stack_frames_concatenates_in_order_and_repeats_the_last_frame():
    x = torch.arange(14.0).reshape(7, 2)  # (T=7, F=2)
    y = stack_frames(x, 3)
    assert y.shape == (3, 6)
    assert y[0].tolist() == [0, 1, 2, 3, 4, 5] and y[1].tolist() == [6, 7, 8, 9, 10, 11]
    assert y[2].tolist() == [12, 13, 12, 13, 12, 13]
    assert torch.equal(stack_frames(x[:6], 3).reshape(6, 2), x[:6])
    assert stack_frames(x, 1) is x
    assert stack_frames(x, 7).shape == (1, 14) and stack_frames(x, 8)[0, -2:].tolist() == [12, 13]
    with pytest.raises(ConfigError, match="positive integer"):
        stack_frames(x, 0)


# --- manifests ------------------------------------------------------------------------------------

def test_read_manifest_resolves_relative_paths_and_skips_blank_lines(tmp_path):
    (tmp_path / "clips").mkdir()
    a = _write(tmp_path / "clips" / "a.wav", bytes(20))
    b = _write(tmp_path / "b.wav", bytes(20))
    (tmp_path / "manifest.tsv").write_text(f"clips/a.wav\t307\n\n{b}\t 42 \n")
    assert read_manifest(tmp_path / "manifest.tsv") == [(a, "307"), (b, "42")]


@pytest.mark.parametrize("lines, message", [
    ("a.wav\t1\nb.wav\n", r"manifest\.tsv line 2: one column; expected audio path<TAB>transcript"),
    ("a.wav\t1\n\na.wav\t  \n", r"manifest\.tsv line 3: empty transcript"),
    ("a.wav\t1\nx.wav\t2\n", r"manifest\.tsv line 2: audio file x\.wav does not exist; fix the path or remove"),
    ("\n\n", r"manifest\.tsv has no utterances"),
])
def test_read_manifest_names_the_line_and_the_fix(tmp_path, lines, message):
    _write(tmp_path / "a.wav", bytes(20))
    (tmp_path / "manifest.tsv").write_text(lines)
    with pytest.raises(DataError, match=message):
        read_manifest(tmp_path / "manifest.tsv")


# --- FSDD digit strings ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_fsdd(tmp_path_factory):
    """3 speakers x 10 digits x 8 takes of short tones; each length is unique to its file."""
    folder = tmp_path_factory.mktemp("fsdd") / "recordings"
    folder.mkdir()
    for s, speaker in enumerate(SPEAKERS):
        for digit in range(10):
            for take in range(8):
                n = 200 + 100 * s + 10 * digit + take
                write_wav(folder / f"{digit}_{speaker}_{take}.wav", _tone(300 + 100 * digit, n) + 0.01, 8000)
    (folder / "README.txt").write_text("not a recording")
    return folder


def _sources(out):
    """{audio path: (source file names, silences in samples)} from out/sources.tsv."""
    rows = [line.split("\t") for line in (out / "sources.tsv").read_text().splitlines()]
    return {r[0]: (r[1].split(), [int(s) for s in r[2].split()]) for r in rows}


def _build(fake_fsdd, out, **kw):
    kw = {"num_train": 30, "num_test": 10, "held_out_speaker": "carol", **kw}
    return build_digit_strings(fake_fsdd, out, **kw)


def test_digit_strings_are_deterministic_for_a_seed(fake_fsdd, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        _build(fake_fsdd, tmp_path / name, seed=seed)
    for split in ("train", "test", "speaker"):
        a, b = (tmp_path / "a" / f"{split}.tsv").read_text(), (tmp_path / "b" / f"{split}.tsv").read_text()
        assert a == b and a != (tmp_path / "c" / f"{split}.tsv").read_text()
        for wav in (tmp_path / "a" / split).iterdir():
            assert wav.read_bytes() == (tmp_path / "b" / split / wav.name).read_bytes()


def test_digit_strings_keep_splits_apart_and_one_speaker_per_utterance(fake_fsdd, tmp_path):
    counts = _build(fake_fsdd, tmp_path, num_train=40, min_digits=2, max_digits=4)
    assert counts == {"train": 40, "test": 10, "speaker": 10}
    sources = _sources(tmp_path)
    takes_seen = {"train": set(), "test": set(), "speaker": set()}
    for split, count in counts.items():
        pairs = read_manifest(tmp_path / f"{split}.tsv")
        assert len(pairs) == count
        for audio, transcript in pairs:
            names, _ = sources[audio.relative_to(tmp_path).as_posix()]
            parts = [n[:-4].split("_") for n in names]  # digit, speaker, take
            assert transcript == "".join(p[0] for p in parts) and 2 <= len(transcript) <= 4
            assert len({p[1] for p in parts}) == 1, "one speaker per utterance"
            assert ({p[1] for p in parts} == {"carol"}) == (split == "speaker")
            takes_seen[split] |= {int(p[2]) for p in parts}
    assert takes_seen["train"] <= {5, 6, 7} and takes_seen["test"] <= {0, 1, 2, 3, 4}
    assert takes_seen["speaker"] & {5, 6, 7} and takes_seen["speaker"] & {0, 1, 2, 3, 4}  # all of carol's takes


def test_digit_string_audio_is_its_parts_with_bounded_silences(fake_fsdd, tmp_path):
    _build(fake_fsdd, tmp_path, pause_ms=(10, 20), pause_fill="zeros")  # 80..160 samples at 8 kHz
    for rel, (names, silences) in _sources(tmp_path).items():
        x = read_wav(tmp_path / rel, sample_rate=8000)
        parts = [read_wav(fake_fsdd / n) for n in names]
        assert len(silences) == len(parts) + 1 and all(80 <= s <= 160 for s in silences)
        assert len(x) == sum(map(len, parts)) + sum(silences)
        at = silences[0]
        assert not x[:at].any()
        for part, gap in zip(parts, silences[1:]):
            assert np.array_equal(x[at:at + len(part)], part)
            assert not x[at + len(part):at + len(part) + gap].any()
            at += len(part) + gap


def test_digit_string_pauses_hold_the_background_of_the_recording_before_them(fake_fsdd, tmp_path):
    _build(fake_fsdd, tmp_path / "noise", pause_ms=(10, 20))
    _build(fake_fsdd, tmp_path / "zeros", pause_ms=(10, 20), pause_fill="zeros")
    assert (tmp_path / "noise" / "sources.tsv").read_text() == (tmp_path / "zeros" / "sources.tsv").read_text()
    for rel, (names, pauses) in _sources(tmp_path / "noise").items():
        x = read_wav(tmp_path / "noise" / rel, sample_rate=8000)
        parts = [read_wav(fake_fsdd / n) for n in names]
        at = 0
        for before, part, gap in zip([parts[0]] + parts, parts + [None], pauses):
            pause = x[at:at + gap]
            assert np.sqrt(np.mean(pause ** 2)) == pytest.approx(floor_spectrum(before)[0], rel=0.02)
            at += gap
            if part is not None:
                assert np.array_equal(x[at:at + len(part)], part)
                at += len(part)
        assert at == len(x)


def _ar1(phi: float, n: int, rng) -> np.ndarray:
    e, x = rng.standard_normal(n), np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_floor_noise_has_the_level_and_spectrum_of_a_recordings_quiet_frames():
    rng = np.random.default_rng(0)
    for phi in (0.9, 0.0):  # a background of low frequencies (lag-1 correlation 0.9), and a white one
        background = _ar1(phi, 6000, rng)
        background *= 0.005 / background.std()
        loud = background.copy()
        loud[2000:3000] += 0.5 * np.sin(2 * np.pi * 440 * np.arange(1000) / 8000)  # a word in the middle
        rms, spectrum = floor_spectrum(loud)
        assert rms == pytest.approx(0.005, rel=0.25)  # the word is not background
        noise = floor_noise(rms, spectrum, 8000, np.random.default_rng(1)).astype(np.float64)
        assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(rms, rel=1e-5)
        lag1 = np.corrcoef(noise[:-1], noise[1:])[0, 1]
        assert lag1 == pytest.approx(phi, abs=0.1)
    assert len(floor_noise(rms, spectrum, 0, rng)) == 0
    short_rms, _ = floor_spectrum(np.full(100, 0.25))  # shorter than a frame: one frame, zero-padded
    assert short_rms == pytest.approx(0.25 * np.sqrt(100 / 256))


def test_digit_strings_refuse_an_unknown_pause_fill(fake_fsdd, tmp_path):
    with pytest.raises(ConfigError, match="pause_fill must be one of noise, zeros; got 'hiss'"):
        _build(fake_fsdd, tmp_path, pause_fill="hiss")


def test_digit_strings_without_a_held_out_speaker_use_everyone(fake_fsdd, tmp_path):
    assert _build(fake_fsdd, tmp_path, held_out_speaker=None) == {"train": 30, "test": 10}
    assert not (tmp_path / "speaker.tsv").exists()
    speakers = {n.split("_")[1] for rel, (names, _) in _sources(tmp_path).items() for n in names}
    assert speakers == set(SPEAKERS)


def test_digit_strings_name_a_bad_recordings_folder(fake_fsdd, tmp_path):
    with pytest.raises(DataError, match=r"nowhere: no such folder"):
        build_digit_strings(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "hello.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"other holds no FSDD recordings \(\{digit\}_\{speaker\}_\{take\}\.wav\)"):
        build_digit_strings(tmp_path / "other", tmp_path / "out")
    with pytest.raises(DataError, match=re.escape("held-out speaker 'theo' is not among its speakers "
                                                  "(alice, bob, carol)")):
        build_digit_strings(fake_fsdd, tmp_path / "out")


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=f"FSDD recordings not found at {FSDD}")
def test_digit_strings_from_the_real_recordings(tmp_path):
    counts = build_digit_strings(FSDD / "recordings", tmp_path, num_train=20, num_test=5)
    assert counts == {"train": 20, "test": 5, "speaker": 5}
    audio, transcript = read_manifest(tmp_path / "train.tsv")[0]
    assert transcript.isdigit() and 3 <= len(transcript) <= 7
    x = read_wav(audio, sample_rate=8000)
    feats = stack_frames(log_mel(x, 8000), 3)  # (ceil(T / 3), 120)
    assert feats.shape == (-(-(1 + len(x) // 80) // 3), 120) and torch.isfinite(feats).all()
    names = {n for names, _ in _sources(tmp_path).values() for n in names}
    assert {n.split("_")[1] for n in names} <= {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
