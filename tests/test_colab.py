"""Every chapter runs as Colab runs it: installed by its own first cell, from a wheel.

On Colab a chapter's first code cell installs the course (``%pip install "dlbio-teach @
git+...@vX.Y.Z"``, with the extras that chapter needs, such as ``[zoo]``) into Colab's
Python, which brings PyTorch and Jupyter but none of the course's other dependencies. The
editable ``[dev]`` install of the other tests has everything, so a chapter that needs an
extra its cell does not install passes there and stops on Colab. Two checks:

* **static** (every run): the extras a chapter's Colab cell installs are the extras its
  code needs: a course function that imports an extra's package (``zoo.run_core_tests``
  imports ``bioimageio.core``, the ``zoo`` extra), directly or through another course
  function, or an import of it in a cell;
* **the chapters from the wheel** (``DLBIO_COLAB_PYTHON``): the wheel of this tree is built,
  each chapter's Colab requirement is installed with the git URL replaced by the wheel's
  ``file://`` URL (same pip arguments, same extras) into the environment that
  ``DLBIO_COLAB_PYTHON`` names, and the chapter runs top to bottom in the ``smoke`` profile
  in a kernel of that Python, from an empty folder outside the clone, with inline figures
  (as on Colab; widgets off, as in the book), its data through the mirror that
  tests/conftest.py serves (without ``../shared/data-mirror``, from the internet). Chapters whose
  cells install fewer extras run first (``[zoo]`` cannot be uninstalled). The kernel must
  import ``dlbio_teach`` from that environment's site-packages, installed from the wheel.

  That environment must be fresh and hold only what Colab brings along (``.ci/run``'s colab
  job makes it)::

      python3.12 -m venv /tmp/colab
      /tmp/colab/bin/python -m pip install torch ipykernel nbclient nbformat ipywidgets pytest
      DLBIO_COLAB_PYTHON=/tmp/colab/bin/python python -m pytest tests/test_colab.py

  It is used up by the run (the course is installed into it). Without the variable these
  tests are skipped.
"""
from __future__ import annotations

import ast
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import dlbio_teach

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "dlbio_teach"
CHAPTERS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPOSITORY = "https://github.com/dlbio-teach/dlbio-teach"
COLAB_PYTHON = (3, 12)
# What Colab brings along besides Python: PyTorch, and Jupyter with ipywidgets (the
# course's widgets import ipywidgets only when a front end can show them). Here, also what
# executes the notebooks (nbclient, nbformat) and pytest.
COLAB_BRINGS = ("torch", "ipykernel", "ipywidgets", "nbclient", "nbformat", "pytest")
# Import names of extras' requirements that differ from the requirement's name.
IMPORT_NAMES = {"tensorflow-cpu": "tensorflow", "jupyter-book": "jupyter_book"}
ENV_VARIABLE = "DLBIO_COLAB_PYTHON"
CELL_TIMEOUT = 600   # seconds per cell (smoke cells take seconds to a minute)


# --- the Colab cell: what it installs ------------------------------------------------------

