"""dlbio_teach.mirror: the command line (list, cards, prefetch) and workshop mirrors.

The command line runs as ``python -m dlbio_teach.data``, the documented command. The
downloads go through the loopback server that conftest.py starts on ../shared/data-mirror;
each test gets its own empty DLBIO_DATA_DIR.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dlbio_teach.data import (
    REGISTRY,
    ChecksumError,
    DataFile,
    Dataset,
    DatasetUnavailableError,
    fetch,
    file_sha256,
    load,
)
from dlbio_teach.mirror import build_mirror, mirror_path, serve_mirror

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRRORED = sorted(n for n, d in REGISTRY.items() if d.mirrored)
CLOSED_PORT = "http://127.0.0.1:9"   # the discard port: nothing listens on loopback


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the command line -------------------------------------------------------------------

def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dlbio_teach.data", *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})})


def test_cli_list():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(REGISTRY)
    for name, d in REGISTRY.items():
        line = next(line for line in lines if line.split()[0] == name)
        assert ("mirrored" if d.mirrored else "standard") in line


def test_cli_cards():
    result = run_cli("cards")
    assert result.returncode == 0, result.stderr
    for name in REGISTRY:
        assert f"### `{name}`" in result.stdout


def test_cli_needs_a_command():
    result = run_cli()
    assert result.returncode != 0
    assert "usage" in result.stderr.lower()


def test_cli_prefetch_blobs(data_home):
    result = run_cli("prefetch", "blobs", env={"DLBIO_DATA_DIR": str(data_home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      blobs" in result.stdout
    assert f"Data folder: {data_home}" in result.stdout
    for f in REGISTRY["blobs"].files.values():
        assert file_sha256(data_home / "blobs" / f.fname) == f.sha256


def test_cli_prefetch_failure_exit_code(data_home):
    result = run_cli("prefetch", "blobs", env={"DLBIO_DATA_DIR": str(data_home),
                                               "DLBIO_OFFLINE": "1"})
    assert result.returncode == 1
    assert "FAILED  blobs" in result.stdout


def mirror_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden and temporary ones included), relative."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def expected_mirror_files(names) -> list[str]:
    return sorted(mirror_path(f.url) for n in names for f in REGISTRY[n].files.values())


def test_mirror_path():
    assert mirror_path(REGISTRY["blobs"].files["image"].url) == (
        "github.com/haesleinhuepf/BioImageAnalysisNotebooks/raw/"
        "3766d2f6056aa0058241b80a66c234977e833762/data/blobs.tif")
    assert mirror_path("https://h.org/s/ID/download") == "h.org/s/ID/download"
    with pytest.raises(ValueError, match="https://"):
        mirror_path("http://h.org/a.tif")


def test_cli_prefetch_to_builds_a_mirror_that_serves_the_course(data_home, tmp_path,
                                                                  monkeypatch):
    """Workshop mode end to end: build a mirror from the loopback mirror, serve it with the
    package's static server, and download a dataset through it into a fresh cache."""
    mirror = tmp_path / "workshop-mirror"
    result = run_cli("prefetch", "--all", "--to", str(mirror),
                     env={"DLBIO_DATA_DIR": str(data_home)})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for name, d in REGISTRY.items():
        if d.mirrored:
            assert f"ok      {name}" in out
        else:   # not in ../shared/data-mirror: skipped with a note, not a failure
            assert re.search(rf"SKIPPED {name}: cannot be reached .*no chapter uses it",
                             out), out
    assert f"Mirror folder: {mirror.resolve()}" in out
    assert "DLBIO_DATA_MIRROR=http://" in out and "http.server" in out
    # FOLDER/HOST/PATH for every file, verified, and nothing else: no partial downloads.
    assert mirror_files(mirror) == expected_mirror_files(MIRRORED)
    for name in MIRRORED:
        for f in REGISTRY[name].files.values():
            assert file_sha256(mirror / mirror_path(f.url)) == f.sha256
    # Downloaded, not copied from a cache: the download folder stayed empty.
    assert cache_files(data_home) == []

    url, server = serve_mirror(mirror)
    try:
        fresh = tmp_path / "learner-cache"
        monkeypatch.setenv("DLBIO_DATA_DIR", str(fresh))
        monkeypatch.setenv("DLBIO_DATA_MIRROR", url)
        paths = fetch("stardist_nuclei", progressbar=False)
        for key, f in REGISTRY["stardist_nuclei"].files.items():
            assert paths[key] == fresh / "stardist_nuclei" / f.fname
            assert file_sha256(paths[key]) == f.sha256
        assert load("blobs")["labels"].max() == 63
    finally:
        server.shutdown()
        server.server_close()


def test_build_mirror_copies_the_cache_offline(data_home, tmp_path, monkeypatch):
    fetch("blobs", progressbar=False)
    monkeypatch.setenv("DLBIO_OFFLINE", "1")
    mirror = tmp_path / "m"
    status = build_mirror(mirror, ["blobs", "stardist_nuclei"])
    assert status["blobs"] is None
    assert isinstance(status["stardist_nuclei"], DatasetUnavailableError)
    assert mirror_files(mirror) == expected_mirror_files(["blobs"])
    for f in REGISTRY["blobs"].files.values():
        assert file_sha256(mirror / mirror_path(f.url)) == f.sha256


def test_build_mirror_replaces_a_damaged_file_and_keeps_good_ones(data_home, tmp_path):
    mirror = tmp_path / "m"
    assert build_mirror(mirror, ["blobs"]) == {"blobs": None}
    image = mirror / mirror_path(REGISTRY["blobs"].files["image"].url)
    labels = mirror / mirror_path(REGISTRY["blobs"].files["labels"].url)
    image.write_bytes(b"damaged")
    mtime = labels.stat().st_mtime_ns
    assert build_mirror(mirror, ["blobs"]) == {"blobs": None}
    assert file_sha256(image) == REGISTRY["blobs"].files["image"].sha256
    assert labels.stat().st_mtime_ns == mtime
    assert mirror_files(mirror) == expected_mirror_files(["blobs"])


def test_build_mirror_checksum_mismatch_leaves_no_file(data_home, tmp_path):
    good = REGISTRY["blobs"].files["image"]
    wrong = hashlib.sha256(b"not the blobs image").hexdigest()
    registry = {"bad": Dataset(name="bad", files={"image": DataFile(good.url, wrong)},
                               description="d", licence="l", citation="c",
                               source="https://example.org")}
    mirror = tmp_path / "m"
    status = build_mirror(mirror, registry=registry)
    assert isinstance(status["bad"], ChecksumError)
    assert mirror_files(mirror) == []


def test_cli_prefetch_to_unreachable_course_dataset_fails(data_home, tmp_path):
    mirror = tmp_path / "m"
    result = run_cli("prefetch", "blobs", "n2v_sem", "--to", str(mirror),
                     env={"DLBIO_DATA_DIR": str(data_home), "DLBIO_DATA_MIRROR": CLOSED_PORT})
    assert result.returncode == 1
    # Named explicitly, an unreachable dataset is a failure, not a skip.
    assert "FAILED  blobs" in result.stdout and "FAILED  n2v_sem" in result.stdout
    assert not mirror.exists() or mirror_files(mirror) == []


def test_cli_prefetch_unknown_dataset():
    result = run_cli("prefetch", "no_such_dataset")
    assert result.returncode == 2
    assert "no_such_dataset" in result.stdout and "stardist_nuclei" in result.stdout


# --- the "Used in" lists match what the notebooks load ----------------------------------

# Chapter name on the cards -> notebook.
