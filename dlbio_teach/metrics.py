"""Image-quality metrics for restoration, each defined once.

PSNR and SSIM come from ``skimage.metrics`` with an explicit ``data_range``: without it,
scikit-image guesses the range from the dtype, and two tools reporting "PSNR" disagree.
Before scoring, a prediction can be affinely rescaled to the target (least squares), as
CARE and ZeroCostDL4Mic do, so that a method is not penalised for an offset or gain that
any display would remove.
"""
from __future__ import annotations

import numpy as np
from skimage import metrics as skm

from .preprocessing import check_image

__all__ = ["rescale_affine", "psnr", "ssim", "restoration_scores"]


def _pair(target, prediction):
    target = check_image(target, name="target")
    prediction = check_image(prediction, name="prediction")
    if target.shape != prediction.shape:
        raise ValueError(f"target {target.shape} and prediction {prediction.shape} must "
                         "have the same shape.")
    return target, prediction


def rescale_affine(prediction, target) -> np.ndarray:
    """Return ``a * prediction + b`` with ``a, b`` minimising the squared error to ``target``.

    Examples
    --------
    >>> t = np.linspace(0, 1, 16).reshape(4, 4)
    >>> bool(np.allclose(rescale_affine(3 * t + 2, t), t))
    True
    """
    target, prediction = _pair(target, prediction)
    p = prediction.ravel().astype(np.float64)
    t = target.ravel().astype(np.float64)
    var = p.var()
    a = 0.0 if var == 0 else np.mean((p - p.mean()) * (t - t.mean())) / var
    b = t.mean() - a * p.mean()
    return (a * prediction + b).astype(np.float32)


def psnr(target, prediction, *, data_range: float, rescale: bool = False) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    Parameters
    ----------
    target, prediction : ndarray ``(Y, X)``
    data_range : float
        The span of possible values of the target (1.0 for images in [0, 1]); required.
    rescale : bool
        Affinely rescale the prediction to the target first (:func:`rescale_affine`).

    Examples
    --------
    >>> t = np.zeros((8, 8)); p = t + 0.1
    >>> round(psnr(t, p, data_range=1.0), 1)
    20.0
    """
    target, prediction = _pair(target, prediction)
    if rescale:
        prediction = rescale_affine(prediction, target)
    return float(skm.peak_signal_noise_ratio(target, prediction, data_range=data_range))


def ssim(target, prediction, *, data_range: float, rescale: bool = False) -> float:
    """Structural similarity (Wang et al. 2004; scikit-image defaults, 7x7 window).

    Examples
    --------
    >>> t = np.random.default_rng(0).random((32, 32))
    >>> ssim(t, t, data_range=1.0)
    1.0
    """
    target, prediction = _pair(target, prediction)
    if rescale:
        prediction = rescale_affine(prediction, target)
    return float(skm.structural_similarity(target, prediction, data_range=data_range))


def restoration_scores(target, prediction, *, data_range: float = 1.0,
                       rescale: bool = True) -> dict:
    """PSNR and SSIM of one prediction, after the same (optional) affine rescaling.

    Examples
    --------
    >>> t = np.random.default_rng(0).random((32, 32))
    >>> scores = restoration_scores(t, t + 0.01 * np.random.default_rng(1).random((32, 32)))
    >>> sorted(scores), scores["psnr"] > 40
    (['psnr', 'ssim'], True)
    """
    target, prediction = _pair(target, prediction)
    if rescale:
        prediction = rescale_affine(prediction, target)
    return {"psnr": psnr(target, prediction, data_range=data_range),
            "ssim": ssim(target, prediction, data_range=data_range)}
