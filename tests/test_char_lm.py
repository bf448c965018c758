"""A tagger reading two character language models' states at each word's
edges (``--char-lm FWD,BWD``, Akbik et al. 2018): the features against the
paper's equation computed by hand, padding, frozen and tuned models, the
backward model's reversed data, the CLI end to end and its bad inputs."""

import pytest
import torch

from rnnkit.config import to_dict
from rnnkit.data.chars import CharTokenizer
from rnnkit.data.words import SpelledWordTokenizer, WordTokenizer
from rnnkit.models.char_lm import ContextualChars, lm_spec
from rnnkit.models.language_model import LanguageModel

LM = dict(cell="lstm", hidden_size=6, num_layers=2, embedding_dim=5, dropout=0.0)
SENTENCES = ["The cat sat .", "Dogs bark"]


def make(tune=False, seed=0):
    """Two small random character models over the sentences' characters and a spelled tokenizer."""
    torch.manual_seed(seed)
    text = " ".join(SENTENCES)
    chars = CharTokenizer.fit(text + "\n")
    names = chars.decode(range(chars.vocab_size))
    lms = {d: LanguageModel(chars.vocab_size, **LM).eval() for d in ("forward", "backward")}
    spelled = SpelledWordTokenizer.fit(WordTokenizer.fit(text, eos=False), text)
    spec = {"alphabet": spelled.alphabet, **{d: lm_spec(m, names) for d, m in lms.items()}}
    context = ContextualChars(spec, tune)
    for d, m in lms.items():
        context.model(d).load_state_dict(m.state_dict())
    return context, lms, chars, spelled


def batch(spelled, sentences):
    """Spelled ids (B, T, C) padded with 0 and the mask of real words (B, T)."""
    rows = [torch.from_numpy(spelled.encode(s))[:, 1:] for s in sentences]
    x = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, :len(r)] = True
    return x, mask


def by_hand(lms, chars, sentence):
    """f_i = [→h_{b_i+1}; ←h_{a_i-1}] over s = " w_1 ... w_n " (equation 2 of the paper)."""
    s = " " + sentence + " "
    ids = torch.from_numpy(chars.encode(s))[None]
    forward, _ = lms["forward"].rnn(lms["forward"].embed(ids))  # (1, L, H)
    backward, _ = lms["backward"].rnn(lms["backward"].embed(ids.flip(1)))  # index r is s_{L-1-r}
    features, a = [], 1
    for word in sentence.split():
        b = a + len(word) - 1
        features.append(torch.cat([forward[0, b + 1], backward[0, len(s) - 1 - (a - 1)]]))
        a = b + 2
    return torch.stack(features)


def test_features_are_the_states_at_each_words_edges_and_padding_changes_nothing():
    context, lms, chars, spelled = make()
    x, mask = batch(spelled, SENTENCES)
    with torch.no_grad():
        out = context(x, mask)  # (2, 4, 12)
        assert out.shape == (2, 4, 12) and context.output_size == 12
        for i, sentence in enumerate(SENTENCES):
            n = len(sentence.split())
            torch.testing.assert_close(out[i, :n], by_hand(lms, chars, sentence), atol=1e-5, rtol=1e-5)
            assert (out[i, n:] == 0).all()  # padded words get zeros
        alone = context(*batch(spelled, SENTENCES[1:]))  # the short sentence without the long one
        torch.testing.assert_close(alone[0], out[1, :2], atol=1e-6, rtol=1e-6)


def test_the_same_word_gets_other_features_in_another_sentence():
    context, _, _, spelled = make()
    with torch.no_grad():
        out = context(*batch(spelled, ["The cat sat .", "Dogs sat"]))
    assert not torch.allclose(out[0, 2], out[1, 1])  # "sat" after "cat" and after "Dogs"


def test_frozen_models_take_no_gradient_and_no_dropout_and_tuned_ones_learn():
    frozen, _, _, spelled = make(tune=False)
    frozen.train()
    x, mask = batch(spelled, SENTENCES)
    assert all(not m.training for m in frozen.models) and not any(p.requires_grad for p in frozen.parameters())
    assert not frozen(x, mask).requires_grad
    tuned, _, _, _ = make(tune=True)
    tuned.train()
    tuned(x, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.model("backward").rnn.parameters())


def runs_of(context):
    """How many sentences the two character models have read, counted together (a hook on their stacks)."""
    calls = {"n": 0}

    def count(module, inputs, output):
        calls["n"] += inputs[0].shape[0]  # (B, L, E): B sentences

    for direction in ("forward", "backward"):
        context.model(direction).rnn.register_forward_hook(count)
    return calls


