"""What the book's pages state, checked against the package: the version (package, book,
changelog), the run-profile table (book/profiles.md), the landing page (a card and a figure
per chapter, the figures taken from the chapters' committed outputs by book/_ext/dlbio_book.py,
how to start), the chapters' Colab cell, the API reference (a page per module, in the table
of contents, documenting every public name), and the code of the page "Apply a chapter to
your own images", run as printed on small synthetic TIFF files.
"""
from __future__ import annotations

import base64
import importlib
import importlib.util
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


# --- the run-profile table (book/profiles.md) ---------------------------------------------

def _profile_rows(text: str) -> dict:
    """The rows of a page's profile table: name -> [epochs, patches, size, channels, seeds]."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].strip("`") in PROFILES:
            rows[cells[0].strip("`")] = [int(c) for c in cells[2:]]
    return rows


def test_profile_rows_are_read():
    table = ("| profile | for | epochs | patches | size | channels | seeds |\n"
             "|---|---|---|---|---|---|---|\n| `smoke` | tests | 6 | 256 | 32 | 8 | 2 |\n")
    assert _profile_rows(table) == {"smoke": [6, 256, 32, 8, 2]}


def test_profile_table_matches_the_profiles():
    rows = _profile_rows(_read("book/profiles.md"))
    assert set(rows) == set(PROFILES), f"profiles in the table of book/profiles.md: {sorted(rows)}"
    for name, values in rows.items():
        p = PROFILES[name]
        assert values == [p.epochs, p.n_patches, p.patch_size, p.base_channels, p.n_seeds], (
            f"book/profiles.md: the {name!r} row says {values}; dlbio_teach.runtime.PROFILES "
            f"says {[p.epochs, p.n_patches, p.patch_size, p.base_channels, p.n_seeds]}")


def test_profiles_page_says_full_is_unverified():
    """``full`` has never run end to end: the page says so, in its row and in its text."""
    text = _read("book/profiles.md")
    full_row = next(line for line in text.splitlines() if line.startswith("| `full`"))
    assert "unverified" in full_row and "never run end to end" in full_row, full_row
    assert "only on request" in text


# --- where each chapter shows its table over seeds (book/seeds.md) ------------------------

def _seed_table_sections(path: Path) -> tuple[str, str, str]:
    """The section (its H2 heading) whose output holds the chapter's table over seeds, the
    H2 heading that follows it, and the seeds the table names."""
    headings, found, seeds = [], None, None
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            headings += [line for line in source.splitlines() if line.startswith("## ")]
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(
                (output.get("data") or {}).get("text/markdown", ""))
            match = re.search(r"benchmarks/lessons\.py: seeds (\[[\d, ]+\])", text)
            if match and found is None:
                found, seeds = len(headings), match.group(1)
    assert found, f"{path.name}: no table over seeds in the outputs"
    following = headings[found] if found < len(headings) else ""
    return headings[found - 1], following, seeds


def test_seeds_page_says_where_each_chapter_shows_its_table():
    rows = re.findall(r"^\| \{doc\}`(\d), [^<]+<\.\./notebooks/(\w+)>` \| (.+?) \|$",
                      _read("book/seeds.md"), re.M)
    with_tables = [p for p in CHAPTERS if "lessons_table" in p.read_text(encoding="utf-8")]
    assert [stem for _, stem, _ in rows] == [p.stem for p in with_tables], rows
    for number, stem, where in rows:
        section, following, seeds = _seed_table_sections(REPO_ROOT / "notebooks" / f"{stem}.ipynb")
        said = re.search(r"section (\d+)", where).group(1)
        assert section.startswith(f"## {said}. "), (
            f"book/seeds.md: chapter {number}'s table is in {section!r}, not section {said}")
        assert ("before the summary" in where) == (following == "## Summary"), (
            f"book/seeds.md says chapter {number}'s table is {where!r}; the next section "
            f"is {following!r}")
        assert seeds == "[0, 1, 2, 3, 4]", f"{stem}: the table is over seeds {seeds}, not five"


# --- the landing page (book/intro.md) -------------------------------------------------------

CHAPTERS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _book_extension():
    """book/_ext/dlbio_book.py, the extension that writes the landing page's figures."""
    spec = importlib.util.spec_from_file_location(
        "dlbio_book", REPO_ROOT / "book" / "_ext" / "dlbio_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cards(text: str) -> list[dict]:
    """The ``grid-item-card`` blocks of a MyST page: title and options."""
    cards = []
    for block in re.findall(r"^:::\{grid-item-card\}(.*?)^:::$", text, re.M | re.S):
        title, *lines = block.strip("\n").splitlines()
        options = dict(re.match(r":([\w-]+):\s*(.*)", line).groups()
                       for line in lines if re.match(r":[\w-]+:", line))
        cards.append({"title": title.strip(), **options})
    return cards


def test_landing_page_has_a_card_and_a_figure_per_chapter():
    cards = [c for c in _cards(_read("book/intro.md")) if "link" in c]
    assert [c["link"] for c in cards] == [f"../notebooks/{p.stem}" for p in CHAPTERS], (
        "book/intro.md: one card per chapter, in order, linking to it")
    for card, path in zip(cards, CHAPTERS):
        assert card["title"].startswith(f"{int(path.stem[:2])} · "), card["title"]
        assert card["img-top"] == f"_generated/landing/{path.stem}.png", card
        assert card.get("img-alt"), f"{path.stem}: the card's figure needs an img-alt text"


def test_every_chapter_tags_its_landing_figure():
    extension = _book_extension()
    for path in CHAPTERS:
        png = extension.landing_figure(path)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000, path.name


def _notebook(tmp_path, *cells) -> Path:
    path = tmp_path / "09_example.ipynb"
    path.write_text(json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}), encoding="utf-8")
    return path


