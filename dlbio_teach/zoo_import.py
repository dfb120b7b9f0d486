"""Read a BioImage Model Zoo package back, offline, and check it against its test output.

* :func:`load_bioimageio` -- the network (weights read with ``weights_only=True``), its
  description and test tensors; a package whose architecture is not this package's code
  runs only with ``trust_code=True`` (else :class:`UntrustedCodeError`). With
  ``weight_format="torchscript"`` the package's TorchScript is loaded instead
  (``torch.jit.load``), as tools without Python run it.
* :class:`LoadedBioimageioModel` -- :meth:`~LoadedBioimageioModel.predict` applies the
  package's pre-processing, the network and its post-processing, as the spec defines them.
* :func:`reproduce_test_outputs` -- how far the package is from its own test output.

Without ``device=``, the network is loaded onto the course's device and predicts there
(:func:`~dlbio_teach.runtime.resolve_device`), as the course's own networks do.

Nothing is fetched: see :mod:`dlbio_teach.zoo`, *Offline validation*.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import file_sha256
from .prediction import _evaluating, full_float32
from .runtime import resolve_device
from .zoo import _apply_ops, _spec_context

__all__ = ["load_bioimageio", "LoadedBioimageioModel", "reproduce_test_outputs",
           "UntrustedCodeError"]


class UntrustedCodeError(RuntimeError):
    """Loading a package would run Python code that came with it."""


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
class LoadedBioimageioModel:
    """A zoo package read back: the network, its description, its test tensors.

    Call :meth:`predict` on raw images: it applies the package's pre-processing, runs
    the network (on the course's device unless told otherwise) and applies its
    post-processing.
    """

    model: torch.nn.Module
    description: object
    test_inputs: list
    test_outputs: list
    preprocessing: list
    postprocessing: list
    input_axes: list
    output_axes: list

    def predict(self, array: np.ndarray, *, device=None) -> np.ndarray:
        """Run the packaged pipeline on raw image(s) laid out as the input axes say.

        The network runs on ``device``, by default the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`); as in
        :func:`~dlbio_teach.prediction.predict`, ``self.model`` is not moved (a copy runs
        when its weights are elsewhere), and convolutions run in full float32.

        Examples
        --------
        >>> import tempfile
        >>> from dlbio_teach.models import UNet
        >>> from dlbio_teach.zoo_export import export_bioimageio
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
        device = resolve_device(device)
        with _evaluating(self.model, device) as net, torch.no_grad(), full_float32():
            y = net(torch.from_numpy(np.ascontiguousarray(x)).to(device))
        return _apply_ops(y.cpu().numpy(), self.postprocessing, self.output_axes)


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


def _architecture_builder(arch, path: Path, trust_code: bool):
    """The callable that builds the package's network, if it may run."""
    from bioimageio.spec.model.v0_5 import ArchitectureFromFileDescr

    if not isinstance(arch, ArchitectureFromFileDescr):
        module_name = arch.import_from
        if module_name != "dlbio_teach.models" and not trust_code:
            raise UntrustedCodeError(
                f"The package builds its network by importing {module_name!r}; pass "
                "trust_code=True if you trust that installed library.")
        return getattr(importlib.import_module(module_name), str(arch.callable))
    source = _read(arch, "architecture file")
    digest = hashlib.sha256(source).hexdigest()
    if digest == _own_architecture_sha():
        from . import models
        builder = getattr(models, str(arch.callable), None)
        if builder is None:
            raise ValueError(f"dlbio_teach.models has no {arch.callable!s}.")
        return builder
    if not trust_code:
        raise UntrustedCodeError(
            f"The package's architecture file {arch.source} is not dlbio_teach's "
            "models.py: building the network would run Python code from the "
            f"package. Read that file (inside {path}); if you trust it, call "
            "load_bioimageio(..., trust_code=True).")
    module = _import_file(source, f"bioimageio_architecture_{digest[:12]}")
    return getattr(module, str(arch.callable))


_WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript")


def _load_description(path: Path, weight_format: str = "pytorch_state_dict"):
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model.v0_5 import ModelDescr

    if weight_format not in _WEIGHT_FORMATS:
        raise ValueError(f"weight_format must be one of {list(_WEIGHT_FORMATS)}, got "
                         f"{weight_format!r}.")
    descr = load_description(path, perform_io_checks=False, format_version="latest")
    if isinstance(descr, InvalidDescr) or not isinstance(descr, ModelDescr):
        reason = descr.validation_summary.format() if isinstance(descr, InvalidDescr) \
            else f"it describes a {getattr(descr, 'type', '?')}, not a model"
        raise ValueError(f"{path} is not a valid zoo model package: {reason}")
    if getattr(descr.weights, weight_format) is None:
        formats = [k for k, v in descr.weights.model_dump().items() if v]
        raise ValueError(f"{path} has no {weight_format} weights (it has {formats}); "
                         f"dlbio_teach loads only {' or '.join(_WEIGHT_FORMATS)}. Use "
                         "bioimageio.core.")
    return descr


def load_bioimageio(path, *, trust_code: bool = False,
                    weight_format: str = "pytorch_state_dict",
                    device=None) -> LoadedBioimageioModel:
    """Read a zoo package (zip, or folder with ``rdf.yaml``) offline and rebuild its network.

    The weights are read with ``torch.load(..., weights_only=True)``: no pickled object
    is run. The architecture, though, is Python code: if the package's architecture file
    is byte-identical to this package's ``dlbio_teach/models.py`` (or imports from
    ``dlbio_teach.models``), the installed class is used and nothing from the package
    runs. Any other architecture file runs only with ``trust_code=True``, after you have
    read it.

    ``weight_format="torchscript"`` loads the package's TorchScript instead
    (``torch.jit.load``: no architecture file and no Python code from the package run, so
    ``trust_code`` is not needed): the network as tools without Python run it.

    Parameters
    ----------
    path : path
        The ``.zip`` package, or ``rdf.yaml`` / its folder.
    trust_code : bool
        Allow running (or importing) the architecture code the package names.
    weight_format : {"pytorch_state_dict", "torchscript"}
        Which of the package's weights to load.
    device : str or torch.device, optional
        Where the network goes. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`), where the course's trainings and
        predictions run; ``"cpu"`` to keep it on the CPU.

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
    device = resolve_device(device)
    path = Path(path)
    if path.is_dir():
        path = path / "rdf.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"No zoo package at {path}. Give the .zip that "
                                "export_bioimageio wrote, or a folder with rdf.yaml.")
    with _spec_context(perform_io_checks=False):
        descr = _load_description(path, weight_format)
        if weight_format == "torchscript":
            source = _read(descr.weights.torchscript, "TorchScript file")
            with warnings.catch_warnings():
                # torch.jit is deprecated in favour of torch.export, which the zoo's tools
                # do not read: TorchScript is still their format.
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(io.BytesIO(source), map_location=device)
        else:
            weights = descr.weights.pytorch_state_dict
            builder = _architecture_builder(weights.architecture, path, trust_code)
            model = builder(**dict(weights.architecture.kwargs))
            state = torch.load(io.BytesIO(_read(weights, "weights file")),
                               map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=weights.strict)
            model = model.to(device)
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


