"""Training-time augmentation for --task ctc (rnnkit.data.augment): SpecAugment's masks zero exactly
the frames and bands they chose, the same seed gives the same batches, speed perturbation changes the
length by its factor, noise is mixed at the asked SNR, evaluation sees none of it; per-utterance
normalisation (a feature, in training and evaluation alike); the settings' refusals."""

import json

import numpy as np
import pytest
import torch

from rnnkit.data.audio import log_mel, raw_features, utterance_normalise, warp_frequencies
from rnnkit.data.augment import AugmentedBatcher, mix_noise, spec_augment, speed_perturb
from rnnkit.data.speech import SpeechConfig, SpeechData
from rnnkit.errors import ConfigError

from test_ctc import RATE, random_texts, write_manifest


def _masked(before: torch.Tensor, after: torch.Tensor, mel_bands: int):
    """The (frames, bands) that were nonzero before and are exactly 0 after, unstacked to (T' k, M)."""
    b, a = before.reshape(-1, mel_bands), after.reshape(-1, mel_bands)
    return (b != 0) & (a == 0), b, a


@pytest.mark.parametrize("frame_stack", [1, 3])
def test_spec_augment_zeroes_exactly_the_chosen_frames_and_bands(frame_stack):
    mel_bands, frames = 10, 60
    x = torch.randn(frames // frame_stack, frame_stack * mel_bands) + 5.0  # no zero before masking
    rng = np.random.default_rng(7)
    draws = np.random.default_rng(7)  # the same draws, replayed: widths then starts, time masks first
    t = int(draws.integers(0, 12 + 1)); t0 = int(draws.integers(0, frames - t + 1))  # noqa: E702
    f = int(draws.integers(0, 4 + 1)); f0 = int(draws.integers(0, mel_bands - f + 1))  # noqa: E702
    out = spec_augment(x, mel_bands, rng, time_masks=1, time_mask_width=12, freq_masks=1, freq_mask_width=4)
    zero, b, a = _masked(x, out, mel_bands)
    expected = torch.zeros(frames, mel_bands, dtype=torch.bool)
    expected[t0:t0 + t] = True
    expected[:, f0:f0 + f] = True
    assert torch.equal(zero, expected)
    assert torch.equal(a[~expected], b[~expected])  # everything else untouched
    assert torch.equal(x.reshape(-1, mel_bands), b) and (x != 0).all()  # the input was not changed in place


def test_spec_augment_masks_at_most_their_width_and_never_more_than_asked():
    x = torch.randn(200, 40) + 5.0
    for seed in range(20):
        out = spec_augment(x, 40, np.random.default_rng(seed), time_masks=2, time_mask_width=15, freq_masks=2,
                           freq_mask_width=6)
        zero = out == 0
        full_rows, full_cols = zero.all(1).sum().item(), zero.all(0).sum().item()
        assert full_rows <= 30 and full_cols <= 12
        assert torch.equal(zero, zero.all(1, keepdim=True) | zero.all(0, keepdim=True))  # whole rows or columns


def test_speed_perturbation_changes_the_length_by_its_factor():
    samples = torch.from_numpy(np.sin(np.arange(8000) / 10).astype(np.float32))
    for factor in (0.9, 1.1, 1.0):
        out = speed_perturb(samples, factor)
        assert len(out) == round(8000 / factor)
    slow = speed_perturb(samples, 0.5)  # half speed: every second sample is an original one
    assert torch.allclose(slow[::2][:3900], samples[:3900], atol=2e-3)


@pytest.mark.parametrize("alpha", [0.85, 0.9, 1.0, 1.1, 1.2])
def test_vtlp_warps_frequencies_piecewise_linearly_keeping_0_and_nyquist(alpha):
    f = np.linspace(0, 4000, 4001)
    w = warp_frequencies(f, alpha, 8000)
    assert w[0] == 0 and w[-1] == pytest.approx(4000) and (np.diff(w) > 0).all()  # onto [0, N], in order
    bend = 0.6 * 4000 * min(alpha, 1) / alpha
    assert np.allclose(w[f <= bend], alpha * f[f <= bend])  # the formants' range scaled by alpha
    assert np.abs(np.diff(w)).max() <= max(alpha, (4000 - 2400 * min(alpha, 1)) / (4000 - bend)) + 1e-9  # no jump


def test_vtlp_moves_a_tone_where_a_shorter_vocal_tract_would_put_it():
    t = np.arange(8000) / 8000
    for hz in (700.0, 1000.0, 1500.0):
        tone = np.sin(2 * np.pi * hz * t).astype(np.float32)
        shifted = np.sin(2 * np.pi * 1.15 * hz * t).astype(np.float32)
        warped = log_mel(tone, 8000, 40, warp=1.15).mean(0)  # (M,)
        assert int(warped.argmax()) == int(log_mel(shifted, 8000, 40).mean(0).argmax())
        assert int(warped.argmax()) > int(log_mel(tone, 8000, 40).mean(0).argmax())
    assert torch.equal(log_mel(tone, 8000, 40, warp=1.0), log_mel(tone, 8000, 40))


@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_noise_is_mixed_at_the_asked_snr(snr):
    rng = np.random.default_rng(0)
    signal = torch.from_numpy((0.3 * np.sin(np.arange(4000) / 7)).astype(np.float32))
    noise = torch.from_numpy(rng.standard_normal(4000).astype(np.float32) * 5)
    mixed = mix_noise(signal, noise, snr)
    measured = 10 * torch.log10(signal.double().pow(2).mean() / (mixed.double() - signal.double()).pow(2).mean())
    assert abs(measured.item() - snr) < 0.1


def test_utterance_norm_gives_each_band_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal(4000).astype(np.float32) * np.linspace(0.1, 1, 4000, dtype=np.float32)
    z = utterance_normalise(log_mel(samples, RATE, 20))
    assert torch.allclose(z.mean(0), torch.zeros(20), atol=1e-5)
    assert torch.allclose(z.std(0, correction=0), torch.ones(20), atol=1e-4)
    louder = raw_features(samples * 10, RATE, 20, 2, utterance_norm=True)  # a gain is a constant in log-mel
    assert torch.allclose(louder, raw_features(samples, RATE, 20, 2, utterance_norm=True), atol=1e-3)


AUGMENTED = dict(time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=4, speed_perturb="0.9,1.1",
                 noise_snr="5,20")


def _data(tmp_path, **settings):
    train = write_manifest(tmp_path, "train", random_texts(24, seed=0), seed=0)
    return SpeechData.from_file(train, SpeechConfig(mel_bands=12, frame_stack=2, val_fraction=0.25, batch_size=4,
                                                    **settings))


def _epoch(batcher, epoch):
    return [b.x for b in batcher.batches(epoch)]


def test_augmented_batches_are_reproducible_and_evaluation_sees_no_augmentation(tmp_path):
    clean, augmented = _data(tmp_path / "a"), _data(tmp_path / "b", **AUGMENTED)
    batcher = augmented.batcher(seed=3)
    assert isinstance(batcher, AugmentedBatcher) and not isinstance(clean.batcher(3), AugmentedBatcher)
    first = _epoch(batcher, 0)
    assert all(torch.equal(a, b) for a, b in zip(first, _epoch(augmented.batcher(seed=3), 0)))  # same seed
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, _epoch(batcher, 1)))
    resumed = list(batcher.batches(0, start=2))  # a resumed epoch continues the same batches
    assert all(torch.equal(a.x, b) for a, b in zip(resumed, first[2:]))
    plain = _epoch(clean.batcher(seed=3), 0)
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, plain))
    # speed perturbation made lengths 1/0.9 or 1/1.1 of the clean ones (to a step or two)
    ratios = {round(float(a.x_lengths.sum() / b.x_lengths.sum()), 2)
              for a, b in zip(batcher.batches(0), clean.batcher(seed=3).batches(0))}
    assert ratios and all(0.88 <= r <= 1.14 for r in ratios) and ratios != {1.0}
    for split in ("val", "train"):  # evaluation's batches: the clean features, whatever training does
        for a, b in zip(augmented.eval_batches(split), clean.eval_batches(split)):
            assert torch.equal(a.x, b.x)
    assert augmented.train.waveforms is not None and clean.train.waveforms is None


