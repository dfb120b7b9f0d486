"""The learners' copies of the chapters (notebooks/student/): solution cells and outputs
stripped, nothing else; committed up to date; each runs to its first exercise and says
"Not answered yet"; the book's launch buttons open them."""
from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlbio_teach.student_copies import (
    SOLUTION_TAG,
    _main,
    point_colab_badge,
    solution_cells,
    student_copy,
    tag_solution_cells,
    write_student_copies,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COPIES = sorted((REPO_ROOT / "notebooks" / "student").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/org/repo/blob/v1.0.0/notebooks/"


def _code(cell_id, source, *, tags=(), outputs=True):
    metadata = {"execution": {"iopub.status.idle": "2026-01-01T00:00:00Z"}}
    if tags:
        metadata["tags"] = list(tags)
    return {"cell_type": "code", "id": cell_id, "metadata": metadata, "execution_count": 7,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["out\n"]}]
            if outputs else [], "source": source}


def _markdown(cell_id, source):
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source}


def _chapter(*, tagged=True):
    solution_tags = ("hide-input", SOLUTION_TAG) if tagged else ("hide-input",)
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"},
                     "language_info": {"name": "python", "version": "3.11.2"},
                     "widgets": {"application/vnd.jupyter.widget-state+json": {}}},
        "cells": [
            _markdown("title", ["# Chapter 9\n", "\n",
                                f"[![Open in Colab](../book/badge.svg)]({COLAB}09_x.ipynb)\n",
                                "See [the API](../book/api/x.md), [a site](https://e.org/a), "
                                "[below](#two) and ![fig](fig.png)."]),
            _code("imports", "from dlbio_teach.exercises import check"),
            _code("exercise", "answer = ...\ncheck.photon_snr(answer, photons=25)"),
            _code("solution", "# Solution\nanswer = 5.0\ncheck.photon_snr(answer, photons=25)",
                  tags=solution_tags),
            _code("collapsed", "show_figure()", tags=("hide-input",)),   # not a solution
            _markdown("two", "# Solution of the puzzle\nA heading, not a solution cell."),
            _code("later", "print(answer)", outputs=False),
        ]}


# --- the generator ----------------------------------------------------------------------------

def test_student_copy_strips_exactly_the_solution_cells():
    chapter = _chapter()
    before = copy.deepcopy(chapter)
    copied = student_copy(chapter, "09_x.ipynb")
    assert chapter == before, "the chapter itself was changed"
    assert [c["id"] for c in copied["cells"]] == ["title", "imports", "exercise", "collapsed",
                                                 "two", "later"]
    for cell in copied["cells"]:
        assert "execution" not in cell["metadata"]
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    kept = {c["id"]: c for c in copied["cells"]}
    originals = {c["id"]: c for c in chapter["cells"]}
    for cell_id in ("imports", "exercise", "collapsed", "later"):
        assert kept[cell_id]["source"] == originals[cell_id]["source"]
    assert kept["collapsed"]["metadata"]["tags"] == ["hide-input"]
    assert kept["two"] == originals["two"]
    assert set(copied["metadata"]) == {"kernelspec"}      # no widget state, no run's Python
    assert copied["metadata"]["kernelspec"] == chapter["metadata"]["kernelspec"]
    # The copy lives one folder deeper and its badge opens the copy itself.
    title = "".join(kept["title"]["source"])
    assert f"[![Open in Colab](../../book/badge.svg)]({COLAB}student/09_x.ipynb)" in title
    assert ("[the API](../../book/api/x.md), [a site](https://e.org/a), [below](#two) and "
            "![fig](../fig.png).") in title


def test_untagged_solution_fails_clearly():
    with pytest.raises(ValueError, match=r"09_x\.ipynb: cells \[3\] start with '# Solution' "
                                         r"but lack the tag 'solution'.*mark-chapters"):
        student_copy(_chapter(tagged=False), "09_x.ipynb")
    chapter = _chapter()
    chapter["cells"][3]["metadata"]["tags"] = [SOLUTION_TAG]
    with pytest.raises(ValueError, match=r"solution cells \[3\] lack the tag 'hide-input'"):
        solution_cells(chapter)


def test_mark_chapter_tags_solutions_and_points_the_badge():
    chapter = _chapter(tagged=False)
    assert tag_solution_cells(chapter) == 1 and tag_solution_cells(chapter) == 0
    assert chapter["cells"][3]["metadata"]["tags"] == ["hide-input", SOLUTION_TAG]
    assert chapter["cells"][4]["metadata"]["tags"] == ["hide-input"]
    assert solution_cells(chapter) == [3]
    assert point_colab_badge(chapter) and not point_colab_badge(chapter)
    assert f"({COLAB}student/09_x.ipynb)" in "".join(chapter["cells"][0]["source"])
    chapter["cells"][0]["source"] = "# No badge"
    with pytest.raises(ValueError, match="no .*Open in Colab.* badge"):
        point_colab_badge(chapter, "09_x.ipynb")


