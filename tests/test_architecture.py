"""The layering of docs/ARCHITECTURE.md, checked on the source: no import cycles, and method
packages reach each other only through the core."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "inrkit"
CORE = {"errors", "registry", "limits", "utils", "metrics", "runner", "models", "signals", "train", "prune"}
METHODS = {"adapt", "compress", "meta", "amr", "nerf"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every inrkit module ``path`` imports, at any level (lazy imports inside functions included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("inrkit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("inrkit"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        # an import of a package's own submodule from the package __init__ is the package, not a cycle
        graph[name] = {t for t in _imports(path) if t in files and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles between modules, ignoring edges into a package's own ``__init__`` from its members."""
    def skip(src: str, dst: str) -> bool:
        return src.startswith(dst + ".")  # a submodule importing its parent package's names

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if skip(v, w) or skip(w, v):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_method_packages_use_only_the_core():
    bad = []
    for name, targets in _graph().items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in METHODS:
            continue
        for target in targets:
            top = target.split(".")[1] if "." in target else ""
            if top in METHODS and top != parts[1]:
                bad.append(f"{name} -> {target}")
    assert bad == []


def test_core_does_not_import_methods_or_cli():
    bad = []
    for name, targets in _graph().items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in CORE:
            continue
        bad += [f"{name} -> {t}" for t in targets if t.count(".") and t.split(".")[1] in METHODS | {"cli", "api"}]
    assert bad == []
