"""The run record: what it takes to redo, and to judge, one training.

Every training of the course writes one. It is gathered from the objects a chapter
already holds (the model, the history that ``fit`` returned, the
:class:`~dlbio_teach.runtime.Profile`, the dataset names of
:data:`~dlbio_teach.data.REGISTRY`) rather than typed again:

* :class:`RunRecord` -- versions, hardware, seed, profile, hyper-parameters, datasets
  (URL and sha256 from the registry), split membership, loss curves, metrics with their
  confidence intervals, and the weights file with its sha256; saved as a plain, sorted
  ``run_record.json`` beside ``weights.pt``.
* :func:`save_weights`, :func:`load_weights` -- state dicts only, read back with
  ``weights_only=True``.
* :func:`rebuild_model` gives the trained network back so that a notebook can recompute
  the scores, and :func:`compare_metrics` compares them with the recorded ones.

This module stands before ``training`` in the flow (``fit`` writes a record): it knows
the training history only as a dict, or an object with ``to_dict()``.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import REGISTRY, file_sha256
from .models import count_parameters
from .runtime import (
    PROFILES,
    Profile,
    environment_versions,
    get_profile,
    hardware_info,
    resolve_device,
)

__all__ = ["RunRecord", "RECORD_FILE", "WEIGHTS_FILE", "SCHEMA", "rebuild_model",
           "compare_metrics", "state_sha256", "save_weights", "load_weights"]

#: The record's file name in a run folder.
RECORD_FILE = "run_record.json"
#: The weights' file name in a run folder, beside the record.
WEIGHTS_FILE = "weights.pt"
#: The record format's name and version, stored in every record.
SCHEMA = "dlbio_teach.run_record/1"



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
# Weights
# --------------------------------------------------------------------------------------

def save_weights(model: torch.nn.Module, path) -> Path:
    """Save a model's state dict (tensors only: safe to share and to load).

    The file is written beside its final name and then renamed, so that an interrupted
    run never leaves a half-written file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_weights(torch.nn.Linear(2, 1), Path(tmp) / "w.pt").name
    'w.pt'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)   # never leave a half-written checkpoint
    return path


def load_weights(model: torch.nn.Module, path, *, device=None) -> torch.nn.Module:
    """Load a state dict saved by :func:`save_weights` into ``model``, and put it on
    ``device``; returns ``model``.

    The file is read with ``weights_only=True``: nothing is unpickled, so a weights file
    from elsewhere cannot run code. A file saved on a GPU loads on a CPU-only machine.

    Parameters
    ----------
    model : torch.nn.Module
        A network of the architecture the weights were saved from; moved to ``device``.
    path : path
        The weights file.
    device : str or torch.device, optional
        Where the network goes. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`), where training and prediction run
        too; ``"cpu"`` to keep it on the CPU.

    Examples
    --------
    >>> import tempfile
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = load_weights(b, save_weights(a, Path(tmp) / "w.pt"))
    >>> state_sha256(b) == state_sha256(a)      # the same weights, on any device
    True
    """
    device = resolve_device(device)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device)



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
    if profile is None:
        return {}
    if isinstance(profile, Profile):
        return profile.to_dict()
    if isinstance(profile, str):
        return get_profile(profile).to_dict()
    if isinstance(profile, Mapping) and "name" in profile:
        return _plain(dict(profile), "profile")
    raise TypeError(f"profile must be a runtime.Profile, a profile name "
                    f"({sorted(PROFILES)}), its to_dict() or None, got "
                    f"{type(profile).__name__}. Pass course.profile from setup_course().")


