"""The echo state network as a model (--encoder esn): a fixed reservoir whose
readout is fitted in closed form, through the command line, on generated
data with a known answer."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnkit.data.sequences import collate
from rnnkit.layers.reservoir import Reservoir
from rnnkit.models import SequenceClassifier
from rnnkit.training import closed_form
from rnnkit.training.checkpoint import Progress
from rnnkit.tasks import load_run
from rnnkit.training.runs import BEST, load_tensors

ESN = ["--encoder", "esn", "--hidden-size", "150", "--batch-size", "8", "--device", "cpu"]


def write_series(path, n: int, seed: int) -> None:
    """A signal u_t ~ N(0, 1) and, each sample, whether the mean of its last 8 values is above 0:
    a label that needs a memory of the input, which a readout of u_t alone cannot give."""
    u = np.random.default_rng(seed).standard_normal(n)
    recent = np.convolve(u, np.ones(8) / 8)[:n]  # mean of u_(t-7..t)
    rows = [f"{v:.5f},{'high' if m > 0 else 'low'}" for v, m in zip(u, recent)]
    path.write_text("u,state\n" + "\n".join(rows) + "\n")


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_an_esn_tagger_learns_a_memory_task_in_one_closed_form_pass_and_predicts_from_its_run(cli_here, tmp_path):
    write_series(tmp_path / "train.csv", 3000, 0)
    write_series(tmp_path / "new.csv", 800, 1)
    run = tmp_path / "run"
    result = cli_here("train", tmp_path / "train.csv", "--task", "tag", *ESN, "--seq-len", "200", "--washout", "20",
                      "--input-scaling", "0.3", "--out", run)
    assert result.returncode == 0, result.stderr
    assert "150-unit echo state reservoir (ρ 0.9, leak rate 1)" in result.stdout
    assert "done (closed form)" in result.stdout
    rows = metrics(run)
    fitted = [r for r in rows if "closed_form_rows" in r]
    assert len(fitted) == 1 and fitted[0]["closed_form_rows"] > 2000  # one pass, every window past its washout
    assert [r["val_accuracy"] for r in rows if "val_accuracy" in r][0] > 0.88
    # the weights of the run are the reservoir of the settings (buffers saved) and the fitted readout
    model, _, doc = load_run(run)
    tensors, _ = load_tensors(run / BEST)
    assert torch.equal(tensors["encoder.layer.weight"], Reservoir(1, 150, 0.9, 1.0, 0.3, 0.1, 0).weight)
    assert torch.equal(model.head.weight, tensors["head.weight"]) and model.head.weight.abs().sum() > 0
    result = cli_here("predict", run, tmp_path / "new.csv", "--out", tmp_path / "predicted.csv")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stderr.split("accuracy ")[1].split()[0])
    assert accuracy > 0.88
    assert len((tmp_path / "predicted.csv").read_text().splitlines()) == 801
    # resuming a fitted run keeps its readout
    again = cli_here("train", tmp_path / "train.csv", "--task", "tag", *ESN, "--seq-len", "200", "--washout", "20",
                     "--input-scaling", "0.3", "--out", run, "--resume")
    assert again.returncode == 0, again.stderr
    assert torch.equal(load_run(run)[0].head.weight, model.head.weight)


def test_the_readout_of_the_states_alone_needs_the_reservoirs_memory(cli_here, tmp_path):
    """The same task with a reservoir that has almost no memory (ρ 0.01) is much worse: the memory
    the label needs is the reservoir's."""
    write_series(tmp_path / "train.csv", 3000, 0)
    run = tmp_path / "run"
    result = cli_here("train", tmp_path / "train.csv", "--task", "tag", *ESN, "--seq-len", "200", "--washout", "20",
                      "--input-scaling", "0.3", "--spectral-radius", "0.01", "--out", run)
    assert result.returncode == 0, result.stderr
    assert [r["val_accuracy"] for r in metrics(run) if "val_accuracy" in r][0] < 0.8


