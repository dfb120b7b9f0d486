"""Run the course's notebooks in one profile and report wall time and peak memory of each.

    python benchmarks/course_time.py --profile smoke             # time a throw-away run
    python benchmarks/course_time.py --profile standard --write  # re-run and commit outputs

Each notebook runs top to bottom in a fresh kernel (nbclient), in its own process, so that
the peak resident memory of that process and its kernel can be read from the operating
system. With ``--write`` the executed notebook replaces the committed one: that is how the
outputs the book shows are produced (static figures: widgets are turned off). Carriage
returns of progress bars are collapsed as a terminal would show them.

When ``../shared/data-mirror`` exists and ``DLBIO_DATA_MIRROR`` is not set, the folder is
served on a loopback port for the run, as in the tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_DIR = REPO_ROOT.parent / "shared" / "data-mirror"


def _collapse_carriage_returns(text: str) -> str:
    r"""Keep what a terminal would show: the last ``\r``-separated part of each line."""
    return "\n".join(re.split(r"\r(?!\n)", line)[-1] for line in text.split("\n"))


def _execute(path: Path, out_path: Path, timeout: int) -> None:
    """Run one notebook in a fresh kernel, in this process (the child's job)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    # Widget state (progress bars' models) is of no use in the static book, and it makes the
    # book load the widget manager from a CDN.
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, out_path)


def _merge_streams(outputs: list) -> list:
    """Join consecutive outputs of one stream, then keep what a terminal would show."""
    merged = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == output["name"]):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = _collapse_carriage_returns(output["text"])
    return merged


def run_notebook(path: Path, *, profile: str, write: bool, timeout: int, env: dict) -> dict:
    """Run one notebook in a child process; return its wall time and peak memory."""
    out_path = path if write else Path(os.environ.get("TMPDIR", "/tmp")) / f"run_{path.name}"
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--_one", str(path), str(out_path),
                              str(timeout)], env=env)
    # wait4 reports the peak resident memory of the child and of its waited-for children
    # (the Jupyter kernel), which is what the notebook needs.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    peak_mib = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return {"notebook": path.name, "profile": profile, "seconds": round(seconds, 1),
            "peak_mib": round(peak_mib), "ok": child.returncode == 0, "output": str(out_path)}


def kernel_environment(profile: str) -> dict:
    """The environment of the notebooks' kernels: the profile, static figures, and the
    chapters' readings of their outputs checked strictly (``dlbio_teach.readings``): the
    runs made here are the ones whose outputs the text describes."""
    env = dict(os.environ, DLBIO_PROFILE=profile, DLBIO_WIDGETS="0", DLBIO_STRICT_READINGS="1")
    env.pop("MPLBACKEND", None)          # the kernel's inline backend: figures in the outputs
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="standard", choices=["smoke", "standard", "full"])
    parser.add_argument("--write", action="store_true",
                        help="save the executed notebooks in place (the committed outputs)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebook in notebooks/")
    args = parser.parse_args(argv)

    notebooks = args.notebooks or sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    env = kernel_environment(args.profile)
    if not env.get("DLBIO_DATA_MIRROR") and MIRROR_DIR.is_dir():
        from dlbio_teach.mirror import serve_mirror
        env["DLBIO_DATA_MIRROR"], _ = serve_mirror(MIRROR_DIR)

    results = []
    for path in notebooks:
        print(f"running {path.name} ({args.profile}) ...", flush=True)
        results.append(run_notebook(Path(path).resolve(), profile=args.profile,
                                    write=args.write, timeout=args.timeout, env=env))
        print(f"  {results[-1]}", flush=True)
    total = sum(r["seconds"] for r in results)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print("\n| notebook | profile | wall time (s) | peak memory (MiB) | ok |"
          "\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['notebook']} | {r['profile']} | {r['seconds']} | {r['peak_mib']} | "
              f"{'yes' if r['ok'] else 'NO'} |")
    print(f"| **total** | {args.profile} | {total:.1f} | "
          f"{max((r['peak_mib'] for r in results), default=0)} | |")
    print(f"\nMachine: {machine}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--_one":
        _execute(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
