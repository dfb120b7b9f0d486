"""Sphinx fix-ups for the course book, loaded by ``_config.yml`` (``sphinx.local_extensions``).

Every page of the book threw ``SyntaxError: Identifier 'THEBE_JS_URL' has already been
declared`` in the browser (found by tests/test_book_browser.py). Sphinx 7.4 writes an inline
script that an extension registers with ``app.add_js_file(None, body=...)`` after the HTML
builder started into each page twice: once under the name ``None`` and once, when it adds
the registry's scripts again before writing, under ``''``, which do not compare equal.
sphinx-thebe declares ``const THEBE_JS_URL`` in such a script, and a second ``const`` of the
same name is an error. This extension drops the repeated copies from each page's scripts.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath


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
    # After the other extensions' handlers, which may add per-page scripts.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    # After sphinx-book-theme's launch buttons (priority 501).
    app.connect("html-page-context", open_learners_copies, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
