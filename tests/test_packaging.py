"""pyproject.toml and the CI's floor install agree, so that the floors CI tests are the
floors users are allowed."""
from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:   # Python 3.10
    tomllib = None


def _floors_file() -> dict:
    pins = {}
    for line in (REPO_ROOT / ".ci" / "floors.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def _declared_floors() -> dict:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        deps = tomllib.loads(text)["project"]["dependencies"]
    else:
        block = text.split("dependencies = [", 1)[1].split("\n]", 1)[0]   # not dask[array]'s
        deps = re.findall(r'"([^"]+)"', block)
    floors = {}
    for dep in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[\w,]+\])?\s*>=\s*([0-9][0-9.]*)(,.*)?",
                             dep.strip())   # extras such as dask[array] are allowed
        assert match, f"dependency {dep!r} has no '>=' floor"
        floors[match.group(1).lower()] = match.group(2)
    return floors


def test_ci_installs_every_declared_floor():
    declared, pinned = _declared_floors(), _floors_file()
    assert set(pinned) == set(declared), (
        f"pyproject.toml and .ci/floors.txt name different packages: "
        f"{sorted(set(declared) ^ set(pinned))}")
    for name, floor in declared.items():
        want = floor.split(".")[:2]
        got = pinned[name].split(".")[:len(want)]
        assert got == want, (f"{name}: pyproject.toml allows >={floor} but CI tests "
                             f"{pinned[name]}: pin the floor's release in .ci/floors.txt")
