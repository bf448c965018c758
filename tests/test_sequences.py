"""Classification and tagging: reading tables and CoNLL files, padded batches,
padding invariance, learning, and the errors of bad input."""

import random
import re
from types import SimpleNamespace

import pytest
import torch

from rnnkit import DataConfig, load_run
from rnnkit.data import collate, read_conll, read_table
from rnnkit.data.batches import LabelledBatch
from rnnkit.data.sequences import BucketBatcher, Examples
from rnnkit.errors import DataError
from rnnkit.models import SequenceClassifier, SequenceTagger
from rnnkit.tasks import LanguageModelData, named, read_data


def test_read_table_finds_columns_by_header_and_by_content(tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text('ID,CONTENT,CLASS\n1,"hello, world",0\n2,"multi\nline",1\n')
    table = read_table(csv)
    assert table.texts == ["hello, world", "multi\nline"] and table.labels == ["0", "1"]
    tsv = tmp_path / "sms.tsv"  # the SMS Spam Collection: label first, no header
    tsv.write_text('ham\tGo until jurong point\nspam\tWIN a prize now\nham\t"Keep ur problems, b\'coz\nham\tOk lar\n')
    table = read_table(tsv)  # a TSV field is taken as it is: a leading quote mark quotes nothing
    assert table.labels == ["ham", "spam", "ham", "ham"] and table.texts[1] == "WIN a prize now"
    assert table.texts[2] == '"Keep ur problems, b\'coz' and table.texts[3] == "Ok lar"


def test_a_tsv_text_keeps_its_quotes_and_backslashes_when_read_and_written(tmp_path):
    import io

    from rnnkit.data.tables import write_table

    tsv = tmp_path / "sms.tsv"
    tsv.write_text('ham\tsmile :\\ "ok"\nspam\tC:\\prize\\win.exe\nham\tfine\n')
    table = read_table(tsv)
    assert table.texts == ['smile :\\ "ok"', "C:\\prize\\win.exe", "fine"]
    out = io.StringIO()
    write_table(out, table, ["ham", "spam", "ham"])
    assert out.getvalue() == 'ham\tsmile :\\ "ok"\tham\nspam\tC:\\prize\\win.exe\tspam\nham\tfine\tham\n'


@pytest.mark.parametrize("content,message", [
    ("ID,CONTENT\n1,hello\n", "no label column 'auto'"),
    ("text,label\nhello,1\nworld\n", "line 3: 1 column(s), expected at least 2"),
    ("text,label\nhello,1\n   ,0\n", "line 3: empty text"),
    ("text,label\n", "has a header but no examples"),
])
def test_read_table_errors_name_the_line_and_the_fix(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_table(path)


def test_read_conll_skips_comments_and_conllu_ranges_and_rejects_ragged_lines(tmp_path):
    path = tmp_path / "u.conllu"
    path.write_text("# sent_id = 1\n1-2\tdon't\t_\t_\n1\tdo\tdo\tAUX\n2\tn't\tnot\tPART\n\n"
                    "1\tgo\tgo\tVERB\n2.1\tx\tx\tX\n\n")
    s = read_conll(path, word_column=1, tag_column=3)
    assert s.words == [["do", "n't"], ["go"]] and s.tags == [["AUX", "PART"], ["VERB"]]
    chunks = tmp_path / "c.txt"  # CoNLL-2000 has the words "#" and "2.5"
    chunks.write_text("# # I-NP\n2.5 CD I-NP\nmillion CD I-NP\n\n")
    assert read_conll(chunks).words == [["#", "2.5", "million"]]
    ragged = tmp_path / "r.txt"
    ragged.write_text("the DT B-NP\ncat NN\n")
    with pytest.raises(DataError, match="line 2: 2 column"):
        read_conll(ragged)


def test_bucketed_batches_cover_every_example_once_with_little_padding():
    rng = random.Random(0)
    ids = [torch.arange(1, rng.randint(1, 40) + 1).numpy() for _ in range(203)]
    batcher = BucketBatcher(Examples(ids, list(range(203))), 16, seed=3)
    seen, padding = [], 0
    for x, lengths, y in batcher.batches(epoch=1):
        seen += y.tolist()
        padding += int((x.shape[1] - lengths).sum())
        assert bool((x[torch.arange(x.shape[1])[None] >= lengths[:, None]] == 0).all())
    assert sorted(seen) == list(range(203)) and batcher.num_batches(1) == 13
    assert padding < 0.1 * sum(len(i) for i in ids)  # sorted windows: little padding
    assert [y.tolist() for *_, y in batcher.batches(1, start=5)] == \
        [y.tolist() for *_, y in list(batcher.batches(1))[5:]]  # resumable mid-epoch


def test_attention_pooling_weights_sum_to_one_vanish_at_padding_and_weigh_the_outputs(tiny_model):
    torch.manual_seed(0)
    model = SequenceClassifier(30, 2, **tiny_model, pooling="attention").double().eval()
    seqs = [torch.randint(1, 30, (n,)).numpy() for n in (6, 3, 1)]
    x, lengths, _ = collate(seqs, [0, 1, 0])
    valid = torch.arange(x.shape[1]) < lengths[:, None]  # (B, T)
    alpha = model.attention_weights(x, lengths)  # (B, T)
    torch.testing.assert_close(alpha.sum(1), torch.ones(3, dtype=torch.float64))
    assert alpha[~valid].eq(0).all() and alpha[valid].gt(0).all() and alpha[2, 0] == 1
    outputs, _ = model.encoder(x, lengths)  # (B, T, F)
    torch.testing.assert_close(model.pool(x, lengths), torch.einsum("bt,btf->bf", alpha, outputs))
    with torch.no_grad():  # every score equal: attention is the mean over each sequence's own steps
        model.attn_v.weight.zero_()
    torch.testing.assert_close(model.attention_weights(x, lengths), valid / lengths[:, None].double())
    torch.testing.assert_close(model.pool(x, lengths), outputs.sum(1) / lengths[:, None].double())


def test_meanmax_pooling_joins_each_sequences_own_mean_and_peak(tiny_model):
    torch.manual_seed(0)
    model = SequenceClassifier(30, 3, **tiny_model, pooling="meanmax").double().eval()
    seqs = [torch.randint(1, 30, (n,)).numpy() for n in (6, 3, 1)]
    x, lengths, _ = collate(seqs, [0, 1, 2])
    outputs, _ = model.encoder(x, lengths)  # (B, T, F)
    pooled = model.pool(x, lengths)  # (B, 2F)
    assert model.head.in_features == 2 * outputs.shape[-1] == pooled.shape[-1]
    for b, n in enumerate(lengths.tolist()):  # the oracle: each sequence's own steps, none of the padding
        torch.testing.assert_close(pooled[b], torch.cat([outputs[b, :n].mean(0), outputs[b, :n].amax(0)]))


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "meanmax", "attention"])
@pytest.mark.parametrize("engine,merge,encoder", [("fused", "concat", "rnn"), ("explicit", "sum", "rnn"),
                                                   ("fused", "concat", "tdnn")])
