"""Several annotators of one image: simulated biases, consensus and agreement.

:func:`simulate_annotators` draws annotators with the biases real ones have (generous or
tight outlines, missed small objects, merged touching objects); :func:`majority_vote` and
:func:`staple` (Warfield et al. 2004, SimpleITK) build a consensus mask, and
:func:`consensus_instances` splits it into objects; :func:`agreement_matrix` measures how
far annotators agree, the ceiling for any model scored against one of them.

Every random draw takes an explicit ``seed``; nothing here keeps global state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .metrics import match_instances, matching_scores
from .preprocessing import check_labels

__all__ = ["dilate_labels", "erode_labels", "drop_small_objects", "merge_touching",
           "simulate_annotators", "majority_vote", "StapleResult", "staple",
           "agreement_matrix", "consensus_instances"]


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
