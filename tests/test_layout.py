"""The package's layering: no import cycles, no private names imported across modules.

Every import counts, at module level or inside a function (a lazy import is still a dependency),
except those under ``if TYPE_CHECKING:``, which never run."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_labelquality"


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module names of a package's files (a package is its ``__init__``)."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _typing_only(tree: ast.Module) -> set[int]:
    """The ids of nodes inside ``if TYPE_CHECKING:`` blocks."""
    ignored: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ignored.update(id(inner) for inner in ast.walk(node))
    return ignored


def imports(package: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Each module's imported modules of the same package, and every import of a private name
    (``from pkg.mod import _name``) from another module, as ``importer: module._name``."""
    modules = module_names(package)

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    private: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        ignored = _typing_only(tree)
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in ignored:
                continue
            if isinstance(node, ast.Import):
                targets = [owner(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = home.split(".")[: len(home.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [owner(f"{base}.{a.name}") or owner(base) for a in node.names]
                source = owner(base)
                private += [
                    f"{name}: {base}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                    and not a.name.endswith("__")  # __version__ is public
                    and source not in (None, name)
                ]
            else:
                continue
            graph[name].update(t for t in targets if t is not None and t != name)
    return graph, private


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph (``[a, b, a]``), or ``[]``."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        found: list[str] = exc.args[1]
        return found
    return []


def test_the_package_has_no_import_cycle() -> None:
    graph, _ = imports(PACKAGE)
    assert "pytest_labelquality.runner" in graph  # the walk found the package
    assert "pytest_labelquality.backends.tasks" in graph["pytest_labelquality.crossval"]
    found = cycle(graph)
    assert not found, "import cycle: " + " -> ".join(found)


def test_no_module_imports_another_modules_private_names() -> None:
    _, private = imports(PACKAGE)
    assert not private, f"private names imported across modules: {private}"


def test_the_check_finds_lazy_cycles_and_private_imports_and_ignores_typing_only(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.sub.b import helper\n")
    (package / "sub" / "b.py").write_text("from .. import c\n\ndef helper(): ...\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
        "from pkg.sub.b import _hidden\n"
    )
    graph, private = imports(package)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert cycle(graph)[0] in {"pkg.sub.b", "pkg.c"}  # b -> c -> b, through the private import
    assert private == ["pkg.c: pkg.sub.b._hidden"]
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    )
    graph, private = imports(package)
    assert cycle(graph) == []  # a typing-only import is no dependency
    assert private == []


@pytest.mark.parametrize("module", ["backends", "backends.dask_engine", "backends.ray_engine"])
def test_engines_receive_the_fold_function_instead_of_importing_crossval(module: str) -> None:
    graph, _ = imports(PACKAGE)
    assert "pytest_labelquality.crossval" not in graph[f"pytest_labelquality.{module}"]