def _code_cell(tags=(), png=None) -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": ["a number\n"]}]
    if png is not None:
        outputs.append({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(png).decode() + "\n",
                                 "text/plain": ["<Figure>"]}})
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": ["plot()"],
            "outputs": outputs, "execution_count": 1}


def test_landing_figure_is_read_from_the_tagged_cell_or_fails_clearly(tmp_path):
    extension = _book_extension()
    figure, other = b"\x89PNG\r\n\x1a\nfigure", b"\x89PNG\r\n\x1a\nother"
    good = _notebook(tmp_path, _code_cell(png=other), _code_cell(["landing-figure"], figure))
    assert extension.landing_figure(good) == figure
    cases = {
        "no cell is tagged 'landing-figure'": [_code_cell(png=figure)],
        "are all tagged 'landing-figure'": [_code_cell(["landing-figure"], figure),
                                            _code_cell(["hide-input", "landing-figure"], other)],
        "has no image/png output": [_code_cell(["landing-figure"]), _code_cell(png=figure)],
    }
    for message, cells in cases.items():
        with pytest.raises(extension.LandingFigureError, match=re.escape(message)):
            extension.landing_figure(_notebook(tmp_path, *cells))


def test_landing_figures_are_written_for_every_chapter_or_the_build_stops(tmp_path):
    """The build-time step: one PNG per chapter, or an error naming the chapter."""
    extension = _book_extension()
    app = types.SimpleNamespace(srcdir=str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    figure = b"\x89PNG\r\n\x1a\nfigure"
    (tmp_path / "notebooks" / "01_a.ipynb").write_text(_notebook(
        tmp_path, _code_cell(["landing-figure"], figure)).read_text(), encoding="utf-8")
    extension.write_landing_figures(app)
    assert (tmp_path / extension.LANDING_DIR / "01_a.png").read_bytes() == figure
    (tmp_path / "notebooks" / "02_b.ipynb").write_text(_notebook(
        tmp_path, _code_cell(png=figure)).read_text(), encoding="utf-8")
    with pytest.raises(extension.LandingFigureError, match=r"02_b\.ipynb: no cell is tagged"):
        extension.write_landing_figures(app)


def test_built_landing_page_shows_the_chapters_committed_figures(built_book):
    """The figures of the built landing page are those of the chapters' outputs as
    committed now: re-running a chapter cannot leave the landing page behind."""
    landing = built_book.html / "book" / "intro.html"
    if not landing.is_file():
        pytest.fail(f"the book build wrote no landing page:\n{built_book.log[-3000:]}")
    extension = _book_extension()
    page = landing.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]*class="[^"]*sd-card-img-top[^"]*"[^>]*src="([^"]+)"', page) \
        or re.findall(r'<img[^>]*src="([^"]+)"[^>]*class="[^"]*sd-card-img-top', page)
    assert len(sources) == len(CHAPTERS), sources
    for source, path in zip(sources, CHAPTERS):
        shown = (built_book.html / "book" / source).resolve()
        assert shown.read_bytes() == extension.landing_figure(path), (
            f"the landing page's figure {source} is not {path.name}'s tagged output")


def test_landing_page_opens_chapter_1_on_colab_at_the_release_tag():
    links = re.findall(r"https://colab\.research\.google\.com/\S+?\.ipynb", _read("book/intro.md"))
    assert links, "book/intro.md: no link to open a chapter on Colab"
    for link in links:
        assert link.startswith("https://colab.research.google.com/github/dlbio-teach/"
                               f"dlbio-teach/blob/v{VERSION}/notebooks/student/"), link
        assert (REPO_ROOT / link.split(f"/blob/v{VERSION}/", 1)[1]).is_file(), link


def test_landing_page_install_command_is_the_readmes():
    commands = re.findall(r"`(python -m pip install [^`]+)`", _read("book/intro.md"))
    assert commands, "book/intro.md: no pip command for a local install"
    for command in commands:
        assert command in _read("README.md"), (
            f"book/intro.md installs with `{command}`, which README.md does not give")


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
    # With the extras the chapter needs (tests/test_colab.py checks which): dlbio-teach[zoo].
    assert re.search(r"install .*\"dlbio-teach(\[[\w,-]+\])? @ git\+https://github\.com/"
                     r"dlbio-teach/dlbio-teach@\S+\"", calls[0][1]), calls[0][1]


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

    from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei

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
    _write_stacks(tmp_path, n_stacks=2, n_annotated=1)
    _write_movie(tmp_path)      # section 9's movie with two annotated frames
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
    _check_stack_results(tmp_path, out, n_stacks=2)
    assert (results / "my_movie" / "01_RES" / "res_track.txt").is_file()



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


def _write_stacks(folder: Path, *, n_stacks: int, n_annotated: int) -> None:
    """ImageJ hyperstacks (Z, Y, X) with their voxel size (1.5, 0.5, 0.5) um, the first
    ``n_annotated`` with their 3D masks in my_stack_masks/."""
    import tifffile

    from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei_volume
    (folder / "my_stacks").mkdir()
    (folder / "my_stack_masks").mkdir()
    for i in range(n_stacks):
        clean, labels = nuclei_volume((16, 96, 96), n_nuclei=12, seed=i)
        raw = np.clip(add_poisson_gaussian_noise(clean, photons=20, seed=i) * 1000 + 100,
                      0, 65535).astype(np.uint16)
        tifffile.imwrite(folder / "my_stacks" / f"stack{i}.tif", raw, imagej=True,
                         resolution=(1 / 0.5, 1 / 0.5),
                         metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})
        if i < n_annotated:
            tifffile.imwrite(folder / "my_stack_masks" / f"stack{i}.tif",
                             labels.astype(np.uint16))


