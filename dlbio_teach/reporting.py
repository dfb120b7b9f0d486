"""Reporting others can reproduce: run record, model card, checklist, BioImage Model Zoo.

The last layer of the flow. Everything a reader needs to redo a training, or to judge it,
is gathered from the objects the chapter already holds (the model, the
:class:`~dlbio_teach.training.History`, the :class:`~dlbio_teach.runtime.Profile`, the
dataset names of :data:`~dlbio_teach.data.REGISTRY`) rather than typed again:

* :class:`RunRecord` -- versions, hardware, seed, profile, hyper-parameters, datasets
  (URL and sha256 from the registry), split membership, loss curves, metrics with their
  confidence intervals, and the weights file with its sha256; saved as a plain, sorted
  ``run_record.json`` beside ``weights.pt``. :func:`rebuild_model` gives the trained
  network back (weights loaded with ``weights_only=True``) so that a notebook can
  recompute the scores and :func:`compare_metrics` them with the recorded ones.
* :func:`model_card` -- a Markdown model card written from a run record.
* :data:`CHECKLIST`, :func:`fill_checklist`, :func:`checklist_markdown` -- reporting
  items after Laine et al. (2021), DOME (Walsh et al., 2021) and the community checklists
  of Schmied et al. (2024); the run record answers what it can, the rest is left to fill.
* :func:`export_bioimageio`, :func:`load_bioimageio`, :func:`reproduce_test_outputs` -- a
  BioImage Model Zoo package (``rdf.yaml`` in format 0.5, PyTorch state-dict weights),
  validated with ``bioimageio.spec`` without any network access, and read back.

Offline validation
------------------
``bioimageio.spec`` checks URLs (HTTP HEAD requests) and GitHub user names over the
network when its ``perform_io_checks`` setting is on (the default, or
``$BIOIMAGEIO_PERFORM_IO_CHECKS``). This module never relies on those global settings:
every call into the library runs inside an explicit ``ValidationContext``:

* building and zipping: ``perform_io_checks=False`` (nothing is read or fetched);
* checking the zip: ``perform_io_checks=True`` with ``known_files`` listing every URL of
  the description, so that local files are hashed and the test tensors, documentation
  and sample images are read and checked, while no URL is requested;
* loading: ``perform_io_checks=False``; the files of the package are then read with
  their sha256 checked, and a package that points to a remote file is refused.

Authors are written without ``github_user`` (checking a GitHub name needs the network);
maintainers are added when a model is uploaded to the zoo.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import datetime as _dt
import hashlib
import importlib
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import types
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .data import REGISTRY, file_sha256
from .models import count_parameters
from .runtime import PROFILES, Profile, get_profile
from .training import History, load_weights, save_weights

__all__ = ["RunRecord", "RECORD_FILE", "WEIGHTS_FILE", "rebuild_model", "compare_metrics",
           "state_sha256", "file_sha256", "model_card", "ChecklistItem", "CHECKLIST",
           "CHECKLIST_SOURCES",
           "fill_checklist", "checklist_markdown", "export_bioimageio", "BioimageioExport",
           "load_bioimageio", "LoadedBioimageioModel", "reproduce_test_outputs",
           "UntrustedCodeError"]

RECORD_FILE = "run_record.json"
WEIGHTS_FILE = "weights.pt"
SCHEMA = "dlbio_teach.run_record/1"

# Distributions whose versions a run record lists (when installed).
_DISTRIBUTIONS = ("torch", "numpy", "scipy", "scikit-image", "matplotlib", "tifffile",
                  "pooch", "SimpleITK", "bioimageio.spec")

# Citations of the architectures this package defines, for model cards and the zoo.
_ARCHITECTURE_CITATIONS = {
    "UNet": ("Ronneberger, Fischer, Brox (2015) U-Net: convolutional networks for "
             "biomedical image segmentation. MICCAI, LNCS 9351:234-241.",
             "10.1007/978-3-319-24574-4_28"),
}
_COURSE_CITATION = ("Deep learning for bioimage analysis, done right: course and companion "
                    "package dlbio_teach {version} (MIT licence).")


# --------------------------------------------------------------------------------------
# Plain JSON values, hashes
# --------------------------------------------------------------------------------------

def _plain(value, where: str = "value"):
    """Return ``value`` as JSON-ready Python: dicts with str keys, lists, str, int, float,
    bool, None. NumPy scalars and arrays, tensors, tuples and paths are converted;
    non-finite floats become ``None`` (strict JSON has no NaN or infinity)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(items)]
    raise TypeError(f"{where} is a {type(value).__name__} ({value!r:.60}), which cannot be "
                    "written to JSON. Give numbers, strings, lists or dicts instead (for an "
                    "object, record the settings it was made from).")


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False,
                      allow_nan=False) + "\n"


def state_sha256(model: torch.nn.Module) -> str:
    """Return a sha256 of a model's weights themselves (names, dtypes, shapes, values).

    Unlike the hash of a weights *file*, it does not depend on the device the model sits
    on nor on how the file was written: two models have the same digest exactly when
    their state dicts hold the same numbers.

    Examples
    --------
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> state_sha256(a) == state_sha256(b)
    True
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().reshape(-1).contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------

def _versions() -> dict:
    from importlib import metadata

    versions = {"python": platform.python_version(), "dlbio_teach": __version__}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    commit = _git_commit()
    if commit:
        versions["dlbio_teach_git_commit"] = commit
    return versions


def _git_commit() -> str | None:
    """The clone's commit (with ``-dirty`` when tracked files changed), or None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _hardware(device) -> dict:
    device = torch.device(device)
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "cuda": torch.version.cuda, "device_name": _cpu_name()}
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, cudnn=torch.backends.cudnn.version(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1))
    elif device.type == "mps":
        info["device_name"] = "Apple MPS"
    return info


def _model_device(model: torch.nn.Module):
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _describe_model(model: torch.nn.Module, kwargs: Mapping) -> dict:
    return {"class_name": type(model).__name__, "module": type(model).__module__,
            "kwargs": _plain(dict(kwargs), "model_kwargs"),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            "n_trainable_parameters": int(count_parameters(model)),
            "state_sha256": state_sha256(model)}


def _dataset_entry(name: str) -> dict:
    if name not in REGISTRY:
        raise KeyError(f"No dataset called {name!r} in dlbio_teach.data.REGISTRY. Known "
                       f"datasets: {sorted(REGISTRY)}. Record data that is not in the "
                       "registry (e.g. synthetic images) with `synthetic_data=`.")
    d = REGISTRY[name]
    return {"description": d.description, "licence": d.licence, "citation": d.citation,
            "source": d.source,
            "files": [{"key": key, "url": f.url, "sha256": f.sha256, "size": f.size}
                      for key, f in d.files.items()]}


def _profile_dict(profile) -> dict:
    if isinstance(profile, Profile):
        return profile.to_dict()
    if isinstance(profile, str):
        return get_profile(profile).to_dict()
    if isinstance(profile, Mapping) and "name" in profile:
        return _plain(dict(profile), "profile")
    raise TypeError(f"profile must be a runtime.Profile, a profile name "
                    f"({sorted(PROFILES)}) or its to_dict(), got {type(profile).__name__}. "
                    "Pass course.profile from setup_course().")


def _history_dict(history) -> dict:
    if isinstance(history, History):
        return _plain(history.to_dict(), "history")
    if isinstance(history, Mapping) and "train_loss" in history:
        return _plain(dict(history), "history")
    raise TypeError(f"history must be the training.History that fit() returned (or its "
                    f"to_dict()), got {type(history).__name__}.")


# --------------------------------------------------------------------------------------
# Run record
# --------------------------------------------------------------------------------------