def test_padding_never_changes_a_classifiers_result(pooling, engine, merge, encoder, tiny_model):
    torch.manual_seed(0)
    model = SequenceClassifier(30, 3, **{**tiny_model, "num_layers": 2}, pooling=pooling, engine=engine,
                               merge=merge, encoder=encoder).double().eval()
    seqs = [torch.randint(1, 30, (n,)).numpy() for n in (5, 2, 9)]
    x, lengths, _ = collate(seqs, [0, 1, 2])
    batched, _ = model(x, lengths)
    for b, s in enumerate(seqs):
        alone, _ = model(torch.from_numpy(s)[None], torch.tensor([len(s)]))
        torch.testing.assert_close(batched[b], alone[0])


@pytest.mark.parametrize("crf,encoder,bidirectional", [(False, "rnn", True), (True, "rnn", True),
                                                       (False, "tdnn", True), (True, "tdnn", False)])
def test_padding_never_changes_a_taggers_result(crf, encoder, bidirectional, tiny_model):
    torch.manual_seed(0)
    model = SequenceTagger(30, 4, **{**tiny_model, "num_layers": 2}, crf=crf, encoder=encoder, kernel_size=3,
                           bidirectional=bidirectional).double().eval()
    seqs = [torch.randint(1, 30, (n,)).numpy() for n in (6, 1, 3)]
    tags = [torch.randint(0, 4, (len(s),)).numpy() for s in seqs]
    x, lengths, y = collate(seqs, tags)
    loss_batch, _ = model.loss(LabelledBatch(x, lengths, y))
    pred = model.predict(x, lengths)
    total = 0.0
    for b, (s, t) in enumerate(zip(seqs, tags)):
        xb, lb, yb = collate([s], [t])
        total += model.loss(LabelledBatch(xb, lb, yb))[0] * len(s)
        assert pred[b, :len(s)].tolist() == model.predict(xb, lb)[0].tolist()
        assert pred[b, len(s):].eq(0).all()
    torch.testing.assert_close(loss_batch, total / sum(len(s) for s in seqs))


