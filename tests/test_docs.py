"""The documentation: the site builds with ``mkdocs build --strict`` (a broken link, a
reference to a name the code lacks or a docstring griffe cannot read fails it); the API
pages cover the public API; every public name has a docstring, and the ones that take or
return tensors state their shapes. The last two read the source, fast."""

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rnnkit

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
    assert "(B, T, I), lengths (B,)" in (tmp_path / "site" / "api" / "layers" / "index.html").read_text()  # a docstring


# --- what the API reference covers -----------------------------------------------------------------------------

def referenced() -> set[int]:
    """The objects the ``::: name`` lines of docs/api/*.md render (a module: it and what it defines), by id."""
    found: set[int] = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        for name in re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE):
            module, _, attribute = name.rpartition(".")
            try:
                obj = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError):
                obj = importlib.import_module(name)
            found.add(id(obj))
            if inspect.ismodule(obj):
                found |= {id(o) for o in vars(obj).values() if getattr(o, "__module__", None) == obj.__name__}
    return found


def test_the_api_reference_covers_the_public_api():
    """What ``import rnnkit`` exports, every registered cell, the layers' public classes and the diagnostics
    each have a ``:::`` entry on a page of docs/api (mkdocstrings renders it from the docstrings)."""
    from rnnkit import diagnostics, layers
    from rnnkit.kernels import CELLS

    public = {f"rnnkit.{name}": getattr(rnnkit, name) for name in rnnkit.__all__ if name != "__version__"}
    public |= {f"cell {name}": cls for name, cls in CELLS.items()}
    public |= {f"rnnkit.diagnostics.{name}": getattr(diagnostics, name) for name in diagnostics.__all__
               if inspect.isclass(getattr(diagnostics, name)) or inspect.isfunction(getattr(diagnostics, name))}
    for info in pkgutil.iter_modules(layers.__path__):
        module = importlib.import_module(f"rnnkit.layers.{info.name}")
        public |= {f"{module.__name__}.{n}": o for n, o in vars(module).items()
                   if inspect.isclass(o) and o.__module__ == module.__name__ and is_public(n)}
    documented = referenced()
    missing = sorted(name for name, obj in public.items() if id(obj) not in documented)
    assert not missing, "public names no page of docs/api renders (add a ::: line):\n" + "\n".join(missing)


# --- every public name has a docstring, and the tensor-facing ones state their shapes -----------------------

SHAPE_PACKAGES = ("rnnkit.models", "rnnkit.layers", "rnnkit.kernels", "rnnkit.diagnostics")
TENSOR_ANNOTATION = re.compile(r"\b(Tensor|State|Memory)\b")  # State = tuple[Tensor, ...]; Memory holds tensors
DIM = r"(?:\d*[A-Za-z_]\w*|\d+|\.\.\.)"  # B, 2H, G*H, fan_in, 1, ...
SHAPE = re.compile(rf"\(\s*{DIM}(?:\s*[-+*/]\s*{DIM})*(?:\s*,\s*{DIM}(?:\s*[-+*/]\s*{DIM})*)*\s*,?\s*\)")
# a dimension's letter: the legend's (docs/api/index.md: B batch, T time, ... G gates) or another one-letter
# size that a docstring names (S source length, F width, K, N, M of a matrix product)
DIM_LETTER = re.compile(r"(?<![A-Za-z])[A-Z](?![A-Za-z])")


def all_modules() -> list:
    """Every public module of the package (a module or package whose dotted name has no ``_`` part)."""
    modules = [rnnkit]
    for info in pkgutil.walk_packages(rnnkit.__path__, "rnnkit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            modules.append(importlib.import_module(info.name))
    return modules


def is_public(name: str) -> bool:
    return not name.startswith("_")


def definitions(module):
    """(qualified name, ast node, class or None) of each public class, function and method written in ``module``:
    imported names are not in its syntax tree, nor are the methods @dataclass or NamedTuple generate."""
    tree = ast.parse(Path(module.__file__).read_text())
    yield module.__name__, tree, None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and is_public(node.name):
            yield f"{module.__name__}.{node.name}", node, None
            if isinstance(node, ast.ClassDef):
                cls = getattr(module, node.name)
                for member in node.body:
                    setter = any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
                                 for d in member.decorator_list) if isinstance(member, ast.FunctionDef) else True
                    if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_public(member.name) \
                            and not setter:
                        yield f"{module.__name__}.{node.name}.{member.name}", member, cls


