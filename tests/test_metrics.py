"""Chunk F1 against conlleval.pl's definitions and numbers; accuracy and the
classification report against hand-worked counts."""

import pytest

from rnnkit.training.metrics import accuracy, chunk_f1, chunks, classification_report


def column(text: str, i: int) -> list[list[str]]:
    """Column i of a CoNLL block (word gold pred per line, blank line between sentences)."""
    return [[line.split()[i] for line in block.splitlines()] for block in text.strip().split("\n\n")]


def test_iob2_chunks_start_at_b_and_go_on_at_i():
    assert chunks(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]) == {
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6)}
    assert chunks(["O", "O"]) == set() and chunks([]) == set()


def test_iob1_chunks_start_at_i_after_o_and_at_b_between_same_type():
    assert chunks(["B-NP", "I-NP", "O", "I-VP", "B-VP"]) == {("NP", 0, 2), ("VP", 3, 4), ("VP", 4, 5)}
    # conlleval: an I- tag after O starts a chunk, a chunk may run to the sentence end
    assert chunks(["I-NP", "I-NP", "O", "I-NP"]) == {("NP", 0, 2), ("NP", 3, 4)}


def test_a_type_change_inside_i_tags_splits_chunks():
    assert chunks(["I-NP", "I-NP", "I-VP", "I-VP", "I-NP"]) == {("NP", 0, 2), ("VP", 2, 4), ("NP", 4, 5)}
    assert chunks(["B-NP", "I-VP"]) == {("NP", 0, 1), ("VP", 1, 2)}


def test_iobes_and_ioe_chunks_close_at_e_and_s():
    assert chunks(["S-LOC", "S-LOC", "B-PER", "E-PER", "B-PER", "I-PER", "E-PER", "O", "E-ORG"]) == {
        ("LOC", 0, 1), ("LOC", 1, 2), ("PER", 2, 4), ("PER", 4, 7), ("ORG", 8, 9)}
    # IOE1: E- closes a chunk only where the next one has the same type
    assert chunks(["I-NP", "E-NP", "I-NP", "I-VP"]) == {("NP", 0, 2), ("NP", 2, 3), ("VP", 3, 4)}


def test_tags_without_a_prefix_make_untyped_chunks():
    # plain B/I tags are untyped chunks; a hyphen inside a type stays in the type
    assert chunks(["B", "I", "O", "I", "B"]) == {("", 0, 2), ("", 3, 4), ("", 4, 5)}
    assert chunks(["I", "E", "O", "S", "O", "B", "O"]) == {("", 0, 2), ("", 3, 4), ("", 5, 6)}
    assert chunks(["B-ORG-X", "I-ORG-X"]) == {("ORG-X", 0, 2)}


# The input example of the conlleval documentation (CoNLL-2000 output.html);
# the numbers are what conlleval.pl prints for it: IOB1 "I-NP" after O is a
# correct prediction of gold "B-NP", so the tag accuracy is 7/9 but F1 is 100.
DOC_EXAMPLE = """
Boeing B-NP I-NP
's B-NP B-NP
747 I-NP I-NP
jetliners I-NP I-NP
. O O

Rockwell B-NP I-NP
said B-VP B-VP
the B-NP B-NP
agreement I-NP I-NP
"""

# Mixed IOB1/IOB2 sentences; the expected numbers were printed by conlleval.pl:
# "processed 25 tokens with 11 phrases; found: 12 phrases; correct: 6.
#  accuracy:  76.00%; precision:  50.00%; recall:  54.55%; FB1:  52.17"
GOLDEN = """
He B-NP B-NP
reckons B-VP B-VP
the B-NP B-NP
current I-NP I-NP
account I-NP B-NP
deficit I-NP I-NP
will B-VP I-VP
narrow I-VP I-VP
to B-PP B-PP
only B-NP B-NP
# I-NP I-NP
1.8 I-NP I-NP
billion I-NP B-NP
in B-PP B-PP
September B-NP B-NP
. O O

Rockwell I-ORG I-ORG
International I-ORG I-ORG
Corp. I-ORG I-ORG
's B-ORG I-ORG
Tulsa I-LOC I-ORG
unit O O
said O I-PER
it O O
signed O O
"""


def test_chunk_f1_of_conllevals_documentation_example():
    result = chunk_f1(column(DOC_EXAMPLE, 1), column(DOC_EXAMPLE, 2))
    assert (result["gold_chunks"], result["pred_chunks"], result["correct"]) == (5, 5, 5)
    assert result["f1"] == 100.0 and round(result["accuracy"], 2) == 77.78


