"""Transfer from a language model (ULMFiT, Howard & Ruder 2018): ``--init-from
RUN`` copies the language model's recurrent layers whole and its embedding's
rows by token string into a classifier, a tagger, seq2seq's encoder or
another language model; the fine-tuning settings (discriminative rates,
gradual unfreezing, the slanted triangular schedule); and every bad
``--init-from`` refused in one line with nothing written."""

import json
import math

import pytest
import torch

from rnnkit.config import TrainConfig
from rnnkit.data.tokenizers import token_strings
from rnnkit.models.transfer import layer_groups
from rnnkit.tasks import Trainer, load_run, named
from rnnkit.tasks.transfer import Pretrained
from rnnkit.training.finetune import unfrozen_layers
from rnnkit.training.optim import learning_rate

SIZES = ["--hidden-size", "16", "--num-layers", "2", "--embedding-dim", "8", "--device", "cpu"]


def _lm(cli_here, path, out, *more):
    result = cli_here("train", path, "--out", out, "--tokenizer", "word", *SIZES, "--max-steps", 6,
                      "--batch-size", 4, "--seq-len", 16, "--sample-length", 0, *more)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory, make_text, spam_table, chunk_corpus):
    folder = tmp_path_factory.mktemp("transfer")
    # the language model's text shares words with the comments (NOUNS, VERBS) but not all of them
    (folder / "text.txt").write_text(make_text(200))
    (folder / "spam.csv").write_text(spam_table(60))
    (folder / "chunks.txt").write_text(chunk_corpus(30))
    words = sorted(w for w in set(make_text(200).replace(".", " ").split()) if w.isalpha())[:40]
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    return folder


@pytest.fixture(scope="module")
def lm_run(files):
    from conftest import run_main
    return _lm(run_main, files / "text.txt", files / "lm")


def _started(task_name, lm_run, path, data=None, **model):
    """(the model as --init-from starts it, the same model as its seed alone made it, its data, the LM)."""
    task, pretrained = named(task_name), Pretrained.read(str(lm_run))
    model_cfg = task.model_config(cell="lstm", hidden_size=16, num_layers=2, embedding_dim=8, **model)
    data_cfg = task.data_config(path=str(path), task=task_name, **(data or {}))
    model_cfg, data_cfg = pretrained.settle(model_cfg, data_cfg)
    data_cfg, _ = task.decide(data_cfg)
    data = pretrained.read_data(task, data_cfg)
    torch.manual_seed(0)
    model = task.build_model(model_cfg, data.tokenizer, getattr(data, "labels", None),
                             getattr(data, "target_tokenizer", None))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    note = pretrained.copy_into(model, data)
    return model, fresh, data, pretrained, note


def test_a_classifier_starts_with_the_lms_layers_and_its_rows_for_shared_words(files, lm_run):
    model, fresh, data, lm, note = _started("classify", lm_run, files / "spam.csv")
    ours, theirs = token_strings(data.tokenizer), token_strings(lm.run.tokenizer)
    # the vocabulary: the LM's words (its <eos> aside: a classifier's words have none), then the new ones
    assert ours[0] == "<unk>" and "<eos>" not in ours
    assert ours[1:len(theirs) - 1] == [w for w in theirs if w not in ("<unk>", "<eos>")]
    new = [w for w in ours if w not in theirs]
    assert new and set(new) >= {"check", "channel", "nice", "song"}  # the comments' own words
    weight, lm_weight = model.encoder.embedding.weight, lm.model.embedding.weight
    new_rows = torch.tensor([w not in theirs for w in ours])
    drawn = fresh["encoder.embedding.weight"]
    scale = lm_weight.std() / drawn[new_rows].std()  # fresh rows of the LM's rows' size
    for i, word in enumerate(ours):
        if word in theirs:  # copied exactly, found by its string, not its index
            assert torch.equal(weight[i], lm_weight[theirs.index(word)]), word
        else:  # the seeded initialisation's row, scaled to the LM's rows
            assert torch.allclose(weight[i], drawn[i] * scale, rtol=1e-6, atol=0), word
            assert not any(torch.equal(weight[i], row) for row in lm_weight)
    assert weight[new_rows].std().item() == pytest.approx(lm_weight.std().item(), rel=1e-5)
    for name, value in lm.model.rnn.state_dict().items():
        assert torch.equal(model.encoder.layer.state_dict()[name], value), name
    assert torch.equal(model.head.weight, fresh["head.weight"])  # the task's head is fresh
    shared = sum(w in theirs for w in ours)
    assert note == f"init from {lm_run}: {shared} of {len(ours)} words, 2 layers"
    assert model.config.bidirectional is False  # it reads one way, as the LM did


