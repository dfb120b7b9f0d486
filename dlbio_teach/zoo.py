"""BioImage Model Zoo packages: the description, its processing steps, offline validation.

A package is a zip of files and ``rdf.yaml``, a ``ModelDescr`` of ``bioimageio.spec``
(format 0.5) that lists them with their sha256. The zoo modules, in the order of the flow:

* :mod:`dlbio_teach.zoo` (this module) -- :class:`PackageTensors` (test tensors and
  pre-processing), :func:`build_description` (the ``ModelDescr`` of staged files),
  :func:`validate_package` (the zip, written and checked offline),
  :func:`run_core_tests` (``bioimageio.core``'s dynamic tests, offline, when it is
  installed), and the spec's processing steps run in NumPy (``_apply_ops``);
* :mod:`dlbio_teach.zoo_import` -- :func:`~dlbio_teach.zoo_import.load_bioimageio` and
  :func:`~dlbio_teach.zoo_import.reproduce_test_outputs`: a package read back, offline;
* :mod:`dlbio_teach.zoo_files` -- :func:`~dlbio_teach.zoo_files.stage_files`: the files
  of a package (weights, TorchScript, test tensors, cover, README) in a staging folder;
* :mod:`dlbio_teach.zoo_export` -- :func:`~dlbio_teach.zoo_export.export_bioimageio`, a
  short sequence of named steps from a trained network to a checked zip.

Offline validation
------------------
``bioimageio.spec`` checks URLs (HTTP HEAD requests) and GitHub user names over the
network when its ``perform_io_checks`` setting is on (the default, or
``$BIOIMAGEIO_PERFORM_IO_CHECKS``). The zoo modules never rely on those global settings:
every call into the library runs inside an explicit ``ValidationContext``:

* building and zipping: ``perform_io_checks=False`` (nothing is read or fetched);
* checking the zip: ``perform_io_checks=True`` with ``known_files`` listing every URL of
  the description, so that local files are hashed and the test tensors, documentation
  and sample images are read and checked, while no URL is requested;
* loading: ``perform_io_checks=False``; the files of the package are then read with
  their sha256 checked, and a package that points to a remote file is refused;
* ``bioimageio.core``'s tests (:func:`run_core_tests`): on the description checked as
  the zip is, with every URL known.

Authors are written without ``github_user`` (checking a GitHub name needs the network);
maintainers are added when a model is uploaded to the zoo.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import file_sha256
from .model_card import _ARCHITECTURE_CITATIONS
from .records import RunRecord, _plain

__all__ = ["PackageTensors", "build_description", "validate_package", "run_core_tests"]


_SUPPORTED_OPS = ("ensure_dtype", "scale_range", "clip", "scale_linear",
                  "zero_mean_unit_variance", "fixed_zero_mean_unit_variance", "sigmoid",
                  "softmax", "binarize")


def _version(package: str) -> tuple:
    from importlib.metadata import version

    parts = []
    for part in version(package).split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


@functools.lru_cache(maxsize=1)
def _check_spec_works() -> None:
    """bioimageio.spec before 0.5.14 (the 0.5.12 that bioimageio.core 0.11 pins) cannot
    build a model description under pydantic 2.14 or newer; say so instead of the
    library's message ("'index_key' is expected to be an integer or a string")."""
    if _version("bioimageio.spec") < (0, 5, 14) and _version("pydantic") >= (2, 14):
        from importlib.metadata import version

        raise RuntimeError(
            f"bioimageio.spec {version('bioimageio.spec')} does not work with pydantic "
            f"{version('pydantic')}: install pydantic<2.14 (pip install \"pydantic<2.14\"; "
            "the zoo extra, pip install \"dlbio-teach[zoo]\", does), or a newer "
            "bioimageio.spec.")


def _spec_context(**kwargs):
    """An explicit bioimageio.spec ValidationContext: no global setting is relied on."""
    from bioimageio.spec import ValidationContext

    _check_spec_works()
    kwargs.setdefault("log_warnings", False)
    kwargs.setdefault("progressbar", False)
    known = {f.name for f in dataclasses.fields(ValidationContext)}
    if "progressbar" not in known:   # older bioimageio.spec
        kwargs.pop("progressbar")
    return ValidationContext(**kwargs)


