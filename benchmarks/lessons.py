"""Run the chapters with several seeds and gather their lessons into one results file.

    python benchmarks/lessons.py                       # seeds 0-4, chapters 1-6, standard
    python benchmarks/lessons.py --seeds 0 1 --chapters 02_restoration

Each chapter shows one run. Here every chapter runs again, top to bottom in a fresh kernel
(as ``course_time.py`` runs it), once per seed: ``DLBIO_SEED`` sets the seed of every
training and of its patch sampling, while the splits of the data stay fixed. Each chapter's
check cell hands its comparisons to ``dlbio_teach.lessons.record_lessons``, which writes
them to ``$DLBIO_LESSONS_DIR`` during this run only; the values of all seeds are gathered,
with the machine and the time they took, into ``dlbio_teach/lessons_results.json``, the
file the chapters read to show the spread over seeds beside their own run.

The chapters run with strict readings (``DLBIO_STRICT_READINGS=1``), as when their
committed outputs are made: a run that stops at its check cell is reported as failed,
with the seed, so that the results say for which seeds the chapters' text holds.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ("01_nn_basics", "02_restoration", "03_segmentation", "04_validation",
            "05_reporting", "06_volumes")
RESULTS = REPO_ROOT / "dlbio_teach" / "lessons_results.json"


def _course_time():
    """benchmarks/course_time.py, which runs one notebook in a fresh kernel."""
    spec = importlib.util.spec_from_file_location("course_time",
                                                  Path(__file__).with_name("course_time.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine_description() -> str:
    import torch

    from dlbio_teach.runtime import hardware_info
    hardware = hardware_info("cpu")
    return (f"{hardware['machine']} ({hardware['cpu']}), {hardware['cpu_count']} cores, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def gather(lessons_dir: Path, chapters, seeds) -> dict:
    """The recorded values of every chapter, in seed order: {chapter: {seeds, values}}."""
    gathered = {}
    for chapter in chapters:
        runs = {}
        for seed in seeds:
            path = lessons_dir / f"{chapter}_seed{seed}.json"
            if path.is_file():
                runs[seed] = json.loads(path.read_text(encoding="utf-8"))["values"]
        if not runs:
            continue
        names = list(dict.fromkeys(n for values in runs.values() for n in values))
        complete = [s for s in runs if all(n in runs[s] for n in names)]
        gathered[chapter] = {"seeds": complete,
                             "values": {n: [runs[s][n] for s in complete] for n in names}}
    return gathered


def summary_lines(gathered: dict) -> list[str]:
    from dlbio_teach.lessons import SeedTable, lessons_table
    lines = []
    for chapter, entry in gathered.items():
        table = SeedTable(chapter, entry["seeds"], entry["values"], machine="")
        lines += [f"\n### {chapter} (seeds {entry['seeds']})\n",
                  lessons_table(table, {n: (n, "") for n in entry["values"]})]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--chapters", nargs="+", default=list(CHAPTERS))
    parser.add_argument("--profile", default="standard", choices=["smoke", "standard", "full"])
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"results file (default: {RESULTS.relative_to(REPO_ROOT)})")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--lessons-dir", type=Path,
                        help="where the chapters record their lessons (default: a new folder)")
    parser.add_argument("--recorded-seeds", type=int, nargs="*", default=[],
                        help="seeds already recorded in --lessons-dir (for example by the run "
                             "whose outputs are committed, made with DLBIO_LESSONS_DIR set): "
                             "gathered, not run again")
    args = parser.parse_args(argv)

    course_time = _course_time()
    lessons_dir = args.lessons_dir or Path(tempfile.mkdtemp(prefix="dlbio-lessons-"))
    env = course_time.kernel_environment(args.profile)
    env["DLBIO_LESSONS_DIR"] = str(lessons_dir)
    if not env.get("DLBIO_DATA_MIRROR") and course_time.MIRROR_DIR.is_dir():
        from dlbio_teach.mirror import serve_mirror
        env["DLBIO_DATA_MIRROR"], _ = serve_mirror(course_time.MIRROR_DIR)

    start = time.perf_counter()
    runs = {chapter: {str(s): {"ok": None, "seconds": None, "recorded": True}
                      for s in args.recorded_seeds} for chapter in args.chapters}
    for seed in args.seeds:
        env["DLBIO_SEED"] = str(seed)
        for chapter in args.chapters:
            path = REPO_ROOT / "notebooks" / f"{chapter}.ipynb"
            print(f"seed {seed}: {chapter} ...", flush=True)
            result = course_time.run_notebook(path, profile=args.profile, write=False,
                                              timeout=args.timeout, env=env)
            runs[chapter][str(seed)] = {"ok": result["ok"], "seconds": result["seconds"]}
            print(f"  {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s", flush=True)
    minutes = (time.perf_counter() - start) / 60

    seeds = sorted(set(args.recorded_seeds) | set(args.seeds))
    gathered = gather(lessons_dir, args.chapters, seeds)
    results = {"machine": machine_description(), "profile": args.profile,
               "date": datetime.date.today().isoformat(), "minutes": round(minutes, 1),
               "runs": runs, "chapters": gathered}
    if args.out.is_file():   # keep the chapters this run did not repeat
        previous = json.loads(args.out.read_text(encoding="utf-8"))
        for chapter in previous.get("chapters", {}):
            if chapter not in gathered:
                results["chapters"][chapter] = previous["chapters"][chapter]
                results["runs"][chapter] = previous["runs"].get(chapter, {})
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")

    print("\n".join(summary_lines(gathered)))
    passed = [s for s in args.seeds if all(runs[c][str(s)]["ok"] for c in args.chapters)]
    print(f"\nMachine: {results['machine']}; results in {args.out}")
    print(f"lessons: {len(args.chapters)} chapters x {len(args.seeds)} seeds in {minutes:.1f} min; "
          f"every chapter passed its strict checks for seeds {passed}")
    return 0 if passed == list(args.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
