"""Each chapter links the API page of every course module it imports.

A chapter's first section ends with a line "*The package's functions imported above are
documented in the API reference:* [`data`](../book/api/data.md), ...". A learner who meets
a function in a chapter finds its page there; a module the chapter imports but does not
list is a dead end.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
API_LINE = "*The package's functions imported above are documented in the API reference:*"
LINK = re.compile(r"\[`(\w+)`\]\(\.\./book/api/(\w+)\.md\)")


def imported_modules(sources: list[str]) -> set[str]:
    """The ``dlbio_teach`` modules (short names) that code cells import from."""
    modules = set()
    for source in sources:
        code = "\n".join(re.sub(r"^(\s*)[%!].*", r"\1pass", line) for line in source.splitlines())
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "dlbio_teach" and len(parts) > 1:
                    modules.add(parts[1])
                elif node.module == "dlbio_teach":
                    modules.update(a.name for a in node.names
                                   if (REPO_ROOT / "dlbio_teach" / f"{a.name}.py").exists())
            elif isinstance(node, ast.Import):
                modules.update(a.name.split(".")[1] for a in node.names
                               if a.name.startswith("dlbio_teach."))
    return modules


def linked_modules(markdown: list[str]) -> set[str] | None:
    """The modules that the chapter's API line links (None: no such line)."""
    lines = [line for text in markdown for line in text.splitlines() if line.startswith(API_LINE)]
    if len(lines) != 1:
        return None
    links = LINK.findall(lines[0])
    assert all(name == page for name, page in links), f"a link names another page: {links}"
    return {name for name, _ in links}


def _cells(path: Path, kind: str) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == kind]


def test_the_reader_sees_a_missing_and_an_extra_link():
    code = ["from dlbio_teach.data import load\nfrom dlbio_teach import readings\n"
            "import dlbio_teach.viz\n%pip install x\n"]
    assert imported_modules(code) == {"data", "readings", "viz"}
    line = f"{API_LINE} [`data`](../book/api/data.md), [`zoo`](../book/api/zoo.md)."
    assert linked_modules(["intro", line]) == {"data", "zoo"}
    assert linked_modules(["no line here"]) is None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_links_the_api_page_of_every_module_it_imports(path):
    imported = imported_modules(_cells(path, "code"))
    linked = linked_modules(_cells(path, "markdown"))
    assert linked is not None, f"{path.name}: no single line starting {API_LINE!r}"
    for module in imported | linked:
        assert (REPO_ROOT / "book" / "api" / f"{module}.md").is_file(), module
    assert imported == linked, (
        f"{path.name}: imports {sorted(imported - linked)} without linking their API pages, "
        f"and links {sorted(linked - imported)} that it does not import; the line should list "
        f"{sorted(imported)}")
