"""``rnnkit bench``: the FLOP count it divides by, a whole tiny run through the
CLI, and its bad inputs. (Speed itself is never asserted.)"""

import json

import pytest
import torch

from rnnkit.cli.bench import BenchConfig, PlainLM, step_peak_gflops, step_products, training_flops_per_token


def test_training_flops_count_every_matrix_product_forward_and_backward():
    # 2 x 512 LSTM, E 64, V 65: layer 1 multiplies 64 + 512 inputs into 2048 gates,
    # layer 2 512 + 512, the head 512 into 65; one MAC is 2 FLOPs; training is 3 x forward
    macs = 2048 * (64 + 512) + 2048 * (512 + 512) + 512 * 65
    assert training_flops_per_token("lstm", 65, 64, 512, 2) == 6 * macs
    assert training_flops_per_token("gru", 65, 64, 512, 1) == 6 * (1536 * (64 + 512) + 512 * 65)
    assert training_flops_per_token("rnn", 65, 64, 512, 1) == 6 * (512 * (64 + 512) + 512 * 65)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_step_products_hold_every_training_flop_and_the_peak_weighs_them_by_flops(cell):
    cfg = BenchConfig(batch_size=8, seq_len=10, embedding_dim=6, vocab_size=9, num_layers=2)
    products = step_products(cfg, cell, 12)
    step_flops = sum(2 * M * K * N * times for (M, K, N), times in products)
    assert step_flops == 8 * 10 * training_flops_per_token(cell, 9, 6, 12, 2)
    rates = {shape: 100.0 for shape, _ in products}
    assert step_peak_gflops(products, rates) == pytest.approx(100.0)
    recurrent = (8, 12, 12 * {"rnn": 1, "lstm": 4, "gru": 3}[cell])  # (B, H, G*H), run T times a step
    slow = {**rates, recurrent: 50.0}
    share = sum(2 * M * K * N * t for (M, K, N), t in products if (M, K, N) == recurrent) / step_flops
    assert step_peak_gflops(products, slow) == pytest.approx(100.0 / (1 + share))  # time: (1 - s)/100 + s/50


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_plain_baseline_is_the_torch_layer_with_a_mean_cross_entropy(cell):
    torch.manual_seed(0)
    model = PlainLM(cell, 11, 8, 16, 2)
    x, y = torch.randint(11, (3, 5)), torch.randint(11, (3, 5))
    (logits, _), loss = model(x, y)
    assert isinstance(model.rnn, {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()))


@pytest.mark.slow
def test_bench_runs_end_to_end_and_writes_every_figure(tmp_path, cli_here):
    out = tmp_path / "bench.json"
    result = cli_here("bench", "--cells", "lstm", "--hidden-sizes", "16", "--batch-size", "4", "--seq-len", "8",
                      "--num-layers", 1, "--embedding-dim", 16, "--rounds", 1,
                      "--precisions", "fp32", "--seconds", "0.05", "--sample-length", "20", "--out", out)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    loops = [row["loop"] for row in figures["training"]]
    assert loops == ["plain torch.nn.LSTM", "rnnkit fused", "rnnkit explicit"]
    assert figures["training"][0]["vs_plain_fp32"] == 1.0
    rates = figures["gemm"]["lstm 16"]  # kind -> {"MxKxN": GFLOP/s} at every shape a step multiplies
    best = [max(by_kind[shape] for by_kind in rates.values()) for shape in rates["fp32"]]
    for row in figures["training"]:
        assert row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1.5
        # the peak lies between the step's slowest and fastest products at their best kernels
        assert min(best) <= row["peak_gflops"] <= max(best)
    assert set(rates["fp32"]) == {"32x16x64", "32x64x16", "64x32x16", "4x16x64", "4x64x16", "32x16x65",
                                  "32x65x16", "65x32x16"}  # B*T = 32, E = H = 16, 4H = 64, V = 65
    if torch.backends.mkldnn.is_available():
        assert set(rates) == {"fp32", "fp32 oneDNN", "fp32 oneDNN laid out"}
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
