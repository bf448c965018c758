"""Every lecture experiment has its page on the site, and every lecture page its figure.

The pages under ``docs/experiments/`` are not run by ``tests/test_tutorials.py`` (their full
configurations take minutes; ``tests/test_experiments.py`` runs each ``--quick``), but their commands
parse there. Here: each ``rnnkit experiment NAME`` has ``docs/experiments/NAME.md``, which shows that
command and the experiment's own figure; every image a lecture page shows is a file in the repository,
small enough for a page; and every lecture page is in the site's navigation (mkdocs only notes a page
left out of it, even with ``--strict``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rnnkit.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]
LECTURES = ROOT / "docs" / "experiments"
PAGES = sorted(LECTURES.glob("*.md"))
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")  # ![alt](path "title"): the path
MAX_FIGURE_BYTES = 150_000


def images(page: Path) -> list[Path]:
    return [(page.parent / target).resolve() for target in IMAGE.findall(page.read_text(encoding="utf-8"))]


def nav_pages(entries) -> list[str]:
    """The page paths of mkdocs.yml's nav, nested sections flattened."""
    found = []
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            found += nav_pages(value) if isinstance(value, list) else [value]
    return found


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_has_a_page_with_its_command_and_its_own_figure(name):
    page = LECTURES / f"{name}.md"
    assert page.exists(), f"rnnkit experiment {name} has no page: write docs/experiments/{name}.md"
    text = page.read_text(encoding="utf-8")
    assert re.search(rf"^rnnkit experiment {re.escape(name)}\b", text, re.M), \
        f"{page.name}: show the command `rnnkit experiment {name}`"
    assert LECTURES / "img" / f"{name}.png" in images(page), f"{page.name}: show img/{name}.png, the experiment's plot"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_lecture_page_shows_a_figure_that_exists_and_is_small(page):
    shown = images(page)
    assert shown, f"{page.name}: a lecture page shows a figure from a real run"
    for figure in shown:
        assert figure.is_file(), f"{page.name}: {figure.relative_to(ROOT)} is missing"
        assert figure.stat().st_size < MAX_FIGURE_BYTES, f"{figure.name}: keep a page's figure under 150 kB"


def test_every_lecture_page_is_in_the_navigation():
    yaml = pytest.importorskip("yaml", reason="mkdocs.yml is read with PyYAML, which the docs extra brings")
    nav = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    missing = [p.name for p in PAGES if f"experiments/{p.name}" not in nav]
    assert PAGES and not missing, f"mkdocs.yml: add {missing} to the Lectures section of nav"
