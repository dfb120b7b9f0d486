"""A release holds what its chapters import.

On Colab a chapter installs the package at the release tag its first cell names
(``@vX.Y.Z``), never the clone. So three things must hold together: the version every
chapter pins is the package's version (tests/test_book_pages.py checks the Colab cells, the
badges and the launch buttons); nothing the chapters use waits under ``[Unreleased]`` in
the changelog; and the package built as a wheel, installed as a learner installs it (not
editable, away from the clone), imports every module a chapter imports.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import dlbio_teach

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _unreleased_entries(changelog: str) -> list[str]:
    """The lines of the ``[Unreleased]`` section that say something (headings or items)."""
    section = changelog.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    return [line for line in section.splitlines() if line.strip()]


def test_unreleased_entries_are_found():
    changelog = ("# Changelog\n\n## [Unreleased]\n\n### Added\n\n- a module the chapters "
                 "import\n\n## [0.1.0] - 2026-01-01\n\n- first\n")
    assert _unreleased_entries(changelog) == ["### Added", "- a module the chapters import"]
    assert _unreleased_entries(changelog.replace("### Added\n\n- a module the chapters "
                                                 "import\n\n", "")) == []


def test_nothing_waits_under_unreleased():
    """The chapters pin the last release: a change they could depend on ships in one."""
    entries = _unreleased_entries((REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert not entries, (
        f"CHANGELOG.md lists changes under [Unreleased] while the chapters pin "
        f"v{dlbio_teach.__version__}: release them (bump dlbio_teach.__version__, the "
        f"changelog, the Colab cells and badges, _config.yml and book/intro.md together). "
        f"First entries: {entries[:3]}")


def chapter_imports(path: Path) -> set[str]:
    """The ``dlbio_teach`` modules a notebook's code cells import."""
    modules = set()
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        # IPython magics (%pip, !ls) are not Python: read them as `pass`.
        source = "\n".join(re.sub(r"^(\s*)[%!].*", r"\1pass", line)
                           for line in "".join(cell["source"]).splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == "dlbio_teach":
                modules.add(node.module)
                if node.module == "dlbio_teach":   # from dlbio_teach import readings
                    modules.update(f"dlbio_teach.{a.name}" for a in node.names
                                   if (REPO_ROOT / "dlbio_teach" / f"{a.name}.py").exists())
            elif isinstance(node, ast.Import):
                modules.update(a.name for a in node.names
                               if a.name.split(".")[0] == "dlbio_teach")
    return modules


def test_chapter_imports_are_read(tmp_path):
    cell = {"cell_type": "code", "source": [
        '%pip install x\n', 'import numpy\n', 'from dlbio_teach.data import load\n',
        'from dlbio_teach import setup_course, readings\n', 'import dlbio_teach.viz as v\n']}
    path = tmp_path / "09_x.ipynb"
    path.write_text(json.dumps({"cells": [cell]}), encoding="utf-8")
    assert chapter_imports(path) == {"dlbio_teach", "dlbio_teach.data", "dlbio_teach.readings",
                                     "dlbio_teach.viz"}


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A fresh environment with the wheel built from this tree installed (not editable).

    The course's dependencies come from the test environment's site-packages through a
    ``.pth`` line, which adds the folder but runs none of its own ``.pth`` files: the
    editable install of the clone stays out of the new environment.
    """
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of, so that the build leaves nothing in
    # the clone (setuptools writes build/ and *.egg-info/ beside pyproject.toml).
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "dlbio_teach", source / "dlbio_teach",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "--wheel-dir", str(work / "dist"), str(source)],
                           capture_output=True, text=True, timeout=600)
    if built.returncode != 0 and "No matching distribution" in built.stderr:
        pytest.skip(f"no build backend could be had to build the wheel:\n{built.stderr[-800:]}")
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr[-3000:]}"
    wheels = list((work / "dist").glob("dlbio_teach-*.whl"))
    assert len(wheels) == 1, wheels
    assert f"dlbio_teach-{dlbio_teach.__version__}-" in wheels[0].name, wheels[0].name

    env_dir = work / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    target = subprocess.run([str(python), "-c", "import sysconfig; "
                             "print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(target, "course_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", target, str(wheels[0])], check=True, timeout=600)
    return python


def test_the_wheel_imports_every_module_a_chapter_imports(installed_wheel, tmp_path):
    modules = sorted(set().union(*(chapter_imports(p) for p in CHAPTERS)))
    assert "dlbio_teach.readings" in modules and len(modules) > 10, modules
    code = ("import importlib, json, dlbio_teach\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(json.dumps([dlbio_teach.__file__, dlbio_teach.__version__]))")
    ran = subprocess.run([str(installed_wheel), "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env={"PATH": "/usr/bin:/bin",
                                                      "MPLBACKEND": "Agg"})
    assert ran.returncode == 0, f"a chapter's import fails from the wheel:\n{ran.stderr[-3000:]}"
    where, version = json.loads(ran.stdout.strip().splitlines()[-1])
    assert not Path(where).resolve().is_relative_to(REPO_ROOT), (
        f"dlbio_teach was imported from the clone ({where}), not from the installed wheel")
    assert version == dlbio_teach.__version__


def test_the_wheel_lacks_nothing_of_the_package(installed_wheel):
    """Every module of the tree is in the wheel (a module missing from the build would only
    fail on Colab)."""
    listing = subprocess.run([str(installed_wheel), "-c",
                              "import pkgutil, dlbio_teach; print(sorted(m.name for m in "
                              "pkgutil.iter_modules(dlbio_teach.__path__)))"],
                             capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin"})
    in_wheel = set(ast.literal_eval(listing.stdout.strip()))
    in_tree = {p.stem for p in (REPO_ROOT / "dlbio_teach").glob("*.py") if p.stem != "__init__"}
    assert in_tree <= in_wheel, f"missing from the wheel: {sorted(in_tree - in_wheel)}"


def test_the_wheel_carries_the_lessons_over_seeds(installed_wheel):
    """Chapters that show the committed lessons over seeds read them from the package: on
    Colab, from the wheel."""
    if not (REPO_ROOT / "dlbio_teach" / "lessons_results.json").is_file():
        pytest.skip("no committed results of benchmarks/lessons.py yet")
    code = ("from dlbio_teach.lessons import RESULTS, load_lessons\n"
            "print(RESULTS.is_file(), len(load_lessons('02_restoration').seeds))")
    ran = subprocess.run([str(installed_wheel), "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr[-2000:]
    found, n_seeds = ran.stdout.split()
    assert found == "True" and int(n_seeds) >= 5, ran.stdout


def test_version_pins_are_read_from_the_chapters():
    """The check of the Colab pins (tests/test_book_pages.py) sees every chapter."""
    pins = {p.name: re.findall(r"dlbio-teach@v(\d+\.\d+\.\d+)", p.read_text(encoding="utf-8"))
            for p in CHAPTERS}
    assert pins and all(pins.values()), pins
    assert {v for found in pins.values() for v in found} == {dlbio_teach.__version__}, pins


def test_the_wheel_carries_the_budget_curve(installed_wheel):
    """Chapter 6 draws benchmarks/budget_3d.py's results from the package: on Colab, from
    the wheel."""
    code = ("import json\nfrom importlib.resources import files\n"
            "runs = json.loads(files('dlbio_teach').joinpath('budget_3d_results.json')"
            ".read_text())['runs']\nprint(len({r['network'].split(',')[0] for r in runs}))")
    ran = subprocess.run([str(installed_wheel), "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.split() == ["2"], ran.stdout
