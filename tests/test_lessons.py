"""Lessons over seeds: recorded only in the benchmark, gathered per chapter, shown beside a run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from dlbio_teach.intervals import paired_difference
from dlbio_teach.lessons import (
    LESSONS_DIR,
    RESULTS,
    SeedTable,
    cpu_kernels,
    lessons_table,
    load_lessons,
    record_lessons,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("lessons_benchmark",
                                                  REPO_ROOT / "benchmarks" / "lessons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nothing_is_written_outside_the_benchmark(monkeypatch, tmp_path):
    monkeypatch.delenv(LESSONS_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert record_lessons("09_x", {"gain": 1.0}, seed=0) is None
    assert list(tmp_path.iterdir()) == []


def test_record_writes_numbers_intervals_and_names(monkeypatch, tmp_path):
    monkeypatch.setenv(LESSONS_DIR, str(tmp_path / "lessons"))
    interval = paired_difference([1.0, 2.0, 3.0], [0.5, 1.0, 1.0], seed=0).difference
    path = record_lessons("09_x", {"gain": 0.25, "paired": interval, "chosen": "StarDist"},
                          seed=3)
    assert path == tmp_path / "lessons" / f"09_x_seed3_{cpu_kernels()}.json"
    written = json.loads(path.read_text())
    assert written["seed"] == 3 and written["values"]["gain"] == 0.25
    assert written["kernels"] == cpu_kernels()
    assert written["values"]["chosen"] == "StarDist"
    assert written["values"]["paired"] == pytest.approx(
        {"estimate": interval.estimate, "low": interval.low, "high": interval.high})
    assert not list(path.parent.glob("*.part")), "a partial file was left behind"


def test_gather_orders_by_seed_and_keeps_complete_runs(monkeypatch, tmp_path):
    monkeypatch.setenv(LESSONS_DIR, str(tmp_path))
    record_lessons("09_x", {"gain": 2.0, "chosen": "a"}, seed=1)
    record_lessons("09_x", {"gain": 1.0, "chosen": "b"}, seed=0)
    record_lessons("09_x", {"gain": 5.0}, seed=2)          # stopped before its last lesson
    gathered = _benchmark().gather(tmp_path, ["09_x", "10_missing"], [0, 1, 2])
    assert list(gathered) == ["09_x"]
    assert gathered["09_x"] == {"seeds": [0, 1], "kernels": [cpu_kernels()] * 2,
                                "values": {"gain": [1.0, 2.0], "chosen": ["b", "a"]}}


def test_gather_keeps_one_seed_run_on_two_kernel_families_apart(tmp_path):
    for kernels, seed, gain in [("DEFAULT", 0, 3.0), ("AVX2", 1, 2.0), ("AVX2", 0, 1.0),
                                ("DEFAULT", 1, 4.0)]:
        (tmp_path / f"09_x_seed{seed}_{kernels}.json").write_text(json.dumps(
            {"chapter": "09_x", "seed": seed, "kernels": kernels, "values": {"gain": gain}}))
    gathered = _benchmark().gather(tmp_path, ["09_x"], [0, 1])["09_x"]
    assert gathered == {"seeds": [0, 1, 0, 1], "kernels": ["AVX2", "AVX2", "DEFAULT", "DEFAULT"],
                        "values": {"gain": [1.0, 2.0, 3.0, 4.0]}}
    table = SeedTable("09_x", gathered["seeds"], gathered["values"], "m", gathered["kernels"])
    assert table.runs() == "seeds [0, 1] on CPU kernels AVX2 and DEFAULT (4 runs)"
    assert "(+1.00 to +4.00)" in lessons_table(table, {"gain": ("A - B", "")})


def test_runs_of_another_machine_are_kept_beside_the_new_ones_with_both_machines_named():
    entry = {"seeds": [0, 1], "kernels": ["AVX512", "AVX512"],
             "values": {"gain": [5.0, 6.0], "new only": [1.0, 1.0]}}
    previous = {"seeds": [0, 1, 0], "kernels": ["AVX2", "AVX2", "DEFAULT"],
                "values": {"gain": [1.0, 2.0, 3.0]}}
    kept = _benchmark().keep_runs(entry, previous, ["AVX2"], machine="box B",
                                  previous_machine="box A")
    assert kept["seeds"] == [0, 1, 0, 1] and kept["kernels"] == ["AVX2", "AVX2", "AVX512", "AVX512"]
    assert kept["values"] == {"gain": [1.0, 2.0, 5.0, 6.0]}, "a lesson one set lacks is left out"
    assert kept["machine"] == "box A (AVX2 runs); box B (AVX512 runs)"
    alone = _benchmark().keep_runs(entry, previous, [], machine="box B", previous_machine="box A")
    assert alone == {**entry, "machine": "box B"}


def test_kernel_families_set_both_libraries_and_readings_as_a_learners_run():
    bench = _benchmark()
    env = bench.with_kernels({"PATH": "p", "ATEN_CPU_CAPABILITY": "avx2"}, "default")
    assert env == {"PATH": "p", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                   "DLBIO_STRICT_READINGS": "0"}
    assert bench.with_kernels(env, None) == {"PATH": "p", "DLBIO_STRICT_READINGS": "1"}
    with pytest.raises(SystemExit, match="--kernels takes"):
        bench.with_kernels({}, "avx9")


def _table():
    return SeedTable("09_x", [0, 1, 2], {
        "diff": [{"estimate": 1.0, "low": 0.2, "high": 1.8},
                 {"estimate": -0.5, "low": -0.9, "high": -0.1},
                 {"estimate": 0.3, "low": -0.2, "high": 0.8}],
        "score": [0.8, 0.9, 0.7],
        "gap": [0.0, 0.1, 0.2],
        "chosen": ["A", "B", "A"]}, machine="a laptop")


def test_seed_table_counts():
    table = _table()
    assert table.above_zero("diff") == 1 and table.below_zero("diff") == 1
    assert table.estimates("diff").tolist() == [1.0, -0.5, 0.3]
    assert table.count("score", lambda v: v > 0.75) == 2


def test_lessons_table_shows_this_run_beside_the_spread():
    text = lessons_table(_table(), {"diff": ("A - B", " dB"), "score": ("F1", ""),
                                    "gap": ("C - D", ""),
                                    "chosen": ("chosen", "")},
                         this_run={"diff": {"estimate": 1.0, "low": 0.2, "high": 1.8},
                                   "chosen": "A"})
    rows = text.splitlines()
    assert rows[2] == ("| A - B | +1.00 dB [+0.20, +1.80] | +0.27 dB (-0.50 to +1.00) | "
                       "1 of 3 | 1 of 3 |")
    assert rows[3] == "| F1 |  | 0.80 (0.70 to 0.90) |  |  |"
    assert rows[4] == "| C - D |  | +0.10 (+0.00 to +0.20) |  |  |"
    assert rows[5] == "| chosen | A | A in 2 of 3, B in 1 of 3 | | |"


def test_lessons_table_shows_small_differences_with_the_digits_asked():
    text = lessons_table(_table(), {"diff": ("A - B", "", 3), "score": ("F1", "", 4)},
                         this_run={"diff": {"estimate": 0.0012, "low": 0.0004, "high": 0.002},
                                   "score": 0.81234})
    rows = text.splitlines()
    assert rows[2] == ("| A - B | +0.001 [+0.000, +0.002] | +0.267 (-0.500 to +1.000) | "
                       "1 of 3 | 1 of 3 |")
    assert rows[3] == "| F1 | 0.8123 | 0.8000 (0.7000 to 0.9000) |  |  |"


def test_load_lessons_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/lessons.py"):
        load_lessons("02_restoration", tmp_path / "none.json")
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"machine": "m", "chapters": {"01_a": {"seeds": [0],
                                                                     "values": {}}}}))
    with pytest.raises(KeyError, match="holds no lessons of '02_b'"):
        load_lessons("02_b", path)
    assert load_lessons("01_a", path).machine == "m"


CHAPTERS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_every_trained_chapter_records_its_lessons_for_the_benchmark():
    recording = [p.stem for p in CHAPTERS if f'record_lessons("{p.stem}"' in _code(p)]
    assert recording == [p.stem for p in CHAPTERS], recording
    assert set(recording) <= set(_benchmark().CHAPTERS)


def test_chapters_that_show_lessons_have_committed_results():
    shown = sorted(p.stem for p in CHAPTERS if "load_lessons(" in _code(p))
    if shown:
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
        assert results["profile"] == "standard" and results["machine"]
    for chapter in shown:
        table = load_lessons(chapter)
        assert len(table.seeds) >= 5, f"{chapter}: lessons over {table.seeds} only"
        assert all(len(v) == len(table.seeds) for v in table.values.values())


def test_lessons_table_marks_a_lesson_not_yet_run_over_seeds():
    text = lessons_table(_table(), {"new": ("E - F", "")},
                         this_run={"new": {"estimate": 0.1, "low": -0.1, "high": 0.3}})
    assert text.splitlines()[2] == "| E - F | +0.10 [-0.10, +0.30] | not run over seeds | | |"


def test_the_notes_that_readings_printed_are_counted(monkeypatch, capsys, tmp_path):
    from dlbio_teach.readings import STRICT_READINGS, reading
    monkeypatch.setenv(STRICT_READINGS, "0")
    reading(False, "the U-Net is chosen")
    reading(True, "the baseline is tuned")
    reading(False, "F1 0.81")
    printed = capsys.readouterr().out
    notebook = tmp_path / "run.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": "Note: the text says"},
        {"cell_type": "code", "outputs": [{"output_type": "stream", "text": printed}]},
        {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {}}]}]}))
    assert _benchmark().readings_noted(notebook) == 2
