"""Sequence to sequence: attention, the decoder's distributions, greedy and
beam search, pairs of files, training on a toy task, and the command line."""

import dataclasses
import gzip
import json
import math
import random
import zipfile

import pytest
import torch

from rnnkit.config import TrainConfig, to_dict
from rnnkit.data.batches import PairBatch
from rnnkit.data.pairs import PairConfig, PairData, collate_pairs, read_pairs
from rnnkit.errors import DataError
from rnnkit.layers.attention import Attention
from rnnkit.models.beam import beam_search
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, greedy
from rnnkit.tasks import Seq2SeqTask, Seq2SeqTraining, Trainer
from rnnkit.training.decode import decode, score
from rnnkit.training.optim import teacher_forcing

# the decoder variants: every score, no attention, no input feeding, the stop bit, the output-fed decoder
VARIANTS = [dict(), dict(attention="dot"), dict(attention="general"), dict(attention="none"),
            dict(input_feeding=False), dict(sequence_end="stop"), dict(decoder_recurrence="output"),
            dict(cell="gru", sequence_end="stop"), dict(encoder="tdnn")]
IDS = ["additive", "dot", "general", "none", "no-feeding", "stop", "output-fed", "gru-stop", "tdnn"]


def model_of(seed=0, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    settings = dict(hidden_size=6, num_layers=2, embedding_dim=5, dropout=0.0, **kw)
    return Seq2Seq(7, 5, **to_dict(Seq2SeqConfig(**settings))).to(dtype).eval()


def toy_batch(seed=0):
    """Three pairs of different lengths, padded: x (3, 6), y (3, 4)."""
    g = torch.Generator().manual_seed(seed)
    sources = [torch.randint(0, 7, (n,), generator=g).numpy() for n in (6, 3, 1)]
    targets = [torch.randint(0, 5, (n,), generator=g).numpy() for n in (2, 4, 1)]
    return collate_pairs(sources, targets)


# -- attention ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_weights_sum_to_one_vanish_at_padding_and_pass_gradcheck(kind):
    torch.manual_seed(0)
    attention = Attention(kind, 4).double()
    values = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    query = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    context, weights = attention(query, attention.memory(values, mask))
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    assert (weights[1, :, 2:] == 0).all()
    changed = values.detach().clone()
    changed[1, 2:] = 99.0  # what lies under padding never matters
    assert torch.equal(attention(query, attention.memory(changed, mask))[0][1], context[1])
    assert torch.autograd.gradcheck(lambda q, v: attention(q, attention.memory(v, mask))[0], (query, values))


# -- the decoder's distributions ------------------------------------------------------


def sequence_log_prob(model, x, lengths, tokens) -> float:
    """log p(tokens, end | x) by stepping the decoder: what beam search adds up."""
    state, memory = model.start(x, lengths)
    previous, total = x.new_full((1,), model.end), 0.0
    for token in [*tokens, model.end]:
        log_probs, state, _ = model.step(previous, state, memory)
        total += log_probs[0, token].item()
        previous = x.new_full((1,), token)
    return total


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_the_training_loss_is_the_stepped_decoders_log_likelihood_and_padding_never_matters(kw):
    """-loss * (U + 1) of each pair alone = -log p(y, end | x) from the step-by-step
    distributions (so training, greedy and beam search score the same thing),
    and the same pair's loss inside a padded batch is unchanged."""
    model = model_of(**kw)
    x, xl, y, yl = toy_batch()
    per_pair = []
    for b in range(3):
        alone = PairBatch(x[b:b + 1, :xl[b]], xl[b:b + 1], y[b:b + 1, :yl[b]], yl[b:b + 1])
        loss, _ = model.loss(alone)
        per_pair.append(loss.item() * (int(yl[b]) + 1))
        expected = -sequence_log_prob(model, alone[0], alone[1], y[b, :yl[b]].tolist())
        assert per_pair[-1] == pytest.approx(expected, rel=1e-9)
    batch_loss, _ = model.loss(PairBatch(x, xl, y, yl))
    assert batch_loss.item() * int((yl + 1).sum()) == pytest.approx(sum(per_pair), rel=1e-9)


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_greedy_and_beam_decoding_of_a_batch_equal_one_sentence_at_a_time(kw):
    model = model_of(**kw)
    x, xl, _, _ = toy_batch(1)
    batched, weights = greedy(model, x, xl, max_length=6)
    for b in range(3):
        alone, alone_weights = greedy(model, x[b:b + 1, :xl[b]], xl[b:b + 1], max_length=6)
        assert alone[0] == batched[b]
        assert torch.allclose(alone_weights[0], weights[b], atol=1e-12)
    beams = beam_search(model, x, xl, beam_size=3, max_length=6, n_best=3)
    for b in range(3):
        alone = beam_search(model, x[b:b + 1, :xl[b]], xl[b:b + 1], beam_size=3, max_length=6, n_best=3)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in beams[b]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in beams[b]], rel=1e-9)


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_beam_size_one_is_greedy_and_every_hypothesis_scores_its_own_log_likelihood(kw):
    model = model_of(seed=3, **kw)
    x, xl, _, _ = toy_batch(2)
    outputs, weights = greedy(model, x, xl, max_length=5)
    narrow = beam_search(model, x, xl, beam_size=1, max_length=5)
    assert [h[0].tokens for h in narrow] == outputs
    if "attention" not in kw:  # the weights of every step, the end's included
        for h, w in zip(narrow, weights):  # (greedy takes no step to end an output cut at max_length)
            assert torch.allclose(h[0].attention[:len(w)], w, atol=1e-12)
    for b, n_best in enumerate(beam_search(model, x, xl, beam_size=4, max_length=5, n_best=4,
                                           length_penalty=0.7)):
        assert [h.normalised for h in n_best] == sorted((h.normalised for h in n_best), reverse=True)
        assert len({tuple(h.tokens) for h in n_best}) == len(n_best)  # no hypothesis twice
        for h in n_best:
            if len(h.tokens) < 5:  # (an output cut at max_length had no choice of ending there)
                assert h.score == pytest.approx(sequence_log_prob(model, x[b:b + 1, :xl[b]], xl[b:b + 1],
                                                                  h.tokens), rel=1e-9)
            assert h.normalised == pytest.approx(h.score / max(len(h.tokens), 1) ** 0.7)


