"""Character-level word features (``--char-features``): the spelled-word
tokenizer, the spelling layer against torch.nn.LSTM, padding invariance,
tagging words the vocabulary lacks, and the CLI."""

import random

import numpy as np
import pytest
import torch

from rnnkit import DataConfig
from rnnkit.data import collate
from rnnkit.data.tokenizers import tokenizer_from_dict
from rnnkit.data.words import MAX_WORD_CHARS, UNK_CHAR_ID, UNK_ID, SpelledWordTokenizer, WordTokenizer
from rnnkit.errors import ConfigError
from rnnkit.layers.spelling import Spelling
from rnnkit.models import SequenceClassifier, SequenceTagger
from rnnkit.tasks import read_data


def spelled(text="the cat runs", lowercase=False):
    words = WordTokenizer.fit(text, eos=False, lowercase=lowercase)
    return SpelledWordTokenizer.fit(words, text)


def test_spelled_words_keep_the_spelling_of_unknown_words_and_their_case():
    tok = spelled("the cat runs\nThe dog", lowercase=True)
    ids = tok.encode("The caT zoo")  # (3, 1 + C)
    assert ids.shape == (3, 1 + MAX_WORD_CHARS) and ids.dtype == np.int64
    index = tok.word_tokenizer.index
    assert ids[:, 0].tolist() == [index["the"], index["cat"], UNK_ID]  # words are looked up lower-cased
    char = {c: tok.alphabet.index(c) + 2 for c in "Theo"}
    assert ids[0, 1:].tolist() == [char["T"], char["h"], char["e"]] + [0] * (MAX_WORD_CHARS - 3)  # case kept
    assert ids[2, 1:4].tolist() == [UNK_CHAR_ID, char["o"], char["o"]]  # "zoo": z never seen
    again = tokenizer_from_dict(tok.to_dict())
    np.testing.assert_array_equal(again.encode("The caT zoo"), ids)
    assert again.alphabet_size == len(set("thecatrunsTdog")) + 2


