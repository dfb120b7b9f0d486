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


def setup(app):
    """Register the extension with Sphinx."""
    # After the other extensions' handlers, which may add per-page scripts.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
