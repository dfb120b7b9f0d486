"""Where did a classifier look? Occlusion maps, written out.

Occlusion (Zeiler and Fergus, 2014) hides one small square of the input at a time and
records how much the probability of a class drops: pixels whose hiding costs much were
used. It needs nothing but forward passes, which is why the course writes it out rather
than adding a library for it (``captum`` offers it beside integrated gradients and
others).

Its limits are part of the method: the map shows *where* the output changes when a square
takes the value ``value``, not *why*; a square already at that value cannot score,
whatever the network does with it; and a map that looks plausible (bright on the nucleus)
can come from a network that also uses something else. Read a map beside a test that
removes the suspected cue, never alone.
"""
from __future__ import annotations

import numpy as np
import torch

from .prediction import _evaluating
from .runtime import resolve_device

__all__ = ["occlusion_map"]


@torch.no_grad()
def occlusion_map(model: torch.nn.Module, patches, *, target: int, size: int = 4,
                  stride: int = 2, value: float = 0.0, device=None) -> np.ndarray:
    """For each patch of ``(N, Y, X)``, the drop in the probability of class ``target``
    when a ``size`` x ``size`` square around each pixel is set to ``value``: ``(N, Y, X)``.

    Squares start every ``stride`` pixels; a pixel's value is the mean drop over the
    squares that cover it. Positive: hiding it lowers the class's probability (the network
    used it as evidence for the class); negative: hiding it raises it. The model runs on
    ``device``, by default the course's device
    (:func:`~dlbio_teach.runtime.resolve_device`), as in :func:`~dlbio_teach.prediction.predict`.

    Examples
    --------
    >>> from dlbio_teach.models import TinyCNN
    >>> maps = occlusion_map(TinyCNN(n_classes=2, channels=4), np.zeros((3, 16, 16)),
    ...                      target=1, device="cpu")
    >>> maps.shape, float(np.abs(maps).max())   # an all-zero patch: nothing to hide
    ((3, 16, 16), 0.0)
    """
    patches = np.asarray(patches, np.float32)
    if patches.ndim != 3:
        raise ValueError(f"patches must be a stack (N, Y, X), got shape {patches.shape}; "
                         "for one patch use patch[None].")
    if not 1 <= size <= min(patches.shape[1:]) or stride < 1:
        raise ValueError(f"size must be between 1 and the patch side {min(patches.shape[1:])}, "
                         f"and stride at least 1; got size={size}, stride={stride}.")
    device = resolve_device(device)
    with _evaluating(model, device) as net:
        x = torch.from_numpy(patches)[:, None].to(device)
        base = torch.softmax(net(x), dim=1)[:, target]
        drop = torch.zeros_like(x[:, 0])
        covered = torch.zeros_like(x[0, 0])
        side_y, side_x = patches.shape[1:]
        for y0 in range(0, side_y - size + 1, stride):
            for x0 in range(0, side_x - size + 1, stride):
                hidden = x.clone()
                hidden[:, :, y0:y0 + size, x0:x0 + size] = value
                change = base - torch.softmax(net(hidden), dim=1)[:, target]
                drop[:, y0:y0 + size, x0:x0 + size] += change[:, None, None]
                covered[y0:y0 + size, x0:x0 + size] += 1
    return (drop / covered.clamp(min=1)).cpu().numpy()
