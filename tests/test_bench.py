"""``rnnkit bench``: the FLOP count it divides by, a whole tiny run through the
CLI, and its bad inputs. (Speed itself is never asserted.)"""

import json

import pytest
import torch

from rnnkit.cli.bench import PlainLM, training_flops_per_token


def test_training_flops_count_every_matrix_product_forward_and_backward():
    # 2 x 512 LSTM, E 64, V 65: layer 1 multiplies 64 + 512 inputs into 2048 gates,
    # layer 2 512 + 512, the head 512 into 65; one MAC is 2 FLOPs; training is 3 x forward
    macs = 2048 * (64 + 512) + 2048 * (512 + 512) + 512 * 65
    assert training_flops_per_token("lstm", 65, 64, 512, 2) == 6 * macs
    assert training_flops_per_token("gru", 65, 64, 512, 1) == 6 * (1536 * (64 + 512) + 512 * 65)
    assert training_flops_per_token("rnn", 65, 64, 512, 1) == 6 * (512 * (64 + 512) + 512 * 65)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_plain_baseline_is_the_torch_layer_with_a_mean_cross_entropy(cell):
    torch.manual_seed(0)
    model = PlainLM(cell, 11, 8, 16, 2)
    x, y = torch.randint(11, (3, 5)), torch.randint(11, (3, 5))
    logits, loss, _ = model(x, y)
    assert isinstance(model.rnn, {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()))


@pytest.mark.slow
def test_bench_runs_end_to_end_and_writes_every_figure(tmp_path, cli):
    out = tmp_path / "bench.json"
    result = cli("bench", "--cells", "lstm", "--hidden-sizes", "16", "--batch-size", "4", "--seq-len", "8",
                 "--precisions", "fp32", "--seconds", "0.05", "--generate-chars", "20", "--json", out,
                 timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    loops = [row["loop"] for row in figures["training"]]
    assert loops == ["plain torch.nn.LSTM", "rnnkit fused", "rnnkit explicit"]
    assert figures["training"][0]["vs_plain_fp32"] == 1.0
    for row in figures["training"]:
        assert row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1.5
        # the peak is the best fp32 kernel torch carries: MKL's, or oneDNN's where it is faster
        assert row["peak_gflops"] >= max(figures["gemm"]["2048 square"].values())
    if torch.backends.mkldnn.is_available():
        assert set(figures["gemm"]["lstm 16"]) == {"fp32", "fp32 oneDNN"}
    assert figures["fp32_products"] in ("onednn", "default")
    assert figures["generation"][0]["batch 1 fp32"] > 0 and figures["generation"][0]["batch 64 fp32"] > 0
    memory = figures["memory"]
    assert memory["baseline"] > 50 and memory["lstm 16"]["training"] > 50
    for heading in ("GEMM GFLOP/s", "training", "generation chars/s", "peak RSS MiB"):
        assert heading in result.stdout


@pytest.mark.parametrize("flags, message", [
    (["--cells", "lstm,transformer"], "--cells: expected a comma-separated subset of rnn, lstm, gru"),
    (["--hidden-sizes", "512,big"], "--hidden-sizes: expected comma-separated integers"),
    (["--hidden-sizes", "0"], "--hidden-sizes: must be >= 1"),
    (["--engines", "cudnn"], "--engines: expected a comma-separated subset of fused, explicit"),
    (["--rounds", "0"], "--rounds: must be >= 1"),
])
def test_bench_bad_flags_get_one_line(flags, message, cli_here, user_error):
    user_error(cli_here("bench", *flags), message)
