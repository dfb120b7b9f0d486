"""Metrics, each defined once: image quality for restoration, object matching for
instance segmentation.

PSNR and SSIM come from ``skimage.metrics`` with an explicit ``data_range``: without it,
scikit-image guesses the range from the dtype, and two tools reporting "PSNR" disagree.
Before scoring, a prediction can be affinely rescaled to the target (least squares), as
CARE and ZeroCostDL4Mic do, so that a method is not penalised for an offset or gain that
any display would remove.
"""
from __future__ import annotations

import numpy as np
from skimage import metrics as skm

from .preprocessing import check_image, check_labels

__all__ = ["rescale_affine", "psnr", "ssim", "restoration_scores", "iou_matrix",
           "match_instances", "matching_scores", "match_dataset", "merges_and_splits"]


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


# --- Instance segmentation: one-to-one matching of objects ---------------------------
#
# Names as in the literature (StarDist's matching, the 2018 Data Science Bowl, Kirillov et
# al.'s panoptic quality): a true object and a predicted object *match* when the Hungarian
# assignment pairs them and their IoU is at least the threshold. Each matched pair is a
# true positive (TP); unmatched predictions are false positives (FP), unmatched true
# objects false negatives (FN). Then
#   precision = TP / (TP + FP),  recall = TP / (TP + FN),  F1 = 2TP / (2TP + FP + FN),
#   accuracy = TP / (TP + FP + FN)   (the DSB2018 score, also called "average precision"),
#   mean_matched_iou = mean IoU over the TP pairs,
#   panoptic_quality = sum of TP IoUs / (TP + FP/2 + FN/2).
# With no true and no predicted object there is nothing to get wrong: the ratios are 1
# and the mean matched IoU is NaN (no pair to average), stated rather than guessed.


def _label_pair(true_labels, pred_labels):
    t = check_labels(true_labels, name="true_labels")
    p = check_labels(pred_labels, name="pred_labels")
    if t.shape != p.shape:
        raise ValueError(f"true {t.shape} and predicted {p.shape} labels differ in shape.")
    return t, p


def iou_matrix(true_labels, pred_labels):
    """IoU of every true object (rows) with every predicted object (columns).

    Returns ``(iou, true_ids, pred_ids)``; labels need not be consecutive.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 0]]); p = np.array([[1, 0, 0, 0]])
    >>> iou, _, _ = iou_matrix(t, p)
    >>> iou.tolist()
    [[0.5]]
    """
    t, p = _label_pair(true_labels, pred_labels)
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


def match_instances(true_labels, pred_labels, *, threshold: float = 0.5) -> dict:
    """Match objects one-to-one (Hungarian on IoU) and count TP, FP and FN.

    Returns a dict with ``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred``, ``sum_iou`` (of the
    matched pairs), the scores of :func:`matching_scores`, and ``pairs``:
    ``(true_id, pred_id, iou)`` for each match.

    Examples
    --------
    >>> t = np.zeros((6, 6), int); t[:3, :3] = 1; t[3:, 3:] = 2
    >>> p = np.zeros((6, 6), int); p[:3, :3] = 5
    >>> m = match_instances(t, p)
    >>> m["tp"], m["fp"], m["fn"], m["f1"]
    (1, 0, 1, 0.6666666666666666)
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}.")
    from scipy.optimize import linear_sum_assignment

    iou, true_ids, pred_ids = iou_matrix(true_labels, pred_labels)
    pairs = []
    if iou.size:
        # Maximise the total IoU; pairs below the threshold cannot match.
        rows, cols = linear_sum_assignment(-np.where(iou >= threshold, iou, 0.0))
        pairs = [(int(true_ids[r]), int(pred_ids[c]), float(iou[r, c]))
                 for r, c in zip(rows, cols) if iou[r, c] >= threshold]
    counts = {"tp": len(pairs), "fp": len(pred_ids) - len(pairs),
              "fn": len(true_ids) - len(pairs), "n_true": len(true_ids),
              "n_pred": len(pred_ids), "sum_iou": float(sum(p[2] for p in pairs))}
    return {**counts, **matching_scores(**counts), "threshold": threshold, "pairs": pairs}


def matching_scores(*, tp: int, fp: int, fn: int, sum_iou: float, **_) -> dict:
    """Precision, recall, F1, accuracy, mean matched IoU and panoptic quality from counts.

    Pool counts over images first (sum ``tp``, ``fp``, ``fn``, ``sum_iou``) to score a
    dataset; averaging per-image scores weighs a crowded image like an empty one.

    Examples
    --------
    >>> matching_scores(tp=8, fp=2, fn=2, sum_iou=6.4)["accuracy"]
    0.6666666666666666
    """
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0,
                "mean_matched_iou": float("nan"), "panoptic_quality": 1.0}
    return {"precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn),
            "accuracy": tp / (tp + fp + fn),
            "mean_matched_iou": sum_iou / tp if tp else float("nan"),
            "panoptic_quality": sum_iou / (tp + fp / 2 + fn / 2)}


def match_dataset(true_labels, pred_labels, *, thresholds=(0.5,)) -> list[dict]:
    """Score a dataset at each IoU threshold: counts pooled over its images, then scores.

    Parameters
    ----------
    true_labels, pred_labels : sequence of ndarray ``(Y, X)``
        Ground truth and prediction of each image, in the same order.
    thresholds : sequence of float
        IoU thresholds, e.g. ``np.arange(0.5, 1.0, 0.05)`` for the DSB2018 range.

    Returns
    -------
    list of dict
        One per threshold: ``threshold``, the pooled ``tp``, ``fp``, ``fn``, ``sum_iou``,
        ``n_images`` and the scores of :func:`matching_scores`.

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
    pairs = [_label_pair(t, p) for t, p in zip(true_labels, pred_labels)]
    rows = []
    for threshold in thresholds:
        counts = {"tp": 0, "fp": 0, "fn": 0, "sum_iou": 0.0}
        for t, p in pairs:
            m = match_instances(t, p, threshold=float(threshold))
            for key in counts:
                counts[key] += m[key]
        rows.append({"threshold": float(threshold), "n_images": len(pairs), **counts,
                     **matching_scores(**counts)})
    return rows


def merges_and_splits(true_labels, pred_labels, *, cover: float = 0.5) -> dict:
    """Count merges and splits, the two errors an IoU threshold cannot tell apart.

    A *merge* is a predicted object that holds more than ``cover`` of the pixels of two or
    more true objects; a *split* is a true object that holds more than ``cover`` of the
    pixels of two or more predicted objects.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2, 2]]); p = np.array([[7, 7, 7, 7, 7]])
    >>> merges_and_splits(t, p)
    {'merges': 1, 'splits': 0}
    """
    t, p = _label_pair(true_labels, pred_labels)

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
