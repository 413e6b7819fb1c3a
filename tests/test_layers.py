"""The package's layers: every import points down (or sideways within a layer), and no modules import
each other in a cycle. Parsed from the source with ``ast``, so nothing is imported and every import counts,
including those inside functions. docs/layout.md describes the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

from omni.layers import LAYERS as PACKAGE_LAYERS

ROOT = Path(__file__).resolve().parents[1]

# Lowest first (omni/layers.py, which docs/layout.md describes and docs/layers.png draws). A module belongs to
# the longest prefix listed; a module may import its own layer and below.
LAYERS: list[tuple[str, ...]] = [layer.modules for layer in PACKAGE_LAYERS]


def module_files() -> dict[str, Path]:
    mods = {}
    for path in sorted((ROOT / "omni").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = module_files()


def owner(name: str) -> str:
    """The module an imported name lives in: ``omni.nn.Block`` → ``omni.nn``."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(path: Path) -> set[str]:
    """The omni modules ``path`` imports (``from omni import trace`` → ``omni.trace``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {owner(a.name) for a in node.names if a.name.split(".")[0] == "omni"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "omni":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in MODULES else owner(node.module))
    return found


def layer(module: str) -> int:
    best, rank = "", None
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS in omni/layers.py and docs/layout.md"
    return rank


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def test_imports_point_down():
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in sorted(GRAPH.items()) for b in sorted(targets) if layer(b) > layer(a)]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    # a package's __init__ importing its own submodules is how a package lists its parts, not a cycle
    def edges(a):
        return {b for b in GRAPH[a] if not b.startswith(a + ".")}

    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges(node)):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_imports():
    assert "omni.nn.checks" in GRAPH["omni.models.vision"] or "omni.nn" in GRAPH["omni.models.vision"]
    assert layer("omni.mufun.qa") > layer("omni.mufun.model") and layer("omni.cli") == len(LAYERS) - 1
