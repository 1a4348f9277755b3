"""The layers hold: no import cycle among the hub's modules or packages, and importing builds nothing.

The layer rules themselves are import-linter contracts (``[tool.importlinter]`` in pyproject.toml, run
by ``lint-imports``); a layer contract says nothing about cycles inside one layer, which this checks on
the same import graph (grimp's, which import-linter builds: every import counts, also those inside
functions and under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("ontology", "hub", "ingest", "hubql", "devstack", "hubcli")


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph.get(succ, ()))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def cycles(imports: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (self-imports too)."""
    found = [c for c in strongly_connected(imports) if len(c) > 1]
    found += [[m] for m, targets in imports.items() if m in set(targets)]
    return found


def collapsed(imports: Mapping[str, Iterable[str]], depth: int) -> dict[str, set[str]]:
    """The import graph with every module deeper than ``depth`` dotted names merged into its package at
    that depth; imports inside one merged package are dropped."""

    def at(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    merged: dict[str, set[str]] = {}
    for module, targets in imports.items():
        source = at(module)
        edges = merged.setdefault(source, set())
        edges.update(t for t in map(at, targets) if t != source)
    return merged


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = graph.modules
    return {m: {t for t in graph.find_modules_directly_imported_by(m) if t in modules} for m in modules}


def test_the_cycle_finder_finds_cycles() -> None:
    # The check below must be able to fail: a chain of three, a pair, a self-import, and no false alarm.
    assert sorted(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == [["a", "b", "c"]]
    assert cycles({"x.p": {"y.q"}, "y.q": {"x.p"}}) == [["x.p", "y.q"]]
    assert cycles({"s": {"s"}}) == [["s"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    # Packages: x.a -> y.b -> x.c is no module cycle, but x and y import each other.
    package_level = collapsed({"x.a": {"y.b"}, "y.b": {"x.c"}, "x.c": set()}, 1)
    assert cycles({"x.a": {"y.b"}, "y.b": {"x.c"}, "x.c": set()}) == []
    assert cycles(package_level) == [["x", "y"]]


def test_no_module_imports_itself_back(imports: dict[str, set[str]]) -> None:
    assert {m.partition(".")[0] for m in imports} == set(PACKAGES)  # the whole tree was read
    assert cycles(imports) == []


def test_no_package_imports_itself_back(imports: dict[str, set[str]]) -> None:
    deepest = max(m.count(".") + 1 for m in imports)
    for depth in range(1, deepest):
        assert (depth, cycles(collapsed(imports, depth))) == (depth, [])


def test_importing_the_layers_builds_nothing(tmp_path: Path) -> None:
    """Importing any module, the worker's agents included (registering them is a call), creates no
    folder and builds no Faust app."""
    state = tmp_path / "state"
    modules = sorted(
        m for m in grimp.build_graph(*PACKAGES, cache_dir=None).modules if not m.endswith("__main__")
    )
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import faust, ingest.app\n"
        "assert ingest.app.process_app.cache_info().currsize == 0, 'the worker app was built on import'\n"
    )
    env = {**os.environ, "HUB_STATE_DIR": str(state), "HUB_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == [], sorted(p.name for p in tmp_path.rglob("*"))
