"""The split of dlbio_teach.segmentation into one module per concept (baseline, targets,
planes, segmentation) keeps ``from dlbio_teach.segmentation import ...`` working for every
name it had, and for every import of it in the chapters, pages and benchmarks, while each
name is documented once, in its own module."""
from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

import dlbio_teach.segmentation as segmentation_module

REPO_ROOT = Path(__file__).resolve().parents[1]
#: dlbio_teach.segmentation's ``__all__`` of version 0.7.0, when it held the baseline, the
#: targets and a volume's planes too: learners' projects import these names from it.
PUBLIC_IN_0_7_0 = [
    "BACKGROUND", "INTERIOR", "BOUNDARY", "three_class_targets", "class_weights",
    "otsu_watershed", "instances_from_interior", "distance_targets", "instances_from_distance",
    "label_tiles_separately", "anisotropy_from_labels", "label_planes", "join_planes",
    "FORMULATIONS", "SegmentationConfig", "training_targets", "WeightedCrossEntropy",
    "train_segmentation", "predict_maps", "instances_from_maps", "segment"]
HOMES = ("segmentation", "baseline", "targets", "planes")


def _home(name: str) -> str:
    """The one module of :data:`HOMES` whose ``__all__`` lists ``name``."""
    homes = [m for m in HOMES if name in importlib.import_module(f"dlbio_teach.{m}").__all__]
    assert len(homes) == 1, f"{name} is listed (documented) in {homes}, not in exactly one"
    return homes[0]


@pytest.mark.parametrize("name", PUBLIC_IN_0_7_0)
def test_every_name_of_0_7_0_is_still_imported_from_segmentation(name):
    """The same object, documented once: on the API page of its home module."""
    home = importlib.import_module(f"dlbio_teach.{_home(name)}")
    assert getattr(segmentation_module, name) is getattr(home, name)


def _segmentation_imports(code: str) -> set[str]:
    code = "\n".join(re.sub(r"^(\s*)[%!].*", r"\1pass", line) for line in code.splitlines())
    return {alias.name for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.ImportFrom) and node.module == "dlbio_teach.segmentation"
            for alias in node.names}


def test_the_reader_of_segmentation_imports_sees_every_form():
    code = ("%pip install x\nfrom dlbio_teach.segmentation import (a,\n    b)\n"
            "def f():\n    from dlbio_teach.segmentation import c\nfrom dlbio_teach.star import d")
    assert _segmentation_imports(code) == {"a", "b", "c"}


def _sources_importing_segmentation() -> dict:
    sources = {}
    for path in sorted((REPO_ROOT / "notebooks").glob("**/*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        sources[path] = "\n".join("".join(c["source"]) for c in cells
                                  if c["cell_type"] == "code")
    for path in sorted((REPO_ROOT / "book").glob("*.md")):
        sources[path] = "\n".join(re.findall(r"^```python\n(.*?)^```$",
                                             path.read_text(encoding="utf-8"), re.M | re.S))
    for path in sorted((REPO_ROOT / "benchmarks").glob("*.py")):
        sources[path] = path.read_text(encoding="utf-8")
    return sources


def test_chapters_pages_and_benchmarks_import_only_what_segmentation_has():
    """The chapters, their learners' copies, the book's pages and the benchmarks may keep
    ``from dlbio_teach.segmentation import ...`` for any name that moved out of it."""
    sources = _sources_importing_segmentation()
    assert len([p for p in sources if p.suffix == ".ipynb"]) >= 14
    missing = {str(path.relative_to(REPO_ROOT)): sorted(
        name for name in _segmentation_imports(code)
        if not hasattr(segmentation_module, name))
        for path, code in sources.items()}
    assert not {k: v for k, v in missing.items() if v}, missing