def test_an_esn_classifier_fits_its_readout_on_pooled_states(cli_here, spam_table, tmp_path):
    (tmp_path / "table.csv").write_text(spam_table(200))
    run = tmp_path / "run"
    result = cli_here("train", tmp_path / "table.csv", "--task", "classify", *ESN, "--pooling", "mean",
                      "--embedding-dim", "16", "--ridge", "0.01", "--out", run)
    assert result.returncode == 0, result.stderr
    assert [r["val_accuracy"] for r in metrics(run) if "val_accuracy" in r][0] > 0.9
    result = cli_here("predict", run, tmp_path / "table.csv")
    assert result.returncode == 0 and float(result.stderr.split("accuracy ")[1].split()[0]) > 0.9


def signal_families(count: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """Recordings (T, 1) of two families with the same mean and variance: a sine of a random
    period between 8 and 12 samples plus noise (label 0), and noise filtered to the same power
    at low frequency (an AR(1) at 0.9, label 1); lengths 60 to 100."""
    rng = np.random.default_rng(seed)
    recordings, labels = [], []
    for n in range(count):
        T, label = int(rng.integers(60, 101)), n % 2
        if label == 0:
            x = np.sqrt(2) * np.sin(2 * np.pi * np.arange(T) / rng.uniform(8, 12) + rng.uniform(0, 2 * np.pi))
        else:
            x = np.zeros(T)
            for t in range(1, T):
                x[t] = 0.9 * x[t - 1] + np.sqrt(1 - 0.81) * rng.standard_normal()
        recordings.append((x + 0.1 * rng.standard_normal(T)).astype(np.float32)[:, None])
        labels.append(label)
    return recordings, labels


def test_an_esn_classifier_of_vectors_separates_two_generated_signal_families_by_its_closed_form_fit():
    """The closed-form path on a classifier of vectors, as the Trainer runs it (a stand-in trainer
    with the batches): the readout of the pooled states separates sines from coloured noise, which
    the mean and variance of the raw signal cannot."""
    model = SequenceClassifier(0, 2, input_size=1, encoder="esn", hidden_size=100, pooling="mean",
                               spectral_radius=0.9, input_scaling=0.5, ridge=1e-3)
    train, labels = signal_families(200, 0)
    batches = [collate(train[i:i + 16], labels[i:i + 16]) for i in range(0, 200, 16)]
    rows = []
    trainer = SimpleNamespace(model=model, progress=Progress(), device=torch.device("cpu"),
                              batcher=SimpleNamespace(batches=lambda epoch, start: iter(batches)),
                              data=SimpleNamespace(config=SimpleNamespace(path="generated")), _log=rows.append)
    assert closed_form.applies(model) and closed_form.fit_readout(trainer) == "closed form"
    assert trainer.progress.step == len(batches) and rows[0]["closed_form_rows"] == 200
    test, truth = signal_families(100, 1)
    predicted = model.eval().predict(*collate(test, truth)[:2])
    assert (predicted.numpy() == np.array(truth)).mean() > 0.95
    assert not closed_form.applies(SequenceClassifier(0, 2, input_size=1, hidden_size=8))


@pytest.mark.parametrize("flags,message", [
    (["--task", "tag", "--encoder", "esn", "--optimizer", "adam"],
     "--optimizer needs training by gradient steps (--encoder rnn or tdnn; an esn's readout is fitted in closed"),
    (["--task", "tag", "--encoder", "esn", "--num-layers", "2"], "--num-layers needs --encoder rnn or tdnn"),
    (["--task", "tag", "--encoder", "esn", "--bidirectional", "false"], "--bidirectional needs --encoder rnn or tdnn"),
    (["--task", "tag", "--encoder", "esn", "--bidirectional", "true"], "an esn encoder reads one way: bidirectional"),
    (["--task", "tag", "--spectral-radius", "0.8"], "--spectral-radius needs --encoder esn"),
    (["--task", "classify", "--encoder", "esn", "--washout", "5"],
     "--washout needs --task tag or forecast --encoder esn"),
    (["--task", "classify", "--encoder", "esn", "--pooling", "attention"], "pool by last, mean or max"),
    (["--task", "seq2seq", "--encoder", "esn"], "encoder must be one of rnn, tdnn; got 'esn'"),
    (["--task", "tag", "--encoder", "esn", "--leak-rate", "1.5"], "leak_rate must be in (0, 1]; got 1.5"),
])
def test_settings_an_esn_does_not_read_are_refused_in_one_line(cli_here, user_error, tmp_path, flags, message):
    write_series(tmp_path / "train.csv", 300, 0)
    result = cli_here("train", tmp_path / "train.csv", *flags, "--out", tmp_path / "run")
    user_error(result, message)
    assert not (tmp_path / "run").exists()


def test_lr_find_is_refused_for_an_esn(cli_here, user_error, tmp_path):
    write_series(tmp_path / "train.csv", 300, 0)
    result = cli_here("lr-find", tmp_path / "train.csv", "--task", "tag", "--encoder", "esn", "--out", tmp_path / "f")
    user_error(result, "an esn's readout is fitted in closed form (no learning rate)")
    assert not (tmp_path / "f").exists()


def test_an_esn_forecaster_recovers_an_ar2_process_noise_and_its_intervals_cover(cli_here, tmp_path):
    """y_t = 0.6 y_(t-1) - 0.3 y_(t-2) + ε_t, σ = 0.5: the closed-form readout's one-step RMSE is the
    noise's, and its Gaussian variance (the fit's residual) gives 80 % intervals that cover about 80 %."""
    rng = np.random.default_rng(0)
    y = np.zeros(3000)
    for t in range(2, len(y)):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + rng.normal(0, 0.5)
    (tmp_path / "ar2.csv").write_text("value\n" + "\n".join(f"{v:.5f}" for v in y) + "\n")
    run = tmp_path / "run"
    result = cli_here("train", tmp_path / "ar2.csv", "--task", "forecast", "--encoder", "esn", "--hidden-size", "50",
                      "--input-scaling", "0.3", "--washout", "10", "--seq-len", "60", "--ridge", "1e-4",
                      "--device", "cpu", "--out", run)
    assert result.returncode == 0, result.stderr
    assert "done (closed form)" in result.stdout
    val = [r for r in metrics(run) if "val_rmse" in r][0]
    assert 0.45 < val["val_rmse"] < 0.58, val  # the noise's 0.5 (nothing does better), ± 0.02 on 300 steps
    result = cli_here("eval", run, "--horizon", "1", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert 0.72 < scores["coverage_80"] < 0.88, scores  # 300 origins: ± 0.023 by chance alone


def test_an_esn_classifies_recordings_whole_from_two_generated_signal_families(cli_here, tmp_path):
    """Recordings classified whole (a manifest, windows, a label a recording from its windows'
    evidence) with the readout fitted in closed form: slow and fast noisy sinusoids apart."""
    from test_recordings import sinusoids

    manifest = sinusoids(tmp_path / "data", n=40, length=600)
    out = tmp_path / "run"
    result = cli_here("train", manifest, "--task", "classify", "--encoder", "esn", "--hidden-size", "50",
                      "--pooling", "mean", "--input-scaling", "0.5", "--test-fraction", "0.25", "--device", "cpu",
                      "--out", out)
    assert result.returncode == 0, result.stderr
    assert "done (closed form)" in result.stdout
    test_accuracy = float(result.stdout.split("test (best checkpoint) ")[1].split("accuracy ")[1].split(",")[0])
    assert test_accuracy >= 0.9, result.stdout  # 10 held-out recordings
    held_out = sinusoids(tmp_path / "new", n=10, length=400, seed=1)
    predicted = cli_here("predict", out, held_out, "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert "10 recordings with labels; accuracy" in predicted.stderr
    assert float(predicted.stderr.split("accuracy ")[1].split()[0]) >= 0.9
