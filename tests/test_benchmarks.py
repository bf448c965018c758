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


def test_the_spam_benchmarks_ensemble_takes_the_argmax_of_its_members_mean_probabilities(common, monkeypatch,
                                                                                          capsys):
    """Not a vote, nor the first member: one sure member outweighs two unsure ones. ``--ensemble`` without
    an rnnkit model, or of no members, is refused."""
    spam = load("spam", "benchmark_spam")
    for flags, said in ((["--models", "logreg", "--ensemble", "3"],
                         "applies to rnnkit's models, and --models names none"),
                        (["--ensemble", "0"], "takes 1 or more members, not 0")):
        monkeypatch.setattr(sys, "argv", ["benchmarks/spam.py", *flags])
        with pytest.raises(SystemExit) as done:
            spam.main()
        assert done.value.code == 2 and capsys.readouterr().err == f"spam: --ensemble {said}\n"
    p = [np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
         np.array([[0.4, 0.6], [0.45, 0.55], [0.3, 0.7]]),
         np.array([[0.45, 0.55], [0.9, 0.1], [0.3, 0.7]])]  # votes: b, b, b; first member: a, b, a
    mean, predicted = spam.ensemble_labels(p, ["a", "b"])
    assert np.allclose(mean, [[0.5833, 0.4167], [0.5167, 0.4833], [0.4, 0.6]], atol=1e-4)
    assert predicted == ["a", "a", "b"]


@pytest.mark.slow  # three small training runs: 4 s alone on machine D, 6 s beside another training
def test_the_spam_benchmarks_ensemble_is_its_seeded_members_each_its_best_checkpoints_probabilities(common, tmp_path):
    """``--ensemble 2``: BiLSTMs of seeds --seed and --seed + 1, each its best checkpoint's class
    probabilities (softmax of its logits, whose argmax its labels are); the ensemble labels a comment by
    the argmax of their mean; its first member is the single model."""
    pytest.importorskip("sklearn")
    spam = load("spam", "benchmark_spam")
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(90):
        label = "spam" if i % 3 == 0 else "ham"
        own = ["check", "channel", "subscribe", "free"] if label == "spam" else ["song", "love", "voice"]
        texts.append(" ".join(rng.choice(own + ["the", "a", "song"], size=int(rng.integers(3, 8)))))
        labels.append(label)
    train, val, test = np.arange(0, 50), np.arange(50, 60), np.arange(60, 90)
    args = SimpleNamespace(seed=5, ensemble=2, batch_size=8, precision="fp32", tokenizer="word", min_count=1,
                           word_pattern=spam.WORD_PATTERN, embedding_dim=8, hidden_size=8, dropout=0.0,
                           pooling="max", adversarial=0.0, lr=1e-2, epochs=2, weight_average=0.0)
    result = spam.run_ensemble("bilstm", texts, labels, (train, val, test), tmp_path, args)
    assert sorted(p.name for p in tmp_path.glob("bilstm-seed*")) == ["bilstm-seed5", "bilstm-seed6"]
    assert result["gold"] == [labels[i] for i in test]
    p = np.stack([m["probabilities"] for m in result["members"]])  # (M, N, K)
    assert p.shape == (2, 30, 2) and np.allclose(p.sum(-1), 1.0)
    assert not np.allclose(p[0], p[1], atol=1e-3)  # the seeds made different models
    names = result["members"][0]["labels"]
    for m in result["members"]:
        assert m["predicted"] == [names[k] for k in m["probabilities"].argmax(-1)]
    assert np.allclose(result["probabilities"], p.mean(0))
    assert result["predicted"] == [names[k] for k in p.mean(0).argmax(-1)]
    assert result["accuracy"] == np.mean(np.array(result["predicted"]) == np.array(result["gold"]))
    (tmp_path / "one").mkdir()
    single = spam.run_ensemble("bilstm", texts, labels, (train, val, test), tmp_path / "one",
                               SimpleNamespace(**{**vars(args), "ensemble": 1}))
    assert np.array_equal(single["probabilities"], p[0])  # the first member is the single model of --seed


@pytest.mark.parametrize("recipe, kind", [("youtube-spam-bilstm", "adversarial+chars"),
                                          ("sms-spam-bilstm", "adversarial")])
def test_the_spam_recipes_are_the_models_the_tables_ran_and_train_with_rnnkit(common, recipe, kind, tmp_path,
                                                                               spam_table, cli_here):
    """``--models recipe --recipe recipes/R.json`` trains, setting for setting, the model the tables' rows
    name (so the same seeds give the same figures), and the file is a `rnnkit train --config` a user can
    train with; a recipe that sets what the benchmark sets for each fold is refused."""
    spam = load("spam", "benchmark_spam")
    path = BENCHMARKS.parent / "recipes" / f"{recipe}.json"
    args = spam.parser().parse_args(["--models", "recipe", "--recipe", str(path)])
    assert spam.settings_of("recipe", args) == spam.settings_of(kind, args)
    table = tmp_path / "spam.csv"
    table.write_text(spam_table())
    trained = cli_here("train", table, "--config", path, "--max-epochs", 1, "--hidden-size", 8, "--embedding-dim", 8,
                       "--device", "cpu", "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(path.read_text()), "seed": 3}))
    with pytest.raises(SystemExit, match="sets seed, which the benchmark sets for each fold"):
        spam.read_recipe(bad)


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
