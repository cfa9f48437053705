"""The layout promises of docs/architecture.md: small modules, no import cycle among module-level imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"sepipe": REPO / "pipeline", "sepipe.models": REPO / "models"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _top_level_imports(module: str, path: Path) -> set[str]:
    """sepipe modules imported at module level (not inside functions: those are lazy on purpose)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:   # relative import
                base = ".".join(module.split(".")[:-node.level] + [node.module])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in names if name in MODULES and name != module}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_400_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(REPO)} has {lines} lines; split it along a seam"


def test_there_is_no_import_cycle_among_module_level_imports():
    graph = {module: _top_level_imports(module, path) for module, path in MODULES.items()}
    # a package's __init__ importing its own submodules is not a cycle of design: drop parent -> child edges
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_registries_list_every_existing_kind():
    from sepipe.compress import COMPRESSORS
    from sepipe.engine.executors import EXECUTORS
    from sepipe.models import FAMILIES
    from sepipe.quantize.schemes import SCHEMES
    from sepipe.runtime import RUNNERS

    assert FAMILIES.names() == ["gru", "lstm", "nsnet2_exits"]
    assert COMPRESSORS.names() == ["ptq", "weight", "block", "unit", "offline", "cluster", "exit"]
    assert SCHEMES.names() == ["int8", "int16x8", "mixed"]
    assert RUNNERS.names() == ["float", "tflite", "tflm"]
    assert EXECUTORS.names() == ["local", "ray"]
