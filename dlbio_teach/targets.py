"""Training targets made from instance masks, and instances read back from predicted ones.

A network cannot output instance labels (their numbers mean nothing); it learns a map made
from the instance mask, from which the instances are read back. Each target here comes
with its way back:

* :func:`three_class_targets`: background / interior / boundary, the U-Net's classes (the
  boundary class keeps touching nuclei apart), with :func:`class_weights` for a loss that
  does not neglect the thin boundary class; back with :func:`instances_from_interior`:
  seeds are the connected regions of the predicted interior, grown over the foreground.
* :func:`distance_targets`: a regression target, 1 at the centre of every nucleus and
  falling to 0 at its edge; back with :func:`instances_from_distance`: seeds are where it
  is high.

StarDist's polygons, the third formulation, are in :mod:`dlbio_teach.star`;
:func:`~dlbio_teach.segmentation.training_targets` and
:func:`~dlbio_teach.segmentation.instances_from_maps` take any of the three by name.
Volumes ``(Z, Y, X)`` take the same functions with ``axes="ZYX"``, the distances measured
with the voxels' ``anisotropy`` along ``(Z, Y, X)``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, segmentation

from .preprocessing import check_image, check_labels
from .star import check_anisotropy

__all__ = ["BACKGROUND", "INTERIOR", "BOUNDARY", "three_class_targets", "class_weights",
           "instances_from_interior", "distance_targets", "instances_from_distance"]

#: The classes of the three-class targets.
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def three_class_targets(labels, *, axes: str | None = None) -> np.ndarray:
    """Classes per pixel: 0 background, 1 object interior, 2 object boundary.

    The boundary is the inner one-pixel rim of each object, so that touching objects are
    separated by their boundaries in the target. A volume ``(Z, Y, X)`` (``axes="ZYX"``)
    gets a one-voxel rim, its top and bottom planes included.

    Examples
    --------
    >>> lab = np.zeros((6, 6), int); lab[1:5, 1:5] = 1
    >>> three_class_targets(lab)[1:5, 1:5].tolist()
    [[2, 2, 2, 2], [2, 1, 1, 2], [2, 1, 1, 2], [2, 2, 2, 2]]
    """
    labels = check_labels(labels, axes=axes)
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


def instances_from_interior(interior, foreground=None, *, threshold: float = 0.5,
                            min_size: int = 10, axes: str | None = None) -> np.ndarray:
    """Label nuclei from a predicted interior probability ``(Y, X)`` (or ``(Z, Y, X)``
    with ``axes="ZYX"``).

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
    interior = check_image(interior, name="interior", axes=axes)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    seeds = measure.label(interior > threshold)
    small = np.bincount(seeds.ravel()) < min_size
    small[0] = False
    seeds[small[seeds]] = 0
    mask = seeds > 0 if foreground is None else (np.asarray(foreground, bool) | (seeds > 0))
    labels = segmentation.watershed(-interior, seeds, mask=mask)
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def distance_targets(labels, *, axes: str | None = None, anisotropy=None) -> np.ndarray:
    """Distance to the object's edge, divided by its maximum within each object.

    Every nucleus, small or large, gets 1 at its centre and falls towards 0 at its edge;
    background is 0. Touching nuclei are separated by a valley, so thresholding a predicted
    map high gives one seed per nucleus. Per-object normalisation is the choice of this
    course (it keeps small nuclei's seeds); unnormalised distances are also used. A volume
    ``(Z, Y, X)`` (``axes="ZYX"``) gets the 3D distance, measured with voxels of size
    ``anisotropy`` along ``(Z, Y, X)`` (``None``: cubic voxels).

    Examples
    --------
    >>> lab = np.zeros((7, 7), int); lab[1:6, 1:6] = 1
    >>> d = distance_targets(lab)
    >>> [round(float(v), 2) for v in d[3, 1:6]], float(d[0, 0])
    ([0.33, 0.67, 1.0, 0.67, 0.33], 0.0)
    """
    labels = check_labels(labels, axes=axes)
    anisotropy = check_anisotropy(anisotropy, axes)
    unpad = (slice(1, -1),) * labels.ndim
    out = np.zeros(labels.shape, np.float32)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == i
        # Pad so that an object touching the image border still falls to 0 there.
        distance = ndi.distance_transform_edt(np.pad(inside, 1), sampling=anisotropy)[unpad]
        out[box][inside] = distance[inside] / distance.max()
    return out


def instances_from_distance(distance, *, seed_threshold: float = 0.5,
                            foreground_threshold: float = 0.1, min_size: int = 10,
                            axes: str | None = None) -> np.ndarray:
    """Label nuclei from a predicted :func:`distance_targets` map ``(Y, X)`` (or
    ``(Z, Y, X)`` with ``axes="ZYX"``).

    Seeds are the connected regions of ``distance > seed_threshold`` (the nuclei's
    centres); a watershed on the distance grows them over ``distance >
    foreground_threshold``. Choose both thresholds on validation images.

    Examples
    --------
    >>> lab = np.zeros((10, 21), int); lab[1:9, 1:10] = 1; lab[1:9, 10:19] = 2
    >>> int(instances_from_distance(distance_targets(lab)).max())
    2
    """
    distance = check_image(distance, name="distance", axes=axes)
    if not 0 <= foreground_threshold < seed_threshold < 1:
        raise ValueError("need 0 <= foreground_threshold < seed_threshold < 1, got "
                         f"{foreground_threshold} and {seed_threshold}.")
    return instances_from_interior(np.clip(distance, 0, 1), distance > foreground_threshold,
                                   threshold=seed_threshold, min_size=min_size, axes=axes)