def first_code_cell(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, f"{path.name}: no code cell"
    return "".join(code[0]["source"])


@contextmanager
def _on_colab():
    """``"google.colab" in sys.modules`` while inside (what the cells test)."""
    added = "google.colab" not in sys.modules
    if added:
        sys.modules["google.colab"] = type(sys)("google.colab")
    try:
        yield
    finally:
        if added:
            del sys.modules["google.colab"]


def colab_pip_arguments(source: str) -> list[str]:
    """The arguments of ``pip`` as the cell runs it on Colab.

    The cell is transformed as IPython transforms it (``%pip ...`` becomes
    ``get_ipython().run_line_magic("pip", ...)``) and run with ``google.colab`` imported;
    IPython's ``%pip`` hands its line to a shell, so it is split as a shell splits it.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    calls = []

    class Shell:
        def run_line_magic(self, name, line, *args):
            calls.append((name, line))

    code = TransformerManager().transform_cell(source)
    with _on_colab():
        exec(compile(code, "<colab cell>", "exec"), {"get_ipython": lambda: Shell()})
    pips = [line for name, line in calls if name == "pip"]
    assert len(pips) == 1, f"the Colab cell should run %pip once, ran {calls}"
    arguments = shlex.split(pips[0])
    assert arguments[:1] == ["install"], arguments
    return arguments


def course_requirement(arguments: list[str]):
    """The ``dlbio-teach`` requirement among pip's arguments (a ``packaging`` Requirement)
    and its position."""
    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    for index, argument in enumerate(arguments):
        if argument.startswith("-"):
            continue
        try:
            requirement = Requirement(argument)
        except InvalidRequirement:
            continue
        if requirement.name.lower().replace("_", "-") == "dlbio-teach":
            found.append((index, requirement))
    assert len(found) == 1, f"one dlbio-teach requirement expected among {arguments}"
    return found[0][1], found[0][0]


def chapter_extras(path: Path) -> frozenset[str]:
    """The extras of the course that a chapter's Colab cell installs."""
    requirement, _ = course_requirement(colab_pip_arguments(first_code_cell(path)))
    return frozenset(requirement.extras)


def wheel_pip_arguments(path: Path, wheel: Path) -> list[str]:
    """The Colab cell's pip arguments with the release's git URL replaced by the wheel."""
    arguments = colab_pip_arguments(first_code_cell(path))
    requirement, index = course_requirement(arguments)
    tag_url = f"git+{REPOSITORY}@v{dlbio_teach.__version__}"
    assert requirement.url == tag_url, (
        f"{path.name}: the Colab cell installs {requirement.url}, not {tag_url}: the wheel of "
        "this tree would not be what it installs")
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f" ; {requirement.marker}" if requirement.marker else ""
    arguments[index] = f"{requirement.name}{extras} @ {wheel.as_uri()}{marker}"
    return arguments


def test_the_colab_requirement_is_read_and_pointed_at_the_wheel(tmp_path):
    pytest.importorskip("IPython", reason="reading the Colab cell needs IPython")
    cell = ('import sys\nif "google.colab" in sys.modules:\n'
            f'    %pip install --quiet "dlbio-teach[zoo,lab] @ git+{REPOSITORY}'
            f'@v{dlbio_teach.__version__}"\n')
    assert colab_pip_arguments(cell) == [
        "install", "--quiet", f"dlbio-teach[zoo,lab] @ git+{REPOSITORY}@v{dlbio_teach.__version__}"]
    chapter = _chapter(tmp_path / "09_x.ipynb", cell, "x = 1")
    assert chapter_extras(chapter) == {"zoo", "lab"}
    wheel = tmp_path / f"dlbio_teach-{dlbio_teach.__version__}-py3-none-any.whl"
    assert wheel_pip_arguments(chapter, wheel) == [
        "install", "--quiet", f"dlbio-teach[lab,zoo] @ {wheel.as_uri()}"]
    assert "google.colab" not in sys.modules
    with pytest.raises(AssertionError, match="not git"):
        wheel_pip_arguments(_chapter(tmp_path / "09_y.ipynb", cell.replace("@v", "@x"), ""),
                            wheel)


# --- static: the extras a chapter's code needs ---------------------------------------------

def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement_name(text: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", text.strip()).group(0).lower()


def extras_modules(pyproject: dict) -> dict[str, set[str]]:
    """For each extra, the modules it makes importable that the plain install and Colab
    do not (``zoo`` -> ``{"bioimageio.core"}``)."""
    base = {_requirement_name(d) for d in pyproject["project"]["dependencies"]}
    base |= set(COLAB_BRINGS)
    extras = {}
    for extra, requirements in pyproject["project"]["optional-dependencies"].items():
        names = {_requirement_name(r) for r in requirements} - base
        extras[extra] = {IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names}
    return extras


def _provides(imported: str, module: str) -> bool:
    return imported == module or imported.startswith(module + ".")


def _falls_back(handler: ast.ExceptHandler) -> bool:
    """An ``except`` that catches a missing module and goes on (does not raise)."""
    caught = handler.type
    names = ([] if caught is None else caught.elts if isinstance(caught, ast.Tuple)
             else [caught])
    catches = caught is None or any(
        isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError",
                                              "Exception", "BaseException"} for n in names)
    return catches and not any(isinstance(n, ast.Raise) for n in ast.walk(handler))


def required_imports(node: ast.AST, modules: set[str], guarded: bool = False) -> set[str]:
    """The modules among ``modules`` that code imports without a fallback (an import in a
    ``try`` whose ``except ImportError`` goes on without it is optional)."""
    if isinstance(node, ast.Try):
        optional = guarded or any(_falls_back(h) for h in node.handlers)
        found = set()
        for child in node.body:
            found |= required_imports(child, modules, optional)
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            found |= required_imports(child, modules, guarded)
        return found
    found = set()
    if not guarded and isinstance(node, (ast.Import, ast.ImportFrom)):
        imported = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""])
        found = {m for m in modules for name in imported if _provides(name, m)}
    for child in ast.iter_child_nodes(node):
        found |= required_imports(child, modules, guarded)
    return found


