"""Metrics, each defined once: image quality for restoration, object matching for
instance segmentation, and the panel of segmentation metrics that see different errors.

PSNR and SSIM come from ``skimage.metrics`` with an explicit ``data_range``: without it,
scikit-image guesses the range from the dtype, and two tools reporting "PSNR" disagree.
Before scoring, a prediction can be affinely rescaled to the target (least squares), as
CARE and ZeroCostDL4Mic do, so that a method is not penalised for an offset or gain that
any display would remove.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import metrics as skm

from .preprocessing import check_image, check_labels, spatial_ndim

__all__ = ["rescale_affine", "psnr", "ssim", "restoration_scores", "mean_restoration_scores",
           "f1_at", "f1_from_counts", "iou_matrix",
           "match_instances", "matching_scores", "match_dataset", "merges_and_splits",
           "metric_panel"]


def _pair(target, prediction, axes=None):
    target = check_image(target, name="target", axes=axes)
    prediction = check_image(prediction, name="prediction", axes=axes)
    if target.shape != prediction.shape:
        raise ValueError(f"target {target.shape} and prediction {prediction.shape} must "
                         "have the same shape.")
    return target, prediction


def rescale_affine(prediction, target, *, axes: str | None = None) -> np.ndarray:
    """Return ``a * prediction + b`` with ``a, b`` minimising the squared error to ``target``.

    Images are ``(Y, X)``; volumes ``(Z, Y, X)`` need ``axes="ZYX"``.

    Examples
    --------
    >>> t = np.linspace(0, 1, 16).reshape(4, 4)
    >>> bool(np.allclose(rescale_affine(3 * t + 2, t), t))
    True
    """
    target, prediction = _pair(target, prediction, axes)
    p = prediction.ravel().astype(np.float64)
    t = target.ravel().astype(np.float64)
    var = p.var()
    a = 0.0 if var == 0 else np.mean((p - p.mean()) * (t - t.mean())) / var
    b = t.mean() - a * p.mean()
    return (a * prediction + b).astype(np.float32)


def psnr(target, prediction, *, data_range: float, rescale: bool = False,
         axes: str | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    Parameters
    ----------
    target, prediction : ndarray ``(Y, X)``, or ``(Z, Y, X)`` with ``axes="ZYX"``
    data_range : float
        The span of possible values of the target (1.0 for images in [0, 1]); required.
    rescale : bool
        Affinely rescale the prediction to the target first (:func:`rescale_affine`).
    axes : {None, "YX", "ZYX"}
        ``"ZYX"`` for volumes: the mean squared error is then over all voxels.

    Examples
    --------
    >>> t = np.zeros((8, 8)); p = t + 0.1
    >>> round(psnr(t, p, data_range=1.0), 1)
    20.0
    >>> round(psnr(np.zeros((4, 8, 8)), np.full((4, 8, 8), 0.1), data_range=1.0,
    ...            axes="ZYX"), 1)
    20.0
    """
    target, prediction = _pair(target, prediction, axes)
    if rescale:
        prediction = rescale_affine(prediction, target, axes=axes)
    return float(skm.peak_signal_noise_ratio(target, prediction, data_range=data_range))


def ssim(target, prediction, *, data_range: float, rescale: bool = False,
         axes: str | None = None) -> float:
    """Structural similarity (Wang et al. 2004; scikit-image defaults, 7x7 window).

    Volumes ``(Z, Y, X)`` need ``axes="ZYX"``; the window is then 7x7x7 voxels, so each
    side must be at least 7.

    Examples
    --------
    >>> t = np.random.default_rng(0).random((32, 32))
    >>> ssim(t, t, data_range=1.0)
    1.0
    """
    target, prediction = _pair(target, prediction, axes)
    if rescale:
        prediction = rescale_affine(prediction, target, axes=axes)
    return float(skm.structural_similarity(target, prediction, data_range=data_range))


