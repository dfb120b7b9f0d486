"""Prediction with a trained network on whole images, tile by tile when they are large.

Without ``device=``, prediction runs on the course's device
(:func:`~dlbio_teach.runtime.resolve_device`: ``$DLBIO_DEVICE``, else a GPU when there is
one, else the CPU), as training does. The network itself is never moved: when its weights
are on another device, a copy of it runs for the call, and the network is left where it
was, in the mode (training or evaluation) it was in.
"""
from __future__ import annotations

import contextlib
import copy
import itertools

import numpy as np
import torch

from .preprocessing import check_network_input
from .runtime import resolve_device

__all__ = ["full_float32", "network_in_channels", "network_ndim", "predict",
           "predict_classes"]


def network_in_channels(model: torch.nn.Module) -> int | None:
    """Input channels of a network: ``model.config["in_channels"]`` (the course's UNet),
    else the ``in_channels`` of its first ``Conv2d``; ``None`` when neither is known.

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> network_in_channels(UNet(2, 1, depth=1, base_channels=4))
    2
    >>> network_in_channels(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(3, 8, 3)))
    3
    """
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("in_channels"), int):
        return config["in_channels"]
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):
            return int(module.in_channels)
    return None


def network_ndim(model: torch.nn.Module) -> int:
    """Spatial axes a network takes: 3 for a network of volumes (a ``UNet(ndim=3)``, or
    one whose first convolution is a ``Conv3d``), else 2.

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> network_ndim(UNet(1, 1, depth=1, base_channels=4, ndim=3))
    3
    """
    ndim = getattr(model, "ndim", None)
    if ndim in (2, 3):
        return ndim
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):
            return 3 if isinstance(module, torch.nn.Conv3d) else 2
    return 2


_TOO_SMALL = ("Kernel size can't be greater than actual input size",
              "Output size is too small", "Padding size should be less than")


@contextlib.contextmanager
def full_float32():
    """Plain float32 convolutions on a GPU while the block runs (PyTorch's matrix products
    are float32 already by default).

    Training on a GPU uses float16 (``training.fit``) and, by PyTorch's default, TF32
    convolutions: both keep about three significant digits, plenty for a gradient step.
    Prediction does not use them, so that a GPU's output agrees with a CPU's, and tiled
    prediction with whole-image prediction, to float32 rounding (on an H200 with TF32 and
    float16 they differed by 1e-4 on images scaled to 0..1). On a CPU nothing changes.

    Examples
    --------
    >>> with full_float32():
    ...     y = torch.nn.Conv2d(1, 1, 3)(torch.zeros(1, 1, 8, 8))
    >>> y.dtype
    torch.float32
    """
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(conv, "fp32_precision"):            # torch >= 2.9: the per-operation setting
        before = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = before
    else:
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are one (``cuda`` is the current GPU, ``cuda:0`` the first)."""
    def index(device):
        if device.index is not None:
            return device.index
        return torch.cuda.current_device() if device.type == "cuda" else 0
    return a.type == b.type and index(a) == index(b)


def _network_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` itself when its weights and buffers are all on ``device``, else a copy of
    it there: prediction leaves the caller's network where it is."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    if all(_same_device(t.device, device) for t in tensors):
        return model
    return copy.deepcopy(model).to(device)


@contextlib.contextmanager
def _evaluating(model: torch.nn.Module, device):
    """The network on the device (:func:`_network_on`) in evaluation mode for the block;
    the caller's network keeps its mode afterwards."""
    net = _network_on(model, device)
    was_training = model.training
    net.eval()
    try:
        yield net
    finally:
        model.train(was_training)


def _forward(model, batch: np.ndarray, device, ndim: int = 2) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(device)
    try:
        with torch.no_grad(), full_float32():
            y = model(x)
    except RuntimeError as err:
        if not any(text in str(err) for text in _TOO_SMALL):
            raise
        raise ValueError(
            f"The image (or tile) of {tuple(batch.shape[-ndim:])} pixels is smaller than this "
            "network can take: its convolutions or poolings need a larger input. Use a "
            "larger image, or a larger tile_size (PyTorch said: "
            f"{str(err).splitlines()[0]})") from None
    return y.float().cpu().numpy()


