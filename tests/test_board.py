"""--diagnostics-every and --log tensorboard: what the trainer measures and logs, read
back from metrics.jsonl and from TensorBoard's own event reader."""

import json
import sys

import pytest
import torch

from rnnkit import DataConfig, LanguageModel, SequenceClassifier, TextData, TrainConfig, Trainer
from rnnkit.errors import ConfigError
from rnnkit.tasks import LanguageModelTraining, read_data

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="needs the tensorboard package (pip install tensorboard)")


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, make_text):
    folder = tmp_path_factory.mktemp("board")
    (folder / "corpus.txt").write_text(make_text(200))
    data = TextData.from_file(folder / "corpus.txt", DataConfig(batch_size=8, seq_len=24))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, cell="gru", hidden_size=24, num_layers=2, embedding_dim=8)
    config = LanguageModelTraining(max_steps=12, eval_every=6, log_every=2, diagnostics_every=4, log="tensorboard",
                                   sample_length=30, device="cpu")
    Trainer(model, data, config, out=folder / "run", quiet=True).fit()
    rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
    events = event_accumulator.EventAccumulator(str(folder / "run" / "tensorboard"),
                                                size_guidance={event_accumulator.IMAGES: 0,
                                                               event_accumulator.TENSORS: 0})
    return rows, events.Reload()


def test_diagnostics_are_measured_every_n_steps_on_every_layer(lm_run):
    rows, _ = lm_run
    measured = [r for r in rows if "diagnostics" in r]
    assert [r["step"] for r in measured] == [4, 8, 12]
    d = measured[-1]["diagnostics"]
    layers = ["rnn layer 1", "rnn layer 2"]
    assert list(d["gradient_flow"]) == list(d["jacobian_norms"]) == list(d["spectral_radius"]) == layers
    assert all(len(v) == 24 and all(x > 0 for x in v) for v in d["gradient_flow"].values())  # every step reached
    assert all(v[-1] == pytest.approx(1.0) for v in d["jacobian_norms"].values())  # ∂h_n/∂h_n = I
    assert set(d["spectral_radius"]["rnn layer 1"]) == {"reset", "update", "candidate"}
    assert all(0 <= left <= 1 and 0 <= right <= 1 for gates in d["saturation"].values()
               for left, right in gates.values())


def test_tensorboard_holds_what_metrics_jsonl_holds(lm_run):
    rows, events = lm_run
    tags = events.Tags()
    for key in ("loss", "lr", "grad_norm", "val_loss"):
        logged = [(r["step"], r[key]) for r in rows if key in r]
        read = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in read] == [s for s, _ in logged] and logged, key
        assert [v for _, v in read] == pytest.approx([v for _, v in logged], rel=1e-6), key
    radii = [t for t in tags["scalars"] if t.startswith("spectral_radius/")]
    assert sorted(radii) == sorted(f"spectral_radius/rnn layer {k}/{g}" for k in (1, 2)
                                   for g in ("reset", "update", "candidate"))
    assert any(t.startswith("saturation/rnn layer 2/") for t in tags["scalars"])
    assert [e.step for e in events.Images("gradient_flow")] == [4, 8, 12]
    png = events.Images("gradient_flow")[0].encoded_image_string
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # a drawn figure, not an empty canvas
    samples = [r["sample"] for r in rows if "sample" in r]
    assert len(samples) == 2 and all(len(s) == 30 for s in samples)
    text = events.Tensors("sample/text_summary")
    assert [e.step for e in text] == [6, 12]
    assert samples[0].split("\n")[0] in text[0].tensor_proto.string_val[0].decode()


def test_diagnostics_need_cells_and_tensorboard_its_package(tmp_path, spam_table, monkeypatch):
    (tmp_path / "spam.csv").write_text(spam_table(40))
    data = read_data(tmp_path / "spam.csv", DataConfig(task="classify", batch_size=8))
    tdnn = SequenceClassifier(data.vocab_size, 2, encoder="tdnn", hidden_size=8, embedding_dim=4)
    with pytest.raises(ConfigError, match="--diagnostics-every inspects recurrent cells, and this model has none"):
        Trainer(tdnn, data, TrainConfig(max_steps=2, diagnostics_every=1, device="cpu"), out=tmp_path / "a", quiet=True)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as where it is not installed
    rnn = SequenceClassifier(data.vocab_size, 2, hidden_size=8, embedding_dim=4)
    with pytest.raises(ConfigError, match="--log tensorboard needs the tensorboard package: pip install tensorboard"):
        Trainer(rnn, data, TrainConfig(max_steps=2, log="tensorboard", device="cpu"), out=tmp_path / "b",
                quiet=True).fit()


def test_the_cli_refuses_diagnostics_without_cells(cli_here, tmp_path, spam_table, user_error):
    (tmp_path / "spam.csv").write_text(spam_table(40))
    result = cli_here("train", tmp_path / "spam.csv", "--task", "classify", "--encoder", "tdnn",
                      "--diagnostics-every", "5", "--out", tmp_path / "run")
    user_error(result, "--diagnostics-every needs recurrent cells to inspect")
