"""The task registry: every task behind one contract, and no branch on a
task's name anywhere but in its own module (``rnnkit/tasks/``)."""

import ast
import random
import re
from pathlib import Path

import pytest
from conftest import run_main

import rnnkit
from rnnkit.config import DataConfig
from rnnkit.data.tokenizers import choose_tokenizer
from rnnkit.errors import ConfigError
from rnnkit.tasks import TASKS, ClassifyData, Task, named, read_run

PACKAGE = Path(rnnkit.__file__).parent
NAMES = set(TASKS)


def _names_a_task(node) -> bool:
    """Whether ``node`` is a task's name (a string constant, or a tuple, list or set of them) or the
    value of a ``task`` variable, attribute or key."""
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_task(e) for e in node.elts)
    if isinstance(node, ast.Name):
        return node.id == "task"
    if isinstance(node, ast.Attribute):
        return node.attr == "task"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "task"
    return False


def task_branches(source: str) -> list[int]:
    """The lines of ``source`` that compare something with a task's name, or look a task's name
    up in a table of tasks (a dict literal keyed by two or more task names)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(_names_a_task(n) for n in (node.left, *node.comparators)):
            found.append(node.lineno)
        elif isinstance(node, ast.Dict) and sum(isinstance(k, ast.Constant) and k.value in NAMES
                                                for k in node.keys) >= 2:
            found.append(node.lineno)
        elif isinstance(node, ast.Match) and _names_a_task(node.subject):
            found.append(node.lineno)
    return found


def test_the_branch_finder_finds_the_branches_it_must():
    for branch in ('if data.task == "tag": pass', 'x = cfg.task in ("seq2seq", "ctc")', 'y = doc["task"] != "lm"',
                   'unit = {"seq2seq": "pairs", "ctc": "utterances"}.get(kind)', 'z = "classify" == name',
                   'match task:\n    case _: pass'):
        assert task_branches(branch), branch
    for fine in ('if data.kind == "word": pass', 'x = named(cfg.task).validate()', 'y = {"lm": 1}'):
        assert not task_branches(fine), fine


def test_no_module_outside_the_tasks_branches_on_a_tasks_name():
    branches = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "tasks":
            continue
        branches += [f"{path.relative_to(PACKAGE.parent)}:{line}" for line in task_branches(path.read_text())]
    assert not branches, "branches on a task's name outside rnnkit/tasks/ (ask the task instead):\n" + \
        "\n".join(branches)


def test_every_task_is_a_task_under_its_own_name():
    assert set(TASKS) == {"lm", "classify", "tag", "seq2seq", "ctc", "forecast"}
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name and named(name) is task
        assert task.summary.startswith(name), task.summary
    with pytest.raises(ConfigError, match="task must be one of lm, classify, tag, seq2seq, ctc, forecast; got 'parse'"):
        named("parse")


def _words(n: int, seed: int, letters: str = "abcdefghijklmnopqrstuvwxyz", length=(3, 9)) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(letters) for _ in range(rng.randint(*length))) for _ in range(n)]


def test_auto_reads_one_token_a_line_as_characters_a_large_open_vocabulary_as_subwords_else_words():
    spellings = _words(6000, 0)  # words to spell: the 6,000 lines of single "words"
    assert len(set(spellings)) > 5000
    kind, why = choose_tokenizer(spellings)
    assert kind == "char" and "100% of its lines are one token" in why
    small = [" ".join(random.Random(i).choices(("the", "cat", "sat", "on", "a", "mat", "dog"), k=6))
             for i in range(3000)]
    assert choose_tokenizer(small) == ("word", "7 distinct words")
    rng = random.Random(1)
    vocabulary = _words(30000, 2)  # an open vocabulary: most words seen once
    open_lines = [" ".join(rng.choice(vocabulary) for _ in range(8)) for _ in range(3000)]
    kind, why = choose_tokenizer(open_lines)
    assert kind == "bpe" and "distinct words" in why and "seen once" in why
    assert choose_tokenizer(open_lines[:300])[0] == "word"  # 2,400 words: not large enough for subwords


def test_train_decides_auto_tokenizers_from_the_pairs_and_says_so_in_its_first_line(tmp_path):
    """A pronunciation-like pair file: single-word sources read as characters (as words, every
    unseen word would be <unk>), spaced-out targets as words; the choice is printed."""
    words = _words(600, 3)
    (tmp_path / "pairs.tsv").write_text("".join(f"{w}\t{' '.join(w.upper())}\n" for w in words))
    result = run_main("train", tmp_path / "pairs.tsv", "--task", "seq2seq", "--hidden-size", 8, "--num-layers", 1,
                      "--batch-size", 8, "--max-steps", 1, "--eval-every", 1, "--device", "cpu",
                      "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "tokenizer auto: char (100% of its lines are one token)" in first, first
    assert "target tokenizer auto: word (26 distinct words)" in first, first
    run = read_run(tmp_path / "run")
    assert (run.tokenizer.kind, run.target_tokenizer.kind) == ("char", "word")
    assert (run.data.tokenizer, run.data.target_tokenizer) == ("char", "word")  # the run records the choice
    unseen = "".join(sorted(set(words[-1])))  # a word of held-out letters only: no unknown symbol
    assert 0 not in run.tokenizer.encode(unseen).tolist()


def test_a_classifiers_auto_tokenizer_follows_its_texts(tmp_path):
    rows = ["text,label"] + [f"{w},{i % 2}" for i, w in enumerate(_words(400, 4))]  # one word a text
    (tmp_path / "words.csv").write_text("\n".join(rows) + "\n")
    data = named("classify").read_data(DataConfig(path=str(tmp_path / "words.csv"), task="classify"))
    assert data.tokenizer.kind == "char" and data.config.tokenizer == "char"
    given = ClassifyData(path="x.csv", tokenizer="word")
    assert named("classify").decide(given) == (given, [])  # given: nothing to decide, no file read



def test_a_setting_a_tasks_configs_lack_is_refused_naming_the_tasks_that_have_it():
    """The structure says it: for every task, every setting of another task's configs that its
    own lack is refused, and the refusal names exactly the tasks whose configs have it."""
    from rnnkit.cli.options import rule

    everything = {name for task in TASKS.values() for name in task.settings()}
    for task in TASKS.values():
        for name in sorted(everything - set(task.settings())):
            applies, needs = rule(name, task)
            owners = [t.name for t in TASKS.values() if name in t.settings()]
            assert not applies(None), (task.name, name)
            named_tasks = set(re.findall(r"\w+", re.sub(r"--[\w-]+", " ", needs))) & set(TASKS)  # not --char-lm's
            assert needs.startswith("--task ") and named_tasks == set(owners), (task.name, name, needs)
