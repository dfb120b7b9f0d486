"""Confidence intervals by resampling images, and paired comparisons of two methods.

A score on a test set is an estimate: another set of images like these would give another
number. :func:`bootstrap_ci` resamples *images* (the unit that was sampled from the world,
not pixels or objects) with :func:`scipy.stats.bootstrap` (BCa by default, Efron 1987);
:func:`bootstrap_matching` does the same for a score pooled over images, such as the F1 of
matched objects; :func:`paired_difference` compares two methods on the *same* images,
which is far more sensitive than two separate intervals.

Every random draw takes an explicit ``seed``; nothing here keeps global state.
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .metrics import match_instances, matching_scores

__all__ = ["BootstrapCI", "bootstrap_ci", "bootstrap_matching", "matching_report",
           "PairedDifference", "paired_difference"]


@dataclass(frozen=True)
class BootstrapCI:
    """A score on a set of images with its bootstrap confidence interval.

    Attributes
    ----------
    estimate : float
        The statistic on all the images (not the mean of the resamples).
    low, high : float
        Bounds of the confidence interval.
    confidence : float
        Confidence level, e.g. 0.95.
    n : int
        Number of images.
    method : str
        Interval method of :func:`scipy.stats.bootstrap` (``"BCa"`` or ``"percentile"``).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    method: str = "BCa"

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def __str__(self) -> str:
        """The estimate and its interval, e.g. ``0.84 [0.79, 0.88] (95 % CI, 12 images)``."""
        # Enough decimals for two significant digits of the width (at least 2 decimals).
        width = self.width
        decimals = 2
        if width > 0:
            decimals = int(min(6, max(2, 1 - math.floor(math.log10(width)))))
        f = f"{{:.{decimals}f}}"
        return (f"{f.format(self.estimate)} [{f.format(self.low)}, {f.format(self.high)}] "
                f"({100 * self.confidence:g} % CI, {self.n} images)")


