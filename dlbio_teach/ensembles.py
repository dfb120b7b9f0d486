"""Ensembles: combine the predictions of several networks and map where they disagree.

:func:`combine_ensemble` averages the probability maps of networks trained with different
seeds and maps where they disagree (Lakshminarayanan et al. 2017);
:func:`mc_dropout_maps` makes an ensemble of one network trained with dropout, by keeping
its dropout on at prediction (Gal and Ghahramani 2016);
:func:`uncertainty_on_errors` checks that the disagreement points at the errors.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from scipy import special, stats

from .models import MonteCarloDropout
from .preprocessing import check_image

__all__ = ["combine_ensemble", "mc_dropout_maps", "uncertainty_on_errors"]


def combine_ensemble(probabilities, *, uncertainty: str = "std"):
    """Mean prediction of an ensemble and a per-pixel uncertainty map.

    Parameters
    ----------
    probabilities : array_like ``(M, Y, X)`` or ``(M, C, Y, X)``
        Foreground probabilities, or class probabilities (softmax over ``C``), from ``M``
        members (e.g. the same network trained with ``M`` seeds).
    uncertainty : {"std", "entropy"}
        ``"std"``: standard deviation across members (the members' *disagreement*; for
        classes, averaged over classes); 0 when all members agree, whatever they say.
        ``"entropy"``: entropy of the mean prediction in bits (binary for ``(M, Y, X)``),
        which also counts the doubt each member states itself (e.g. along boundaries).

    Returns
    -------
    mean : ndarray ``(Y, X)`` or ``(C, Y, X)``
    uncertainty : ndarray ``(Y, X)``

    Examples
    --------
    >>> p = np.array([[[0.9, 0.1]], [[0.9, 0.9]]])   # two members, a 1x2 image
    >>> mean, unc = combine_ensemble(p)
    >>> mean.tolist(), unc.round(2).tolist()
    ([[0.9, 0.5]], [[0.0, 0.4]])
    """
    p = np.asarray(probabilities)
    if p.ndim not in (3, 4) or not np.issubdtype(p.dtype, np.number):
        raise ValueError(f"probabilities must be numeric (M, Y, X) or (M, C, Y, X): one "
                         f"map per ensemble member, got shape {p.shape} and dtype "
                         f"{p.dtype}.")
    p = p.astype(np.float64)
    if len(p) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(p)}; stack the "
                         "predictions of several seeds along the first axis.")
    if not np.all(np.isfinite(p)) or p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise ValueError("probabilities must be finite and in [0, 1]; apply a sigmoid or a "
                         "softmax to the network's logits first.")
    if uncertainty not in ("std", "entropy"):
        raise ValueError(f"uncertainty must be 'std' or 'entropy', got {uncertainty!r}.")
    mean = p.mean(axis=0)
    if uncertainty == "std":
        spread = p.std(axis=0)
        unc = spread if p.ndim == 3 else spread.mean(axis=0)
    else:
        classes = np.stack([mean, 1 - mean]) if p.ndim == 3 else mean
        unc = special.entr(np.clip(classes, 0, 1)).sum(axis=0) / np.log(2)
    return mean, unc


@contextlib.contextmanager
def _sampling_dropout(model):
    """Keep the network's :class:`~dlbio_teach.models.MonteCarloDropout` layers on."""
    layers = [m for m in model.modules() if isinstance(m, MonteCarloDropout)]
    if not layers:
        raise ValueError("this network has no dropout layers to sample: train one with "
                         "dropout, e.g. SegmentationConfig(..., dropout=0.1) or "
                         "UNet(..., dropout=0.1), for Monte Carlo dropout.")
    for layer in layers:
        layer.sampling = True
    try:
        yield model
    finally:
        for layer in layers:
            layer.sampling = False