def reproduce_test_outputs(package, *, trust_code: bool = False,
                           weight_format: str = "pytorch_state_dict", device=None) -> float:
    """Run a package's test input through it and return the largest absolute difference
    from its test output (0 on the machine that exported it; tiny elsewhere).

    Parameters
    ----------
    package : path or LoadedBioimageioModel
        A zoo zip (read with :func:`load_bioimageio`) or a loaded package.
    trust_code, weight_format
        Passed to :func:`load_bioimageio`.
    device : str or torch.device, optional
        Where the network runs. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`). The test output was computed on
        the CPU of the machine that exported the package; on a GPU the difference is
        float32 rounding, far below the zoo's tolerance.

    Examples
    --------
    >>> import tempfile
    >>> from dlbio_teach.models import UNet
    >>> from dlbio_teach.zoo_export import export_bioimageio
    >>> x = np.random.default_rng(1).random((1, 1, 16, 16), dtype=np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = export_bioimageio(UNet(1, 1, depth=2, base_channels=4).eval(),
    ...                             Path(tmp) / "m.zip", test_input=x, name="Demo U-Net",
    ...                             description="Demo.", authors=["A. Student"])
    ...     reproduce_test_outputs(out.path) < 1e-5
    True
    """
    loaded = package if isinstance(package, LoadedBioimageioModel) else \
        load_bioimageio(package, trust_code=trust_code, weight_format=weight_format,
                        device=device)
    if not loaded.test_inputs or not loaded.test_outputs:
        raise ValueError("The package has no test tensors to reproduce.")
    y = loaded.predict(loaded.test_inputs[0], device=device)
    expected = loaded.test_outputs[0]
    if y.shape != expected.shape:
        raise ValueError(f"The recomputed output has shape {y.shape}, the packaged test "
                         f"output {expected.shape}.")
    return float(np.max(np.abs(y.astype(np.float64) - expected.astype(np.float64))))
