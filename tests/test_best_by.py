"""--best-by: the validation metric that picks the kept checkpoint and --patience's improvements, lower
being better (a metric where higher is better read as its distance from its best value)."""

import json
import math

import pytest
import torch

from conftest import run_main
from rnnkit import DataConfig, LanguageModel, TextData, Trainer
from rnnkit.tasks import TASKS, Criterion, LanguageModelTraining, named
from rnnkit.tasks.base import HIGHER_IS_BETTER, LOWER_IS_BETTER
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.training.runs import BEST, load_tensors
from test_forecast import ar2, write_csv
from test_recordings import sinusoids

# what a scripted validation reports at steps 4, 8, 12, 16, 20: the loss is lowest at step 8, accuracy highest
# at 12 (a run's last evaluation comes after its loop, so a budget of 16 steps reads the first four)
SCRIPT = [{"loss": 1.0, "accuracy": 0.50}, {"loss": 0.5, "accuracy": 0.60}, {"loss": 0.7, "accuracy": 0.80},
          {"loss": 0.9, "accuracy": 0.70}, {"loss": 0.95, "accuracy": 0.75}]


class Scripted(LanguageModelTask):
    """A language model whose validation reports SCRIPT's loss and accuracy, one evaluation after another."""

    metrics = ("loss", "accuracy")

    def __init__(self):
        self.script = iter(SCRIPT)

    def validate(self, model, data, split="val", group=None, config=None) -> dict:
        return dict(next(self.script)) if split == "val" else {}


def fit(corpus, out, **train) -> dict:
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=24))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, cell="gru", hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0)
    cfg = LanguageModelTraining(**{"max_steps": 16, "eval_every": 4, "log_every": 4, "sample_length": 0, "lr": 1e-2,
                                   "device": "cpu", "precision": "fp32", **train})
    return Trainer(model, data, cfg, out=out, quiet=True, task=Scripted()).fit()


def kept_step(out) -> int:
    return load_tensors(out / BEST)[1]["step"]


def test_the_kept_checkpoint_is_the_best_by_the_named_metric(corpus, tmp_path):
    assert fit(corpus, tmp_path / "auto")["best_val"] == 0.5 and kept_step(tmp_path / "auto") == 8  # the loss
    result = fit(corpus, tmp_path / "accuracy", best_by="accuracy")
    assert kept_step(tmp_path / "accuracy") == 12 and result["best_val"] == pytest.approx(0.2)  # 1 - 0.8


def test_patience_counts_the_evaluations_the_named_metric_did_not_improve(corpus, tmp_path):
    """By the loss, steps 12 and 16 are two evaluations without improvement; by accuracy, only 16 is."""
    assert fit(corpus, tmp_path / "loss", max_steps=20, patience=2, best_by="loss")["stopped"] == "early stopping"
    assert fit(corpus, tmp_path / "accuracy", max_steps=20, patience=2, best_by="accuracy")["stopped"] == "budget"


def test_a_criterion_is_lower_better_and_named_as_such():
    tagger, seq2seq = named("tag"), named("seq2seq")
    metrics = {"loss": 0.3, "accuracy": 0.9, "f1": 0.8, "bleu": 31.0, "token_error_rate": 0.2}
    assert Criterion(tagger)(metrics) == tagger.criterion(metrics) == pytest.approx(0.2)  # auto: 1 - chunk F1
    assert Criterion(tagger, "accuracy")(metrics) == pytest.approx(0.1)
    assert Criterion(tagger, "loss")(metrics) == 0.3
    assert Criterion(seq2seq, "bleu")(metrics) == 69.0
    assert [Criterion(tagger, m).name for m in ("auto", "accuracy", "loss")] == [
        tagger.criterion_name, "1 - accuracy", "loss"]
    assert Criterion(seq2seq, "bleu").name == "100 - bleu"


def test_every_metric_a_task_reports_is_known_lower_or_higher_better():
    assert not LOWER_IS_BETTER & set(HIGHER_IS_BETTER)
    for task in TASKS.values():
        assert set(task.metrics) <= LOWER_IS_BETTER | set(HIGHER_IS_BETTER), task.name


@pytest.mark.parametrize("task_name, column", [("tag", 1), ("tag", 2), ("classify", None), ("classify", "recordings"),
                                               ("lm", None), ("forecast", None)])
def test_what_a_task_says_it_reports_is_what_its_validation_reports(task_name, column, tmp_path, chunk_corpus,
                                                                     spam_table, make_text):
    """reports(data) is what --best-by may name: a POS tagger has no F1, a chunker has."""
    task = named(task_name)
    path, settings = tmp_path / "data.txt", {}
    if task_name == "tag":
        path.write_text(chunk_corpus())
        settings = {"tag_column": column}
    elif column == "recordings":
        path = sinusoids(tmp_path, n=10, length=300)
    elif task_name == "classify":
        path = tmp_path / "data.csv"
        path.write_text(spam_table())
    elif task_name == "lm":
        path.write_text(make_text(n_lines=60))
    else:
        path = tmp_path / "data.csv"
        write_csv(path, ar2(300))
    data = task.read_data(task.data_config(path=str(path), batch_size=8, val_fraction=0.2, **settings))
    torch.manual_seed(0)
    model = task.build_model(task.model_config(hidden_size=8, embedding_dim=4, num_layers=1), data.tokenizer,
                             getattr(data, "labels", None))
    reported = task.validate(model, data, "val")
    assert tuple(reported) == task.reports(data) and all(math.isfinite(v) for v in reported.values())
    assert ("f1" in reported) == (column == 2 or task_name == "classify")
    assert ("window_accuracy" in reported) == (column == "recordings")


def test_a_metric_the_run_does_not_report_or_a_run_without_validation_is_refused(tmp_path, chunk_corpus, user_error,
                                                                                 tiny_labelled_flags):
    path = tmp_path / "tags.txt"
    path.write_text(chunk_corpus())
    pos = ["train", path, "--task", "tag", "--tag-column", "1", *tiny_labelled_flags, "--max-steps", "2"]
    user_error(run_main(*pos, "--best-by", "f1", "--out", tmp_path / "a"),
               "--best-by f1: this run's validation reports loss, accuracy; choose one of them, or auto")
    user_error(run_main(*pos, "--best-by", "bleu", "--out", tmp_path / "b"), "--best-by bleu")
    user_error(run_main(*pos, "--best-by", "accuracy", "--val-fraction", "0", "--out", tmp_path / "c"),
               "--best-by")
    user_error(run_main("lr-find", path, "--task", "tag", "--best-by", "loss", "--out", tmp_path / "d"),
               "--best-by does nothing in a learning-rate range test")
    user_error(run_main("tune", path, "--task", "tag", "--space", "lr", "--trials", "1", "--best-by", "bleu",
                        "--out", tmp_path / "e"), "--best-by bleu: --task tag's validation reports loss, accuracy, f1")
    assert not any((tmp_path / name).exists() for name in "abcde")
    kept = run_main(*pos, "--best-by", "accuracy", "--out", tmp_path / "f")
    assert kept.returncode == 0, kept.stderr
    rows = [json.loads(line) for line in (tmp_path / "f" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_accuracy" in row for row in rows)
    user_error(run_main("train", "--resume", "--out", tmp_path / "f", "--max-steps", "4", "--best-by", "loss"),
               f"--best-by loss: {tmp_path / 'f'} keeps its best checkpoint by accuracy")
