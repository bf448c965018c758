"""A run folder may come from anyone: tampered files are refused with one clear
line before any of them is used, and nothing in a run folder is ever unpickled."""

import json
import pickle

import pytest
import torch

from rnnkit.training.runs import BEST, LAST, load_tensors, save_tensors

FLAGS = ["--hidden-size", 16, "--num-layers", 1, "--embedding-dim", 8, "--batch-size", 4, "--seq-len", 16,
         "--max-steps", 4, "--eval-every", 2, "--sample-length", 0, "--device", "cpu"]


@pytest.fixture
def run(tmp_path, corpus, cli_here):
    """A trained run folder; the fixture's copy of it for each test to tamper with."""
    out = tmp_path / "run"
    assert cli_here("train", corpus, *FLAGS, "--out", out).returncode == 0
    return out


def rewrite(path, change):
    """Rewrite a checkpoint through ``change(tensors, meta)``, with a valid checksum: a careful tamperer."""
    tensors, meta = load_tensors(path)
    change(tensors, meta)
    save_tensors(path, tensors, meta)


def test_a_weight_of_the_wrong_shape_or_dtype_is_refused(run, cli_here, user_error):
    rewrite(run / BEST, lambda t, m: t.__setitem__("head.bias", t["head.bias"][:-1]))
    user_error(cli_here("eval", run), "does not fit its config.json (head.bias is torch.float32 (")
    rewrite(run / BEST, lambda t, m: t.__setitem__("head.bias", torch.zeros(t["head.weight"].shape[0]).double()))
    user_error(cli_here("sample", run), "head.bias is torch.float64")
    rewrite(run / BEST, lambda t, m: t.__setitem__("extra.weight", torch.zeros(3)))
    user_error(cli_here("sample", run), "extra.weight unexpected")


def test_a_trainer_state_that_does_not_fit_is_refused_before_resuming(run, cli_here, user_error, tmp_path):
    original = (run / LAST).read_bytes()
    cases = [
        (lambda t, m: t.__setitem__("optim.0.exp_avg", t["optim.0.exp_avg"].T.contiguous()), "optimizer state"),
        (lambda t, m: t.__setitem__("rng.cpu", t["rng.cpu"][:10]), "no valid random state"),
        (lambda t, m: m.__setitem__("step", "7; import os"), "altered trainer state (step is '7; import os')"),
        (lambda t, m: m.__setitem__("elapsed", float("nan")), "altered trainer state (elapsed is nan)"),
        (lambda t, m: m.__setitem__("optim_scalars", {"0.step": {"__reduce__": "os.system"}}), "altered trainer"),
        (lambda t, m: m.__setitem__("param_groups", [{"params": [0]}]), "parameter groups do not fit"),
        (lambda t, m: t.__setitem__("model.head.bias", t["model.head.bias"].half()), "head.bias is torch.float16"),
    ]
    for change, message in cases:
        (run / LAST).write_bytes(original)
        rewrite(run / LAST, change)
        user_error(cli_here("train", "--resume", "--out", run, "--max-steps", 6), message)
    (run / LAST).write_bytes(original)
    user_error(cli_here("train", "--resume", "--out", run, "--optimizer", "sgd"), "trained with --optimizer adamw")
    assert cli_here("train", "--resume", "--out", run, "--max-steps", 6).returncode == 0


@pytest.mark.parametrize("edit, message", [
    (lambda doc: doc["model"].__setitem__("hidden_size", 1_000_000), "was edited after"),
    (lambda doc: doc["tokenizer"]["code_points"].reverse(), "was edited after"),  # same shapes, other meaning
    (lambda doc: doc["model"].__setitem__("hidden_size", "16"), "incomplete or altered"),
    (lambda doc: doc["model"].__setitem__("__class__", "os.system"), "incomplete or altered"),
])
def test_an_edited_config_is_refused_before_a_model_is_built_from_it(run, cli_here, user_error, edit, message):
    doc = json.loads((run / "config.json").read_text())
    edit(doc)
    (run / "config.json").write_text(json.dumps(doc))
    user_error(cli_here("eval", run), message)
    user_error(cli_here("train", "--resume", "--out", run, "--max-steps", 6), message)


class Payload:
    """Pickled, it would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_in_place_of_a_checkpoint_never_runs(run, cli_here, user_error, tmp_path):
    marker = tmp_path / "the payload ran"
    for name in (BEST, LAST):
        (run / name).write_bytes(pickle.dumps({"state": Payload(marker)}))
    user_error(cli_here("eval", run), "is corrupt (truncated or altered)")
    user_error(cli_here("train", "--resume", "--out", run, "--max-steps", 6), "is corrupt (truncated or altered)")
    torch.save({"state": Payload(marker)}, run / BEST)  # torch's own pickle format too
    user_error(cli_here("sample", run), "is corrupt (truncated or altered)")
    assert not marker.exists()