# -- schedules -------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "exponential", "inverse_sigmoid"])
def test_teacher_forcing_falls_from_one_and_is_half_at_sampling_steps(schedule):
    cfg = Seq2SeqTraining(scheduled_sampling=schedule, sampling_steps=400)
    values = [teacher_forcing(cfg, i) for i in range(0, 2000, 50)]
    assert values[0] == pytest.approx(1.0, abs=0.02)  # inverse sigmoid starts at c / (c + 1)
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert teacher_forcing(cfg, 400) == pytest.approx(0.5, abs=1e-6)
    assert teacher_forcing(Seq2SeqTraining(), 10 ** 6) == 1.0


def test_scheduled_sampling_feeds_the_models_own_tokens():
    """With teacher_forcing 0 in training the decoder reads its samples: the
    loss differs from the teacher-forced one; in evaluation it never samples."""
    model = model_of()
    batch = toy_batch()
    model.train()
    forced = model.loss(batch)[0].item()
    model.teacher_forcing = 0.0
    torch.manual_seed(1)
    assert model.loss(batch)[0].item() != pytest.approx(forced)
    model.eval()
    assert model.loss(batch)[0].item() == pytest.approx(forced)


# -- metrics ---------------------------------------------------------------------------


def test_error_rates_score_each_source_against_its_closest_reference():
    outputs = ["K AE T", "D AO G", "T AH M EY T OW"]
    refs = [["K AE T"], ["D AA G", "D AO G"], ["T AH M AA T OW", "T AH M EY T"]]
    metrics = score(outputs, refs, "word")
    assert metrics["sequence_error_rate"] == pytest.approx(1 / 3)  # either of a word's pronunciations is right
    # errors 0 + 0 + 1: one substitution from the 6-phoneme reference, one insertion from the 5-phoneme
    # one; of two equally near references the longer counts
    assert metrics["token_error_rate"] == pytest.approx(1 / (3 + 3 + 6))
    assert score(["abc"], [["abd"]], "char")["token_error_rate"] == pytest.approx(1 / 3)


# -- pairs of files --------------------------------------------------------------------


