"""No test text in any pretraining: a pretraining text cleaned of a test set's
sentences (rnnkit.data.cleaning), on generated PTB-style lines with a known
answer, and on the real thing: Mikolov's PTB training split, which holds
CoNLL-2000's test set (WSJ section 20)."""

from pathlib import Path

import pytest

from rnnkit.data.cleaning import TestSentences, clean_file, conll_sentences, normalised, remove_sentences

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PTB, CONLL = DATA / "ptb" / "ptb.train.txt", DATA / "conll2000" / "test.txt"


def test_the_normal_form_is_ptbs_spelling_of_a_treebank_sentence():
    conll = "Boeing 's 747 jetliners , about 3 % of $ 1.5 billion -LRB- say -RRB- .".split()
    ptb = "boeing 's N jetliners about N N of $ N billion say".split()
    assert normalised(conll) == normalised(ptb) == ("boeing", "'s", "N", "jetliners", "about", "N", "of", "N",
                                                    "billion", "say")


def test_a_line_is_removed_when_it_is_a_test_sentence_with_rare_words_unknown(tmp_path):
    test = [["Rockwell", "said", "it", "signed", "a", "tentative", "pact", "."],
            ["Mr.", "Carlucci", ",", "59", "years", "old", ",", "served", "."]]
    lines = [" rockwell said it signed a <unk> pact \n",  # test sentence 1, a rare word unknown
             " mr. <unk> N years old served \n",           # test sentence 2
             " rockwell said it signed a tentative deal \n",  # a different sentence: kept
             " mr. <unk> N years old \n",                  # shorter: kept
             " <unk> said it signed a tentative pact \n"]  # test sentence 1 again
    kept, found = remove_sentences(lines, TestSentences(test))
    assert kept == [lines[2], lines[3]]
    assert sorted(set(found)) == sorted({normalised(s) for s in test})
    conll = tmp_path / "test.txt"
    conll.write_text("".join("".join(f"{w} X O\n" for w in s) + "\n" for s in test))
    (tmp_path / "ptb.txt").write_text("".join(lines))
    assert clean_file(tmp_path / "ptb.txt", [conll], tmp_path / "clean.txt") == (3, 2)
    assert (tmp_path / "clean.txt").read_text() == lines[2] + lines[3]


@pytest.mark.slow
@pytest.mark.skipif(not (PTB.exists() and CONLL.exists()), reason="PTB and CoNLL-2000 are in ../shared/data "
                    "(not in this checkout)")
def test_ptbs_training_split_holds_conll2000s_test_set_and_none_of_it_remains_after_cleaning(tmp_path):
    test = TestSentences(conll_sentences(CONLL))
    assert len(test.exact) == 2004  # 2,012 sentences, 2,004 distinct in normal form
    removed, found = clean_file(PTB, [CONLL], tmp_path / "ptb.clean.txt")
    # WSJ section 20 is there: 2,000 of the 2,004 test sentences are found (2,239 lines, with repeats and
    # short lines of <unk>s that match a test sentence too)
    assert found >= 0.99 * len(test.exact) and 2000 <= removed <= 2400
    clean = (tmp_path / "ptb.clean.txt").read_text().splitlines()
    assert len(clean) == len(PTB.read_text().splitlines()) - removed
    assert not any(test.match(line.split()) for line in clean)
    exact = {" ".join(s) for s in test.exact}
    assert not any(" ".join(normalised(line.split())) in exact for line in clean)