def _names_used(node: ast.AST) -> set[str]:
    return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)})


def functions_needing(package: Path, modules: set[str]) -> dict[str, set[str]]:
    """The package's functions (by name) that need some of ``modules``: they import one,
    their module does at its top, or they call a function that does."""
    needs, uses = {}, {}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set()
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top |= required_imports(node, modules)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                needs.setdefault(node.name, set()).update(
                    top | required_imports(node, modules))
                uses.setdefault(node.name, set()).update(_names_used(node))
    changed = True
    while changed:   # through the calls between the package's functions
        changed = False
        for name, used in uses.items():
            more = set().union(*(needs[u] for u in used if u in needs and u != name))
            if not more <= needs[name]:
                needs[name] |= more
                changed = True
    return {name: found for name, found in needs.items() if found}


@functools.lru_cache
def _functions_needing(package: Path, modules: frozenset[str]) -> dict[str, set[str]]:
    return functions_needing(package, set(modules))


def _chapter_code(path: Path) -> list[ast.Module]:
    trees = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            # IPython magics (%pip, !ls) are not Python: read them as `pass`.
            source = "\n".join(re.sub(r"^(\s*)[%!].*", r"\1pass", line)
                               for line in "".join(cell["source"]).splitlines())
            trees.append(ast.parse(source))
    return trees


def modules_needed(path: Path, package: Path, modules: set[str]) -> dict[str, set[str]]:
    """The modules among ``modules`` that a chapter's code needs, each with what needs it
    (a course function it calls, or its own import)."""
    needing = _functions_needing(package, frozenset(modules))
    found: dict[str, set[str]] = {}
    for tree in _chapter_code(path):
        for module in required_imports(tree, modules):
            found.setdefault(module, set()).add(f"import {module}")
        for name in _names_used(tree) & set(needing):
            for module in needing[name]:
                found.setdefault(module, set()).add(f"{name}()")
    return found


def install_problems(path: Path, package: Path, extras: dict[str, set[str]]) -> list[str]:
    """What a chapter's Colab cell installs against what its code needs: an extra missing
    (the chapter stops on Colab) or an extra it does not need (a slower install)."""
    installed = chapter_extras(path)
    needed = modules_needed(path, package, set().union(*extras.values()))
    provided = set().union(*(extras.get(e, set()) for e in installed))
    problems = []
    for module, why in sorted(needed.items()):
        if module not in provided:
            fits = sorted((e for e, found in extras.items() if module in found),
                          key=lambda e: (len(extras[e]), e))   # the smallest: zoo, not dev
            problems.append(
                f"{path.name} needs {module} ({', '.join(sorted(why))}), which its Colab cell "
                f"does not install: install \"dlbio-teach[{fits[0] if fits else '?'}] @ ...\"")
    for extra in sorted(installed):
        if extra not in extras:
            problems.append(f"{path.name}: its Colab cell installs an unknown extra [{extra}]")
        elif not extras[extra] & set(needed):
            problems.append(f"{path.name}: its Colab cell installs [{extra}], which none of "
                            "its code needs")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_colab_cell_installs_the_extras_its_chapter_needs(path):
    pytest.importorskip("IPython", reason="reading the Colab cell needs IPython")
    extras = extras_modules(_pyproject())
    assert extras.get("zoo") == {"bioimageio.core"}, extras
    assert install_problems(path, PACKAGE, extras) == []


def _chapter(path: Path, *cells: str) -> Path:
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": c, "outputs": []}
                                          for c in cells]}), encoding="utf-8")
    return path