@dataclass
class RunRecord:
    """What it takes to redo (and to judge) one training, as plain JSON-ready data.

    Make one with :meth:`create` right after training; it gathers the versions and the
    hardware itself. :meth:`save` writes ``run_record.json`` and the weights
    (``weights.pt``, a state dict) into a folder; :meth:`load` reads the record back and
    :func:`rebuild_model` the network.

    Attributes
    ----------
    created : str
        ISO 8601 time (UTC) of :meth:`create`.
    versions : dict
        Python, ``dlbio_teach`` (and its git commit in a clone), PyTorch, NumPy, SciPy,
        scikit-image and the other libraries the course uses.
    hardware : dict
        Platform, CPU, CPU count, torch threads, device and its name, CUDA version.
    seed : int
        The seed of :func:`~dlbio_teach.runtime.setup_course` / ``fit``.
    profile : dict
        The run profile's name and sizes (:meth:`~dlbio_teach.runtime.Profile.to_dict`).
    hyperparameters : dict
        Loss, optimiser, learning rate, epochs, batch size, augmentation, normalisation...
    datasets : dict
        Name -> description, licence, citation, source and files (URL, sha256, size),
        copied from :data:`~dlbio_teach.data.REGISTRY`.
    synthetic_data : dict
        How synthetic images were generated (function, arguments, seeds), if any.
    splits : dict
        Split name -> ids of the images in it (e.g. ``{"train": [0, 1], "test": [2]}``).
    history : dict
        Loss curves and early-stopping outcome (:meth:`~dlbio_teach.training.History.to_dict`).
    metrics : dict
        Free-form scores, e.g. ``{"F1@0.5": {"estimate": 0.8, "low": 0.7, "high": 0.9}}``.
    wall_time_s : float or None
        Wall time of the run (default: the training time of ``history``).
    model : dict
        Class name, module, constructor arguments, parameter counts, ``state_sha256``.
    weights_file, weights_sha256 : str or None
        Set by :meth:`save`: the weights file name and its sha256.
    notes : str
        Anything else worth saying.
    schema : str
        Format of the record, for readers of future versions.

    Non-finite floats (NaN, infinity) are stored as ``None``: strict JSON has no such
    numbers.
    """

    created: str
    versions: dict
    hardware: dict
    seed: int | None
    profile: dict
    hyperparameters: dict
    datasets: dict
    splits: dict
    history: dict
    metrics: dict
    model: dict
    synthetic_data: dict = field(default_factory=dict)
    wall_time_s: float | None = None
    weights_file: str | None = None
    weights_sha256: str | None = None
    notes: str = ""
    schema: str = SCHEMA
    _model: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name != "_model":
                setattr(self, f.name, _plain(getattr(self, f.name), f.name))

    @classmethod
    def create(cls, *, model: torch.nn.Module, history, seed: int, profile,
               hyperparameters: Mapping, datasets: Sequence[str] = (),
               splits: Mapping | None = None, metrics: Mapping | None = None,
               model_kwargs: Mapping | None = None, synthetic_data: Mapping | None = None,
               wall_time_s: float | None = None, notes: str = "") -> "RunRecord":
        """Gather a run record from the objects of a chapter; versions and hardware are
        read from the running environment.

        Parameters
        ----------
        model : torch.nn.Module
            The trained network (kept, not serialised, so that :meth:`save` can write
            its weights).
        history : training.History
            What :func:`~dlbio_teach.training.fit` returned.
        seed : int
            The seed of the run.
        profile : runtime.Profile or str
            The run profile (``course.profile``).
        hyperparameters : dict
            Training settings: loss, optimiser, learning rate, epochs, batch size...
        datasets : sequence of str
            Names in :data:`~dlbio_teach.data.REGISTRY`; their files, sha256, licence
            and citation are copied from there.
        splits : dict, optional
            Split name -> sequence of image ids.
        metrics : dict, optional
            Scores, with confidence intervals where computed.
        model_kwargs : dict, optional
            Constructor arguments of ``model``; default ``model.config`` (as the
            course's networks keep it).
        synthetic_data : dict, optional
            How synthetic training or test images were made.
        wall_time_s : float, optional
            Wall time of the whole run; default the training time in ``history``.
        notes : str
            Free text.

        Examples
        --------
        >>> from dlbio_teach.models import UNet
        >>> net = UNet(1, 1, depth=1, base_channels=4)
        >>> rec = RunRecord.create(model=net, history=History(train_loss=[0.5, 0.4]),
        ...                        seed=0, profile="smoke", hyperparameters={"lr": 1e-3},
        ...                        datasets=["blobs"], splits={"train": [0], "test": [1]})
        >>> rec.profile["name"], rec.model["class_name"], rec.datasets["blobs"]["licence"]
        ('smoke', 'UNet', 'CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase)')
        """
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if model_kwargs is None:
            model_kwargs = getattr(model, "config", None)
            if not isinstance(model_kwargs, Mapping):
                raise ValueError(f"{type(model).__name__} has no `.config` dict of its "
                                 "constructor arguments; pass them as `model_kwargs=` so "
                                 "that the model can be rebuilt.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}; pass the "
                             "seed given to setup_course() and fit().")
        if not isinstance(hyperparameters, Mapping):
            raise TypeError("hyperparameters must be a dict (name -> value), got "
                            f"{type(hyperparameters).__name__}.")
        if isinstance(datasets, str):
            datasets = [datasets]
        splits = {} if splits is None else splits
        if not isinstance(splits, Mapping) or any(
                isinstance(v, str) or not isinstance(v, (Sequence, np.ndarray))
                for v in splits.values()):
            raise TypeError("splits must map a split name to a list of image ids, e.g. "
                            "{'train': [0, 1, 2], 'test': [3]}.")
        history_dict = _history_dict(history)
        if wall_time_s is None:
            wall_time_s = history_dict.get("seconds")
        record = cls(
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            versions=_versions(), hardware=_hardware(_model_device(model)), seed=int(seed),
            profile=_profile_dict(profile), hyperparameters=dict(hyperparameters),
            datasets={name: _dataset_entry(name) for name in datasets},
            splits={str(k): list(v) for k, v in splits.items()}, history=history_dict,
            metrics=dict(metrics or {}), model=_describe_model(model, model_kwargs),
            synthetic_data=dict(synthetic_data or {}), wall_time_s=wall_time_s,
            notes=notes)
        record._model = model
        return record

    def to_dict(self) -> dict:
        """The record as plain data (what ``run_record.json`` holds)."""
        return {f.name: copy.deepcopy(getattr(self, f.name))
                for f in dataclasses.fields(self) if f.name != "_model"}

    def to_json(self) -> str:
        """The record as indented JSON with sorted keys (strict: no NaN)."""
        return _dumps(self.to_dict())

    def split_overlap(self) -> dict:
        """Ids found in two splits, as ``{"train & test": [ids]}`` (empty when disjoint).

        Examples
        --------
        >>> rec = RunRecord(created="", versions={}, hardware={}, seed=0, profile={},
        ...                 hyperparameters={}, datasets={}, history={}, metrics={},
        ...                 model={}, splits={"train": [0, 1], "test": [1, 2]})
        >>> rec.split_overlap()
        {'train & test': [1]}
        """
        names = list(self.splits)
        out = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                common = {json.dumps(x) for x in self.splits[a]} & \
                         {json.dumps(x) for x in self.splits[b]}
                if common:
                    out[f"{a} & {b}"] = sorted((json.loads(x) for x in common), key=repr)
        return out

    def save(self, folder, model: torch.nn.Module | None = None) -> Path:
        """Write ``weights.pt`` (the state dict) and ``run_record.json`` into ``folder``.

        The record's ``weights_file``, ``weights_sha256`` and ``model["state_sha256"]``
        are set from the weights actually written.

        Parameters
        ----------
        folder : path
            Created if needed; existing files of these names are replaced.
        model : torch.nn.Module, optional
            Default: the model given to :meth:`create`.

        Returns
        -------
        Path
            The path of ``run_record.json``.

        Examples
        --------
        >>> import tempfile
        >>> net = torch.nn.Conv2d(1, 1, 3)
        >>> rec = RunRecord.create(model=net, model_kwargs={"in_channels": 1,
        ...     "out_channels": 1, "kernel_size": 3}, history=History(train_loss=[1.0]),
        ...     seed=0, profile="smoke", hyperparameters={})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = rec.save(tmp)
        ...     sorted(p.name for p in Path(tmp).iterdir()), RunRecord.load(tmp) == rec
        (['run_record.json', 'weights.pt'], True)
        """
        folder = Path(folder)
        model = self._model if model is None else model
        if model is None:
            raise ValueError("No model to save: this record was loaded or built by hand. "
                             "Pass the trained network: record.save(folder, model=net).")
        if type(model).__name__ != self.model.get("class_name"):
            raise ValueError(f"The model to save is a {type(model).__name__}, but the "
                             f"record describes a {self.model.get('class_name')}. Pass the "
                             "network the record was created for.")
        weights = save_weights(model, folder / WEIGHTS_FILE)
        self.weights_file = weights.name
        self.weights_sha256 = file_sha256(weights)
        self.model["state_sha256"] = state_sha256(model)
        self._model = model
        path = folder / RECORD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> "RunRecord":
        """Read a record saved by :meth:`save` (a folder or the JSON file itself).

        Examples
        --------
        >>> RunRecord.load("no/such/folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: No run record at no/such/folder/run_record.json. ...
        """
        path = Path(path)
        if path.is_dir() or path.suffix != ".json":
            path = path / RECORD_FILE
        if not path.is_file():
            raise FileNotFoundError(f"No run record at {path}. Give the folder that "
                                    "RunRecord.save() wrote (it holds run_record.json).")
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {f.name for f in dataclasses.fields(cls) if f.name != "_model"}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{path} is not a complete run record: missing {missing}.")
        extra = sorted(set(data) - names)
        if extra:
            warnings.warn(f"{path} has fields this version of dlbio_teach does not know "
                          f"({extra}; schema {data.get('schema')!r}); they are ignored. "
                          "Update dlbio_teach to read them.", stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in names})


def _resolve_record(record_or_folder) -> tuple[RunRecord, Path | None]:
    if isinstance(record_or_folder, RunRecord):
        return record_or_folder, None
    path = Path(record_or_folder)
    folder = path if path.is_dir() or path.suffix != ".json" else path.parent
    return RunRecord.load(path), folder