# --------------------------------------------------------------------------------------
# Processing steps, as the specification defines them
# --------------------------------------------------------------------------------------

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
        elif name == "softmax":
            # exp(x) / sum of exp(x) along the axis (the channels: class probabilities);
            # the maximum is subtracted first so that exp cannot overflow.
            dim = _reduce_axes(ids, [kw.get("axis", "channel")])[0]
            e = np.exp(x - x.max(axis=dim, keepdims=True))
            x = (e / e.sum(axis=dim, keepdims=True)).astype(np.float32)
        elif name == "binarize":
            if "axis" in kw:
                raise NotImplementedError("binarize along an axis is not supported here.")
            x = x > kw["threshold"]
        else:
            raise NotImplementedError(f"The processing step {name!r} is not supported by "
                                      f"dlbio_teach (it knows {list(_SUPPORTED_OPS)}); use "
                                      "bioimageio.core to run this model.")
    return x


# --------------------------------------------------------------------------------------
# The description
# --------------------------------------------------------------------------------------

_SPACE_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


@dataclass
class PackageTensors:
    """The test tensors of a package and how its input is prepared.

    Attributes
    ----------
    test_input : ndarray
        ``(N, C, Y, X)`` raw image(s), or ``(N, C, Z, Y, X)`` volume(s) for a network of
        volumes, as a zoo user gives them.
    model_input : ndarray
        ``test_input`` after ``preprocessing``: what the network sees.
    test_output : ndarray
        The network's float32 output for ``model_input``, after ``postprocessing``
        (e.g. class probabilities): what a zoo user gets.
    preprocessing : list of dict
        bioimage.io processing steps (``{"id": ..., "kwargs": {...}}``).
    step : int or tuple of int
        Declared sides are ``step * k`` pixels (k >= 1); for volumes one step per
        spatial axis, ``(z, y, x)`` (Z's is 1 for a U-Net that never halves Z).
    channel_names, output_channel_names : list of str
    postprocessing : list of dict
        Steps applied to the network's output (e.g. ``softmax`` over the channels).
    """

    test_input: np.ndarray
    model_input: np.ndarray
    test_output: np.ndarray
    preprocessing: list
    step: int
    channel_names: list
    output_channel_names: list
    postprocessing: list = dataclasses.field(default_factory=list)

    @property
    def space_axes(self) -> tuple:
        """The spatial axes, ``("y", "x")``, or ``("z", "y", "x")`` for volumes."""
        return _SPACE_AXES[self.test_input.ndim - 2]

    @property
    def axes(self) -> list:
        """All axes of the tensors, batch, channel and then :attr:`space_axes`."""
        return ["batch", "channel", *self.space_axes]

    @property
    def steps(self) -> tuple:
        """:attr:`step` for each of :attr:`space_axes`."""
        if isinstance(self.step, (int, np.integer)):
            return (int(self.step),) * len(self.space_axes)
        return tuple(int(s) for s in self.step)

    @property
    def layout(self) -> str:
        """The axes as the descriptions write them, ``(N, C, Y, X)`` or ``(N, C, Z, Y, X)``."""
        return "(N, C, " + ", ".join(a.upper() for a in self.space_axes) + ")"


def _license_id(license: str):
    from bioimageio.spec.model.v0_5 import LicenseId
    from pydantic import ValidationError

    try:
        return LicenseId(license)
    except (ValueError, ValidationError):
        raise ValueError(f"license {license!r} is not an SPDX identifier (e.g. 'MIT', "
                         "'CC-BY-4.0', 'BSD-3-Clause'; see https://spdx.org/licenses/).") \
            from None


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


def _tolerances(y: np.ndarray) -> list:
    """Reproducibility tolerances for the test output ``y``.

    bioimageio.spec 0.5 requires ``absolute_tolerance <= 0.01 * y.max()`` (the maximum,
    not the maximum absolute value), computed in the test tensor's own dtype (float32).
    Half of that bound is written (at most 1e-3), so that no rounding can put it over.
    For an output with no positive value no tolerance passes that check, so none is
    written and consumers use their defaults.

    Examples
    --------
    >>> y = np.array([0.0, 0.054030363], np.float32)
    >>> tol = _tolerances(y)[0]["absolute_tolerance"]
    >>> bool(tol < y.max() * 0.01), _tolerances(-y)
    (True, [])
    """
    top = float(np.max(y))
    if top <= 0:
        return []
    return [{"relative_tolerance": 1e-3, "absolute_tolerance": min(1e-3, 0.005 * top),
             "mismatched_elements_per_million": 100, "output_ids": ["output"]}]