def test_chunk_f1_equals_conllevals_golden_numbers():
    result = chunk_f1(column(GOLDEN, 1), column(GOLDEN, 2))
    assert (result["gold_chunks"], result["pred_chunks"], result["correct"]) == (11, 12, 6)
    printed = [round(result[k], 2) for k in ("accuracy", "precision", "recall", "f1")]
    assert printed == [76.00, 50.00, 54.55, 52.17]
    counts = {t: (r["gold_chunks"], r["pred_chunks"]) for t, r in result["per_type"].items()}
    assert counts == {"LOC": (1, 0), "NP": (4, 6), "ORG": (2, 1), "PER": (0, 1), "PP": (2, 2), "VP": (2, 2)}
    np_ = result["per_type"]["NP"]
    assert (round(np_["precision"], 2), np_["recall"], round(np_["f1"], 2)) == (33.33, 50.0, 40.0)
    assert result["per_type"]["PP"]["f1"] == 100.0
    assert result["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                         "gold_chunks": 1, "pred_chunks": 0}


def test_iobes_numbers_equal_conllevals_with_the_iobes_rules():
    # "E-MISC B-MISC" is two chunks; the 2004 conlleval.pl would merge them and
    # "S-LOC S-LOC" too. Expected numbers from conlleval.pl with the IOBES rules:
    # 5 phrases, found 4, correct 1: precision 25.00, recall 20.00, FB1 22.22.
    gold = [["B-MISC", "E-MISC", "B-MISC", "E-MISC"], ["O", "S-LOC", "O", "S-LOC", "S-LOC", "O"]]
    pred = [["B-MISC", "I-MISC", "I-MISC", "E-MISC"], ["O", "S-LOC", "O", "B-LOC", "E-LOC", "S-PER"]]
    result = chunk_f1(gold, pred)
    assert (result["gold_chunks"], result["pred_chunks"], result["correct"]) == (5, 4, 1)
    assert [round(result[k], 2) for k in ("precision", "recall", "f1")] == [25.00, 20.00, 22.22]


def test_perfect_prediction_scores_100_and_empty_prediction_0():
    gold = column(GOLDEN, 1)
    perfect = chunk_f1(gold, gold)
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == perfect["accuracy"] == 100.0
    assert all(r["f1"] == 100.0 for r in perfect["per_type"].values())
    nothing = chunk_f1(gold, [["O"] * len(s) for s in gold])
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (0.0, 0.0, 0.0)
    assert nothing["pred_chunks"] == 0 and nothing["gold_chunks"] == 11


def test_mismatched_sentences_raise():
    with pytest.raises(ValueError, match="gold has 2 sentences but pred has 1"):
        chunk_f1([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1 has 2 gold tags but 1 predicted tags"):
        chunk_f1([["O"], ["B-NP", "O"]], [["O"], ["B-NP"]])
    with pytest.raises(ValueError, match="sentence 0 has 1 gold tags but 2"):
        accuracy([["O"]], [["O", "O"]])
    with pytest.raises(ValueError, match="y_true has 3 labels but y_pred has 2"):
        classification_report([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="no labels"):
        accuracy([], [])


def test_accuracy_flattens_sentences():
    assert accuracy([["a", "b"], ["c"]], [["a", "x"], ["c"]]) == pytest.approx(2 / 3)
    assert accuracy(["a", "b", "c", "d"], ["a", "b", "c", "x"]) == 0.75


def test_classification_report_by_hand():
    y_true = ["cat", "cat", "cat", "dog", "dog", "eel"]
    y_pred = ["cat", "cat", "dog", "dog", "cat", "cat"]
    report = classification_report(y_true, y_pred)
    assert report["accuracy"] == pytest.approx(3 / 6)
    cat, dog, eel = (report["per_class"][c] for c in ("cat", "dog", "eel"))
    # cat: 2 hits of 4 predicted, of 3 true; dog: 1 of 2, of 2; eel: never predicted
    assert (cat["precision"], cat["recall"], cat["support"]) == (0.5, pytest.approx(2 / 3), 3)
    assert cat["f1"] == pytest.approx(4 / 7)
    assert (dog["precision"], dog["recall"], dog["f1"]) == (0.5, 0.5, 0.5)
    assert (eel["precision"], eel["recall"], eel["f1"], eel["support"]) == (0.0, 0.0, 0.0, 1)
    assert report["macro_f1"] == pytest.approx((4 / 7 + 0.5 + 0.0) / 3)
    only_dog = classification_report(y_true, y_pred, labels=["dog"])
    assert list(only_dog["per_class"]) == ["dog"] and only_dog["macro_f1"] == 0.5

