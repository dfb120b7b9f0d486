"""Run the course's chapters in one or more profiles on a machine without Jupyter or network
(the GPU machine), and record each chapter's outcome as soon as it is known.

    python3 benchmarks/gpu_full/run.py --profiles standard,full --budget 240 --deadline 530

From the repository root, with benchmarks/gpu_full/carry/ (prepare.py) present: unpacks the
carried packages (site.tar.xz) and data mirror, serves the mirror on 127.0.0.1, fetches every
data set, then runs the profiles one after the other, each profile's chapters side by side
(``--jobs``; two CPU threads each) through run_nb.py, each chapter stopped after ``--budget``
seconds or at ``--deadline`` (seconds since the start, for everything). Writes into
``--out`` (default ``$OUT``): gpu_runs.json (the runs in benchmarks/gpu_runs.json's schema,
rewritten after every chapter), env.json, and per profile and chapter the log, the executed
notebook and run_nb.py's per-cell summary. ``--no-site`` uses the packages of the Python
that runs it (a CPU test of the runner). Standard library only.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from gpu_runs import CHAPTERS, check_run  # noqa: E402


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


class Recorder:
    """The runs of this command; every change is written to OUT/gpu_runs.json at once."""

    def __init__(self, path: Path):
        self.path, self.runs = path, []

    def start(self, device: str, profile: str, chapters, **extra) -> dict:
        run = {"device": device, "profile": profile, "wall_seconds": None,
               "date": datetime.date.today().isoformat(), **extra,
               "chapters": {c: {"outcome": "not run", "seconds": None} for c in chapters}}
        self.runs.append(run)
        self.save()
        return run

    def chapter(self, run: dict, name: str, result: dict, wall: float) -> None:
        run["chapters"][name] = result
        run["wall_seconds"] = round(wall, 1)
        self.save()

    def save(self) -> None:
        for run in self.runs:
            check_run(run)
        write_json(self.path, {"runs": self.runs})


def outcome(rc: int | None, seconds: float, summary: dict | None, timed_out: bool) -> dict:
    """A chapter's record from its exit and run_nb.py's summary."""
    result = {"seconds": round(seconds, 1)}
    cells = len((summary or {}).get("cells", []))
    if timed_out:
        result.update(outcome="not finished", note=f"stopped in cell {cells + 1}")
    elif rc == 0 and summary and summary.get("status") == "ok":
        result.update(outcome="passed")
    else:
        error = (summary or {}).get("error") or {}
        last = (error.get("traceback") or "").strip().splitlines()[-1:] or [f"exit code {rc}"]
        where = f"cell {error['cell']}: " if error.get("cell") else ""
        result.update(outcome="failed", note=(where + last[0])[:200])
    if summary and summary.get("total_cells"):
        result["cells"] = f"{cells} of {summary['total_cells']}"
    return result


def run_chapter(name: str, profile: str, timeout: float, work: Path, env: dict,
                results: Path) -> dict:
    """Run one chapter with run_nb.py in its own copy of notebooks/; return its record.
    Its log, executed notebook and per-cell summary go to results/PROFILE/ as it runs."""
    wd = work / profile / name
    shutil.copytree(REPO / "notebooks", wd, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs"))
    res = results / profile
    res.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(res / f"{name}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(HERE / "run_nb.py"), f"{name}.ipynb",
                                 str(res)], cwd=wd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.perf_counter() - t0
    summary_path = res / f"{name}.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return outcome(proc.returncode, seconds, summary, timed_out)


def run_profile(recorder: Recorder, device: str, profile: str, chapters, budget: float,
                deadline: float, jobs: int, launch, **extra) -> dict:
    """Run the chapters side by side (``jobs`` at a time); record each as it finishes.

    ``launch(name, profile, timeout)`` runs one chapter and returns its record; ``deadline``
    is a time.monotonic() value after which no chapter starts or keeps running.
    """
    run = recorder.start(device, profile, chapters, budget_seconds=budget, **extra)
    t0 = time.monotonic()

    lock = threading.Lock()

    def one(name):
        left = min(budget, deadline - time.monotonic())
        if left < 5:
            result = {"outcome": "not run", "seconds": None, "note": "no time left"}
        else:
            with lock:   # a command cut short leaves this: started, no end recorded
                recorder.chapter(run, name, {"outcome": "not finished", "seconds": None,
                                             "note": "started; the run ended before it did"},
                                 time.monotonic() - t0)
            result = launch(name, profile, left)
        with lock:   # on disk before this worker takes the next chapter
            recorder.chapter(run, name, result, time.monotonic() - t0)
            print(f"[{profile}] {name}: {result}", flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, c) for c in chapters]:
            future.result()
    return run


SERVERS: list[subprocess.Popen] = []   # the mirror's server, ended when main() ends


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(carry: Path, work: Path, out: Path, use_site: bool) -> tuple[dict, dict]:
    """Unpack the carry, serve the mirror, fetch the data; the environment for the chapters."""
    site, mirror = work / "site", work / "mirror"
    for archive, target in ((carry / "site.tar.xz", site), (carry / "data-mirror.tar.xz", mirror)):
        if archive == carry / "site.tar.xz" and not use_site:
            continue
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               str(port), "-d", str(mirror)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    SERVERS.append(server)
    path = [str(REPO)] + ([str(site)] if use_site else []) + [str(HERE / "stub")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), MPLBACKEND="Agg",
               PYTHONUNBUFFERED="1", DLBIO_DATA_DIR=str(work / "data"),
               DLBIO_DATA_MIRROR=f"http://127.0.0.1:{port}", OMP_NUM_THREADS="2",
               MKL_NUM_THREADS="2")
    time.sleep(1)
    probe = r"""
