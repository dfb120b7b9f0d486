"""Scoring a classifier when one class is rare, and a baseline on measured features.

With 5 % of one class, a classifier that always answers "common" is 95 % accurate. The
scores that see through that are the *recall* of each class (the share of its members
found) and their mean, the *balanced accuracy*. :func:`class_report` gives both, each
recall with a Wilson interval (``proportion_ci`` of :func:`scipy.stats.binomtest`), and the
confusion matrix. :func:`measured_features` and :func:`logistic_regression` are the
baseline every network should beat: a few numbers measured on each crop (what
CellProfiler-style pipelines measure), and one neuron trained on them, written out as in
chapter 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi
from scipy import stats
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

__all__ = ["ClassReport", "class_report", "confusion_matrix", "FEATURES", "measured_features",
           "logistic_regression"]


def confusion_matrix(true_classes, predicted_classes, *, n_classes: int | None = None):
    """Counts ``(n_classes, n_classes)``: row = true class, column = predicted class.

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1]).tolist()
    [[1, 1], [0, 2]]
    """
    true, predicted = _check_classes(true_classes, predicted_classes)
    n = n_classes or int(max(true.max(), predicted.max())) + 1
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


@dataclass(frozen=True)
class ClassReport:
    """Scores of a classifier on one test set.

    Attributes
    ----------
    accuracy : float
        Share of all items classified right.
    balanced_accuracy : float
        Mean of the recalls: each class counts as much, however rare.
    recall : tuple of float
        Per class, the share of its members classified as it.
    recall_low, recall_high : tuple of float
        Wilson interval of each recall (``confidence``).
    support : tuple of int
        Members of each class in the test set: the ``n`` behind each recall.
    confusion : ndarray
        :func:`confusion_matrix` of the test set.
    confidence : float
    """

    accuracy: float
    balanced_accuracy: float
    recall: tuple
    recall_low: tuple
    recall_high: tuple
    support: tuple
    confusion: np.ndarray
    confidence: float

    def recall_text(self, k: int) -> str:
        """``"0.62 [0.45, 0.77] (of 34)"``: class ``k``'s recall, interval and support."""
        return (f"{self.recall[k]:.2f} [{self.recall_low[k]:.2f}, {self.recall_high[k]:.2f}] "
                f"(of {self.support[k]})")


def class_report(true_classes, predicted_classes, *, n_classes: int | None = None,
                 confidence: float = 0.95) -> ClassReport:
    """Accuracy, balanced accuracy and each class's recall with its interval.

    A recall is a proportion of the class's members, so its interval is a binomial one
    (Wilson's), and it is wide where the class is rare: 20 members cannot pin a recall
    down to better than about +-0.2.

    Examples
    --------
    >>> report = class_report([0] * 95 + [1] * 5, [0] * 100)   # always "common"
    >>> report.accuracy, report.balanced_accuracy, report.recall
    (0.95, 0.5, (1.0, 0.0))
    >>> report.recall_text(1)
    '0.00 [0.00, 0.43] (of 5)'
    """
    counts = confusion_matrix(true_classes, predicted_classes, n_classes=n_classes)
    support = counts.sum(axis=1)
    if np.any(support == 0):
        missing = np.flatnonzero(support == 0).tolist()
        raise ValueError(f"classes {missing} have no member in the test set: their recall is "
                         "undefined; pass n_classes only up to the classes present, or test "
                         "on a set that holds every class.")
    recall, low, high = [], [], []
    for k in range(len(counts)):
        found = int(counts[k, k])
        interval = stats.binomtest(found, int(support[k])).proportion_ci(
            confidence_level=confidence, method="wilson")
        recall.append(found / int(support[k]))
        low.append(max(0.0, float(interval.low)))
        high.append(min(1.0, float(interval.high)))
    return ClassReport(accuracy=float(np.trace(counts) / counts.sum()),
                       balanced_accuracy=float(np.mean(recall)), recall=tuple(recall),
                       recall_low=tuple(low), recall_high=tuple(high),
                       support=tuple(int(s) for s in support), confusion=counts,
                       confidence=confidence)


