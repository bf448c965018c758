"""Whole recordings classified (``--task classify`` on a manifest or the Bonn
zip): reading, windows, the split by recording (no window of a held-out
recording in training, the scaler fitted on training recordings only), the
recording's decision from its windows' summed log-probabilities, training
and predicting through the CLI, and every bad input's one-line error."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import welch
from torch import nn

from rnnkit.config import DataConfig
from rnnkit.data.batches import WindowBatch
from rnnkit.data.recordings import RecordingScaler, bonn_protocol, read_recordings
from rnnkit.data.windows import RecordingData, stratified_folds, window_starts
from rnnkit.errors import ConfigError
from rnnkit.models import SequenceClassifier
from rnnkit.tasks import named
from rnnkit.tasks.recordings import evaluate_recordings

BONN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bonn_eeg" / "bonn_eeg_dataset.zip"
TINY = ["--task", "classify", "--hidden-size", "16", "--num-layers", "1", "--cell", "gru", "--batch-size", "16",
        "--device", "cpu", "--precision", "fp32", "--frame", "4", "--lr", "0.01"]


def sinusoids(folder: Path, n: int = 40, length: int = 600, channels: int = 1, seed: int = 0) -> Path:
    """A manifest of ``n`` recordings from two families, a sinusoid of period 20 samples ("slow") or 8
    ("fast"), each with a random phase and amplitude in [0.5, 2] and Gaussian noise of 0.5; one-column
    .txt files (several channels: .csv). Paths in the manifest are relative to it."""
    rng = np.random.default_rng(seed)
    (folder / "rec").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = ("slow", "fast")[i % 2]
        t = np.arange(length)[:, None]
        x = rng.uniform(0.5, 2) * np.sin(2 * np.pi * t / (20 if label == "slow" else 8) + rng.uniform(0, 6.3,
                                                                                                  channels))
        x = x + 0.5 * rng.standard_normal((length, channels))
        name = f"rec/r{i:02d}." + ("txt" if channels == 1 else "csv")
        np.savetxt(folder / name, x, fmt="%.5f", delimiter=",")
        rows.append([name, label])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([["path", "label"], *rows])
    return manifest


def data_config(path, **settings) -> object:
    task = named("classify")
    config = task.own(DataConfig(task="classify", path=str(path)))
    config = type(config)(**{**vars(config), **settings})
    return task.decide(config)[0]


# -- reading ---------------------------------------------------------------------------------


def test_a_manifest_reads_each_recording_relative_to_it_with_its_channels(tmp_path):
    manifest = sinusoids(tmp_path / "one", n=4, length=100, channels=2)
    recordings = read_recordings(manifest)
    assert [r.name for r in recordings] == [f"rec/r{i:02d}.csv" for i in range(4)]
    assert [r.label for r in recordings] == ["slow", "fast", "slow", "fast"]
    first = np.loadtxt(tmp_path / "one" / "rec" / "r00.csv", delimiter=",")
    assert recordings[0].x.shape == (100, 2) and np.array_equal(recordings[0].x, first)


def test_bonn_protocols_group_sets_into_labels():
    assert bonn_protocol("A,E") == ["A", "E"]
    assert bonn_protocol("ABCD:E") == ["ABCD", "E"]
    assert bonn_protocol("a,b,c,d,e") == list("ABCDE")
    for bad in ("A", "A,A", "A,F", "AB:BE"):
        with pytest.raises(ConfigError, match="classes must group"):
            bonn_protocol(bad)


def test_windows_cover_every_sample_and_auto_decides_from_the_shortest(tmp_path):
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]  # the last flush with the end
    config = data_config(sinusoids(tmp_path, n=4, length=600))
    assert (config.window, config.stride, config.frame) == ("64", "32", "1")  # 600 // 8 = 75 -> 64


def test_the_scaler_frames_consecutive_samples_into_one_step():
    scaler = RecordingScaler([0.0, 10.0], [1.0, 2.0], frame=2)
    x = np.stack([np.arange(8.0), 10 + 2 * np.arange(8.0)], axis=1)  # (8, 2): both scale to 0..7
    w = scaler.windows(x, [0, 4], 4)
    assert w.shape == (2, 2, 4)  # 2 windows, 4 / 2 steps, 2 samples x 2 channels
    assert np.array_equal(w[1, 1], [6, 6, 7, 7])  # samples 6 and 7, channel by channel


def test_a_spectrum_step_is_the_log_power_of_its_hann_windowed_frame():
    t = np.arange(64.0)
    x = np.stack([np.sin(2 * np.pi * 4 * t / 16), np.sin(2 * np.pi * 2 * t / 16)], axis=1)  # bins 4 and 2
    scaler = RecordingScaler([0.0, 0.0], [1.0, 1.0], frame=16, features="spectrum")
    w = scaler.windows(x, [0, 16], 48)  # (2, 3, 2 x 9)
    assert w.shape == (2, 3, 18) and scaler.num_features == 18
    assert w[0, 0, :9].argmax() == 4 and w[0, 0, 9:].argmax() == 2  # channel by channel
    frame = x[16:32, 0] * np.hanning(16)
    assert np.allclose(w[1, 0, :9], np.log(np.abs(np.fft.rfft(frame)) ** 2 + 1e-3), atol=1e-4)


def test_overlapping_frames_step_by_the_hop_and_a_hop_of_one_frame_is_the_old_framing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 2))
    overlapping = RecordingScaler([0.0, 0.0], [1.0, 1.0], frame=16, features="spectrum", hop=8)
    w = overlapping.windows(x, [0, 36], 64)  # (2, (64 - 16) // 8 + 1 = 7, 2 x 9)
    assert w.shape == (2, 7, 18)
    frame = x[36 + 3 * 8:36 + 3 * 8 + 16, 1] * np.hanning(16)  # window 2, step 3, channel 2
    assert np.allclose(w[1, 3, 9:], np.log(np.abs(np.fft.rfft(frame)) ** 2 + 1e-3), atol=1e-4)
    samples = RecordingScaler([0.0, 0.0], [1.0, 1.0], frame=4, hop=2).windows(x, [10], 8)  # (1, 3, 4 x 2)
    assert np.array_equal(samples[0, 2], x[14:18].reshape(-1).astype(np.float32))
    side_by_side = RecordingScaler([0.0, 0.0], [1.0, 1.0], frame=16, features="spectrum")
    assert np.array_equal(side_by_side.windows(x, [0], 64), overlapping.windows(x, [0], 64)[:, ::2])
    assert RecordingScaler.from_dict({**side_by_side.to_dict(), "hop": 8}).hop == 8
    old = {k: v for k, v in side_by_side.to_dict().items() if k != "hop"}  # a run folder from before the hop
    assert RecordingScaler.from_dict(old).hop == 16


def test_samples_and_spectrum_together_are_each_step_of_the_one_then_of_the_other():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 2)) * [3.0, 0.5] + [1.0, -2.0]  # (T, C)
    center, scale = [1.0, -2.0], [3.0, 0.5]
    both = RecordingScaler(center, scale, frame=16, features="samples+spectrum", hop=8)
    samples = RecordingScaler(center, scale, frame=16, features="samples", hop=8).windows(x, [0, 50], 64)
    spectrum = RecordingScaler(center, scale, frame=16, features="spectrum", hop=8).windows(x, [0, 50], 64)
    w = both.windows(x, [0, 50], 64)  # (2, 7, 16 x 2 + 9 x 2)
    assert w.shape == (2, 7, 50) and both.num_features == 50
    assert np.array_equal(w[..., :32], samples) and np.array_equal(w[..., 32:], spectrum)
    z = (x[50 + 2 * 8:50 + 2 * 8 + 16, 0] - 1.0) / 3.0  # window 2, step 2, channel 1: its power from the samples
    assert np.allclose(w[1, 2, 32:41], np.log(np.abs(np.fft.rfft(z * np.hanning(16))) ** 2 + 1e-3), atol=1e-4)
    assert RecordingScaler.from_dict(both.to_dict()).windows(x, [3], 64).shape == (1, 7, 50)


def test_a_recording_spectrum_is_welchs_estimate_standardised_on_the_training_recordings():
    rng = np.random.default_rng(0)
    recordings = [rng.standard_normal((320, 2)) * [1.0, 3.0] + np.sin(np.arange(320) / (2 + i))[:, None]
                  for i in range(6)]  # 320 samples: segments of 64 every 32 tile them, as scipy's do
    scaler = RecordingScaler.fit(np.concatenate(recordings), frame=4)
    scaler.fit_spectrum(recordings, 64)
    assert scaler.summary_size == 2 * 33
    x = recordings[0]
    z = np.clip((x - scaler.center) / scaler.scale, -8, 8)
    _, density = welch(z, fs=1.0, window=np.hanning(64), nperseg=64, noverlap=32, detrend=False, axis=0)  # (33, 2)
    density[1:-1] /= 2  # scipy's one-sided density doubles the bins between 0 and the Nyquist frequency
    assert np.allclose(scaler.log_power(x), np.log(density + 1e-3).T.reshape(-1))  # channel by channel
    fitted = np.stack([scaler.spectrum(r) for r in recordings])  # (R, P)
    assert np.allclose(fitted.mean(0), 0, atol=1e-5) and np.allclose(fitted.std(0), 1, atol=1e-4)
    again = RecordingScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))  # as config.json keeps it
    assert np.array_equal(again.spectrum(x), scaler.spectrum(x))
    assert RecordingScaler.fit(x, frame=4).summary_size == 0 and "segment" not in RecordingScaler.fit(x).to_dict()


def test_every_window_carries_its_own_recordings_spectrum_in_its_batch(tmp_path):
    manifest = sinusoids(tmp_path, n=8, length=300)
    recordings = {r.name: r for r in read_recordings(manifest)}
    data = RecordingData.read(data_config(manifest, test_fraction=0.5, val_fraction=0.0, recording_spectrum=64))
    test = data.test
    start = 0
    for batch in data.eval_batches("test", batch_size=5):  # batches cut across recordings
        assert isinstance(batch, WindowBatch) and batch.summary.shape == (len(batch.x), 64 // 2 + 1)
        for b, r in enumerate(test.recording[start:start + len(batch.x)]):
            expected = data.tokenizer.spectrum(recordings[test.names[r]].x)
            assert np.array_equal(batch.summary[b].numpy(), expected)
        start += len(batch.x)
    assert start == len(test)
    plain = RecordingData.read(data_config(manifest, test_fraction=0.5, val_fraction=0.0))
    assert type(next(iter(plain.batcher(0).batches(0)))).__name__ == "LabelledBatch"


def test_the_classifiers_head_reads_the_summary_beside_the_pooled_state():
    torch.manual_seed(0)
    model = SequenceClassifier(0, 3, input_size=4, summary_size=5, cell="gru", hidden_size=6, num_layers=1,
                               dropout=0.0).eval()
    x, lengths, s = torch.randn(2, 7, 4), torch.tensor([7, 4]), torch.randn(2, 5)
    logits, _ = model(x, lengths, summary=s)
    c = model.pool(x, lengths)  # (B, F)
    assert torch.allclose(logits, torch.cat([c, s], -1) @ model.head.weight.T + model.head.bias, atol=1e-6)
    moved, _ = model(x, lengths, summary=s + torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.allclose(moved - logits, model.head.weight[:, -5].expand(2, 3), atol=1e-5)  # s's own columns
    batch = WindowBatch(x, lengths, torch.tensor([0, 2]), s)
    assert torch.allclose(model.loss(batch)[0], F.cross_entropy(logits, batch.y), atol=1e-6)
    with pytest.raises(ValueError, match=r"expected a summary of shape \(2, 5\), got None"):
        model(x, lengths)
    with pytest.raises(ValueError, match=r"expected a summary of shape \(2, 0\), got \(2, 5\)"):
        SequenceClassifier(0, 3, input_size=4, cell="gru", hidden_size=6)(x, lengths, summary=s)
    with pytest.raises(ConfigError, match="needs --encoder rnn or tdnn"):
        SequenceClassifier(0, 3, input_size=4, summary_size=5, encoder="esn", bidirectional=False, hidden_size=6)


def test_evaluation_windows_have_their_own_stride_and_training_keeps_its_own(tmp_path):
    manifest = sinusoids(tmp_path, n=8, length=300)
    plain = RecordingData.read(data_config(manifest, window="64", stride="32", test_fraction=0.25))
    dense = RecordingData.read(data_config(manifest, window="64", stride="32", eval_stride="8", test_fraction=0.25))
    assert all(np.array_equal(a, b) for a, b in zip(plain.train.ids, dense.train.ids))
    per_recording = len(window_starts(300, 64, 8))  # 30: every 8 samples, the last flush with the end
    assert len(dense.test) == len(dense.test.names) * per_recording and len(plain.test) < len(dense.test)
    assert len(dense.val) == len(dense.val.names) * per_recording
    second = _recording(manifest, dense.test.names[1])  # its second window starts at sample 8
    assert np.array_equal(dense.test.ids[per_recording + 1], dense.tokenizer.windows(second, [8], 64)[0])


def _recording(manifest: Path, name: str) -> np.ndarray:
    return next(r.x for r in read_recordings(manifest) if r.name == name)


# -- the split by recording ------------------------------------------------------------------


def test_folds_are_stratified_and_hold_each_recording_out_once():
    labels = ["a"] * 23 + ["b"] * 7
    fold = stratified_folds(labels, 5)
    for k in range(5):
        in_fold = np.asarray(labels)[fold == k]
        assert abs((in_fold == "a").sum() - 23 / 5) < 1 and abs((in_fold == "b").sum() - 7 / 5) < 1
    assert sorted(np.bincount(fold).tolist()) == [6] * 5


def test_another_fold_seed_is_another_partition_that_still_holds_each_recording_out_once(tmp_path):
    manifest = sinusoids(tmp_path, n=20, length=300)
    held_out = {}
    for seed in (0, 1):
        tests = [RecordingData.read(data_config(manifest, folds=4, fold=k, fold_seed=seed, val_fraction=0.0)).test
                 for k in (1, 2, 3, 4)]
        assert sorted(n for t in tests for n in t.names) == sorted(r.name for r in read_recordings(manifest))
        assert all(len(t.gold) == 5 and sum(t.gold) in (2, 3) for t in tests)  # stratified: 10 of each label
        held_out[seed] = [frozenset(t.names) for t in tests]
    assert set(held_out[0]) != set(held_out[1])  # not the same folds in another order


@pytest.mark.parametrize("spectrum", [0, 64])
def test_no_window_of_a_test_recording_is_in_training_and_the_scaler_never_sees_one(tmp_path, spectrum):
    manifest = sinusoids(tmp_path, n=20, length=300)
    seen_in_test = []
    for k in (1, 2, 3, 4):
        data = RecordingData.read(data_config(manifest, folds=4, fold=k, val_fraction=0.2,
                                              recording_spectrum=spectrum))
        train, val, test = data.train, data.val, data.test
        assert not set(train.names) & set(test.names) and not set(val.names) & set(test.names)
        assert not set(train.names) & set(val.names)
        train_windows = {w.tobytes() for w in train.ids}
        assert not any(w.tobytes() in train_windows for w in test.ids)  # no test window, byte for byte
        assert all(test.names[r] not in train.names for r in test.recording)
        seen_in_test += test.names
        # a test recording changed beyond recognition leaves the scaler and training exactly as they were
        held_out = tmp_path / test.names[0]
        kept = held_out.read_text()
        held_out.write_text("\n".join(str(1e6 + t % 7) for t in range(300)))
        again = RecordingData.read(data_config(manifest, folds=4, fold=k, val_fraction=0.2,
                                               recording_spectrum=spectrum))
        held_out.write_text(kept)
        assert again.tokenizer.to_dict() == data.tokenizer.to_dict()
        assert all(np.array_equal(a, b) for a, b in zip(again.train.ids, train.ids))
    assert sorted(seen_in_test) == sorted(r.name for r in read_recordings(manifest))  # each held out once


# -- the recording's decision ------------------------------------------------------------------


class MeanSign(nn.Module):
    """Logits (mean of x, -mean of x) a window: a model whose every output is known."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # where the evaluation finds the device

    def forward(self, x, lengths):
        m = x.mean(dim=(1, 2))
        return torch.stack([m, -m], dim=-1), None


