"""Run a notebook's code cells in one namespace, where there is no Jupyter (a GPU machine).

    python run_nb.py NOTEBOOK OUT_DIR

Magics (the Colab install cell) become ``pass``; figures are saved as PNG outputs.
Writes OUT_DIR/<name>.ipynb (outputs: text and figures) after every cell, and
OUT_DIR/<name>.json (per-cell seconds, status, the error).
"""
import base64
import io
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

nb_path, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
out_dir.mkdir(parents=True, exist_ok=True)
nb = json.loads(nb_path.read_text())
name = nb_path.stem
summary = {"notebook": name, "cells": [], "status": "running", "error": None,
           "profile": os.environ.get("DLBIO_PROFILE"),
           "total_cells": sum(c["cell_type"] == "code" for c in nb["cells"])}


class Tee(io.TextIOBase):
    def __init__(self, stream):
        self.stream, self.buffer_ = stream, []

    def write(self, s):
        self.stream.write(s)
        self.buffer_.append(s)
        return len(s)

    def flush(self):
        self.stream.flush()


def figures_as_outputs():
    outputs = []
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=60, bbox_inches="tight")
        outputs.append({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(buf.getvalue()).decode(),
                                 "text/plain": ["<Figure>"]}})
    plt.close("all")
    return outputs


def save():
    (out_dir / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
    (out_dir / f"{name}.json").write_text(json.dumps(summary, indent=1))


def strip_magics(src):
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in src.splitlines())


ns = {"__name__": "__main__", "display": print}
plt.show = lambda *a, **k: None
count = 0
start = time.perf_counter()
for cell in nb["cells"]:
    if cell["cell_type"] != "code":
        continue
    count += 1
    src = "".join(cell["source"])
    tee = Tee(sys.stdout)
    old = sys.stdout
    sys.stdout = tee
    t0 = time.perf_counter()
    err = None
    try:
        exec(compile(strip_magics(src), f"<{name} cell {count}>", "exec"), ns)
    except BaseException:  # noqa: BLE001
        err = traceback.format_exc()
    finally:
        sys.stdout = old
    dt = time.perf_counter() - t0
    text = "".join(tee.buffer_)
    cell["execution_count"] = count
    cell["outputs"] = ([{"output_type": "stream", "name": "stdout", "text": text}] if text else [])
    cell["outputs"] += figures_as_outputs()
    if err:
        cell["outputs"].append({"output_type": "stream", "name": "stderr", "text": err})
    first_line = src.splitlines()[0][:80] if src else ""
    summary["cells"].append({"n": count, "seconds": round(dt, 2), "first_line": first_line})
    summary["elapsed"] = round(time.perf_counter() - start, 1)
    if err:
        summary["status"] = "error"
        summary["error"] = {"cell": count, "traceback": err[-3000:]}
        save()
        print(f"[{name}] ERROR in cell {count}:\n{err[-1500:]}", flush=True)
        sys.exit(1)
    save()
    print(f"[{name}] cell {count} {dt:.1f}s (total {summary['elapsed']}s)", file=sys.stderr,
          flush=True)
summary["status"] = "ok"
save()
print(f"[{name}] OK in {summary['elapsed']} s", file=sys.stderr, flush=True)
