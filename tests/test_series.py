"""Numeric series tagged per sample: reading, the time-ordered split, normalisation
fitted on training samples only, learning, predict, and bad values."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnkit import DataConfig, TrainConfig, Trainer
from rnnkit.data.series import CLIP, read_series, windows
from rnnkit.errors import DataError
from rnnkit.models import SequenceTagger
from rnnkit.tasks import read_data


def recording(n=1200, seed=0):
    """Two channels; the label is 1 while a slow hidden state is high, which the
    signal shows only as a change in the variance of channel 0 (no sample alone tells)."""
    rng = np.random.default_rng(seed)
    state = (np.sin(np.arange(n) / 37.0) > 0).astype(int)
    x = np.stack([rng.normal(0, 1 + 2 * state), rng.normal(100, 5, n)], axis=1)
    return x, state


def write_csv(path, x, y=None):
    header = "a,b" + (",label" if y is not None else "")
    rows = [",".join(f"{v:.5f}" for v in r) + (f",{y[i]}" if y is not None else "") for i, r in enumerate(x)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def test_split_is_in_time_and_the_scale_comes_from_training_samples_only(tmp_path):
    x, y = recording()
    x[1100, 1] = 1e9  # an artefact in the test part
    path = tmp_path / "rec.csv"
    write_csv(path, x, y)
    data = read_data(path, DataConfig(task="tag", seq_len=100, val_fraction=0.15,
                                                   test_fraction=0.15))
    assert data.tokenizer.num_features == 2 and data.labels == ["0", "1"]
    np.testing.assert_allclose(data.tokenizer.center, np.median(x[:840], axis=0), atol=1e-4)
    assert len(data.val) == 1 and len(data.val.ids[0]) == 180 and len(data.test.ids[0]) == 180
    np.testing.assert_array_equal(data.test.labels[0], y[1020:])  # the last 15%, in order
    assert data.test.ids[0].max() == CLIP  # the artefact is clipped, not scaled
    assert [len(w) for w in data.train.ids] == [100] * 16  # stride 50 over 840, the last flush with the end
    assert windows(840, 100)[-1] == (740, 840)


@pytest.mark.parametrize("content,message", [
    ("a,label\n1.0,0\nnan,1\n3.0,0\n", "sample 2, feature 1 is nan"),
    ("a,label\n1.0,0\ninf,1\n3.0,0\n", "sample 2, feature 1 is inf"),
    ("a,label\n1.0,0\nx,1\n", "sample 2 has 'x' where a number belongs"),
    ("a,label\n1.0,0\n2.0\n", "sample 2 has 1 values where the file has 2 columns"),
])
def test_bad_values_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_series(path)


def test_arff_and_npz_read_like_csv(tmp_path):
    arff = tmp_path / "r.arff"
    arff.write_text("@RELATION r\n@ATTRIBUTE a NUMERIC\n@ATTRIBUTE c {0,1}\n@DATA\n1.5,0\n2.5,1\n")
    x, y, header, _ = read_series(arff)
    assert x.tolist() == [[1.5], [2.5]] and y == ["0", "1"] and header == ["a", "c"]
    npz = tmp_path / "r.npz"
    np.savez(npz, x=np.ones((3, 2)), y=np.array([0, 1, 1]))
    x, y, _, _ = read_series(npz)
    assert x.shape == (3, 2) and y == ["0", "1", "1"]


def test_a_bidirectional_tagger_learns_a_state_no_single_sample_shows(tmp_path):
    x, y = recording(2400)
    path = tmp_path / "rec.csv"
    write_csv(path, x, y)
    data = read_data(path, DataConfig(task="tag", seq_len=120, batch_size=8, val_fraction=0.2))
    torch.manual_seed(0)
    model = SequenceTagger(0, 2, input_size=2, cell="gru", hidden_size=16, num_layers=1, dropout=0.0)
    cfg = TrainConfig(max_epochs=25, eval_every=1000, lr=1e-2, device="cpu", log_every=10)
    result = Trainer(model, data, cfg, out=tmp_path / "run", quiet=True).fit()
    assert result["val_accuracy"] > 0.85, result  # a per-sample rule gets about 0.7


@pytest.mark.slow
def test_predict_tags_every_sample_and_scores_unseen_labels_as_errors(tmp_path, cli_here):
    x, y = recording(600)
    path = tmp_path / "rec.csv"
    write_csv(path, x, y)
    run = tmp_path / "run"
    train = cli_here("train", path, "--task", "tag", "--seq-len", "50", "--hidden-size", "8", "--num-layers", "1",
                     "--max-steps", "5", "--device", "cpu", "--out", run)
    assert train.returncode == 0, train.stderr
    # predict through the real entry point: its output and its exit code 2
    unlabelled = tmp_path / "new.csv"
    write_csv(unlabelled, x[:30])
    out = subprocess.run([sys.executable, "-m", "rnnkit", "predict", run, unlabelled], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "a,b,prediction" and len(lines) == 31 and {ln.split(",")[-1] for ln in lines[1:]} <= {"0", "1"}
    strange = tmp_path / "strange.csv"
    write_csv(strange, x[:30], [7] * 30)
    scored = subprocess.run([sys.executable, "-m", "rnnkit", "predict", run, strange], capture_output=True,
                            text=True)  # a gold label it never saw: predicted anyway, scored as the error it is
    assert scored.returncode == 0, scored.stderr
    assert "accuracy 0.0000" in scored.stderr and "30 token(s) carry 1 gold label(s) the model was not trained on: " \
        "'7' (30); each counts as an error" in scored.stderr