def test_vtlp_batches_differ_from_clean_ones_in_content_not_length(tmp_path):
    clean, warped = _data(tmp_path / "a"), _data(tmp_path / "b", vtlp="0.9,1.1")
    assert isinstance(warped.batcher(3), AugmentedBatcher) and warped.train.waveforms is not None
    for a, b in zip(warped.batcher(seed=3).batches(0), clean.batcher(seed=3).batches(0)):
        assert torch.equal(a.x_lengths, b.x_lengths) and not torch.allclose(a.x, b.x)


def test_utterance_norm_applies_in_training_and_evaluation_and_is_saved(tmp_path):
    data = _data(tmp_path, utterance_norm=True)
    assert data.tokenizer.utterance_norm and data.tokenizer.to_dict()["utterance_norm"] is True
    wav = data.val.audio[0]
    expected = data.tokenizer.normalise(raw_features(
        __import__("rnnkit.data.audio", fromlist=["read_wav"]).read_wav(wav), RATE, 12, 2, utterance_norm=True))
    assert torch.allclose(data.tokenizer.read(wav), expected)
    assert torch.allclose(data.val.examples.ids[0], expected)
    restored = type(data.tokenizer).from_dict(json.loads(json.dumps(data.tokenizer.to_dict())))
    assert restored.utterance_norm and torch.allclose(restored.read(wav), expected)
    old = {k: v for k, v in data.tokenizer.to_dict().items() if k != "utterance_norm"}  # a run saved before
    assert not type(data.tokenizer).from_dict(old).utterance_norm