def test_a_tagger_and_seq2seqs_encoder_start_from_the_lm(files, lm_run, cli_here, tmp_path):
    model, _, data, lm, note = _started("tag", lm_run, files / "chunks.txt")
    assert all(torch.equal(model.encoder.layer.state_dict()[k], v) for k, v in lm.model.rnn.state_dict().items())
    assert "of" in note and "2 layers" in note
    char_lm = tmp_path / "char-lm"
    result = cli_here("train", files / "text.txt", "--out", char_lm, *SIZES, "--max-steps", 3, "--batch-size", 4,
                      "--seq-len", 16, "--sample-length", 0)
    assert result.returncode == 0, result.stderr
    model, fresh, data, lm, note = _started("seq2seq", char_lm, files / "pairs.tsv")
    assert data.tokenizer.kind == "char" and data.target_tokenizer.kind == "char"
    assert all(torch.equal(model.encoder.layer.state_dict()[k], v) for k, v in lm.model.rnn.state_dict().items())
    targets, theirs = token_strings(data.target_tokenizer), token_strings(lm.run.tokenizer)
    for i, ch in enumerate(targets):  # the decoder's embedding: the LM's rows where its tokens are the LM's kind
        if ch in theirs:
            assert torch.equal(model.embedding.weight[i], lm.model.embedding.weight[theirs.index(ch)]), ch
    assert all(ch in theirs for ch in targets)  # the reversed words' letters: all in the LM's text
    # <s> (the last row) has no string: the one row not copied, it keeps its direction, scaled or not
    assert torch.allclose(model.embedding.weight[-1] / model.embedding.weight[-1].norm(),
                          fresh["embedding.weight"][-1] / fresh["embedding.weight"][-1].norm())
    assert "the decoder's embedding" in note