def _history_dict(history) -> dict:
    """A history as a dict: anything with ``to_dict()`` (``training.History``) or a dict
    with ``train_loss``."""
    if not isinstance(history, Mapping) and callable(getattr(history, "to_dict", None)):
        history = history.to_dict()
    if isinstance(history, Mapping) and "train_loss" in history:
        return _plain(dict(history), "history")
    raise TypeError(f"history must be the training.History that fit() returned (or its "
                    f"to_dict(), a dict with 'train_loss'), got {type(history).__name__}.")


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
        Python, ``dlbio_teach`` (and its git commit in a clone), PyTorch (``torch`` is
        ``torch.__version__``, e.g. ``2.13.0+cu130``; ``torch_distribution`` the package
        version), the ``cuda`` and ``cudnn`` versions PyTorch was built with (None when
        absent), NumPy, SciPy, scikit-image and the other libraries the course uses.
    hardware : dict
        Platform, CPU, CPU count, torch threads, device and its name, CUDA version.
    seed : int
        The seed of :func:`~dlbio_teach.runtime.setup_course` / ``fit``.
    profile : dict
        The run profile's name and sizes (:meth:`~dlbio_teach.runtime.Profile.to_dict`);
        empty when the run had no profile.
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
        Loss curves and early-stopping outcome (``History.to_dict()`` of ``fit``).
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
        """Turn every field into plain JSON data (arrays, tuples and paths included)."""
        for f in dataclasses.fields(self):
            if f.name != "_model":
                setattr(self, f.name, _plain(getattr(self, f.name), f.name))

    @classmethod
    def create(cls, *, model: torch.nn.Module, history, seed: int, profile=None,
               hyperparameters: Mapping, datasets: Sequence[str] = (),
               splits: Mapping | None = None, metrics: Mapping | None = None,
               model_kwargs: Mapping | None = None, synthetic_data: Mapping | None = None,
               wall_time_s: float | None = None, notes: str = "") -> RunRecord:
        """Gather a run record from the objects of a chapter; versions and hardware are
        read from the running environment.

        Parameters
        ----------
        model : torch.nn.Module
            The trained network (kept, not serialised, so that :meth:`save` can write
            its weights).
        history : training.History or dict
            What :func:`~dlbio_teach.training.fit` returned: any object with a
            ``to_dict()``, or a dict with ``train_loss`` (and ``val_loss``,
            ``best_epoch``, ``best_val_loss``, ``stopped_early``, ``seconds``).
        seed : int
            The seed of the run.
        profile : runtime.Profile, str or None
            The run profile (``course.profile``); None (stored as ``{}``) for a run
            without one.
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
        >>> rec = RunRecord.create(model=net, history={"train_loss": [0.5, 0.4]},
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
            versions=environment_versions(), hardware=hardware_info(_model_device(model)),
            seed=int(seed),
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
        """The record as indented JSON with sorted keys (strict: no NaN).

        Examples
        --------
        >>> rec = RunRecord(created="", versions={}, hardware={}, seed=0, profile={},
        ...                 hyperparameters={"lr": float("nan")}, datasets={}, splits={},
        ...                 history={}, metrics={}, model={})
        >>> json.loads(rec.to_json())["hyperparameters"], rec.to_dict()["seed"]
        ({'lr': None}, 0)
        """
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
        ...     "out_channels": 1, "kernel_size": 3}, history={"train_loss": [1.0]},
        ...     seed=0, hyperparameters={})
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
    def load(cls, path) -> RunRecord:
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
                  device=None) -> torch.nn.Module:
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
    device : str or torch.device, optional
        Where to put the network. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`), as for a network just trained;
        ``device="cpu"`` to recompute scores as anyone can, without a GPU.

    Returns
    -------
    torch.nn.Module
        The network, in evaluation mode.

    Examples
    --------
    >>> import tempfile
    >>> from dlbio_teach.models import UNet
    >>> net = UNet(1, 1, depth=1, base_channels=4).eval()
    >>> rec = RunRecord.create(model=net, history={"train_loss": [1.0]}, seed=0,
    ...                        profile="smoke", hyperparameters={})
    >>> x = torch.rand(1, 1, 16, 16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = rec.save(tmp)
    ...     again = rebuild_model(tmp, device="cpu")   # where net and x are
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
    return load_weights(model, weights, device=device).eval()


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