def rebuild_model(record_or_folder, *, folder=None, model_class=None,
                  device="cpu") -> torch.nn.Module:
    """Rebuild the network a run record describes and load its saved weights safely.

    The weights file must have the sha256 the record gives (otherwise it is not the
    file the scores were computed with) and is read with ``weights_only=True``: nothing
    is unpickled, so a shared file cannot run code.

    Parameters
    ----------
    record_or_folder : RunRecord or path
        A record, or the folder :meth:`RunRecord.save` wrote.
    folder : path, optional
        Where the weights file is, when a :class:`RunRecord` object is given.
    model_class : type, optional
        The network's class; default the class of that name in :mod:`dlbio_teach.models`.
    device : str or torch.device
        Where to put the model (default CPU, to recompute scores anywhere).

    Returns
    -------
    torch.nn.Module
        The network, in evaluation mode.

    Examples
    --------
    >>> import tempfile
    >>> from dlbio_teach.models import UNet
    >>> net = UNet(1, 1, depth=1, base_channels=4).eval()
    >>> rec = RunRecord.create(model=net, history=History(train_loss=[1.0]), seed=0,
    ...                        profile="smoke", hyperparameters={})
    >>> x = torch.rand(1, 1, 16, 16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = rec.save(tmp)
    ...     again = rebuild_model(tmp)
    >>> torch.equal(again(x), net(x))
    True
    """
    record, found = _resolve_record(record_or_folder)
    folder = Path(folder) if folder is not None else found
    if folder is None:
        raise ValueError("Say where the weights are: rebuild_model(record, folder=...) or "
                         "rebuild_model(folder).")
    if not record.weights_file or not record.weights_sha256:
        raise ValueError("The record names no weights file: it was never saved. Call "
                         "record.save(folder, model) first.")
    weights = folder / record.weights_file
    if not weights.is_file():
        raise FileNotFoundError(f"The weights file {weights} is missing. Copy "
                                f"{record.weights_file} (saved beside {RECORD_FILE}) into "
                                f"{folder}.")
    actual = file_sha256(weights)
    if actual != record.weights_sha256:
        raise ValueError(f"{weights} has sha256 {actual}, but the run record gives "
                         f"{record.weights_sha256}: it is not the file the record "
                         "describes. Find the original weights, or train and save again.")
    name = record.model.get("class_name")
    if model_class is None:
        from . import models
        model_class = getattr(models, name, None) if name else None
        if not isinstance(model_class, type):
            raise ValueError(f"dlbio_teach.models has no class {name!r}. Pass the class "
                             f"the model was built from: rebuild_model(..., model_class=...)"
                             f" (module {record.model.get('module')!r}).")
    model = model_class(**record.model.get("kwargs", {}))
    load_weights(model, weights, device="cpu")
    return model.to(device).eval()


def _estimate(value):
    """The point estimate of a metric entry (a number, or a dict with an estimate)."""
    if isinstance(value, Mapping):
        for key in ("estimate", "value", "mean", "point"):
            if key in value:
                return value[key]
        return None
    return value


def compare_metrics(recorded: Mapping, recomputed: Mapping, *, rtol: float = 1e-5,
                    atol: float = 1e-8) -> list[dict]:
    """Compare scores recomputed now with those of a run record, metric by metric.

    Parameters
    ----------
    recorded, recomputed : dict
        Metric name -> number, or -> dict with an ``"estimate"`` (as in a run record).
        Only names present in both are compared.
    rtol, atol : float
        Tolerances, as in :func:`numpy.isclose`.

    Returns
    -------
    list of dict
        One row per metric: ``metric``, ``recorded``, ``recomputed``, ``abs_diff``,
        ``match`` (bool).

    Examples
    --------
    >>> rows = compare_metrics({"F1": {"estimate": 0.8, "low": 0.7, "high": 0.9}},
    ...                        {"F1": 0.8000001}, rtol=1e-5)
    >>> rows[0]["match"], round(rows[0]["abs_diff"], 7)
    (True, 1e-07)
    """
    rows = []
    common = [k for k in recorded if k in recomputed]
    if not common:
        raise ValueError(f"No metric in common: recorded {sorted(recorded)}, recomputed "
                         f"{sorted(recomputed)}. Use the names the record uses.")
    for key in common:
        a, b = _estimate(recorded[key]), _estimate(recomputed[key])
        if a is None or b is None:
            rows.append({"metric": key, "recorded": a, "recomputed": b, "abs_diff": None,
                         "match": a is None and b is None})
            continue
        a, b = float(a), float(b)
        rows.append({"metric": key, "recorded": a, "recomputed": b,
                     "abs_diff": abs(a - b),
                     "match": bool(np.isclose(b, a, rtol=rtol, atol=atol))})
    return rows


# --------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------

_CI_KEYS = (("low", "high"), ("ci_low", "ci_high"), ("lower", "upper"))


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10_000 else str(x)
    return f"{x:.{digits}g}"


def _ci(value) -> tuple | None:
    if not isinstance(value, Mapping):
        return None
    for lo, hi in _CI_KEYS:
        if lo in value and hi in value:
            return value[lo], value[hi], value.get("level", value.get("confidence"))
    return None


def _metric_rows(metrics: Mapping, prefix: str = "") -> list[tuple]:
    rows = []
    for name, value in metrics.items():
        label = f"{prefix}{name}"
        if isinstance(value, Mapping) and _estimate(value) is None and _ci(value) is None:
            rows.extend(_metric_rows(value, prefix=f"{label} / "))
            continue
        ci = _ci(value)
        extra = ""
        if isinstance(value, Mapping):
            shown = {"estimate", "value", "mean", "point", "level", "confidence",
                     *(k for pair in _CI_KEYS for k in pair)}
            rest = {k: v for k, v in value.items() if k not in shown}
            extra = ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(rest.items()))
        if ci:
            level = f"{ci[2]:.0%} " if isinstance(ci[2], (int, float)) else ""
            ci_text = f"{level}CI [{_fmt(ci[0])}, {_fmt(ci[1])}]"
        else:
            ci_text = "not computed"
        rows.append((label, _fmt(_estimate(value)), ci_text, extra))
    return rows


def _metrics_table(metrics: Mapping) -> str:
    if not metrics:
        return "No metrics were recorded."
    lines = ["| Metric | Estimate | Confidence interval | Details |", "|---|---|---|---|"]
    lines += [f"| {m} | {e} | {c} | {d} |" for m, e, c, d in _metric_rows(metrics)]
    return "\n".join(lines)


