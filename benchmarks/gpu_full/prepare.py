"""Build what the GPU machine must carry, into benchmarks/gpu_full/carry/ (ignored by git).

    .venv/bin/python benchmarks/gpu_full/prepare.py [--mirror /work/shared/data-mirror]

The GPU machine has Python 3.12 with a CUDA torch and the scientific stack, but no network,
no Jupyter and none of the course's other dependencies. This script

1. resolves the course's dependencies (pyproject.toml's [project] dependencies, read here,
   so there is no second list of them) for CPython 3.12 on manylinux x86_64, leaving out
   ``PRESENT``, what such a machine has;
2. downloads those wheels (pip, binary only) and unpacks them into one folder, packed as
   ``carry/site.tar.xz`` (the runner unpacks it and puts it first on PYTHONPATH);
3. packs the data mirror as ``carry/data-mirror.tar.xz`` (the runner serves it on 127.0.0.1);
4. prints the size of carry/: the device tool carries at most 64 MiB.

Needs Python >= 3.11 (tomllib) with pip and PyPI. Then run the chapters with run.py (its
docstring says how).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CARRY = HERE / "carry"

# What the GPU machine has (its Python 3.12 with a CUDA torch, found on the first run):
# torch and what torch installs, numpy, scipy, scikit-image, matplotlib, tifffile and what
# they install. Everything else the course needs goes into site.tar.xz. The names are
# normalised (PEP 503: lower case, runs of -_. as one -).
PRESENT = {
    # torch and its dependencies (nvidia-* and triton are matched by prefix below)
    "torch", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock", "fsspec",
    "typing-extensions", "setuptools",
    # the scientific stack and its dependencies
    "numpy", "scipy", "scikit-image", "imageio", "lazy-loader", "pillow", "packaging",
    "tifffile", "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver",
    "pyparsing", "python-dateutil",
}
PRESENT_PREFIXES = ("nvidia-", "triton")
# Large and not carried (the carry holds 64 MiB): found on that machine in the first run
# (laptrack and skan imported them there: pandas, scikit-learn, numba), or optional extras
# that no chapter uses (pyarrow for pandas, imagecodecs for tifffile, S3 stores for zarr).
NOT_CARRIED = {
    "pandas", "scikit-learn", "joblib", "threadpoolctl", "numba", "llvmlite", "pyarrow",
    "imagecodecs", "s3fs", "aiobotocore", "botocore", "jmespath", "aioitertools",
}
PYTHON = "3.12"   # the GPU machine's Python


def platform_args(python: str = PYTHON) -> list[str]:
    abi = "cp" + python.replace(".", "")
    return ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", abi, "--platform", "manylinux_2_28_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9._-]+", req.strip()).group(0))


def course_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The course's dependencies less those the GPU machine has."""
    import tomllib  # Python 3.11+; imported here so that the tests load this file on 3.10

    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if not is_present(requirement_name(d))]


def is_present(name: str) -> bool:
    name = normalise(name)
    return name in PRESENT or name in NOT_CARRIED or name.startswith(PRESENT_PREFIXES)


def resolve(requirements: list[str], work: Path, python: str = PYTHON) -> list[tuple[str, str]]:
    """(name, version) of every package to carry: the resolution less PRESENT."""
    report = work / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                    "--quiet", "--report", str(report), *platform_args(python),
                    *requirements], check=True)
    items = json.loads(report.read_text())["install"]
    pins = [(i["metadata"]["name"], i["metadata"]["version"]) for i in items]
    return sorted((n, v) for n, v in pins if not is_present(n))


def build_site(pins: list[tuple[str, str]], work: Path, python: str = PYTHON) -> Path:
    wheels, site = work / "wheels", work / "site"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "-d", str(wheels), *platform_args(python),
                    *[f"{n}=={v}" for n, v in pins]], check=True)
    site.mkdir()
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    (site / "CARRIED.txt").write_text("".join(f"{n}=={v}\n" for n, v in pins))
    return site


def pack(folder: Path, target: Path) -> None:
    """xz-compressed tar of the folder's content (xz on every core where tar can use it)."""
    if shutil.which("tar") and shutil.which("xz"):
        subprocess.run(["tar", "-C", str(folder), "-I", "xz -T0 -6", "-cf", str(target), "."],
                       check=True)
        return
    with tarfile.open(target, "w:xz", preset=6) as tar:
        tar.add(folder, arcname=".")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default="/work/shared/data-mirror",
                        help="the data mirror's folder (HOST/PATH below it)")
    parser.add_argument("--python", default=PYTHON,
                        help="the Python of the machine (3.11: a CPU test of the runner here)")
    parser.add_argument("--carry", type=Path, default=CARRY, help="where to write")
    args = parser.parse_args(argv)
    carry = args.carry
    if carry.exists():
        shutil.rmtree(carry)
    carry.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        requirements = course_requirements()
        print("course requirements the machine lacks:", " ".join(requirements), flush=True)
        pins = resolve(requirements, work, args.python)
        print(f"{len(pins)} packages to carry:", " ".join(f"{n}=={v}" for n, v in pins),
              flush=True)
        site = build_site(pins, work, args.python)
        pack(site, carry / "site.tar.xz")
        (carry / "CARRIED.txt").write_text((site / "CARRIED.txt").read_text())
    pack(Path(args.mirror), carry / "data-mirror.tar.xz")
    total = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    for p in sorted(carry.iterdir()):
        print(f"{p}: {p.stat().st_size / 2**20:.1f} MiB", flush=True)
    print(f"carry in all: {total / 2**20:.1f} MiB (the device tool's limit: 64 MiB)")
    if total > 64 * 2**20:
        sys.exit("too large for the device tool's carry (64 MiB)")


if __name__ == "__main__":
    main()
