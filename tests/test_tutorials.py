"""The site's pages run as written.

- Every ``rnnkit`` command in any fenced block of any page under ``docs/`` parses with the parser the
  command line uses, so a renamed or removed option fails here, not in a reader's shell.
- Every tutorial (``docs/tutorials/*.md``) runs end to end: its ```bash and ```python blocks, in page
  order, in an empty folder that holds small generated data in the format the page asks for (the
  ``data/...`` files its ``DATA`` maker writes). Tutorials budget training in epochs, which scale with
  the data, so the commands that take minutes on the real set take seconds here. Blocks fenced as
  ```console or ```text are shown, not run (a server that does not return, a printout); lines of a
  ```bash block that are not ``rnnkit`` commands (downloads, ``mkdir``) are the reader's set-up,
  which the data maker stands in for.
- Every task in the registry has a tutorial that trains it, and every tutorial shows a figure that
  exists (the lecture pages' own checks are in ``tests/test_lecture_pages.py``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import run_main
from tutorial_data_signals import SIGNAL_DATA
from tutorial_data_text import TEXT_DATA

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str]]:
    """The fenced blocks of a page, in order: (language, body)."""
    return FENCE.findall(page.read_text(encoding="utf-8"))


def shell_commands(body: str) -> list[list[str]]:
    """The commands of a shell block as argument lists: continuation lines joined, comments dropped."""
    joined = body.replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def rnnkit_arguments(words: list[str]) -> list[str] | None:
    """``rnnkit ARGS`` (or ``.venv/bin/rnnkit``, ``python -m rnnkit``) as ARGS; None for other commands."""
    if words and Path(words[0]).name == "rnnkit":
        return words[1:]
    if len(words) > 2 and Path(words[0]).name.startswith("python") and words[1:3] == ["-m", "rnnkit"]:
        return words[3:]
    return None


PAGES = sorted(p for p in DOCS.rglob("*.md"))
TUTORIALS = sorted(DOCS.glob("tutorials/*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_command_on_the_page_parses(page):
    from rnnkit.cli.parser import build_parser
    from rnnkit.errors import ConfigError

    parser = build_parser()
    for language, body in blocks(page):
        if language not in ("bash", "console", "sh", "shell"):
            continue
        for words in shell_commands(body):
            args = rnnkit_arguments(words)
            if args is None or not args or args[0] in ("-h", "--help", "--version"):
                continue
            try:
                parser.parse_args(args)
            except (SystemExit, ConfigError):
                pytest.fail(f"{page.relative_to(ROOT)}: `rnnkit {shlex.join(args)}` does not parse")


# tutorial file stem -> a function(folder) that writes, small and generated, the files its commands read
DATA = {**TEXT_DATA, **SIGNAL_DATA}


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_the_tutorial_runs_as_written(page, tmp_path, monkeypatch):
    assert page.stem in DATA, f"{page.name}: add a maker of its data to tests/tutorial_data_*.py"
    DATA[page.stem](tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for language, body in blocks(page):
        if language == "python":
            exec(compile(body, f"{page.name}", "exec"), namespace)
        elif language == "bash":
            for words in shell_commands(body):
                args = rnnkit_arguments(words)
                if args is None:
                    continue
                result = run_main(*args)
                assert result.returncode == 0, f"{page.name}: rnnkit {shlex.join(args)}\n{result.stderr[-2000:]}"


def page_commands(page: Path) -> list:
    """The parsed ``rnnkit`` commands of a page's runnable (```bash) blocks."""
    from rnnkit.cli.parser import build_parser

    parser = build_parser()
    return [parser.parse_args(args) for language, body in blocks(page) if language == "bash"
            for words in shell_commands(body) if (args := rnnkit_arguments(words))]


def figures_of(page: Path) -> list[Path]:
    """The images a page shows, as paths beside it."""
    return [page.parent / src for src in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text(encoding="utf-8"))]


def test_every_task_has_a_tutorial_that_trains_it_and_shows_a_figure():
    from rnnkit.tasks import TASKS

    trained = {getattr(command, "task", "lm"): page for page in TUTORIALS for command in page_commands(page)
               if command.command == "train"}
    assert set(TASKS) <= set(trained), f"no tutorial trains --task {sorted(set(TASKS) - set(trained))}"
    for page in TUTORIALS:
        assert figures_of(page) and all(f.is_file() for f in figures_of(page)), f"{page.name}: its figure"