def test_a_chapter_that_needs_an_extra_it_does_not_install_is_found(tmp_path):
    pytest.importorskip("IPython", reason="reading the Colab cell needs IPython")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "zoo.py").write_text(
        "import numpy\n"
        "def core_tests(path):\n"
        "    try:\n"
        "        from bioimageio.core import test_model\n"
        "    except ImportError:\n"
        "        raise ImportError('install the zoo extra') from None\n"
        "    return test_model(path)\n"
        "def export(path, test=True):\n"
        "    return core_tests(path) if test else None\n"
        "def maybe_tests(path):\n"
        "    try:\n"
        "        import bioimageio.core\n"
        "    except ImportError:\n"
        "        return None\n"
        "    return bioimageio.core\n", encoding="utf-8")
    extras = {"zoo": {"bioimageio.core"}, "bench": {"careamics"}}
    assert functions_needing(package, {"bioimageio.core"}) == {
        "core_tests": {"bioimageio.core"}, "export": {"bioimageio.core"}}

    def colab(extra=""):
        return ('import sys\nif "google.colab" in sys.modules:\n'
                f'    %pip install --quiet "dlbio-teach{extra} @ git+{REPOSITORY}@v1.0.0"\n')

    plain, zoo = colab(), colab("[zoo]")
    calls_through = "from pkg.zoo import export\nexport('model.zip')\n"
    assert install_problems(_chapter(tmp_path / "09_a.ipynb", plain, calls_through),
                            package, extras) == [
        "09_a.ipynb needs bioimageio.core (export()), which its Colab cell does not "
        "install: install \"dlbio-teach[zoo] @ ...\""]
    assert install_problems(_chapter(tmp_path / "09_b.ipynb", zoo, calls_through),
                            package, extras) == []
    # A cell of its own that imports the extra's package, guarded or not.
    direct = "import bioimageio.core as core\n"
    assert install_problems(_chapter(tmp_path / "09_c.ipynb", plain, direct),
                            package, extras)[0].startswith("09_c.ipynb needs bioimageio.core")
    guarded = "try:\n    import bioimageio.core\nexcept ImportError:\n    pass\n"
    assert install_problems(_chapter(tmp_path / "09_d.ipynb", plain, guarded),
                            package, extras) == []
    # The optional use needs nothing; an extra installed for nothing is reported.
    optional = "import pkg.zoo as z\nz.maybe_tests('model.zip')\n"
    assert install_problems(_chapter(tmp_path / "09_e.ipynb", plain, optional),
                            package, extras) == []
    assert install_problems(_chapter(tmp_path / "09_f.ipynb", zoo, optional),
                            package, extras) == [
        "09_f.ipynb: its Colab cell installs [zoo], which none of its code needs"]


def test_the_course_functions_that_need_the_zoo_extra_are_found():
    found = functions_needing(PACKAGE, {"bioimageio.core"})
    assert "run_core_tests" in found, found
    # The widgets import ipywidgets (a dev requirement) without a fallback, but Colab has
    # it: what Colab brings is no extra's.
    assert functions_needing(PACKAGE, {"ipywidgets"}), "the widgets import ipywidgets"
    assert not set(COLAB_BRINGS) & set().union(*extras_modules(_pyproject()).values())


# --- the chapters, run from the wheel as their Colab cells install it ----------------------

def _colab_order() -> list[Path]:
    """Chapters whose cells install fewer extras first: an extra, once installed, stays."""
    try:
        return sorted(CHAPTERS, key=lambda p: (len(chapter_extras(p)), p.name))
    except Exception:   # noqa: BLE001  (no IPython here; the static tests say what is wrong)
        return CHAPTERS


