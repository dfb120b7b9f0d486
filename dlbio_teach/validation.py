"""Validation you can trust: uncertainty of scores, several annotators, ensembles, shift.

* **Confidence intervals.** :func:`bootstrap_ci` resamples *images* (the unit that was
  sampled from the world, not pixels or objects) with :func:`scipy.stats.bootstrap` (BCa by
  default, Efron 1987); :func:`bootstrap_matching` does the same for a score pooled over
  images, such as the F1 of matched objects; :func:`paired_difference` compares two methods
  on the *same* images, which is far more sensitive than two separate intervals.
* **Several annotators.** :func:`simulate_annotators` draws annotators with the biases real
  ones have (generous or tight outlines, missed small objects, merged touching objects);
  :func:`majority_vote` and :func:`staple` (Warfield et al. 2004, SimpleITK) build a
  consensus; :func:`agreement_matrix` measures how far annotators agree, the ceiling for any
  model scored against one of them.
* **Ensembles.** :func:`combine_ensemble` averages the probability maps of networks trained
  with different seeds and maps where they disagree (Lakshminarayanan et al. 2017);
  :func:`uncertainty_on_errors` checks that the disagreement points at the errors.
* **Domain shift.** :func:`shift_image` makes controlled shifts (noise, gamma, blur,
  magnification); :class:`ShiftDetector` learns a few image statistics from the training
  images and flags an image whose statistics lie outside them.

Every random draw takes an explicit ``seed``; nothing here keeps global state.
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy import special, stats

from .metrics import match_instances, matching_scores
from .preprocessing import check_image, check_labels

__all__ = ["BootstrapCI", "bootstrap_ci", "bootstrap_matching", "PairedDifference",
           "paired_difference", "dilate_labels", "erode_labels", "drop_small_objects",
           "merge_touching", "simulate_annotators", "majority_vote", "StapleResult",
           "staple", "agreement_matrix", "consensus_instances", "metric_panel", "combine_ensemble", "uncertainty_on_errors",
           "SHIFT_KINDS", "shift_image", "shift_labels", "ShiftDetector"]


# --- Confidence intervals by resampling images ---------------------------------------


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

    with warnings.catch_warnings():
        # Identical resamples (every image scores 1.0, say) make BCa undefined: see below.
        warnings.simplefilter("ignore", getattr(stats, "DegenerateDataWarning", Warning))
        warnings.filterwarnings("ignore", category=RuntimeWarning,
                                module=r"scipy\.stats\._resampling")
        result = stats.bootstrap((np.arange(len(array)),), on_indices, vectorized=False,
                                 n_resamples=int(n_resamples), confidence_level=confidence,
                                 method=method, **_rng_kwargs(seed))
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
    return BootstrapCI(estimate, low, high, float(confidence), len(array), method)


_POOLED = ("precision", "recall", "f1", "accuracy", "mean_matched_iou", "panoptic_quality")


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
        One of ``precision``, ``recall``, ``f1``, ``accuracy``, ``mean_matched_iou``,
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
    needs_iou = score in ("mean_matched_iou", "panoptic_quality")
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
        a, b = self.names
        return (f"{a} - {b}: {self.difference}; {a} better on {self.n_better} of "
                f"{self.difference.n} images")


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


# --- Simulated annotators -------------------------------------------------------------
#
# Each function takes an instance label image and returns one drawn with a single, known
# bias. Object ids are kept where objects survive (they need not be consecutive): compare
# annotators with metrics.match_instances, which does not care about ids.


def _check_radius(radius, name="radius"):
    if not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"{name} must be a non-negative integer (pixels), got {radius!r}.")
    return int(radius)


def _check_probability(p, name="probability"):
    if not 0 <= p <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {p}.")
    return float(p)


def dilate_labels(labels, *, radius: int = 2) -> np.ndarray:
    """A generous annotator: every object drawn ``radius`` pixels larger.

    Objects grow into the background only, never into each other
    (:func:`skimage.segmentation.expand_labels`).

    Examples
    --------
    >>> lab = np.zeros((5, 5), np.int32); lab[2, 2] = 1
    >>> int((dilate_labels(lab, radius=1) == 1).sum())
    5
    """
    from skimage.segmentation import expand_labels

    labels = check_labels(labels)
    return expand_labels(labels, distance=_check_radius(radius)).astype(np.int32)


def erode_labels(labels, *, radius: int = 2) -> np.ndarray:
    """A tight annotator: every object drawn ``radius`` pixels smaller.

    Each step removes the inner rim of each object (pixels beside the background or another
    object), so touching objects shrink apart. An object that would vanish keeps its last
    pixels: a tight annotator still marks a small object.

    Examples
    --------
    >>> lab = np.zeros((7, 7), np.int32); lab[1:6, 1:6] = 3
    >>> erode_labels(lab, radius=1)[1:6, 1:6]
    array([[0, 0, 0, 0, 0],
           [0, 3, 3, 3, 0],
           [0, 3, 3, 3, 0],
           [0, 3, 3, 3, 0],
           [0, 0, 0, 0, 0]], dtype=int32)
    """
    from skimage.segmentation import find_boundaries

    out = check_labels(labels).astype(np.int32, copy=True)
    for _ in range(_check_radius(radius)):
        rim = find_boundaries(out, mode="inner") & (out > 0)
        survives = np.zeros(int(out.max()) + 1, bool)
        survives[np.unique(out[~rim])] = True
        rim &= survives[out]          # objects that are all rim stay as they are
        if not rim.any():
            break
        out[rim] = 0
    return out


def drop_small_objects(labels, *, area_quantile: float = 0.25, probability: float = 0.8,
                       seed: int = 0) -> np.ndarray:
    """A hurried annotator: small objects are missed.

    Objects whose area is at most the ``area_quantile`` quantile of the object areas are
    each left out with ``probability``.

    Examples
    --------
    >>> lab = np.zeros((10, 10), np.int32)
    >>> lab[0:5, 0:5] = 1; lab[0:4, 6:10] = 2; lab[7, 7] = 3
    >>> np.unique(drop_small_objects(lab, area_quantile=0.3, probability=1.0)).tolist()
    [0, 1, 2]
    """
    labels = check_labels(labels)
    area_quantile = _check_probability(area_quantile, "area_quantile")
    probability = _check_probability(probability)
    area = np.bincount(labels.ravel())
    ids = np.nonzero(area)[0]
    ids = ids[ids > 0]
    out = labels.astype(np.int32, copy=True)
    if len(ids) == 0:
        return out
    rng = np.random.default_rng(seed)
    small = area[ids] <= np.quantile(area[ids], area_quantile)
    missed = ids[small & (rng.random(len(ids)) < probability)]
    out[np.isin(out, missed)] = 0
    return out


def merge_touching(labels, *, probability: float = 0.5, distance: int = 1,
                   seed: int = 0) -> np.ndarray:
    """An annotator who outlines touching objects as one: touching pairs merge.

    Two objects touch when a pixel of one lies within ``distance`` pixels (8-connected
    steps) of the other. Each touching pair is merged with ``probability`` (chains merge
    together); a merged object takes the smallest id of its parts. Background pixels are
    not filled in.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2, 0, 3]], np.int32)
    >>> merge_touching(lab, probability=1.0).tolist()
    [[1, 1, 1, 1, 0, 3]]
    """
    labels = check_labels(labels)
    probability = _check_probability(probability)
    distance = _check_radius(distance, "distance")
    # All pairs (i < j) of different objects within `distance` of each other.
    h, w = labels.shape
    pairs = set()
    for dy in range(0, distance + 1):
        for dx in range(-distance, distance + 1):
            if (dy, dx) <= (0, 0):
                continue          # each offset once: (dy, dx) and (-dy, -dx) are the same
            a = labels[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            b = labels[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            touch = (a > 0) & (b > 0) & (a != b)
            if touch.any():
                ends = np.sort(np.stack([a[touch], b[touch]], axis=1), axis=1)
                pairs.update(map(tuple, np.unique(ends, axis=0).tolist()))
    rng = np.random.default_rng(seed)
    draws = rng.random(len(pairs))
    parent = np.arange(int(labels.max()) + 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (i, j), u in zip(sorted(pairs), draws):
        if u < probability:
            ri, rj = root(i), root(j)
            parent[max(ri, rj)] = min(ri, rj)
    lookup = np.array([root(i) for i in range(len(parent))], np.int32)
    return lookup[labels]


def simulate_annotators(labels, *, seed: int = 0) -> dict:
    """Four annotators of one instance label image, each with a different, typical bias.

    ``"generous"`` (:func:`dilate_labels`, 2 pixels), ``"tight"`` (:func:`erode_labels`,
    2 pixels), ``"misses_small"`` (:func:`drop_small_objects`, the smallest quarter, each
    missed with probability 0.8) and ``"merges"`` (:func:`merge_touching`, each touching
    pair with probability 0.5). None of them is the truth, and none is wrong everywhere.

    Returns
    -------
    dict of str to ndarray of int32, each of the shape of ``labels``

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei
    >>> _, truth = nuclei((64, 64), n_nuclei=6, seed=0)
    >>> sorted(simulate_annotators(truth, seed=0))
    ['generous', 'merges', 'misses_small', 'tight']
    """
    labels = check_labels(labels)
    return {"generous": dilate_labels(labels, radius=2),
            "tight": erode_labels(labels, radius=2),
            "misses_small": drop_small_objects(labels, area_quantile=0.25, probability=0.8,
                                               seed=seed),
            "merges": merge_touching(labels, probability=0.5, seed=seed + 1)}


# --- Consensus and agreement ----------------------------------------------------------


def _stack_masks(masks, *, name="masks", min_count=2) -> np.ndarray:
    """Masks (K, Y, X) as bool, any value > 0 being foreground."""
    if isinstance(masks, dict):
        masks = list(masks.values())
    arrays = [np.asarray(m) for m in masks]
    shapes = [a.shape for a in arrays]
    if len(arrays) < min_count:
        raise ValueError(f"{name} needs at least {min_count} annotations, got "
                         f"{len(arrays)}.")
    if any(a.ndim != 2 for a in arrays) or len(set(shapes)) != 1:
        raise ValueError(f"{name} must be 2D masks (Y, X) of one shape, got shapes "
                         f"{shapes}; pass one annotation per annotator of the same image.")
    stack = np.stack(arrays)
    if not (np.issubdtype(stack.dtype, np.number) or stack.dtype == bool):
        raise ValueError(f"{name} must be numeric or boolean, got dtype {stack.dtype}.")
    if not np.all(np.isfinite(stack)):
        raise ValueError(f"{name} contain NaN or infinite values; masks are 0/1 or labels.")
    return stack > 0


def majority_vote(masks) -> np.ndarray:
    """Pixel-wise majority of binary masks: foreground where *more than half* agree.

    A tie (an even number of annotators, half and half) is background. Label images may be
    given: any value above 0 is foreground.

    Parameters
    ----------
    masks : sequence or dict of ndarray ``(Y, X)``, or ndarray ``(K, Y, X)``

    Returns
    -------
    ndarray of bool ``(Y, X)``

    Examples
    --------
    >>> a = np.array([[1, 1, 0]]); b = np.array([[1, 0, 0]]); c = np.array([[0, 1, 1]])
    >>> majority_vote([a, b, c]).astype(int).tolist()
    [[1, 1, 0]]
    """
    stack = _stack_masks(masks)
    return 2 * stack.sum(axis=0) > len(stack)


@dataclass(frozen=True, eq=False)
class StapleResult:
    """Output of :func:`staple`.

    Attributes
    ----------
    probability : ndarray of float ``(Y, X)``
        Estimated probability that each pixel is truly foreground.
    consensus : ndarray of bool ``(Y, X)``
        ``probability > 0.5``.
    sensitivity, specificity : ndarray ``(K,)``
        Estimated true-positive and true-negative rate of each annotator.
    iterations : int
        EM iterations until convergence.
    """

    probability: np.ndarray
    consensus: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    iterations: int


def staple(masks, *, confidence_weight: float = 1.0,
           max_iterations: int = 100) -> StapleResult:
    """STAPLE consensus (Warfield et al. 2004) with SimpleITK's ``STAPLEImageFilter``.

    Expectation-maximisation estimates, together, the true segmentation and each
    annotator's sensitivity and specificity: an annotator who agrees with the others is
    trusted more, per kind of error. The prior probability of foreground is ITK's: the mean
    foreground fraction of the masks, so it depends on how much background the images hold;
    compare STAPLE results on images of the same field of view.

    Parameters
    ----------
    masks : sequence or dict of ndarray ``(Y, X)``, or ndarray ``(K, Y, X)``
        One binary mask per annotator (label images allowed: > 0 is foreground).
    confidence_weight : float
        ITK's weight on the prior (1.0 is the published algorithm).
    max_iterations : int
        Cap on EM iterations.

    Examples
    --------
    >>> m = np.zeros((8, 8), int); m[2:6, 2:6] = 1
    >>> result = staple([m, m, m])
    >>> bool(np.array_equal(result.consensus, m > 0)), result.sensitivity.tolist()
    (True, [1.0, 1.0, 1.0])
    """
    import SimpleITK as sitk

    stack = _stack_masks(masks)
    if confidence_weight <= 0:
        raise ValueError(f"confidence_weight must be positive, got {confidence_weight}.")
    if int(max_iterations) < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}.")
    if not stack.any():
        raise ValueError("every mask is empty; STAPLE needs some foreground to estimate "
                         "sensitivities.")
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in stack]
    f = sitk.STAPLEImageFilter()
    f.SetForegroundValue(1.0)
    f.SetConfidenceWeight(float(confidence_weight))
    f.SetMaximumIterations(int(max_iterations))
    probability = sitk.GetArrayFromImage(f.Execute(images)).astype(np.float64)
    return StapleResult(probability, probability > 0.5, np.asarray(f.GetSensitivity()),
                        np.asarray(f.GetSpecificity()), int(f.GetElapsedIterations()))


def agreement_matrix(annotations, *, measure: str = "f1",
                     threshold: float = 0.5) -> np.ndarray:
    """Agreement of every pair of annotators: how well can anyone do against one of them?

    Parameters
    ----------
    annotations : sequence or dict of ndarray
        One instance label image ``(Y, X)`` per annotator, or a stack ``(N, Y, X)`` each
        (the same N images for every annotator), in the order of the rows.
    measure : {"f1", "dice"}
        ``"f1"``: F1 of objects matched at IoU >= ``threshold``
        (:func:`dlbio_teach.metrics.match_instances`), counts pooled over images.
        ``"dice"``: pixel Dice of the foregrounds, ``2|A and B| / (|A| + |B|)``, pooled over
        images (1 when both are empty).
    threshold : float
        IoU to match objects, for ``"f1"``.

    Returns
    -------
    ndarray ``(K, K)``, symmetric, with ones on the diagonal

    Examples
    --------
    >>> a = np.zeros((6, 6), int); a[:3, :3] = 1; a[3:, 3:] = 2
    >>> b = a.copy(); b[3:, 3:] = 0
    >>> agreement_matrix({"ann1": a, "ann2": b}, measure="f1").round(3).tolist()
    [[1.0, 0.667], [0.667, 1.0]]
    """
    if measure not in ("f1", "dice"):
        raise ValueError(f"measure must be 'f1' or 'dice', got {measure!r}.")
    if isinstance(annotations, dict):
        annotations = list(annotations.values())
    items = list(annotations)
    stacks = [np.asarray(a) for a in items]
    stacks = [s[None] if s.ndim == 2 else s for s in stacks]
    shapes = [s.shape for s in stacks]
    if len(stacks) < 2 or any(s.ndim != 3 for s in stacks) or len(set(shapes)) != 1:
        raise ValueError(f"annotations must be at least two label images (Y, X) or stacks "
                         f"(N, Y, X) of one shape, got shapes {shapes}.")
    k = len(stacks)
    out = np.ones((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            if measure == "f1":
                counts = {"tp": 0, "fp": 0, "fn": 0, "sum_iou": 0.0}
                for a, b in zip(stacks[i], stacks[j]):
                    m = match_instances(a, b, threshold=threshold)
                    counts = {key: counts[key] + m[key] for key in counts}
                value = matching_scores(**counts)["f1"]
            else:
                a, b = stacks[i] > 0, stacks[j] > 0
                total = int(a.sum() + b.sum())
                value = 2 * int((a & b).sum()) / total if total else 1.0
            out[i, j] = out[j, i] = value
    return out


def consensus_instances(annotations, consensus=None) -> np.ndarray:
    """Instances of a binary consensus, split where most annotators separate objects.

    A pixel is a *seed* pixel where more than half of the annotators mark it as the inside
    of an object (foreground, not on the rim of their own object); each connected region
    of seed pixels is one object, grown over the consensus mask by a watershed on its
    distance transform. Touching objects that most annotators keep apart therefore stay
    apart, which labelling the binary consensus (``skimage.measure.label``) would not do.

    Parameters
    ----------
    annotations : sequence or dict of ndarray ``(Y, X)``
        Instance label images of the same image, one per annotator.
    consensus : ndarray ``(Y, X)``, optional
        The binary consensus (e.g. :func:`majority_vote` or :func:`staple`);
        :func:`majority_vote` of ``annotations`` by default.

    Returns
    -------
    ndarray of int32 ``(Y, X)``

    Examples
    --------
    >>> a = np.zeros((6, 12), np.int32); a[1:5, 1:6] = 1; a[1:5, 6:11] = 2
    >>> merged = np.where(a > 0, 1, 0)                  # one annotator merges the two
    >>> int(consensus_instances([a, a, merged]).max())
    2
    """
    from skimage import measure, segmentation

    if isinstance(annotations, dict):
        annotations = list(annotations.values())
    labels = [check_labels(a) for a in annotations]
    stack = _stack_masks(labels, name="annotations")
    mask = majority_vote(stack) if consensus is None else np.asarray(consensus) > 0
    if mask.shape != stack.shape[1:]:
        raise ValueError(f"consensus {mask.shape} must have the shape of the annotations "
                         f"{stack.shape[1:]}.")
    inside = [(lab > 0) & ~segmentation.find_boundaries(lab, mode="inner") for lab in labels]
    seeds = measure.label(majority_vote(inside) & mask)
    distance = ndi.distance_transform_edt(mask)
    out = segmentation.watershed(-distance, seeds, mask=mask)
    return segmentation.relabel_sequential(out)[0].astype(np.int32)


def metric_panel(true_labels, pred_labels, *, threshold: float = 0.5) -> dict:
    """Four answers to "how good is this segmentation?", from the same prediction.

    Over a list of images (counts and pixels pooled over the images):

    * ``pixel_dice``: ``2 |T and P| / (|T| + |P|)`` of the foregrounds (overlap, pixels);
      1 when both are empty;
    * ``object_f1``: F1 of objects matched one-to-one at IoU >= ``threshold``
      (:func:`dlbio_teach.metrics.match_instances`); 1 when both are empty;
    * ``count_error``: ``(n_pred - n_true) / n_true`` (signed; ``inf`` when there is no
      true object but some predicted, 0 when neither);
    * ``boundary_distance``: the mean distance in pixels from each pixel on the outline of
      one foreground to the nearest outline pixel of the other, over both outlines (the
      average symmetric surface distance, a boundary measure); 0 when both are empty,
      ``inf`` when only one is;
    * ``hausdorff``: the largest distance in pixels from a foreground pixel of one mask to
      the nearest of the other (:func:`skimage.metrics.hausdorff_distance`; a worst case),
      the largest over the images; 0 when both are empty, ``inf`` when only one is.

    Examples
    --------
    >>> t = np.zeros((8, 8), int); t[1:4, 1:4] = 1; t[5:8, 5:8] = 2
    >>> p = np.where(t > 0, 1, 0)                      # right pixels, one object too few
    >>> {k: round(v, 3) for k, v in metric_panel([t], [p]).items()}
    {'pixel_dice': 1.0, 'object_f1': 0.667, 'count_error': -0.5, 'boundary_distance': 0.0, 'hausdorff': 0.0}
    """
    from skimage.metrics import hausdorff_distance
    from skimage.segmentation import find_boundaries

    if isinstance(true_labels, np.ndarray) and true_labels.ndim == 2:
        true_labels, pred_labels = [true_labels], [pred_labels]
    true_labels, pred_labels = list(true_labels), list(pred_labels)
    if len(true_labels) != len(pred_labels) or not true_labels:
        raise ValueError(f"need one prediction per ground-truth image, got "
                         f"{len(true_labels)} and {len(pred_labels)}.")
    counts = {"tp": 0, "fp": 0, "fn": 0, "sum_iou": 0.0, "n_true": 0, "n_pred": 0}
    overlap = total = 0
    hausdorff = distance_sum = 0.0
    n_outline = 0
    for t, p in zip(true_labels, pred_labels):
        t, p = check_labels(t), check_labels(p)
        m = match_instances(t, p, threshold=threshold)
        counts = {k: counts[k] + m[k] for k in counts}
        overlap += int(((t > 0) & (p > 0)).sum())
        total += int((t > 0).sum() + (p > 0).sum())
        hausdorff = max(hausdorff, float(hausdorff_distance(t > 0, p > 0)))
        rims = [find_boundaries((x > 0).astype(np.uint8), mode="inner") & (x > 0) for x in (t, p)]
        if rims[0].any() != rims[1].any():
            distance_sum = float("inf")
        elif rims[0].any():
            for a, b in (rims, rims[::-1]):
                distance_sum += float(ndi.distance_transform_edt(~b)[a].sum())
                n_outline += int(a.sum())
    n_true, n_pred = counts["n_true"], counts["n_pred"]
    count_error = ((n_pred - n_true) / n_true if n_true else
                   (float("inf") if n_pred else 0.0))
    return {"pixel_dice": 2 * overlap / total if total else 1.0,
            "object_f1": matching_scores(**counts)["f1"],
            "count_error": float(count_error),
            "boundary_distance": distance_sum / n_outline if n_outline else distance_sum,
            "hausdorff": hausdorff}


# --- Ensembles and uncertainty --------------------------------------------------------


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


# --- Domain shift ---------------------------------------------------------------------

SHIFT_KINDS = ("noise", "gamma", "blur", "scale")


def shift_image(image, *, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """A controlled domain shift of one image; ``strength=0`` returns the image unchanged.

    ``kind`` and what ``strength`` means:

    * ``"noise"``: add Gaussian noise of standard deviation ``strength`` times the image's
      intensity range (max - min), e.g. another camera gain or a shorter exposure;
    * ``"gamma"``: ``x ** (1 + strength)`` on the intensities mapped to [0, 1] and back
      (another detector response or display setting; ``strength > -1``);
    * ``"blur"``: Gaussian blur of ``strength`` pixels (defocus, a lower-NA objective);
    * ``"scale"``: magnification by ``1 + strength`` about the centre, cropped, or padded
      by reflection, back to the same shape (another objective or binning; ``> -1``).

    Examples
    --------
    >>> shift_image(np.array([[0.0, 0.5, 1.0]]), kind="gamma", strength=1.0).tolist()
    [[0.0, 0.25, 1.0]]
    >>> img = np.random.default_rng(0).random((8, 8))
    >>> shift_image(img, kind="scale", strength=0.5).shape
    (8, 8)
    """
    image = check_image(image)
    if kind not in SHIFT_KINDS:
        raise ValueError(f"kind must be one of {SHIFT_KINDS}, got {kind!r}.")
    strength = float(strength)
    if kind in ("noise", "blur") and strength < 0:
        raise ValueError(f"strength for {kind!r} must be >= 0, got {strength}.")
    if kind in ("gamma", "scale") and strength <= -1:
        raise ValueError(f"strength for {kind!r} must be > -1, got {strength}.")
    if strength == 0:
        return image.copy()
    lo, hi = float(image.min()), float(image.max())
    if kind == "noise":
        rng = np.random.default_rng(seed)
        out = image + rng.normal(0.0, strength * (hi - lo), size=image.shape)
    elif kind == "gamma":
        span = max(hi - lo, 1e-12)
        out = lo + span * ((image - lo) / span) ** (1.0 + strength)
    elif kind == "blur":
        out = ndi.gaussian_filter(image, strength)
    else:
        from skimage.transform import rescale

        factor = 1.0 + strength
        zoomed = rescale(image, factor, order=1, anti_aliasing=factor < 1,
                         preserve_range=True)
        h, w = image.shape
        zh, zw = zoomed.shape
        if factor > 1:
            y0, x0 = (zh - h) // 2, (zw - w) // 2
            out = zoomed[y0:y0 + h, x0:x0 + w]
        else:
            py, px = h - zh, w - zw
            out = np.pad(zoomed, ((py // 2, py - py // 2), (px // 2, px - px // 2)),
                         mode="reflect")
    return np.asarray(out, np.float32)


def shift_labels(labels, *, kind: str, strength: float) -> np.ndarray:
    """The labels that go with ``shift_image(image, kind=kind, strength=strength)``.

    Only ``"scale"`` moves objects: the labels are magnified the same way (nearest
    neighbour) and cropped to the same shape; the other shifts change intensities and
    return the labels unchanged. Shrinking (``strength < 0``) pads the image with mirrored
    content, which has no labels: it is refused here.

    Examples
    --------
    >>> lab = np.zeros((8, 8), np.int32); lab[3:5, 3:5] = 1
    >>> int((shift_labels(lab, kind="scale", strength=1.0) == 1).sum())
    16
    """
    labels = check_labels(labels)
    if kind not in SHIFT_KINDS:
        raise ValueError(f"kind must be one of {SHIFT_KINDS}, got {kind!r}.")
    strength = float(strength)
    if kind != "scale" or strength == 0:
        return labels.astype(np.int32, copy=True)
    if strength < 0:
        raise ValueError("shrinking (scale strength < 0) pads the image with mirrored, "
                         "unlabelled content; use strength > 0 to score a shifted image.")
    from skimage.transform import rescale

    zoomed = rescale(labels, 1.0 + strength, order=0, anti_aliasing=False,
                     preserve_range=True).astype(np.int32)
    h, w = labels.shape
    y0, x0 = (zoomed.shape[0] - h) // 2, (zoomed.shape[1] - w) // 2
    return np.ascontiguousarray(zoomed[y0:y0 + h, x0:x0 + w])


def _noise_sigma(image) -> float:
    """Gaussian noise level, Immerkaer's (1996) fast estimate.

    The 3x3 kernel below cancels intensity that is locally flat or linear; for white noise
    of standard deviation s its output has standard deviation 6 s, and
    ``s = sqrt(pi / 2) * mean(|output|) / 6``. Edges add a little, alike on similar images.
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = ndi.convolve(image.astype(np.float64), kernel, mode="reflect")
    return float(np.sqrt(np.pi / 2) * np.mean(np.abs(response)) / 6.0)


