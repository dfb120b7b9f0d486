"""Step 1 of the zoo export: the arguments, checked before anything is written.

:func:`~dlbio_teach.zoo_export.export_bioimageio` checks everything it is given before it
writes a file, so that a wrong argument costs a clear message, not a half-written package.
One named check per argument, in the order the export runs them (private: the export
calls them; each error says what was given, what was expected and how to fix it):

1. ``_check_target`` -- the zip's path, the package's name and description;
2. ``_network_ndim`` -- images or volumes: 3 when the network's configuration says
   ``ndim=3`` (``UNet(ndim=3)``) or its first convolution is a ``Conv3d``;
3. ``_check_test_input`` -- the test input of a network of images, ``(N, C, Y, X)``, with
   the explanations of :func:`~dlbio_teach.preprocessing.check_network_input`; for a
   network of volumes its own step, ``_check_volumes``: ``(N, C, Z, Y, X)``, where an
   image or a stack of images given instead is named as such, with the fix;
4. ``_model_kwargs`` -- the network's constructor arguments (``model.config``);
5. ``_default_step`` -- the declared step, the factor by which the network halves each
   side: one int for images (``_image_step``), one per axis ``(z, y, x)`` for volumes
   (``_volume_steps``, by default the U-Net's :attr:`~dlbio_teach.models.UNet.multiples`);
6. ``_check_sides`` -- the test input's sides are multiples of the step (for volumes
   ``_check_volume_sides``: per axis, a side shorter than its step, or one to crop);
7. ``_architecture_file`` -- the network's source file, self-contained
   (``_check_architecture_file``: a zoo user has only this file);
8. ``_check_record`` -- the run record describes this network, with these weights.

The export's next steps (the test tensors, the files, the description, the validation,
the reproduction) are in :mod:`dlbio_teach.zoo_export`, :mod:`dlbio_teach.zoo_files`,
:mod:`dlbio_teach.zoo` and :mod:`dlbio_teach.zoo_import`.
"""
from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .prediction import network_ndim
from .preprocessing import check_network_input
from .records import RunRecord, _plain, state_sha256

# No public names: export_bioimageio runs these checks (see above).
__all__: list[str] = []

_INPUT_DTYPES = ("float32", "float64", "uint8", "int8", "uint16", "int16", "uint32",
                 "int32", "uint64", "int64")


_NAME_RE = re.compile(r"^[A-Za-z0-9_+\- ()]{5,128}$")


# --- the zip, its name and description --------------------------------------------------

def _check_target(path, name, description, overwrite: bool) -> Path:
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
    return path


# --- the test input: images (N, C, Y, X) or volumes (N, C, Z, Y, X) ----------------------

def _network_ndim(model: torch.nn.Module) -> int:
    """Spatial axes of a network: 3 when its configuration says ``ndim=3`` (the course's
    ``UNet(ndim=3)``) or its first convolution is a ``Conv3d``, else 2.

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> _network_ndim(UNet(1, 1, depth=1, base_channels=2, ndim=3))
    3
    >>> _network_ndim(torch.nn.Conv2d(1, 1, 3))
    2
    """
    config = getattr(model, "config", None)
    if isinstance(config, Mapping) and config.get("ndim") in (2, 3):
        return int(config["ndim"])
    return network_ndim(model)


