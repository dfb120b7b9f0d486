"""What the book's pages state, checked against the package: the version (package, book,
changelog), the run-profile table, the chapters' Colab cell, the API reference (a page per
module, in the table of contents, documenting every public name), and the code of the page
"Apply a chapter to your own images", run as printed on small synthetic TIFF files.
"""
from __future__ import annotations

import importlib
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import dlbio_teach
from dlbio_teach.runtime import PROFILES

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSION = dlbio_teach.__version__
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
REPOSITORY = "https://github.com/dlbio-teach/dlbio-teach"
MODULES = sorted(p.stem for p in (REPO_ROOT / "dlbio_teach").glob("*.py")
                 if p.stem != "__init__")


def _read(relative: str) -> str:
    return (REPO_ROOT / relative).read_text(encoding="utf-8")


# --- one version everywhere -------------------------------------------------------------

def test_version_is_semantic():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_book_shows_the_package_version():
    footer = re.search(r"extra_footer:.*?dlbio-teach (\S+)", _read("_config.yml"), re.S)
    assert footer, "_config.yml: no 'dlbio-teach X.Y.Z' in html.extra_footer"
    assert footer.group(1) == VERSION, (
        f"_config.yml shows version {footer.group(1)}, the package is {VERSION}")
    intro = re.search(r"version (\S+) of the course", _read("book/intro.md"))
    assert intro and intro.group(1) == VERSION, (
        f"book/intro.md should say 'version {VERSION} of the course'")


def test_changelog_matches_the_version():
    text = _read("CHANGELOG.md")
    assert "## [Unreleased]" in text
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.M)
    assert released, "CHANGELOG.md: no '## [X.Y.Z] - YYYY-MM-DD' section"
    assert released[0][0] == VERSION, (
        f"the newest release in CHANGELOG.md is {released[0][0]}, the package is {VERSION}: "
        "bump dlbio_teach.__version__, _config.yml and book/intro.md together")
    assert text.index("## [Unreleased]") < text.index(f"## [{VERSION}]")
    for version, _ in released:
        assert f"[{version}]: {REPOSITORY}/releases/tag/v{version}" in text
    assert f"[Unreleased]: {REPOSITORY}/compare/v{VERSION}...HEAD" in text


# --- the run-profile table of the introduction ------------------------------------------