def test_frozen_features_are_computed_once_a_sentence_and_equal_the_recomputed_ones():
    context, lms, chars, spelled = make()
    context.train()  # a training step's mode: frozen models still give fixed features
    calls = runs_of(context)
    first = context(*batch(spelled, SENTENCES))
    assert calls["n"] == 4 and len(context.cache) == 2  # both models over both sentences
    # the same sentences in another batch (other order, other padding, a new one beside them, one twice)
    others = ["Dogs bark", "The cat sat at Dogs", "The cat sat .", "Dogs bark"]
    again = context(*batch(spelled, others))
    assert calls["n"] == 6 and len(context.cache) == 3  # the models read the new sentence only
    torch.testing.assert_close(again[2, :4], first[0], atol=0, rtol=0)  # from the cache, as first computed
    torch.testing.assert_close(again[0, :2], again[3, :2], atol=0, rtol=0)
    assert (again[0, 2:] == 0).all() and (again[2, 4:] == 0).all()  # padding stays zero
    with torch.no_grad():
        for i, sentence in enumerate(others):  # every row equals the features recomputed by hand
            torch.testing.assert_close(again[i, :len(sentence.split())], by_hand(lms, chars, sentence),
                                       atol=1e-5, rtol=1e-5)


def test_loading_weights_empties_the_cache_and_tuned_models_bypass_it():
    context, _, _, spelled = make()
    x, mask = batch(spelled, SENTENCES)
    before = context(x, mask)
    assert len(context.cache) == 2
    _, other, _, _ = make(seed=1)
    context.model("forward").load_state_dict(other["forward"].state_dict())
    assert not context.cache
    assert not torch.allclose(context(x, mask)[..., :6], before[..., :6])  # the new forward model's states
    tuned, _, _, _ = make(tune=True)
    tuned.train()
    calls = runs_of(tuned)
    optimizer = torch.optim.SGD(tuned.parameters(), lr=1.0)
    first = tuned(x, mask)
    first.pow(2).sum().backward()
    optimizer.step()
    second = tuned(x, mask)
    assert calls["n"] == 8 and not tuned.cache  # both sentences read at every step, nothing kept
    assert not torch.allclose(first, second)  # its features change as it learns


def test_a_backward_language_models_data_is_each_split_read_backwards(tmp_path):
    from rnnkit.tasks import read_data
    from rnnkit.tasks.lm import LanguageModelData

    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 400)
    plain = read_data(path, LanguageModelData(tokenizer="char", batch_size=4, seq_len=16))
    back = read_data(path, LanguageModelData(tokenizer="char", batch_size=4, seq_len=16, reverse=True))
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(back, split), getattr(plain, split).flip(0))