def test_classifier_learns_spam_from_words_and_reloads(tmp_path, spam_table, tiny_model, fit_labelled):
    path = tmp_path / "spam.csv"
    path.write_text(spam_table())
    data = read_data(path, DataConfig(task="classify", batch_size=8, val_fraction=0.25))
    assert data.labels == ["0", "1"] and len(data.val) == 30  # stratified: 15 of each
    assert sorted(data.val.labels) == [0] * 15 + [1] * 15
    torch.manual_seed(0)
    trainer, result = fit_labelled(data, SequenceClassifier(data.vocab_size, 2, **tiny_model), tmp_path)
    assert result["val_accuracy"] >= 0.95 and result["val_loss"] < 0.3, result  # chance: 0.5, 0.69
    model, tokenizer, doc = load_run(tmp_path / "run")
    assert doc.labels == ["0", "1"] and isinstance(model, SequenceClassifier)


def test_crf_tagger_learns_chunks_and_scores_chunk_f1(tmp_path, chunk_corpus, tiny_model, fit_labelled):
    path = tmp_path / "train.txt"
    path.write_text(chunk_corpus())
    data = read_data(path, DataConfig(task="tag", batch_size=8, val_fraction=0.2))
    assert data.labels == ["B-NP", "B-VP", "I-NP"]
    trainer, result = fit_labelled(data, SequenceTagger(data.vocab_size, 3, **tiny_model, crf=True), tmp_path)
    assert result["val_accuracy"] == 1.0 and result["val_f1"] == 1.0, result


def test_a_chunker_keeps_the_checkpoint_of_the_best_val_f1_not_of_the_lowest_loss(tmp_path, chunk_corpus, tiny_model,
                                                                                  fit_labelled):
    """Chunk tags: the kept checkpoint is the first evaluation at the highest val F1 (the loss goes on
    falling after it, and may rise while F1 rises); tags without chunks keep the loss's choice."""
    import json

    from rnnkit.tasks import named
    from rnnkit.training.runs import read_metadata

    task = named("tag")
    assert task.criterion({"loss": 0.10, "f1": 0.93}) > task.criterion({"loss": 0.14, "f1": 0.94})
    assert task.criterion({"loss": 0.10, "accuracy": 0.9}) < task.criterion({"loss": 0.14, "accuracy": 0.95})
    path = tmp_path / "train.txt"
    path.write_text(chunk_corpus())
    data = read_data(path, DataConfig(task="tag", batch_size=8, val_fraction=0.2))
    trainer, _ = fit_labelled(data, SequenceTagger(data.vocab_size, 3, **tiny_model, crf=True), tmp_path,
                              eval_every=2)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "val_f1" in r]
    best_f1 = max(r["val_f1"] for r in evals)
    first_best = next(r["step"] for r in evals if r["val_f1"] == best_f1)
    lowest_loss = min(evals, key=lambda r: r["val_loss"])["step"]
    assert first_best != lowest_loss, "the data should separate the two choices"
    assert int(read_metadata(tmp_path / "run" / "model.safetensors")["step"]) == first_best