def _check_classes(true_classes, predicted_classes):
    true = np.asarray(true_classes)
    predicted = np.asarray(predicted_classes)
    if true.shape != predicted.shape or true.ndim != 1 or len(true) == 0:
        raise ValueError(f"true and predicted classes must be two 1D arrays of the same "
                         f"length, got shapes {true.shape} and {predicted.shape}.")
    for name, values in (("true", true), ("predicted", predicted)):
        if not np.issubdtype(values.dtype, np.integer) or values.min() < 0:
            raise ValueError(f"{name} classes must be integers 0, 1, ... (class indices); "
                             f"got dtype {values.dtype}. Convert scores with argmax first.")
    return true.astype(np.int64), predicted.astype(np.int64)


#: The names of the columns of :func:`measured_features`, in order.
FEATURES = ("area", "mean intensity", "eccentricity", "solidity")


def measured_features(crops) -> np.ndarray:
    """The ``FEATURES`` of each crop's foreground ``(N, 4)``.

    The foreground is the crop above its Otsu threshold, after a light smoothing; area
    is in pixels, eccentricity and solidity (area over convex-hull area) describe its
    shape, all objects of the crop together, as a pipeline measuring one cell would.

    Examples
    --------
    >>> crop = np.zeros((1, 24, 24), np.float32); crop[0, 8:16, 8:16] = 1
    >>> [round(float(v), 2) for v in measured_features(crop)[0]]   # smoothed: a little larger
    [80.0, 0.8, 0.0, 0.91]
    """
    crops = np.asarray(crops, np.float32)
    if crops.ndim != 3:
        raise ValueError(f"crops must be a stack (N, Y, X), got shape {crops.shape}.")
    features = np.zeros((len(crops), len(FEATURES)), np.float32)
    for i, crop in enumerate(crops):
        smooth = ndi.gaussian_filter(crop, 1.0)
        foreground = smooth > (threshold_otsu(smooth) if np.ptp(smooth) > 0 else np.inf)
        if not foreground.any():
            continue
        region = regionprops(foreground.astype(np.uint8), intensity_image=crop)[0]
        features[i] = (region.area, region.intensity_mean, region.eccentricity,
                       region.solidity)
    return features


def logistic_regression(features, classes, *, balanced: bool = True, steps: int = 2000,
                        lr: float = 0.5):
    """One neuron on standardised features, trained by gradient descent: returns a
    function ``features -> predicted classes (0 or 1)``.

    The neuron of chapter 1, on a few measured numbers instead of pixels. With
    ``balanced``, each class weighs the same in the loss however rare it is (each item
    weighted by the inverse of its class's count), which is what lets a rare class be
    found at all.

    Examples
    --------
    >>> x = np.r_[np.zeros((90, 1)), np.ones((10, 1))] + 0.1 * np.arange(100)[:, None] / 100
    >>> y = np.r_[np.zeros(90), np.ones(10)].astype(int)
    >>> classify = logistic_regression(x, y)
    >>> int((classify(x) == y).sum())
    100
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(classes)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features must be (N, F) with one class per row, got {x.shape} "
                         f"and {y.shape}.")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError("logistic_regression separates two classes, 0 and 1; both must be "
                         f"present, got {np.unique(y).tolist()}.")
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y.astype(np.float64))
    counts = np.bincount(y, minlength=2)
    weight = torch.from_numpy(np.where(y == 1, len(y) / (2 * counts[1]),
                                       len(y) / (2 * counts[0])) if balanced
                              else np.ones(len(y)))
    w, b = torch.zeros(x.shape[1], dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        p = torch.sigmoid(xt @ w + b)
        w = w - lr * xt.T @ (weight * (p - yt)) / len(yt)   # the gradient of chapter 1,
        b = b - lr * (weight * (p - yt)).mean()             # each item weighted

    def classify(new_features):
        z = (np.asarray(new_features, np.float64) - mean) / std
        return (torch.from_numpy(z) @ w + b > 0).numpy().astype(np.int64)

    return classify