@pytest.fixture(scope="module")
def char_lms(tmp_path_factory, chunk_corpus):
    """A forward and a backward character model of a chunk corpus's sentences, and the corpus."""
    from conftest import TINY_LM_FLAGS, run_main

    folder = tmp_path_factory.mktemp("char_lm")
    corpus = folder / "train.txt"
    corpus.write_text(chunk_corpus(40))
    text = folder / "text.txt"
    text.write_text("\n".join(" ".join(line.split()[0] for line in block.splitlines())
                              for block in corpus.read_text().strip().split("\n\n")) + "\n")
    for name, extra in (("fwd", ["--tokenizer", "char"]), ("bwd", ["--tokenizer", "char", "--reverse", "true"]),
                        ("words", ["--tokenizer", "word", "--seq-len", "8"])):
        result = run_main("train", text, "--max-steps", 10, "--out", folder / name, *TINY_LM_FLAGS, *extra)
        assert result.returncode == 0, result.stderr
    result = run_main("train", corpus, "--task", "tag", "--max-steps", 2, "--out", folder / "tag", *TINY_LM_FLAGS[:6],
                      "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return folder


def test_cli_trains_a_tagger_on_char_lm_features_that_keeps_them_without_the_runs(char_lms, cli_here,
                                                                                   tiny_labelled_flags):
    import shutil

    from rnnkit.tasks import load_run

    run = char_lms / "tagger"
    result = cli_here("train", char_lms / "train.txt", "--task", "tag", "--char-lm",
                      f"{char_lms / 'fwd'},{char_lms / 'bwd'}", "--max-steps", 6, "--out", run, *tiny_labelled_flags)
    assert result.returncode == 0, result.stderr
    tagger, _, doc = load_run(run)
    lm, _, _ = load_run(char_lms / "fwd")
    assert doc.model.char_lm_spec["forward"]["config"] == to_dict(lm.config)
    for name, value in lm.state_dict().items():  # frozen: the tagger's copy is the run's model
        assert torch.equal(tagger.encoder.context.model("forward").state_dict()[name], value)
    first = cli_here("predict", run, char_lms / "train.txt")
    moved = char_lms / "elsewhere"
    shutil.move(char_lms / "fwd", moved)
    try:  # the run holds the two models: it predicts without their folders
        again = cli_here("predict", run, char_lms / "train.txt")
    finally:
        shutil.move(moved, char_lms / "fwd")
    assert first.returncode == again.returncode == 0 and first.stdout == again.stdout


@pytest.mark.parametrize("runs,message", [
    ("{fwd}", "--char-lm takes two runs, FWD,BWD"),
    ("{bwd},{fwd}", "the forward model"),
    ("{tag},{bwd}", "is a tag run, not a language model"),
    ("{words},{bwd}", "reads word tokens; the features are a character model's"),
    ("{fwd},{missing}", "no such run folder"),
])
def test_cli_bad_char_lm_runs_are_one_line(char_lms, cli_here, user_error, runs, message):
    names = {k: char_lms / k for k in ("fwd", "bwd", "tag", "words", "missing")}
    out = char_lms / "refused"
    user_error(cli_here("train", char_lms / "train.txt", "--task", "tag", "--char-lm", runs.format(**names),
                        "--out", out), message)
    assert not out.exists()


def test_char_lm_settings_are_refused_where_they_do_nothing(char_lms, cli_here, user_error):
    user_error(cli_here("train", char_lms / "train.txt", "--task", "tag", "--char-lm-tune", "true",
                        "--out", char_lms / "x"), "--char-lm-tune needs --char-lm")
    user_error(cli_here("train", char_lms / "text.txt", "--char-lm", "a,b", "--out", char_lms / "x"),
               "--char-lm needs --task tag")


@pytest.mark.parametrize("recipe,task_name", [("conll2000-char-lm.json", "lm"), ("conll2000-chunk-charlm.json", "tag"),
                                              ("ewt-upos-charlm.json", "tag")])
def test_the_char_lm_recipes_are_settings_of_their_tasks(recipe, task_name):
    """recipes/conll2000-char-lm.json (the two character models; the backward one adds --reverse true),
    conll2000-chunk-charlm.json and ewt-upos-charlm.json (RESULTS' --char-lm rows) build their tasks'
    configs as `rnnkit train --config` reads them: no unknown key, no value its dataclasses refuse; the
    taggers read the two trained-on character models, frozen, from runs/ under the repo."""
    import json
    from pathlib import Path

    from rnnkit.cli.options import split_settings
    from rnnkit.config import from_dict
    from rnnkit.tasks import named

    settings = json.loads((Path(__file__).parent.parent / "recipes" / recipe).read_text())
    task = named(task_name)
    model, data, train = split_settings(settings, task)
    assert set(model) | set(data) | set(train) == set(settings)
    from_dict(task.data_config, {**data, "path": "train.txt"}, "data settings")
    model_cfg = from_dict(task.model_config, model, "model settings")
    from_dict(task.train_config, train, "train settings")
    assert task_name == "lm" or (model_cfg.char_lm == "runs/clm2-fwd,runs/clm2-bwd" and not model_cfg.char_lm_tune)


UPOS = {"DT": "DET", "NN": "NOUN", "VBZ": "VERB"}


def as_conllu(chunks: str) -> str:
    """CoNLL-2000-like sentences written as CoNLL-U, as UD EWT's files are: a comment a sentence, ten
    tab-separated columns (ID, FORM, LEMMA, UPOS, XPOS, ...), and a multi-word token's range line."""
    blocks = []
    for i, block in enumerate(chunks.strip().split("\n\n")):
        rows = [line.split() for line in block.splitlines()]
        lines = [f"# sent_id = s{i}", f"1-2\t{rows[0][0]}{rows[1][0]}" + "\t_" * 8]
        lines += [f"{k}\t{w}\t{w.lower()}\t{UPOS[pos]}\t{pos}" + "\t_" * 5 for k, (w, pos, _) in enumerate(rows, 1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


@pytest.mark.slow  # about 9 s on a loaded machine
def test_the_ewt_recipe_tags_conllu_upos_on_char_lm_features_through_config(char_lms, chunk_corpus, cli_here,
                                                                            tiny_labelled_flags):
    """recipes/ewt-upos-charlm.json as RESULTS' EWT row uses it (the column of the words, UPOS, a
    validation file, --char-lm) on CoNLL-U files: it trains and `rnnkit predict` scores the test file."""
    from pathlib import Path

    from rnnkit.tasks import load_run

    files = {}
    for split, seed in (("train", 0), ("dev", 1), ("test", 2)):
        files[split] = char_lms / f"ewt-{split}.conllu"
        files[split].write_text(as_conllu(chunk_corpus(40 if split == "train" else 10, seed)))
    run = char_lms / "ewt-tagger"
    recipe = Path(__file__).parent.parent / "recipes" / "ewt-upos-charlm.json"
    lms = f"{char_lms / 'fwd'},{char_lms / 'bwd'}"
    result = cli_here("train", files["train"], "--config", recipe, "--char-lm", lms,
                      "--val-path", files["dev"], "--test-path", files["test"], "--max-steps", 6, "--out", run,
                      *tiny_labelled_flags, "--eval-every", 3)
    assert result.returncode == 0, result.stderr
    _, _, doc = load_run(run)
    assert sorted(doc.labels) == ["DET", "NOUN", "VERB"] and doc.model.char_lm_spec is not None
    predicted = cli_here("predict", run, files["test"])
    assert predicted.returncode == 0, predicted.stderr
    assert "accuracy" in predicted.stderr and len(predicted.stdout.strip().split("\n\n")) == 10