def build_wheel(work: Path) -> Path:
    """The wheel of this tree, built from a copy of what it is made of (the build leaves
    nothing in the clone), as tests/test_release.py builds it."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "dlbio_teach",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "--wheel-dir", str(work / "dist"), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr[-3000:]}"
    wheels = list((work / "dist").glob("dlbio_teach-*.whl"))
    assert len(wheels) == 1, wheels
    assert f"dlbio_teach-{dlbio_teach.__version__}-py3-none-any" in wheels[0].name, wheels
    return wheels[0]


def _python_says(python: str, code: str) -> str:
    ran = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd="/", env={k: v for k, v in os.environ.items()
                                       if k not in ("PYTHONPATH", "PYTHONHOME")})
    assert ran.returncode == 0, f"{python} -c {code!r} failed:\n{ran.stderr[-2000:]}"
    return ran.stdout.strip()


def _summary(config, line: str) -> None:
    if not hasattr(config, "dlbio_summary"):
        config.dlbio_summary = []
    config.dlbio_summary.append(line)


class ColabEnvironment:
    """The environment named by ``DLBIO_COLAB_PYTHON``, the wheel, and what is installed."""

    def __init__(self, python: str, wheel: Path, work: Path, config):
        self.python, self.wheel, self.work, self.config = python, wheel, work, config
        self.installed: frozenset[str] | None = None
        self.purelib = Path(_python_says(
            python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
        self.kernels = work / "jupyter"
        spec = self.kernels / "kernels" / "dlbio-colab"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (Colab-like)", "language": "python"}))

    def install_for(self, path: Path) -> None:
        """Install what the chapter's Colab cell installs, unless it is installed already."""
        extras = chapter_extras(path)
        if self.installed == extras:
            return
        if self.installed is not None and not extras >= self.installed:
            pytest.fail(f"{path.name} installs {sorted(extras)}, fewer extras than "
                        f"{sorted(self.installed)} installed before it: it would not run as on "
                        "Colab (run it first)")
        arguments = wheel_pip_arguments(path, self.wheel)
        start = time.perf_counter()
        ran = subprocess.run([self.python, "-m", "pip", *arguments], capture_output=True,
                             text=True, timeout=1800, cwd=self.work)
        seconds = time.perf_counter() - start
        assert ran.returncode == 0, (f"pip {shlex.join(arguments)} failed:\n"
                                     f"{ran.stdout[-2000:]}\n{ran.stderr[-3000:]}")
        self.installed = extras
        _summary(self.config, f"colab: pip {shlex.join(arguments)}: {seconds:.0f} s")


@pytest.fixture(scope="module")
def colab_env(tmp_path_factory, pytestconfig) -> ColabEnvironment:
    python = os.environ.get(ENV_VARIABLE)
    if not python:
        pytest.skip(f"{ENV_VARIABLE} is not set: the chapters run from the wheel, installed as "
                    "their Colab cells install it, in a fresh Python 3.12 environment that "
                    f"variable names (.ci/run's colab job; see {Path(__file__).name})")
    assert Path(python).is_file(), f"{ENV_VARIABLE}={python}: no such file"
    version = tuple(json.loads(_python_says(python, "import sys, json; "
                                            "print(json.dumps(sys.version_info[:2]))")))
    assert version == COLAB_PYTHON, (
        f"{ENV_VARIABLE} is Python {version}; Colab's is {COLAB_PYTHON}")
    extras = extras_modules(_pyproject())
    ahead = sorted(set().union(*(extras.get(e, set()) for p in CHAPTERS
                                 for e in chapter_extras(p))) | {"dlbio_teach"})
    found = json.loads(_python_says(python, (
        "import importlib.util, json\n"
        f"print(json.dumps([m for m in {ahead!r} if importlib.util.find_spec(m.split('.')[0]) "
        "and importlib.util.find_spec(m)]))")))
    assert not found, (
        f"{ENV_VARIABLE}'s environment already has {found}: the chapters must be installed "
        f"into a fresh one that holds only what Colab brings ({', '.join(COLAB_BRINGS)})")
    brought = json.loads(_python_says(python, (
        "import importlib.metadata as m, json\n"
        f"print(json.dumps({{n: m.version(n) for n in {list(COLAB_BRINGS)!r}}}))")))
    work = tmp_path_factory.mktemp("colab")
    assert not work.resolve().is_relative_to(REPO_ROOT)
    start = time.perf_counter()
    wheel = build_wheel(work)
    _summary(pytestconfig, f"colab: Python {'.'.join(map(str, version))}, "
             + ", ".join(f"{n} {v}" for n, v in brought.items())
             + f"; wheel {wheel.name} built in {time.perf_counter() - start:.0f} s")
    return ColabEnvironment(python, wheel, work, pytestconfig)


# Run in the kernel after the chapter: where dlbio_teach came from.
CHECK_CELL = """\
import importlib.metadata, json, os, sys, sysconfig
import dlbio_teach
print("DLBIO-COLAB-CHECK", json.dumps({
    "file": dlbio_teach.__file__, "version": dlbio_teach.__version__,
    "purelib": sysconfig.get_paths()["purelib"], "executable": sys.executable,
    "cwd": os.getcwd(), "profile": os.environ.get("DLBIO_PROFILE"),
    "direct_url": json.loads(importlib.metadata.distribution("dlbio-teach")
                             .read_text("direct_url.json") or "{}")}))
"""