def _kv_table(mapping: Mapping, header=("Setting", "Value")) -> str:
    if not mapping:
        return "None recorded."
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for k, v in sorted(mapping.items()):
        text = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else _fmt(v)
        lines.append(f"| {k} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def _citations(record: RunRecord) -> list[str]:
    cites = [_COURSE_CITATION.format(version=record.versions.get("dlbio_teach", "?"))]
    arch = _ARCHITECTURE_CITATIONS.get(record.model.get("class_name", ""))
    if arch:
        cites.append(f"{arch[0]} doi:{arch[1]}")
    cites += [f"Dataset `{name}`: {d['citation']}" for name, d in record.datasets.items()]
    return cites


def model_card(record: RunRecord, *, intended_use: str, limitations: str,
               title: str | None = None, out_of_scope: str | None = None,
               authors: Sequence[str] = (), how_to_cite: str | None = None,
               extra_sections: Mapping[str, str] | None = None) -> str:
    """Write a Markdown model card (after Mitchell et al., 2019) from a run record.

    What the record knows (architecture, data with licences and checksums, splits,
    metrics with confidence intervals, hyper-parameters, environment) is filled in; what
    only the authors know (intended use, limitations) must be given.

    Parameters
    ----------
    record : RunRecord
    intended_use : str
        For which images and question the model is meant.
    limitations : str
        Known failure modes, and the images it was not tested on.
    title : str, optional
        Default: ``"Model card: <class name>"``.
    out_of_scope : str, optional
        Uses it must not be put to.
    authors : sequence of str
        Who trained and documented the model.
    how_to_cite : str, optional
        Preferred citation; the course, the architecture and the datasets are added.
    extra_sections : dict, optional
        Heading -> Markdown text, appended.

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3)
    >>> rec = RunRecord.create(model=net, model_kwargs={"in_channels": 1,
    ...     "out_channels": 1, "kernel_size": 3}, history=History(train_loss=[1.0]),
    ...     seed=0, profile="smoke", hyperparameters={"lr": 0.001}, datasets=["blobs"],
    ...     metrics={"F1@0.5": {"estimate": 0.81, "low": 0.75, "high": 0.86}})
    >>> card = model_card(rec, intended_use="Demo.", limitations="Trained on one image.")
    >>> "| F1@0.5 | 0.81 | CI [0.75, 0.86] |" in card, "CC-BY-4.0" in card
    (True, True)
    """
    for label, text in (("intended_use", intended_use), ("limitations", limitations)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{label} must be a non-empty text: only the authors can say "
                             "it, and a model card without it invites misuse. Write one or "
                             "two sentences.")
    m = record.model
    h = record.history
    title = title or f"Model card: {m.get('class_name', 'model')}"
    out = [f"# {title}", ""]
    if authors:
        out += [f"Authors: {', '.join(authors)}", ""]
    out += ["## Model details", "",
            f"- **Architecture:** `{m.get('class_name')}` from `{m.get('module')}`, "
            f"{_fmt(m.get('n_parameters'))} parameters "
            f"({_fmt(m.get('n_trainable_parameters'))} trainable)",
            f"- **Constructor arguments:** `{json.dumps(m.get('kwargs', {}), sort_keys=True)}`",
            f"- **Weights:** `{record.weights_file or 'not saved yet'}`"
            + (f", sha256 `{record.weights_sha256}`" if record.weights_sha256 else ""),
            f"- **Recorded:** {record.created}, trained with dlbio_teach "
            f"{record.versions.get('dlbio_teach', '?')}",
            "", "## Intended use", "", intended_use.strip(), ""]
    if out_of_scope:
        out += ["### Out of scope", "", out_of_scope.strip(), ""]
    out += ["## Training data", ""]
    if not record.datasets and not record.synthetic_data:
        out += ["No dataset was recorded.", ""]
    for name, d in record.datasets.items():
        out += [f"### `{name}`", "", d["description"], "",
                f"- **Licence:** {d['licence']}", f"- **Cite:** {d['citation']}",
                f"- **Source:** <{d['source']}>", "- **Files:**"]
        out += [f"  - `{f['key']}`: <{f['url']}>, sha256 `{f['sha256']}`"
                for f in d["files"]]
        out.append("")
    if record.synthetic_data:
        out += ["### Synthetic data", "", "```json", _dumps(record.synthetic_data).strip(),
                "```", ""]
    if record.splits:
        out += ["### Splits", "", "| Split | Images | Ids |", "|---|---|---|"]
        for name, ids in record.splits.items():
            shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
            out.append(f"| {name} | {len(ids)} | {shown} |")
        overlap = record.split_overlap()
        out += ["", ("**Warning: splits overlap** " + "; ".join(
            f"{k}: {v}" for k, v in overlap.items())) if overlap
            else "The splits are disjoint (no id in two splits).", ""]
    out += ["## Validation", "",
            "Scores on held-out data, with the confidence intervals that were computed.",
            "", _metrics_table(record.metrics), ""]
    out += ["## Training", "",
            f"- **Seed:** {record.seed}",
            f"- **Run profile:** `{record.profile.get('name')}` "
            f"({', '.join(f'{k}={v}' for k, v in sorted(record.profile.items()) if k != 'name')})",
            f"- **Epochs run:** {len(h.get('train_loss', []))}; best epoch "
            f"{h.get('best_epoch')} (validation loss {_fmt(h.get('best_val_loss'))}); "
            f"stopped early: {'yes' if h.get('stopped_early') else 'no'}",
            f"- **Training time:** {_fmt(h.get('seconds'), 3)} s; wall time "
            f"{_fmt(record.wall_time_s, 3)} s", "", "### Hyper-parameters", "",
            _kv_table(record.hyperparameters), ""]
    out += ["## Environment", "", _kv_table(record.versions, ("Software", "Version")), "",
            _kv_table(record.hardware, ("Hardware", "Value")), ""]
    out += ["## Limitations", "", limitations.strip(), ""]
    if record.notes:
        out += ["## Notes", "", record.notes.strip(), ""]
    for heading, text in (extra_sections or {}).items():
        out += [f"## {heading}", "", text.strip(), ""]
    out += ["## How to cite", ""]
    if how_to_cite:
        out += [how_to_cite.strip(), ""]
    out += [f"- {c}" for c in _citations(record)]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# Checklist
# --------------------------------------------------------------------------------------

LAINE = "Laine et al. 2021"
DOME = "DOME (Walsh et al. 2021)"
SCHMIED = "Schmied et al. 2024"
CHECKLIST_SOURCES = {
    LAINE: "Laine, Arganda-Carreras, Henriques, Jacquemet (2021) Avoiding a replication "
           "crisis in deep-learning-based bioimage analysis. Nat Methods 18:1136. "
           "doi:10.1038/s41592-021-01284-3",
    DOME: "Walsh, Fishman, Garcia-Gasulla et al. (2021) DOME: recommendations for "
          "supervised machine learning validation in biology. Nat Methods 18:1122. "
          "doi:10.1038/s41592-021-01205-4",
    SCHMIED: "Schmied, Nelson, Avilov et al. (2024) Community-developed checklists for "
             "publishing images and image analyses. Nat Methods 21:170. "
             "doi:10.1038/s41592-023-01987-9",
}


@dataclass(frozen=True)
class ChecklistItem:
    """One reporting question, the section it belongs to and where it comes from.

    The questions paraphrase the recommendations of the cited papers (see
    ``CHECKLIST_SOURCES``); the sections are DOME's: Data, Optimisation, Model,
    Evaluation.
    """

    key: str
    section: str
    question: str
    sources: tuple


CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem("data_provenance", "Data",
                  "Where do the images come from, under which licence, and how can others "
                  "get exactly the same files (URL and checksum)?", (DOME, LAINE, SCHMIED)),
    ChecklistItem("ground_truth", "Data",
                  "Who made the ground truth, how, with which tool, and how consistent are "
                  "annotators with each other?", (LAINE, SCHMIED)),
    ChecklistItem("data_splits", "Data",
                  "How were the images split into training, validation and test sets, and "
                  "how many images are in each?", (DOME, LAINE)),
    ChecklistItem("split_independence", "Data",
                  "Are the splits independent: no image (nor patch of one image) in two "
                  "sets?", (DOME, LAINE)),
    ChecklistItem("data_availability", "Data",
                  "Are new training and test images deposited in a public archive with an "
                  "identifier (e.g. BioImage Archive, Zenodo)?", (DOME, SCHMIED)),
    ChecklistItem("preprocessing", "Optimisation",
                  "How were the images pre-processed (normalisation) and augmented?",
                  (DOME, LAINE)),
    ChecklistItem("hyperparameters", "Optimisation",
                  "Which loss, optimiser, learning rate, batch size and number of epochs "
                  "were used?", (DOME, LAINE)),
    ChecklistItem("training_budget", "Optimisation",
                  "How large was the training (run profile: epochs, number and size of "
                  "patches)?", (DOME,)),
    ChecklistItem("model_selection", "Optimisation",
                  "How was over-fitting controlled: validation loss, early stopping, which "
                  "epoch's weights were kept?", (DOME, LAINE)),
    ChecklistItem("training_curves", "Optimisation",
                  "Are the training and validation loss curves shown?", (LAINE,)),
    ChecklistItem("seed", "Optimisation",
                  "Is the random seed reported, and how much do results vary between "
                  "seeds?", (LAINE, DOME)),
    ChecklistItem("architecture", "Model",
                  "Which architecture, with which settings and how many parameters?",
                  (DOME, LAINE, SCHMIED)),
    ChecklistItem("software_versions", "Model",
                  "Which software and versions were used (framework, libraries, this "
                  "package and its commit)?", (LAINE, SCHMIED)),
    ChecklistItem("hardware_time", "Model",
                  "On which hardware, and how long did training take?", (LAINE, DOME)),
    ChecklistItem("weights_shared", "Model",
                  "Are the trained weights shared, with a checksum, in a standard format "
                  "(e.g. the BioImage Model Zoo)?", (LAINE, SCHMIED, DOME)),
    ChecklistItem("code_available", "Model",
                  "Is the code to train and apply the model public, at a fixed version?",
                  (DOME, LAINE, SCHMIED)),
    ChecklistItem("metrics", "Evaluation",
                  "Which metrics were computed, on which images, with which settings "
                  "(e.g. IoU threshold)?", (DOME, LAINE, SCHMIED)),
    ChecklistItem("confidence", "Evaluation",
                  "Do the scores carry confidence intervals or a spread over images and "
                  "seeds?", (DOME,)),
    ChecklistItem("baselines", "Evaluation",
                  "Is the model compared with a simple baseline (a classical method) and "
                  "with published methods on the same images?", (DOME, LAINE)),
    ChecklistItem("generalisation", "Evaluation",
                  "Was the model tested on images from another microscope, lab or sample "
                  "preparation than the training images?", (LAINE,)),
    ChecklistItem("quality_control", "Evaluation",
                  "How is the output checked when the model is applied to new images "
                  "(e.g. against a few manual annotations)?", (LAINE, SCHMIED)),
    ChecklistItem("limitations", "Evaluation",
                  "Are failure cases shown, and is it said for which images the model "
                  "should not be used?", (LAINE, SCHMIED)),
)

_HP_PREPROCESS = ("normalization", "normalisation", "normalize", "normalise",
                  "preprocessing", "augment", "augmentation", "percentiles")
_HP_TRAINING = ("loss", "optimizer", "optimiser", "lr", "learning_rate", "batch_size",
                "epochs", "weight_decay", "patience")


def _auto_answer(key: str, r: RunRecord) -> tuple[str, str] | None:
    """(status, answer) for the items a run record can answer, else None."""
    if key == "data_provenance" and r.datasets:
        parts = [f"{n} ({d['licence']}; {len(d['files'])} file(s) with sha256)"
                 for n, d in r.datasets.items()]
        if r.synthetic_data:
            parts.append("synthetic data (generator settings recorded)")
        return "answered", "; ".join(parts)
    if key == "data_provenance" and r.synthetic_data:
        return "answered", "synthetic data: " + json.dumps(r.synthetic_data, sort_keys=True)
    if key == "data_splits" and r.splits:
        return "answered", ", ".join(f"{k}: {len(v)} image(s)" for k, v in r.splits.items()) \
            + " (ids in the run record)"
    if key == "split_independence" and r.splits:
        overlap = r.split_overlap()
        if overlap:
            return "attention", "NO, ids in two splits: " + "; ".join(
                f"{k} {v}" for k, v in overlap.items())
        return "answered", "yes: no id is in two splits"
    if key == "preprocessing":
        found = {k: v for k, v in r.hyperparameters.items()
                 if any(word in k.lower() for word in _HP_PREPROCESS)}
        if found:
            return "answered", json.dumps(found, sort_keys=True)
    if key == "hyperparameters":
        found = {k: v for k, v in r.hyperparameters.items()
                 if any(word in k.lower() for word in _HP_TRAINING)}
        if found:
            return "answered", json.dumps(found, sort_keys=True)
    if key == "training_budget" and r.profile:
        p = r.profile
        return "answered", f"profile {p.get('name')!r}: " + ", ".join(
            f"{k}={v}" for k, v in sorted(p.items()) if k != "name")
    if key == "model_selection" and r.history.get("train_loss"):
        h = r.history
        if h.get("val_loss"):
            return "answered", (f"weights of the epoch with the lowest validation loss "
                                f"(epoch {h.get('best_epoch')}, loss "
                                f"{_fmt(h.get('best_val_loss'))}); stopped early: "
                                f"{'yes' if h.get('stopped_early') else 'no'}")
        return "attention", ("no validation loss was recorded: the weights were chosen on "
                             "the training loss")
    if key == "training_curves" and r.history.get("train_loss"):
        n_val = len(r.history.get("val_loss", []))
        return "answered", (f"{len(r.history['train_loss'])} training and {n_val} "
                            "validation losses per epoch, in the run record")
    if key == "seed" and r.seed is not None:
        return "answered", f"seed {r.seed} (spread over seeds: to report)"
    if key == "architecture" and r.model:
        m = r.model
        kwargs = json.dumps(m.get("kwargs", {}), sort_keys=True)
        return "answered", (f"{m.get('class_name')}({kwargs}), "
                            f"{_fmt(m.get('n_parameters'))} parameters")
    if key == "software_versions" and r.versions:
        return "answered", ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items()))
    if key == "hardware_time" and r.hardware:
        hw = r.hardware
        return "answered", (f"{hw.get('device')} ({hw.get('device_name')}), "
                            f"{hw.get('cpu_count')} CPU cores; training "
                            f"{_fmt(r.history.get('seconds'), 3)} s")
    if key == "weights_shared" and r.weights_sha256:
        return "answered", (f"{r.weights_file}, sha256 {r.weights_sha256} (zoo package: "
                            "export_bioimageio)")
    if key == "code_available" and r.versions.get("dlbio_teach_git_commit"):
        return "answered", (f"dlbio_teach {r.versions.get('dlbio_teach')}, commit "
                            f"{r.versions['dlbio_teach_git_commit']} (say where it is public)")
    if key == "metrics" and r.metrics:
        return "answered", ", ".join(row[0] for row in _metric_rows(r.metrics))
    if key == "confidence" and r.metrics:
        rows = _metric_rows(r.metrics)
        with_ci = [row[0] for row in rows if row[2] != "not computed"]
        if with_ci:
            return "answered", f"confidence intervals for {', '.join(with_ci)}"
        return "attention", "the recorded metrics have no confidence interval"
    return None