class MeanSignAndSpectrum(MeanSign):
    """MeanSign with the first value of the recording's spectrum added to the first logit."""

    def forward(self, x, lengths, summary):
        (a, b), _ = MeanSign.forward(self, x, lengths)[0].T, None
        return torch.stack([a + summary[:, 0], b], dim=-1), None


def test_a_recording_takes_the_label_of_its_windows_summed_log_probabilities(tmp_path):
    manifest = sinusoids(tmp_path, n=6, length=300)
    data = RecordingData.read(data_config(manifest, test_fraction=0.5, val_fraction=0.0))
    model = MeanSign().train()
    result = evaluate_recordings(model, data.test, data.labels, batch_size=5)  # batches cut across recordings
    logp = torch.log_softmax(torch.tensor(np.stack([[w.mean(), -w.mean()] for w in data.test.ids])), -1)
    for r in range(len(data.test.names)):
        expected = logp[torch.from_numpy(data.test.recording == r)].sum(0)
        assert torch.allclose(result["evidence"][r], expected.double(), atol=1e-6)
        assert result["predicted"][r] == data.labels[int(expected.argmax())]
    assert model.training  # evaluation leaves the model's mode as it was


def test_each_windows_evidence_reads_its_own_recordings_spectrum(tmp_path):
    manifest = sinusoids(tmp_path, n=6, length=300)
    data = RecordingData.read(data_config(manifest, test_fraction=0.5, val_fraction=0.0, recording_spectrum=64))
    result = evaluate_recordings(MeanSignAndSpectrum(), data.test, data.labels, batch_size=5)
    for r in range(len(data.test.names)):
        mine = [w.mean() for w, owner in zip(data.test.ids, data.test.recording) if owner == r]
        logits = torch.tensor([[m + data.test.summary[r, 0], -m] for m in mine], dtype=torch.float64)
        assert torch.allclose(result["evidence"][r], torch.log_softmax(logits, -1).sum(0), atol=1e-5)