# Executes one notebook in a kernel of the Colab environment (run by that Python).
RUNNER = """\
import json, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

notebook, workdir, check, out, timeout = sys.argv[1:6]
nb = nbformat.read(notebook, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(open(check).read()))
starts, times, failed = {}, {}, {}
client = NotebookClient(
    nb, timeout=int(timeout), kernel_name="dlbio-colab",
    resources={"metadata": {"path": workdir}},
    on_cell_start=lambda cell, cell_index: starts.__setitem__(cell_index, time.perf_counter()),
    on_cell_executed=lambda cell, cell_index, execute_reply: times.__setitem__(
        cell_index, time.perf_counter() - starts[cell_index]),
    on_cell_error=lambda cell, cell_index, execute_reply: failed.setdefault("cell", cell_index))
result = {"error": None, "check": None}
start = time.perf_counter()
try:
    client.execute()
except CellExecutionError as error:
    result["error"] = {"cell": failed.get("cell"), "ename": error.ename,
                       "evalue": error.evalue, "text": str(error)[-4000:]}
result["seconds"] = time.perf_counter() - start
result["slowest"] = sorted(((round(t, 1), i) for i, t in times.items()), reverse=True)[:3]
for output in nb.cells[-1].get("outputs", []):
    for line in output.get("text", "").splitlines():
        if line.startswith("DLBIO-COLAB-CHECK "):
            result["check"] = json.loads(line.split(" ", 1)[1])
json.dump(result, open(out, "w"))
"""


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.parametrize("path", _colab_order(), ids=lambda p: p.stem)
def test_chapter_runs_from_the_wheel_as_its_colab_cell_installs_it(path, colab_env,
                                                                     tmp_path, pytestconfig):
    colab_env.install_for(path)
    folder = tmp_path / "content"   # Colab's working folder: nothing of the clone in it
    folder.mkdir()
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    (tmp_path / "check.py").write_text(CHECK_CELL, encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH",
                        "MPLBACKEND")}   # as on Colab: the inline backend, figures as outputs
    # Static figures instead of widgets, as in the book and under nbval: headless, nbclient
    # waits for the full cell timeout on a cell that shows an ipywidgets Output widget
    # (https://github.com/jupyter/nbclient/issues/312; seen here with compare_viewer).
    env.update(DLBIO_WIDGETS="0", JUPYTER_PATH=str(colab_env.kernels),
               PYDEVD_DISABLE_FILE_VALIDATION="1",
               PATH=f"{Path(colab_env.python).parent}{os.pathsep}{env.get('PATH', '')}")
    assert env.get("DLBIO_PROFILE"), "tests/conftest.py sets the profile (smoke)"
    out = tmp_path / "result.json"
    ran = subprocess.run([colab_env.python, str(tmp_path / "runner.py"), str(path),
                          str(folder), str(tmp_path / "check.py"), str(out), str(CELL_TIMEOUT)],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=3600)
    assert ran.returncode == 0 and out.is_file(), (
        f"the runner failed:\n{ran.stdout[-2000:]}\n{ran.stderr[-4000:]}")
    result = json.loads(out.read_text())
    extras = sorted(chapter_extras(path))
    error = result["error"]
    _summary(pytestconfig, f"colab: {path.name} ({env['DLBIO_PROFILE']}, "
             f"dlbio-teach{'[' + ','.join(extras) + ']' if extras else ''}): "
             f"{result['seconds']:.0f} s, "
             + (f"FAILED at cell {error['cell']}" if error else "passed")
             + ("" if env.get("DLBIO_DATA_MIRROR") else ", data from the internet (no mirror)")
             + f"; slowest cells (s, index) {result['slowest']}")
    assert error is None, (
        f"{path.name} stops at cell {error['cell']} ({error['ename']}: {error['evalue']}) when "
        f"installed as its Colab cell installs it:\n{_plain(error['text'])}")
    check = result["check"]
    assert check, "the check cell printed nothing"
    where, purelib = Path(check["file"]).resolve(), Path(check["purelib"]).resolve()
    assert not where.is_relative_to(REPO_ROOT), f"dlbio_teach imported from the clone: {where}"
    assert where.is_relative_to(purelib), (
        f"dlbio_teach imported from {where}, not from the site-packages {purelib}")
    assert check["version"] == dlbio_teach.__version__, check
    assert check["direct_url"].get("url") == colab_env.wheel.as_uri(), (
        f"dlbio-teach was not installed from the wheel: {check['direct_url']}")
    assert Path(check["executable"]).parent == Path(colab_env.python).parent, check
    assert Path(check["cwd"]).resolve() == folder.resolve(), check
