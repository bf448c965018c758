"""The documentation site builds with ``mkdocs build --strict``: a broken link, a
reference to a name the code lacks or a docstring griffe cannot read fails it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# --- the README: short, its links whole, its set-up the one CI runs ---------------------------------------

def relative_links(markdown: str) -> list[str]:
    """The targets of a Markdown text's links and images that are paths (no scheme, not only an anchor),
    without their ``#anchor``."""
    import re

    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_readme_stays_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < 160, f"README.md has {lines} lines: detail belongs on the site (docs/), the README links to it"


def test_every_relative_link_in_the_readme_names_a_file_that_exists():
    links = relative_links((ROOT / "README.md").read_text())
    assert len(links) >= 10, links  # the README links its tutorials, guides and results
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_the_link_finder_keeps_paths_and_drops_urls_and_anchors():
    text = "[a](docs/a.md) ![b](img/b.png) [c](https://x.org/c.md) [d](#set-up) [e](docs/e.md#part) <http://y.org>"
    assert relative_links(text) == ["docs/a.md", "img/b.png", "docs/e.md"]


def named_flags(markdown: str) -> set[str]:
    """The ``--flags`` a page names in its inline code outside fenced blocks: spans that start with ``rnnkit``
    or ``--``, without ``=`` or ``_`` (nanoGPT's ``--out_dir=...``, OpenNMT's ``-train_steps``: other tools')."""
    import re

    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    spans = [s for s in re.findall(r"`([^`\n]+)`", text)
             if s.startswith(("rnnkit", "--")) and "=" not in s and "_" not in s]
    return {flag for span in spans for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span)}


def test_every_flag_the_guides_and_the_coming_from_pages_name_exists():
    """Their tables map other tools' options to ours: a renamed or removed flag fails here (the fenced
    commands are parsed by tests/test_tutorials.py)."""
    import argparse

    from rnnkit.cli.parser import build_parser
    from rnnkit.deprecated import RENAMED_FLAGS

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    known = {s for sub in commands.values() for a in sub._actions for s in a.option_strings}
    known |= {old for renamed in RENAMED_FLAGS.values() for old in renamed}  # the renamed-options table
    pages = [ROOT / "README.md", ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guide").glob("*.md")),
             *sorted((ROOT / "docs" / "coming-from").glob("*.md"))]
    unknown = {f"{page.relative_to(ROOT)}: {flag}" for page in pages for flag in named_flags(page.read_text())
               if flag not in known}
    assert not unknown, sorted(unknown)
    assert len(named_flags((ROOT / "docs" / "coming-from" / "char-rnn.md").read_text())) >= 20


def test_the_flag_finder_reads_rnnkit_spans_only():
    page = "`--hidden-size 8` `rnnkit sample run --top-k 5` `--out_dir=x` `-rnn_size` `th train.lua --x`\n" \
           "```bash\nrnnkit train --fenced\n```\n"
    assert named_flags(page) == {"--hidden-size", "--top-k"}


def test_the_readmes_set_up_commands_are_the_ones_ci_runs():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert '.venv/bin/pip install "torch==2.13.0" -e ".[test]"' in readme
    assert '.venv/bin/pip install --quiet "torch==2.13.0" -e ".[test]"' in ci
    test_command = ".venv/bin/python -m pytest -q -n auto"
    assert test_command in readme and test_command in ci


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="needs the docs extra: pip install -e '.[docs]'")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", tmp_path / "site"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "--char-lm" in cli and "rnnkit predict" in cli  # generated from the parser
    assert "LanguageModel" in (tmp_path / "site" / "api" / "models" / "index.html").read_text()