@pytest.mark.parametrize("settings, message", [
    (dict(speed_perturb="0.9,fast"), "--speed-perturb"),
    (dict(speed_perturb="0.1,1.0"), "[0.5, 2]"),
    (dict(noise_snr="30,10"), "LO <= HI"),
    (dict(noise_snr="1,2,3"), "--noise-snr"),
    (dict(noise_kind="pink"), "noise_kind"),
    (dict(time_masks=-1), "time_masks"),
    (dict(vtlp="1.1,0.9"), "--vtlp: expected LO,HI"),
    (dict(vtlp="0.5,1.0"), "0.7 <= LO <= HI <= 1.3"),
])
def test_bad_augmentation_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SpeechConfig(**settings)


def test_augmentation_flags_are_refused_where_they_do_nothing(tmp_path, cli_here, user_error):
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    user_error(cli_here("train", text, "--time-masks", 2, "--out", tmp_path / "r"), "--time-masks")
    user_error(cli_here("train", text, "--task", "lm", "--utterance-norm", "true", "--out", tmp_path / "r"),
               "--utterance-norm")
    train = write_manifest(tmp_path, "train", random_texts(6, seed=0))
    user_error(cli_here("train", train, "--task", "ctc", "--time-mask-width", 5, "--out", tmp_path / "r"),
               "--time-masks 1 or more")
    user_error(cli_here("train", train, "--task", "ctc", "--freq-mask-width", 5, "--out", tmp_path / "r"),
               "--freq-masks 1 or more")
    user_error(cli_here("train", train, "--task", "ctc", "--noise-kind", "speech", "--out", tmp_path / "r"),
               "--noise-snr")
    user_error(cli_here("train", train, "--task", "ctc", "--speed-perturb", "x", "--out", tmp_path / "r"),
               "--speed-perturb")
    assert not (tmp_path / "r").exists()


# -- leave-one-speaker-out (rnnkit digits --held-out-speaker all --config RECIPE) ---------------------------


