"""Choosing post-processing settings on validation images, for every segmentation method.

A segmentation method is more than its network: thresholds turn its maps into nuclei, and
the baseline has its ``min_distance``, joining a 2D network's planes its
``min_overlap``. Each is chosen the same way, by the best F1 pooled over the *validation*
images or volumes (:func:`tune_thresholds`, :func:`tune_otsu_watershed`,
:func:`tune_join_planes`), and the choice comes back as a named :class:`Tuning` with every
setting tried.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .baseline import otsu_watershed
from .metrics import match_dataset
from .planes import join_planes
from .segmentation import _check_formulation, instances_from_maps
from .star import star_threshold_grid

__all__ = ["SEED_THRESHOLDS", "FOREGROUND_THRESHOLDS", "threshold_grid", "Tuning",
           "tune_thresholds", "tune_otsu_watershed", "tune_join_planes"]

#: Seed thresholds tried for the three-class and distance formulations.
SEED_THRESHOLDS = tuple(float(s) for s in np.round(np.arange(0.3, 0.95, 0.05), 2))
#: Foreground thresholds tried for the distance formulation.
FOREGROUND_THRESHOLDS = (0.05, 0.1, 0.2)


def threshold_grid(formulation: str, axes: str | None = None) -> list[dict]:
    """The post-processing settings :func:`tune_thresholds` tries for a formulation (for
    StarDist a smaller grid on volumes, ``axes="ZYX"``: see
    :func:`~dlbio_teach.star.star_threshold_grid`).

    Examples
    --------
    >>> len(threshold_grid("three_class")), threshold_grid("distance")[0]
    (13, {'seed_threshold': 0.3, 'foreground_threshold': 0.05})
    >>> threshold_grid("stardist")[0]
    {'prob_threshold': 0.1, 'nms_threshold': 0.3}
    """
    if _check_formulation(formulation) == "stardist":
        return star_threshold_grid(axes)
    if formulation == "three_class":
        return [{"seed_threshold": s} for s in SEED_THRESHOLDS]
    return [{"seed_threshold": s, "foreground_threshold": f}
            for s in SEED_THRESHOLDS if s <= 0.8 for f in FOREGROUND_THRESHOLDS]


@dataclass(frozen=True)
class Tuning:
    """What a search on validation images chose: ``best`` settings and their ``score``.

    ``candidates`` and ``scores`` hold every setting tried and its F1, in order.
    """

    best: dict
    score: float
    candidates: list
    scores: list


def _tune(segment_with, candidates, labels, iou_threshold, axes=None) -> Tuning:
    labels = list(labels)
    scores = [match_dataset(labels, [segment_with(i, c) for i in range(len(labels))],
                            thresholds=[iou_threshold], axes=axes)[0]["f1"]
              for c in candidates]
    best = int(np.argmax(scores))   # the first of equal scores
    return Tuning(best=dict(candidates[best]), score=float(scores[best]),
                  candidates=[dict(c) for c in candidates], scores=[float(s) for s in scores])


def tune_thresholds(maps, labels, *, formulation: str, candidates=None,
                    iou_threshold: float = 0.5, axes: str | None = None,
                    anisotropy=None) -> Tuning:
    """Choose the post-processing thresholds with the best pooled F1 on validation images.

    Parameters
    ----------
    maps : sequence of ndarray
        :func:`~dlbio_teach.segmentation.predict_maps` of each validation image (computed
        once, reused per setting).
    labels : sequence of ndarray
        Their instance masks.
    formulation : str
    candidates : list of dict, optional
        Settings to try; default :func:`threshold_grid`.
    iou_threshold : float
        IoU at which a prediction counts as a match.
    axes : {None, "YX", "ZYX"}
        ``"ZYX"`` for the maps of volumes (IoU of voxels).
    anisotropy : tuple of 3 float, optional
        StarDist 3D's, as the network was trained with (it shapes the rays).

    Examples
    --------
    >>> from dlbio_teach.targets import distance_targets
    >>> lab = np.zeros((10, 21), int); lab[1:9, 1:10] = 1; lab[1:9, 10:19] = 2
    >>> tuned = tune_thresholds([distance_targets(lab)], [lab], formulation="distance")
    >>> tuned.score
    1.0
    """
    maps = list(maps)
    candidates = (threshold_grid(formulation, axes) if candidates is None
                  else list(candidates))
    return _tune(lambda i, c: instances_from_maps(maps[i], formulation=formulation, axes=axes,
                                                  anisotropy=anisotropy, **c),
                 candidates, labels, iou_threshold, axes)


def tune_otsu_watershed(images, labels, *, min_distances=(3, 4, 6, 8, 10, 12),
                        iou_threshold: float = 0.5, axes: str | None = None,
                        anisotropy=None) -> Tuning:
    """Choose the baseline's ``min_distance`` with the best pooled F1 on validation images
    (volumes with ``axes="ZYX"`` and their voxels' ``anisotropy``).

    Examples
    --------
    >>> img = np.zeros((20, 40)); img[5:15, 5:15] = 1; img[5:15, 25:35] = 1
    >>> tune_otsu_watershed([img], [otsu_watershed(img)], min_distances=(4, 8)).score
    1.0
    """
    images = list(images)
    return _tune(lambda i, c: otsu_watershed(images[i], axes=axes, anisotropy=anisotropy, **c),
                 [{"min_distance": d} for d in min_distances], labels, iou_threshold, axes)


def tune_join_planes(plane_labels, labels, *, min_overlaps=(0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
                     iou_threshold: float = 0.5) -> Tuning:
    """Choose :func:`~dlbio_teach.planes.join_planes`'s ``min_overlap`` with the best
    pooled F1 on validation volumes.

    Parameters
    ----------
    plane_labels : sequence of ndarray ``(Z, Y, X)``
        Each validation volume's per-plane labels
        (:func:`~dlbio_teach.planes.label_planes`, computed once).
    labels : sequence of ndarray ``(Z, Y, X)``
        Their 3D instance masks.
    min_overlaps : sequence of float
        Settings to try.
    iou_threshold : float
        IoU (of voxels) at which a joined nucleus counts as a match.

    Examples
    --------
    >>> vol = np.zeros((4, 8, 8), int); vol[:, 2:6, 2:6] = 1
    >>> planes = vol * np.arange(1, 5)[:, None, None]       # other ids in each plane
    >>> tune_join_planes([planes], [vol], min_overlaps=(0.5,)).score
    1.0
    """
    plane_labels = list(plane_labels)
    return _tune(lambda i, c: join_planes(plane_labels[i], **c),
                 [{"min_overlap": m} for m in min_overlaps], labels, iou_threshold, "ZYX")
