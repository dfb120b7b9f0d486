"""Instance segmentation of nuclei: a classical baseline and the U-Net's three classes.

* :func:`otsu_watershed`, the baseline every network must beat: Otsu's threshold, then a
  watershed on the distance transform to split touching nuclei (scikit-image).
* :func:`three_class_targets`: background / interior / boundary from an instance mask, the
  training target of the U-Net (the boundary class keeps touching nuclei apart).
* :func:`instances_from_interior`: from the predicted interior probability back to
  labelled nuclei, seeded by the connected interior regions and grown over the foreground.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import feature, filters, measure, morphology, segmentation

from .preprocessing import check_image, check_labels

__all__ = ["BACKGROUND", "INTERIOR", "BOUNDARY", "three_class_targets", "class_weights",
           "otsu_watershed", "instances_from_interior"]

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def three_class_targets(labels) -> np.ndarray:
    """Classes per pixel: 0 background, 1 object interior, 2 object boundary.

    The boundary is the inner one-pixel rim of each object, so that touching objects are
    separated by their boundaries in the target.

    Examples
    --------
    >>> lab = np.zeros((6, 6), int); lab[1:5, 1:5] = 1
    >>> three_class_targets(lab)[1:5, 1:5].tolist()
    [[2, 2, 2, 2], [2, 1, 1, 2], [2, 1, 1, 2], [2, 2, 2, 2]]
    """
    labels = check_labels(labels)
    target = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.int64)
    target[segmentation.find_boundaries(labels, mode="inner") & (labels > 0)] = BOUNDARY
    return target


def class_weights(targets, n_classes: int = 3) -> np.ndarray:
    """Inverse-frequency class weights, normalised to mean 1, for a weighted loss.

    Examples
    --------
    >>> [round(float(w), 2) for w in class_weights(np.array([0, 0, 0, 1, 2, 2]))]
    [0.55, 1.64, 0.82]
    """
    counts = np.bincount(np.asarray(targets).ravel(), minlength=n_classes).astype(float)
    if np.any(counts == 0):
        raise ValueError(f"a class is absent from the targets (counts {counts.tolist()}); "
                         "use more training images.")
    weights = counts.sum() / counts
    return (weights / weights.mean()).astype(np.float32)


def otsu_watershed(image, *, min_distance: int = 8, min_size: int = 10) -> np.ndarray:
    """Classical nuclei segmentation: Otsu threshold, distance-transform watershed.

    Parameters
    ----------
    image : ndarray ``(Y, X)``
        Nuclei bright on a dark background.
    min_distance : int
        Smallest distance between two nucleus centres (peaks of the distance transform);
        too small splits nuclei, too large merges them: choose it on validation images.
    min_size : int
        Objects smaller than this many pixels are removed.

    Examples
    --------
    >>> img = np.zeros((20, 40)); img[5:15, 5:15] = 1; img[5:15, 25:35] = 1
    >>> int(otsu_watershed(img).max())
    2
    """
    image = check_image(image)
    foreground = image > filters.threshold_otsu(image)
    foreground = morphology.remove_small_objects(foreground, max_size=min_size - 1)
    distance = ndi.distance_transform_edt(foreground)
    peaks = feature.peak_local_max(distance, min_distance=min_distance,
                                   labels=measure.label(foreground), exclude_border=False)
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-distance, markers, mask=foreground)
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def instances_from_interior(interior, foreground=None, *, threshold: float = 0.5,
                            min_size: int = 10) -> np.ndarray:
    """Label nuclei from a predicted interior probability ``(Y, X)``.

    Connected regions of ``interior > threshold`` are the seeds; each is grown by a
    watershed over ``foreground`` (e.g. interior + boundary probability > 0.5), so that
    the boundary pixels go to the nearest nucleus. Choose ``threshold`` on validation
    images.

    Examples
    --------
    >>> p = np.zeros((10, 20)); p[2:8, 2:8] = 0.9; p[2:8, 12:18] = 0.9
    >>> int(instances_from_interior(p, min_size=4).max())
    2
    """
    interior = check_image(interior, name="interior")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    seeds = measure.label(interior > threshold)
    seeds = morphology.remove_small_objects(seeds, max_size=min_size - 1)
    mask = seeds > 0 if foreground is None else (np.asarray(foreground, bool) | (seeds > 0))
    labels = segmentation.watershed(-interior, seeds, mask=mask)
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)
