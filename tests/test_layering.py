"""Imports point down only. The layer order is written here, once; ARCHITECTURE.md draws it.

Every module of the package is read with ``ast`` (imports inside functions
included) and each of its imports of rnnkit must come from its own layer or
a layer below. Layers on the same level (kernels and data) know nothing of
each other. And no modules import each other in a cycle, inside a layer
either.
"""

import ast
import re
from pathlib import Path

import pytest

import rnnkit

PACKAGE = Path(rnnkit.__file__).parent

# (level, layer, module prefixes), bottom first; a module is in the layer of its longest matching prefix
LAYERS = [
    (0, "base", ("rnnkit.errors", "rnnkit.config", "rnnkit.version", "rnnkit.deprecated")),
    (1, "kernels", ("rnnkit.kernels",)),
    (1, "data", ("rnnkit.data",)),
    (1, "reference", ("rnnkit.reference",)),  # NumPy only: the lectures' algorithms, nothing of rnnkit's
    (2, "layers", ("rnnkit.layers",)),
    (3, "models", ("rnnkit.models",)),
    (4, "diagnostics", ("rnnkit.diagnostics",)),
    (5, "training", ("rnnkit.training",)),
    (6, "tasks", ("rnnkit.tasks",)),  # one module a task, and the registry the layers above ask
    (7, "experiments", ("rnnkit.experiments",)),
    (8, "cli", ("rnnkit.cli", "rnnkit.__main__")),
    (9, "package", ("rnnkit",)),  # the root only re-exports the public names
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> tuple[int, str]:
    matches = [(len(prefix), level, name) for level, name, prefixes in LAYERS for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    _, level, name = max(matches)
    return level, name


def imports_of(module: str) -> set[str]:
    """The rnnkit modules that ``module`` imports (``from a.b import c`` is a.b.c when c is a module)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                      for alias in node.names}
    return {name for name in found if name == "rnnkit" or name.startswith("rnnkit.")}


def test_every_module_imports_only_from_its_own_layer_or_below():
    wrong = []
    for module in MODULES:
        level, layer = layer_of(module)
        for imported in imports_of(module):
            their_level, their_layer = layer_of(imported)
            if their_layer != layer and their_level >= level:
                wrong.append(f"{module} ({layer}) imports {imported} ({their_layer})")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_no_modules_import_each_other_in_a_cycle():
    graph = {module: imports_of(module) & MODULES.keys() for module in MODULES}
    cycles = []

    def visit(module, path):
        for imported in graph[module]:
            if imported in path:
                cycles.append(" -> ".join(path[path.index(imported):] + [imported]))
            elif imported not in done:
                visit(imported, path + [imported])
        done.add(module)

    done: set[str] = set()
    for module in graph:
        if module not in done:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_the_layer_table_catches_an_import_that_points_up(monkeypatch, tmp_path):
    """The checker itself: a data module that imports a model is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from rnnkit.models.tagger import SequenceTagger\n")
    monkeypatch.setitem(MODULES, "rnnkit.data.bad", bad)
    with pytest.raises(AssertionError, match=re.escape("rnnkit.data.bad (data) imports rnnkit.models.tagger (models)")):
        test_every_module_imports_only_from_its_own_layer_or_below()


def test_the_cycle_check_catches_two_modules_that_import_each_other(monkeypatch, tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from rnnkit.data.b import g\n")  # a lazy import counts too
    (tmp_path / "b.py").write_text("from rnnkit.data.a import f\n")
    monkeypatch.setitem(MODULES, "rnnkit.data.a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "rnnkit.data.b", tmp_path / "b.py")
    with pytest.raises(AssertionError, match=re.escape("rnnkit.data.a -> rnnkit.data.b -> rnnkit.data.a")):
        test_no_modules_import_each_other_in_a_cycle()


# the hubs every change used to land in stay small; a module longer than this holds more than one concern
HUB_LINES = {"cli/main.py": 250, "training/trainer.py": 400}
MODULE_LINES = 410


def test_the_hubs_and_every_module_stay_within_their_length():
    lengths = {path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
               for path in PACKAGE.rglob("*.py")}
    assert {name: lengths[name] for name in HUB_LINES if lengths[name] > HUB_LINES[name]} == {}
    assert {name: n for name, n in lengths.items() if n > MODULE_LINES} == {}
