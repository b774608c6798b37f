"""The package's layering, read from the source: the data flows one way.

server -> jobs -> engine -> pipeline -> labelstudio -> settings/netguard -> state -> mining,
objects, vlm, logs -> errors, ids, versions, fields (state keeps the keyword index whose
interface mining declares). A module may import from its own floor or below,
never above; no import cycles between modules; no reaching past the engine into its state
(``engine.store`` and friends) outside ``backend/engine/``; no private name imported from
another module.

Every import counts, wherever it stands: at the top, inside a function (a lazy import is still a
dependency, only a later one) and under ``if TYPE_CHECKING:`` (an annotation still ties a module
to the other's shape, and a "type-only" import that is called at run time hides a real cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "backend"

#: top to bottom; the entry points (aliases, python -m) sit above everything
FLOORS = [
    {"__main__", "commands", "worker", "rq_queue", "offline"},
    {"server"},
    {"jobs"},
    {"engine"},
    {"pipeline"},
    {"labelstudio"},
    {"settings", "netguard"},
    {"state"},
    {"mining", "objects", "vlm", "logs"},
    {"errors", "ids", "versions", "fields"},
]
FLOOR = {unit: n for n, units in enumerate(FLOORS) for unit in units}
ENGINE_PARTS = {"store", "index", "coord", "redis", "miner", "state"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported backend module, names taken from it, line) for every import of the module:
    top-level, function-level and type-only alike."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            for n in names:  # "from . import writeback" imports a module
                if f"{target}.{n}" in modules:
                    found.append((f"{target}.{n}", [], node.lineno))
            if target in modules:
                found.append((target, [n for n in names if f"{target}.{n}" not in modules], node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    found.append((a.name, [], node.lineno))
    return found


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_of_the_package_has_a_floor():
    units = {_unit(m) for m in _modules()} - {"__init__"}
    assert units <= set(FLOOR), f"give these a floor in FLOORS: {sorted(units - set(FLOOR))}"


def test_no_module_imports_from_a_floor_above_its_own():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        if name == "backend":
            continue
        for target, _, line in _imports(name, path, modules):
            if target != "backend" and FLOOR[_unit(target)] < FLOOR[_unit(name)]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycles():
    modules = _modules()
    graph = {name: {t for t, _, _ in _imports(name, path, modules) if t != name} for name, path in modules.items()}
    # a package's __init__ is imported on the way to its submodules: count that edge too
    for name in list(graph):
        parent = name.rsplit(".", 1)[0]
        if parent in graph and parent != name and name != "backend":
            graph[name].add(parent)
    graph["backend"] = set()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package's __init__ importing its own submodule
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [nxt]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, [node]):
            break
    assert not cycle, " -> ".join(cycle)


def test_nothing_outside_the_engine_reaches_into_its_state():
    offending = []
    for name, path in _modules().items():
        if name.startswith("backend.engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ENGINE_PARTS:
                owner = ast.unparse(node.value)
                if owner == "engine" or owner.endswith(".engine"):
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{node.attr}")
    assert not offending, "\n".join(offending)


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    private = []
    for name, path in modules.items():
        for target, names, line in _imports(name, path, modules):
            private += [f"{path.relative_to(ROOT)}:{line} {target}.{n}" for n in names
                        if n.startswith("_") and target != name]
    assert not private, "\n".join(private)


def test_the_root_model_is_handed_in_never_imported_by_the_package():
    for path in _modules().values():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module not in ("model", "_wsgi"), f"{path} imports the root {node.module}"


def test_no_test_module_imports_another():
    """Shared data and fixtures live in tests/support/ (and conftest.py), never in a test module."""
    offending = []
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offending += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[-1].startswith("test_") or n.startswith("tests.test_")]
    assert not offending, "\n".join(offending)
