"""The committed notebooks and the book: clean outputs, a table of contents that matches,
and a build with no warnings.

nbval (``--nbval-lax``) re-executes the notebooks themselves; these tests check what the
book *shows*: the outputs stored in the files, which must come from one clean top-to-bottom
run, because the book does not execute anything (``execute_notebooks: "off"``).
"""
from __future__ import annotations

import ast
import builtins
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


TRAINING_CALLS = {"fit", "train_restoration", "train_segmentation"}
WIDGET_CALLS = {"slider_plot", "compare_viewer", "interact"}


def _tree(path: Path) -> ast.Module:
    """The notebook's code cells as one module (IPython magics and shell lines as ``pass``)."""
    return _parse("\n".join(_source(c) for c in _code_cells(path)))


def _parse(source: str) -> ast.Module:
    """Python source of notebook cells, IPython magics and shell lines read as ``pass``."""
    lines = [line[:len(line) - len(line.lstrip())] + "pass"
             if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def _called_name(node: ast.Call) -> str | None:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _defined_functions(tree: ast.Module) -> dict:
    """Top-level ``def`` and ``name = lambda`` of a notebook: name -> node."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            found.update({t.id: node.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def _free_names(function) -> set:
    """Names a function reads that are neither its parameters nor assigned inside it."""
    args = function.args
    bound = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
    bound |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    loaded = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound - set(dir(builtins))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_training_writes_a_run_record(path):
    """Every call that trains (``fit``, ``train_restoration``, ``train_segmentation``) is
    given ``run_dir=``, so that it writes a run record beside the weights (a method such as
    ``ShiftDetector().fit`` trains no network)."""
    missing = [f"line {node.lineno}: {_called_name(node)}(...)"
               for node in ast.walk(_tree(path))
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
               and node.func.id in TRAINING_CALLS
               and "run_dir" not in {k.arg for k in node.keywords}]
    assert not missing, f"{path.name}: trainings without run_dir=: {missing}"


def test_no_two_notebooks_define_a_function_of_the_same_name():
    """A notebook defines a function only where writing it is the lesson, and only once in
    the course; everything else lives in the package."""
    owners = {}
    for path in NOTEBOOKS:
        for name in _defined_functions(_tree(path)):
            owners.setdefault(name, []).append(path.name)
    repeated = {name: where for name, where in owners.items() if len(where) > 1}
    assert not repeated, f"functions defined in several notebooks: {repeated}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_functions_read_no_globals_they_were_not_given(path):
    """A notebook function may use imported names and the notebook's other functions, and
    nothing else of the notebook: copied into a project alone, it works or fails loudly.
    Only a widget's callback (the function given to ``slider_plot``...) may read the
    notebook's variables."""
    tree = _tree(path)
    functions = _defined_functions(tree)
    imported = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    callbacks = {node.args[0].id for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and _called_name(node) in WIDGET_CALLS
                 and node.args and isinstance(node.args[0], ast.Name)}
    reading = {name: sorted(_free_names(f) - imported - set(functions))
               for name, f in functions.items() if name not in callbacks}
    reading = {name: names for name, names in reading.items() if names}
    assert not reading, f"{path.name}: functions that read notebook variables: {reading}"


def _answer_names(source: str) -> set:
    """Names an exercise cell leaves for the learner: ``name = ...``."""
    tree = _parse(source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and node.value.value is Ellipsis
            for t in node.targets if isinstance(t, ast.Name)}


def _loaded_names(source: str) -> set:
    tree = _parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_later_cell_depends_on_a_learners_answer(path):
    """A learner's answer (``answer = ...``) feeds only its own check: in the learners'
    copy, where the solution cells are gone, every later cell must run whatever they wrote."""
    cells = [c for c in _code_cells(path) if "solution" not in c.get("metadata", {}).get("tags", [])
             and not _source(c).lstrip().startswith("# Solution")]
    problems = []
    for i, cell in enumerate(cells):
        for name in _answer_names(_source(cell)):
            later = [j for j in range(i + 1, len(cells)) if name in _loaded_names(_source(cells[j]))
                     and name not in _answer_names(_source(cells[j]))]
            if later:
                problems.append(f"{name!r} (answered in code cell {i + 1}) is read by code cell "
                                f"{later[0] + 1}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_function_checks_can_fail():
    """The checks above on a hand-made notebook: a global read and a missing run_dir."""
    tree = ast.parse("import numpy as np\nscale = 2\n"
                     "def f(x):\n    return np.sum(x) * scale\n"
                     "g = lambda y: f(y) + 1\nfit(net, data)\n")
    functions = _defined_functions(tree)
    assert set(functions) == {"f", "g"}
    assert _free_names(functions["f"]) - {"np"} == {"scale"}
    assert _free_names(functions["g"]) == {"f"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _called_name(n) == "fit"]
    assert calls and not calls[0].keywords


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_widget_state_is_committed(path):
    """Saved widget state makes the static book load the widget manager from a CDN; the
    outputs the book shows are static (``DLBIO_WIDGETS=0``), so none is kept."""
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert "widgets" not in metadata, f"{path.name} holds widget state (course_time.py drops it)"
