"""The package's modules import only those before them in the flow that
``dlbio_teach/__init__.py`` lists (DESIGN: data flows one way)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dlbio_teach"


def _flow() -> list[str]:
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    return re.findall(r":mod:`(\w+)`", doc)


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found - {"__version__"}


def test_the_flow_lists_every_module_once():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert sorted(_flow()) == modules


def test_no_module_imports_one_after_it():
    flow = _flow()
    free = {"viz", "widgets", "exercises"}   # may read from any layer
    backwards = {m: sorted(i for i in _imports(m) if i in flow and i not in free
                           and flow.index(i) > flow.index(m))
                 for m in flow if m not in free}
    backwards = {m: v for m, v in backwards.items() if v}
    assert not backwards, f"modules importing a later layer: {backwards}"
