"""Instance segmentation of nuclei: a classical baseline and the U-Net's three classes.

* :func:`otsu_watershed`, the baseline every network must beat: Otsu's threshold, then a
  watershed on the distance transform to split touching nuclei (scikit-image).
* :func:`three_class_targets`: background / interior / boundary from an instance mask, the
  training target of the U-Net (the boundary class keeps touching nuclei apart).
* :func:`instances_from_interior`: from the predicted interior probability back to
  labelled nuclei, seeded by the connected interior regions and grown over the foreground.
* :func:`distance_targets`: the second formulation, a regression target that is 1 at the
  centre of every nucleus and falls to 0 at its edge; seeds are where it is high.
* :func:`label_tiles_separately`: what *not* to do on a large image (label each tile on
  its own), kept to show the seams it makes.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import feature, filters, measure, morphology, segmentation

from .preprocessing import check_image, check_labels

__all__ = ["BACKGROUND", "INTERIOR", "BOUNDARY", "three_class_targets", "class_weights",
           "otsu_watershed", "instances_from_interior", "distance_targets",
           "instances_from_distance", "label_tiles_separately"]

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
    small = np.bincount(seeds.ravel()) < min_size
    small[0] = False
    seeds[small[seeds]] = 0
    mask = seeds > 0 if foreground is None else (np.asarray(foreground, bool) | (seeds > 0))
    labels = segmentation.watershed(-interior, seeds, mask=mask)
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def distance_targets(labels) -> np.ndarray:
    """Distance to the object's edge, divided by its maximum within each object.

    Every nucleus, small or large, gets 1 at its centre and falls towards 0 at its edge;
    background is 0. Touching nuclei are separated by a valley, so thresholding a predicted
    map high gives one seed per nucleus. Per-object normalisation is the choice of this
    course (it keeps small nuclei's seeds); unnormalised distances are also used.

    Examples
    --------
    >>> lab = np.zeros((7, 7), int); lab[1:6, 1:6] = 1
    >>> d = distance_targets(lab)
    >>> [round(float(v), 2) for v in d[3, 1:6]], float(d[0, 0])
    ([0.33, 0.67, 1.0, 0.67, 0.33], 0.0)
    """
    labels = check_labels(labels)
    out = np.zeros(labels.shape, np.float32)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == i
        # Pad so that an object touching the image border still falls to 0 there.
        distance = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        out[box][inside] = distance[inside] / distance.max()
    return out


def instances_from_distance(distance, *, seed_threshold: float = 0.5,
                            foreground_threshold: float = 0.1,
                            min_size: int = 10) -> np.ndarray:
    """Label nuclei from a predicted :func:`distance_targets` map ``(Y, X)``.

    Seeds are the connected regions of ``distance > seed_threshold`` (the nuclei's
    centres); a watershed on the distance grows them over ``distance >
    foreground_threshold``. Choose both thresholds on validation images.

    Examples
    --------
    >>> lab = np.zeros((10, 21), int); lab[1:9, 1:10] = 1; lab[1:9, 10:19] = 2
    >>> int(instances_from_distance(distance_targets(lab)).max())
    2
    """
    distance = check_image(distance, name="distance")
    if not 0 <= foreground_threshold < seed_threshold < 1:
        raise ValueError("need 0 <= foreground_threshold < seed_threshold < 1, got "
                         f"{foreground_threshold} and {seed_threshold}.")
    return instances_from_interior(np.clip(distance, 0, 1), distance > foreground_threshold,
                                   threshold=seed_threshold, min_size=min_size)


def label_tiles_separately(image, segment, *, tile_size: int) -> np.ndarray:
    """Segment each tile of ``image`` on its own with ``segment`` and paste the labels.

    The naive way to process a large image, shown in the course to count the nuclei it
    cuts in two at tile borders. Instead, predict the probability map with overlapping
    tiles (:func:`dlbio_teach.prediction.predict` with ``tile_size``) and label the whole
    map once.

    Examples
    --------
    >>> img = np.zeros((8, 8)); img[2:6, 2:6] = 1
    >>> seg = lambda tile: measure.label(tile > 0.5)
    >>> int(label_tiles_separately(img, seg, tile_size=4).max())
    4
    """
    image = check_image(image)
    out = np.zeros(image.shape, np.int32)
    offset = 0
    for y in range(0, image.shape[0], tile_size):
        for x in range(0, image.shape[1], tile_size):
            tile_labels = np.asarray(segment(image[y:y + tile_size, x:x + tile_size]))
            tile_labels = segmentation.relabel_sequential(tile_labels)[0]
            out[y:y + tile_size, x:x + tile_size] = np.where(tile_labels > 0,
                                                             tile_labels + offset, 0)
            offset += int(tile_labels.max())
    return out
