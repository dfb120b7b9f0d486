"""Export a trained 2D or 3D network as a BioImage Model Zoo package (format 0.5), offline.

A network of images (``(N, C, Y, X)``, e.g. ``UNet()``) and a network of volumes
(``(N, C, Z, Y, X)``, e.g. ``UNet(ndim=3)``, told apart by its configuration's ``ndim``
or its first convolution being a ``Conv3d``) are exported the same way. For volumes the
package has the axes batch, channel, z, y, x, each spatial axis with its own step: the
factor by which the network halves it (``2**depth`` for Y and X; for Z the same, or 1
for a U-Net with ``pool_z=False``, as its :attr:`~dlbio_teach.models.UNet.multiples` say).

:func:`export_bioimageio` is a short sequence of named steps, each usable on its own:

1. the arguments are checked before anything is written (:mod:`dlbio_teach.zoo_checks`,
   one named check per argument; images and volumes each with their own);
2. :func:`describe_tensors` -- the test input, its pre-processing (``scale_range`` as the
   course's percentile normalisation), the network's test output and its post-processing
   (``softmax`` for a classifier);
3. :func:`~dlbio_teach.zoo_files.stage_files` -- weights (state dict, and TorchScript
   by :func:`~dlbio_teach.zoo_files.save_torchscript`), the architecture's source file,
   test tensors, sample images, cover, README (the model card,
   :func:`~dlbio_teach.zoo_files.package_readme`) and the run record, in a staging folder
   (:mod:`dlbio_teach.zoo_files`, one helper per kind of file);
4. :func:`~dlbio_teach.zoo.build_description` -- the ``ModelDescr`` of those files;
5. :func:`~dlbio_teach.zoo.validate_package` -- the zip is written and checked offline
   (see :mod:`dlbio_teach.zoo`, *Offline validation*); an invalid zip is not kept;
6. :func:`~dlbio_teach.zoo_import.reproduce_test_outputs` -- the zip, loaded back as a
   zoo user would, must give its own test output with each of its weight formats.
"""
from __future__ import annotations

import copy
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .prediction import network_in_channels
from .records import RunRecord
from .zoo import (
    _SPACE_AXES,
    PackageTensors,
    _apply_ops,
    _license_id,
    build_description,
    validate_package,
)
from .zoo_checks import (
    _architecture_file,
    _check_record,
    _check_sides,
    _check_target,
    _check_test_input,
    _default_step,
    _image_step,
    _model_kwargs,
    _network_ndim,
    _volume_steps,
)
from .zoo_files import (  # noqa: F401 (TORCHSCRIPT_FILE, save_torchscript: as before)
    TORCHSCRIPT_FILE,
    package_readme,
    save_torchscript,
    stage_files,
)
from .zoo_import import load_bioimageio, reproduce_test_outputs

# Step 3 (stage_files, save_torchscript) is documented in dlbio_teach.zoo_files.
__all__ = ["export_bioimageio", "BioimageioExport", "describe_tensors"]

# What the network's output becomes in the package (a post-processing step of the spec).
_OUTPUT_ACTIVATIONS = (None, "softmax", "sigmoid")


# --------------------------------------------------------------------------------------
# Step 2: the test tensors
# --------------------------------------------------------------------------------------

def _preprocessing_ops(normalize, ndim: int = 2) -> list:
    """``ensure_dtype``, the percentile normalisation (``scale_range`` over the channels
    and the ``ndim`` spatial axes of each image: one range per image, or per volume), and
    ``ensure_dtype`` again."""
    ops = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if normalize is not None:
        low, high = map(float, normalize)
        if not 0 <= low < high <= 100 or high <= 1:
            raise ValueError(f"normalize must be percentiles (low, high) with 0 <= low < "
                             f"high <= 100 and high > 1, got {normalize}.")
        axes = ["channel", *_SPACE_AXES[ndim]]
        ops.append({"id": "scale_range", "kwargs": {
            "axes": axes, "min_percentile": low, "max_percentile": high, "eps": 1e-6}})
    return ops + [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]


def _postprocessing_ops(output_activation) -> list:
    """The package's post-processing: ``softmax`` (over the channels: class probabilities
    that sum to 1), ``sigmoid`` (each channel in (0, 1)), or none (the raw output)."""
    if output_activation not in _OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_activation must be one of {list(_OUTPUT_ACTIVATIONS)}, got "
                         f"{output_activation!r} (softmax for the logits of a classifier "
                         "such as the three-class U-Net).")
    if output_activation == "softmax":
        return [{"id": "softmax", "kwargs": {"axis": "channel"}}]
    if output_activation == "sigmoid":
        return [{"id": "sigmoid", "kwargs": {}}]
    return []