def _training_config(record: RunRecord | None) -> dict:
    """``config.bioimageio.training`` from a run record's settings."""
    if record is None:
        return {}
    hp = record.hyperparameters
    optimizer = hp.get("optimizer", hp.get("optimiser"))
    training = {
        "training_epochs": len(record.history.get("train_loss", [])) or None,
        "training_batch_size": hp.get("batch_size"),
        "initial_learning_rate": hp.get("lr", hp.get("learning_rate")),
        "loss_function": str(hp["loss"]) if "loss" in hp else None,
        "optimizer": str(optimizer) if ("optimizer" in hp or "optimiser" in hp) else None,
        "training_duration": record.history.get("seconds")}
    return {k: v for k, v in training.items() if v is not None}


def _processing_descrs(ops: Sequence[Mapping]) -> list:
    """bioimageio.spec descriptions of plain processing steps (as _apply_ops runs them)."""
    from bioimageio.spec.model.v0_5 import (
        AxisId,
        EnsureDtypeDescr,
        EnsureDtypeKwargs,
        ScaleRangeDescr,
        ScaleRangeKwargs,
        SigmoidDescr,
        SoftmaxDescr,
        SoftmaxKwargs,
    )

    kinds = {"ensure_dtype": (EnsureDtypeDescr, EnsureDtypeKwargs),
             "scale_range": (ScaleRangeDescr, ScaleRangeKwargs),
             "softmax": (SoftmaxDescr, SoftmaxKwargs),
             "sigmoid": (SigmoidDescr, None)}
    out = []
    for op in ops:
        if op["id"] not in kinds:
            raise NotImplementedError(f"The export writes only {sorted(kinds)} steps, got "
                                      f"{op['id']!r}.")
        descr, kwargs = kinds[op["id"]]
        kw = dict(op.get("kwargs") or {})
        if "axes" in kw:
            kw["axes"] = [AxisId(a) for a in kw["axes"]]
        if "axis" in kw:
            kw["axis"] = AxisId(kw["axis"])
        out.append(descr(kwargs=kwargs(**kw)) if kwargs is not None else descr())
    return out


def _tensor_descrs(tensors: PackageTensors, file) -> tuple:
    """The input and output tensor descriptions (``file``: name -> FileDescr)."""
    from bioimageio.spec.model.v0_5 import (
        AxisId,
        BatchAxis,
        ChannelAxis,
        InputTensorDescr,
        IntervalOrRatioDataDescr,
        OutputTensorDescr,
        ParameterizedSize,
        SizeReference,
        SpaceInputAxis,
        SpaceOutputAxis,
        TensorId,
    )

    # Each spatial axis has its own step: a U-Net that never halves Z takes any number
    # of planes (step 1) but sides of 2**depth pixels in Y and X.
    space_in = [SpaceInputAxis(id=AxisId(a), size=ParameterizedSize(min=step, step=step))
                for a, step in zip(tensors.space_axes, tensors.steps)]
    space_out = [SpaceOutputAxis(id=AxisId(a), size=SizeReference(
        tensor_id=TensorId("input"), axis_id=AxisId(a))) for a in tensors.space_axes]
    what = "raw image(s)" if len(tensors.space_axes) == 2 else "raw volume(s)"
    inputs = InputTensorDescr(
        id=TensorId("input"), description=f"{what}, {tensors.layout}",
        axes=[BatchAxis(), ChannelAxis(channel_names=[
            str(c) for c in tensors.channel_names]), *space_in],
        data=IntervalOrRatioDataDescr(type=str(tensors.test_input.dtype)),
        test_tensor=file("test_input"), sample_tensor=file("sample_input"),
        preprocessing=_processing_descrs(tensors.preprocessing))
    post = [op["id"] for op in tensors.postprocessing]
    outputs = OutputTensorDescr(
        id=TensorId("output"),
        description=(f"class probabilities (softmax over the channels), {tensors.layout}"
                     if "softmax" in post else f"network output, {tensors.layout}"),
        axes=[BatchAxis(), ChannelAxis(channel_names=[
            str(c) for c in tensors.output_channel_names]), *space_out],
        data=IntervalOrRatioDataDescr(type="float32"),
        test_tensor=file("test_output"), sample_tensor=file("sample_output"),
        postprocessing=_processing_descrs(tensors.postprocessing))
    return inputs, outputs


