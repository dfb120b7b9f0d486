"""The GPU runner (benchmarks/gpu_full/): its record's schema, the table made from it, and
that every finished chapter is on disk before the next one ends. No network, no notebooks."""
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gpu_runs = _load("gpu_runs", ROOT / "benchmarks" / "gpu_runs.py")
runner = _load("gpu_full_run", ROOT / "benchmarks" / "gpu_full" / "run.py")
prepare = _load("gpu_full_prepare", ROOT / "benchmarks" / "gpu_full" / "prepare.py")


def test_record_follows_its_schema():
    record = gpu_runs.load()
    first = record["runs"][0]
    assert (first["device"], first["profile"], first["date"]) == ("NVIDIA H200", "full",
                                                                 "2026-12-04")
    assert set(first["chapters"]) == set(gpu_runs.CHAPTERS)
    assert first["chapters"]["06_volumes"] == {"outcome": "not run", "seconds": None}
    assert first["chapters"]["01_nn_basics"]["outcome"] == "passed"
    assert not gpu_runs.verified(record, "full")


@pytest.mark.parametrize("change", [
    {"device": None},
    {"profile": "huge"},
    {"wall_seconds": "520"},
    {"chapters": {"01_nn_basics": {"outcome": "ok", "seconds": 1}}},
    {"chapters": {"01_nn_basics": {"outcome": "passed", "seconds": -1}}},
    {"chapters": {"01_nn_basics": {"outcome": "not run", "seconds": 3}}},
])
def test_schema_rejects(change):
    run = {"device": "X", "profile": "full", "date": "2026-12-04", "wall_seconds": 1,
           "chapters": {"01_nn_basics": {"outcome": "passed", "seconds": 1}}}
    gpu_runs.check_run(run)
    with pytest.raises(ValueError):
        gpu_runs.check_run({**run, **change})


def test_verified_needs_every_chapter_passed():
    passed = {c: {"outcome": "passed", "seconds": 1} for c in gpu_runs.CHAPTERS}
    run = {"device": "X", "profile": "full", "date": "d", "chapters": passed}
    assert gpu_runs.verified({"runs": [run]}, "full")
    assert not gpu_runs.verified({"runs": [run]}, "standard")
    one_short = dict(passed, **{"06_volumes": {"outcome": "not run", "seconds": None}})
    assert not gpu_runs.verified({"runs": [dict(run, chapters=one_short)]}, "full")


def test_table_of_the_record():
    lines = gpu_runs.table(gpu_runs.load()).splitlines()
    assert lines[0] == "| notebook | NVIDIA H200, `full`, 2026-12-04 (0.6.0) |"
    assert lines[1] == "|---|---|"
    rows = dict(line.split(" | ", 1) for line in lines[2:])
    assert rows["| 01_nn_basics"] == "passed, 127 s |"
    assert rows["| 03_segmentation"] == "not finished, > 520 s (cell 20 of 60) |"
    assert rows["| 06_volumes"] == "not run |"
    assert rows["| wall time"] == "520 s |"
    assert len(lines) == 2 + len(gpu_runs.CHAPTERS) + 1


def test_outcome_of_a_chapter():
    ok = {"status": "ok", "cells": [{}] * 3, "total_cells": 3}
    assert runner.outcome(0, 12.34, ok, False) == {"seconds": 12.3, "outcome": "passed",
                                                   "cells": "3 of 3"}
    err = {"status": "error", "cells": [{}] * 2, "total_cells": 5,
           "error": {"cell": 2, "traceback": "Traceback...\nAssertionError: f1 0.78 < 0.85\n"}}
    failed = runner.outcome(1, 5, err, False)
    assert failed["outcome"] == "failed"
    assert failed["note"] == "cell 2: AssertionError: f1 0.78 < 0.85"
    late = runner.outcome(-9, 240, {"status": "running", "cells": [{}] * 4, "total_cells": 9},
                          True)
    assert (late["outcome"], late["note"], late["cells"]) == ("not finished",
                                                              "stopped in cell 5", "4 of 9")
    assert runner.outcome(1, 1, None, False)["note"] == "exit code 1"


def test_each_chapter_is_on_disk_when_it_finishes(tmp_path):
    """A fake chapter runner reads the record while it runs: the chapters before it must be
    there already (a command cut short keeps them), its own entry marked as started."""
    path = tmp_path / "gpu_runs.json"
    recorder = runner.Recorder(path)
    names = ["01_nn_basics", "02_restoration", "03_segmentation"]
    seen, outcomes = [], ["passed", "failed", "passed"]

    def launch(name, profile, timeout):
        on_disk = json.loads(path.read_text())["runs"][0]["chapters"]
        seen.append({n: c["outcome"] for n, c in on_disk.items()})
        i = names.index(name)
        return {"outcome": outcomes[i], "seconds": 0.01 * i}

    run = runner.run_profile(recorder, "Fake GPU", "smoke", names, budget=10,
                             deadline=time.monotonic() + 60, jobs=1, launch=launch)
    started = "not finished"   # what a command cut short at this point leaves
    assert seen == [
        {"01_nn_basics": started, "02_restoration": "not run", "03_segmentation": "not run"},
        {"01_nn_basics": "passed", "02_restoration": started, "03_segmentation": "not run"},
        {"01_nn_basics": "passed", "02_restoration": "failed", "03_segmentation": started},
    ]
    on_disk = gpu_runs.load(path)["runs"][0]
    assert on_disk == json.loads(json.dumps(run))
    assert [on_disk["chapters"][n]["outcome"] for n in names] == outcomes
    assert on_disk["wall_seconds"] is not None


def test_budget_and_deadline(tmp_path):
    timeouts = {}

    def launch(name, profile, timeout):
        timeouts[name] = timeout
        return {"outcome": "passed", "seconds": 0.0}

    recorder = runner.Recorder(tmp_path / "gpu_runs.json")
    runner.run_profile(recorder, "Fake GPU", "full", ["01_nn_basics"], budget=30,
                       deadline=time.monotonic() + 600, jobs=1, launch=launch)
    assert timeouts["01_nn_basics"] == 30
    late = runner.run_profile(recorder, "Fake GPU", "standard", ["02_restoration"], budget=30,
                              deadline=time.monotonic() + 2, jobs=1, launch=launch)
    assert "02_restoration" not in timeouts
    assert late["chapters"]["02_restoration"]["outcome"] == "not run"
    assert len(gpu_runs.load(tmp_path / "gpu_runs.json")["runs"]) == 2


def test_what_the_machine_carries():
    pytest.importorskip("tomllib", reason="prepare.py reads pyproject.toml with tomllib (3.11+)")
    requirements = prepare.course_requirements()
    names = {prepare.requirement_name(r) for r in requirements}
    assert {"stardist", "simpleitk", "pooch", "laptrack", "zarr", "ome-zarr"} <= names
    assert not names & {"torch", "numpy", "scipy", "scikit-image", "matplotlib", "tifffile"}
    assert prepare.is_present("nvidia-cublas-cu12") and prepare.is_present("Typing_Extensions")
    assert not prepare.is_present("pydantic")