def documented_base(cls: type, name: str) -> type | None:
    """The rnnkit base class of ``cls`` that defines and documents the method ``name``, if there is one."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("rnnkit") and name in vars(base):
            member = vars(base)[name]
            doc = (member.fget if isinstance(member, property) else member).__doc__
            if doc:
                return base
    return None


def missing_docstrings(module) -> list[str]:
    """The public names written in ``module`` without a docstring of their own.

    The rule: every public module, class, function, method and property needs its own docstring, except a
    method that overrides a documented method of an rnnkit base class (``Task.build_model``,
    ``Cell.combine``, ``DecodeStrategy.advance``...): that contract is written once, where it is defined,
    and the subclass's docstring says what it does differently. An override of a torch or standard-library
    method is not excused: ``nn.Module.forward``'s docstring ("Define the computation performed at every
    call") says nothing of our arguments and shapes, so every ``forward`` states them. Private names
    (``_x``), dunders (``__init__``: mkdocstrings merges it into the class) and the methods @dataclass
    and NamedTuple generate are not public API.
    """
    missing = []
    for name, node, cls in definitions(module):
        if ast.get_docstring(node) is None and not (cls is not None and documented_base(cls, node.name)):
            missing.append(name)
    return missing


def shapeless(module) -> list[str]:
    """The public functions and methods of ``module`` that take or return tensors (by their annotations:
    ``Tensor``, ``State`` or ``Memory``) where neither their docstring nor their class's (nor, for an
    excused override, the base method's) writes a shape: a tuple of dimensions such as (B, T, H),
    (B,), (G*H, fan_in) or (B, T, D*H) with at least one one-letter dimension (the legend's B T U I E H
    L D V G, or one the docstring defines, such as S or F), or says "any shape" (an element-wise
    function, a check of dtype and device). Prose in parentheses, "(True, False)" or "(see below)",
    is not a shape."""
    def states_shape(doc: str | None) -> bool:
        doc = doc or ""
        return "any shape" in doc.lower() or any(DIM_LETTER.search(match.group()) for match in SHAPE.finditer(doc))

    classes = {node.name: node for _, node, cls in definitions(module) if isinstance(node, ast.ClassDef)}
    wrong = []
    for name, node, cls in definitions(module):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [node.args.vararg, node.args.kwarg]
        annotations = [a.annotation for a in args if a is not None and a.annotation is not None] + [node.returns]
        if not any(a is not None and TENSOR_ANNOTATION.search(ast.unparse(a)) for a in annotations):
            continue
        docs = [ast.get_docstring(node)]
        if cls is not None:
            docs.append(ast.get_docstring(classes[cls.__name__]))
            base = documented_base(cls, node.name)
            if base is not None:
                member = vars(base)[node.name]
                docs += [(member.fget if isinstance(member, property) else member).__doc__, base.__doc__]
        if not any(states_shape(doc) for doc in docs):
            wrong.append(name)
    return wrong


def test_every_public_name_has_a_docstring():
    """The rule, and why overrides of rnnkit's documented methods are excused: :func:`missing_docstrings`."""
    missing = [name for module in all_modules() for name in missing_docstrings(module)]
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)


def test_the_functions_that_take_or_return_tensors_state_their_shapes():
    """What counts as taking tensors and as a shape: :func:`shapeless`."""
    modules = [m for m in all_modules() if m.__name__.startswith(SHAPE_PACKAGES)]
    wrong = [name for module in modules for name in shapeless(module)]
    assert not wrong, f"{len(wrong)} functions take or return tensors and no docstring states a shape " \
                      "such as (B, T, H):\n" + "\n".join(wrong)


PLANTED = '''"""A module planted to test the checks."""
from dataclasses import dataclass

from torch import Tensor, nn

from rnnkit.kernels.cell import Cell


def stated(x: Tensor) -> Tensor:
    """x (B, T, H) -> its square, same shape."""


def unstated(x: Tensor) -> Tensor:
    """The square of x, element-wise."""


def elementwise(x: Tensor) -> Tensor:
    """The square of x, of any shape."""


def not_a_shape(x: Tensor) -> Tensor:
    """Returns (True, False) and a (rows, columns) matrix (see below)."""


def undocumented():
    pass


def _private():
    pass


@dataclass
class Settings:
    size: int = 1


class PlantedCell(Cell):
    """A cell whose docstring says no shape."""

    def combine(self, xp: Tensor, hp: Tensor, state):
        return xp, state


class Planted(nn.Module):
    """A module whose docstring says no shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    @property
    def width(self) -> int:
        return 1
'''


@pytest.fixture
def planted(tmp_path):
    path = tmp_path / "planted.py"
    path.write_text(PLANTED)
    spec = importlib.util.spec_from_file_location("planted", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docstring_check_finds_what_is_missing_and_excuses_only_documented_rnnkit_overrides(planted):
    # a @dataclass without a docstring gets one generated from its signature: the check reads the source
    assert missing_docstrings(planted) == ["planted.undocumented", "planted.Settings", "planted.Planted.forward",
                                           "planted.Planted.width"]


def test_the_shape_check_wants_a_tuple_of_dimension_letters(planted):
    # PlantedCell.combine is excused: Cell.combine states xp, hp (B, G*H)
    assert shapeless(planted) == ["planted.unstated", "planted.not_a_shape", "planted.Planted.forward"]
