"""Sphinx fix-ups for the course book, loaded by ``_config.yml`` (``sphinx.local_extensions``).

The landing page's figures: before Sphinx reads a page, :func:`write_landing_figures`
copies, from each chapter's committed outputs, the figure of its cell tagged
``landing-figure`` into ``book/_generated/landing/<chapter>.png`` (gitignored), which
``book/intro.md`` shows. Re-running a chapter refreshes its figure at the next build; a
chapter without such a cell stops the build with an error that says so.

The repeated scripts: every page of the book threw ``SyntaxError: Identifier 'THEBE_JS_URL'
has already been declared`` in the browser (found by tests/test_book_browser.py). Sphinx 7.4
writes an inline script that an extension registers with ``app.add_js_file(None, body=...)``
after the HTML builder started into each page twice: once under the name ``None`` and once,
when it adds the registry's scripts again before writing, under ``''``, which do not compare
equal. sphinx-thebe declares ``const THEBE_JS_URL`` in such a script, and a second ``const``
of the same name is an error. This extension drops the repeated copies from each page's
scripts.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path, PurePosixPath

from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

#: The tag of the one cell of each chapter whose figure the landing page shows.
LANDING_TAG = "landing-figure"
#: Where the figures go, relative to the book's root (gitignored).
LANDING_DIR = "book/_generated/landing"
#: The chapters: every numbered notebook of ``notebooks/``.
CHAPTERS = "notebooks/[0-9][0-9]_*.ipynb"


class LandingFigureError(ExtensionError):
    """A chapter has no usable ``landing-figure`` cell."""


def landing_figure(path: Path) -> bytes:
    """The PNG of the cell tagged ``landing-figure`` in the notebook at ``path``.

    Exactly one cell must carry the tag, and its outputs must hold an ``image/png`` (the
    first one is taken): the figure as the chapter's committed run drew it.

    Raises
    ------
    LandingFigureError
        When no cell or several cells carry the tag, or the tagged cell drew no figure.
    """
    path = Path(path)
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [i for i, cell in enumerate(cells)
              if LANDING_TAG in (cell.get("metadata", {}).get("tags") or [])]
    how = (f"tag the one code cell whose figure shows the chapter's result with "
           f"'{LANDING_TAG}' (cell metadata: \"tags\": [\"{LANDING_TAG}\"]); the landing "
           "page (book/intro.md) shows that figure")
    if not tagged:
        raise LandingFigureError(f"{path.name}: no cell is tagged '{LANDING_TAG}': {how}")
    if len(tagged) > 1:
        raise LandingFigureError(f"{path.name}: cells {tagged} are all tagged "
                                 f"'{LANDING_TAG}'; keep the tag on one: {how}")
    for output in cells[tagged[0]].get("outputs") or []:
        png = (output.get("data") or {}).get("image/png")
        if png:
            return base64.b64decode("".join(png) if isinstance(png, list) else png)
    raise LandingFigureError(
        f"{path.name}: cell {tagged[0]}, tagged '{LANDING_TAG}', has no image/png output: "
        "run the chapter with its outputs saved (python benchmarks/course_time.py "
        f"--profile standard --write), or {how}")


def write_landing_figures(app) -> None:
    """Write each chapter's landing figure into ``LANDING_DIR`` (only where it changed, so
    that an unchanged figure does not make Sphinx rebuild the landing page)."""
    root = Path(app.srcdir)
    chapters = sorted(root.glob(CHAPTERS))
    if not chapters:
        raise LandingFigureError(f"no chapters ({CHAPTERS}) under {root}")
    folder = root / LANDING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for path in chapters:
        png = landing_figure(path)
        target = folder / f"{path.stem}.png"
        if not target.is_file() or target.read_bytes() != png:
            target.write_bytes(png)
            LOGGER.info(f"landing figure: {target.relative_to(root)}")


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", script) or "",
            tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of scripts that have the same file (or body) and attributes."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept   # in place: the builder restores its own list after each page


def open_learners_copies(app, pagename, templatename, context, doctree) -> None:
    """Let a chapter's Colab and Binder launch buttons open its learners' copy.

    sphinx-book-theme builds each launch URL from the page's own path
    (``.../notebooks/01_nn_basics.ipynb``), and no setting changes it per page. The
    learners' copy of a chapter, without solutions, is ``notebooks/student/<chapter>.ipynb``
    (``python -m dlbio_teach.exercises student-copies``); where it exists, the Colab and
    Binder buttons open it instead, like the chapter's "Open in Colab" badge.
    """
    page = PurePosixPath(pagename)
    copy = f"{page.parent}/student/{page.name}.ipynb"
    if not (Path(app.srcdir) / copy).is_file():
        return
    for group in context.get("header_buttons") or []:
        if not isinstance(group, dict) or group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            url = button.get("url") or ""
            if button.get("text") in ("Colab", "Binder") and url.endswith(f"{pagename}.ipynb"):
                button["url"] = url[:-len(f"{pagename}.ipynb")] + copy


def setup(app):
    """Register the extension with Sphinx."""
    # Before any page is read: book/intro.md shows these files.
    app.connect("builder-inited", write_landing_figures)
    app.add_css_file("dlbio-landing.css")
    # After the other extensions' handlers, which may add per-page scripts.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    # After sphinx-book-theme's launch buttons (priority 501).
    app.connect("html-page-context", open_learners_copies, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