def test_intro_profile_table_matches_the_profiles():
    rows = {}
    for line in _read("book/intro.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].strip("`") in PROFILES:
            rows[cells[0].strip("`")] = [int(c) for c in cells[2:]]
    assert set(rows) == set(PROFILES), f"profiles in the intro table: {sorted(rows)}"
    for name, values in rows.items():
        p = PROFILES[name]
        assert values == [p.epochs, p.n_patches, p.patch_size, p.base_channels, p.n_seeds], (
            f"book/intro.md: the {name!r} row says {values}; dlbio_teach.runtime.PROFILES "
            f"says {[p.epochs, p.n_patches, p.patch_size, p.base_channels, p.n_seeds]}")


# --- the Colab cell of every chapter ------------------------------------------------------

def _colab_cell(path: Path) -> dict:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and "google.colab" in "".join(code[0]["source"]), (
        f"{path.name}: the first code cell must be the Colab install cell")
    return code[0]


class _Shell:
    """Stands in for IPython's ``get_ipython()`` and records the magics called."""

    def __init__(self):
        self.calls = []

    def run_line_magic(self, name, line, *args):
        self.calls.append((name, line))


def _run_cell(source: str) -> list:
    from IPython.core.inputtransformer2 import TransformerManager

    shell = _Shell()
    code = TransformerManager().transform_cell(source)
    exec(compile(code, "<colab cell>", "exec"), {"get_ipython": lambda: shell})
    return shell.calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_does_nothing_outside_colab(path):
    cell = _colab_cell(path)
    assert "google.colab" not in sys.modules
    assert _run_cell("".join(cell["source"])) == []
    assert cell.get("outputs") == [], f"{path.name}: the Colab cell printed something"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_the_course_on_colab(path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = _run_cell("".join(_colab_cell(path)["source"]))
    assert len(calls) == 1 and calls[0][0] == "pip", calls
    assert re.search(r"install .*dlbio-teach @ git\+https://github\.com/dlbio-teach/"
                     r"dlbio-teach@\S+", calls[0][1]), calls[0][1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_the_release_tag(path, monkeypatch):
    """On Colab, the chapters of version X.Y.Z install the package of tag vX.Y.Z."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = _run_cell("".join(_colab_cell(path)["source"]))
    assert f"dlbio-teach@v{VERSION}\"" in calls[0][1], calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_open_in_colab_badge_opens_the_learners_copy_at_the_release_tag(path):
    """The first cell links to Colab, opening this chapter's learners' copy (without
    solutions, notebooks/student/) at tag vX.Y.Z; the badge image is a local file, so the
    offline book shows it too."""
    first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    badge = re.search(r"\[!\[Open in Colab\]\(([^)]+)\)\]\((\S+)\)", first)
    assert badge, f"{path.name}: no '[![Open in Colab](...)](...)' badge in the first cell"
    image, link = badge.groups()
    assert (path.parent / image).resolve().is_file(), f"{path.name}: badge image {image} missing"
    assert link == ("https://colab.research.google.com/github/dlbio-teach/dlbio-teach/blob/"
                    f"v{VERSION}/notebooks/student/{path.name}"), link
    assert (path.parent / "student" / path.name).is_file(), (
        f"notebooks/student/{path.name} is missing: python -m dlbio_teach.exercises "
        "student-copies")


def test_launch_buttons_open_the_notebooks_at_the_release_tag(built_book):
    """The book's Colab launch button opens each chapter's learners' copy (without
    solutions, notebooks/student/; book/_ext/dlbio_book.py) at tag vX.Y.Z of this version."""
    assert re.search(rf"^  branch: v{re.escape(VERSION)}$", _read("_config.yml"), re.M), (
        f"_config.yml: repository.branch should be the release tag v{VERSION}")
    if built_book.returncode != 0:
        pytest.fail(f"the book did not build:\n{built_book.log[-3000:]}")
    for path in NOTEBOOKS:
        page = (built_book.html / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
        url = ("https://colab.research.google.com/github/dlbio-teach/dlbio-teach/blob/"
               f"v{VERSION}/notebooks/student/{path.name}")
        assert url in page, f"{path.stem}.html: no Colab launch button to {url}"
        assert url.replace("/student/", "/") not in page, (
            f"{path.stem}.html: the Colab button opens the chapter with its solutions")


# --- the API reference: one page per module, in the toc, documenting its public names ----

def _toc_files(node) -> list[str]:
    """Every ``file:`` of ``_toc.yml``, in order, at any depth."""
    if isinstance(node, dict):
        found = [node["file"]] if "file" in node else []
        return found + [f for value in node.values() for f in _toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in _toc_files(item)]
    return []


def test_every_module_has_an_api_page():
    for module in MODULES:
        page = REPO_ROOT / "book" / "api" / f"{module}.md"
        assert page.is_file(), f"dlbio_teach/{module}.py has no API page book/api/{module}.md"
        assert re.search(rf"^\.\. automodule:: dlbio_teach\.{module}$", page.read_text(
            encoding="utf-8"), re.M), f"{page.name}: no '.. automodule:: dlbio_teach.{module}'"
    index = _read("book/api/index.md")
    for module in MODULES:
        assert f"<{module}>`" in index, f"book/api/index.md does not link to {module}"


def test_every_api_page_is_in_the_toc():
    yaml = pytest.importorskip("yaml")   # installed with jupyter-book
    files = _toc_files(yaml.safe_load(_read("_toc.yml")))
    pages = ["book/api/index"] + [f"book/api/{p.stem}" for p in
                                  sorted((REPO_ROOT / "book" / "api").glob("*.md"))
                                  if p.stem != "index"]
    missing = [page for page in pages if page not in files]
    assert not missing, f"API pages missing from _toc.yml: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_api_page_documents_every_public_name(module, built_book):
    """The built page holds an entry (autodoc's anchor ``dlbio_teach.<module>.<name>``) for
    each name of the module's ``__all__``: a constant without a ``#:`` comment, say, would
    be left out silently."""
    if built_book.returncode != 0:
        pytest.fail(f"the book did not build:\n{built_book.log[-3000:]}")
    page = built_book.html / "book" / "api" / f"{module}.html"
    assert page.is_file(), f"{page.name} was not built"
    ids = set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
    public = importlib.import_module(f"dlbio_teach.{module}").__all__
    missing = [name for name in public if f"dlbio_teach.{module}.{name}" not in ids]
    assert not missing, (f"book/api/{module}.md: the built page does not document {missing} "
                         "(a constant needs a '#:' comment to be documented)")


# --- "Apply a chapter to your own images", run as printed --------------------------------

def _python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", _read(page), re.M | re.S)


def test_own_data_page_runs_on_synthetic_tiffs(tmp_path, monkeypatch, capsys):
    """The page's code blocks, in order, as one script, in the smoke profile (conftest),
    on three noisy synthetic images with their clean versions and two instance masks."""
    import tifffile

    from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei, nuclei_volume

    blocks = _python_blocks("book/own_data.md")
    assert len(blocks) >= 6, "book/own_data.md: its code blocks were not found"
    for folder in ("my_images", "my_clean", "my_masks"):
        (tmp_path / folder).mkdir()
    for i, shape in enumerate([(256, 256), (200, 300), (256, 192)]):
        clean, labels = nuclei(shape, 25, seed=i)
        noisy = add_poisson_gaussian_noise(clean, photons=20, seed=i)
        raw = np.clip(noisy * 1000 + 100, 0, 65535).astype(np.uint16)   # a camera's counts
        tifffile.imwrite(tmp_path / "my_images" / f"field{i}.tif", raw)
        tifffile.imwrite(tmp_path / "my_clean" / f"field{i}.tif",
                         (clean * 1000 + 100).astype(np.uint16))
        if i < 2:
            tifffile.imwrite(tmp_path / "my_masks" / f"field{i}.tif", labels.astype(np.uint16))
    (tmp_path / "my_stacks").mkdir()
    for i in range(2):          # ImageJ hyperstacks with their voxel size, (Z, Y, X)
        clean, _ = nuclei_volume((16, 96, 96), n_nuclei=12, seed=i)
        raw = np.clip(add_poisson_gaussian_noise(clean, photons=20, seed=i) * 1000 + 100,
                      0, 65535).astype(np.uint16)
        tifffile.imwrite(tmp_path / "my_stacks" / f"stack{i}.tif", raw, imagej=True,
                         resolution=(1 / 0.5, 1 / 0.5),
                         metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "own_data_page"}
    for i, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"book/own_data.md, code block {i}", "exec"), namespace)
        except Exception as err:
            pytest.fail(f"book/own_data.md, code block {i} failed: {type(err).__name__}: "
                        f"{err}\n{block}")
    out = capsys.readouterr().out
    assert "profile: smoke" in out and "field0.tif: shape (256, 256), axes YX" in out
    assert re.search(r"field1, U-Net: F1 \d\.\d\d at IoU 0\.5", out), out
    results = tmp_path / "results"
    for i, shape in enumerate([(256, 256), (200, 300), (256, 192)]):
        restored = tifffile.imread(results / f"field{i}_n2v.tif")
        assert restored.shape == shape and restored.dtype == np.float32
        assert np.all(np.isfinite(restored))   # smoke-profile numbers mean nothing
        for kind in ("baseline", "unet"):
            labels = tifffile.imread(results / f"field{i}_{kind}_labels.tif")
            assert labels.shape == shape and labels.dtype == np.uint16
        assert tifffile.imread(results / f"field{i}_baseline_labels.tif").max() > 5
    for weights in ("n2v_weights.pt", "care_weights.pt", "unet_run/weights.pt"):
        assert (results / weights).is_file()
    for written in ("run_record.json", "MODEL_CARD.md", "CHECKLIST.md"):
        assert (results / "unet_run" / written).is_file()
    assert "stack0.tif: (16, 96, 96) (Z, Y, X), voxel size (1.5, 0.5, 0.5) um" in out, out
    from dlbio_teach.chunked import open_volume
    for i in range(2):
        with tifffile.TiffFile(results / f"stack{i}_nuclei_3d.tif") as tif:
            labels = tif.asarray()
            assert tif.imagej_metadata["spacing"] == 1.5
        assert labels.shape == (16, 96, 96) and labels.max() > 3
        assert tifffile.imread(results / f"stack{i}_n2v_3d.tif").shape == (16, 96, 96)
        in_zarr = open_volume(results / f"stack{i}.ome.zarr" / "labels" / "labels").compute()
        assert np.array_equal(in_zarr, labels)
    assert (results / "n2v_3d_weights.pt").is_file()



# --- the chapters' numbered sections ----------------------------------------------------

def numbered_sections(notebook: dict) -> list[int]:
    """The numbers of a chapter's ``## N. Title`` headings, in order."""
    return [int(number) for cell in notebook["cells"] if cell["cell_type"] == "markdown"
            for number in re.findall(r"^## (\d+)\. ", "".join(cell["source"]), re.M)]


def test_numbered_sections_are_read():
    def cell(text):
        return {"cell_type": "markdown", "source": [text]}
    chapter = {"cells": [cell("# Title\n## Learning objectives\n"), cell("## 1. First\ntext"),
                         {"cell_type": "code", "source": ["## 9. not a heading"]},
                         cell("more\n\n## 2. Second\n### 2.1 sub\n## 4. Fourth")]}
    assert numbered_sections(chapter) == [1, 2, 4]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_section_headings_run_from_one_without_gaps(path):
    """A section lost in an edit leaves a gap that the text's cross-references fall into."""
    numbers = numbered_sections(json.loads(path.read_text(encoding="utf-8")))
    assert numbers, f"{path.name}: no numbered section ('## 1. ...')"
    assert numbers == list(range(1, len(numbers) + 1)), (
        f"{path.name}: sections numbered {numbers}, expected 1..{len(numbers)} in order")