def fill_checklist(record: RunRecord | None = None, *,
                   answers: Mapping[str, str] | None = None) -> list[dict]:
    """Answer the :data:`CHECKLIST` from a run record and the authors' own answers.

    Parameters
    ----------
    record : RunRecord, optional
        Answers the items it can (seed, versions, profile, data, splits, metrics...).
    answers : dict, optional
        Item key -> the authors' answer; overrides the record's.

    Returns
    -------
    list of dict
        One row per item: ``key``, ``section``, ``question``, ``sources``, ``status``
        (``"answered"``, ``"attention"`` when the answer shows a problem, or
        ``"to fill in"``), ``answer`` and ``by`` (``"run record"`` or ``"authors"``).

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3)
    >>> rec = RunRecord.create(model=net, model_kwargs={"in_channels": 1,
    ...     "out_channels": 1, "kernel_size": 3}, history=History(train_loss=[1.0]),
    ...     seed=7, profile="smoke", hyperparameters={})
    >>> rows = {r["key"]: r for r in fill_checklist(rec)}
    >>> rows["seed"]["status"], rows["seed"]["answer"][:6], rows["baselines"]["status"]
    ('answered', 'seed 7', 'to fill in')
    """
    answers = dict(answers or {})
    unknown = sorted(set(answers) - {item.key for item in CHECKLIST})
    if unknown:
        raise KeyError(f"Unknown checklist keys {unknown}; the keys are "
                       f"{[item.key for item in CHECKLIST]}.")
    rows = []
    for item in CHECKLIST:
        row = {"key": item.key, "section": item.section, "question": item.question,
               "sources": list(item.sources), "status": "to fill in", "answer": "",
               "by": ""}
        auto = _auto_answer(item.key, record) if record is not None else None
        if item.key in answers and str(answers[item.key]).strip():
            row.update(status="answered", answer=str(answers[item.key]).strip(),
                       by="authors")
        elif auto is not None:
            row.update(status=auto[0], answer=auto[1], by="run record")
        rows.append(row)
    return rows


def checklist_markdown(record: RunRecord | None = None, *,
                       answers: Mapping[str, str] | None = None,
                       title: str = "Reporting checklist") -> str:
    """Render :func:`fill_checklist` as Markdown: ``[x]`` answered, ``[!]`` answered
    with a problem, ``[ ]`` to fill in; the sources are listed at the end.

    Examples
    --------
    >>> text = checklist_markdown(answers={"baselines": "Otsu + watershed, Table 2."})
    >>> "- [x] **Is the model compared" in text, "- [ ] **Is the random seed" in text
    (True, True)
    """
    rows = fill_checklist(record, answers=answers)
    done = sum(r["status"] != "to fill in" for r in rows)
    out = [f"# {title}", "",
           f"{done} of {len(rows)} items answered ({sum(r['by'] == 'run record' for r in rows)}"
           " from the run record); `[!]` marks an answer that shows a problem.", ""]
    mark = {"answered": "[x]", "attention": "[!]", "to fill in": "[ ]"}
    for section in dict.fromkeys(r["section"] for r in rows):
        out += [f"## {section}", ""]
        for r in (r for r in rows if r["section"] == section):
            answer = r["answer"] or "*to fill in*"
            by = f" *({r['by']})*" if r["by"] else ""
            out.append(f"- {mark[r['status']]} **{r['question']}** {answer}{by} "
                       f"[{'; '.join(r['sources'])}]")
        out.append("")
    out += ["## Sources", ""] + [f"- {k}: {v}" for k, v in CHECKLIST_SOURCES.items()]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------
# BioImage Model Zoo
# --------------------------------------------------------------------------------------

class UntrustedCodeError(RuntimeError):
    """Loading a package would run Python code that came with it."""


_INPUT_DTYPES = ("float32", "float64", "uint8", "int8", "uint16", "int16", "uint32",
                 "int32", "uint64", "int64")
_NAME_RE = re.compile(r"^[A-Za-z0-9_+\- ()]{5,128}$")
_SUPPORTED_OPS = ("ensure_dtype", "scale_range", "clip", "scale_linear",
                  "zero_mean_unit_variance", "fixed_zero_mean_unit_variance", "sigmoid",
                  "binarize")


def _spec_context(**kwargs):
    """An explicit bioimageio.spec ValidationContext: no global setting is relied on."""
    from bioimageio.spec import ValidationContext

    kwargs.setdefault("log_warnings", False)
    kwargs.setdefault("progressbar", False)
    known = {f.name for f in dataclasses.fields(ValidationContext)}
    if "progressbar" not in known:   # older bioimageio.spec
        kwargs.pop("progressbar")
    return ValidationContext(**kwargs)


def _reduce_axes(ids: list, axes) -> tuple:
    if axes is None:
        return tuple(range(len(ids)))
    missing = [a for a in axes if a not in ids]
    if missing:
        raise ValueError(f"processing axes {missing} are not among the tensor's axes {ids}.")
    return tuple(ids.index(a) for a in axes)


def _along(value, axis, ids, ndim):
    v = np.asarray(value, dtype=np.float32)
    if v.ndim == 0 or axis is None:
        return v
    shape = [1] * ndim
    shape[ids.index(axis)] = v.size
    return v.reshape(shape)


def _apply_ops(x: np.ndarray, ops: Sequence[Mapping], ids: list) -> np.ndarray:
    """Apply bioimage.io pre/post-processing steps (plain dicts) to an array, as the
    specification defines them (e.g. scale_range: (x - p_low) / (p_high - p_low + eps))."""
    for op in ops:
        name, kw = op["id"], dict(op.get("kwargs") or {})
        if name == "ensure_dtype":
            x = x.astype(kw["dtype"])
        elif name == "scale_range":
            if kw.get("reference_tensor") is not None:
                raise NotImplementedError("scale_range with a reference_tensor is not "
                                          "supported here; use bioimageio.core.")
            dims = _reduce_axes(ids, kw.get("axes"))
            lo, hi = np.percentile(x, [kw.get("min_percentile", 0.0),
                                       kw.get("max_percentile", 100.0)],
                                   axis=dims, keepdims=True)
            x = ((x - lo) / (hi - lo + kw.get("eps", 1e-6))).astype(np.float32)
        elif name == "clip":
            if kw.get("min_percentile") is not None or kw.get("max_percentile") is not None:
                raise NotImplementedError("clip with percentiles is not supported here; "
                                          "use bioimageio.core.")
            x = np.clip(x, kw.get("min"), kw.get("max"))
        elif name == "scale_linear":
            axis = kw.get("axis")
            x = (x * _along(kw.get("gain", 1.0), axis, ids, x.ndim)
                 + _along(kw.get("offset", 0.0), axis, ids, x.ndim)).astype(np.float32)
        elif name == "zero_mean_unit_variance":
            dims = _reduce_axes(ids, kw.get("axes"))
            mean = x.mean(axis=dims, keepdims=True)
            std = x.std(axis=dims, keepdims=True)
            x = ((x - mean) / (std + kw.get("eps", 1e-6))).astype(np.float32)
        elif name == "fixed_zero_mean_unit_variance":
            axis = kw.get("axis")
            x = ((x - _along(kw["mean"], axis, ids, x.ndim))
                 / _along(kw["std"], axis, ids, x.ndim)).astype(np.float32)
        elif name == "sigmoid":
            x = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
        elif name == "binarize":
            if "axis" in kw:
                raise NotImplementedError("binarize along an axis is not supported here.")
            x = x > kw["threshold"]
        else:
            raise NotImplementedError(f"The processing step {name!r} is not supported by "
                                      f"dlbio_teach (it knows {list(_SUPPORTED_OPS)}); use "
                                      "bioimageio.core to run this model.")
    return x


