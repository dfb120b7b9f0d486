"""A volume as a stack of planes: how far apart they lie, and nuclei segmented plane by plane.

The planes of a volume ``(Z, Y, X)`` are often further apart than its pixels:
:func:`anisotropy_from_labels` reads the voxels' size along ``(Z, Y, X)`` from the nuclei
of an instance mask (nuclei are about round in the sample). A 2D network can segment a
volume plane by plane: :func:`label_planes` runs any 2D segmenter on each plane, and
:func:`join_planes` joins the planes' nuclei across Z by their overlap
(:func:`~dlbio_teach.tuning.tune_join_planes` chooses its ``min_overlap``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from skimage import measure  # noqa: F401 (the example of label_planes uses it)

from .preprocessing import check_image, check_labels

__all__ = ["anisotropy_from_labels", "label_planes", "join_planes"]


def anisotropy_from_labels(labels) -> tuple:
    """The voxels' anisotropy read from the nuclei of a volume's instance mask ``(Z, Y, X)``.

    Nuclei are about as long along Z as along Y and X in space; a volume whose planes are
    far apart shows them flat. The median extent of the nuclei along each axis (their
    bounding boxes), divided into the largest of the three, gives the size of a voxel
    along ``(Z, Y, X)`` relative to the finest axis: StarDist's recipe
    (``max(extents) / extents``).

    Examples
    --------
    >>> lab = np.zeros((8, 20, 20), int); lab[2:5, 2:8, 2:8] = 1; lab[3:6, 10:16, 9:15] = 2
    >>> anisotropy_from_labels(lab)
    (2.0, 1.0, 1.0)
    """
    labels = check_labels(labels, axes="ZYX")
    boxes = [box for box in ndi.find_objects(labels) if box is not None]
    if not boxes:
        raise ValueError("labels has no objects: the anisotropy is read from the nuclei's "
                         "extents; pass a mask with some.")
    extents = np.median([[s.stop - s.start for s in box] for box in boxes], axis=0)
    return tuple(float(v) for v in extents.max() / extents)


def label_planes(volume, segment_plane) -> np.ndarray:
    """Segment each plane of a volume ``(Z, Y, X)`` on its own: instance labels per plane.

    ``segment_plane(plane)`` is any 2D segmenter (a plane ``(Y, X)`` in, its labels out),
    e.g. ``lambda p: segment(model, p, formulation=..., thresholds=...)`` for a network
    trained on images. The planes' ids are their own: join the planes' nuclei with
    :func:`join_planes`.

    Examples
    --------
    >>> vol = np.zeros((3, 8, 8)); vol[:, 2:6, 2:6] = 1
    >>> planes = label_planes(vol, lambda p: measure.label(p > 0.5))
    >>> planes.shape, planes[:, 3, 3].tolist()
    ((3, 8, 8), [1, 1, 1])
    """
    volume = check_image(volume, name="volume", axes="ZYX")
    out = np.zeros(volume.shape, np.int32)
    for z, plane in enumerate(volume):
        labels = check_labels(segment_plane(plane), name=f"the labels of plane {z}")
        if labels.shape != plane.shape:
            raise ValueError(f"segment_plane gave labels of shape {labels.shape} for plane {z} "
                             f"of shape {plane.shape}; it must label the plane it is given.")
        out[z] = labels
    return out


def _continuations(previous: np.ndarray, plane: np.ndarray, min_overlap: float) -> dict:
    """``{id in plane: id in previous}`` for the objects of ``plane`` that continue one of
    ``previous``: one-to-one (Hungarian), overlapping at least ``min_overlap`` of the
    smaller of the two."""
    both = (previous > 0) & (plane > 0)
    if not both.any():
        return {}
    pairs, counts = np.unique(np.stack([previous[both], plane[both]]), axis=1,
                              return_counts=True)
    before, rows = np.unique(pairs[0], return_inverse=True)
    after, cols = np.unique(pairs[1], return_inverse=True)
    shared = np.zeros((len(before), len(after)))
    shared[rows, cols] = counts
    smaller = np.minimum(np.bincount(previous.ravel())[before][:, None],
                         np.bincount(plane.ravel())[after][None, :])
    overlap = shared / smaller
    rows, cols = linear_sum_assignment(-overlap)
    keep = overlap[rows, cols] >= min_overlap
    return {int(after[c]): int(before[r]) for r, c in zip(rows[keep], cols[keep])}


def join_planes(plane_labels, *, min_overlap: float = 0.5) -> np.ndarray:
    """Join the nuclei of consecutive planes into 3D nuclei: labels ``(Z, Y, X)``.

    ``plane_labels`` holds each plane's own instance labels (:func:`label_planes`), their
    ids unrelated from plane to plane. Going up the stack, each object of a plane is
    matched to at most one object of the plane below, one-to-one, by the Hungarian
    algorithm (:func:`scipy.optimize.linear_sum_assignment`) on their overlap: the
    fraction of the *smaller* of the two that lies in the other. A pair overlapping at
    least ``min_overlap`` is one nucleus; an object left unmatched starts a new one.

    The overlap is measured on the smaller section rather than as their IoU because a
    nucleus's sections shrink towards its top and bottom: a small cap lies inside the
    section below it (overlap near 1) although their IoU is low. Two neighbours that
    merely touch overlap little. Choose ``min_overlap`` on validation volumes
    (:func:`~dlbio_teach.tuning.tune_join_planes`). A nucleus missed in one plane is cut
    in two: planes are only joined to the next.

    Examples
    --------
    >>> planes = np.zeros((3, 6, 12), int)
    >>> planes[0, 1:5, 1:5] = 4; planes[1, 1:5, 2:6] = 9; planes[2, 1:5, 7:11] = 2
    >>> joined = join_planes(planes)
    >>> joined[:, 2, 3].tolist(), int(joined[2, 2, 8])
    ([1, 1, 0], 2)
    """
    planes = check_labels(plane_labels, name="plane_labels", axes="ZYX")
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], the fraction of the smaller "
                         f"section that overlaps the other; got {min_overlap}.")
    out = np.zeros(planes.shape, np.int32)
    n_objects = 0
    for z, plane in enumerate(planes):
        ids = np.unique(plane[plane > 0])
        joined = _continuations(out[z - 1], plane, min_overlap) if z else {}
        lookup = np.zeros(int(plane.max()) + 1, np.int32)
        for i in ids:
            if i not in joined:
                n_objects += 1
                joined[i] = n_objects
            lookup[i] = joined[i]
        out[z] = lookup[plane]
    return out
