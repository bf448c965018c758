"""The scripts in benchmarks/ (run as ``python benchmarks/NAME.py``) import, with
their shared module, and parse their flags; what they measure is never asserted (the spam benchmark's
ULMFiT middle step is checked for what it reads: the training folds' texts only)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if path.stem != "common")


def load(name: str, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    before = sys.modules.get(module_name)
    sys.modules[module_name] = module  # a dataclass at a script's top level looks its module up there
    try:
        spec.loader.exec_module(module)
    finally:
        if before is None:
            sys.modules.pop(module_name)
        else:
            sys.modules[module_name] = before
    return module


@pytest.fixture
def common(monkeypatch):
    """benchmarks/common.py as the scripts import it (``import common``), for this test only."""
    module = load("common", "common")
    monkeypatch.setitem(sys.modules, "common", module)
    return module


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_script_imports_and_answers_help(name, common, monkeypatch, capsys):
    script = load(name, f"benchmark_{name}")  # the script's top level only defines, so this runs nothing
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{name}.py", "--help"])
    with pytest.raises(SystemExit) as done:
        script.main()
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {name}.py")


def test_the_shell_benchmark_parses():
    for path in BENCHMARKS.glob("*.sh"):
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_shared_module_finds_the_data_beside_the_repository_and_prints_markdown(common):
    assert common.DATA == BENCHMARKS.parents[1] / "shared" / "data"
    assert common.TINYSHAKESPEARE == common.DATA / "tinyshakespeare" / "input.txt"
    assert common.markdown_table(["cell", "tokens/s"], [["lstm", "1,234"], ["gru", 5]]) == (
        "| cell | tokens/s |\n|---|---|\n| lstm | 1,234 |\n| gru | 5 |")


def test_contestants_take_turns_and_a_rate_is_the_units_of_the_items_worked_over_the_time(common, monkeypatch):
    clock = iter(range(100))  # a second a reading
    monkeypatch.setattr(common, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    calls = []
    contestants = {"a": (calls.append, ["x", "yy"], len), "b": (calls.append, ["zzz"], len)}
    rates = common.in_turns(contestants, rounds=2, seconds=1.5)  # a warm-up call, then two timed calls
    assert calls == ["x", "x", "yy", "zzz", "zzz", "zzz"] * 2
    assert rates == {"a": [1.5, 1.5], "b": [3.0, 3.0]}  # (1 + 2) and (3 + 3) units in 2 s


@pytest.mark.slow  # four small runs, with their plots: about 10 s alone
def test_the_spam_benchmarks_middle_step_reads_the_training_folds_texts_only(common, tmp_path, make_text):
    """ULMFiT under cross-validation: the language model is fine-tuned on the training folds' texts, and
    never sees a word that only the test fold has; the classifier then starts from that model."""
    pytest.importorskip("sklearn")
    from conftest import run_main

    spam = load("spam", "benchmark_spam")
    lm = tmp_path / "pretrained"
    (tmp_path / "text.txt").write_text(make_text(200))
    result = run_main("train", tmp_path / "text.txt", "--out", lm, "--tokenizer", "word", "--lowercase", "true",
                      "--word-pattern", spam.WORD_PATTERN,
                      "--hidden-size", 16, "--num-layers", 1, "--embedding-dim", 8, "--batch-size", 4, "--seq-len", 16,
                      "--max-steps", 2, "--sample-length", 0, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    texts = [f"check my channel trainword{i} now" if i % 2 else f"nice song trainword{i}" for i in range(60)]
    texts += [f"secretword{i} check my channel" for i in range(20)]  # the test fold's
    labels = ["spam" if i % 2 else "ham" for i in range(60)] + ["spam"] * 20
    train, val, test = np.arange(0, 50), np.arange(50, 60), np.arange(60, 80)
    args = SimpleNamespace(lm=lm, lm_epochs=1, lm_lr=1e-3, lm_seq_len=8, batch_size=4, precision="fp32", seed=0,
                           tokenizer="word", min_count=1, word_pattern=spam.WORD_PATTERN, embedding_dim=8,
                           hidden_size=16, dropout=0.0, pooling="max", adversarial=0.0, lr=3e-3, epochs=1,
                           fine_tuning="ulmfit", weight_average=0.0)
    run = spam.fine_tune_lm(lm, texts, np.concatenate([train, val]), tmp_path, args)
    assert (tmp_path / "lm_text.txt").read_text().splitlines() == [texts[i] for i in range(60)]
    words = set(json.loads((run / "config.json").read_text())["tokenizer"]["words"])
    assert {f"trainword{i}" for i in range(60)} <= words
    assert not any(w.startswith("secretword") for w in words)
    (tmp_path / "fold").mkdir()
    result = spam.run_rnnkit("ulmfit", texts, labels, (train, val, test), tmp_path / "fold", args)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["steps"] > 0


def test_the_spam_benchmark_combines_the_bilstms_additions_and_deals_other_partitions(common):
    """``adversarial+chars`` is one model; a name that is not a BiLSTM addition is refused by argparse;
    ``--fold-seed`` deals the same examples to other folds, each test fold stratified."""
    import argparse

    pytest.importorskip("sklearn")
    spam = load("spam", "benchmark_spam")
    assert spam.model_kind("adversarial+chars") == "adversarial+chars"
    assert spam.model_name("adversarial+chars") == "rnnkit BiLSTM, adversarial training + char features 16"
    for bad in ("chars+bilstm", "chars+chars", "adversarial+", "lstm"):
        with pytest.raises(argparse.ArgumentTypeError, match="unknown model"):
            spam.model_kind(bad)
    labels = ["spam"] * 30 + ["ham"] * 70
    tables, other = spam.stratified_folds(labels, 5), spam.stratified_folds(labels, 5, seed=1)
    for folds in (tables, other):
        assert sorted(np.concatenate([test for _, _, test in folds]).tolist()) == list(range(100))
        assert all(sum(labels[i] == "spam" for i in test) == 6 for _, _, test in folds)
    assert [t.tolist() for _, _, t in tables] == [t.tolist() for _, _, t in spam.stratified_folds(labels, 5)]
    assert [t.tolist() for _, _, t in tables] != [t.tolist() for _, _, t in other]


def test_the_forecast_benchmarks_file_gives_rnnkit_the_values_the_baselines_read(common, tmp_path):
    """The series reaches rnnkit through a CSV and AutoReg and darts in memory: the file must hold every
    value exactly (rounded to 6 digits, Mackey-Glass's one-step forecasts lost to AutoReg on the rounding)."""
    from rnnkit.data.forecast import ForecastConfig
    from rnnkit.data.series_table import read_series_file

    forecast = load("forecast", "benchmark_forecast")
    values = forecast.mackey_glass(n=200, drop=10)[2]
    for times in (None, np.arange(1700, 1900).astype(str)):
        path = tmp_path / "series.csv"
        forecast.write_csv(path, "time", times, values)
        read = read_series_file(path, ForecastConfig(path=str(path))).values[:, 0]
        assert np.array_equal(read, values)