# -- the command line -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_classifier_separates_two_signal_families_and_predict_writes_each_recordings_label(tmp_path, cli_here):
    manifest = sinusoids(tmp_path / "data", n=40, length=600)
    out = tmp_path / "run"
    result = cli_here("train", manifest, *TINY, "--max-steps", "80", "--eval-every", "40", "--test-fraction",
                      "0.25", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "window auto: 64 samples" in result.stdout.splitlines()[0]
    test_accuracy = float(result.stdout.split("test (best checkpoint) ")[1].split("accuracy ")[1].split(",")[0])
    assert test_accuracy >= 0.9, result.stdout  # 10 held-out recordings
    held_out = sinusoids(tmp_path / "new", n=10, length=400, seed=1)  # other recordings, shorter
    predicted = cli_here("predict", out, held_out, "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["path", "label", "prediction"] and len(rows) == 11
    assert sum(r[1] == r[2] for r in rows[1:]) >= 9
    assert "10 recordings with labels; accuracy" in predicted.stderr
    assert json.loads((out / "config.json").read_text())["tokenizer"]["kind"] == "recordings"


def test_cross_validation_folds_through_the_cli_hold_out_the_named_fold(tmp_path, cli_here):
    manifest = sinusoids(tmp_path, n=20, length=300)
    result = cli_here("train", manifest, *TINY, "--folds", "5", "--fold", "2", "--max-steps", "2", "--out",
                      tmp_path / "run", "--eval-every", "2")
    assert result.returncode == 0, result.stderr
    assert "14/2/4 train/val/test recordings, fold 2 of 5" in result.stdout  # val: 10 % of 8 a label, rounded
    other = cli_here("train", manifest, *TINY, "--folds", "5", "--fold", "2", "--fold-seed", "3", "--max-steps", "2",
                     "--out", tmp_path / "other", "--eval-every", "2")
    assert "fold 2 of 5 (fold seed 3)" in other.stdout, other.stderr
    assert json.loads((tmp_path / "other" / "config.json").read_text())["data"]["fold_seed"] == 3


def test_a_run_with_recording_spectra_trains_predicts_and_keeps_their_standardisation(tmp_path, cli_here,
                                                                                       user_error):
    manifest = sinusoids(tmp_path / "data", n=12, length=300)
    run = tmp_path / "run"
    result = cli_here("train", manifest, *TINY, "--recording-spectrum", "64", "--max-steps", "3", "--eval-every", "3",
                      "--out", run)
    assert result.returncode == 0, result.stderr
    assert "each recording's whole spectrum (33 values) beside" in result.stdout
    scaler = json.loads((run / "config.json").read_text())["tokenizer"]
    assert scaler["segment"] == 64 and len(scaler["spectrum_center"]) == len(scaler["spectrum_scale"]) == 33
    predicted = cli_here("predict", run, manifest, "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert len(list(csv.reader(open(tmp_path / "p.csv")))) == 13
    user_error(cli_here("predict", run, sinusoids(tmp_path / "short", n=4, length=60), "--out", tmp_path / "q.csv"),
               "has 60 samples, fewer than one --recording-spectrum segment of 64")
    user_error(cli_here("export", run, "--out", tmp_path / "exported"), "export does not carry yet")
    assert not (tmp_path / "q.csv").exists() and not (tmp_path / "exported").exists()


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "recipes").glob("bonn-*.json")))
def test_the_bonn_recipes_are_settings_that_apply_to_recordings(tmp_path, cli_here, recipe):
    """recipes/bonn-*.json (RESULTS' Bonn rows) train through `--config` on recordings: no unknown key, none
    refused as not applying; here on small generated recordings, with the window and width cut to fit."""
    manifest = sinusoids(tmp_path, n=20, length=300)
    settings = json.loads(recipe.read_text())
    segment = ["--recording-spectrum", "64"] if settings.get("recording_spectrum") else []
    result = cli_here("train", manifest, "--task", "classify", "--config", recipe, "--folds", "5", "--window", "64",
                      "--stride", "32", "--frame", "8", "--frame-hop", "8", "--hidden-size", "8", "--max-steps", "2",
                      *segment, "--device", "cpu", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    cut = ("window", "stride", "frame", "frame_hop", "hidden_size", "recording_spectrum")
    kept = {k: v for k, v in settings.items() if k not in cut}
    flat = {k: v for part in ("model", "data", "train") for k, v in saved.get(part, {}).items()}
    assert {k: flat.get(k) for k in kept} == kept


@pytest.mark.parametrize("flags, message", [
    (["--fold", "2"], "--fold needs --folds"),
    (["--fold-seed", "1"], "--fold-seed needs --folds"),
    (["--classes", "A,E"], "--classes needs the Bonn EEG archive"),
    (["--folds", "5", "--test-fraction", "0.2"], "--test-fraction needs no --test-path and no --folds"),
    (["--text-column", "path"], "--text-column needs --task classify on a table of texts"),
    (["--tokenizer", "word"], "--tokenizer needs a text or a table"),
    (["--window", "ten"], "window must be auto or a positive number"),
    (["--folds", "3", "--fold", "4"], "fold one of 1..folds"),
    (["--window", "32", "--frame", "64"], "frame (64) must not exceed the window (32)"),
    (["--frame", "4", "--frame-hop", "8"], "frame_hop (8) must not exceed the frame (4)"),
    (["--eval-stride", "0"], "eval_stride must be auto or a positive number"),
    (["--recording-spectrum", "1"], "recording_spectrum must be 0 (off) or at least 2"),
    (["--recording-spectrum", "512"], "has 300 samples, fewer than one --recording-spectrum segment of 512"),
])
def test_settings_that_do_not_apply_to_recordings_are_refused(tmp_path, cli_here, user_error, flags, message):
    manifest = sinusoids(tmp_path, n=4, length=300)
    result = cli_here("train", manifest, *TINY, *flags, "--out", tmp_path / "run")
    user_error(result, message)
    assert not (tmp_path / "run").exists()


def _manifest_with(tmp_path, name: str, content: str) -> Path:
    manifest = sinusoids(tmp_path, n=4, length=300)
    if content is not None:  # else the manifest names a file that is not there
        (tmp_path / "rec" / name).write_text(content)
    with open(manifest, "a", newline="") as f:
        csv.writer(f).writerow([f"rec/{name}", "slow"])
    return manifest


@pytest.mark.parametrize("name, content, message", [
    ("gone.txt", None, "line 6: no such recording"),
    ("two.csv", "1,2\n3,4\n" * 200, "rec/two.csv has 2 channel(s) where rec/r00.txt has 1"),
    ("short.txt", "1\n2\n3\n", "rec/short.txt has 3 samples, fewer than one window of 32"),
    ("nan.txt", "1\n2\nnan\n4\n" * 100, "nan.txt: sample 3, channel 1 is nan"),
    ("inf.txt", "1\n2\n4\ninf\n" * 100, "inf.txt: sample 4, channel 1 is inf"),
    ("words.txt", "1\ntwo\n" * 100, "words.txt: not a numeric recording"),
    ("flat.csv", "1,5\n2,5\n" * 100, "flat.csv: channel 2 is constant (5) throughout"),
])
def test_bad_recordings_get_one_line_naming_the_file_and_nothing_is_written(tmp_path, cli_here, user_error,
                                                                           name, content, message):
    manifest = _manifest_with(tmp_path, name, content)
    result = cli_here("train", manifest, *TINY, "--window", "32", "--out", tmp_path / "run")
    user_error(result, message)
    assert not (tmp_path / "run").exists()


def test_predict_refuses_a_bad_manifest_and_writes_nothing(tmp_path, cli_here, user_error):
    manifest = sinusoids(tmp_path / "data", n=8, length=300)
    run = tmp_path / "run"
    assert cli_here("train", manifest, *TINY, "--max-steps", "1", "--out", run).returncode == 0
    other = sinusoids(tmp_path / "other", n=4, length=300, channels=2)
    user_error(cli_here("predict", run, other, "--out", tmp_path / "p.csv"), "has 2 channel(s); the model was "
                                                                            "trained on 1")
    short = sinusoids(tmp_path / "short", n=4, length=20)
    user_error(cli_here("predict", run, short, "--out", tmp_path / "p.csv"), "fewer than one window of 32")
    assert not (tmp_path / "p.csv").exists()


# -- the real Bonn archive ----------------------------------------------------------------------


@pytest.mark.skipif(not BONN.exists(), reason="the Bonn EEG zip is in ../shared/data/bonn_eeg (not in this checkout)")
def test_the_bonn_zip_reads_as_its_protocols_say_without_unpacking(tmp_path):
    recordings = read_recordings(BONN.parent, "ABCD:E")  # the folder holding the zip
    assert len(recordings) == 500 and {len(r.x) for r in recordings} == {4097}
    assert sum(r.label == "E" for r in recordings) == 100 and sum(r.label == "ABCD" for r in recordings) == 400
    assert recordings[0].x.shape == (4097, 1) and recordings[0].x.dtype == np.float64
    data = RecordingData.read(data_config(BONN, classes="A,E", folds=10, fold=3))
    assert (len(data.train.names), len(data.val.names), len(data.test.names)) == (162, 18, 20)
    assert sorted(set(data.test.names)) == sorted(data.test.names)
    assert len(data.test) == 20 * 16  # 15 starts every 256 and one flush with the end
    assert [data.labels[g] for g in data.test.gold].count("E") == 10