@pytest.mark.slow  # three folds' training and scoring: about 10 s alone, 20 s on a loaded machine
def test_leave_one_speaker_out_trains_a_model_per_speaker_that_never_heard_them(tmp_path, cli_here):
    from test_ctc import _tone_recordings

    recordings = _tone_recordings(tmp_path / "recordings", speakers=("ann", "bob", "cy"), takes=6)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"frame_stack": 3, "mel_bands": 16, "hidden_size": 16, "num_layers": 1,
                                  "max_steps": 4, "eval_every": 4, "batch_size": 8, "device": "cpu",
                                  "time_masks": 1, "speed_perturb": "0.9,1.1"}))
    out = tmp_path / "folds"
    done = cli_here("digits", recordings, out, "--held-out-speaker", "all", "--num-train", 16, "--num-test", 10,
                    "--config", recipe, "--jobs", 2)  # two folds at a time, each in its own process
    assert done.returncode == 0, done.stderr
    assert "3 folds, 2 at a time" in done.stdout
    summary = json.loads((out / "speakers.json").read_text())
    assert sorted(summary["speakers"]) == ["ann", "bob", "cy"]
    for speaker in ("ann", "bob", "cy"):
        sources = (out / speaker / "sources.tsv").read_text().splitlines()
        trained_on = " ".join(line.split("\t")[1] for line in sources if line.startswith("train/"))
        heard = " ".join(line.split("\t")[1] for line in sources if line.startswith("speaker/"))
        assert trained_on and f"_{speaker}_" not in trained_on  # the held-out speaker is in no training string
        assert all(f"_{speaker}_" in name for name in heard.split())  # and speaker.tsv is theirs alone
        assert "rnnkit train --task ctc" in (out / speaker / "train.log").read_text()  # its own log
        evaluated = cli_here("eval", out / speaker / "run", out / speaker / "speaker.tsv", "--json")
        assert evaluated.returncode == 0, evaluated.stderr
        assert summary["speakers"][speaker]["token_error_rate"] == json.loads(evaluated.stdout)["token_error_rate"]
        assert summary["speakers"][speaker]["steps"] == 4 and summary["speakers"][speaker]["utterances"] == 10
    rates = [s["token_error_rate"] for s in summary["speakers"].values()]
    assert summary["token_error_rate"]["mean"] == pytest.approx(np.mean(rates))
    assert summary["token_error_rate"]["sd"] == pytest.approx(np.std(rates, ddof=1))
    assert "| mean ± sd |" in done.stdout and f"{100 * np.mean(rates):.2f} ±" in done.stdout
    again = cli_here("digits", recordings, out, "--held-out-speaker", "all", "--num-train", 16, "--num-test", 10,
                     "--config", recipe)  # a finished row is resumed: nothing more is trained
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "speakers.json").read_text())["speakers"] == summary["speakers"]


def test_bad_leave_one_speaker_out_requests_are_refused(tmp_path, cli_here, user_error):
    from test_ctc import _tone_recordings

    recordings = _tone_recordings(tmp_path / "recordings", speakers=("ann", "bob"), takes=6)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"hidden_size": 8, "out": "somewhere"}))
    user_error(cli_here("digits", recordings, tmp_path / "d", "--held-out-speaker", "all", "--config", recipe),
               "out is set by each fold")
    user_error(cli_here("digits", recordings, tmp_path / "d", "--held-out-speaker", "none", "--config", recipe),
               "--held-out-speaker all")
    user_error(cli_here("digits", recordings, tmp_path / "d", "--held-out-speaker", "all", "--config",
                        tmp_path / "missing.json"), "missing.json")
    user_error(cli_here("digits", recordings, tmp_path / "d", "--held-out-speaker", "all", "--config", recipe,
                        "--jobs", 0), "--jobs 0: give a count >= 1")
    user_error(cli_here("digits", recordings, tmp_path / "d", "--held-out-speaker", "all", "--jobs", 2),
               "more than 1 only with --config")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("name", ["fsdd-speakers.json", "fsdd-speakers-vtlp.json"])
def test_the_fsdd_recipe_is_settings_of_the_ctc_task(name):
    """recipes/fsdd-speakers*.json (RESULTS' and NOTEBOOK's leave-one-speaker-out rows) build the ctc task's
    configs as `rnnkit train --config` reads them: no unknown key, no value its dataclasses refuse."""
    from pathlib import Path

    from rnnkit.cli.options import split_settings
    from rnnkit.config import from_dict
    from rnnkit.tasks import CTCTask

    recipe = json.loads((Path(__file__).parent.parent / "recipes" / name).read_text())
    task = CTCTask()
    model, data, train = split_settings(recipe, task)
    assert set(model) | set(data) | set(train) == set(recipe)
    data_cfg = from_dict(task.data_config, {**data, "path": "train.tsv"}, "data settings")
    from_dict(task.model_config, model, "model settings")
    from_dict(task.train_config, train, "train settings")
    assert data_cfg.augmentation.active and data_cfg.augmentation.on_waveform and data_cfg.utterance_norm
    assert bool(data_cfg.augmentation.vtlp) == ("vtlp" in name)
