"""What several test files share: small corpora, the command line in a
subprocess, the one-line error every bad input must get, and the explicit
engine's backends."""

import contextlib
import io
import os
import random
import shutil
import subprocess
import sys

import pytest
import torch
from hypothesis import settings

from rnnkit import TrainConfig, Trainer
from rnnkit.cli.main import main
from rnnkit.kernels import engine, native

# property-based tests (test_fuzz.py): fixed examples in CI, many new ones when exploring
settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None)
settings.load_profile("ci")

if os.environ.get("PYTEST_XDIST_WORKER"):  # several workers share the cores: one thread each, subprocesses too
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

WORDS = ("the quick brown fox jumps over the lazy dog while a small cat sleeps "
         "near an old red barn and seven birds sing in the tall green tree").split()
NOUNS = "cat dog bird fish cow horse".split()
VERBS = "runs sleeps eats sings jumps".split()
# the explicit engine's ways to run a layer: its layer node (the LSTM's and GRU's on C
# kernels), unroll's per-step nodes, and those steps with the C kernels off (torch ops only)
EXPLICIT_BACKENDS = ("layer node", "steps", "steps on torch ops")


def _make_text(n_lines: int = 400, seed: int = 0) -> str:
    """A small corpus with structure a character model can learn fast."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        start = rng.randrange(len(WORDS) - 6)
        lines.append(f"{i % 7}: " + " ".join(WORDS[start:start + 6]) + ".")
    return "\n".join(lines) + "\n"


def _spam_table(n: int = 120, seed: int = 0) -> str:
    """Comments where spam mentions a link or a channel: learnable from words."""
    rng = random.Random(seed)
    rows = ["COMMENT_ID,CONTENT,CLASS"]
    for i in range(n):
        spam = i % 2
        words = rng.sample(NOUNS + VERBS, 4) + (["check", "my", "channel"] if spam else ["nice", "song"])
        rng.shuffle(words)
        rows.append(f'c{i},"{" ".join(words)}",{spam}')
    return "\n".join(rows) + "\n"


def _chunk_corpus(n: int = 80, seed: int = 0) -> str:
    """CoNLL-2000-like sentences: 'the NOUN VERB the NOUN' with chunk tags."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        noun, verb, other = rng.choice(NOUNS), rng.choice(VERBS), rng.choice(NOUNS)
        lines += ["the DT B-NP", f"{noun} NN I-NP", f"{verb} VBZ B-VP", "the DT B-NP", f"{other} NN I-NP", ""]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def make_text():
    """Builds a small corpus a character model learns fast: ``make_text(n_lines=400, seed=0)``."""
    return _make_text


@pytest.fixture(scope="session")
def spam_table():
    """Builds a CSV of comments and spam labels: ``spam_table(n=120, seed=0)``."""
    return _spam_table


@pytest.fixture(scope="session")
def chunk_corpus():
    """Builds CoNLL-2000-like chunked sentences: ``chunk_corpus(n=80, seed=0)``."""
    return _chunk_corpus


@pytest.fixture
def corpus(tmp_path):
    """A small text file (:func:`_make_text`) to train on."""
    path = tmp_path / "corpus.txt"
    path.write_text(_make_text(), encoding="utf-8")
    return path


def run_cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m rnnkit ARGS`` in a subprocess, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "rnnkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def run_main(*args) -> subprocess.CompletedProcess:
    """``rnnkit ARGS`` in this process (no interpreter start: for the many
    quick cases, such as bad inputs), with what it printed and its exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_one_line_error(result, message: str) -> None:
    """The contract for every bad input: exit code 2 and one line on stderr that says ``message``."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]


@pytest.fixture(scope="session")
def cli():
    """Runs ``rnnkit`` in a subprocess: ``cli("train", path, ...)``."""
    return run_cli


@pytest.fixture(scope="session")
def cli_here():
    """Runs ``rnnkit`` in this process: ``cli_here("sample", run, "--top-p", 0)``."""
    return run_main


@pytest.fixture(scope="session")
def user_error():
    """Asserts a one-line error with exit code 2: ``user_error(result, "message")``."""
    return assert_one_line_error


# small settings that train in a second or two
TINY_LM_FLAGS = ["--hidden-size", "32", "--num-layers", "1", "--embedding-dim", "16", "--batch-size", "8",
                 "--seq-len", "32", "--sample-length", "20", "--device", "cpu"]
TINY_LABELLED_FLAGS = ["--hidden-size", "16", "--num-layers", "1", "--embedding-dim", "8", "--batch-size", "8",
                       "--device", "cpu", "--eval-every", "20"]
TINY_MODEL = dict(cell="lstm", hidden_size=16, num_layers=1, embedding_dim=8, dropout=0.0)


@pytest.fixture(scope="session")
def tiny_lm_flags():
    """``rnnkit train`` flags of a language model that trains in seconds."""
    return list(TINY_LM_FLAGS)


@pytest.fixture(scope="session")
def tiny_labelled_flags():
    """``rnnkit train`` flags of a classifier or tagger that trains in seconds."""
    return list(TINY_LABELLED_FLAGS)


@pytest.fixture(scope="session")
def tiny_model():
    """LanguageModel / SequenceClassifier / SequenceTagger settings that train in seconds."""
    return dict(TINY_MODEL)


@pytest.fixture(scope="session")
def fit_labelled():
    """Trains a classifier or tagger quietly on a LabelledData for a few epochs:
    ``trainer, result = fit_labelled(data, model, tmp_path, **train_settings)``."""

    def fit(data, model, out, **settings):
        torch.manual_seed(0)
        config = TrainConfig(**{"max_epochs": 6, "eval_every": 1000, "lr": 1e-2,
                                "warmup_steps": 5, "device": "cpu", "log_every": 5, **settings})
        trainer = Trainer(model, data, config, out=out / "run", quiet=True)
        return trainer, trainer.fit()

    return fit


@pytest.fixture
def explicit_backend(monkeypatch):
    """Puts the explicit engine on one of ``EXPLICIT_BACKENDS`` for the test:
    ``explicit_backend("steps")``. "layer node" needs the C kernels and skips without a compiler."""

    def use(name: str) -> None:
        assert name in EXPLICIT_BACKENDS, name
        if name == "layer node":
            require_native_kernels()
        else:
            monkeypatch.setattr(engine, "LAYER_NODES", False)
        if name == "steps on torch ops":
            monkeypatch.setattr(native, "library", lambda: None)

    return use


@pytest.fixture
def native_kernels():
    """The compiled C kernels' library, or a skip where this machine has no C compiler."""
    return require_native_kernels()


def require_native_kernels():
    """The compiled C kernels, or a skip where this machine has no C compiler."""
    try:
        native._compiler()
    except OSError as error:
        pytest.skip(f"the native kernels need a C compiler: {error}")
    library = native.library()
    assert library is not None, "a compiler is there, so the kernels must build and load"
    return library


CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@contextlib.contextmanager
def browser_page(allowed, viewport=(1200, 900)):
    """A page of headless Chromium (Playwright driving the system's browser) that loads only
    URLs for which ``allowed(url)`` is true: yields (page, problems), the console's errors and
    warnings and the page's exceptions, which a test asserts empty at the end."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    problems = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.route("**/*", lambda route: route.continue_() if allowed(route.request.url) else route.abort())
            yield page, problems
        finally:
            browser.close()
