"""last.safetensors on its own: what save_checkpoint writes, load_checkpoint puts back
exactly, fills in what older checkpoints lack, and refuses altered counters before
anything is loaded. (Resuming through the Trainer: test_training.py, test_faults.py.)"""

import dataclasses
import math
import re

import pytest
import torch

from rnnkit import LanguageModel, TrainConfig
from rnnkit.errors import CheckpointError
from rnnkit.training.checkpoint import Progress, load_checkpoint, save_checkpoint
from rnnkit.training.optim import build_optimizer
from rnnkit.training.runs import load_tensors, save_tensors

BATCH = 3
CPU = torch.device("cpu")


def trained(seed):
    """A small language model and its AdamW after one update, both made from ``seed``."""
    torch.manual_seed(seed)
    model = LanguageModel(11, cell="lstm", hidden_size=8, num_layers=2, embedding_dim=4, dropout=0.0)
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw"))
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    return model, optimizer


def save(path, model, optimizer, progress, carry=None):
    save_checkpoint(path, model, optimizer, progress, carry, group=None, device=CPU, optimizer_name="adamw",
                    config_sha256=None)


def load(path, model, optimizer, seed=0):
    return load_checkpoint(path, model, optimizer, group=None, device=CPU, optimizer_name="adamw",
                           batch_size=BATCH, seed=seed)


# every counter a value of its own, so that two counters swapped on the way are caught
PROGRESS = Progress(step=17, epoch=2, batch_index=5, elapsed=12.5, best_val=1.25, evals_without_improvement=3,
                    log_sum=4.5, log_norm_sum=2.75, log_count=4, skipped_steps=6, nonfinite_in_a_row=1,
                    lr_scale=0.125)


@pytest.mark.parametrize("best_val", [1.25, math.inf], ids=["after an evaluation", "before any"])
def test_a_round_trip_restores_every_counter_the_weights_the_optimizer_the_state_and_the_random_state(
        tmp_path, best_val):
    progress = dataclasses.replace(PROGRESS, best_val=best_val)
    model, optimizer = trained(seed=0)
    carry = tuple(torch.randn_like(s) for s in model.init_state(BATCH))  # (L, B, H) each
    torch.manual_seed(123)
    save(tmp_path / "last.safetensors", model, optimizer, progress, carry)
    expected_draw = torch.rand(5)  # what the random state saved above gives next

    other, other_optimizer = trained(seed=1)
    torch.manual_seed(999)
    restored, restored_carry = load(tmp_path / "last.safetensors", other, other_optimizer)
    assert torch.equal(torch.rand(5), expected_draw)
    assert restored == progress
    assert len(restored_carry) == len(carry) and all(torch.equal(a, b) for a, b in zip(restored_carry, carry))
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), model.state_dict().values()))
    saved, loaded = optimizer.state_dict()["state"], other_optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys() and all(
        torch.equal(saved[i][k], loaded[i][k]) for i in saved for k in saved[i])


def test_a_checkpoint_from_before_the_later_counters_gets_them_filled_in(tmp_path):
    path = tmp_path / "last.safetensors"
    save(path, *trained(seed=0), PROGRESS)
    tensors, meta = load_tensors(path)
    for key in ("log_norm_sum", "skipped_steps", "nonfinite_in_a_row", "lr_scale"):  # written since 2026-12-05
        del meta[key]
    save_tensors(path, tensors, meta)
    progress, _ = load(path, *trained(seed=1))
    assert progress == dataclasses.replace(PROGRESS, log_norm_sum=0.0, skipped_steps=0, nonfinite_in_a_row=0,
                                           lr_scale=1.0)


@pytest.mark.parametrize("key, value, problem", [
    ("step", None, "'step'"),  # missing
    ("epoch", -1, "epoch is -1"),
    ("log_count", True, "log_count is True"),
    ("batch_index", 2.0, "batch_index is 2.0"),
    ("best_val", "1.5", "best_val is '1.5'"),
    ("lr_scale", "x", "lr_scale is 'x'"),  # a back-filled counter is checked as strictly when present
    ("skipped_steps", -3, "skipped_steps is -3"),
    ("param_groups", [{"params": [0]}], "its parameter groups do not fit this model"),
])
def test_an_altered_counter_is_refused_before_anything_is_loaded(tmp_path, key, value, problem):
    path = tmp_path / "last.safetensors"
    save(path, *trained(seed=0), PROGRESS)
    tensors, meta = load_tensors(path)
    if value is None:
        del meta[key]
    else:
        meta[key] = value
    save_tensors(path, tensors, meta)
    model, optimizer = trained(seed=1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = optimizer.state_dict()["state"][0]["exp_avg"].clone()
    message = f"{path} has an altered trainer state ({problem}); restore the run folder or train again"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load(path, model, optimizer)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], moments)


def test_the_optimizers_non_tensor_state_comes_back_and_a_tampered_one_is_refused(tmp_path):
    """No optimizer of rnnkit's writes such scalars on torch 2.13, so one is written by hand."""
    model, optimizer = trained(seed=0)
    path = tmp_path / "last.safetensors"
    save(path, model, optimizer, PROGRESS)
    tensors, meta = load_tensors(path)
    for scalars, fine in (({"0.bias_correction": 0.5}, True), ({"0.bias_correction": "0.5"}, False),
                          ({"999.bias_correction": 0.5}, False), ({"x.bias_correction": 0.5}, False)):
        save_tensors(path, tensors, {**meta, "optim_scalars": scalars})
        other, other_optimizer = trained(seed=1)
        if fine:
            load(path, other, other_optimizer)
            first = other_optimizer.param_groups[0]["params"][0]
            assert other_optimizer.state[first]["bias_correction"] == 0.5
        else:
            with pytest.raises(CheckpointError, match="altered trainer state"):
                load(path, other, other_optimizer)