def _check_stack_results(folder: Path, out: str, *, n_stacks: int) -> None:
    import tifffile

    from dlbio_teach.chunked import open_volume
    assert re.search(r"stack0\.tif: \(16, 96, 96\) \(Z, Y, X\), voxel size \(1\.5, 0\.5, 0\.5\) "
                     r"um, \d+ annotated nuclei", out), out
    assert "choose and train on [(16, 96, 48)]; held out [(16, 96, 48)]" in out, out
    assert re.search(r"chosen: filter [\d.]+ um, min_distance \d+ um", out), out
    assert re.search(r"held out, baseline: F1 \d\.\d\d \[\d\.\d\d, \d\.\d\d\]", out), out
    assert re.search(r"held out, 3D U-Net: F1 \d\.\d\d", out), out
    assert re.search(r"3D U-Net - baseline, per block: [+-]\d\.\d\d", out), out
    results = folder / "results" / "stacks"
    for i in range(n_stacks):
        with tifffile.TiffFile(results / f"stack{i}_nuclei_3d.tif") as tif:
            labels = tif.asarray()
            assert tif.imagej_metadata["spacing"] == 1.5
        assert labels.shape == (16, 96, 96) and labels.max() > 3
        raw = tifffile.imread(folder / "my_stacks" / f"stack{i}.tif").astype(np.float32)
        filtered = tifffile.imread(results / f"stack{i}_filtered.tif")
        assert filtered.shape == raw.shape and filtered.dtype == np.float32
        assert abs(filtered.mean() - raw.mean()) < 0.05 * raw.mean(), "raw units are kept"
        in_zarr = open_volume(results / f"stack{i}.ome.zarr" / "labels" / "labels").compute()
        assert np.array_equal(in_zarr, labels)
    record = json.loads((results / "unet_3d_run" / "run_record.json").read_text())
    assert record["hyperparameters"]["voxel_size"] == [1.5, 0.5, 0.5]


