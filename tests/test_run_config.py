"""config.json as a typed Run, and run folders of the format rnnkit wrote before
2026-12-06 (format 1: every setting of every task), kept in tests/data/format1
(a classifier and a character language model, 6 steps each, written by that
rnnkit): they load, predict, sample, evaluate and resume through one migration."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_main

from rnnkit.errors import CheckpointError
from rnnkit.models import ClassifierConfig, LanguageModelConfig
from rnnkit.tasks import ClassifyData, LanguageModelTraining, load_run, named, read_run
from rnnkit.training.run_config import migrate
from rnnkit.training.runs import BEST, LAST, read_metadata

FORMAT1 = Path(__file__).parent / "data" / "format1"


@pytest.fixture
def old(tmp_path, monkeypatch):
    """A copy of the format-1 folders (their config.json names their data by relative path)."""
    shutil.copytree(FORMAT1, tmp_path / "format1")
    monkeypatch.chdir(tmp_path / "format1")
    return tmp_path / "format1"


def test_a_format_1_run_reads_as_its_tasks_typed_configs(old):
    run = read_run(old / "classify")
    assert type(run.model) is ClassifierConfig and run.model.pooling == "mean" and run.model.hidden_size == 8
    assert type(run.data) is ClassifyData and run.data.text_column == "auto" and run.task == "classify"
    assert run.labels == ["ham", "spam"] and run.tokenizer.kind == "word"
    lm = read_run(old / "lm")
    assert type(lm.model) is LanguageModelConfig and type(lm.train) is LanguageModelTraining
    assert lm.train.sample_length == 0 and lm.tokenizer.kind == "char"
    written = json.loads((old / "classify" / "config.json").read_text())
    assert written["format_version"] == 1 and "attention" in written["model"] and "mel_bands" in written["data"]
    migrated = migrate(written, lambda name: named(name).configs())
    assert migrated["format_version"] == 3 and "pooling" in migrated["model"]
    assert "attention" not in migrated["model"] and "mel_bands" not in migrated["data"]  # seq2seq's, ctc's
    assert "eval_streams" not in migrated["train"]  # a language model's


def test_a_format_1_run_predicts_samples_and_evaluates(old):
    predicted = run_main("predict", old / "classify", old / "comments.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.splitlines()[0] == "text,label,prediction" and len(predicted.stdout.splitlines()) == 61
    assert "60 examples with labels; accuracy" in predicted.stderr
    sampled = run_main("sample", old / "lm", "--sample-length", 20, "--seed", 1)
    assert sampled.returncode == 0 and len(sampled.stdout) >= 20, sampled.stderr
    evaluated = run_main("eval", old / "lm", "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["tokens"] == 587, evaluated.stderr


def test_resuming_a_format_1_run_writes_format_3_and_keeps_its_checkpoints_valid(old):
    best = read_metadata(old / "classify" / BEST)
    resumed = run_main("train", "--resume", "--out", old / "classify", "--max-steps", 9)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads((old / "classify" / "config.json").read_text())
    assert doc["format_version"] == 3 and "attention" not in doc["model"] and doc["model"]["pooling"] == "mean"
    assert read_metadata(old / "classify" / LAST)["step"] == 9
    model, _, run = load_run(old / "classify")  # every checkpoint carries the new config.json's digest
    assert run.model.pooling == "mean" and read_metadata(old / "classify" / BEST)["step"] >= best["step"]
    assert run_main("predict", old / "classify", old / "comments.csv").returncode == 0


def test_an_edited_format_1_config_is_still_refused(old):
    path = old / "lm" / "config.json"
    doc = json.loads(path.read_text())
    doc["model"]["hidden_size"] = 9
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="was edited after"):
        read_run(old / "lm")


def test_the_run_read_as_the_dict_it_was_warns_and_names_the_attribute(old):
    run = read_run(old / "lm")
    with pytest.warns(DeprecationWarning, match=r'run\["model"\] is deprecated: use run.model'):
        assert run["model"] is run.model
