"""The layers import in one direction, and no two files import each other (directly or round a circle).

engine (``mpsim`` without ``mpsim.cli``) <- ``protocols`` (schemes and their protocols) and ``costmodel``
(pricing: a pure function of the ledger, so it needs only the engine; the two do not import each other) <-
``mpcache`` (the workload: it runs protocols and prices its own decode step) <- the application
(``mpsim.cli`` and ``python -m mpsim``), the only place importing every layer. Every import statement
counts, at module level or inside a function: a lazy import is still a dependency. The engine finds its
scheme through an entry point (``mpsim.scheme``), not by importing it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mpsim", "protocols", "mpcache", "costmodel")


def _layer(module: str) -> str:
    if module in ("mpsim.cli", "mpsim.__main__") or module.startswith("mpsim.cli."):
        return "application"
    return {"mpsim": "engine"}.get(module.split(".")[0], module.split(".")[0])


MAY_IMPORT = {
    "engine": {"engine"},
    "protocols": {"engine", "protocols"},
    "costmodel": {"engine", "costmodel"},
    "mpcache": {"engine", "protocols", "costmodel", "mpcache"},
    "application": {"engine", "protocols", "costmodel", "mpcache", "application"},
}


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _targets(module: str, path: Path, node, modules) -> list[str]:
    """The project modules an import statement loads (``from p import m`` loads the module p.m if it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
    if len(found) < len(node.names) and base in modules:
        found.append(base)  # names defined in base itself (or its __init__)
    return found


def import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for module, path in modules.items():
        graph.add_node(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path, node, modules):
                    if target != module:
                        graph.add_edge(module, target, line=node.lineno)
    return graph


def test_no_layer_imports_a_layer_above_it():
    graph = import_graph()
    upward = [f"{a}:{graph.edges[a, b]['line']} imports {b}" for a, b in graph.edges
              if _layer(b) not in MAY_IMPORT[_layer(a)]]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    graph = import_graph()
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, f"import circles: {circles}"


def test_the_walk_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert graph.has_edge("mpsim.cli.commands", "mpsim.cli.ops")  # a relative import inside a function
    assert graph.has_edge("protocols.fxp", "protocols.reuse")  # a lazy import
    assert graph.has_edge("mpsim.session", "mpsim.scheme") and graph.has_edge("protocols.additive", "mpsim.scheme")
