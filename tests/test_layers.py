"""The package layout shows the data flow: no import cycles, a leaf ``core``, pure logic
importable without the SIP stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "appliance"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every appliance module ``path`` imports, type-only imports included (a cycle through
    a type hint is still a cycle in the design)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            if target.split(".")[0] != "appliance":
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if node.module is None else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "appliance")
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # 'from .x import name' names a module or a symbol of module x
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    """``appliance.media.session`` -> ``appliance.media``; top-level modules stand alone.
    ``__init__`` modules belong to their package only for what they themselves import."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_module_imports_itself_back():
    assert _cycles(_graph()) == []


def test_no_cycles_between_packages():
    graph = _graph()
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(_package(module), set()).update(
            _package(t) for t in targets if _package(t) != _package(module))
    assert _cycles(packages) == []


def test_core_depends_on_nothing_else_of_the_appliance():
    graph = _graph()
    core = {m: t for m, t in graph.items() if m.startswith("appliance.core")}
    assert core, "appliance.core is missing"
    outside = {m: sorted(t for t in targets if not t.startswith("appliance.core"))
               for m, targets in core.items()}
    assert {m: t for m, t in outside.items() if t} == {}


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", [
    "appliance.sources.sip.screen", "appliance.sources.sip.message", "appliance.sources.sip.plan",
    "appliance.sources.sip.registration", "appliance.sources.sip.recorded",
    "appliance.cdr.record", "appliance.media.session",
])
def test_pure_logic_imports_without_the_sip_stack(module):
    """Plain logic (who may call, labels, call plans, roles) is testable on a machine
    without pjsua2: it must not pull the SIP stack in."""
    code = ("import sys, importlib; sys.modules['pjsua2'] = None; "
            f"importlib.import_module({module!r})")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