def test_an_lm_from_an_lm_keeps_its_output_rows_and_adds_the_new_texts_words(files, lm_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text((files / "text.txt").read_text() + "zebra quagga okapi\n" * 5)
    model, fresh, data, lm, note = _started("lm", lm_run, other, dict(batch_size=4, seq_len=16))
    ours, theirs = token_strings(data.tokenizer), token_strings(lm.run.tokenizer)
    assert ours[:len(theirs)] == theirs and ours[len(theirs):] == ["okapi", "quagga", "zebra"]
    n = len(theirs)
    assert torch.equal(model.head.weight[:n], lm.model.head.weight)
    assert torch.equal(model.head.bias[:n], lm.model.head.bias)
    assert torch.equal(model.head.weight[n:], fresh["head.weight"][n:])
    assert note.startswith(f"init from {lm_run}: {n} of {n + 3} words")


def test_train_with_init_from_says_so_first_and_predicts_over_the_extended_vocabulary(files, lm_run, cli_here,
                                                                                      tmp_path):
    out = tmp_path / "cls"
    result = cli_here("train", files / "spam.csv", "--task", "classify", "--init-from", lm_run, *SIZES,
                      "--max-steps", 4, "--batch-size", 8, "--out", out)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert f"init from {lm_run}: " in first and "2 layers" in first
    doc = json.loads((out / "config.json").read_text())
    assert doc["train"]["init_from"] == str(lm_run) and doc["model"]["bidirectional"] is False
    _, tokenizer, _ = load_run(out)
    assert tokenizer.words[1:4] == [w for w in token_strings(Pretrained.read(str(lm_run)).run.tokenizer)
                                    if w not in ("<unk>", "<eos>")][:3]
    predicted = tmp_path / "predicted.csv"
    assert cli_here("predict", out, files / "spam.csv", "--out", predicted).returncode == 0
    assert len(predicted.read_text().splitlines()) == 61


# -- fine-tuning settings ---------------------------------------------------------------------------


def test_the_slanted_triangular_rate_is_howard_and_ruders_equation_3():
    T, cut_frac, ratio, lr = 200, 0.1, 32.0, 0.01
    cfg = TrainConfig(lr=lr, lr_schedule="stlr", stlr_cut_frac=cut_frac, stlr_ratio=ratio, max_steps=T)
    cut = math.floor(T * cut_frac)
    for t in (0, 1, 10, 19, 20, 21, 100, 150, 199):
        p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
        assert learning_rate(cfg, t, t / T) == pytest.approx(lr * (1 + p * (ratio - 1)) / ratio, rel=1e-12), t
    assert learning_rate(cfg, 20, 20 / T) == pytest.approx(lr)  # the peak at the cut
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(lr / ratio)  # no warm-up of its own steps before it


def _classifier_data(files, lm_run):
    model, _, data, _, _ = _started("classify", lm_run, files / "spam.csv", dropout=0.0)
    return model, data


def test_discriminative_rates_divide_by_the_decay_per_layer_from_the_top(files, lm_run, tmp_path):
    model, data = _classifier_data(files, lm_run)
    cfg = TrainConfig(lr=0.01, lr_layer_decay=2.6, lr_schedule="constant", warmup_steps=0, max_steps=1,
                      init_from=str(lm_run), device="cpu", precision="fp32")
    trainer = Trainer(model, data, cfg, out=tmp_path / "run", quiet=True)
    trainer.fit()
    rate = {id(p): g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    groups = layer_groups(model)
    assert [len(g) for g in groups] == [2, 4, 4, 1]  # head; layer 1; layer 0; embedding
    for depth, group in enumerate(groups):
        for p in group:
            assert rate[id(p)] == pytest.approx(0.01 / 2.6 ** depth)
    assert rate[id(model.encoder.embedding.weight)] == pytest.approx(0.01 / 2.6 ** 3)
    # weight decay still only on matrices and the embedding
    decays = {id(p): g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert decays[id(model.head.bias)] == 0.0 and decays[id(model.head.weight)] > 0


def test_under_gradual_unfreezing_a_layer_is_averaged_from_its_first_step(files, lm_run, tmp_path):
    """--weight-average with Adam, which sets up a parameter's state at its first step: a frozen layer has
    no average (nor Adam state) until it learns, then both."""
    from rnnkit.training.averaging import KEY

    model, data = _classifier_data(files, lm_run)
    cfg = TrainConfig(lr=0.01, unfreeze_every=2, max_steps=4, warmup_steps=0, init_from=str(lm_run), log_every=2,
                      device="cpu", precision="fp32", optimizer="adam", weight_average=0.9, eval_every=2)
    groups = layer_groups(model)
    averaged = []  # after each step: which groups have averages
    trainer = Trainer(model, data, cfg, out=tmp_path / "run", quiet=True, callbacks=[lambda t: averaged.append(
        [all(KEY in t.optimizer.state[p] for p in g) for g in groups])])
    trainer.fit()
    assert [row[:3] for row in averaged] == [[True, False, False], [True, False, False], [True, True, False],
                                             [True, True, False]]


def test_gradual_unfreezing_leaves_frozen_layers_bit_identical_while_unfrozen_ones_move(files, lm_run, tmp_path):
    model, data = _classifier_data(files, lm_run)
    cfg = TrainConfig(lr=0.01, unfreeze_every=2, max_steps=6, warmup_steps=0, init_from=str(lm_run), log_every=2,
                      device="cpu", precision="fp32", weight_decay=0.1)
    groups = layer_groups(model)
    snapshots = [[[p.detach().clone() for p in g] for g in groups]]
    trainer = Trainer(model, data, cfg, out=tmp_path / "run", quiet=True,
                      callbacks=[lambda t: snapshots.append([[p.detach().clone() for p in g] for g in groups])])
    trainer.fit()
    assert len(snapshots) == 7
    for step in range(6):  # step `step` (0-based) trains the top unfrozen_layers(step, 2, 4) groups
        learning = unfrozen_layers(step, 2, len(groups))
        assert learning == min(1 + step // 2, 4)
        for depth, (before, after) in enumerate(zip(snapshots[step], snapshots[step + 1])):
            same = all(torch.equal(a, b) for a, b in zip(before, after))
            assert same == (depth >= learning), (step, depth)  # frozen: not a bit changed, even by decay
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["unfrozen_layers"] for r in rows if "unfrozen_layers" in r][-1] == 3


def test_unfrozen_layers_counts_the_head_first_and_stops_at_all():
    assert [unfrozen_layers(s, 3, 4) for s in range(0, 15, 3)] == [1, 2, 3, 4, 4]


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case,message", [
    ("missing", "no run folder there"),
    ("damaged", "config.json is corrupt"),
    ("weights", "model.safetensors"),
    ("classify run", "is a classify run, not a language model"),
    ("char lm", "reads char tokens and this run --tokenizer word"),
    ("gru", "has --cell lstm and this run gru"),
    ("hidden", "has --hidden-size 16 and this run 32"),
    ("bidirectional", "drop --bidirectional true"),
    ("lowercase", "--lowercase False, this run True"),
])
def test_a_bad_init_from_is_one_line_and_writes_nothing(case, message, files, lm_run, cli_here, user_error,
                                                        tmp_path):
    import shutil

    run, more = lm_run, []
    if case in ("damaged", "weights"):
        run = tmp_path / "copy"
        shutil.copytree(lm_run, run)
        if case == "damaged":
            (run / "config.json").write_text((run / "config.json").read_text()[:-40])
        else:
            data = bytearray((run / "model.safetensors").read_bytes())
            data[-10:] = b"\0" * 10
            (run / "model.safetensors").write_bytes(bytes(data))
    elif case == "missing":
        run = tmp_path / "nothing"
    elif case == "classify run":
        run = tmp_path / "cls"
        assert cli_here("train", files / "spam.csv", "--task", "classify", *SIZES, "--max-steps", 1, "--out",
                        run).returncode == 0
    elif case == "char lm":
        run = tmp_path / "char-lm"
        assert cli_here("train", files / "text.txt", "--out", run, *SIZES, "--max-steps", 1, "--batch-size", 4,
                        "--seq-len", 16, "--sample-length", 0).returncode == 0
        more = ["--tokenizer", "word"]
    else:
        more = {"gru": ["--cell", "gru"], "hidden": ["--hidden-size", "32"], "bidirectional": ["--bidirectional",
                "true"], "lowercase": ["--lowercase", "true"]}[case]
    out = tmp_path / "out"
    result = cli_here("train", files / "spam.csv", "--task", "classify", "--init-from", run, *SIZES, *more,
                      "--max-steps", 1, "--out", out)
    user_error(result, message)
    assert not out.exists()


def test_the_fine_tuning_settings_are_refused_without_a_language_model(files, cli_here, user_error, tmp_path):
    for flag, value in (("--lr-layer-decay", "2.6"), ("--unfreeze-every", "5")):
        result = cli_here("train", files / "spam.csv", "--task", "classify", flag, value, *SIZES, "--max-steps", 1,
                          "--out", tmp_path / "out")
        user_error(result, f"{flag} needs --init-from RUN")
    result = cli_here("train", files / "spam.csv", "--task", "classify", "--stlr-ratio", "10", *SIZES,
                      "--out", tmp_path / "out")
    user_error(result, "--stlr-ratio needs --lr-schedule stlr")
    result = cli_here("train", files / "spam.csv", "--task", "classify", "--lr-schedule", "stlr", "--warmup-steps",
                      "5", *SIZES, "--out", tmp_path / "out")
    user_error(result, "--warmup-steps needs --lr-schedule constant, step or cosine")
    assert not (tmp_path / "out").exists()


def test_unfreezing_and_layer_rates_need_layers_over_an_embedding():
    with pytest.raises(ValueError, match="no recurrent stack"):
        layer_groups(torch.nn.Linear(2, 2))


def test_a_run_started_from_an_lm_resumes_with_its_own_vocabulary_and_unfreezing(files, lm_run, cli_here, tmp_path):
    out = tmp_path / "cls"
    command = ["train", files / "spam.csv", "--task", "classify", "--init-from", lm_run, *SIZES, "--batch-size", 8,
               "--unfreeze-every", 2, "--log-every", 1, "--eval-every", 2, "--out", out]
    assert cli_here(*command, "--max-steps", 2).returncode == 0
    words = load_run(out)[1].words
    result = cli_here(*command, "--max-steps", 5, "--resume")
    assert result.returncode == 0, result.stderr
    assert "init from" not in result.stdout  # the weights come from the checkpoint, not the LM again
    assert load_run(out)[1].words == words
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["unfrozen_layers"] for r in rows if "unfrozen_layers" in r] == [1, 1, 2, 2, 3]
