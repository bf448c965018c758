"""Batch normalisation between recurrent layers (Recurrent(..., batchnorm=True),
--batchnorm, torch-rnn's -batchnorm 1): what it normalises over, that padding
counts for nothing, that the engines and generation's steps agree with the
layer, and that its running statistics travel with the weights."""

import pytest
import torch

from rnnkit import DataConfig, TextData, Trainer, load_run
from rnnkit.errors import DataError
from rnnkit.kernels import length_mask
from rnnkit.layers import Recurrent, use_engines
from rnnkit.models import LanguageModel
from rnnkit.tasks import LanguageModelTraining
from rnnkit.training.runs import LAST


def test_train_mode_outputs_have_mean_zero_and_variance_one_per_feature_over_valid_positions():
    torch.manual_seed(0)
    layer = Recurrent("lstm", 3, 8, num_layers=2, bidirectional=True, batchnorm=True).double()
    x = torch.randn(4, 9, 3, dtype=torch.float64) + 2.0
    lengths = torch.tensor([9, 2, 5, 7])
    mask = length_mask(lengths, 9)
    out, _ = layer(x, lengths=lengths)  # (4, 9, 16)
    valid = out[mask]  # (23, 16)
    torch.testing.assert_close(valid.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-7, rtol=0)
    torch.testing.assert_close(valid.var(0, unbiased=False), torch.ones(16, dtype=torch.float64), atol=1e-3, rtol=0)
    assert out[~mask].eq(0).all()  # padding stays zero
    # what lies in the padding changes nothing, in the outputs or the statistics
    noisy = x.masked_fill(~mask.unsqueeze(-1), 100.0)
    other = Recurrent("lstm", 3, 8, num_layers=2, bidirectional=True, batchnorm=True).double()
    other.load_state_dict({k: v for k, v in layer.state_dict().items() if "norms" not in k}, strict=False)
    torch.testing.assert_close(other(noisy, lengths=lengths)[0], out)
    torch.testing.assert_close(other.norms[1].running_mean, layer.norms[1].running_mean)
    assert layer.norms[0].num_features == 16 and len(layer.norms) == 2


def test_a_training_batch_of_one_step_is_refused_in_one_line_and_evaluation_takes_it():
    layer = Recurrent("lstm", 3, 8, num_layers=2, batchnorm=True)
    with pytest.raises(DataError, match="needs at least 2 steps in a training batch .* this one has 1: raise "
                                        "--batch-size"):
        layer(torch.randn(1, 3, 3), lengths=torch.tensor([1]))
    layer.eval()
    assert layer(torch.randn(1, 1, 3))[0].shape == (1, 1, 8)  # running statistics need no batch


def test_without_batchnorm_a_layer_has_no_norms():
    assert Recurrent("gru", 3, 8).norms is None
    assert not any("norms" in k for k in LanguageModel(10, hidden_size=8).state_dict())


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru"])
def test_fused_and_explicit_engines_agree_with_batchnorm_in_training_and_evaluation(cell, padded, monkeypatch):
    torch.manual_seed(0)
    layer = Recurrent(cell, 5, 12, num_layers=3, bidirectional=True, dropout=0.0, batchnorm=True)
    x = torch.randn(4, 10, 5, requires_grad=True)
    lengths = torch.tensor([10, 3, 7, 1]) if padded else None
    kernel_layers = []
    fused = Recurrent._fused
    monkeypatch.setattr(Recurrent, "_fused", lambda self, *a: kernel_layers.append(a[4]) or fused(self, *a))
    for mode in ("train", "eval"):
        results = []
        for engine in ("fused", "explicit"):
            use_engines(layer, engine)
            layer.train(mode == "train")
            before = {k: v.clone() for k, v in layer.state_dict().items()}
            x.grad = None
            layer.zero_grad()
            out, state = layer(x, lengths=lengths)
            (out.sin().sum() + state[0].cos().sum()).backward()
            results.append([out, *state, x.grad, *(p.grad for p in layer.parameters())])
            layer.load_state_dict(before)  # the same running statistics for the other engine
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)  # fp32, each norm divides by a std
    if layer.cells[0].fused_kernel() is not None:  # torch's kernel, called once per layer, not once for the stack
        assert kernel_layers and set(kernel_layers) == {1}


def test_generation_step_by_step_equals_the_full_forward_in_evaluation_mode():
    torch.manual_seed(0)
    model = LanguageModel(11, cell="lnlstm", hidden_size=16, num_layers=2, embedding_dim=8, dropout=0.0,
                          batchnorm=True)
    x = torch.randint(0, 11, (8, 20))
    for _ in range(3):  # running statistics away from their initial 0 and 1
        model(x)
    with torch.no_grad():
        for norm in model.rnn.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    assert model.rnn.norms[1].running_var.ne(1).all()
    prime = [1, 2, 3]
    out = list(model.generate(prime, 12, temperature=0))
    assert model.training  # generate puts the model back
    model.eval()
    (logits, _), _ = model(torch.tensor([prime + out]))
    assert logits[0, len(prime) - 1:-1].argmax(-1).tolist() == out


def test_running_statistics_are_saved_and_a_checkpoint_round_trip_gives_equal_outputs(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 40)
    data = TextData.from_file(corpus, DataConfig(batch_size=4, seq_len=16))
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, cell="lstm", hidden_size=8, embedding_dim=8, num_layers=2, batchnorm=True)
    Trainer(model, data, LanguageModelTraining(max_steps=5, sample_length=0, device="cpu"), out=tmp_path / "run",
            quiet=True).fit()
    assert {"rnn.norms.1.running_mean", "rnn.norms.1.running_var", "rnn.norms.1.num_batches_tracked"} <= \
        set(model.state_dict())
    assert int(model.rnn.norms[0].num_batches_tracked) >= 5 and model.rnn.norms[0].running_var.ne(1).all()
    loaded, _, _ = load_run(tmp_path / "run", which=LAST)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    model.eval()
    x = torch.randint(0, data.vocab_size, (3, 12))
    torch.testing.assert_close(loaded(x)[0].logits, model(x)[0].logits)


def test_a_model_with_batchnorm_learns():
    from test_cell_variants import UNIGRAM_ENTROPY, train_briefly

    assert train_briefly("lstm", batchnorm=True) < UNIGRAM_ENTROPY - 2.0


@pytest.mark.slow
def test_the_command_line_trains_and_samples_an_lnlstm_with_batchnorm(corpus, tmp_path, cli_here, tiny_lm_flags):
    run = tmp_path / "run"
    result = cli_here("train", corpus, "--out", run, "--cell", "lnlstm", "--batchnorm", "true", "--num-layers", 2,
                      "--max-steps", 3, "--eval-every", 3, *tiny_lm_flags)
    assert result.returncode == 0, result.stderr
    result = cli_here("sample", run, "--sample-length", 20, "--seed", 1)
    assert result.returncode == 0 and len(result.stdout) >= 20, result.stderr


def test_batchnorm_is_refused_for_a_model_without_recurrent_layers(tmp_path, spam_table, cli_here, user_error):
    table = tmp_path / "t.csv"
    table.write_text(spam_table(40))
    user_error(cli_here("train", table, "--task", "classify", "--encoder", "tdnn", "--batchnorm", "true",
                        "--out", tmp_path / "run", "--device", "cpu"), "--batchnorm needs recurrent layers")
