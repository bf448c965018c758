"""`rnnkit lr-find`: the learning-rate range test on rnnkit's Trainer."""

import json
import math

import pytest
import torch

from rnnkit import DataConfig, LanguageModel, TextData, TrainConfig
from rnnkit.tasks import named
from rnnkit.training.lr_find import range_test

LM = named("lm")

FLAGS = ["--hidden-size", "32", "--num-layers", "1", "--embedding-dim", "16", "--batch-size", "8", "--seq-len", "32",
         "--device", "cpu"]


def test_the_rate_rises_exponentially_the_loss_falls_then_blows_up_and_the_suggestion_is_before_it(corpus):
    data = TextData.from_file(corpus, DataConfig(batch_size=8, seq_len=32))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, hidden_size=32, num_layers=1, embedding_dim=16)
    test = range_test(model, data, TrainConfig(optimizer="sgd", device="cpu"), 1e-3, 1e4, 80, task=LM)
    assert test.stopped == "diverged" and 10 < len(test.losses) < 80
    ratios = [b / a for a, b in zip(test.lrs, test.lrs[1:])]
    assert all(r == pytest.approx((1e4 / 1e-3) ** (1 / 79)) for r in ratios)
    low = min(range(len(test.smoothed)), key=test.smoothed.__getitem__)
    assert test.smoothed[low] < test.losses[0] - 0.2  # it learnt at some rate
    assert test.suggestion == pytest.approx(test.lrs[low] / 10) and test.lrs[0] < test.suggestion < test.lrs[-1]
    assert all(math.isfinite(x) for x in test.losses)
    calm = range_test(model, data, TrainConfig(optimizer="sgd", device="cpu"), 1e-4, 1e-3, 12, task=LM)
    assert calm.stopped == "end" and len(calm.losses) == 12 and calm.lrs[-1] == pytest.approx(1e-3)


def test_rnnkit_lr_find_plots_and_suggests_and_leaves_no_run_behind(cli_here, corpus, tmp_path):
    result = cli_here("lr-find", corpus, *FLAGS, "--steps", "40", "--end-lr", "10", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    suggested = float(result.stdout.split("suggested --lr ")[1].split(";")[0])
    saved = json.loads((tmp_path / "run" / "lr_find.json").read_text())
    assert saved["suggestion"] == pytest.approx(suggested, rel=0.05) and len(saved["losses"]) <= 40
    assert (tmp_path / "run" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["lr_find.json", "lr_find.png"]


@pytest.mark.parametrize("flags,message", [
    (["--lr", "0.1"], "--lr does nothing in a learning-rate range test"),
    (["--max-steps", "10"], "--max-steps does nothing in a learning-rate range test"),
    (["--start-lr", "1", "--end-lr", "0.1"], "lr-find needs 0 < --start-lr < --end-lr and --steps >= 2"),
    (["--steps", "1"], "lr-find needs 0 < --start-lr < --end-lr and --steps >= 2"),
])
def test_lr_find_refuses_settings_it_would_ignore(cli_here, corpus, user_error, flags, message):
    user_error(cli_here("lr-find", corpus, *FLAGS, *flags), message)