def _run(net: torch.nn.Module, x_model: np.ndarray, x: np.ndarray, step) -> np.ndarray:
    try:
        with torch.no_grad():
            y = net(torch.from_numpy(np.ascontiguousarray(x_model)))
    except Exception as err:
        raise ValueError(f"The model failed on the test input of shape {x.shape} "
                         f"({type(err).__name__}: {err}). Check the number of channels and "
                         f"that the sides suit the network (declared step: {step}).") from err
    if not isinstance(y, torch.Tensor) or y.ndim != x.ndim or y.shape[0] != x.shape[0] \
            or tuple(y.shape[2:]) != tuple(x.shape[2:]):
        layout = "(N, C, Y, X)" if x.ndim == 4 else "(N, C, Z, Y, X)"
        raise ValueError(f"The model must return one {layout} tensor of the input's "
                         f"size, got {getattr(y, 'shape', type(y))} for input {x.shape}.")
    return y.numpy().astype(np.float32)


def describe_tensors(net: torch.nn.Module, test_input: np.ndarray, *,
                     normalize: tuple | None = (1.0, 99.8), step: int | tuple = 1,
                     channel_names: Sequence[str] | None = None,
                     output_channel_names: Sequence[str] | None = None,
                     output_activation: str | None = None) -> PackageTensors:
    """Prepare the test input as the package will, and compute the test output.

    Parameters
    ----------
    net : torch.nn.Module
        The network, on the CPU in evaluation mode (float32); a network of volumes
        (``UNet(ndim=3)``, or a first ``Conv3d``) takes volumes.
    test_input : ndarray
        ``(N, C, Y, X)`` raw image(s), ``Y`` and ``X`` multiples of ``step``; for a
        network of volumes ``(N, C, Z, Y, X)``, each side a multiple of its axis' step.
    normalize : (float, float) or None
        Percentiles of a ``scale_range`` step over (channel, y, x) of each image, over
        (channel, z, y, x) of each volume; ``None`` when the input is already normalised.
    step : int or tuple of int
        Declared sides are ``step * k`` pixels; for volumes an int for every axis or one
        per axis ``(z, y, x)``, e.g. ``(1, 4, 4)`` for a U-Net of depth 2 that never
        halves Z.
    channel_names, output_channel_names : sequence of str, optional
        Default ``channel0``, ``channel1``, ...
    output_activation : {None, "softmax", "sigmoid"}
        A post-processing step of the package: ``"softmax"`` turns a classifier's logits
        into class probabilities (over the channel axis), ``"sigmoid"`` maps each channel
        into (0, 1); ``None`` keeps the network's output.

    Returns
    -------
    PackageTensors

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 2, 3, padding=1).eval()
    >>> x = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)
    >>> t = describe_tensors(net, x, step=4)
    >>> t.test_output.shape, t.output_channel_names, [op["id"] for op in t.preprocessing]
    ((1, 2, 8, 8), ['channel0', 'channel1'], ['ensure_dtype', 'scale_range', 'ensure_dtype'])
    >>> p = describe_tensors(net, x, step=4, output_activation="softmax").test_output
    >>> bool(np.allclose(p.sum(axis=1), 1.0))
    True

    A network of volumes, with one step per axis:

    >>> net3d = torch.nn.Conv3d(1, 1, 3, padding=1).eval()
    >>> v = describe_tensors(net3d, np.ones((1, 1, 3, 8, 8), np.float32), step=(1, 4, 4))
    >>> v.test_output.shape, v.steps, v.preprocessing[1]["kwargs"]["axes"]
    ((1, 1, 3, 8, 8), (1, 4, 4), ['channel', 'z', 'y', 'x'])
    """
    post = _postprocessing_ops(output_activation)
    ndim = _network_ndim(net)
    x = _check_test_input(test_input, network_in_channels(net), ndim)
    step = _volume_steps(step) if ndim == 3 else _image_step(step)
    _check_sides(x, step)
    ops = _preprocessing_ops(normalize, ndim)
    axes = ["batch", "channel", *_SPACE_AXES[ndim]]
    x_model = _apply_ops(x, ops, axes)
    y = _run(net, x_model, x, step)
    n_in, n_out = x.shape[1], y.shape[1]
    if output_activation == "softmax" and n_out < 2:
        raise ValueError(f"output_activation='softmax' needs at least 2 output channels "
                         f"(classes), the network gives {n_out}; use 'sigmoid' for one.")
    y = _apply_ops(y, post, axes)
    channel_names = list(channel_names or [f"channel{i}" for i in range(n_in)])
    output_channel_names = list(output_channel_names or [f"channel{i}" for i in range(n_out)])
    if len(channel_names) != n_in or len(output_channel_names) != n_out:
        raise ValueError(f"{len(channel_names)} input / {len(output_channel_names)} output "
                         f"channel names given for {n_in} / {n_out} channels.")
    return PackageTensors(test_input=x, model_input=x_model, test_output=y,
                          preprocessing=ops, step=step, channel_names=channel_names,
                          output_channel_names=output_channel_names, postprocessing=post)