def restoration_scores(target, prediction, *, data_range: float = 1.0,
                       rescale: bool = True, axes: str | None = None) -> dict:
    """PSNR and SSIM of one prediction, after the same (optional) affine rescaling.

    Volumes ``(Z, Y, X)`` need ``axes="ZYX"``.

    Examples
    --------
    >>> t = np.random.default_rng(0).random((32, 32))
    >>> scores = restoration_scores(t, t + 0.01 * np.random.default_rng(1).random((32, 32)))
    >>> sorted(scores), scores["psnr"] > 40
    (['psnr', 'ssim'], True)
    """
    target, prediction = _pair(target, prediction, axes)
    if rescale:
        prediction = rescale_affine(prediction, target, axes=axes)
    return {"psnr": psnr(target, prediction, data_range=data_range, axes=axes),
            "ssim": ssim(target, prediction, data_range=data_range, axes=axes)}


def mean_restoration_scores(targets, predictions, **kwargs) -> dict:
    """Mean PSNR and SSIM over pairs of images (:func:`restoration_scores` of each pair).

    Examples
    --------
    >>> t = np.zeros((2, 16, 16)); t[:, 4:12, 4:12] = 1
    >>> round(mean_restoration_scores(t, 0.9 * t + 0.05, rescale=False)["psnr"], 1)
    26.0
    """
    targets, predictions = list(targets), list(predictions)
    if len(targets) != len(predictions) or not targets:
        raise ValueError(f"need one prediction per target image, got {len(targets)} targets "
                         f"and {len(predictions)} predictions.")
    scores = [restoration_scores(t, p, **kwargs) for t, p in zip(targets, predictions)]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr", "ssim")}


# --- Instance segmentation: one-to-one matching of objects ---------------------------
#
# Names as in the literature (StarDist's matching, the 2018 Data Science Bowl, Kirillov et
# al.'s panoptic quality): a true object and a predicted object *match* when a one-to-one
# assignment pairs them and their IoU is at least the threshold. Each matched pair is a
# true positive (TP); unmatched predictions are false positives (FP), unmatched true
# objects false negatives (FN). Then
#   precision = TP / (TP + FP),  recall = TP / (TP + FN),  F1 = 2TP / (2TP + FP + FN),
#   accuracy = TP / (TP + FP + FN)   (the DSB2018 score, StarDist's "accuracy"),
#   mean_matched_iou = sum of TP IoUs / TP   (how well the found objects are drawn),
#   mean_true_iou = sum of TP IoUs / (TP + FN)   (StarDist's mean_true_score: each true
#       object scores its IoU if found and 0 if missed),
#   panoptic_quality = sum of TP IoUs / (TP + FP/2 + FN/2).
# With no true and no predicted object there is nothing to get wrong: the ratios
# (mean_true_iou included) are 1 and the mean matched IoU is NaN (no pair to average),
# stated rather than guessed. With no true object but some predicted, recall and
# mean_true_iou are 0, as the precision is with true objects and no prediction.


def _label_pair(true_labels, pred_labels, axes=None):
    t = check_labels(true_labels, name="true_labels", axes=axes)
    p = check_labels(pred_labels, name="pred_labels", axes=axes)
    if t.shape != p.shape:
        raise ValueError(f"true {t.shape} and predicted {p.shape} labels differ in shape.")
    return t, p


def iou_matrix(true_labels, pred_labels, *, axes: str | None = None):
    """IoU of every true object (rows) with every predicted object (columns).

    Returns ``(iou, true_ids, pred_ids)``; labels need not be consecutive. Label images
    are ``(Y, X)``, or ``(Z, Y, X)`` volumes with ``axes="ZYX"`` (overlaps then count
    voxels).

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 0]]); p = np.array([[1, 0, 0, 0]])
    >>> iou, _, _ = iou_matrix(t, p)
    >>> iou.tolist()
    [[0.5]]
    """
    t, p = _label_pair(true_labels, pred_labels, axes)
    true_ids, t_idx = np.unique(t, return_inverse=True)
    pred_ids, p_idx = np.unique(p, return_inverse=True)
    overlap = np.zeros((len(true_ids), len(pred_ids)), np.int64)
    np.add.at(overlap, (t_idx.ravel(), p_idx.ravel()), 1)
    t_fg, p_fg = true_ids > 0, pred_ids > 0
    overlap = overlap[np.ix_(t_fg, p_fg)]
    t_area = np.bincount(t_idx.ravel(), minlength=len(true_ids))[t_fg]
    p_area = np.bincount(p_idx.ravel(), minlength=len(pred_ids))[p_fg]
    union = t_area[:, None] + p_area[None, :] - overlap
    iou = np.divide(overlap, union, out=np.zeros(overlap.shape), where=union > 0)
    return iou, true_ids[t_fg], pred_ids[p_fg]