def test_own_data_stack_section_runs_on_one_annotated_stack(tmp_path, monkeypatch, capsys):
    """Section 8 alone, in a folder that holds one stack and its 3D mask."""
    _write_stacks(tmp_path, n_stacks=1, n_annotated=1)
    monkeypatch.chdir(tmp_path)
    blocks = _section_blocks("book/own_data.md")[8]
    assert len(blocks) == 5, "section 8: read, baseline, 3D U-Net, held-out score, save"
    _run_blocks(blocks, "book/own_data.md, section 8")
    _check_stack_results(tmp_path, capsys.readouterr().out, n_stacks=1)


def test_own_data_stack_section_asks_for_an_annotation(tmp_path, monkeypatch):
    _write_stacks(tmp_path, n_stacks=1, n_annotated=0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="annotate the nuclei of at least one stack"):
        _run_blocks(_section_blocks("book/own_data.md")[8][:1], "section 8")


def _section_blocks(page: str) -> dict:
    """The Python blocks of each numbered section (``## 9. ...`` gives key 9)."""
    sections = re.split(r"^## (\d+)\. ", _read(page), flags=re.M)
    return {int(number): re.findall(r"^```python\n(.*?)^```$", body, re.M | re.S)
            for number, body in zip(sections[1::2], sections[2::2])}


def _run_blocks(blocks, label: str) -> dict:
    namespace = {"__name__": "own_data_page"}
    for i, block in enumerate(blocks, start=1):
        exec(compile(block, f"{label}, code block {i}", "exec"), namespace)
    return namespace


def _write_movie(folder: Path, *, ctc: bool = False):
    """A 30-frame movie with two annotated frames, as a learner has it: an ImageJ TIFF
    (pixel 0.5 um, a frame every 30 s) and my_movie_masks/, or a Challenge folder."""
    import tifffile

    from dlbio_teach.movies import synthetic_movie, write_ctc
    movie = synthetic_movie(30, (96, 96), n_nuclei=8, radius=6.0, speed=0.4, seed=7)
    raw = np.clip(movie.images * 1000 + 100, 0, 65535).astype(np.uint16)
    if ctc:
        write_ctc(folder / "my_movie", movie)
        seg = folder / "my_movie" / "01_GT" / "SEG"
    else:
        tifffile.imwrite(folder / "my_movie.tif", raw, imagej=True, resolution=(2.0, 2.0),
                         metadata={"axes": "TYX", "finterval": 30.0, "unit": "um"})
        seg = folder / "my_movie_masks"
    seg.mkdir(parents=True)
    for t in (5, 20):
        tifffile.imwrite(seg / f"man_seg{t:03d}.tif", movie.labels[t].astype(np.uint16))
    return movie


