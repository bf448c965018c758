"""A language model conditioned on a label at every step: padding, learning
to write each label's texts, and sampling from the CLI."""

import random

import pytest
import torch

from rnnkit import Trainer
from rnnkit.data import collate
from rnnkit.data.batches import LabelledBatch
from rnnkit.models import LanguageModel
from rnnkit.tasks import LanguageModelData, LanguageModelTraining, read_data


def table(n=80, seed=0) -> str:
    """Two labels whose texts differ from the first character on."""
    rng = random.Random(seed)
    rows = ["text,label"]
    for i in range(n):
        if i % 2:
            rows.append("buy cheap pills now " + "!" * rng.randint(1, 3) + ",spam")
        else:
            rows.append(f"what a lovely song {rng.randint(1, 9)},ham")
    return "\n".join(rows) + "\n"


def test_padding_never_changes_a_texts_loss():
    torch.manual_seed(0)
    model = LanguageModel(12, num_conditions=3, hidden_size=8, num_layers=2, embedding_dim=4,
                          dropout=0.0).double()
    texts = [torch.randint(0, 12, (n,)).numpy() for n in (7, 3, 5)]
    ids, lengths, cond = collate(texts, [0, 2, 1])
    batch_loss, state = model.loss(LabelledBatch(ids, lengths, cond))
    assert state is None  # independent texts: nothing to carry
    total = sum(model.loss(collate([t], [c]))[0] * (len(t) - 1) for t, c in zip(texts, [0, 2, 1]))
    torch.testing.assert_close(batch_loss, total / (lengths - 1).sum())


def test_a_conditioned_model_writes_the_texts_of_the_label_asked_for(tmp_path):
    path = tmp_path / "comments.csv"
    path.write_text(table())
    data = read_data(path, LanguageModelData(condition_column="label", batch_size=8))
    assert data.labels == ["ham", "spam"] and data.tokenizer.decode(data.train.ids[0])[0] == "\n"
    torch.manual_seed(0)
    model = LanguageModel(data.vocab_size, num_conditions=2, hidden_size=32, num_layers=1, embedding_dim=16,
                          dropout=0.0)
    cfg = LanguageModelTraining(max_epochs=12, eval_every=1000, sample_length=0, lr=1e-2, device="cpu", log_every=10)
    result = Trainer(model, data, cfg, out=tmp_path / "run", quiet=True).fit()
    assert result["val_loss"] < 0.6, result  # the texts are near-deterministic given the label
    prime = data.tokenizer.encode("\n")
    for label, start in (("spam", "buy cheap"), ("ham", "what a lo")):
        ids = list(model.generate(prime, 9, temperature=0, condition=data.labels.index(label)))
        assert data.tokenizer.decode(ids) == start


@pytest.mark.slow
def test_cli_samples_one_text_per_sample_for_the_condition(tmp_path, cli_here):
    path = tmp_path / "comments.csv"
    path.write_text(table(40))
    run = tmp_path / "run"
    trained = cli_here("train", path, "--condition-column", "label", "--hidden-size", "16", "--num-layers", 1,
                       "--embedding-dim", 8, "--batch-size", 8, "--max-steps", 20, "--device", "cpu", "--out", run)
    assert trained.returncode == 0, trained.stderr
    assert "[ham]" in trained.stdout and "[spam]" in trained.stdout  # a sample of each label
    sampled = cli_here("sample", run, "--condition", "spam", "--num-samples", 2, "--seed", 3, "--sample-length", 40)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.count("sample ") == 2
    missing = cli_here("sample", run)
    assert missing.returncode == 2 and "pass --condition with one of ham, spam" in missing.stderr