def test_pairs_from_a_tsv_and_from_gzipped_parallel_files_agree(tmp_path):
    pairs = [("ein Hund", "a dog"), ("zwei Katzen", "two cats"), ("ein Hund", "one dog")]
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs) + "\n")
    for lang, side in (("de", 0), ("en", 1)):
        (tmp_path / f"train.{lang}.gz").write_bytes(gzip.compress("".join(p[side] + "\n" for p in pairs).encode()))
    tsv = read_pairs(tmp_path / "pairs.tsv", PairConfig())
    parallel = read_pairs(tmp_path / "train", PairConfig(source_lang="de", target_lang="en"))
    assert tsv == parallel == ([s for s, _ in pairs], [t for _, t in pairs])
    with zipfile.ZipFile(tmp_path / "both.zip", "w") as z:  # Tatoeba's fra-eng.zip: the pairs and an _about.txt
        z.write(tmp_path / "pairs.tsv", "pairs.tsv")
        z.writestr("_about.txt", "where the pairs come from")
    assert read_pairs(tmp_path / "both.zip" / "pairs.tsv", PairConfig()) == tsv
    with pytest.raises(DataError, match=r"both.zip holds 2 files \(pairs.tsv, _about.txt\); name one as .*pairs.tsv"):
        read_pairs(tmp_path / "both.zip", PairConfig())
    with pytest.raises(DataError, match="both.zip has no file fra.txt"):
        read_pairs(tmp_path / "both.zip" / "fra.txt", PairConfig())
    with zipfile.ZipFile(tmp_path / "parallel.zip", "w") as z:  # parallel files inside an archive
        for lang in ("de", "en"):
            z.write(tmp_path / f"train.{lang}.gz", f"train.{lang}.gz")
    assert read_pairs(tmp_path / "parallel.zip" / "train", PairConfig(source_lang="de",
                                                                      target_lang="en")) == tsv


def test_a_split_keeps_every_target_of_a_source_together(tmp_path):
    lines = [f"w{i}\tp{i} a\n" for i in range(100)] + [f"w{i}\tp{i} b\n" for i in range(100)]
    (tmp_path / "pairs.tsv").write_text("".join(lines))
    data = PairData.from_file(tmp_path / "pairs.tsv", PairConfig(val_fraction=0.2))
    assert len(data.val) == 40 and not set(data.train.sources) & set(data.val.sources)


