"""The classical baseline of nuclei segmentation: Otsu's threshold, then a watershed.

:func:`otsu_watershed` is the baseline every network of the course must beat: the pixels
brighter than Otsu's threshold are the foreground, and a watershed on its distance
transform, seeded at the distance's maxima (the nuclei's centres), splits touching nuclei
(scikit-image). It has two settings, ``min_distance`` between two centres and
``min_size`` of a nucleus; :func:`~dlbio_teach.tuning.tune_otsu_watershed` chooses them
on validation images, as the networks' thresholds are chosen.

A volume ``(Z, Y, X)`` takes the same call with ``axes="ZYX"``: Otsu's threshold of all
its voxels, the distance transform and the watershed in 3D, the distances measured with
the voxels' ``anisotropy`` (their size along Z, Y and X;
:func:`~dlbio_teach.planes.anisotropy_from_labels` reads it from the nuclei).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage import feature, filters, measure, segmentation

from .preprocessing import check_image
from .star import check_anisotropy

__all__ = ["otsu_watershed"]


def _centres(distance, foreground, min_distance: int, anisotropy) -> np.ndarray:
    """Watershed markers: maxima of ``distance`` at least ``min_distance`` apart.

    With voxels of size ``anisotropy`` the distance is measured in those units (fewer
    voxels along a coarse axis): of the maxima of such windows, the highest is kept and
    any other of its object within its window dropped, as ``peak_local_max`` does with
    cubic windows."""
    regions = measure.label(foreground)

    def peaks(**window):   # (0, 2) when there are none, whatever the axes: reshape
        return feature.peak_local_max(distance, labels=regions, exclude_border=False,
                                      **window).reshape(-1, distance.ndim)

    if anisotropy is None:
        found = peaks(min_distance=min_distance)
    else:
        radii = np.array([max(1, round(min_distance / a)) for a in anisotropy])
        found = peaks(footprint=np.ones(2 * radii + 1, bool))
        found = found[np.argsort(-distance[tuple(found.T)], kind="stable")]
        region = regions[tuple(found.T)]
        near = cKDTree(found / radii).query_ball_point(found / radii, r=1, p=np.inf)
        dropped = np.zeros(len(found), bool)
        for i, others in enumerate(near):
            if not dropped[i]:
                dropped[[j for j in others if j > i and region[j] == region[i]]] = True
        found = found[~dropped]
    markers = np.zeros(distance.shape, np.int32)
    markers[tuple(found.T)] = np.arange(1, len(found) + 1)
    return markers


def otsu_watershed(image, *, min_distance: int = 8, min_size: int = 10,
                   axes: str | None = None, anisotropy=None) -> np.ndarray:
    """Classical nuclei segmentation: Otsu threshold, distance-transform watershed.

    Parameters
    ----------
    image : ndarray ``(Y, X)``, or ``(Z, Y, X)`` with ``axes="ZYX"``
        Nuclei bright on a dark background.
    min_distance : int
        Smallest distance between two nucleus centres (peaks of the distance transform);
        too small splits nuclei, too large merges them: choose it on validation images.
    min_size : int
        Objects smaller than this many pixels (voxels) are removed.
    axes : {None, "YX", "ZYX"}
        ``"ZYX"`` for a volume: Otsu's threshold of all its voxels, the distance transform
        and the watershed in 3D.
    anisotropy : tuple of 3 float, optional
        For a volume, the voxel size along ``(Z, Y, X)`` (relative: ``(2, 1, 1)`` when the
        planes are twice as far apart as the pixels). Distances, ``min_distance`` among
        them, are then measured in these units, so a nucleus that is round in space has
        its peak at its centre. ``None``: cubic voxels.

    Examples
    --------
    >>> img = np.zeros((20, 40)); img[5:15, 5:15] = 1; img[5:15, 25:35] = 1
    >>> int(otsu_watershed(img).max())
    2
    >>> vol = np.zeros((8, 20, 40)); vol[2:6, 5:15, 5:15] = 1; vol[2:6, 5:15, 25:35] = 1
    >>> int(otsu_watershed(vol, axes="ZYX", anisotropy=(2, 1, 1), min_distance=4).max())
    2
    """
    image = check_image(image, axes=axes)
    anisotropy = check_anisotropy(anisotropy, axes)
    foreground = image > filters.threshold_otsu(image)
    # Drop specks (4-connected regions under min_size pixels); written out rather than
    # remove_small_objects, whose keyword changed in scikit-image 0.26.
    regions = measure.label(foreground, connectivity=1)
    foreground = np.bincount(regions.ravel())[regions] >= min_size
    foreground &= regions > 0
    distance = ndi.distance_transform_edt(foreground, sampling=anisotropy)
    markers = _centres(distance, foreground, min_distance, anisotropy)
    labels = segmentation.watershed(-distance, markers, mask=foreground)
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)
