"""Imports run one way: no module of `model`, `workbench` or `db` imports, directly or through others, a module
that imports it back. Function-level and type-only imports count too (read with ast, nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "workbench", "db")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import name refers to (``a.b.c`` may be module ``a.b`` + attribute ``c``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module `name` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]  # falls back to `base` itself
        else:
            continue
        found |= {m for t in targets if (m := resolve(t, modules)) and m != name}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_layers_named_in_the_docs_point_down() -> None:
    graph = import_graph()
    below = {
        "model.loading": {"model.pipeline", "model.weights", "model.tiny"},
        "model.pipeline": {"model.weights", "model.sampling", "model.image_input"},
        "model.weights": {"model.checkpoints", "model.key_mapping"},
        "model.inspection": {"model.checkpoints", "model.lora", "model.weights"},
        "model.lora": {"model.checkpoints"},
        "workbench.service": {"workbench.study_frames", "workbench.export"},
        "workbench.export": {"workbench.study_frames"},
    }
    for upper, lowers in below.items():
        assert lowers <= graph[upper], (upper, lowers - graph[upper])
        for lower in lowers:
            assert upper not in graph[lower], f"{lower} imports {upper}"


def test_the_checker_sees_function_level_and_relative_imports(tmp_path) -> None:
    """Negative control: a lazy import back up the stack is a cycle."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert cycles(graph) == [["a", "b"]]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "c.py").write_text("from .d import y\n")
    modules = {"pkg.c": tmp_path / "pkg" / "c.py", "pkg.d": tmp_path / "pkg" / "d.py"}
    assert imports_of("pkg.c", modules["pkg.c"], modules) == {"pkg.d"}
