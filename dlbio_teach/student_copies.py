"""The learners' copies of the chapters: without solutions, opened by the Colab badges.

A chapter's solution cells carry the cell tag ``solution`` (and ``hide-input``, which
collapses them in the book). :func:`student_copy` drops them and every output, and the
command line writes such a copy of each chapter to ``notebooks/student/``, the notebooks
that the chapters' "Open in Colab" badges open::

    python -m dlbio_teach.exercises mark-chapters           # tag solutions, point badges
    python -m dlbio_teach.exercises student-copies          # (re)write notebooks/student/
    python -m dlbio_teach.exercises student-copies --check  # exit 1 if a copy is stale

(``python -m dlbio_teach.student_copies`` runs the same command line.) The checks of the
exercises, ``check.<exercise>(answer)``, are in :mod:`dlbio_teach.exercises`.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

__all__ = ["SOLUTION_TAG", "solution_cells", "student_copy", "tag_solution_cells",
           "point_colab_badge", "write_student_copies"]


#: The cell tag that marks a solution cell; :func:`student_copy` drops those cells.
SOLUTION_TAG = "solution"
_COLLAPSED_TAG = "hide-input"
_SOLUTION_START = re.compile(r"#\s*Solution\b")
_CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
_STUDENT_DIR = "student"
# [![Open in Colab](image)](https://colab.research.google.com/github/ORG/REPO/blob/REF/
# notebooks/[student/]NAME.ipynb)
_BADGE = re.compile(r"(\[!\[Open in Colab\]\([^)]+\)\]\("
                    r"https://colab\.research\.google\.com/github/\S+?/notebooks/)"
                    r"(?:student/)?([^/)\s]+\.ipynb)\)")
# A Markdown link or image whose target is a relative path (not a URL, not an anchor).
_RELATIVE_LINK = re.compile(r"(\]\()(?![a-zA-Z][a-zA-Z0-9+.-]*:|#|/)([^)\s]+\))")


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _set_source(cell, text: str) -> None:
    """Set a changed source, kept as one string or as a list of lines, as it was."""
    if text != _source(cell):
        source = cell.get("source", "")
        cell["source"] = text if isinstance(source, str) else text.splitlines(keepends=True)


def _tags(cell) -> list:
    return cell.get("metadata", {}).get("tags", [])


def solution_cells(notebook: dict, name: str = "notebook") -> list[int]:
    """Indices of the solution cells of a notebook: the cells tagged ``solution``.

    Parameters
    ----------
    notebook : dict
        The notebook, as ``json.load`` (or ``nbformat.read``) returns it.
    name : str, optional
        How error messages call the notebook.

    Returns
    -------
    list of int

    Raises
    ------
    ValueError
        If a cell starts with ``# Solution`` but lacks the ``solution`` tag (it would stay
        in the learners' copy), or a solution cell lacks ``hide-input`` (the book would
        show it open).
    """
    found, untagged, open_in_book = [], [], []
    for i, cell in enumerate(notebook["cells"]):
        tags = _tags(cell)
        if SOLUTION_TAG in tags:
            found.append(i)
            if _COLLAPSED_TAG not in tags:
                open_in_book.append(i)
        elif cell["cell_type"] == "code" and _SOLUTION_START.match(_source(cell).lstrip()):
            untagged.append(i)
    problems = []
    if untagged:
        problems.append(f"cells {untagged} start with '# Solution' but lack the tag "
                        f"{SOLUTION_TAG!r}")
    if open_in_book:
        problems.append(f"solution cells {open_in_book} lack the tag {_COLLAPSED_TAG!r} "
                        "that collapses them in the book")
    if problems:
        raise ValueError(f"{name}: " + "; ".join(problems) + ". Tag them (python -m "
                         "dlbio_teach.exercises mark-chapters) or edit the cells.")
    return found


def student_copy(notebook: dict, name: str = "notebook") -> dict:
    r"""The learners' copy of a chapter: without solution cells, outputs or run metadata.

    Every other cell is kept as it is, except that relative links in Markdown gain a
    ``../`` (the copy lives in ``notebooks/student/``) and the "Open in Colab" badge opens
    the copy itself.

    Parameters
    ----------
    notebook : dict
        The chapter, as ``json.load`` (or ``nbformat.read``) returns it; left unchanged.
    name : str, optional
        How error messages call the notebook.

    Returns
    -------
    dict
        A new notebook.

    Raises
    ------
    ValueError
        From :func:`solution_cells`, if the solutions are not tagged as they should be.

    Examples
    --------
    >>> chapter = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
    ...     {"cell_type": "code", "id": "q", "metadata": {}, "execution_count": 3,
    ...      "outputs": [{"output_type": "stream", "name": "stdout", "text": "Not yet"}],
    ...      "source": "answer = ...\ncheck.photon_snr(answer, photons=25)"},
    ...     {"cell_type": "code", "id": "s", "metadata": {"tags": ["hide-input", "solution"]},
    ...      "execution_count": 4, "outputs": [], "source": "# Solution\nanswer = 5.0"}]}
    >>> [(c["id"], c["execution_count"], c["outputs"]) for c in student_copy(chapter)["cells"]]
    [('q', None, [])]
    """
    drop = set(solution_cells(notebook, name))
    result = copy.deepcopy(notebook)
    for key in ("widgets", "language_info"):              # widget state, the run's Python
        result.get("metadata", {}).pop(key, None)
    cells = []
    for i, cell in enumerate(result["cells"]):
        if i in drop:
            continue
        cell.get("metadata", {}).pop("execution", None)  # run timestamps
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            text = _RELATIVE_LINK.sub(r"\1../\2", _source(cell))
            _set_source(cell, _BADGE.sub(rf"\1{_STUDENT_DIR}/\2)", text))
        cells.append(cell)
    result["cells"] = cells
    return result


def _read_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _notebook_text(notebook: dict) -> str:
    """As Jupyter and nbformat write notebooks: sorted keys, indent 1, a final newline."""
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _write_if_changed(path: Path, notebook: dict) -> bool:
    text = _notebook_text(notebook)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def tag_solution_cells(notebook: dict) -> int:
    """Tag as solutions (``solution`` and ``hide-input``) the cells starting with
    ``# Solution``, in place.

    Parameters
    ----------
    notebook : dict
        A chapter, changed in place.

    Returns
    -------
    int
        The number of cells that gained a tag.
    """
    changed = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and _SOLUTION_START.match(_source(cell).lstrip()):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            missing = [t for t in (_COLLAPSED_TAG, SOLUTION_TAG) if t not in tags]
            tags.extend(missing)
            changed += bool(missing)
    return changed


def point_colab_badge(notebook: dict, name: str = "notebook") -> bool:
    """Let the "Open in Colab" badge of a chapter's first cell open its learners' copy
    (``notebooks/student/<chapter>.ipynb``), in place.

    Parameters
    ----------
    notebook : dict
        A chapter, changed in place.
    name : str, optional
        How error messages call the notebook.

    Returns
    -------
    bool
        Whether the badge changed.

    Raises
    ------
    ValueError
        If the first cell has no "Open in Colab" badge.
    """
    cell = notebook["cells"][0]
    text = _source(cell)
    if not _BADGE.search(text):
        raise ValueError(f"{name}: the first cell has no '[![Open in Colab](...)](...)' badge")
    new = _BADGE.sub(rf"\1{_STUDENT_DIR}/\2)", text)
    _set_source(cell, new)
    return new != text


def _default_notebooks() -> Path:
    return Path(__file__).resolve().parents[1] / "notebooks"


def write_student_copies(notebooks: str | Path | None = None, *,
                         check: bool = False) -> list[Path]:
    """Write the learners' copy of every chapter ``notebooks/NN_*.ipynb`` to
    ``notebooks/student/``, or with ``check=True`` only list those out of date.

    The files are written as the chapters are (sorted keys, indent 1, final newline), so
    that the same chapters always give the same bytes; a copy whose chapter is gone is
    deleted.

    Parameters
    ----------
    notebooks : str or Path, optional
        The chapters' folder; default ``notebooks/`` of the repository.
    check : bool, optional
        Write nothing; return the copies that are missing, different or left over.

    Returns
    -------
    list of Path
        The copies written or deleted (``check=False``) or out of date (``check=True``).
    """
    folder = Path(notebooks) if notebooks is not None else _default_notebooks()
    chapters = sorted(folder.glob(_CHAPTER_GLOB))
    if not chapters:
        raise FileNotFoundError(f"no chapters {_CHAPTER_GLOB} in {folder}")
    out = folder / _STUDENT_DIR
    expected = {out / p.name: _notebook_text(student_copy(_read_notebook(p), p.name))
                for p in chapters}
    stale = [p for p, text in expected.items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    leftover = sorted(set(out.glob(_CHAPTER_GLOB)) - set(expected))
    if not check:
        out.mkdir(exist_ok=True)
        for path in stale:
            path.write_text(expected[path], encoding="utf-8")
        for path in leftover:
            path.unlink()
    return stale + leftover


def _mark_chapters(folder: Path) -> int:
    for path in sorted(folder.glob(_CHAPTER_GLOB)):
        notebook = _read_notebook(path)
        tagged = tag_solution_cells(notebook)
        badge = point_colab_badge(notebook, path.name)
        if _write_if_changed(path, notebook):
            print(f"{path}: {tagged} solution cells tagged"
                  + ("; badge opens the learners' copy" if badge else ""))
    return 0


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlbio_teach.exercises",
        description="The learners' copies of the chapters: without solutions or outputs.")
    parser.add_argument("--notebooks", type=Path, default=None,
                        help="the chapters' folder (default: notebooks/ of the repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    copies = sub.add_parser("student-copies", help="write notebooks/student/<chapter>.ipynb")
    copies.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a copy is out of date")
    sub.add_parser("mark-chapters",
                   help="tag the cells starting with '# Solution' (solution, hide-input) and "
                        "let each chapter's Colab badge open its learners' copy")
    args = parser.parse_args(argv)
    folder = args.notebooks or _default_notebooks()
    if args.command == "mark-chapters":
        return _mark_chapters(folder)
    try:
        paths = write_student_copies(folder, check=args.check)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    for path in paths:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    if args.check and paths:
        print("Regenerate them: python -m dlbio_teach.exercises student-copies",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