def _high_frequency(image) -> float:
    """Fraction of the (mean-removed) power spectrum above 0.25 cycles per pixel."""
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    total = spectrum.sum()
    return float(spectrum[np.hypot(fy, fx) > 0.25].sum() / total) if total > 0 else 0.0


class ShiftDetector:
    """Flag images whose simple statistics lie outside those of the training images.

    Each image is summarised by ``FEATURES``: the mean of its darkest 5 % of pixels (the
    background level), its mean, the mean of its brightest 1 % (the bright level), the
    noise level (Immerkaer's estimate) and the fraction of its power above 0.25 cycles per
    pixel (fine detail: noise raises it, blur and magnification lower it). :meth:`fit`
    stores their mean and standard deviation over the training images; the *score* of an
    image is the largest absolute z-score of its statistics, "how many standard deviations
    its most unusual statistic lies from the training images" (a max-|z| rather than a
    Mahalanobis distance: stable with a dozen training images, and :meth:`zscores` names
    the statistic that moved). A statistic that hardly varies over the training images
    gets 1 % of its mean as standard deviation, so that a tiny change is not infinitely
    unusual.

    The threshold is the ``quantile`` of the *leave-one-out* scores of the training images
    (each scored by a detector fitted without it), so that it reflects how new
    in-distribution images score, not how training images score on themselves (always
    lower). With fewer than about 100 training images, 0.99 is in effect the largest.

    Parameters
    ----------
    quantile : float
        Quantile of the leave-one-out training scores used as threshold.
    threshold : float, optional
        A fixed threshold instead (e.g. 5 standard deviations).

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei, add_poisson_gaussian_noise
    >>> train = [add_poisson_gaussian_noise(nuclei((64, 64), 6, seed=s)[0], 200, seed=s)
    ...          for s in range(12)]
    >>> det = ShiftDetector().fit(train)
    >>> new = add_poisson_gaussian_noise(nuclei((64, 64), 6, seed=99)[0], 200, seed=99)
    >>> det.is_out_of_distribution(new)
    False
    >>> det.is_out_of_distribution(shift_image(new, kind="noise", strength=0.2))
    True
    """

    FEATURES = ("dark", "mean", "bright", "noise_sigma", "high_frequency")

    def __init__(self, *, quantile: float = 0.99, threshold: float | None = None):
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}.")
        if threshold is not None and not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}.")
        self.quantile = float(quantile)
        self.threshold = None if threshold is None else float(threshold)
        self._fixed_threshold = threshold is not None
        self.mean_ = self.std_ = None
        self.train_scores_ = None

    @classmethod
    def statistics(cls, image) -> dict:
        """The statistics of one image, by name (see ``FEATURES``).

        Examples
        --------
        >>> s = ShiftDetector.statistics(np.zeros((16, 16)))
        >>> list(s) == list(ShiftDetector.FEATURES), s["noise_sigma"]
        (True, 0.0)
        """
        image = check_image(image, min_size=8).astype(np.float64)
        flat = np.sort(image.ravel())
        n_dark, n_bright = math.ceil(0.05 * flat.size), math.ceil(0.01 * flat.size)
        # Means of the darkest 5 % and brightest 1 % rather than percentiles: camera
        # counts are integers, and a percentile of integers jumps from step to step.
        values = (flat[:n_dark].mean(), flat.mean(), flat[-n_bright:].mean(),
                  _noise_sigma(image), _high_frequency(image))
        return dict(zip(cls.FEATURES, map(float, values)))

    @staticmethod
    def _moments(table):
        mean = table.mean(axis=0)
        std = table.std(axis=0, ddof=1)
        # A statistic (nearly) constant over the training images, e.g. a percentile of
        # integer counts, gets 1 % of its mean as spread, not a division by ~zero.
        return mean, np.maximum(std, 0.01 * np.abs(mean) + 1e-12)

    def fit(self, images) -> "ShiftDetector":
        """Learn the statistics of in-distribution images (at least 3; 10 or more advised).

        Parameters
        ----------
        images : sequence of ndarray ``(Y, X)``, or ndarray ``(N, Y, X)``
            Training images, prepared exactly as the images to check will be.

        Returns
        -------
        ShiftDetector
            ``self``, fitted.
        """
        if isinstance(images, np.ndarray) and images.ndim != 3:
            raise ValueError(f"images must be a stack (N, Y, X) or a list of (Y, X) "
                             f"images, got an array of shape {images.shape}.")
        images = list(images)
        if len(images) < 3:
            raise ValueError(f"fit needs at least 3 training images, got {len(images)}; "
                             "pass the training set, 10 or more images if you can.")
        table = np.array([list(self.statistics(im).values()) for im in images])
        self.mean_, self.std_ = self._moments(table)
        loo = []
        for i in range(len(table)):
            mean, std = self._moments(np.delete(table, i, axis=0))
            loo.append(float(np.max(np.abs((table[i] - mean) / std))))
        self.train_scores_ = np.array(loo)
        if not self._fixed_threshold:
            self.threshold = float(np.quantile(self.train_scores_, self.quantile))
        return self

    def _check_fitted(self):
        if self.mean_ is None:
            raise RuntimeError("this ShiftDetector is not fitted; call .fit(train_images) "
                               "first.")

    def zscores(self, image) -> dict:
        """z-score of each statistic of ``image`` against the training images, by name."""
        self._check_fitted()
        values = np.array(list(self.statistics(image).values()))
        return dict(zip(self.FEATURES, map(float, (values - self.mean_) / self.std_)))

    def score(self, image) -> float:
        """The largest absolute z-score of the statistics of ``image``."""
        return float(max(abs(z) for z in self.zscores(image).values()))

    def is_out_of_distribution(self, image) -> bool:
        """Whether the score of ``image`` exceeds the threshold."""
        return bool(self.score(image) > self.threshold)

    def __repr__(self) -> str:
        state = "unfitted" if self.mean_ is None else \
            f"fitted on {len(self.train_scores_)} images, threshold {self.threshold:.2f}"
        return f"ShiftDetector({state})"