def predict(model: torch.nn.Module, image, *, tile_size: int | None = None,
            margin: int | None = None, device=None) -> np.ndarray:
    """Apply ``model`` to one image ``(Y, X)`` or ``(C, Y, X)`` and return NumPy output.

    A network of volumes (:func:`network_ndim` 3, such as ``UNet(ndim=3)``) takes a
    volume ``(Z, Y, X)`` or ``(C, Z, Y, X)`` instead, tiled in 3D in the same way.

    With ``tile_size``, the image is processed in tiles of ``tile_size`` pixels, each read
    with ``margin`` pixels of context around it; only the tile's centre is kept. With the
    margin at least the network's receptive radius, and tiles aligned to the U-Net's
    pooling grid, the result equals whole-image prediction (up to float rounding), without
    seams, while memory stays bounded by the tile size.

    The image is checked before it reaches the network
    (:func:`~dlbio_teach.preprocessing.check_network_input`): a colour image with its
    channels last ``(Y, X, 3)``, a stack ``(N, Y, X)``, a ``(Y, X)`` image for a network of
    several channels, a non-numeric dtype or NaN values raise a ``ValueError`` that says
    what came in, what the network takes and how to convert. The U-Net pads sides that are
    not multiples of ``2**depth``, so small images are fine; a network that cannot take an
    image that small raises a ``ValueError`` that says so.

    Parameters
    ----------
    model : torch.nn.Module
        A network taking ``(N, C, Y, X)``.
    image : ndarray
        ``(Y, X)`` (one-channel network) or ``(C, Y, X)`` with ``C`` the network's input
        channels (:func:`network_in_channels`), already normalised as in training.
    tile_size : int or tuple of int, optional
        Tile side (rounded up to the network's multiple), or one side per spatial axis;
        ``None`` predicts in one go.
    margin : int or tuple of int, optional
        Context around each tile; default ``16 * 2**depth`` for a U-Net, else 32.
    device : str or torch.device, optional
        Where the network runs. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`), where ``fit`` trains and leaves the
        network. ``model`` is not moved: when its weights are elsewhere, a copy of it runs
        on the device for this call (keep the network on the course's device to save
        that copy at every call).

    Returns
    -------
    ndarray of float32, ``(Y, X)`` for one output channel, else ``(C_out, Y, X)``
    (``(Z, Y, X)`` or ``(C_out, Z, Y, X)`` for a network of volumes).

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> net = UNet(1, 1, depth=2, base_channels=4).eval()
    >>> predict(net, np.zeros((40, 50)), tile_size=16).shape
    (40, 50)
    >>> net3d = UNet(1, 1, depth=1, base_channels=4, ndim=3).eval()
    >>> predict(net3d, np.zeros((6, 20, 30)), tile_size=(4, 16, 16)).shape
    (6, 20, 30)
    """
    ndim = network_ndim(model)
    x = check_network_input(image, network_in_channels(model),
                            axes="ZYX" if ndim == 3 else None)
    device = resolve_device(device)
    multiples = getattr(model, "multiples", (getattr(model, "multiple", 1),) * ndim)
    if margin is None:
        margin = [16 * m if m > 1 else 32 for m in multiples]
    margins = [int(np.ceil(g / m) * m) for g, m in zip(np.broadcast_to(margin, ndim), multiples)]
    sides = x.shape[1:]
    with _evaluating(model, device) as net:
        if tile_size is None or all(np.asarray(sides) <= np.broadcast_to(tile_size, ndim)):
            out = _forward(net, x[None], device, ndim)[0]
        else:
            tiles = [int(np.ceil(t / m) * m)
                     for t, m in zip(np.broadcast_to(tile_size, ndim), multiples)]
            out = None
            for starts in itertools.product(*(range(0, n, t) for n, t in zip(sides, tiles))):
                stops = [min(a + t, n) for a, t, n in zip(starts, tiles, sides)]
                read = [slice(max(a - g, 0), min(b + g, n))
                        for a, b, g, n in zip(starts, stops, margins, sides)]
                pred = _forward(net, x[(None, slice(None), *read)], device, ndim)[0]
                if out is None:
                    out = np.zeros((pred.shape[0], *sides), np.float32)
                keep = tuple(slice(a - r.start, b - r.start)
                             for a, b, r in zip(starts, stops, read))
                out[(slice(None), *(slice(a, b) for a, b in zip(starts, stops)))] = \
                    pred[(slice(None), *keep)]
    return out[0] if out.shape[0] == 1 else out


def predict_classes(model: torch.nn.Module, patches, *, batch_size: int = 256,
                    device=None) -> np.ndarray:
    """The class a patch classifier gives each patch of a stack ``(N, Y, X)``.

    The network's output ``(N, n_classes)`` is computed in batches (in evaluation mode)
    and its largest score taken: compare with the true classes for an accuracy. It runs
    on ``device``, by default the course's device, as :func:`predict` does.

    Examples
    --------
    >>> from dlbio_teach.models import TinyCNN
    >>> predict_classes(TinyCNN(n_classes=2, channels=4), np.zeros((5, 16, 16))).shape
    (5,)
    """
    patches = np.asarray(patches, np.float32)
    if patches.ndim != 3:
        raise ValueError(f"patches must be a stack (N, Y, X), got shape {patches.shape}; "
                         "for one patch use patches[None].")
    device = resolve_device(device)
    with _evaluating(model, device) as net:
        out = [_forward(net, patches[i:i + batch_size, None], device, 2)
               for i in range(0, len(patches), batch_size)]
    return np.concatenate(out).argmax(axis=1)
