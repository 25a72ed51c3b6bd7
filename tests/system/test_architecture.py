"""The house's rules that ``lint-imports`` (layers, independence) does not state: no private name
crosses a subpackage, no import cycle between modules (function-level imports count), compiled
modules are reached only through the engine, and no module grows past ~500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

from conftest import ROOT

PACKAGE = ROOT / "grouper"
MAX_LINES = 500
#: Modules allowed past MAX_LINES, with the reason (keep this empty or short).
LONG_MODULES: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every ``grouper`` name imported anywhere in the file (module.name), with its line."""
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "grouper"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] == "grouper":
                found += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def _subpackage(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_private_name_crosses_a_subpackage():
    bad = []
    for module, path in _modules().items():
        for name, line in _imports(path, module):
            parts = name.split(".")
            if _subpackage(name) == _subpackage(module) or len(parts) < 3:
                continue
            private = [p for p in parts[2:] if p.startswith("_") and not p.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not bad, "private names imported from another subpackage:\n" + "\n".join(bad)


def test_compiled_modules_are_reached_only_through_the_engine():
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
           for module, path in _modules().items() if _subpackage(module) != "engine"
           for name, line in _imports(path, module)
           if any(p in ("_kernel", "_codes") for p in name.split("."))]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = grimp.build_graph("grouper", exclude_type_checking_imports=True)  # those never run
    modules = sorted(graph.modules)
    # grimp sees only .py files: an import of a compiled module (engine._kernel) is recorded as an
    # import of its package; that is not a cycle, so such edges are dropped
    compiled = {".".join(p.relative_to(PACKAGE.parent).parts[:-1] + (p.name.split(".")[0],))
                for p in PACKAGE.rglob("*") if p.suffix in (".so", ".pyd")}

    def real(importer: str, imported: str) -> bool:
        if not importer.startswith(imported + "."):
            return True
        details = graph.get_import_details(importer=importer, imported=imported)
        return not all(any(c in d["line_contents"] for c in compiled) for d in details)

    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if real(m, i)) for m in modules}
    # Tarjan's strongly connected components, iterative
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop(); on_stack.discard(m); comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                stack.append(nxt); on_stack.add(nxt)
                work.append((nxt, iter(edges.get(nxt, ()))))
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
    assert not comps, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in comps)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_size(module):
    path = _modules()[module]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if module in LONG_MODULES:
        return
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (split it by job)"