def _dump(notebook) -> str:
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def test_write_student_copies_and_check(tmp_path, capsys):
    (tmp_path / "09_x.ipynb").write_text(_dump(_chapter()), encoding="utf-8")
    (tmp_path / "student").mkdir()
    gone = tmp_path / "student" / "08_gone.ipynb"
    gone.write_text("{}", encoding="utf-8")
    target = tmp_path / "student" / "09_x.ipynb"
    assert write_student_copies(tmp_path, check=True) == [target, gone]
    assert not target.exists() and gone.exists()          # --check writes nothing
    assert write_student_copies(tmp_path) == [target, gone]
    assert not gone.exists()
    text = target.read_text(encoding="utf-8")
    assert text == _dump(student_copy(_chapter()))         # the chapters' own format
    assert write_student_copies(tmp_path) == [] and write_student_copies(tmp_path, check=True) == []
    assert _main(["--notebooks", str(tmp_path), "student-copies", "--check"]) == 0
    # A changed chapter makes its copy out of date.
    changed = _chapter()
    changed["cells"][2]["source"] = "answer = ...   # a number\ncheck.photon_snr(answer, 25)"
    (tmp_path / "09_x.ipynb").write_text(_dump(changed), encoding="utf-8")
    capsys.readouterr()
    assert _main(["--notebooks", str(tmp_path), "student-copies", "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert target.read_text(encoding="utf-8") == text
    # An untagged solution stops the command with the reason.
    (tmp_path / "09_x.ipynb").write_text(_dump(_chapter(tagged=False)), encoding="utf-8")
    assert _main(["--notebooks", str(tmp_path), "student-copies"]) == 2
    assert "lack the tag 'solution'" in capsys.readouterr().err


# --- the committed copies ---------------------------------------------------------------------

def test_committed_copies_are_up_to_date():
    """``python -m dlbio_teach.exercises student-copies --check`` (as CI runs it)."""
    assert CHAPTERS
    result = subprocess.run([sys.executable, "-m", "dlbio_teach.exercises", "student-copies",
                             "--check"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nRegenerate the copies after changing a chapter: "
        "python -m dlbio_teach.exercises student-copies")
    assert [p.name for p in COPIES] == [p.name for p in CHAPTERS]


def _until_first_exercise(notebook: dict) -> dict:
    """The cells up to and including the first code cell that calls a checker."""
    cells = notebook["cells"]
    first = next(i for i, c in enumerate(cells)
                 if c["cell_type"] == "code" and "check." in "".join(c["source"]))
    return {**notebook, "cells": cells[:first + 1]}


@pytest.mark.needs_mirror
@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_copy_runs_to_its_first_exercise(path, tmp_path, mirror_dir):
    """In the smoke profile and through the data mirror (both set in os.environ by
    conftest.py, which the kernel inherits), in an empty working folder (the chapters write
    runs/ there)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    notebook = nbformat.from_dict(_until_first_exercise(notebook))
    # A kernel of this very Python, as nbval's --nbval-current-env starts for the chapters.
    from jupyter_client import KernelManager
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    kernel = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME,
                           kernel_spec_manager=NbvalKernelspecManager())
    client = nbclient.NotebookClient(notebook, km=kernel, timeout=300,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    last = notebook.cells[-1]
    printed = "".join(o.get("text", "") for o in last.outputs if o["output_type"] == "stream")
    assert "Not answered yet" in printed, (path.name, last.outputs)
    errors = [o for c in notebook.cells for o in c.get("outputs", [])
              if o["output_type"] == "error"]
    assert not errors, errors


# --- the book's launch buttons ----------------------------------------------------------------

def test_launch_buttons_open_the_learners_copy(tmp_path):
    """book/_ext/dlbio_book.py rewrites the Colab and Binder buttons of a chapter whose copy
    exists (a unit test; test_book_pages checks the built book)."""
    spec = importlib.util.spec_from_file_location(
        "dlbio_book", REPO_ROOT / "book" / "_ext" / "dlbio_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    (tmp_path / "notebooks" / "student" / "01_a.ipynb").write_text("{}")
    app = type("App", (), {"srcdir": str(tmp_path)})()
    blob = "https://colab.research.google.com/github/o/r/blob/v1/"

    def buttons(page):
        return {"header_buttons": [
            {"type": "link", "label": "repository", "url": "https://github.com/o/r"},
            {"type": "group", "label": "launch-buttons", "buttons": [
                {"text": "Binder", "url": f"https://mybinder.org/v2/gh/o/r/v1?urlpath=tree/"
                                          f"{page}.ipynb"},
                {"text": "Colab", "url": f"{blob}{page}.ipynb"}]}]}

    context = buttons("notebooks/01_a")
    module.open_learners_copies(app, "notebooks/01_a", "page.html", context, None)
    group = context["header_buttons"][1]["buttons"]
    assert group[0]["url"].endswith("?urlpath=tree/notebooks/student/01_a.ipynb")
    assert group[1]["url"] == f"{blob}notebooks/student/01_a.ipynb"
    assert context["header_buttons"][0]["url"] == "https://github.com/o/r"
    untouched = buttons("notebooks/02_b")                   # no learners' copy
    module.open_learners_copies(app, "notebooks/02_b", "page.html", untouched, None)
    assert untouched == buttons("notebooks/02_b")
