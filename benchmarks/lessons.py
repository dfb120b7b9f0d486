"""Run the chapters with several seeds and gather their lessons into one results file.

    python benchmarks/lessons.py                       # seeds 0-4, chapters 1-7, standard
    python benchmarks/lessons.py --seeds 0 1 --chapters 02_restoration
    python benchmarks/lessons.py --chapters 03_segmentation --kernels avx2 default
    python benchmarks/lessons.py --chapters 07_tracking --kernels best avx2   # both, one file
    python benchmarks/lessons.py --chapters 04_validation --keep-kernels AVX2   # beside them

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

``--kernels`` repeats every seed on other families of CPU kernels (``ATEN_CPU_CAPABILITY``
for PyTorch's own kernels, ``ONEDNN_MAX_CPU_ISA`` for oneDNN's convolutions): their sums
round in another order, so a seeded training gives other weights, as it does on a
learner's CPU of another kind. A family the CPU lacks falls back to the best it has. Such
a run is a learner's run, not the book's: its chapters read their outputs as a learner's
do (a reading that does not hold prints a note instead of stopping the run), their checks
stay hard, and the results count the notes of each run (``readings_noted``).
``--keep-kernels`` keeps a chapter's runs on those families from the results file (made
on another machine, perhaps) beside the new ones; each chapter's entry names the machine
of its runs.
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
            "05_reporting", "06_volumes", "07_tracking")
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
    """The recorded values of every chapter, runs in (kernels, seed) order:
    {chapter: {seeds, kernels, values}}. A run is kept only if it recorded every lesson."""
    gathered = {}
    for chapter in chapters:
        runs = {}
        for path in sorted(lessons_dir.glob(f"{chapter}_seed*.json")):
            run = json.loads(path.read_text(encoding="utf-8"))
            if run["seed"] in seeds:
                runs[run.get("kernels"), run["seed"]] = run["values"]
        if not runs:
            continue
        names = list(dict.fromkeys(n for values in runs.values() for n in values))
        complete = sorted((k for k in runs if all(n in runs[k] for n in names)),
                          key=lambda k: (str(k[0]), k[1]))
        gathered[chapter] = {"seeds": [seed for _, seed in complete],
                             "kernels": [kernels for kernels, _ in complete],
                             "values": {n: [runs[k][n] for k in complete] for n in names}}
    return gathered


def keep_runs(entry: dict, previous: dict, families, *, machine: str,
              previous_machine: str) -> dict:
    """``entry`` (this run's gathering of one chapter) with ``previous``'s runs on the CPU
    kernel ``families`` added, all in (kernels, seed) order, and a machine naming both."""
    kept = [i for i, k in enumerate(previous.get("kernels") or []) if k in families]
    if not kept:
        return {**entry, "machine": machine}
    names = [n for n in entry["values"] if n in previous["values"]]
    dropped = sorted(set(entry["values"]).symmetric_difference(previous["values"]))
    if dropped:
        print(f"  lessons not in both sets of runs, left out: {dropped}", flush=True)
    runs = [(entry["kernels"][i], entry["seeds"][i], {n: entry["values"][n][i] for n in names})
            for i in range(len(entry["seeds"]))]
    runs += [(previous["kernels"][i], previous["seeds"][i],
              {n: previous["values"][n][i] for n in names}) for i in kept]
    runs.sort(key=lambda run: (str(run[0]), run[1]))
    new = sorted(set(entry["kernels"]) - set(families))
    return {"seeds": [seed for _, seed, _ in runs], "kernels": [k for k, _, _ in runs],
            "values": {n: [values[n] for _, _, values in runs] for n in names},
            "machine": (f"{previous_machine} ({' and '.join(sorted(families))} runs); "
                        f"{machine} ({' and '.join(new)} runs)")}


#: oneDNN's instruction sets that go with ATEN_CPU_CAPABILITY's families.
ONEDNN_ISA = {"default": "SSE41", "avx2": "AVX2", "avx512": "AVX512_CORE"}


def with_kernels(env: dict, kernels: str | None) -> dict:
    """``env`` made to have PyTorch run one family of CPU kernels (ATen's and oneDNN's);
    ``None``: the best the CPU offers, PyTorch's own choice, with the book's strict readings.
    On another family the readings print notes, as on a learner's machine."""
    env = {k: v for k, v in env.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    if kernels is None:
        return {**env, "DLBIO_STRICT_READINGS": "1"}
    if kernels not in ONEDNN_ISA:
        raise SystemExit(f"--kernels takes {sorted(ONEDNN_ISA)}, got {kernels!r}")
    return {**env, "ATEN_CPU_CAPABILITY": kernels, "ONEDNN_MAX_CPU_ISA": ONEDNN_ISA[kernels],
            "DLBIO_STRICT_READINGS": "0"}


def readings_noted(notebook: str | Path) -> int:
    """How many readings of the text printed a note in this executed notebook (a run whose
    readings are not strict: ``dlbio_teach.readings``)."""
    from dlbio_teach.readings import NOTE

    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return sum("".join(output.get("text", "")).count(NOTE)
               for cell in cells for output in cell.get("outputs", []))


def summary_lines(gathered: dict) -> list[str]:
    from dlbio_teach.lessons import SeedTable, lessons_table
    lines = []
    for chapter, entry in gathered.items():
        table = SeedTable(chapter, entry["seeds"], entry["values"], machine="",
                          kernels=entry.get("kernels"))
        lines += [f"\n### {chapter} ({table.runs()})\n",
                  lessons_table(table, {n: (n, "") for n in entry["values"]})]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4],
                        help="seeds to run (none: only gather --recorded-seeds)")
    parser.add_argument("--chapters", nargs="+", default=list(CHAPTERS))
    parser.add_argument("--kernels", nargs="+", default=[None],
                        help="families of CPU kernels to run each seed on, as "
                             "ATEN_CPU_CAPABILITY names them (e.g. avx2 default), or best: "
                             "the CPU's best, PyTorch's own choice (the default). "
                             "ONEDNN_MAX_CPU_ISA is set to match, so that oneDNN's "
                             "convolutions change family too.")
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
    parser.add_argument("--keep-kernels", nargs="*", default=[],
                        help="families of CPU kernels (as recorded: AVX2, AVX512, DEFAULT) whose "
                             "runs of these chapters in --out are kept beside the new runs")
    args = parser.parse_args(argv)

    args.kernels = [None if kernels == "best" else kernels for kernels in args.kernels]
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
    for kernels in args.kernels:
        env = with_kernels(env, kernels)
        for seed in args.seeds:
            env["DLBIO_SEED"] = str(seed)
            key = str(seed) if kernels is None else f"{seed} {kernels}"
            for chapter in args.chapters:
                path = REPO_ROOT / "notebooks" / f"{chapter}.ipynb"
                print(f"seed {key}: {chapter} ...", flush=True)
                result = course_time.run_notebook(path, profile=args.profile, write=False,
                                                  timeout=args.timeout, env=env)
                runs[chapter][key] = {"ok": result["ok"], "seconds": result["seconds"]}
                noted = ""
                if kernels is not None:
                    runs[chapter][key]["readings_noted"] = readings_noted(result["output"])
                    noted = f", {runs[chapter][key]['readings_noted']} readings printed a note"
                print(f"  {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s{noted}",
                      flush=True)
    minutes = (time.perf_counter() - start) / 60

    seeds = sorted(set(args.recorded_seeds) | set(args.seeds))
    gathered = gather(lessons_dir, args.chapters, seeds)
    machine = machine_description()
    previous = (json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file()
                else {"chapters": {}, "runs": {}})
    for chapter, entry in gathered.items():
        before = previous["chapters"].get(chapter, {})
        gathered[chapter] = keep_runs(entry, before, args.keep_kernels, machine=machine,
                                      previous_machine=before.get("machine",
                                                                  previous.get("machine")))
        if set(args.keep_kernels) & set(before.get("kernels") or []):
            runs[chapter].update({f"{key} (kept)": {**record, "kept": True} for key, record in
                                  previous["runs"].get(chapter, {}).items()})
    results = {"machine": machine, "profile": args.profile,
               "date": datetime.date.today().isoformat(), "minutes": round(minutes, 1),
               "runs": runs, "chapters": dict(gathered)}
    for chapter in previous["chapters"]:   # keep the chapters this run did not repeat
        if chapter not in gathered:
            results["chapters"][chapter] = {"machine": previous["machine"],
                                            **previous["chapters"][chapter]}
            results["runs"][chapter] = previous["runs"].get(chapter, {})
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")

    print("\n".join(summary_lines(gathered)))
    passed = [key for key, record in runs[args.chapters[0]].items()
              if not (record.get("recorded") or record.get("kept"))
              and all(runs[c][key]["ok"] for c in args.chapters)]
    print(f"\nMachine: {results['machine']}; results in {args.out}")
    print(f"lessons: {len(args.chapters)} chapters x {len(args.seeds)} seeds x "
          f"{len(args.kernels)} kernel families in {minutes:.1f} min; "
          f"every chapter passed its strict checks for runs {passed}")
    return 0 if len(passed) == len(args.seeds) * len(args.kernels) else 1


if __name__ == "__main__":
    sys.exit(main())
