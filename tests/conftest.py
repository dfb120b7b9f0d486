"""Test configuration: the course's environment, a fresh download folder, the data mirror.

``pytest_configure`` runs before any test and before nbval starts a Jupyter kernel, and
kernels inherit ``os.environ``; so everything set here applies to the notebooks as well:

* ``DLBIO_PROFILE=smoke`` (unless set), ``DLBIO_WIDGETS=0`` and ``MPLBACKEND=Agg``;
* ``DLBIO_DATA_DIR``: a new temporary folder (unless set), so that every run downloads
  through the real code path instead of reusing a cache;
* ``DLBIO_DATA_MIRROR``: a loopback HTTP server in this process that serves
  ``../shared/data-mirror`` (the folder beside the repository root), when that folder
  exists and no mirror is set already.

Without the mirror folder the tests that need real data are skipped, and the notebooks
(which load real data) are deselected, each with a reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlbio_teach.mirror import serve_mirror

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_DIR = REPO_ROOT.parent / "shared" / "data-mirror"
MIRROR_MISSING = "../shared/data-mirror not found: real-data tests need the mirror"

# Filled in by pytest_configure; read by the fixtures and hooks below.
STATE = {"mirror_available": False, "mirror_url": None, "server": None, "tmp_data_dir": None}


def pytest_configure(config):
    os.environ.setdefault("DLBIO_PROFILE", "smoke")
    os.environ["DLBIO_WIDGETS"] = "0"
    os.environ["MPLBACKEND"] = "Agg"
    if not os.environ.get("DLBIO_DATA_DIR"):
        STATE["tmp_data_dir"] = tempfile.mkdtemp(prefix="dlbio-data-")
        os.environ["DLBIO_DATA_DIR"] = STATE["tmp_data_dir"]
    available = MIRROR_DIR.is_dir()
    STATE["mirror_available"] = available
    if available:
        if not os.environ.get("DLBIO_DATA_MIRROR"):
            os.environ["DLBIO_DATA_MIRROR"], STATE["server"] = serve_mirror(MIRROR_DIR)
        STATE["mirror_url"] = os.environ["DLBIO_DATA_MIRROR"]
    config.dlbio_mirror_available = available
    config.addinivalue_line(
        "markers", "needs_mirror: needs ../shared/data-mirror (real data); skipped without")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Lines that tests left for the end of the run (e.g. where the browser test saved its
    screenshots)."""
    for line in getattr(config, "dlbio_summary", []):
        terminalreporter.write_line(line)


def pytest_unconfigure(config):
    server = STATE.get("server")
    if server is not None:
        server.shutdown()
        server.server_close()
        STATE["server"] = None
    if STATE.get("tmp_data_dir"):
        shutil.rmtree(STATE["tmp_data_dir"], ignore_errors=True)
        if os.environ.get("DLBIO_DATA_DIR") == STATE["tmp_data_dir"]:
            del os.environ["DLBIO_DATA_DIR"]
        STATE["tmp_data_dir"] = None


def pytest_collection_modifyitems(config, items):
    """Without the mirror: skip ``needs_mirror`` tests and deselect the notebooks.

    (A ``pytest_ignore_collect`` hook in this file would not be consulted for paths under
    ``notebooks/``: pytest only asks the conftest files on a path's own folder chain.)
    """
    if STATE["mirror_available"]:
        return
    skip = pytest.mark.skip(reason=MIRROR_MISSING)
    kept, notebooks = [], []
    for item in items:
        if Path(str(item.path)).suffix == ".ipynb":
            notebooks.append(item)
            continue
        if item.get_closest_marker("needs_mirror") is not None:
            item.add_marker(skip)
        kept.append(item)
    if notebooks:
        names = sorted({Path(str(i.path)).name for i in notebooks})
        print(f"\nNOTE: {MIRROR_MISSING}; deselected the notebooks {names} "
              "(they load real data).", file=sys.stderr)
        config.hook.pytest_deselected(items=notebooks)
        items[:] = kept


@pytest.fixture
def mirror_dir() -> Path:
    """The mirror folder; skips the test when it is absent."""
    if not STATE["mirror_available"]:
        pytest.skip(MIRROR_MISSING)
    return MIRROR_DIR


@pytest.fixture
def data_home(tmp_path, monkeypatch, mirror_dir) -> Path:
    """An empty download folder for one test, online, through the mirror."""
    folder = tmp_path / "downloads"
    monkeypatch.setenv("DLBIO_DATA_DIR", str(folder))
    monkeypatch.delenv("DLBIO_OFFLINE", raising=False)
    monkeypatch.setenv("DLBIO_DATA_MIRROR", STATE["mirror_url"])
    return folder


@dataclass(frozen=True)
class BookBuild:
    """One ``jupyter-book build`` of the repository: its exit status, log and HTML folder."""

    returncode: int
    log: str
    html: Path


def _jupyter_book() -> str | None:
    return (shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
            or shutil.which("jupyter-book"))


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BookBuild:
    """The HTML book, built once per test session (``-W -n --keep-going``) into a temporary
    folder and shared by the build test and the browser test. Skips without jupyter-book."""
    exe = _jupyter_book()
    if exe is None:
        pytest.skip("jupyter-book is not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run(
        [exe, "build", str(REPO_ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=900)
    return BookBuild(result.returncode, result.stdout + result.stderr,
                     out / "_build" / "html")


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test starts and ends without open matplotlib figures."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


# --- Shared by the record, model-card and zoo tests ----------------------------------------

def _tiny_unet(seed=0, depth=2, **unet_kwargs):
    """A small U-Net with non-trivial weights and batch-norm statistics (``ndim=3``,
    ``pool_z=...`` among ``unet_kwargs`` for volumes)."""
    import torch

    from dlbio_teach.models import UNet
    torch.manual_seed(seed)
    net = UNet(1, 1, depth=depth, base_channels=4, **unet_kwargs)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return net.eval()


def _history():
    from dlbio_teach.training import History
    return History(train_loss=[0.9, 0.5, 0.4], val_loss=[1.0, 0.6, 0.7], best_epoch=1,
                   best_loss=0.6, stopped_early=True, seconds=1.5)


def _make_record(net, **overrides):
    import numpy as np

    from dlbio_teach.records import RunRecord
    from dlbio_teach.runtime import get_profile
    kwargs = dict(model=net, history=_history(), seed=3, profile=get_profile("smoke"),
                  hyperparameters={"lr": np.float32(1e-3), "batch_size": np.int64(16),
                                   "loss": "mse", "optimizer": "Adam",
                                   "normalisation": "percentile (1, 99.8)"},
                  datasets=["stardist_nuclei", "blobs"],
                  splits={"train": np.arange(3), "val": [3], "test": (4, 5)},
                  metrics={"F1@0.5": {"estimate": np.float64(0.8125), "low": 0.75,
                                      "high": 0.87, "level": 0.95, "n": np.int32(40)},
                           "psnr": np.float32(27.5)})
    kwargs.update(overrides)
    return RunRecord.create(**kwargs)


@pytest.fixture(scope="session")
def tiny_unet():
    """``tiny_unet(seed=0, depth=2, **unet_kwargs)``: a small U-Net in eval mode with
    non-trivial batch-norm statistics (``tiny_unet(ndim=3)``: a 3D one)."""
    return _tiny_unet


@pytest.fixture(scope="session")
def history():
    """``history()``: a training history that stopped early."""
    return _history


@pytest.fixture(scope="session")
def make_record():
    """``make_record(net, **overrides)``: a run record with every field filled."""
    return _make_record