def _weights_descr(root: Path, files: Mapping, callable_name: str, model_kwargs: Mapping):
    """The state dict (with the architecture's source) and, when staged, the same network
    as TorchScript, which runs without Python (deepImageJ, ...): its ``parent`` says it was
    converted from the state dict."""
    from bioimageio.spec.model.v0_5 import (
        ArchitectureFromFileDescr,
        Identifier,
        PytorchStateDictWeightsDescr,
        TorchscriptWeightsDescr,
        Version,
        WeightsDescr,
    )

    weights, arch = root / files["weights"], root / files["architecture"]
    version = Version(torch.__version__.split("+")[0])
    torchscript = None
    if files.get("torchscript"):
        ts = root / files["torchscript"]
        torchscript = TorchscriptWeightsDescr(source=ts, sha256=file_sha256(ts),
                                              pytorch_version=version,
                                              parent="pytorch_state_dict")
    return WeightsDescr(pytorch_state_dict=PytorchStateDictWeightsDescr(
        source=weights, sha256=file_sha256(weights),
        architecture=ArchitectureFromFileDescr(
            source=arch, sha256=file_sha256(arch), callable=Identifier(callable_name),
            kwargs=_plain(dict(model_kwargs))),
        pytorch_version=version), torchscript=torchscript)


def build_description(root, files: Mapping, tensors: PackageTensors, *, name: str,
                      description: str, authors, callable_name: str, model_kwargs: Mapping,
                      n_parameters: int, record: RunRecord | None = None,
                      license: str = "MIT", cite: Sequence[Mapping] = (),
                      tags: Sequence[str] = ()):
    """The ``ModelDescr`` (bioimageio.spec, format 0.5) of the files that
    :func:`~dlbio_teach.zoo_files.stage_files` wrote; nothing is read from the network.

    Parameters
    ----------
    root : path
        The staging folder.
    files : dict
        What :func:`~dlbio_teach.zoo_files.stage_files` returned.
    tensors : PackageTensors
        From :func:`~dlbio_teach.zoo_export.describe_tensors`.
    name, description, authors, license, cite, tags
        As for :func:`~dlbio_teach.zoo_export.export_bioimageio`.
    callable_name : str
        The class or function in the architecture file that builds the network.
    model_kwargs : dict
        Its arguments.
    n_parameters : int
        The network's parameter count.
    record : RunRecord, optional
        Its creation time, datasets' citations and training settings are written.

    Returns
    -------
    bioimageio.spec.model.v0_5.ModelDescr

    Examples
    --------
    >>> import tempfile, dlbio_teach.models as models
    >>> from dlbio_teach.zoo_export import describe_tensors
    >>> from dlbio_teach.zoo_files import stage_files
    >>> net = models.UNet(1, 1, depth=1, base_channels=4).eval()
    >>> t = describe_tensors(net, np.ones((1, 1, 8, 8), np.float32), step=2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = stage_files(tmp, net, t, architecture=models.__file__,
    ...                         documentation="# Demo")
    ...     descr = build_description(tmp, files, t, name="Demo U-Net", description="Demo.",
    ...         authors=["A. Student"], callable_name="UNet", model_kwargs=net.config,
    ...         n_parameters=100)
    >>> descr.name, [str(a.id) for a in descr.inputs[0].axes]
    ('Demo U-Net', ['batch', 'channel', 'y', 'x'])
    """
    from bioimageio.spec.model.v0_5 import FileDescr, ModelDescr
    from pydantic import ValidationError

    root = Path(root)

    def file(role):
        return FileDescr(source=root / files[role], sha256=file_sha256(root / files[role]))

    arch_cite = _ARCHITECTURE_CITATIONS.get(callable_name)
    cites = ([{"text": arch_cite[0], "doi": arch_cite[1]}] if arch_cite else []) + list(cite)
    timestamp = _dt.datetime.fromisoformat(record.created) if record is not None \
        else _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    try:
        with _spec_context(root=root, perform_io_checks=False):
            inputs, outputs = _tensor_descrs(tensors, file)
            return ModelDescr(
                name=name, description=description.strip(), authors=_as_authors(authors),
                cite=_as_cites(cites, record), license=_license_id(license),
                tags=list(dict.fromkeys(["pytorch", f"{len(tensors.space_axes)}d",
                                         "dlbio-teach", *tags])),
                documentation=file("documentation"), covers=[file("cover")],
                attachments=[FileDescr(source=root / a, sha256=file_sha256(root / a))
                             for a in files["attachments"]],
                timestamp=timestamp, inputs=[inputs], outputs=[outputs],
                weights=_weights_descr(root, files, callable_name, model_kwargs),
                config={"bioimageio": {
                    "model_parameter_count": int(n_parameters),
                    "reproducibility_tolerance": _tolerances(tensors.test_output),
                    "training": _training_config(record)}})
    except ValidationError as err:
        raise ValueError(f"bioimageio.spec rejected the description:\n{err}\nFix the "
                         "argument named in the first line above.") from None


# --------------------------------------------------------------------------------------
# The zip, checked offline
# --------------------------------------------------------------------------------------

