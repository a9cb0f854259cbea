"""The package's shape: no import circles, and the layers only point down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "service"

# What each layer may not import. The pipeline's lower layers (production, compare, disk) know
# nothing of who drives them; compare is pure and imports no other layer at all.
_TOP = ("service.daemon", "service.cli", "service.demo", "service.web")
FORBIDDEN = {
    "service.production": (*_TOP, "service.sync", "service.plan"),
    "service.disk": (*_TOP, "service.sync", "service.plan"),
    "service.compare": (
        *_TOP,
        "service.sync",
        "service.production",
        "service.disk",
        "service.settings",
        "service.plan",
    ),
    "service.settings": (*_TOP, "service.sync", "service.plan"),
    "service.sync": (*_TOP, "service.plan"),
    "service.delivery": (*_TOP, "service.sync", "service.plan"),
    "service.verify": (*_TOP, "service.sync", "service.plan"),
    "service.verify_preflight": (*_TOP, "service.sync", "service.plan"),
    "service.verify_psql": (*_TOP, "service.sync", "service.plan"),
    "service.daemon": ("service.cli", "service.demo"),
    # The daemon starts the status page (web); the page knows nothing of the daemon.
    "service.web": (
        "service.daemon",
        "service.cli",
        "service.demo",
        "service.sync",
        "service.plan",
    ),
    "service.probing": (*_TOP, "service.sync", "service.plan"),
    "service.runs": (*_TOP, "service.sync", "service.plan"),
    # plan: a migration between two schemas; it reads through production/, proves with
    # verify.py, and is driven only by the CLI.
    "service.plan": (*_TOP, "service.sync", "service.settings", "service.delivery"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Every service module this file imports, at the top or inside a function alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    # A package's __init__ holds no logic (checked below): importing through it is no edge.
    return {m for m in found if m in known and known[m].name != "__init__.py"}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_only_point_down(layer: str) -> None:
    wrong = [
        f"{src} imports {dst}"
        for src, targets in graph().items()
        if src == layer or src.startswith(layer + ".")
        for dst in targets
        if any(dst == f or dst.startswith(f + ".") for f in FORBIDDEN[layer])
    ]
    assert wrong == []


def test_package_inits_hold_no_logic() -> None:
    for init in ROOT.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        kinds = {type(node).__name__ for node in body}
        # a docstring, and at the top the version string
        assert kinds <= {"Expr", "Assign"}, f"{init}: {kinds}"
        if init.parent != ROOT:
            assert kinds == {"Expr"}, f"{init} holds more than its docstring"


def test_the_pipeline_is_named_by_the_folders() -> None:
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert {
        "production",
        "compare",
        "disk",
        "settings",
        "daemon",
        "cli",
        "demo",
        "web",
        "plan",
    } <= folders
