"""The record of the course's runs on GPUs (benchmarks/gpu_runs.json) and its table.

    python benchmarks/gpu_runs.py                      # the Markdown table of the record
    python benchmarks/gpu_runs.py --add OUT/gpu_runs.json   # append a runner's runs, then the table

One entry per run and profile::

    {"device": "NVIDIA H200", "profile": "full", "date": "2026-12-04", "version": "0.6.0",
     "wall_seconds": 520, "chapters": {"01_nn_basics": {"outcome": "passed", "seconds": 127},
                                       "06_volumes": {"outcome": "not run", "seconds": null}}}

An outcome is "passed" (every cell ran, check cells included), "failed" (a cell raised: its
note says which and why), "not finished" (stopped at the time allowed; the note says where)
or "not run". A profile counts as verified on a device only when a run of it there has every
chapter passed (``verified``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "gpu_runs.json"
CHAPTERS = ["01_nn_basics", "02_restoration", "03_segmentation", "04_validation",
            "05_reporting", "06_volumes", "07_tracking"]
OUTCOMES = ("passed", "failed", "not finished", "not run")
REQUIRED = {"device": str, "profile": str, "date": str, "chapters": dict}


def check_run(run: dict) -> None:
    """Raise ValueError where a run does not follow the record's schema."""
    for key, kind in REQUIRED.items():
        if not isinstance(run.get(key), kind):
            raise ValueError(f"run needs {key!r} ({kind.__name__}): {run.get(key)!r}")
    if run.get("wall_seconds") is not None and not isinstance(run["wall_seconds"], (int, float)):
        raise ValueError(f"wall_seconds must be a number: {run['wall_seconds']!r}")
    if run["profile"] not in {"smoke", "standard", "full"}:
        raise ValueError(f"unknown profile {run['profile']!r}")
    for name, chapter in run["chapters"].items():
        if chapter.get("outcome") not in OUTCOMES:
            raise ValueError(f"{name}: outcome must be one of {OUTCOMES}: {chapter!r}")
        seconds = chapter.get("seconds")
        if seconds is not None and not (isinstance(seconds, (int, float)) and seconds >= 0):
            raise ValueError(f"{name}: seconds must be a number >= 0 or null: {chapter!r}")
        if chapter["outcome"] == "not run" and seconds is not None:
            raise ValueError(f"{name}: a chapter not run has no seconds: {chapter!r}")


def load(path: Path = RECORD) -> dict:
    record = json.loads(Path(path).read_text())
    if not isinstance(record.get("runs"), list):
        raise ValueError("the record needs a list 'runs'")
    for run in record["runs"]:
        check_run(run)
    return record


def verified(record: dict, profile: str) -> bool:
    """True when a run of ``profile`` has every chapter of the course passed."""
    return any(run["profile"] == profile
               and all(run["chapters"].get(c, {}).get("outcome") == "passed" for c in CHAPTERS)
               for run in record["runs"])


def _cell(chapter: dict | None) -> str:
    if not chapter or chapter["outcome"] == "not run":
        return "not run"
    seconds = chapter.get("seconds")
    time = "" if seconds is None else f"{seconds:.0f} s"
    if chapter["outcome"] == "not finished" and seconds is not None:
        time = f"> {seconds:.0f} s"
    text = ", ".join(t for t in (chapter["outcome"], time) if t)
    note = chapter.get("note")
    return f"{text} ({note})" if note else text


def table(record: dict) -> str:
    """Markdown: a row per chapter, a column per run (device, profile, date, version)."""
    runs = record["runs"]
    heads = [f"{r['device']}, `{r['profile']}`, {r['date']}"
             + (f" ({r['version']})" if r.get("version") else "") for r in runs]
    names = CHAPTERS + sorted({c for r in runs for c in r["chapters"]} - set(CHAPTERS))
    lines = ["| notebook | " + " | ".join(heads) + " |",
             "|---|" + "---|" * len(runs)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_cell(r["chapters"].get(name)) for r in runs)
                     + " |")
    walls = [("" if r.get("wall_seconds") is None else f"{r['wall_seconds']:.0f} s")
             for r in runs]
    lines.append("| wall time | " + " | ".join(walls) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--add", type=Path, help="a runner's gpu_runs.json: append its runs")
    args = parser.parse_args(argv)
    record = load(args.record)
    if args.add:
        new = load(args.add)
        record["runs"].extend(new["runs"])
        args.record.write_text(json.dumps(record, indent=1) + "\n")
    print(table(record))


if __name__ == "__main__":
    main()