def mc_dropout_maps(model, image, *, formulation: str, n_samples: int = 10, seed: int = 0,
                    device=None) -> np.ndarray:
    """Predict one image ``n_samples`` times with the network's dropout kept on.

    Each pass drops other feature maps, so the passes act as members of an ensemble that
    cost one training: give the stack to :func:`combine_ensemble` for the mean prediction
    and the members' disagreement. The network must have dropout layers
    (``UNet(dropout=...)``); the draws are seeded and leave PyTorch's global random state
    as it was.

    Parameters
    ----------
    model : UNet
        Trained with ``dropout`` above 0.
    image : ndarray ``(Y, X)``
    formulation : str
        As in :func:`~dlbio_teach.segmentation.predict_maps`.
    n_samples : int
        Forward passes (at least 2).
    seed : int
        Seeds the dropout masks.
    device : str or torch.device, optional
        Default: the course's device.

    Returns
    -------
    ndarray ``(n_samples, *maps.shape)``

    Examples
    --------
    >>> from dlbio_teach.models import UNet
    >>> _ = torch.manual_seed(0)
    >>> net = UNet(1, 3, depth=1, base_channels=4, dropout=0.5)
    >>> image = np.random.default_rng(0).random((16, 16))
    >>> maps = mc_dropout_maps(net, image, formulation="three_class", n_samples=4)
    >>> maps.shape, bool(np.abs(maps[0] - maps[1]).max() > 0)   # each pass drops other units
    ((4, 3, 16, 16), True)
    """
    from .runtime import resolve_device
    from .segmentation import predict_maps

    if int(n_samples) < 2:
        raise ValueError(f"n_samples must be at least 2 (a spread needs two passes), got "
                         f"{n_samples}; 10 to 30 is usual.")
    device = resolve_device(device)
    devices = [device] if device.type == "cuda" else []
    with _sampling_dropout(model), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return np.stack([predict_maps(model, image, formulation=formulation, device=device)
                         for _ in range(int(n_samples))])


def uncertainty_on_errors(uncertainty, prediction, target) -> dict:
    """Mean uncertainty on wrongly and on correctly predicted pixels.

    Parameters
    ----------
    uncertainty : ndarray ``(Y, X)``
        E.g. from :func:`combine_ensemble`.
    prediction, target : ndarray ``(Y, X)``
        Predicted and true classes (or binary masks); a pixel is an error where they differ.

    Returns
    -------
    dict
        ``error`` and ``correct`` (mean uncertainty on each group, NaN for an empty group),
        ``n_error``, ``n_correct``, and ``auroc``: the probability that a random error
        pixel is more uncertain than a random correct one (0.5 = uninformative, 1 = the
        uncertainty separates errors perfectly; ties count half).

    Examples
    --------
    >>> unc = np.array([[0.4, 0.1, 0.0, 0.3]])
    >>> pred = np.array([[1, 1, 0, 0]]); truth = np.array([[0, 1, 0, 1]])
    >>> r = uncertainty_on_errors(unc, pred, truth)
    >>> round(r["error"], 3), round(r["correct"], 3), r["auroc"]
    (0.35, 0.05, 1.0)
    """
    unc = check_image(uncertainty, name="uncertainty").astype(np.float64)
    prediction, target = np.asarray(prediction), np.asarray(target)
    if not unc.shape == prediction.shape == target.shape:
        raise ValueError(f"uncertainty {unc.shape}, prediction {prediction.shape} and "
                         f"target {target.shape} must have the same shape (Y, X).")
    wrong = prediction != target
    err, ok = unc[wrong], unc[~wrong]
    auroc = float("nan")
    if len(err) and len(ok):
        ranks = stats.rankdata(np.concatenate([err, ok]))
        auroc = float((ranks[:len(err)].sum() - len(err) * (len(err) + 1) / 2)
                      / (len(err) * len(ok)))
    return {"error": float(err.mean()) if len(err) else float("nan"),
            "correct": float(ok.mean()) if len(ok) else float("nan"),
            "n_error": int(len(err)), "n_correct": int(len(ok)), "auroc": auroc}