import importlib, json, platform, torch
info = {"python": platform.python_version(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()})"}
import dlbio_teach
info["version"] = getattr(dlbio_teach, "__version__", "?")
info["failed_imports"] = {}
for m in ["stardist", "zarr", "dask", "distributed", "ome_zarr", "SimpleITK", "bioimageio.spec",
          "laptrack", "traccuracy", "geff", "pooch", "pandas", "tqdm", "requests"]:
    try:
        importlib.import_module(m)
    except Exception as e:
        info["failed_imports"][m] = f"{type(e).__name__}: {e}"[:200]
from dlbio_teach.data import REGISTRY, fetch
info["not_fetched"] = {}
for key in REGISTRY:
    try:
        fetch(key, progressbar=False)
    except Exception as e:
        info["not_fetched"][key] = f"{type(e).__name__}: {e}"[:200]
print("ENV " + json.dumps(info))
"""
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True)
    (out / "setup.log").write_text(done.stdout + done.stderr)
    lines = [x for x in done.stdout.splitlines() if x.startswith("ENV ")]
    info = (json.loads(lines[-1][4:]) if lines
            else {"device": "unknown", "error": done.stderr[-2000:]})
    info.update(cpus=os.cpu_count(), machine=platform.node())
    write_json(out / "env.json", info)
    return env, info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="standard,full", help="comma-separated, in order")
    parser.add_argument("--budget", type=float, default=240, help="seconds per chapter")
    parser.add_argument("--deadline", type=float, default=540,
                        help="seconds for everything (setup included)")
    parser.add_argument("--chapters", default=",".join(CHAPTERS))
    parser.add_argument("--jobs", type=int, default=len(CHAPTERS), help="chapters side by side")
    parser.add_argument("--carry", type=Path, default=HERE / "carry")
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/dlbio-gpu-run"))
    parser.add_argument("--no-site", action="store_true",
                        help="use this Python's packages, not the carried ones")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("give --out or set $OUT")
    deadline = time.monotonic() + args.deadline
    t0 = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work, ignore_errors=True)
    try:
        run_all(args, deadline, t0)
    finally:
        for server in SERVERS:
            server.terminate()


def run_all(args, deadline: float, t0: float) -> None:
    env, info = setup(args.carry, args.work, args.out, not args.no_site)
    print(f"setup: {time.monotonic() - t0:.0f} s; {json.dumps(info)}", flush=True)
    recorder = Recorder(args.out / "gpu_runs.json")
    chapters = args.chapters.split(",")
    for profile in args.profiles.split(","):
        penv = dict(env, DLBIO_PROFILE=profile,
                    DLBIO_LESSONS_DIR=str(args.work / "lessons" / profile))

        def launch(name, prof, timeout, penv=penv):
            return run_chapter(name, prof, timeout, args.work, penv, args.out / "results")

        run_profile(recorder, info.get("device", "unknown"), profile, chapters, args.budget,
                    deadline, args.jobs, launch, version=info.get("version"),
                    torch=info.get("torch"), python=info.get("python"))
    print(f"all done in {time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