def _check_test_input(test_input, in_channels: int | None = None,
                      ndim: int = 2) -> np.ndarray:
    """``test_input`` as ``(N, C, Y, X)`` for a network of ``in_channels`` channels, or as
    ``(N, C, Z, Y, X)`` for a network of volumes (``ndim=3``).

    Each image goes through :func:`~dlbio_teach.preprocessing.check_network_input`, the
    check of ``predict``, so that a colour image with its channels last, a non-numeric
    dtype or NaN get the course's explanation; a plain mismatch of the channel count is
    named with the axis it was read from. An image given to a network of volumes, or a
    batch of volumes given to a network of images, is named as such, with the fix."""
    x = np.asarray(test_input)
    if ndim == 3:
        return _check_dtype_and_values(_check_volumes(x, in_channels))
    if x.ndim == 5:
        raise ValueError(f"test_input has shape {x.shape}, 5 dimensions: a batch of volumes "
                         "(N, C, Z, Y, X), but the network takes 2D images, 4 dimensions "
                         "(N, C, Y, X). Export a network of volumes (e.g. UNet(ndim=3)) for "
                         "volumes, or give this one planes: test_input[:, :, z] for plane z "
                         "of each volume.")
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"test_input must have 4 dimensions (N, C, Y, X), got shape "
                         f"{x.shape}. For one 2D image use image[None, None].")
    images = x if x.ndim == 4 else [x]
    names = [f"test_input[{i}]" for i in range(len(images))] if x.ndim == 4 else ["test_input"]
    for image, name in zip(images, names):
        image_channels = 1 if image.ndim == 2 else image.shape[0]
        channels_last = image.ndim == 3 and image.shape[-1] <= 4 < image.shape[0]
        if in_channels is None or image_channels == in_channels or channels_last:
            check_network_input(image, in_channels, name=name)   # raises with a hint
        else:
            what = ("one channel (Y, X)" if image.ndim == 2 else
                    f"{image_channels} channel(s) (axis {x.ndim - 3} of {x.shape})")
            fix = (" For a stack of 2D images (N, Y, X) use stack[:, None]."
                   if x.ndim == 3 and in_channels == 1 else "")
            raise ValueError(f"test_input has {what}, but the network takes "
                             f"{in_channels}: give (N, C, Y, X) with C = {in_channels}."
                             + fix)
    if x.ndim != 4:
        fix = ("one 2D image use image[None, None]" if x.ndim == 2
               else "one image (C, Y, X) use image[None]")
        raise ValueError(f"test_input must have 4 dimensions (N, C, Y, X), got shape "
                         f"{x.shape}. For {fix}.")
    return _check_dtype_and_values(x)


def _check_dtype_and_values(x: np.ndarray) -> np.ndarray:
    if x.dtype.name not in _INPUT_DTYPES:
        raise ValueError(f"test_input has dtype {x.dtype}; give one of {_INPUT_DTYPES} "
                         "(e.g. image.astype(np.float32)).")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ValueError("test_input contains NaN or infinite values; replace them first.")
    return x


def _check_volumes(x: np.ndarray, in_channels: int | None) -> np.ndarray:
    """:func:`_check_test_input` for a network of volumes: ``(N, C, Z, Y, X)``."""
    if x.ndim != 5:
        takes = "the network takes volumes, a batch (N, C, Z, Y, X) of 5 dimensions"
        fix = {2: "A 2D image (Y, X) needs a network of images; for one volume (Z, Y, X) "
                  "use volume[None, None].",
               3: "For one volume (Z, Y, X) use volume[None, None].",
               4: "For one volume (C, Z, Y, X) use volume[None]; for one volume (Z, Y, X) "
                  "use volume[None, None]; for volumes of one channel (N, Z, Y, X) use "
                  "volumes[:, None]. A batch of 2D images (N, C, Y, X) needs a network of "
                  "images (UNet() rather than UNet(ndim=3))."}
        raise ValueError(f"test_input has shape {x.shape}, {x.ndim} dimension(s), but "
                         f"{takes}. " + fix.get(x.ndim, "Give (N, C, Z, Y, X)."))
    if in_channels is not None and x.shape[1] != in_channels:
        raise ValueError(f"test_input has {x.shape[1]} channel(s) (axis 1 of {x.shape}), "
                         f"but the network takes {in_channels}: give (N, C, Z, Y, X) with "
                         f"C = {in_channels}.")
    for i, volume in enumerate(x):   # dtype, NaN: the explanations of predict
        check_network_input(volume, in_channels, name=f"test_input[{i}]", axes="ZYX")
    return x


# --- the declared step and the sides: one for images, one per axis for volumes ----------

def _check_sides(x: np.ndarray, step) -> None:
    """The sides of ``x`` must be multiples of ``step``: an int for images, one int per
    spatial axis ``(z, y, x)`` for volumes (an int applies to each axis)."""
    if x.ndim == 5:
        _check_volume_sides(x, step)
        return
    if step < 1:
        raise ValueError(f"step must be a positive integer, got {step}.")
    if x.shape[2] % step or x.shape[3] % step:
        ys, xs = x.shape[2] // step * step, x.shape[3] // step * step
        raise ValueError(f"test_input is {x.shape[2]}x{x.shape[3]} pixels, but the package "
                         f"declares sides that are multiples of {step} (2**depth for a "
                         f"U-Net). Crop it: test_input[..., :{ys}, :{xs}].")


