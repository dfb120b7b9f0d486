"""Ensembles: combine the predictions of several networks and map where they disagree.

:func:`combine_ensemble` averages the probability maps of networks trained with different
seeds and maps where they disagree (Lakshminarayanan et al. 2017);
:func:`uncertainty_on_errors` checks that the disagreement points at the errors.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

from .preprocessing import check_image

__all__ = ["combine_ensemble", "uncertainty_on_errors"]


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