def _check_architecture_file(path: Path, callable_name: str) -> None:
    """The architecture file must be self-contained: a zoo user has only this file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            bad.append(f"line {node.lineno}: relative import from {'.' * node.level}"
                       f"{node.module or ''}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == \
                "dlbio_teach":
            bad.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            bad += [f"line {node.lineno}: import {a.name}" for a in node.names
                    if a.name.split(".")[0] == "dlbio_teach"]
    if bad:
        raise ValueError(f"The architecture file {path} imports other modules of its "
                         f"package ({'; '.join(bad)}), which a zoo user will not have. "
                         "Give a self-contained file with `architecture=` (only torch, "
                         "numpy and the standard library).")
    top = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    if callable_name not in top:
        raise ValueError(f"{path} defines no top-level class or function "
                         f"{callable_name!r} (it has {sorted(top)}); pass callable_name=.")


def _import_file(source: bytes, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = name
    sys.modules[name] = module   # dataclasses and pickling look modules up here
    try:
        exec(compile(source, name, "exec"), module.__dict__)
    finally:
        sys.modules.pop(name, None)
    return module


@dataclass
class BioimageioExport:
    """What :func:`export_bioimageio` wrote and how it checked out.

    Attributes
    ----------
    path : Path
        The zip package.
    status : str
        Overall status of the offline ``bioimageio.spec`` validation of the zip:
        ``"valid-format"`` (format and files valid; ``"passed"`` needs bioimageio.core's
        dynamic tests, which are not run here).
    summary : str
        The validation summary as Markdown (``ValidationSummary.format()``).
    max_abs_diff : float
        Largest difference between the packaged test output and the output recomputed
        from the zip (loaded back as a zoo user would).
    folder : Path or None
        The unpacked package, when ``folder=`` was given.
    """

    path: Path
    status: str
    summary: str
    max_abs_diff: float
    folder: Path | None = None


def _as_authors(authors) -> list:
    from bioimageio.spec.model.v0_5 import Author

    if isinstance(authors, (str, Mapping)):
        authors = [authors]
    if not authors:
        raise ValueError("Give at least one author: authors=['Your Name'] (or dicts with "
                         "name, affiliation, email, orcid).")
    out = []
    for a in authors:
        a = {"name": a} if isinstance(a, str) else dict(a)
        unknown = sorted(set(a) - {"name", "affiliation", "email", "orcid"})
        if unknown:
            raise ValueError(f"Author fields {unknown} are not written: allowed are name, "
                             "affiliation, email, orcid (a GitHub user name can only be "
                             "checked online; add maintainers when uploading to the zoo).")
        out.append(Author(**a))
    return out


def _as_cites(cite, record) -> list:
    from bioimageio.spec.model.v0_5 import CiteEntry, Doi, HttpUrl

    entries = []
    for c in cite:
        c = dict(c)
        if "text" not in c or not ({"doi", "url"} & set(c)):
            raise ValueError(f"A citation needs 'text' and a 'doi' or 'url', got {c}.")
        kwargs = {"text": c["text"]}
        if c.get("doi"):
            kwargs["doi"] = Doi(c["doi"])
        if c.get("url"):
            kwargs["url"] = HttpUrl(c["url"])
        entries.append(CiteEntry(**kwargs))
    if record is not None:
        for name, d in record.datasets.items():
            entries.append(CiteEntry(text=f"Dataset {name}: {d['citation']}",
                                     url=HttpUrl(d["source"])))
    return entries


def _urls(value) -> set:
    if isinstance(value, str):
        return {value} if value.startswith(("http://", "https://")) else set()
    if isinstance(value, Mapping):
        return set().union(*(_urls(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_urls(v) for v in value)) if value else set()
    return set()


def _tolerances(y: np.ndarray) -> list:
    """Reproducibility tolerances for the test output ``y``.

    bioimageio.spec 0.5 requires ``absolute_tolerance <= 0.01 * y.max()`` (the maximum,
    not the maximum absolute value); for an output with no positive value no tolerance
    passes that check, so none is written and consumers use their defaults.
    """
    top = float(np.max(y))
    if top <= 0:
        return []
    return [{"relative_tolerance": 1e-3, "absolute_tolerance": min(1e-3, 0.01 * top),
             "mismatched_elements_per_million": 100, "output_ids": ["output"]}]


def _cover(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2), dpi=100)
    for i, (img, label) in enumerate(((x, "input"), (y, "output"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(np.asarray(img[0, 0], dtype=np.float32), cmap="magma")
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


def _sample_tif(path: Path, array: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, np.ascontiguousarray(array[0].squeeze()))


def export_bioimageio(model: torch.nn.Module, path, *, test_input: np.ndarray, name: str,
                      description: str, authors, record: RunRecord | None = None,
                      license: str = "MIT", cite: Sequence[Mapping] = (),
                      tags: Sequence[str] = (), architecture=None,
                      callable_name: str | None = None, model_kwargs: Mapping | None = None,
                      normalize: tuple | None = (1.0, 99.8), step: int | None = None,
                      channel_names: Sequence[str] | None = None,
                      output_channel_names: Sequence[str] | None = None,
                      documentation: str | None = None, intended_use: str | None = None,
                      limitations: str | None = None, folder=None,
                      overwrite: bool = False) -> BioimageioExport:
    """Package a trained network for the BioImage Model Zoo (format 0.5), check it offline
    and show that the zip reproduces its own test output.

    The package holds ``rdf.yaml`` (a ``ModelDescr`` of ``bioimageio.spec``), the state
    dict (``pytorch_state_dict`` weights), a copy of the architecture's source file, the
    test input and output (``.npy``), sample images (``.tif``), a cover (``.png``), a
    README (the model card when ``record`` is given) and ``run_record.json``.

    Architecture: the weights entry points at a copy of the file that defines the
    network (``ArchitectureFromFileDescr``), by default ``dlbio_teach/models.py``, which
    imports only ``torch``; a zoo user therefore needs no ``dlbio_teach``. A file that
    imports its own package is refused.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network; a CPU copy in evaluation mode is exported.
    path : path
        The zip to write (``.zip``).
    test_input : ndarray
        ``(N, C, Y, X)`` raw image(s), before normalisation; ``Y`` and ``X`` must be
        multiples of ``step``.
    name, description : str
        Zoo name (5-128 letters, digits, spaces, ``_+-()``) and a one-paragraph summary.
    authors : sequence of str or dict
        Names, or dicts with ``name``, ``affiliation``, ``email``, ``orcid``.
    record : RunRecord, optional
        Its model card becomes the README, it is attached, its training settings fill
        ``config.bioimageio.training``; the model must be the one it describes.
    license : str
        SPDX identifier of the weights' licence (the course's code is MIT).
    cite : sequence of dict
        ``{"text": ..., "doi": ...}`` or ``{"text": ..., "url": ...}``; the
        architecture's and the record's datasets' citations are added.
    tags : sequence of str
        Added to ``pytorch``, ``2d`` and ``dlbio-teach``.
    architecture : path, optional
        Self-contained source file of the network; default the file defining its class.
    callable_name : str, optional
        Class or function in that file; default the model's class name.
    model_kwargs : dict, optional
        Constructor arguments; default ``model.config``.
    normalize : (float, float) or None
        Percentiles of a ``scale_range`` pre-processing step over (channel, y, x) of each
        image, as :func:`~dlbio_teach.preprocessing.normalize_percentile` (up to its
        ``eps``); ``None`` when the input is given already normalised.
    step : int, optional
        Input sides must be ``step * k`` (k >= 1); default ``model.multiple``
        (``2**depth`` for the U-Net), else 1.
    channel_names, output_channel_names : sequence of str, optional
        Default ``channel0``, ``channel1``, ...
    documentation : str, optional
        Markdown README; default the model card (with ``record``) or a short text.
    intended_use, limitations : str, optional
        For the model card (default: the description; "not stated").
    folder : path, optional
        Also unpack the package there (files of the same names are replaced).
    overwrite : bool
        Replace an existing zip.

    Returns
    -------
    BioimageioExport
        The zip path, the validation status and summary, and the reproduction error.

    Examples
    --------
    >>> import tempfile
    >>> from dlbio_teach.models import UNet
    >>> net = UNet(1, 1, depth=1, base_channels=4).eval()
    >>> x = np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = export_bioimageio(net, Path(tmp) / "demo.zip", test_input=x,
    ...                             name="Demo U-Net", description="An untrained demo.",
    ...                             authors=["A. Student"])
    ...     out.status, out.max_abs_diff < 1e-5
    ('valid-format', True)
    """
    from bioimageio.spec import load_description, save_bioimageio_package
    from bioimageio.spec.model.v0_5 import (
        ArchitectureFromFileDescr, AxisId, BatchAxis, ChannelAxis, EnsureDtypeDescr,
        EnsureDtypeKwargs, FileDescr, Identifier, InputTensorDescr,
        IntervalOrRatioDataDescr, LicenseId, ModelDescr, OutputTensorDescr,
        ParameterizedSize, PytorchStateDictWeightsDescr, ScaleRangeDescr, ScaleRangeKwargs,
        SizeReference, SpaceInputAxis, SpaceOutputAxis, TensorId, Version, WeightsDescr)
    from pydantic import ValidationError

    # ---- check what was given, before writing anything
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    path = Path(path)
    if path.suffix != ".zip":
        raise ValueError(f"path must end with .zip (a zoo package), got {path}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"name {name!r} is not a valid zoo name: 5 to 128 characters among "
                         "letters, digits, spaces and _+-() (e.g. 'Nuclei U-Net (course)').")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("description must be a non-empty text (up to 1024 characters).")
    x = np.asarray(test_input)
    if x.ndim != 4:
        raise ValueError(f"test_input must have 4 dimensions (N, C, Y, X), got shape "
                         f"{x.shape}. For one 2D image use image[None, None].")
    if x.dtype.name not in _INPUT_DTYPES:
        raise ValueError(f"test_input has dtype {x.dtype}; give one of {_INPUT_DTYPES} "
                         "(e.g. image.astype(np.float32)).")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ValueError("test_input contains NaN or infinite values; replace them first.")
    if model_kwargs is None:
        model_kwargs = getattr(model, "config", None)
        if not isinstance(model_kwargs, Mapping):
            raise ValueError(f"{type(model).__name__} has no `.config` dict; pass its "
                             "constructor arguments as model_kwargs= (they go into "
                             "rdf.yaml, so that a zoo user can build the network).")
    model_kwargs = dict(model_kwargs)
    in_channels = model_kwargs.get("in_channels")
    if in_channels is not None and x.shape[1] != in_channels:
        raise ValueError(f"test_input has {x.shape[1]} channel(s) (axis 1 of {x.shape}), "
                         f"but the model takes {in_channels}.")
    step = int(step or getattr(model, "multiple", 1))
    if step < 1:
        raise ValueError(f"step must be a positive integer, got {step}.")
    if x.shape[2] % step or x.shape[3] % step:
        ys, xs = x.shape[2] // step * step, x.shape[3] // step * step
        raise ValueError(f"test_input is {x.shape[2]}x{x.shape[3]} pixels, but the package "
                         f"declares sides that are multiples of {step} (2**depth for a "
                         f"U-Net). Crop it: test_input[..., :{ys}, :{xs}].")
    callable_name = callable_name or type(model).__name__
    if architecture is None:
        import inspect
        architecture = inspect.getsourcefile(type(model))
        if architecture is None:
            raise ValueError(f"The source of {type(model).__name__} cannot be found; pass "
                             "architecture= (a self-contained .py file).")
    architecture = Path(architecture)
    if not architecture.is_file() or architecture.suffix != ".py":
        raise FileNotFoundError(f"architecture must be an existing .py file, got "
                                f"{architecture}.")
    _check_architecture_file(architecture, callable_name)
    if record is not None:
        if record.model.get("class_name") != type(model).__name__ or \
                record.model.get("kwargs") != _plain(model_kwargs):
            raise ValueError("The model is not the one the run record describes: record "
                             f"{record.model.get('class_name')}({record.model.get('kwargs')}), "
                             f"model {type(model).__name__}({_plain(model_kwargs)}).")
        if record.model.get("state_sha256") != state_sha256(model):
            raise ValueError("The model's weights differ from those of the run record "
                             "(state_sha256). Export the network the record was made from "
                             "(e.g. rebuild_model(folder)).")
    try:
        license_id = LicenseId(license)
    except (ValueError, ValidationError):
        raise ValueError(f"license {license!r} is not an SPDX identifier (e.g. 'MIT', "
                         "'CC-BY-4.0', 'BSD-3-Clause'; see https://spdx.org/licenses/).") \
            from None
    n_in = x.shape[1]

    # ---- the test output, on a CPU copy in evaluation mode
    net = copy.deepcopy(model).cpu().float().eval()
    pre_ops = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if normalize is not None:
        low, high = map(float, normalize)
        if not 0 <= low < high <= 100 or high <= 1:
            raise ValueError(f"normalize must be percentiles (low, high) with 0 <= low < "
                             f"high <= 100 and high > 1, got {normalize}.")
        pre_ops.append({"id": "scale_range", "kwargs": {
            "axes": ["channel", "y", "x"], "min_percentile": low, "max_percentile": high,
            "eps": 1e-6}})
    pre_ops.append({"id": "ensure_dtype", "kwargs": {"dtype": "float32"}})
    ids = ["batch", "channel", "y", "x"]
    x_model = _apply_ops(x, pre_ops, ids)
    try:
        with torch.no_grad():
            y = net(torch.from_numpy(np.ascontiguousarray(x_model)))
    except Exception as err:
        raise ValueError(f"The model failed on the test input of shape {x.shape} "
                         f"({type(err).__name__}: {err}). Check the number of channels and "
                         f"that the sides suit the network (declared step: {step}).") from err
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != x.shape[0] \
            or tuple(y.shape[2:]) != tuple(x.shape[2:]):
        raise ValueError(f"The model must return one (N, C, Y, X) tensor of the input's "
                         f"size, got {getattr(y, 'shape', type(y))} for input {x.shape}.")
    y = y.numpy().astype(np.float32)
    n_out = y.shape[1]
    channel_names = list(channel_names or [f"channel{i}" for i in range(n_in)])
    output_channel_names = list(output_channel_names or [f"channel{i}" for i in range(n_out)])
    if len(channel_names) != n_in or len(output_channel_names) != n_out:
        raise ValueError(f"{len(channel_names)} input / {len(output_channel_names)} output "
                         f"channel names given for {n_in} / {n_out} channels.")

    # ---- write the files into a staging folder
    with tempfile.TemporaryDirectory(prefix="dlbio-bioimageio-") as tmp:
        root = Path(tmp)
        save_weights(net, root / WEIGHTS_FILE)
        arch_name = architecture.name
        shutil.copyfile(architecture, root / arch_name)
        np.save(root / "test_input.npy", x, allow_pickle=False)
        np.save(root / "test_output.npy", y, allow_pickle=False)
        _sample_tif(root / "sample_input.tif", x)
        _sample_tif(root / "sample_output.tif", y)
        _cover(root / "cover.png", x_model, y)
        if documentation is None:
            if record is not None:
                documentation = model_card(
                    record, title=name, intended_use=intended_use or description,
                    limitations=limitations or "Not stated by the exporter: ask the authors "
                                               "before using it on other images.")
            else:
                documentation = (f"# {name}\n\n{description}\n\n## Validation\n\nNot "
                                 "reported in this package: check the model on a few "
                                 "annotated images of your own before using it.\n")
        (root / "README.md").write_text(documentation, encoding="utf-8")
        attachments = []
        if record is not None:
            (root / RECORD_FILE).write_text(record.to_json(), encoding="utf-8")
            attachments.append(RECORD_FILE)

        def file(fname):
            return FileDescr(source=root / fname, sha256=file_sha256(root / fname))

        arch_cite = _ARCHITECTURE_CITATIONS.get(callable_name)
        cites = ([{"text": arch_cite[0], "doi": arch_cite[1]}] if arch_cite else []) \
            + list(cite)
        training = {}
        if record is not None:
            hp = record.hyperparameters
            training = {k: v for k, v in {
                "training_epochs": len(record.history.get("train_loss", [])) or None,
                "training_batch_size": hp.get("batch_size"),
                "initial_learning_rate": hp.get("lr", hp.get("learning_rate")),
                "loss_function": str(hp["loss"]) if "loss" in hp else None,
                "optimizer": str(hp.get("optimizer", hp.get("optimiser")))
                if ("optimizer" in hp or "optimiser" in hp) else None,
                "training_duration": record.history.get("seconds")}.items()
                if v is not None}
        try:
            with _spec_context(root=root, perform_io_checks=False):
                pre = [EnsureDtypeDescr(kwargs=EnsureDtypeKwargs(dtype="float32"))]
                if normalize is not None:
                    pre.append(ScaleRangeDescr(kwargs=ScaleRangeKwargs(
                        axes=[AxisId("channel"), AxisId("y"), AxisId("x")],
                        min_percentile=low, max_percentile=high, eps=1e-6)))
                pre.append(EnsureDtypeDescr(kwargs=EnsureDtypeKwargs(dtype="float32")))
                space_in = [SpaceInputAxis(id=AxisId(a), size=ParameterizedSize(
                    min=step, step=step)) for a in ("y", "x")]
                space_out = [SpaceOutputAxis(id=AxisId(a), size=SizeReference(
                    tensor_id=TensorId("input"), axis_id=AxisId(a))) for a in ("y", "x")]
                descr = ModelDescr(
                    name=name, description=description.strip(),
                    authors=_as_authors(authors), cite=_as_cites(cites, record),
                    license=license_id,
                    tags=list(dict.fromkeys(["pytorch", "2d", "dlbio-teach", *tags])),
                    documentation=file("README.md"), covers=[file("cover.png")],
                    attachments=[file(a) for a in attachments],
                    timestamp=_dt.datetime.fromisoformat(record.created) if record
                    else _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0),
                    inputs=[InputTensorDescr(
                        id=TensorId("input"), description="raw image(s), (N, C, Y, X)",
                        axes=[BatchAxis(), ChannelAxis(channel_names=[
                            str(c) for c in channel_names]), *space_in],
                        data=IntervalOrRatioDataDescr(type=str(x.dtype)),
                        test_tensor=file("test_input.npy"),
                        sample_tensor=file("sample_input.tif"), preprocessing=pre)],
                    outputs=[OutputTensorDescr(
                        id=TensorId("output"), description="network output, (N, C, Y, X)",
                        axes=[BatchAxis(), ChannelAxis(channel_names=[
                            str(c) for c in output_channel_names]), *space_out],
                        data=IntervalOrRatioDataDescr(type="float32"),
                        test_tensor=file("test_output.npy"),
                        sample_tensor=file("sample_output.tif"))],
                    weights=WeightsDescr(pytorch_state_dict=PytorchStateDictWeightsDescr(
                        source=root / WEIGHTS_FILE, sha256=file_sha256(root / WEIGHTS_FILE),
                        architecture=ArchitectureFromFileDescr(
                            source=root / arch_name, sha256=file_sha256(root / arch_name),
                            callable=Identifier(callable_name), kwargs=_plain(model_kwargs)),
                        pytorch_version=Version(torch.__version__.split("+")[0]))),
                    config={"bioimageio": {
                        "model_parameter_count": int(sum(p.numel() for p in net.parameters())),
                        "reproducibility_tolerance": _tolerances(y),
                        "training": training}},
                )
        except ValidationError as err:
            raise ValueError(f"bioimageio.spec rejected the description:\n{err}\nFix the "
                             "argument named in the first line above.") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        try:
            with _spec_context(root=root, perform_io_checks=False):
                save_bioimageio_package(descr, output_path=path)
            # Offline but thorough: hashes, test tensors and documentation are read from
            # the zip; URLs are declared known so that none is requested.
            known = {u: None for u in _urls(descr.model_dump(mode="json"))}
            with _spec_context(perform_io_checks=False):
                checked = load_description(path, perform_io_checks=True,
                                           known_files=known, format_version="discover")
            summary = checked.validation_summary
            if summary.status == "failed":
                raise ValueError(f"The package does not validate (not kept):\n"
                                 f"{summary.format()}")
        except Exception:
            path.unlink(missing_ok=True)   # never leave an invalid package behind
            raise
        if folder is not None:
            import zipfile
            folder = Path(folder)
            with zipfile.ZipFile(path) as archive:
                archive.extractall(folder)   # replaces the package's files, no others
    loaded = load_bioimageio(path, trust_code=True)   # our own file: safe to run
    diff = reproduce_test_outputs(loaded)
    tolerance = 1e-4 * max(1.0, float(np.abs(y).max()))
    if diff > tolerance:
        raise RuntimeError(f"The package does not reproduce its own test output (max abs "
                           f"difference {diff:.3g} > {tolerance:.3g}): the architecture file "
                           "or its arguments do not build the network that was exported.")
    return BioimageioExport(path=path, status=summary.status, summary=summary.format(),
                            max_abs_diff=diff, folder=folder)


@dataclass
class LoadedBioimageioModel:
    """A zoo package read back: the network, its description, its test tensors.

    Call :meth:`predict` on raw images: it applies the package's pre-processing, runs
    the network on the CPU and applies its post-processing.
    """

    model: torch.nn.Module
    description: object
    test_inputs: list
    test_outputs: list
    preprocessing: list
    postprocessing: list
    input_axes: list
    output_axes: list

    def predict(self, array: np.ndarray) -> np.ndarray:
        """Run the packaged pipeline on raw image(s) laid out as the input axes say.

        Examples
        --------
        >>> import tempfile
        >>> from dlbio_teach.models import UNet
        >>> x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = export_bioimageio(UNet(1, 1, depth=1, base_channels=4).eval(),
        ...                           Path(tmp) / "m.zip", test_input=x, name="Demo U-Net",
        ...                           description="Demo.", authors=["A. Student"])
        ...     loaded = load_bioimageio(Path(tmp) / "m.zip")
        >>> loaded.predict(x).shape
        (1, 1, 16, 16)
        """
        array = np.asarray(array)
        if array.ndim != len(self.input_axes):
            raise ValueError(f"The model takes {len(self.input_axes)}D arrays with axes "
                             f"{self.input_axes}, got shape {array.shape}.")
        x = _apply_ops(array, self.preprocessing, self.input_axes)
        with torch.no_grad():
            y = self.model(torch.from_numpy(np.ascontiguousarray(x)))
        return _apply_ops(y.numpy(), self.postprocessing, self.output_axes)


def _read(file_descr, what: str) -> bytes:
    from bioimageio.spec.common import HttpUrl

    if isinstance(file_descr.source, HttpUrl) or str(file_descr.source).startswith("http"):
        raise ValueError(f"The {what} of this package is a remote file "
                         f"({file_descr.source}); dlbio_teach reads packages offline. "
                         "Download the complete zip package and load that.")
    try:
        return file_descr.get_reader().read()
    except ValueError as err:
        raise ValueError(f"The {what} ({file_descr.source}) does not match its sha256 in "
                         f"rdf.yaml: the package was altered or damaged ({err}).") from None


def _own_architecture_sha() -> str:
    from . import models
    return file_sha256(models.__file__)


def load_bioimageio(path, *, trust_code: bool = False) -> LoadedBioimageioModel:
    """Read a zoo package (zip, or folder with ``rdf.yaml``) offline and rebuild its network.

    The weights are read with ``torch.load(..., weights_only=True)``: no pickled object
    is run. The architecture, though, is Python code: if the package's architecture file
    is byte-identical to this package's ``dlbio_teach/models.py`` (or imports from
    ``dlbio_teach.models``), the installed class is used and nothing from the package
    runs. Any other architecture file runs only with ``trust_code=True``, after you have
    read it.

    Parameters
    ----------
    path : path
        The ``.zip`` package, or ``rdf.yaml`` / its folder.
    trust_code : bool
        Allow running (or importing) the architecture code the package names.

    Returns
    -------
    LoadedBioimageioModel

    Raises
    ------
    UntrustedCodeError
        The package would run code that is not this package's, and ``trust_code`` is off.

    Examples
    --------
    >>> load_bioimageio("missing.zip")
    Traceback (most recent call last):
    ...
    FileNotFoundError: No zoo package at missing.zip. ...
    """
    path = Path(path)
    if path.is_dir():
        path = path / "rdf.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"No zoo package at {path}. Give the .zip that "
                                "export_bioimageio wrote, or a folder with rdf.yaml.")
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model.v0_5 import ArchitectureFromFileDescr, ModelDescr

    with _spec_context(perform_io_checks=False):
        descr = load_description(path, perform_io_checks=False, format_version="latest")
        if isinstance(descr, InvalidDescr) or not isinstance(descr, ModelDescr):
            reason = descr.validation_summary.format() if isinstance(descr, InvalidDescr) \
                else f"it describes a {getattr(descr, 'type', '?')}, not a model"
            raise ValueError(f"{path} is not a valid zoo model package: {reason}")
        weights = descr.weights.pytorch_state_dict
        if weights is None:
            formats = [k for k, v in descr.weights.model_dump().items() if v]
            raise ValueError(f"{path} has no pytorch_state_dict weights (it has {formats}); "
                             "dlbio_teach loads only those. Use bioimageio.core.")
        arch = weights.architecture
        if isinstance(arch, ArchitectureFromFileDescr):
            source = _read(arch, "architecture file")
            own = hashlib.sha256(source).hexdigest() == _own_architecture_sha()
            if own:
                from . import models
                builder = getattr(models, str(arch.callable), None)
                if builder is None:
                    raise ValueError(f"dlbio_teach.models has no {arch.callable!s}.")
            elif trust_code:
                digest = hashlib.sha256(source).hexdigest()[:12]
                module = _import_file(source, f"bioimageio_architecture_{digest}")
                builder = getattr(module, str(arch.callable))
            else:
                raise UntrustedCodeError(
                    f"The package's architecture file {arch.source} is not dlbio_teach's "
                    "models.py: building the network would run Python code from the "
                    f"package. Read that file (inside {path}); if you trust it, call "
                    "load_bioimageio(..., trust_code=True).")
        else:
            module_name = arch.import_from
            if module_name != "dlbio_teach.models" and not trust_code:
                raise UntrustedCodeError(
                    f"The package builds its network by importing {module_name!r}; pass "
                    "trust_code=True if you trust that installed library.")
            builder = getattr(importlib.import_module(module_name), str(arch.callable))
        model = builder(**dict(arch.kwargs))
        state = torch.load(io.BytesIO(_read(weights, "weights file")), map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state, strict=weights.strict)
        model.eval()
        inputs = [np.load(io.BytesIO(_read(t.test_tensor, "test input")),
                          allow_pickle=False) for t in descr.inputs if t.test_tensor]
        outputs = [np.load(io.BytesIO(_read(t.test_tensor, "test output")),
                           allow_pickle=False) for t in descr.outputs if t.test_tensor]
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise ValueError(f"{path} has {len(descr.inputs)} inputs and {len(descr.outputs)} "
                         "outputs; dlbio_teach runs one-input, one-output models only.")
    return LoadedBioimageioModel(
        model=model, description=descr, test_inputs=inputs, test_outputs=outputs,
        preprocessing=[p.model_dump(mode="json") for p in descr.inputs[0].preprocessing],
        postprocessing=[p.model_dump(mode="json") for p in descr.outputs[0].postprocessing],
        input_axes=[str(a.id) for a in descr.inputs[0].axes],
        output_axes=[str(a.id) for a in descr.outputs[0].axes])


def reproduce_test_outputs(package, *, trust_code: bool = False) -> float:
    """Run a package's test input through it and return the largest absolute difference
    from its test output (0 on the machine that exported it; tiny elsewhere).

    Parameters
    ----------
    package : path or LoadedBioimageioModel
        A zoo zip (read with :func:`load_bioimageio`) or a loaded package.
    trust_code : bool
        Passed to :func:`load_bioimageio`.

    Examples
    --------
    >>> import tempfile
    >>> from dlbio_teach.models import UNet
    >>> x = np.random.default_rng(1).random((1, 1, 16, 16), dtype=np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = export_bioimageio(UNet(1, 1, depth=2, base_channels=4).eval(),
    ...                             Path(tmp) / "m.zip", test_input=x, name="Demo U-Net",
    ...                             description="Demo.", authors=["A. Student"])
    ...     reproduce_test_outputs(out.path) < 1e-5
    True
    """
    loaded = package if isinstance(package, LoadedBioimageioModel) else \
        load_bioimageio(package, trust_code=trust_code)
    if not loaded.test_inputs or not loaded.test_outputs:
        raise ValueError("The package has no test tensors to reproduce.")
    y = loaded.predict(loaded.test_inputs[0])
    expected = loaded.test_outputs[0]
    if y.shape != expected.shape:
        raise ValueError(f"The recomputed output has shape {y.shape}, the packaged test "
                         f"output {expected.shape}.")
    return float(np.max(np.abs(y.astype(np.float64) - expected.astype(np.float64))))