def _urls(value) -> set:
    if isinstance(value, str):
        return {value} if value.startswith(("http://", "https://")) else set()
    if isinstance(value, Mapping):
        return set().union(*(_urls(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_urls(v) for v in value)) if value else set()
    return set()


def validate_package(descr, root, path):
    """Write the zip of a description and check it offline; an invalid zip is removed.

    The check is thorough but makes no request: hashes, test tensors and documentation
    are read from the zip, and every URL of the description is declared known.

    Parameters
    ----------
    descr : bioimageio.spec.model.v0_5.ModelDescr
        From :func:`build_description`.
    root : path
        The staging folder the description's files are in.
    path : path
        The zip to write (replaced if it exists).

    Returns
    -------
    bioimageio.spec.ValidationSummary
        ``status`` is ``"valid-format"`` (``"passed"`` needs bioimageio.core's tests).

    Examples
    --------
    >>> import tempfile, dlbio_teach.models as models
    >>> from dlbio_teach.zoo_export import describe_tensors
    >>> from dlbio_teach.zoo_files import stage_files
    >>> net = models.UNet(1, 1, depth=1, base_channels=4).eval()
    >>> t = describe_tensors(net, np.ones((1, 1, 8, 8), np.float32), step=2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = stage_files(tmp, net, t, architecture=models.__file__,
    ...                         documentation="# Demo")
    ...     descr = build_description(tmp, files, t, name="Demo U-Net", description="Demo.",
    ...         authors=["A. Student"], callable_name="UNet", model_kwargs=net.config,
    ...         n_parameters=100)
    ...     summary = validate_package(descr, tmp, Path(tmp) / "out" / "demo.zip")
    >>> summary.status
    'valid-format'
    """
    from bioimageio.spec import load_description, save_bioimageio_package

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    try:
        with _spec_context(root=Path(root), perform_io_checks=False):
            save_bioimageio_package(descr, output_path=path)
        # Offline but thorough: hashes, test tensors and documentation are read from the
        # zip; URLs are declared known so that none is requested.
        known = {u: None for u in _urls(descr.model_dump(mode="json"))}
        with _spec_context(perform_io_checks=False):
            checked = load_description(path, perform_io_checks=True, known_files=known,
                                       format_version="discover")
        summary = checked.validation_summary
        if summary.status == "failed":
            raise ValueError(f"The package does not validate (not kept):\n"
                             f"{summary.format()}")
    except Exception:
        path.unlink(missing_ok=True)   # never leave an invalid package behind
        raise
    return summary


# --------------------------------------------------------------------------------------
# bioimageio.core's tests, offline
# --------------------------------------------------------------------------------------

CORE_INSTALL = 'pip install "dlbio-teach[zoo]"'


def _load_checked(path: Path):
    """The package's description, loaded with its files read and hashed
    (``perform_io_checks``) and every URL declared known, so that nothing is requested."""
    from bioimageio.spec import load_description

    with _spec_context(perform_io_checks=False):
        plain = load_description(path, perform_io_checks=False, format_version="discover")
    known = {u: None for u in _urls(plain.model_dump(mode="json"))}
    with _spec_context(perform_io_checks=False):
        return load_description(path, perform_io_checks=True, known_files=known,
                                format_version="discover")


def run_core_tests(path, *, devices: Sequence[str] = ("cpu",)):
    """Run ``bioimageio.core``'s ``test_model`` on a package, offline: what the zoo runs
    before it accepts a model (each weight format must reproduce the test output, and
    the network must run on inputs of other sizes and batch sizes).

    ``bioimageio.core`` is optional (``pip install "dlbio-teach[zoo]"``). Its
    ``test_model`` checks the description with ``perform_io_checks`` on; here the
    description is loaded first with every URL declared known (see *Offline validation*
    above), and the test runs on that, so that no URL is requested.

    Parameters
    ----------
    path : path
        A ``.zip`` package.
    devices : sequence of str
        Where the network runs (default the CPU).

    Returns
    -------
    bioimageio.spec.ValidationSummary
        ``status`` is ``"passed"`` when every test passed.

    Raises
    ------
    ImportError
        ``bioimageio.core`` is not installed.
    """
    try:
        from bioimageio.core import test_model
    except ImportError:
        raise ImportError("bioimageio.core is not installed; install it with "
                          f"{CORE_INSTALL}.") from None
    from bioimageio.spec import InvalidDescr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No zoo package at {path}.")
    descr = _load_checked(path)
    if isinstance(descr, InvalidDescr):
        return descr.validation_summary
    with _spec_context(perform_io_checks=False):
        return test_model(descr, devices=list(devices))