def test_a_long_word_keeps_its_first_and_last_characters():
    long = "antidisestablishmentarianism"  # 28 characters
    tok = spelled(long)
    ids = tok.encode(long)[0, 1:]
    kept = long[:MAX_WORD_CHARS // 2] + long[-(MAX_WORD_CHARS // 2):]
    assert ids.tolist() == [tok.alphabet.index(c) + 2 for c in kept]


def test_spelling_features_are_the_final_states_of_a_bidirectional_lstm():
    torch.manual_seed(0)
    layer = Spelling(alphabet_size=9, width=4).double()
    reference = torch.nn.LSTM(4, 4, bidirectional=True, batch_first=True).double()
    reference.load_state_dict(layer.layer.torch_state_dict())
    chars = torch.tensor([[[3, 1, 4, 0], [5, 0, 0, 0]], [[2, 6, 8, 7], [0, 0, 0, 0]]])  # (B=2, T=2, C=4)
    mask = torch.tensor([[True, True], [True, False]])
    out = layer(chars, mask)  # (2, 2, 8)
    for (b, t), n in {(0, 0): 3, (0, 1): 1, (1, 0): 4}.items():
        _, (h, _) = reference(layer.embedding(chars[b, t, :n])[None])
        torch.testing.assert_close(out[b, t], torch.cat([h[0, 0], h[1, 0]]))
    assert out[1, 1].eq(0).all()  # padding is not read


def spelled_batch():
    """Three sentences of 4, 1 and 6 words, each word an id and 1-3 characters."""
    rng = np.random.default_rng(0)
    seqs = []
    for n in (4, 1, 6):
        chars = rng.integers(2, 12, (n, MAX_WORD_CHARS)) * (np.arange(MAX_WORD_CHARS) < rng.integers(1, 4, (n, 1)))
        seqs.append(np.concatenate([rng.integers(0, 30, (n, 1)), chars], axis=1))  # (n, 1 + C)
    return seqs


@pytest.mark.parametrize("crf", [False, True])
def test_padding_never_changes_a_spelling_taggers_result(crf, tiny_model):
    torch.manual_seed(0)
    model = SequenceTagger(30, 3, alphabet_size=12, **tiny_model, char_features=4, crf=crf).double().eval()
    seqs = spelled_batch()
    x, lengths, _ = collate(seqs, [np.zeros(len(s), dtype=np.int64) for s in seqs])
    scores, _ = model(x, lengths)
    for b, s in enumerate(seqs):
        alone = model(torch.from_numpy(s)[None], torch.tensor([len(s)]))[0][0]
        torch.testing.assert_close(scores[b, :len(s)], alone)


def test_padding_never_changes_a_spelling_classifiers_result(tiny_model):
    torch.manual_seed(0)
    model = SequenceClassifier(30, 2, alphabet_size=12, **tiny_model, char_features=4, pooling="mean").double().eval()
    seqs = spelled_batch()
    x, lengths, _ = collate(seqs, [0, 1, 0])
    logits, _ = model(x, lengths)
    for b, s in enumerate(seqs):
        torch.testing.assert_close(logits[b], model(torch.from_numpy(s)[None], torch.tensor([len(s)]))[0][0])


def suffix_corpus(stems, seed):
    """Sentences of 4 words whose tags show in their spelling only: ``-ing``
    words are V, capitalised words NAME, the others N; the order is random."""
    rng = random.Random(seed)
    lines = []
    for _ in range(len(stems) * 2):
        for _ in range(4):
            stem, kind = rng.choice(stems), rng.randrange(3)
            word, tag = [(stem + "ing", "V"), (stem.capitalize(), "NAME"), (stem, "N")][kind]
            lines.append(f"{word} {tag}")
        lines.append("")
    return "\n".join(lines) + "\n"


def test_spelling_tags_words_the_vocabulary_never_saw(tmp_path, tiny_model, fit_labelled):
    rng = random.Random(0)
    stems = ["".join(rng.choice("bcdfgklmnprstv") + rng.choice("aeiou") for _ in range(3)) for _ in range(120)]
    train_path, val_path = tmp_path / "train.txt", tmp_path / "val.txt"
    train_path.write_text(suffix_corpus(stems[:80], 1))
    val_path.write_text(suffix_corpus(stems[80:], 2))  # stems unseen in training: every word is <unk>
    config = DataConfig(task="tag", batch_size=16, val_path=str(val_path))
    results = {}
    for width in (0, 8):
        data = read_data(train_path, config, spell=width > 0)
        assert all((ids[:, 0] if width else ids).max() == UNK_ID for ids in data.val.ids)
        model = SequenceTagger(data.vocab_size, data.num_labels, alphabet_size=getattr(data.tokenizer,
                               "alphabet_size", 0), **tiny_model, char_features=width)
        _, results[width] = fit_labelled(data, model, tmp_path / str(width), max_epochs=20, lr=3e-2)
    assert results[0]["val_accuracy"] < 0.5  # words alone: the tag of <unk> is a guess among three
    assert results[8]["val_accuracy"] > 0.95, results  # spelled: -ing and capitals give it away


@pytest.mark.slow
def test_cli_tags_with_char_features_and_refuses_them_for_characters(tmp_path, cli_here, user_error,
                                                                     tiny_labelled_flags):
    corpus = tmp_path / "train.txt"
    corpus.write_text("The DT B-NP\ncat NN I-NP\nsleeps VBZ B-VP\n\nA DT B-NP\ndog NN I-NP\nruns VBZ B-VP\n\n" * 10)
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("cat " + " ".join(["0.5"] * 8) + "\n")
    run = tmp_path / "run"
    result = cli_here("train", corpus, "--task", "tag", "--char-features", 4, "--embeddings", vectors,
                      "--max-epochs", 1, "--out", run, *tiny_labelled_flags)
    assert result.returncode == 0 and "embeddings: 1 of" in result.stdout, result.stderr
    words = tmp_path / "words.txt"
    words.write_text("The\nunseen\nsleeps\n\n")
    result = cli_here("predict", run, words)
    assert result.returncode == 0 and len(result.stdout.split()) == 6, result.stderr
    lm = cli_here("train", corpus, "--char-features", 4, "--out", tmp_path / "lm", *tiny_labelled_flags)
    user_error(lm, "--char-features needs --task classify or tag with word tokens")
    table = tmp_path / "t.csv"
    table.write_text("text,label\nhi there,0\nyo,1\n" * 5)
    chars = cli_here("train", table, "--task", "classify", "--tokenizer", "char", "--char-features", 4, "--out",
                     tmp_path / "c", *tiny_labelled_flags)
    user_error(chars, "--char-features needs --task classify or tag with word tokens")


def test_an_encoder_without_an_alphabet_refuses_char_features(tiny_model):
    with pytest.raises(ConfigError, match="spelling of words"):
        SequenceTagger(30, 3, **tiny_model, char_features=4)