def _rng_kwargs(seed) -> dict:
    """``rng=`` for SciPy >= 1.15, ``random_state=`` before (same generator, same draws)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    new_api = "rng" in inspect.signature(stats.bootstrap).parameters
    key = "rng" if new_api else "random_state"
    return {key: np.random.default_rng(int(seed))}


def _check_values(values, *, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be one score per image (1D) or one row per image "
                         f"(2D), got shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = np.unique(np.nonzero(~np.isfinite(array))[0]).tolist()
        raise ValueError(f"{name} has NaN or infinite values for images {bad[:10]}; a "
                         "score may be undefined on an image (e.g. a mean IoU with no "
                         "match): drop those images, or pool counts with "
                         "bootstrap_matching.")
    if len(array) < 2:
        raise ValueError(f"{name} has {len(array)} image(s); a bootstrap needs at least 2 "
                         "(and gives useful intervals from about 10).")
    return array


def bootstrap_ci(values, *, statistic=np.mean, n_resamples: int = 2000,
                 confidence: float = 0.95, method: str = "BCa",
                 seed: int = 0) -> BootstrapCI:
    """Bootstrap confidence interval of a statistic over images.

    The images are resampled with replacement and the statistic is recomputed on each
    resample (:func:`scipy.stats.bootstrap`); the interval says how much the score would
    move with another set of images like these. The estimate is the statistic on all
    images.

    Parameters
    ----------
    values : array_like ``(N,)`` or ``(N, K)``
        One score per image, or one row per image (for example the counts ``tp, fp, fn``
        of each image, for a statistic pooled over images).
    statistic : callable
        Takes ``values[indices]`` (a resample of the images, rows kept together) and
        returns a number; ``np.mean`` by default.
    n_resamples : int
        Bootstrap resamples; 2000 is plenty for a 95 % interval.
    confidence : float
        Confidence level, in (0, 1).
    method : {"BCa", "percentile"}
        ``"BCa"`` (bias-corrected and accelerated, SciPy's default, more accurate for
        skewed scores) or ``"percentile"`` (the plain quantiles of the resamples). Where
        BCa is undefined (leaving out any one image never changes the statistic), the
        percentile interval is returned and ``method`` of the result says so.
    seed : int
        Random seed: the same seed gives the same interval.

    Returns
    -------
    BootstrapCI

    Examples
    --------
    >>> f1 = [0.81, 0.86, 0.79, 0.90, 0.84, 0.88, 0.83, 0.80, 0.87, 0.85]
    >>> ci = bootstrap_ci(f1, seed=0)
    >>> print(ci)
    0.843 [0.82..., 0.86...] (95 % CI, 10 images)
    >>> ci.low < ci.estimate < ci.high
    True
    """
    array = _check_values(values, name="values")
    if not callable(statistic):
        raise TypeError(f"statistic must be a function of the resampled values, got "
                        f"{statistic!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}.")
    if method not in ("BCa", "percentile"):
        raise ValueError(f"method must be 'BCa' or 'percentile', got {method!r}.")
    if int(n_resamples) < 100:
        raise ValueError(f"n_resamples={n_resamples} is too few; use 1000 or more.")
    estimate = float(statistic(array))
    if not np.isfinite(estimate):
        raise ValueError(f"statistic gives {estimate} on the full data; check the values.")

    def on_indices(indices):
        return statistic(array[indices.astype(np.intp)])

    return _resampled_interval((np.arange(len(array)),), on_indices, estimate, n=len(array),
                               n_resamples=n_resamples, confidence=confidence, method=method,
                               seed=seed)


def _resampled_interval(indices, on_indices, estimate: float, *, n: int, n_resamples: int,
                        confidence: float, seed, method: str = "BCa",
                        **options) -> BootstrapCI:
    """:func:`scipy.stats.bootstrap` of ``on_indices`` over the index arrays ``indices``
    (one per sample), as a :class:`BootstrapCI` of ``estimate`` over ``n`` images; where
    every resample gives the same value the interval is the estimate, and where BCa is
    undefined, the percentile interval."""
    with warnings.catch_warnings():
        # Identical resamples (every image scores 1.0, say) make BCa undefined: see below.
        warnings.simplefilter("ignore", getattr(stats, "DegenerateDataWarning", Warning))
        warnings.filterwarnings("ignore", category=RuntimeWarning,
                                module=r"scipy\.stats\._resampling")
        result = stats.bootstrap(indices, on_indices, vectorized=False,
                                 n_resamples=int(n_resamples), confidence_level=confidence,
                                 method=method, **options, **_rng_kwargs(seed))
    low, high = map(float, result.confidence_interval)
    distribution = result.bootstrap_distribution
    if np.ptp(distribution) == 0:
        low = high = estimate   # every resample gives the same value: no spread to show
    elif not (np.isfinite(low) and np.isfinite(high)):
        # BCa is undefined when leaving out any one image never changes the statistic
        # (e.g. a median among many ties): fall back on the percentile interval.
        alpha = (1 - confidence) / 2
        low, high = map(float, np.quantile(distribution, [alpha, 1 - alpha]))
        method = "percentile"
    return BootstrapCI(estimate, low, high, float(confidence), n, method)


_POOLED = ("precision", "recall", "f1", "accuracy", "mean_matched_iou", "mean_true_iou",
           "panoptic_quality")
_NEEDS_IOU = ("mean_matched_iou", "mean_true_iou", "panoptic_quality")


def bootstrap_matching(matches, *, score: str = "f1", n_resamples: int = 2000,
                       confidence: float = 0.95, method: str = "BCa",
                       seed: int = 0) -> BootstrapCI:
    """Bootstrap interval of an object-matching score pooled over images.

    Each resample draws images with replacement, sums their ``tp``, ``fp``, ``fn`` (and
    ``sum_iou``), and scores the sums with :func:`dlbio_teach.metrics.matching_scores`: the
    score is defined once, there, and pooled as the dataset score is.

    Parameters
    ----------
    matches : sequence of dict
        One per image, as returned by :func:`dlbio_teach.metrics.match_instances` (only the
        counts ``tp``, ``fp``, ``fn`` and, for IoU-based scores, ``sum_iou`` are read).
    score : str
        One of ``precision``, ``recall``, ``f1``, ``accuracy`` (the DSB2018 score
        ``TP / (TP + FP + FN)``), ``mean_matched_iou``, ``mean_true_iou``,
        ``panoptic_quality``.
    n_resamples, confidence, method, seed
        As in :func:`bootstrap_ci`.

    Examples
    --------
    >>> matches = [{"tp": 8, "fp": 1, "fn": 2}, {"tp": 5, "fp": 2, "fn": 0},
    ...            {"tp": 9, "fp": 0, "fn": 1}, {"tp": 7, "fp": 3, "fn": 2}]
    >>> ci = bootstrap_matching(matches, score="f1", seed=0)
    >>> round(ci.estimate, 3)   # 2*29 / (2*29 + 6 + 5)
    0.841
    """
    if score not in _POOLED:
        raise ValueError(f"score must be one of {_POOLED}, got {score!r}.")
    if isinstance(matches, dict) or not hasattr(matches, "__len__"):
        raise TypeError("matches must be a list with one match_instances(...) dict per "
                        f"image, got {type(matches).__name__}.")
    needs_iou = score in _NEEDS_IOU
    keys = ("tp", "fp", "fn", "sum_iou") if needs_iou else ("tp", "fp", "fn")
    for i, m in enumerate(matches):
        missing = [k for k in keys if k not in m]
        if missing:
            raise ValueError(f"matches[{i}] lacks {missing}; pass the dicts returned by "
                             "dlbio_teach.metrics.match_instances, one per image.")
    rows = np.array([[m[k] for k in keys] for m in matches], np.float64)
    rows = rows.reshape(-1, len(keys))

    def pooled(sample):
        total = dict(zip(keys, sample.sum(axis=0)))
        return matching_scores(**{"sum_iou": 0.0, **total})[score]

    return bootstrap_ci(rows, statistic=pooled, n_resamples=n_resamples,
                        confidence=confidence, method=method, seed=seed)


@dataclass(frozen=True)
class PairedDifference:
    """Two methods scored on the same images: the interval of ``a - b`` and a tally.

    Attributes
    ----------
    difference : BootstrapCI
        Mean of the per-image differences ``a - b`` and its interval; an interval that
        excludes 0 says the difference is unlikely to come from the choice of images.
    n_better, n_worse, n_ties : int
        Images on which ``a`` beats, loses to, or equals ``b``.
    names : (str, str)
        Names of the two methods, for printing.
    """

    difference: BootstrapCI
    n_better: int
    n_worse: int
    n_ties: int
    names: tuple = ("a", "b")

    @property
    def fraction_better(self) -> float:
        """Fraction of the images on which ``a`` beats ``b``."""
        return self.n_better / self.difference.n

    def __str__(self) -> str:
        """The difference with its interval, and on how many images the first method is better."""
        a, b = self.names
        return (f"{a} - {b}: {self.difference}; {a} better on {self.n_better} of "
                f"{self.difference.n} images")


def matching_report(true_labels, pred_labels, *, threshold: float = 0.5, seed: int = 0,
                    n_resamples: int = 2000) -> dict:
    """Test scores as a run record stores them: F1 with its interval, precision, recall.

    F1 at IoU ``threshold`` pooled over the images, with a bootstrap interval over the
    images (:func:`bootstrap_matching`), its pooled counts, and the pooled precision and
    recall; keys are named after the threshold (``"F1@0.5"``).

    Examples
    --------
    >>> t = np.zeros((8, 8), int); t[1:4, 1:4] = 1; t[5:7, 5:7] = 2
    >>> report = matching_report([t, t, t], [t, t, np.zeros_like(t)])
    >>> report["F1@0.5"]["estimate"], report["F1@0.5"]["fn"], report["recall@0.5"]
    (0.8, 2, 0.6666666666666666)
    """
    true_labels, pred_labels = list(true_labels), list(pred_labels)
    if len(true_labels) != len(pred_labels) or not true_labels:
        raise ValueError(f"need one prediction per ground-truth image, got "
                         f"{len(true_labels)} and {len(pred_labels)}.")
    matches = [match_instances(t, p, threshold=threshold)
               for t, p in zip(true_labels, pred_labels)]
    ci = bootstrap_matching(matches, score="f1", seed=seed, n_resamples=n_resamples)
    pooled = {k: int(sum(m[k] for m in matches)) for k in ("tp", "fp", "fn")}
    tag = f"@{threshold:g}"
    return {f"F1{tag}": {"estimate": ci.estimate, "low": ci.low, "high": ci.high,
                         "level": ci.confidence, "n_images": ci.n, **pooled},
            f"precision{tag}": pooled["tp"] / max(pooled["tp"] + pooled["fp"], 1),
            f"recall{tag}": pooled["tp"] / max(pooled["tp"] + pooled["fn"], 1)}


def paired_difference(scores_a, scores_b, *, higher_is_better: bool = True,
                      names=("a", "b"), n_resamples: int = 2000, confidence: float = 0.95,
                      method: str = "BCa", seed: int = 0) -> PairedDifference:
    """Compare two methods on the same images: interval of the mean of ``a - b``.

    Resampling the per-image differences keeps each image's two scores together (a paired
    bootstrap): the image-to-image spread that both methods share cancels out.

    Parameters
    ----------
    scores_a, scores_b : array_like ``(N,)``
        The score of each method on the same ``N`` images, in the same order.
    higher_is_better : bool
        Whether a higher score is better (F1, PSNR) or worse (an error); decides what
        "better" means in the tally, not the sign of the difference.
    names : (str, str)
        Names of the methods, for printing.
    n_resamples, confidence, method, seed
        As in :func:`bootstrap_ci`.

    Examples
    --------
    >>> a = [0.85, 0.80, 0.91, 0.78, 0.88, 0.83]
    >>> b = [0.81, 0.80, 0.86, 0.75, 0.84, 0.84]
    >>> d = paired_difference(a, b, names=("U-Net", "Otsu"), seed=0)
    >>> print(d)
    U-Net - Otsu: 0.025 [0.00..., 0.04...] (95 % CI, 6 images);
    U-Net better on 4 of 6 images
    """
    a = _check_values(scores_a, name="scores_a")
    b = _check_values(scores_b, name="scores_b")
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"scores_a {a.shape} and scores_b {b.shape} must be 1D with one "
                         "score per image, for the same images in the same order.")
    if len(names) != 2:
        raise ValueError(f"names must be two strings, got {names!r}.")
    diff = a - b
    ci = bootstrap_ci(diff, statistic=np.mean, n_resamples=n_resamples,
                      confidence=confidence, method=method, seed=seed)
    gain = diff if higher_is_better else -diff
    return PairedDifference(ci, int(np.sum(gain > 0)), int(np.sum(gain < 0)),
                            int(np.sum(gain == 0)), tuple(str(n) for n in names))
