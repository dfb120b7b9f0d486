"""Prediction with a trained network on whole images, tile by tile when they are large."""
from __future__ import annotations

import numpy as np
import torch

from .preprocessing import check_image

__all__ = ["predict"]


def _forward(model, batch: np.ndarray, device) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16,
                                         enabled=device.type == "cuda"):
        y = model(x)
    return y.float().cpu().numpy()


def predict(model: torch.nn.Module, image, *, tile_size: int | None = None,
            margin: int | None = None, device=None) -> np.ndarray:
    """Apply ``model`` to one image ``(Y, X)`` or ``(C, Y, X)`` and return NumPy output.

    With ``tile_size``, the image is processed in tiles of ``tile_size`` pixels, each read
    with ``margin`` pixels of context around it; only the tile's centre is kept. With the
    margin at least the network's receptive radius, and tiles aligned to the U-Net's
    pooling grid, the result equals whole-image prediction (up to float rounding), without
    seams, while memory stays bounded by the tile size.

    Parameters
    ----------
    model : torch.nn.Module
        A network taking ``(N, C, Y, X)``.
    image : ndarray
        ``(Y, X)`` or ``(C, Y, X)``, already normalised as in training.
    tile_size : int, optional
        Tile side (rounded up to the network's multiple); ``None`` predicts in one go.
    margin : int, optional
        Context around each tile; default ``16 * 2**depth`` for a U-Net, else 32.
    device : torch.device, optional
        Default: the device of the model's parameters.

    Returns
    -------
    ndarray of float32, ``(Y, X)`` for one output channel, else ``(C_out, Y, X)``.

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> net = UNet(1, 1, depth=2, base_channels=4).eval()
    >>> predict(net, np.zeros((40, 50)), tile_size=16).shape
    (40, 50)
    """
    image = check_image(image, ndim=(2, 3))
    x = image[None] if image.ndim == 2 else image
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    multiple = getattr(model, "multiple", 1)
    if margin is None:
        margin = 16 * multiple if multiple > 1 else 32
    margin = int(np.ceil(margin / multiple) * multiple)
    try:
        if tile_size is None or (x.shape[1] <= tile_size and x.shape[2] <= tile_size):
            out = _forward(model, x[None], device)[0]
        else:
            tile = int(np.ceil(tile_size / multiple) * multiple)
            h, w = x.shape[1:]
            out = None
            for y0 in range(0, h, tile):
                for x0 in range(0, w, tile):
                    y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                    ry0, rx0 = max(y0 - margin, 0), max(x0 - margin, 0)
                    ry1, rx1 = min(y1 + margin, h), min(x1 + margin, w)
                    pred = _forward(model, x[None, :, ry0:ry1, rx0:rx1], device)[0]
                    if out is None:
                        out = np.zeros((pred.shape[0], h, w), np.float32)
                    out[:, y0:y1, x0:x1] = pred[:, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
    finally:
        model.train(was_training)
    return out[0] if out.shape[0] == 1 else out