def _check_volume_sides(x: np.ndarray, step) -> None:
    steps = _volume_steps(step)
    sides = x.shape[2:]
    if not any(n % s for n, s in zip(sides, steps)):
        return
    size = "x".join(map(str, sides))
    declared = (f"multiples of {steps} along (Z, Y, X) (2**depth along each axis the U-Net "
                "halves, 1 along one it never halves)")
    small = [f"{a} needs at least {s}" for a, n, s in zip("ZYX", sides, steps) if n < s]
    if small:
        raise ValueError(f"test_input is {size} voxels (Z, Y, X), but the package declares "
                         f"sides that are {declared}: {', '.join(small)}. Give a larger "
                         "volume.")
    crop = ", ".join(f":{n // s * s}" for n, s in zip(sides, steps))
    raise ValueError(f"test_input is {size} voxels (Z, Y, X), but the package declares "
                     f"sides that are {declared}. Crop it: test_input[..., {crop}].")


def _volume_steps(step) -> tuple:
    """One step per spatial axis ``(z, y, x)`` from an int or a sequence of three.

    Examples
    --------
    >>> _volume_steps(4), _volume_steps([1, 4, 4])
    ((4, 4, 4), (1, 4, 4))
    """
    steps = (step,) * 3 if isinstance(step, (int, np.integer)) else tuple(step)
    if len(steps) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1
                                  for s in steps):
        raise ValueError(f"step must be a positive integer, or one per spatial axis "
                         f"(z, y, x) for a network of volumes, got {step}.")
    return tuple(int(s) for s in steps)


def _image_step(step):
    """``step`` for a network of images: one int (or None), the same for Y and X."""
    if step is not None and not isinstance(step, (int, np.integer)):
        raise ValueError(f"step must be one positive integer for a network of images "
                         f"(the same for Y and X), got {step}.")
    return step


def _default_step(model: torch.nn.Module, step, ndim: int):
    """The declared step: ``step`` if given, else the model's own.

    For images an int, ``model.multiple`` (``2**depth`` for the U-Net), else 1. For
    volumes one int per axis ``(z, y, x)``: ``model.multiples`` (what the U-Net's pooling
    implies: ``2**depth`` along each axis it halves, 1 along Z with ``pool_z=False``),
    else ``model.multiple`` along each axis, else 1.

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> _default_step(UNet(depth=2, ndim=3, pool_z=False), None, 3)
    (1, 4, 4)
    >>> _default_step(UNet(depth=2), None, 2)
    4
    """
    if ndim == 2:
        return int(_image_step(step) or getattr(model, "multiple", 1))
    if step is None:
        step = getattr(model, "multiples", None)
        if step is None or len(step) != 3:
            step = getattr(model, "multiple", 1)
    return _volume_steps(step)


# --- the network: its arguments, its source file, its run record -------------------------

def _model_kwargs(model: torch.nn.Module, model_kwargs, x: np.ndarray) -> dict:
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
    return model_kwargs


def _architecture_file(model: torch.nn.Module, architecture, callable_name: str) -> Path:
    if architecture is None:
        architecture = inspect.getsourcefile(type(model))
        if architecture is None:
            raise ValueError(f"The source of {type(model).__name__} cannot be found; pass "
                             "architecture= (a self-contained .py file).")
    architecture = Path(architecture)
    if not architecture.is_file() or architecture.suffix != ".py":
        raise FileNotFoundError(f"architecture must be an existing .py file, got "
                                f"{architecture}.")
    _check_architecture_file(architecture, callable_name)
    return architecture


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


def _check_record(record: RunRecord, model: torch.nn.Module, model_kwargs: Mapping) -> None:
    """The model must be the one the run record describes, with the same weights."""
    if record.model.get("class_name") != type(model).__name__ or \
            record.model.get("kwargs") != _plain(model_kwargs):
        raise ValueError("The model is not the one the run record describes: record "
                         f"{record.model.get('class_name')}({record.model.get('kwargs')}), "
                         f"model {type(model).__name__}({_plain(model_kwargs)}).")
    if record.model.get("state_sha256") != state_sha256(model):
        raise ValueError("The model's weights differ from those of the run record "
                         "(state_sha256). Export the network the record was made from "
                         "(e.g. rebuild_model(folder)).")