# --------------------------------------------------------------------------------------
# The export
# --------------------------------------------------------------------------------------

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
        from the zip (loaded back as a zoo user would), over its weight formats.
    folder : Path or None
        The unpacked package, when ``folder=`` was given.
    diffs : dict
        That difference for each weight format (``pytorch_state_dict``, ``torchscript``).
    """

    path: Path
    status: str
    summary: str
    max_abs_diff: float
    folder: Path | None = None
    diffs: dict = field(default_factory=dict)


def _check_reproduction(path: Path, y: np.ndarray, weight_formats: Sequence[str]) -> dict:
    """Each weight format of the zip, loaded back, must give the packaged test output."""
    tolerance = 1e-4 * max(1.0, float(np.abs(y).max()))
    diffs = {}
    for weight_format in weight_formats:
        # trust_code: the architecture file is the one we have just exported. On the CPU,
        # where the test output was computed: this checks the package, not the device.
        loaded = load_bioimageio(path, trust_code=True, weight_format=weight_format,
                                 device="cpu")
        diffs[weight_format] = diff = reproduce_test_outputs(loaded, device="cpu")
        if diff > tolerance:
            raise RuntimeError(
                f"The package's {weight_format} weights do not reproduce its own test "
                f"output (max abs difference {diff:.3g} > {tolerance:.3g}): "
                + ("the architecture file or its arguments do not build the network that "
                   "was exported." if weight_format == "pytorch_state_dict" else
                   "the TorchScript differs from the network."))
    return diffs


def export_bioimageio(model: torch.nn.Module, path, *, test_input: np.ndarray, name: str,
                      description: str, authors, record: RunRecord | None = None,
                      license: str = "MIT", cite: Sequence[Mapping] = (),
                      tags: Sequence[str] = (), architecture=None,
                      callable_name: str | None = None, model_kwargs: Mapping | None = None,
                      normalize: tuple | None = (1.0, 99.8),
                      step: int | tuple | None = None,
                      channel_names: Sequence[str] | None = None,
                      output_channel_names: Sequence[str] | None = None,
                      output_activation: str | None = None, torchscript: bool = True,
                      documentation: str | None = None, intended_use: str | None = None,
                      limitations: str | None = None, folder=None,
                      overwrite: bool = False) -> BioimageioExport:
    """Package a trained network for the BioImage Model Zoo (format 0.5), check it offline
    and show that the zip reproduces its own test output.

    The steps (see the module's docstring): check the arguments, :func:`describe_tensors`,
    :func:`~dlbio_teach.zoo_files.stage_files`, :func:`~dlbio_teach.zoo.build_description`,
    :func:`~dlbio_teach.zoo.validate_package`, and
    :func:`~dlbio_teach.zoo_import.reproduce_test_outputs` on the zip loaded back.

    The package holds ``rdf.yaml`` (a ``ModelDescr`` of ``bioimageio.spec``), the state
    dict (``pytorch_state_dict`` weights) with a copy of the architecture's source file,
    the same network as TorchScript (``torchscript`` weights, converted from the state
    dict: tools without Python, such as deepImageJ, run these), the test input and output
    (``.npy``), sample images (``.tif``), a cover (``.png``), a README (the model card
    when ``record`` is given) and ``run_record.json``.

    A classifier's output (the three-class U-Net's logits) is turned into class
    probabilities by the package itself with ``output_activation="softmax"``: a
    ``softmax`` post-processing step over the channel axis, so that the channels named
    by ``output_channel_names`` hold probabilities that sum to 1. The network and its
    weights stay the same (a zoo user who fine-tunes it still gets the logits).

    Volumes: a network of volumes (``UNet(ndim=3)``: its configuration's ``ndim`` is 3,
    or its first convolution is a ``Conv3d``) is exported with a test input
    ``(N, C, Z, Y, X)`` and the axes batch, channel, z, y, x. Each spatial axis gets its
    own step, by default the network's :attr:`~dlbio_teach.models.UNet.multiples`: the
    factor by which its pooling shrinks that axis (Z's is 1 for ``pool_z=False``), and
    the percentile normalisation runs over each volume (channel, z, y, x). The cover and
    the sample images show the volume's maximum projection along Z and its stack of
    planes.

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
        multiples of ``step``. For a network of volumes ``(N, C, Z, Y, X)``
        (``volume[None, None]`` for one volume ``(Z, Y, X)``), each side a multiple of
        its axis' step.
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
        Added to ``pytorch``, ``2d`` (``3d`` for volumes) and ``dlbio-teach``.
    architecture : path, optional
        Self-contained source file of the network; default the file defining its class.
    callable_name : str, optional
        Class or function in that file; default the model's class name.
    model_kwargs : dict, optional
        Constructor arguments; default ``model.config``.
    normalize : (float, float) or None
        Percentiles of a ``scale_range`` pre-processing step over (channel, y, x) of each
        image (over (channel, z, y, x) of each volume), as
        :func:`~dlbio_teach.preprocessing.normalize_percentile` (up to its ``eps``);
        ``None`` when the input is given already normalised.
    step : int or tuple of int, optional
        Input sides must be ``step * k`` (k >= 1); default ``model.multiple``
        (``2**depth`` for the U-Net), else 1. For volumes one per axis ``(z, y, x)`` (an
        int applies to each); default ``model.multiples`` (``(2**depth,) * 3``, or
        ``(1, 2**depth, 2**depth)`` for ``pool_z=False``), else ``model.multiple``
        along each axis, else 1.
    channel_names, output_channel_names : sequence of str, optional
        Default ``channel0``, ``channel1``, ...
    output_activation : {None, "softmax", "sigmoid"}
        Post-processing of the network's output in the package: ``"softmax"`` for the
        logits of a classifier (probabilities over the channels), ``"sigmoid"`` for
        independent channels; default none (a restoration network's image).
    torchscript : bool
        Also write TorchScript weights (default); the export stops with an error if the
        traced network does not give the same output.
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

    A 3D U-Net that never halves Z takes volumes of any number of planes:

    >>> net3d = UNet(1, 1, depth=1, base_channels=2, ndim=3, pool_z=False).eval()
    >>> v = np.random.default_rng(0).random((1, 1, 3, 16, 16), dtype=np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = export_bioimageio(net3d, Path(tmp) / "demo3d.zip", test_input=v,
    ...                             name="Demo 3D U-Net", description="An untrained demo.",
    ...                             authors=["A. Student"], torchscript=False)
    ...     out.status, out.max_abs_diff < 1e-5
    ('valid-format', True)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    path = _check_target(path, name, description, overwrite)
    ndim = _network_ndim(model)
    x = _check_test_input(test_input, network_in_channels(model), ndim)
    model_kwargs = _model_kwargs(model, model_kwargs, x)
    _postprocessing_ops(output_activation)
    step = _default_step(model, step, ndim)
    _check_sides(x, step)
    callable_name = callable_name or type(model).__name__
    architecture = _architecture_file(model, architecture, callable_name)
    if record is not None:
        _check_record(record, model, model_kwargs)
    _license_id(license)
    net = copy.deepcopy(model).cpu().float().eval()
    tensors = describe_tensors(net, x, normalize=normalize, step=step,
                               channel_names=channel_names,
                               output_channel_names=output_channel_names,
                               output_activation=output_activation)
    if documentation is None:
        documentation = package_readme(record, name=name, description=description,
                                       intended_use=intended_use, limitations=limitations)
    with tempfile.TemporaryDirectory(prefix="dlbio-bioimageio-") as tmp:
        files = stage_files(tmp, net, tensors, architecture=architecture,
                            documentation=documentation, record=record,
                            torchscript=torchscript)
        descr = build_description(
            tmp, files, tensors, name=name, description=description, authors=authors,
            callable_name=callable_name, model_kwargs=model_kwargs, record=record,
            n_parameters=sum(p.numel() for p in net.parameters()), license=license,
            cite=cite, tags=tags)
        summary = validate_package(descr, tmp, path)
    if folder is not None:
        folder = Path(folder)
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)   # replaces the package's files, no others
    diffs = _check_reproduction(path, tensors.test_output, ["pytorch_state_dict"]
                                + (["torchscript"] if torchscript else []))
    return BioimageioExport(path=path, status=summary.status, summary=summary.format(),
                            max_abs_diff=max(diffs.values()), folder=folder, diffs=diffs)
