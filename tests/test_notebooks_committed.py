"""The committed notebooks and the book: clean outputs, a table of contents that matches,
and a build with no warnings.

nbval (``--nbval-lax``) re-executes the notebooks themselves; these tests check what the
book *shows*: the outputs stored in the files, which must come from one clean top-to-bottom
run, because the book does not execute anything (``execute_notebooks: "off"``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
HIDDEN_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell"}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _code_cells(path: Path) -> list[dict]:
    return [c for c in _cells(path) if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_come_from_one_clean_sequential_run(path):
    counts = [c.get("execution_count") for c in _code_cells(path)]
    expected = list(range(1, len(counts) + 1))
    assert counts == expected, (
        f"{path.name}: execution counts {counts} are not 1..{len(counts)}; re-run the "
        "notebook top to bottom in a fresh kernel (benchmarks/course_time.py --write).")
    for i, cell in enumerate(_code_cells(path), start=1):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: code cell {i} has an error output: {errors[0]}"
        streams = "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                          if o.get("output_type") == "stream")
        assert "Traceback" not in streams, f"{path.name}: code cell {i} printed a traceback"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_run_used_the_standard_profile(path):
    """The book quotes the ``standard`` profile's numbers; the first cell says which ran."""
    text = "".join("".join(o.get("text", "")) for c in _code_cells(path)
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    match = re.search(r"profile: (\w+)", text)
    assert match, f"{path.name}: no setup_course() line in the outputs"
    assert match.group(1) == "standard", (
        f"{path.name} was committed from a {match.group(1)!r} run; commit a standard run.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_structure(path):
    cells = _cells(path)
    first = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# "), (
        f"{path.name}: the first cell must be a Markdown title ('# ...') for the book")
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    for heading in ("Learning objectives", "Prerequisites", "Summary", "What to report"):
        assert heading.lower() in markdown.lower(), f"{path.name}: no '{heading}' section"
    code = [_source(c) for c in _code_cells(path)]
    exercises = [s for s in code if "check." in s and "def " not in s]
    assert len(exercises) >= 2, f"{path.name}: fewer than two exercises with feedback"
    checks = [c for c in _code_cells(path)
              if "assert" in _source(c)
              and HIDDEN_TAGS & set(c.get("metadata", {}).get("tags", []))]
    assert checks, f"{path.name}: no hidden check cell asserting the chapter's claims"


def _toc_files() -> list[str]:
    return re.findall(r"file:\s*(\S+)", (REPO_ROOT / "_toc.yml").read_text())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_training_writes_a_run_record(path):
    """After each code cell that trains (``fit(`` or ``train_restoration(``), a run record is
    written (``RunRecord.create``) before the next training: in that cell, in a later one, or
    in a function of the notebook that the cell calls."""
    cells = [_source(c) for c in _code_cells(path)]
    recorders = set(re.findall(r"def (\w+)\(.*?\):(?:\n(?: .*)?)*?\n +RunRecord\.create\(",
                               "\n".join(cells)))
    pending = None
    for i, source in enumerate(cells, start=1):
        trains = re.search(r"(?<![\w.])(fit|train_restoration)\(", source)
        records = "RunRecord.create(" in source or any(f"{n}(" in source for n in recorders)
        if trains and not records:
            assert pending is None, (
                f"{path.name}: code cell {pending} trains, and no run record is written before "
                f"the next training in cell {i}")
            pending = i
        elif records:
            pending = None
    assert pending is None, (
        f"{path.name}: code cell {pending} trains but no run record is written after it "
        "(dlbio_teach.reporting.RunRecord.create(...).save(folder))")


def test_toc_lists_every_notebook_and_only_existing_files():
    listed = _toc_files()
    for name in listed:
        candidates = [REPO_ROOT / f"{name}{ext}" for ext in ("", ".md", ".ipynb")]
        assert any(p.is_file() for p in candidates), f"_toc.yml lists a missing file: {name}"
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in listed, f"{path.name} is not in _toc.yml"


def test_book_builds_without_warnings(built_book):
    """The build itself runs once per session in conftest.py (``built_book``), shared with
    the browser test (tests/test_book_browser.py)."""
    assert built_book.returncode == 0, f"jupyter-book build failed:\n{built_book.log[-4000:]}"
    html = built_book.html
    for path in NOTEBOOKS:
        page = html / "notebooks" / f"{path.stem}.html"
        assert page.is_file(), f"no page built for {path.name}"
        assert "<img" in page.read_text(encoding="utf-8"), f"{page.name} shows no figures"
    assert (html / "index.html").is_file()