def test_held_out_files_add_their_labels_and_words_outside_training_are_unknown(tmp_path, spam_table):
    train_path, val_path = tmp_path / "train.csv", tmp_path / "val.csv"
    train_path.write_text(spam_table(20))
    val_path.write_text("text,label\nhello there,maybe\n")
    data = read_data(train_path, DataConfig(task="classify", val_path=str(val_path)))
    assert data.labels == ["0", "1", "maybe"]  # a test label never seen in training scores as a miss
    assert data.val.ids[0].tolist() == [0, 0]  # "hello there": <unk> <unk>, not words of their own
    split = read_data(train_path, DataConfig(task="classify", val_fraction=0.5))
    held_out = {w for ids in split.val.ids for w in split.tokenizer.decode(ids).split()}
    assert split.tokenizer.vocab_size < 1 + len(held_out | set(split.tokenizer.decode(
        [i for ids in split.train.ids for i in ids]).split()))


def test_a_char_classifier_reads_characters_it_never_saw_as_one_unknown(tmp_path, spam_table):
    from rnnkit.data.tokenizers import tokenizer_from_dict

    train_path, val_path = tmp_path / "train.csv", tmp_path / "val.csv"
    train_path.write_text(spam_table(20))
    val_path.write_text("text,label\nhéllo ☃,1\n")
    data = read_data(train_path, DataConfig(task="classify", tokenizer="char", val_path=str(val_path)))
    tok, ids = data.tokenizer, data.val.ids[0]
    assert ids.tolist().count(0) == 2 and tok.decode(ids) == "h\ufffdllo \ufffd"  # é and ☃: id 0
    assert "é" not in tok.decode(range(1, tok.vocab_size))  # the alphabet of the training part only
    assert tokenizer_from_dict(tok.to_dict()).encode("héllo ☃").tolist() == ids.tolist()
    with pytest.raises(DataError, match="never saw in training"):  # a language model's characters stay strict
        strict = SimpleNamespace(tokenizer=tokenizer_from_dict({**tok.to_dict(), "unk": False}), labels=None)
        named("lm").read_data(LanguageModelData(path=str(val_path), condition_column="label", tokenizer="char"), strict)