@pytest.mark.parametrize("files,flags,message", [
    ({"p.tsv": "cat\tK AE T\ndog\n"}, {}, "p.tsv line 2 has 1 column(s)"),
    ({"p.tsv": "cat\tK AE T\n\t D AO G\n"}, {}, "p.tsv line 2 has an empty source"),
    ({"p.tsv": "cat\t \n"}, {}, "p.tsv line 1 has an empty target"),
    ({"p.de": "a\nb\n", "p.en": "x\n"}, {"source_lang": "de", "target_lang": "en"}, "parallel files must pair"),
    ({"p.de": "a\n\n", "p.en": "x\ny\n"}, {"source_lang": "de", "target_lang": "en"}, "p.de line 2 is empty"),
    ({"p.de": "a\n"}, {"source_lang": "de", "target_lang": "en"}, "neither"),
])
def test_bad_pair_files_are_named_with_the_line(tmp_path, files, flags, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / ("p.tsv" if "p.tsv" in files else "p")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_pairs(path, PairConfig(**flags))


# -- training --------------------------------------------------------------------------


def reversal_pairs(n, seed=0) -> str:
    """Lines ``word<TAB>its letters reversed, spaced``: the toy task."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 6))) for _ in range(n)]
    return "".join(f"{w}\t{' '.join(reversed(w))}\n" for w in words)


@pytest.mark.parametrize("kw", [dict(), dict(sequence_end="stop", attention="dot")], ids=["eos", "stop"])
def test_the_trainer_learns_to_reverse_words(tmp_path, kw):
    (tmp_path / "pairs.tsv").write_text(reversal_pairs(1500))
    data = PairData.from_file(tmp_path / "pairs.tsv", PairConfig(tokenizer="char",
                                                                 target_tokenizer="word", batch_size=32))
    torch.manual_seed(0)
    model = Seq2Seq(data.vocab_size, data.target_tokenizer.vocab_size,
                    **to_dict(Seq2SeqConfig(hidden_size=32, num_layers=1, embedding_dim=16, dropout=0.0, **kw)))
    config = TrainConfig(max_steps=250, eval_every=250, lr=1e-2, device="cpu", precision="fp32")
    result = Trainer(model, data, config, out=tmp_path / "run", quiet=True).fit()
    assert result["val_loss"] < 0.1
    sources = data.val.examples.ids
    outputs = [data.target_tokenizer.decode(h[0].tokens) for h in decode(model, sources, beam_size=3)]
    assert score(outputs, [[t] for t in data.val.targets], "word")["sequence_error_rate"] < 0.1


def test_validation_decodes_and_the_best_checkpoint_is_the_one_that_errs_least(tmp_path, monkeypatch):
    """Validation scores the greedy outputs; and since a decoder's loss can
    rise while its outputs improve, the checkpoint kept as the best is the
    validation token error rate's minimum (the first of equals), not the loss's."""
    from rnnkit.training.runs import BEST, load_tensors

    (tmp_path / "pairs.tsv").write_text(reversal_pairs(600, seed=2))
    data = PairData.from_file(tmp_path / "pairs.tsv", PairConfig(tokenizer="char",
                                                                 target_tokenizer="word", batch_size=32))
    torch.manual_seed(0)
    model = Seq2Seq(data.vocab_size, data.target_tokenizer.vocab_size,
                    **to_dict(Seq2SeqConfig(hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.3)))
    config = TrainConfig(max_steps=60, eval_every=20, lr=1e-2, device="cpu", precision="fp32")
    Trainer(model, data, config, out=tmp_path / "real", quiet=True).fit()
    evals = [row for row in map(json.loads, (tmp_path / "real" / "metrics.jsonl").read_text().splitlines())
             if "val_loss" in row]
    assert [set(row) for row in evals] == 3 * [{"step", "val_loss", "val_perplexity", "val_token_error_rate",
                                                "val_sequence_error_rate", "val_bleu"}]
    assert evals[-1]["val_token_error_rate"] < 0.8 * evals[0]["val_token_error_rate"]

    scripted = iter([(1.0, 0.5), (0.8, 0.6), (0.9, 0.4), (0.7, 0.4)])  # (loss, token error rate) at steps 5..20
    monkeypatch.setattr(Seq2SeqTask, "validate", lambda *args, **kw: dict(zip(("loss", "token_error_rate"),
                                                                              next(scripted))))
    config = dataclasses.replace(config, max_steps=20, eval_every=5)
    Trainer(model, data, config, out=tmp_path / "scripted", quiet=True).fit()
    assert load_tensors(tmp_path / "scripted" / BEST)[1]["step"] == 15


def test_beam_search_never_scores_below_greedy_on_a_trained_model(tmp_path):
    """Under the model's own scores (no length normalisation), on a model half
    trained so that its choices are not all certain."""
    (tmp_path / "pairs.tsv").write_text(reversal_pairs(800, seed=1))
    data = PairData.from_file(tmp_path / "pairs.tsv", PairConfig(tokenizer="char",
                                                                 target_tokenizer="word", batch_size=32))
    torch.manual_seed(0)
    model = Seq2Seq(data.vocab_size, data.target_tokenizer.vocab_size,
                    **to_dict(Seq2SeqConfig(hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0)))
    Trainer(model, data, TrainConfig(max_steps=60, eval_every=1000, lr=1e-2, device="cpu",
                                     precision="fp32"), out=tmp_path / "run", quiet=True).fit()
    x, xl, _, _ = collate_pairs(data.val.examples.ids, data.val.examples.ids)
    greedy_outputs = beam_search(model, x, xl, beam_size=1, max_length=12, length_penalty=0.0)
    beams = beam_search(model, x, xl, beam_size=5, max_length=12, length_penalty=0.0)
    gaps = [b[0].score - g[0].score for b, g in zip(beams, greedy_outputs)]
    assert min(gaps) >= -1e-9 and max(gaps) > 0.01  # never worse, and better somewhere


# -- the command line ------------------------------------------------------------------


@pytest.mark.slow
def test_train_eval_and_predict_through_the_command_line(tmp_path, cli_here, user_error):
    (tmp_path / "pairs.tsv").write_text(reversal_pairs(1500))
    (tmp_path / "words.txt").write_text("abc\nfed\n")
    run = tmp_path / "run"
    trained = cli_here("train", tmp_path / "pairs.tsv", "--task", "seq2seq", "--tokenizer", "char",
                       "--target-tokenizer", "word", "--hidden-size", 32, "--num-layers", 1, "--embedding-dim", 16,
                       "--max-steps", 150, "--lr", "0.01", "--eval-every", 150, "--device", "cpu", "--out", run)
    assert trained.returncode == 0, trained.stderr
    evaluated = cli_here("eval", run, "--beam-size", 3, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = __import__("json").loads(evaluated.stdout)
    assert metrics["sequence_error_rate"] < 0.1 and metrics["decoding"].startswith("beam 3")
    predicted = cli_here("predict", run, tmp_path / "words.txt", "--beam-size", 2, "--n-best", 2,
                         "--attention-plot", tmp_path / "a.png")
    assert predicted.returncode == 0, predicted.stderr
    lines = [line.split("\t") for line in predicted.stdout.splitlines()]
    assert [line[:2] for line in lines[::2]] == [["abc", "c b a"], ["fed", "d e f"]]
    assert float(lines[0][2]) > float(lines[1][2]) and (tmp_path / "a.png").stat().st_size > 1000
    (tmp_path / "odd.txt").write_text("abz\n")
    user_error(cli_here("predict", run, tmp_path / "odd.txt"), "character(s) the model never saw in training: 'z'")
    user_error(cli_here("predict", run, tmp_path / "words.txt", "--n-best", 2), "--n-best 2 outputs need a beam")
    user_error(cli_here("eval", run, "--window", 4), "--window needs a lm run")
    assert math.isfinite(metrics["loss"])


@pytest.mark.parametrize("files,flags,message", [
    ({"p.tsv": "cat\tK AE T\ndog\n"}, [], "p.tsv line 2 has 1 column(s)"),
    ({"p.de": "a\nb\n", "p.en": "x\n"}, ["--source-lang", "de", "--target-lang", "en"], "parallel files must pair"),
    ({"p.tsv": "cat\tK AE T\n"}, ["--source-lang", "de"], "give both"),
    ({"p.tsv": "cat\tK AE T\n"}, ["--source-column", "1", "--target-column", "1"], "give two columns"),
    ({"p.tsv": "cat\tK AE T\n"}, ["--pooling", "mean"], "--pooling needs --task classify"),
])
def test_bad_pairs_and_settings_through_the_command_line(tmp_path, cli_here, user_error, files, flags, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / ("p.tsv" if "p.tsv" in files else "p")
    user_error(cli_here("train", path, "--task", "seq2seq", "--out", tmp_path / "run", *flags), message)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_trajectory(tmp_path, cli_here):
    """Stopped after 6 steps and resumed to 12, a run ends where one of 12 steps
    ends: the tokenizers come back from config.json and scheduled sampling's
    draws from the saved random state."""
    from rnnkit.training.runs import LAST, load_tensors

    (tmp_path / "pairs.tsv").write_text(reversal_pairs(300))
    flags = ["--task", "seq2seq", "--tokenizer", "char", "--target-tokenizer", "word", "--hidden-size", 8,
             "--num-layers", 1, "--embedding-dim", 8, "--batch-size", 16, "--device", "cpu", "--eval-every", 4,
             "--lr-schedule", "constant", "--scheduled-sampling", "linear", "--sampling-steps", 6,
             "--precision", "fp32"]
    assert cli_here("train", tmp_path / "pairs.tsv", *flags, "--max-steps", 12, "--out", tmp_path / "a").returncode == 0
    assert cli_here("train", tmp_path / "pairs.tsv", *flags, "--max-steps", 6, "--out", tmp_path / "b").returncode == 0
    resumed = cli_here("train", "--resume", "--out", tmp_path / "b", "--max-steps", 12)
    assert resumed.returncode == 0, resumed.stderr
    whole, halves = load_tensors(tmp_path / "a" / LAST)[0], load_tensors(tmp_path / "b" / LAST)[0]
    for name in (k for k in whole if k.startswith("model.")):
        assert torch.equal(whole[name], halves[name]), name
