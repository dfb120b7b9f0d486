"""Does the biological conclusion survive the segmentation?

A segmentation is a means: the biologist's question is whether nuclei are larger, or more
numerous, in one condition than in another. :func:`image_measures` turns each image's
instance labels into the numbers such a question is about, and :func:`condition_effect`
estimates the effect between two conditions with a bootstrap interval over images (each
condition's images resampled on their own), or the *bias* of one pipeline's effect against
a reference measured on the same images.
"""
from __future__ import annotations

import numpy as np

from .intervals import BootstrapCI, _check_values, _resampled_interval
from .preprocessing import check_labels

__all__ = ["image_measures", "condition_effect"]


def image_measures(labels) -> dict:
    """The number of objects in one instance label image and their mean area in pixels.

    Examples
    --------
    >>> labels = np.zeros((8, 8), np.int32); labels[:2, :2] = 1; labels[4:8, 4:8] = 2
    >>> image_measures(labels)
    {'count': 2, 'mean_area': 10.0}
    """
    labels = check_labels(labels)
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    return {"count": int(len(areas)),
            "mean_area": float(areas.mean()) if len(areas) else float("nan")}


def _effect(control, treated, relative: bool) -> float:
    a, b = np.mean(control), np.mean(treated)
    return float(b / a - 1 if relative else b - a)


def condition_effect(control, treated, *, reference=None, relative: bool = True,
                     n_resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> BootstrapCI:
    """The effect of a condition on a per-image measure, with its bootstrap interval.

    The effect is ``mean(treated) / mean(control) - 1`` (``relative``, e.g. 0.10 for
    nuclei 10 % larger) or ``mean(treated) - mean(control)``. Each resample draws the
    control images and the treated images with replacement, each condition on its own
    (the images of one condition are the sample of that condition). With ``reference``,
    the same measure of the same images by another method (the truth, say), the result is
    the difference ``effect - reference effect``, both computed on the same resampled
    images: the pipeline's *bias* on the conclusion, with its interval.

    Parameters
    ----------
    control, treated : array_like ``(N,)`` and ``(M,)``
        One value per image (e.g. :func:`image_measures`' ``mean_area``).
    reference : pair of array_like, optional
        ``(control_reference, treated_reference)``, one value per image of the same images.
    relative : bool
        A ratio minus one (default), or a difference in the measure's unit.
    n_resamples, confidence, seed
        As in :func:`~dlbio_teach.intervals.bootstrap_ci`.

    Returns
    -------
    BootstrapCI
        ``n`` counts the images of both conditions.

    Examples
    --------
    >>> control = [100, 110, 90, 105, 95]; treated = [112, 118, 101, 121, 108]
    >>> print(condition_effect(control, treated, seed=0))   # doctest: +ELLIPSIS
    0.12 [0.0..., 0.2...] (95 % CI, 10 images)
    >>> ci = condition_effect(control, treated, reference=(control, treated))
    >>> ci.estimate, ci.low, ci.high
    (0.0, 0.0, 0.0)
    """
    control = _check_values(control, name="control")
    treated = _check_values(treated, name="treated")
    if control.ndim != 1 or treated.ndim != 1:
        raise ValueError("control and treated must hold one value per image (1D).")
    if relative and np.mean(control) == 0:
        raise ValueError("the control mean is 0, so a relative effect is undefined; pass "
                         "relative=False for a difference.")
    columns = [control, treated]
    if reference is not None:
        if len(reference) != 2:
            raise ValueError("reference must be a pair (control_reference, "
                             "treated_reference) of per-image values.")
        ref = [_check_values(r, name=name) for r, name in
               zip(reference, ("control_reference", "treated_reference"))]
        if ref[0].shape != control.shape or ref[1].shape != treated.shape:
            raise ValueError(f"the reference must measure the same images: control "
                             f"{control.shape} against {ref[0].shape}, treated "
                             f"{treated.shape} against {ref[1].shape}.")
        columns = [np.stack([control, ref[0]], 1), np.stack([treated, ref[1]], 1)]

    def statistic(c, t):
        c, t = columns[0][c.astype(np.intp)], columns[1][t.astype(np.intp)]
        if reference is None:
            return _effect(c, t, relative)
        return _effect(c[:, 0], t[:, 0], relative) - _effect(c[:, 1], t[:, 1], relative)

    indices = (np.arange(len(control)), np.arange(len(treated)))
    return _resampled_interval(indices, statistic, statistic(*indices),
                               n=len(control) + len(treated), n_resamples=n_resamples,
                               confidence=confidence, seed=seed, paired=False)