def test_an_example_without_tokens_is_an_error(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text('text,label\n"!!!",1\nfine words,0\n')
    with pytest.raises(DataError, match="example 1 has no tokens"):
        named("classify").read_data(DataConfig(path=str(empty), task="classify", tokenizer="word"),
                                    SimpleNamespace(tokenizer=_word_tokenizer("fine words"), labels=None))


def _word_tokenizer(text):
    from rnnkit.data.words import WordTokenizer

    return WordTokenizer.fit(text, eos=False, pattern=r"\w+")


def test_a_causal_tdnn_sees_a_window_of_the_past_only():
    from rnnkit.layers.tdnn import TimeDelay

    torch.manual_seed(0)
    layer = TimeDelay(3, 4, num_layers=2, kernel_size=3, causal=True).double()
    x = torch.randn(1, 10, 3, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x, torch.tensor([10]))
    out[0, 6].sum().backward()
    reach = x.grad[0].abs().sum(-1).nonzero().flatten().tolist()
    assert reach == [2, 3, 4, 5, 6]  # 2 layers x (3 - 1) + 1 inputs, none after t = 6


@pytest.mark.slow
def test_cli_classify_trains_and_predicts_in_the_tables_format(tmp_path, cli_here, user_error, spam_table,
                                                               tiny_labelled_flags):
    table = tmp_path / "spam.csv"
    table.write_text(spam_table(60))
    run = tmp_path / "run"
    result = cli_here("train", table, "--task", "classify", "--max-epochs", 3, "--out", run, *tiny_labelled_flags)
    assert result.returncode == 0, result.stderr
    assert "--task classify" in result.stdout and "accuracy" in result.stdout and "rnnkit predict" in result.stdout
    out = tmp_path / "pred.csv"
    result = cli_here("predict", run, table, "--out", out)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "COMMENT_ID,CONTENT,CLASS,prediction" and len(lines) == 61
    assert "60 examples with labels; accuracy" in result.stderr
    new = tmp_path / "new.tsv"
    new.write_text("text\ncheck my channel now\nnice song\n")  # no label column: texts to predict
    result = cli_here("predict", run, new)
    assert result.returncode == 0 and result.stdout.splitlines()[0] == "text\tprediction", result.stderr
    user_error(cli_here("sample", run), "is a classify run, not a language model")


@pytest.mark.slow
def test_cli_tag_trains_and_predicts_conll(tmp_path, cli_here, chunk_corpus, tiny_labelled_flags):
    corpus = tmp_path / "train.txt"
    corpus.write_text(chunk_corpus(40))
    run = tmp_path / "run"
    result = cli_here("train", corpus, "--task", "tag", "--crf", "true", "--max-epochs", 2, "--out", run,
                      *tiny_labelled_flags)
    assert result.returncode == 0, result.stderr
    words = tmp_path / "words.txt"
    words.write_text("the\ncat\nsleeps\n\nthe\nunseenword\n\n")
    result = cli_here("predict", run, words)
    assert result.returncode == 0, result.stderr
    sentences = result.stdout.strip().split("\n\n")
    assert [len(s.splitlines()) for s in sentences] == [3, 2]
    assert all(line.split()[-1] in ("B-NP", "I-NP", "B-VP") for line in result.stdout.split("\n") if line)


def test_predict_scores_gold_tags_unseen_in_training_as_errors_as_conlleval_does(tmp_path, cli_here,
                                                                                   chunk_corpus, tiny_labelled_flags):
    """CoNLL-2000's test file has chunk tags (I-LST, B-CONJP) its training file lacks: predict
    anyway, and the chunk F1 printed is conlleval's on the file written (the pip port of
    conlleval.pl, line by line), the unseen tags counted as errors and said."""
    conlleval = pytest.importorskip("conlleval")
    corpus = tmp_path / "train.txt"
    corpus.write_text(chunk_corpus(40))
    run = tmp_path / "run"
    assert cli_here("train", corpus, "--task", "tag", "--max-epochs", 2, "--out", run,
                    *tiny_labelled_flags).returncode == 0
    test = tmp_path / "test.txt"  # two sentences whose gold holds a list item chunk (LST) never trained on
    test.write_text(chunk_corpus(6, seed=1) + "1 LS B-LST\n. . I-LST\nthe DT B-NP\ncat NN I-NP\n\n"
                    "the DT B-NP\ndog NN I-NP\nsleeps VBZ B-VP\n2 CD B-LST\n")
    out = tmp_path / "pred.txt"
    result = cli_here("predict", run, test, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "3 token(s) carry 2 gold label(s) the model was not trained on: 'B-LST' (2), 'I-LST' (1)" \
        in result.stderr
    ours = float(result.stderr.split("| F1 ")[1].split()[0])
    theirs = conlleval.evaluate(out.read_text().splitlines())["overall"]["chunks"]
    assert theirs["stats"]["gold"] == 6 * 3 + 2 + 3  # the LST chunks are gold chunks no prediction can match
    assert ours == pytest.approx(theirs["evals"]["f1"], abs=5e-5)
    assert ours < 1.0


def test_a_gold_label_outside_the_models_labels_scores_zero_in_the_macro_f1():
    from rnnkit.training.evaluate import score_labels

    scores = score_labels(["ham", "spam", "eggs"], ["ham", "spam", "spam"], ["ham", "spam"])
    assert scores["accuracy"] == pytest.approx(2 / 3)
    # ham 1, spam 2/3 (one right of two predicted), eggs 0 (the model cannot name it)
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


@pytest.mark.parametrize("content,extra,message", [
    ("ID,CONTENT\n1,hello\n", ["--task", "classify"], "no label column"),
    ("text,label\nhello,1\n   ,0\n", ["--task", "classify"], "line 3: empty text"),
    ("the DT B-NP\ncat NN\n", ["--task", "tag"], "line 2: 2 column(s)"),
    ("text,label\nhello,1\n", ["--task", "classify", "--bidirectional", "maybe"], "expected true or false"),
])
def test_cli_bad_labelled_input_is_one_line(tmp_path, content, extra, message, cli_here, user_error):
    path = tmp_path / ("data.csv" if "classify" in extra else "data.txt")
    path.write_text(content)
    user_error(cli_here("train", path, "--out", tmp_path / "run", *extra), message)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_cli_word_vocabulary_too_large_says_what_to_cap(tmp_path, cli_here, user_error):
    from rnnkit.data.words import MAX_UNCAPPED_VOCAB_SIZE

    big = tmp_path / "big.txt"
    big.write_text(" ".join(f"w{i}" for i in range(MAX_UNCAPPED_VOCAB_SIZE + 1)) + "\n")
    result = cli_here("train", big, "--tokenizer", "word", "--out", tmp_path / "run")
    user_error(result, "cap the vocabulary with --max-vocab-size")


def test_adversarial_perturbation_has_norm_epsilon_and_raises_the_loss(tiny_model):
    torch.manual_seed(0)
    model = SequenceClassifier(30, 2, **tiny_model, adversarial=0.5).double().train()
    x, lengths, y = collate([torch.randint(1, 30, (n,)).numpy() for n in (5, 3)], [0, 1])
    e = model.encoder.embed(x, lengths)
    clean = torch.nn.functional.cross_entropy(model(x, lengths, e=e)[0], y)
    (g,) = torch.autograd.grad(clean, e, retain_graph=True)
    r = 0.5 * g / g.flatten(1).norm(dim=1)[:, None, None]
    worse = torch.nn.functional.cross_entropy(model(x, lengths, e=e + r)[0], y)
    random = torch.nn.functional.cross_entropy(model(x, lengths, e=e + 0.5 * torch.randn_like(e) / 8)[0], y)
    assert worse > clean and worse > random  # the gradient's direction hurts most
    total, _ = model.loss(LabelledBatch(x, lengths, y))
    torch.testing.assert_close(total, clean + worse)
    model.eval()
    torch.testing.assert_close(model.loss(LabelledBatch(x, lengths, y))[0], clean)  # evaluation: the plain loss


@pytest.mark.slow
def test_cli_embeddings_start_from_a_vectors_file(tmp_path, cli_here, user_error, chunk_corpus, tiny_labelled_flags):

    corpus = tmp_path / "train.txt"
    corpus.write_text(chunk_corpus(20))
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("the " + " ".join(["0.5"] * 8) + "\ncat " + " ".join(["-0.25"] * 8) + "\n")
    run = tmp_path / "run"
    result = cli_here("train", corpus, "--task", "tag", "--embeddings", vectors, "--max-steps", 1, "--lr", "1e-9",
                      "--out", run, *tiny_labelled_flags)
    assert result.returncode == 0, result.stderr
    assert "embeddings: 2 of" in result.stdout
    model, tokenizer, _ = load_run(run)
    weight = model.encoder.embedding.weight
    the, cat = weight[tokenizer.words.index("the")], weight[tokenizer.words.index("cat")]
    torch.testing.assert_close(the, -2 * cat, atol=1e-5, rtol=0)  # the file's vectors, as one tiny step left them
    assert the[0] > 0 and the.std() < 1e-5
    assert 0.6 < weight.std() < 1.5  # rescaled to the N(0, 1) of the encoder's own embedding
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("the 1.0 2.0\n")
    user_error(cli_here("train", corpus, "--task", "tag", "--embeddings", wrong, "--out", tmp_path / "r2",
                        *tiny_labelled_flags), "expected vectors of shape (8,)")
