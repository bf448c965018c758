"""``rnnkit report RUN``: one self-contained HTML file for a run of each task,
opened in a real headless Chromium (Debian's chromium, driven by Playwright)
where one is installed."""

import re
import shutil

import pytest
from conftest import CHROMIUM, browser_page, run_main


MODEL = ["--hidden-size", "16", "--num-layers", "2", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_text, spam_table):
    from test_ctc import random_texts, write_manifest

    folder = tmp_path_factory.mktemp("report")
    text = make_text(150).replace("the ", 'the "').replace(" and", '" (and)')  # quotes and brackets
    (folder / "corpus.txt").write_text(text)
    (folder / "spam.csv").write_text(spam_table(60))
    words = sorted(set(make_text(80).split())) * 4
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    write_manifest(folder, "speech", random_texts(40, 0))
    commands = {
        "lm": ["corpus.txt", "--seq-len", "32", "--max-steps", "12", "--eval-every", "6", "--diagnostics-every", "4",
               "--sample-length", "40"],
        "classify": ["spam.csv", "--task", "classify", "--max-steps", "6"],
        "tdnn": ["spam.csv", "--task", "classify", "--encoder", "tdnn", "--max-steps", "4"],
        "seq2seq": ["pairs.tsv", "--task", "seq2seq", "--tokenizer", "char", "--target-tokenizer", "char",
                    "--max-steps", "6"],
        "ctc": ["speech.tsv", "--task", "ctc", "--mel-bands", "8", "--max-steps", "4"],
    }
    for name, command in commands.items():
        tokens = ["--embedding-dim", "8"] if name != "ctc" else []
        done = run_main("train", folder / command[0], *command[1:], *MODEL, *tokens, "--out", folder / name)
        assert done.returncode == 0, done.stderr
    return folder


def report(run, *flags) -> str:
    done = run_main("report", run, *flags)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    return (run / "report.html").read_text()


def assert_self_contained(page: str):
    for attribute in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attribute.startswith(("data:", "#")), attribute
    assert "http://" not in page and "https://" not in page and "@import" not in page


def sections(page: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", page)


@pytest.mark.slow
def test_a_language_model_s_report_has_every_section(runs):
    page = report(runs / "lm")
    assert_self_contained(page)
    assert sections(page) == ["Run", "Training", "Samples", "Gradient flow through time", "Spectral radius and "
                              "saturation", "Units over the text, and surprisal"]
    assert page.count("<img") == 4  # training, gradient flow now and at initialisation, over training
    assert "inside quotes" in page and "bracket depth" in page  # units that track them were looked for
    assert "step 12" in page and "the best checkpoint, now" in page  # the last sample written, and one now


@pytest.mark.slow
@pytest.mark.parametrize("task,expected,images", [
    ("classify", ["Run", "Training", "Gradient flow through time", "Spectral radius and saturation"], 3),
    ("tdnn", ["Run", "Training", "Gradient flow"], 1),
    ("seq2seq", ["Run", "Training", "Gradient flow through time", "Spectral radius and saturation", "Attention"],
     3 + 3),
    ("ctc", ["Run", "Training", "Gradient flow through time", "Spectral radius and saturation",
             "CTC posteriorgrams"], 3 + 3),
])
def test_every_task_s_report(runs, task, expected, images):
    """Images: training, gradient flow now and at initialisation, and three attention maps or posteriorgrams."""
    page = report(runs / task)
    assert_self_contained(page)
    assert sections(page) == expected and page.count("<img") == images
    if task == "tdnn":
        assert "no recurrent cells" in page


def test_bad_report_requests_get_one_line(runs, user_error, cli_here, tmp_path):
    user_error(cli_here("report", runs / "classify", "--text", runs / "corpus.txt"),
               "--text is read by a language model; ")
    user_error(cli_here("report", runs / "lm", "--text-length", "1"), "--text-length must be >= 2; got 1")
    user_error(cli_here("report", tmp_path / "nothing"), "")


@pytest.mark.slow
def test_a_report_whose_corpus_is_gone_says_so_and_reads_a_given_text(runs, tmp_path):
    run = tmp_path / "lm"
    shutil.copytree(runs / "lm", run)
    corpus = tmp_path / "corpus.txt"
    shutil.copy(runs / "corpus.txt", corpus)
    config = (run / "config.json").read_text().replace(str(runs / "corpus.txt"), str(corpus))
    (run / "config.json").write_text(config)
    corpus.unlink()
    page = report(run)
    assert "is gone, so nothing here is measured on it" in page and page.count("<img") == 1
    page = report(run, "--text", runs / "corpus.txt", "--text-length", "300")
    assert "300 tokens read from a zero state" in page


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("task", ["lm", "seq2seq"])
def test_the_report_renders_in_a_real_browser(runs, task, tmp_path):
    page_file = runs / task / "report.html"
    if not page_file.exists():
        report(runs / task)
    with browser_page(lambda url: url.startswith(("file:", "data:")), (1300, 900)) as (page, problems):  # no network
        page.goto(page_file.as_uri())
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert images and all(done and width > 100 for done, width in images), images
        if task == "lm":
            spans = page.locator("#reading span")
            assert spans.count() > 100
            before = spans.nth(5).evaluate("s => s.style.background")
            page.select_option("#colour", "0")  # the first unit found
            assert spans.nth(5).evaluate("s => s.style.background") != before or \
                spans.nth(6).evaluate("s => s.style.background") != before
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert not problems, problems
    assert (tmp_path / "report.png").stat().st_size > 50_000