def _assign(iou, threshold):
    """Row and column indices of the one-to-one matching of admissible pairs.

    A pair is admissible when its IoU is at least ``threshold``. From 0.5 up, an object
    has at most one admissible partner (barring ties at exactly 0.5) and the matching
    maximises the total IoU. Below 0.5 an object can overlap several others that well,
    and the largest total IoU may leave an object unmatched that another assignment would
    match: there the matching first maximises the *number* of admissible pairs, then,
    among those, their total IoU (as StarDist does). Each admissible pair is worth
    ``1 + iou / (2 n)`` with ``n = min(iou.shape)``: the IoU terms of a matching add up
    to at most 1/2, less than one more pair.
    """
    from scipy.optimize import linear_sum_assignment

    admissible = iou >= threshold
    if threshold >= 0.5:
        gain = np.where(admissible, iou, 0.0)
    else:
        gain = np.where(admissible, 1.0 + iou / (2 * min(iou.shape)), 0.0)
    rows, cols = linear_sum_assignment(-gain)
    keep = admissible[rows, cols]
    return rows[keep], cols[keep]


def match_instances(true_labels, pred_labels, *, threshold: float = 0.5,
                    axes: str | None = None) -> dict:
    """Match objects one-to-one on IoU (as StarDist does) and count TP, FP and FN.

    The Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) pairs true and
    predicted objects whose IoU is at least ``threshold``. It maximises the total IoU of
    the matched pairs; below 0.5, where one object can overlap several others above the
    threshold, it first maximises the number of matched pairs, then their total IoU.
    Label images are ``(Y, X)``; volumes ``(Z, Y, X)`` need ``axes="ZYX"`` (IoU of
    voxels), since a volume's shape cannot be told from a stack of 2D masks.

    Returns a dict with ``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred``, ``sum_iou`` (of the
    matched pairs), the scores of :func:`matching_scores` (among them ``accuracy``, the
    DSB2018 score ``TP / (TP + FP + FN)``, and ``mean_true_iou``, ``sum_iou / n_true``),
    ``threshold``, and ``pairs``: ``(true_id, pred_id, iou)`` for each match.

    Examples
    --------
    >>> t = np.zeros((6, 6), int); t[:3, :3] = 1; t[3:, 3:] = 2
    >>> p = np.zeros((6, 6), int); p[:3, :3] = 5
    >>> m = match_instances(t, p)
    >>> m["tp"], m["fp"], m["fn"], m["f1"], m["mean_true_iou"]
    (1, 0, 1, 0.6666666666666666, 0.5)
    >>> v = np.zeros((2, 4, 4), int); v[:, :2, :2] = 1       # one object through 2 planes
    >>> match_instances(v, v, axes="ZYX")["f1"]
    1.0
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}.")
    iou, true_ids, pred_ids = iou_matrix(true_labels, pred_labels, axes=axes)
    pairs = []
    if iou.size:
        rows, cols = _assign(iou, threshold)
        pairs = [(int(true_ids[r]), int(pred_ids[c]), float(iou[r, c]))
                 for r, c in zip(rows, cols)]
    counts = {"tp": len(pairs), "fp": len(pred_ids) - len(pairs),
              "fn": len(true_ids) - len(pairs), "n_true": len(true_ids),
              "n_pred": len(pred_ids), "sum_iou": float(sum(p[2] for p in pairs))}
    return {**counts, **matching_scores(**counts), "threshold": threshold, "pairs": pairs}


def matching_scores(*, tp: int, fp: int, fn: int, sum_iou: float, **_) -> dict:
    """Precision, recall, F1, accuracy, mean IoUs and panoptic quality from counts.

    ``accuracy`` is ``TP / (TP + FP + FN)``, the score of the 2018 Data Science Bowl (and
    StarDist's ``accuracy``); ``mean_true_iou`` is ``sum_iou / (TP + FN)``, the IoU of each
    true object averaged over all of them, 0 for a missed one (StarDist's
    ``mean_true_score``). Pool counts over images first (sum ``tp``, ``fp``, ``fn``,
    ``sum_iou``) to score a dataset; averaging per-image scores weighs a crowded image like
    an empty one.

    With no object at all the ratios are 1 (nothing to get wrong) and ``mean_matched_iou``
    is NaN (no pair to average); with no true object but some predicted, ``recall`` and
    ``mean_true_iou`` are 0.

    Examples
    --------
    >>> s = matching_scores(tp=8, fp=2, fn=2, sum_iou=6.4)
    >>> s["accuracy"], s["mean_matched_iou"], s["mean_true_iou"]
    (0.6666666666666666, 0.8, 0.64)
    >>> s = matching_scores(tp=0, fp=0, fn=0, sum_iou=0.0)
    >>> s["mean_true_iou"], s["mean_matched_iou"]
    (1.0, nan)
    >>> matching_scores(tp=0, fp=3, fn=0, sum_iou=0.0)["mean_true_iou"]
    0.0
    """
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0,
                "mean_matched_iou": float("nan"), "mean_true_iou": 1.0,
                "panoptic_quality": 1.0}
    return {"precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn),
            "accuracy": tp / (tp + fp + fn),
            "mean_matched_iou": sum_iou / tp if tp else float("nan"),
            "mean_true_iou": sum_iou / (tp + fn) if tp + fn else 0.0,
            "panoptic_quality": sum_iou / (tp + fp / 2 + fn / 2)}


def match_dataset(true_labels, pred_labels, *, thresholds=(0.5,),
                  axes: str | None = None) -> list[dict]:
    """Score a dataset at each IoU threshold: counts pooled over its images, then scores.

    Parameters
    ----------
    true_labels, pred_labels : sequence of ndarray ``(Y, X)``
        Ground truth and prediction of each image, in the same order.
    thresholds : sequence of float
        IoU thresholds, e.g. ``np.arange(0.5, 1.0, 0.05)``, the range over which the
        DSB2018 averaged its ``accuracy``.
    axes : {None, "YX", "ZYX"}
        ``"ZYX"`` when each item is a volume ``(Z, Y, X)``.

    Returns
    -------
    list of dict
        One per threshold: ``threshold``, the pooled ``tp``, ``fp``, ``fn``, ``sum_iou``,
        ``n_images`` and the scores of :func:`matching_scores` (``accuracy``,
        ``mean_true_iou``, ...) of the pooled counts.

    Examples
    --------
    >>> t = np.zeros((6, 6), int); t[:3, :3] = 1; t[3:, 3:] = 2
    >>> rows = match_dataset([t, t], [t, np.zeros_like(t)], thresholds=[0.5, 0.9])
    >>> [(r["tp"], r["fn"], round(r["f1"], 3)) for r in rows]
    [(2, 2, 0.667), (2, 2, 0.667)]
    """
    true_labels, pred_labels = list(true_labels), list(pred_labels)
    if len(true_labels) != len(pred_labels) or not true_labels:
        raise ValueError(f"need one prediction per ground-truth image, got "
                         f"{len(true_labels)} ground truths and {len(pred_labels)} "
                         "predictions.")
    pairs = [_label_pair(t, p, axes) for t, p in zip(true_labels, pred_labels)]
    rows = []
    for threshold in thresholds:
        counts = {"tp": 0, "fp": 0, "fn": 0, "sum_iou": 0.0}
        for t, p in pairs:
            m = match_instances(t, p, threshold=float(threshold), axes=axes)
            for key in counts:
                counts[key] += m[key]
        rows.append({"threshold": float(threshold), "n_images": len(pairs), **counts,
                     **matching_scores(**counts)})
    return rows


def merges_and_splits(true_labels, pred_labels, *, cover: float = 0.5,
                      axes: str | None = None) -> dict:
    """Count merges and splits, the two errors an IoU threshold cannot tell apart.

    A *merge* is a predicted object that holds more than ``cover`` of the pixels of two or
    more true objects; a *split* is a true object that holds more than ``cover`` of the
    pixels of two or more predicted objects. Volumes ``(Z, Y, X)`` need ``axes="ZYX"``.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2, 2]]); p = np.array([[7, 7, 7, 7, 7]])
    >>> merges_and_splits(t, p)
    {'merges': 1, 'splits': 0}
    """
    t, p = _label_pair(true_labels, pred_labels, axes)

    def count(a, b):
        # Objects of b that hold more than `cover` of each of at least two objects of a.
        _, idx = np.unique(a, return_inverse=True)
        area = np.bincount(idx.ravel())
        fg = (a > 0) & (b > 0)
        pairs, n = np.unique(np.stack([idx.ravel()[fg.ravel()], b[fg]]), axis=1,
                             return_counts=True)
        held = n > cover * area[pairs[0]]
        _, times = np.unique(pairs[1][held], return_counts=True)
        return int(np.sum(times >= 2))

    return {"merges": count(t, p), "splits": count(p, t)}


def metric_panel(true_labels, pred_labels, *, threshold: float = 0.5,
                 axes: str | None = None) -> dict:
    """Five answers to "how good is this segmentation?", from the same prediction.

    Over a list of images (counts and pixels pooled over the images):

    * ``pixel_dice``: ``2 |T and P| / (|T| + |P|)`` of the foregrounds (overlap, pixels);
      1 when both are empty;
    * ``object_f1``: F1 of objects matched one-to-one at IoU >= ``threshold``
      (:func:`match_instances`); 1 when both are empty;
    * ``count_error``: ``(n_pred - n_true) / n_true`` (signed; ``inf`` when there is no
      true object but some predicted, 0 when neither);
    * ``boundary_distance``: the mean distance in pixels from each pixel on the outline of
      one foreground to the nearest outline pixel of the other, over both outlines (the
      average symmetric surface distance, a boundary measure); 0 when both are empty,
      ``inf`` when only one is;
    * ``hausdorff``: the largest distance in pixels from a foreground pixel of one mask to
      the nearest of the other (:func:`skimage.metrics.hausdorff_distance`; a worst case),
      the largest over the images; 0 when both are empty, ``inf`` when only one is.

    With ``axes="ZYX"`` each item is a volume ``(Z, Y, X)``: pixels become voxels and
    distances are in voxels (of the Z, Y and X steps alike).

    Examples
    --------
    >>> t = np.zeros((8, 8), int); t[1:4, 1:4] = 1; t[5:8, 5:8] = 2
    >>> p = np.where(t > 0, 1, 0)                      # right pixels, one object too few
    >>> {k: round(v, 3) for k, v in metric_panel([t], [p]).items()}
    {'pixel_dice': 1.0, 'object_f1': 0.667, 'count_error': -0.5, 'boundary_distance': 0.0,
     'hausdorff': 0.0}
    """
    from skimage.metrics import hausdorff_distance
    from skimage.segmentation import find_boundaries

    if isinstance(true_labels, np.ndarray) and true_labels.ndim == spatial_ndim(axes):
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
        t, p = check_labels(t, axes=axes), check_labels(p, axes=axes)
        m = match_instances(t, p, threshold=threshold, axes=axes)
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


def f1_at(true_labels, pred_labels, *, threshold: float = 0.5,
          axes: str | None = None) -> float:
    """F1 of a dataset at one IoU threshold, counts pooled over the images.

    Examples
    --------
    >>> t = np.zeros((6, 6), int); t[:3, :3] = 1; t[3:, 3:] = 2
    >>> round(f1_at([t, t], [t, np.zeros_like(t)]), 3)
    0.667
    """
    return match_dataset(true_labels, pred_labels, thresholds=[threshold],
                         axes=axes)[0]["f1"]


def f1_from_counts(tp, fp, fn):
    """F1 = 2 TP / (2 TP + FP + FN) from counts, element-wise for arrays of counts.

    Used to score many settings at once from counts pooled over images; with no object
    at all the result is 0 here (use :func:`matching_scores` for the conventions).

    Examples
    --------
    >>> f1_from_counts(np.array([8, 0]), np.array([2, 0]), np.array([2, 0])).tolist()
    [0.8, 0.0]
    """
    tp, fp, fn = (np.asarray(v) for v in (tp, fp, fn))
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)
