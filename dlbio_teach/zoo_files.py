"""The files of a BioImage Model Zoo package, written into a staging folder.

Step 3 of :func:`~dlbio_teach.zoo_export.export_bioimageio`, one named helper per kind of
file (as CAREamics' ``model_io`` keeps description, README, cover and input/output apart):

* :func:`package_readme` -- the documentation: the model card of the run record;
* the cover, an input and output side by side (PNG; of a volume, their maximum
  projections along Z), and the sample images (TIFF; of a volume, its stack of planes);
* :func:`save_torchscript` -- the network as TorchScript, checked against the network;
* :func:`stage_files` -- all of them, with the weights, the architecture's source file,
  the test tensors and the run record, in one folder.

The description of those files (``rdf.yaml``) is :func:`~dlbio_teach.zoo.build_description`'s.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from .model_card import model_card
from .records import RECORD_FILE, WEIGHTS_FILE, RunRecord, save_weights
from .zoo import PackageTensors

__all__ = ["TORCHSCRIPT_FILE", "package_readme", "save_torchscript", "stage_files"]

#: The file name of the TorchScript weights in a package.
TORCHSCRIPT_FILE = "weights_torchscript.pt"


def _cover_plane(array: np.ndarray) -> np.ndarray:
    """The first channel of the first image, ``(Y, X)``; of a volume ``(N, C, Z, Y, X)``,
    its maximum projection along Z (every plane shows, as in a microscope's overview).

    Examples
    --------
    >>> v = np.zeros((1, 1, 3, 2, 2), np.float32)
    >>> v[0, 0, 2, 1, 1] = 5
    >>> _cover_plane(v).tolist()
    [[0.0, 0.0], [0.0, 5.0]]
    """
    plane = np.asarray(array[0, 0], dtype=np.float32)
    return plane.max(axis=0) if plane.ndim == 3 else plane


def _cover(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2), dpi=100)
    volume = x.ndim == 5
    for i, (img, label) in enumerate(((x, "input"), (y, "output"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(_cover_plane(img), cmap="magma")
        ax.set_title(f"{label}, max. over z" if volume else label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


def _sample_tif(path: Path, array: np.ndarray) -> None:
    """The first image of a batch as TIFF, singleton axes dropped: ``(Y, X)``, ``(C, Y, X)``,
    or a stack of planes ``(Z, Y, X)`` (``(C, Z, Y, X)``) for a volume."""
    import tifffile

    tifffile.imwrite(path, np.ascontiguousarray(array[0].squeeze()), photometric="minisblack")


def package_readme(record: RunRecord | None, *, name: str, description: str,
                   intended_use: str | None = None, limitations: str | None = None) -> str:
    """The README of a package: the model card of its run record, else a short text.

    With a ``record``, :func:`~dlbio_teach.model_card.model_card` writes it
    (``intended_use`` defaults to ``description``); without one, the README says that
    no validation is reported and asks the user to check the model on their own images.

    Examples
    --------
    >>> text = package_readme(None, name="Demo nuclei model", description="A demo.")
    >>> text.splitlines()[:5]
    ['# Demo nuclei model', '', 'A demo.', '', '## Validation']
    """
    if record is None:
        return (f"# {name}\n\n{description}\n\n## Validation\n\nNot reported in this "
                "package: check the model on a few annotated images of your own before "
                "using it.\n")
    return model_card(record, title=name, intended_use=intended_use or description,
                      limitations=limitations or "Not stated by the exporter: ask the "
                                                 "authors before using it on other images.")


def save_torchscript(net: torch.nn.Module, tensors: PackageTensors, path) -> None:
    """Write ``net`` as TorchScript (``torch.jit.trace`` on the model input), the weights
    format that tools without Python (deepImageJ, ...) run.

    A trace records the operations of one call: a branch taken or a size read in Python
    is fixed. The trace is therefore compared with the network on another input, of two
    images (volumes) with each side one step (of its axis) larger, and refused if they
    differ.

    Examples
    --------
    >>> import tempfile
    >>> from dlbio_teach.zoo_export import describe_tensors
    >>> net = torch.nn.Conv2d(1, 2, 3, padding=1).eval()
    >>> t = describe_tensors(net, np.ones((1, 1, 8, 8), np.float32), step=4)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_torchscript(net, t, Path(tmp) / "ts.pt")
    ...     scripted = torch.jit.load(Path(tmp) / "ts.pt")
    >>> type(scripted).__name__
    'RecursiveScriptModule'
    """
    example = torch.from_numpy(np.ascontiguousarray(tensors.model_input, np.float32))
    c, sides = example.shape[1], example.shape[2:]
    other = torch.from_numpy(np.random.default_rng(0).random(
        (2, c, *(n + step for n, step in zip(sides, tensors.steps))), dtype=np.float32))
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, which the zoo does not read;
        # TracerWarnings (a Python bool or size fixed by the trace) are checked below.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(net, example, check_trace=False)
            for x in (example, other):
                expected, got = net(x), traced(x)
                if got.shape != expected.shape or not torch.allclose(
                        got, expected, rtol=1e-4, atol=1e-5):
                    raise RuntimeError(
                        f"The network cannot be written as TorchScript by tracing: on an "
                        f"input of shape {tuple(x.shape)} the trace differs from the "
                        "network (a size or branch fixed by the trace). Make its forward "
                        "traceable, or export without TorchScript (torchscript=False).")
        torch.jit.save(traced, str(path))


def stage_files(root, net: torch.nn.Module, tensors: PackageTensors, *, architecture,
                documentation: str, record: RunRecord | None = None,
                torchscript: bool = True) -> dict:
    """Write the files of a package into the folder ``root``.

    Parameters
    ----------
    root : path
        An existing (staging) folder.
    net : torch.nn.Module
        The network whose state dict is written (``weights.pt``).
    tensors : PackageTensors
        From :func:`~dlbio_teach.zoo_export.describe_tensors`.
    architecture : path
        The self-contained source file that defines the network; copied.
    documentation : str
        Markdown README.
    record : RunRecord, optional
        Written as ``run_record.json`` (an attachment).
    torchscript : bool
        Also write the network as TorchScript (:func:`save_torchscript`).

    Returns
    -------
    dict
        Role -> file name in ``root``: ``weights``, ``torchscript`` (or ``None``),
        ``architecture``, ``test_input``, ``test_output``, ``sample_input``,
        ``sample_output``, ``cover``, ``documentation``, and ``attachments`` (a list).

    Examples
    --------
    >>> import tempfile, dlbio_teach.models as models
    >>> from dlbio_teach.zoo_export import describe_tensors
    >>> net = models.UNet(1, 1, depth=1, base_channels=4).eval()
    >>> t = describe_tensors(net, np.ones((1, 1, 8, 8), np.float32), step=2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = stage_files(tmp, net, t, architecture=models.__file__,
    ...                         documentation="# Demo")
    ...     sorted(p.name for p in Path(tmp).iterdir()) == sorted(
    ...         v for k, v in files.items() if k != "attachments")
    True
    >>> files["weights"], files["torchscript"]
    ('weights.pt', 'weights_torchscript.pt')
    """
    root, architecture = Path(root), Path(architecture)
    files = {"weights": WEIGHTS_FILE, "torchscript": TORCHSCRIPT_FILE if torchscript else None,
             "architecture": architecture.name,
             "test_input": "test_input.npy", "test_output": "test_output.npy",
             "sample_input": "sample_input.tif", "sample_output": "sample_output.tif",
             "cover": "cover.png", "documentation": "README.md", "attachments": []}
    save_weights(net, root / files["weights"])
    if torchscript:
        save_torchscript(net, tensors, root / files["torchscript"])
    shutil.copyfile(architecture, root / files["architecture"])
    np.save(root / files["test_input"], tensors.test_input, allow_pickle=False)
    np.save(root / files["test_output"], tensors.test_output, allow_pickle=False)
    _sample_tif(root / files["sample_input"], tensors.test_input)
    _sample_tif(root / files["sample_output"], tensors.test_output)
    _cover(root / files["cover"], tensors.model_input, tensors.test_output)
    (root / files["documentation"]).write_text(documentation, encoding="utf-8")
    if record is not None:
        (root / RECORD_FILE).write_text(record.to_json(), encoding="utf-8")
        files["attachments"].append(RECORD_FILE)
    return files