@pytest.mark.parametrize("ctc", [False, True], ids=["imagej-tiff", "challenge-folder"])
def test_own_data_movie_section_runs_on_its_own(tmp_path, monkeypatch, capsys, ctc):
    """Section 9 alone, in a folder that holds one movie and two annotated frames."""
    import pandas as pd
    import tifffile

    movie = _write_movie(tmp_path, ctc=ctc)
    monkeypatch.chdir(tmp_path)
    blocks = _section_blocks("book/own_data.md")[9]
    assert len(blocks) == 3, "section 9: read, detect and check, link"
    if ctc:   # what the page tells a learner with a Challenge data set to change
        assert 'Path("my_movie.tif")' in blocks[0]
        blocks[0] = blocks[0].replace('Path("my_movie.tif")', 'Path("my_movie")')
    namespace = _run_blocks(blocks, "book/own_data.md, section 9")
    out = capsys.readouterr().out
    pixel, interval = ("None", "None") if ctc else ("0.5", "0.5")
    assert (f"my_movie{'' if ctc else '.tif'}: 30 frames of (96, 96) px; pixel {pixel} um, "
            f"interval {interval} min; annotated frames [5, 20]") in out, out
    assert re.search(r"frame 20, U-Net: F1 \d\.\d\d at IoU 0\.5", out), out
    assert re.search(r"frame 20, Otsu \+ watershed: F1 \d\.\d\d", out), out
    assert "max_distance" in out and "one nucleus diameter" in out, out
    results = tmp_path / "results" / "my_movie"
    table = pd.read_csv(results / "tracks.csv")
    tracks = namespace["tracks"]
    assert len(table) == sum(len(np.unique(f[f > 0])) for f in tracks.labels) > 0
    if not ctc:
        assert {"time_min", "y_um", "x_um", "area_um2"} <= set(table.columns)
        assert np.allclose(table["x_um"], table["x"] * 0.5, atol=1e-3)
        assert table["time_min"].max() == pytest.approx(29 * 0.5)
    result = results / "01_RES"
    assert len(list(result.glob("mask*.tif"))) == 30 and (result / "res_track.txt").is_file()
    assert np.array_equal(tifffile.imread(result / "mask007.tif"), tracks.labels[7])
    assert (results / "tracks.geff").is_dir()
    # the chosen detector is the better one on the frame kept for the check
    checked = namespace["checked"]
    assert namespace["chosen"] == max(checked, key=lambda n: checked[n]["f1"])
    assert namespace["detected"].shape == movie.labels.shape


def test_own_data_sections_point_a_movie_and_a_stack_to_each_other(tmp_path, monkeypatch):
    import tifffile

    from dlbio_teach.synthetic import nuclei_volume
    sections = _section_blocks("book/own_data.md")
    _write_movie(tmp_path)
    (tmp_path / "my_stacks").mkdir()
    (tmp_path / "my_stacks" / "movie.tif").write_bytes((tmp_path / "my_movie.tif").read_bytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="movie .*section 9"):
        _run_blocks(sections[8][:1], "section 8")
    clean, _ = nuclei_volume((16, 64, 64), n_nuclei=6, seed=0)
    tifffile.imwrite(tmp_path / "stack.tif", (clean * 1000).astype(np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"})
    page = sections[9][0].replace('Path("my_movie.tif")', 'Path("stack.tif")')
    with pytest.raises(ValueError, match="z-stack .*section 8"):
        _run_blocks([page], "section 9")
