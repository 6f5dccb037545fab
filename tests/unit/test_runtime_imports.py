"""The on-board runtime's modules import in any order: no cycle hidden behind function-level imports."""

from __future__ import annotations

import ast
from pathlib import Path

import edgepack_runtime

PACKAGE = Path(edgepack_runtime.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every edgepack_runtime module the file imports, at top level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "edgepack_runtime":
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").is_file()}
            elif node.module.startswith("edgepack_runtime."):
                found.add(node.module.split(".")[1])
    return found


def test_the_runtime_module_graph_has_no_cycle() -> None:
    graph = {p.stem: imports_of(p) - {p.stem} for p in PACKAGE.glob("*.py")}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*path, module])}")
        if state.get(module) == 2:
            return
        state[module] = 1
        for other in sorted(graph.get(module, ())):
            visit(other, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])


def test_onnxruntime_sessions_come_from_one_module() -> None:
    makers = sorted(p.name for p in PACKAGE.glob("*.py") if "ort.InferenceSession(" in p.read_text())
    assert makers == ["session.py"]
