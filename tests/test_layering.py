"""The package's modules import only those before them in the flow that
``dlbio_teach/__init__.py`` lists (DESIGN: data flows one way)."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dlbio_teach"


def _flow() -> list[str]:
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    return re.findall(r":mod:`(\w+)`", doc)


def _imports(module: str, package: Path = PACKAGE) -> set[str]:
    """The package's modules that ``module`` imports, at the top or inside a function
    (lazily): relative (``from .data import``) or absolute (``from dlbio_teach.data
    import``, ``import dlbio_teach.data``) imports, and ``importlib.import_module`` or
    ``runpy.run_module`` with a literal name."""
    tree = ast.parse((package / f"{module}.py").read_text())
    found = set()

    def add(dotted: str) -> None:
        parts = dotted.split(".")
        if parts[0] == "dlbio_teach" and len(parts) > 1:
            found.add(parts[1])

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "dlbio_teach":
                found.update(alias.name for alias in node.names)
            add(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in {"import_module", "run_module"} and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            add(node.args[0].value)
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


def test_imports_are_found_lazy_or_absolute(tmp_path):
    """The check above sees imports inside functions and absolute ones, not only the
    relative imports at the top of a module."""
    (tmp_path / "probe.py").write_text(
        "from .runtime import Profile\n"
        "def f():\n"
        "    from dlbio_teach.mirror import build_mirror\n"
        "    import dlbio_teach.zoo\n"
        "    from dlbio_teach import records\n"
        "    importlib.import_module('dlbio_teach.viz')\n")
    assert _imports("probe", tmp_path) == {"runtime", "mirror", "zoo", "records", "viz"}


def test_data_never_imports_the_mirror():
    """``python -m dlbio_teach.data`` is the mirror's command line, yet the data layer
    must not import the mirror, not even lazily (the two imported each other once)."""
    assert "mirror" not in _imports("data")
    code = ("import sys, dlbio_teach.data; "
            "sys.exit('dlbio_teach.mirror' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
