"""StarDist in the course: star-convex polygons predicted by the course's own U-Net.

StarDist (Schmidt et al., MICCAI 2018) describes every nucleus as a star-convex polygon:
from each pixel inside a nucleus, ``n_rays`` rays at equal angles run to the nucleus'
edge. A network predicts, at every pixel, the *object probability* (how far the pixel is
inside a nucleus, 1 at the centre, falling to 0 at the edge) and the ``n_rays`` *radial
distances*. Decoding keeps the polygons of the most probable pixels and removes those that
overlap a better one (non-maximum suppression, NMS).

Here the network is the course's :class:`~dlbio_teach.models.UNet` (PyTorch) with
``1 + n_rays`` output channels, trained through
:func:`~dlbio_teach.segmentation.train_segmentation` with ``formulation="stardist"``. The
geometry is the ``stardist`` package's own (it needs no TensorFlow): the targets are
``stardist.edt_prob`` and ``stardist.geometry.star_dist``, the decoding
``stardist.non_maximum_suppression`` and ``stardist.geometry.polygons_to_label``.

The network predicts at full resolution: StarDist's ``grid`` is 1 in both axes, so images
of any size fit (the U-Net pads sides that are not multiples of ``2**depth``).

Volumes ``(Z, Y, X)`` (``axes="ZYX"``) get StarDist 3D: star-convex *polyhedra*, whose
rays are ``n_rays`` points of a golden spiral on the sphere
(``stardist.Rays_GoldenSpiral``), squeezed along the axes by the voxels' ``anisotropy``
(e.g. ``(2, 1, 1)`` when the planes are twice as far apart as the pixels), so that they
spread evenly over a nucleus that is round in space. The geometry is
``stardist.geometry.star_dist3D``, ``stardist.non_maximum_suppression_3d`` and
``stardist.geometry.polyhedron_to_label``; none needs TensorFlow either. The rays are
rebuilt from ``n_rays`` (the maps' channels) and ``anisotropy``: decode with the
anisotropy the network was trained with.

* :func:`star_targets`: probability and distances of an instance mask, ``(1 + n_rays, Y, X)``
  (``(1 + n_rays, Z, Y, X)`` for a volume).
* :class:`StarDistLoss`: StarDist's loss, cross-entropy plus masked absolute error.
* :func:`instances_from_star`: maps to labelled nuclei (NMS, then polygons to labels).
* :func:`star_reconstruction_f1`: the best any ``n_rays`` can do on a ground truth.
* :func:`check_star_labels`, :func:`prepare_star_labels`: what StarDist needs of labels.
* :func:`star_rays`: the rays of StarDist 3D.
* :func:`swap_star_maps`: a network's probability with the truth's distances (or the
  reverse), to see which of its two outputs limits its F1.
"""
from __future__ import annotations

import numpy as np
import torch  # noqa: F401 (the doctests use it)
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential
from torch.nn import functional as F

from .metrics import match_dataset
from .preprocessing import check_labels, spatial_ndim

__all__ = ["DEFAULT_N_RAYS", "DEFAULT_N_RAYS_3D", "PROB_THRESHOLDS", "NMS_THRESHOLDS",
           "PROB_THRESHOLDS_3D", "NMS_THRESHOLDS_3D",
           "check_n_rays", "check_anisotropy", "star_rays", "check_star_labels",
           "prepare_star_labels", "star_targets", "StarDistLoss", "instances_from_star",
           "star_threshold_grid", "star_reconstruction", "star_reconstruction_f1",
           "swap_star_maps"]

#: StarDist's default number of rays in 2D.
DEFAULT_N_RAYS = 32
#: StarDist3D's default number of rays (points of a golden spiral on the sphere).
DEFAULT_N_RAYS_3D = 96
#: The object-probability thresholds that tuning tries.
PROB_THRESHOLDS = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)
#: The NMS overlap thresholds that tuning tries.
NMS_THRESHOLDS = (0.3, 0.4, 0.5)
#: The probability thresholds tried for volumes, fewer and none below 0.3, because the NMS
#: of polyhedra takes seconds on a CPU, the longer the lower the threshold (more candidates).
PROB_THRESHOLDS_3D = (0.3, 0.4, 0.5, 0.6, 0.7)
#: The NMS overlap thresholds tried for volumes.
NMS_THRESHOLDS_3D = (0.3, 0.5)


def check_n_rays(n_rays, ndim: int = 2) -> int:
    """Return ``n_rays`` after checking it is an integer of at least 3 (4 for volumes,
    ``ndim=3``).

    Examples
    --------
    >>> check_n_rays(32)
    32
    >>> check_n_rays(2)
    Traceback (most recent call last):
    ...
    ValueError: n_rays must be an integer of at least 3 (a polygon needs 3 corners), got 2;
    StarDist uses 32 for nuclei.
    """
    least, shape, usual = ((3, "polygon", DEFAULT_N_RAYS) if ndim == 2
                           else (4, "polyhedron", DEFAULT_N_RAYS_3D))
    if isinstance(n_rays, bool) or not isinstance(n_rays, (int, np.integer)) or n_rays < least:
        raise ValueError(f"n_rays must be an integer of at least {least} (a {shape} needs "
                         f"{least} corners), got {n_rays!r}; StarDist uses {usual} for "
                         "nuclei.")
    return int(n_rays)


def check_anisotropy(anisotropy, axes: str | None = "ZYX") -> tuple | None:
    """Return ``anisotropy`` as a tuple of 3 positive floats, or ``None`` (isotropic).

    The anisotropy is the size of a voxel along ``(Z, Y, X)``, relative: ``(2, 1, 1)``
    when the planes are twice as far apart as the pixels. It belongs to volumes only.

    Examples
    --------
    >>> check_anisotropy([2, 1, 1])
    (2.0, 1.0, 1.0)
    >>> check_anisotropy((2, 1, 1), axes="YX")
    Traceback (most recent call last):
    ...
    ValueError: anisotropy (2, 1, 1) is for volumes (axes='ZYX'); an image (Y, X) has none:
    leave it None.
    """
    if anisotropy is None:
        return None
    if spatial_ndim(axes) != 3:
        raise ValueError(f"anisotropy {anisotropy!r} is for volumes (axes='ZYX'); an image "
                         "(Y, X) has none: leave it None.")
    values = np.asarray(anisotropy, float)
    if values.shape != (3,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"anisotropy must be 3 positive numbers, the voxel size along "
                         f"(Z, Y, X), got {anisotropy!r}; e.g. (2, 1, 1) when the planes are "
                         "twice as far apart as the pixels.")
    return tuple(float(v) for v in values)


def star_rays(n_rays: int = DEFAULT_N_RAYS_3D, *, anisotropy=None):
    """StarDist 3D's rays: ``stardist.Rays_GoldenSpiral(n_rays, anisotropy)``.

    ``n_rays`` points spread evenly over the sphere along a golden spiral, divided by the
    ``anisotropy`` (then of length 1 again): on a volume whose planes are far apart the
    rays point more steeply up and down in voxels, so that they are even on a nucleus
    that is round in space. ``rays.vertices`` is ``(n_rays, 3)``, ``(z, y, x)``.

    Examples
    --------
    >>> rays = star_rays(8, anisotropy=(2, 1, 1))
    >>> len(rays), rays.vertices.shape
    (8, (8, 3))
    """
    from stardist import Rays_GoldenSpiral

    return Rays_GoldenSpiral(check_n_rays(n_rays, 3), anisotropy=check_anisotropy(anisotropy))


def _hole_sizes(labels: np.ndarray) -> dict:
    """Pixels of background enclosed by each object, for the objects that have any."""
    holes = {}
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == i
        n = int(ndi.binary_fill_holes(inside).sum() - inside.sum())
        if n:
            holes[i] = n
    return holes


def check_star_labels(labels, *, name: str = "labels", axes: str | None = None) -> np.ndarray:
    """Return ``labels`` after checking StarDist can learn from it.

    An instance mask for StarDist numbers its objects 1..N without gaps (the ``stardist``
    geometry stores ids in 16 bits) and has no holes (a ray would stop at the hole, so the
    polygon would not cover the object). A tile cut out of a larger mask usually has gaps:
    :func:`prepare_star_labels` relabels it and fills holes. A volume ``(Z, Y, X)`` needs
    ``axes="ZYX"`` (a hole is then a cavity enclosed in 3D).

    Examples
    --------
    >>> lab = np.zeros((6, 6), int); lab[1:3, 1:3] = 1; lab[3:5, 3:5] = 3
    >>> check_star_labels(lab)
    Traceback (most recent call last):
    ...
    ValueError: labels must number its objects 1..N without gaps: it has 2 objects with ids up
    to 3 (missing: [2]); use prepare_star_labels(labels) (relabels 1..N, fills holes).
    """
    labels = check_labels(labels, name=name, axes=axes)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) and ids[-1] != len(ids):
        missing = np.setdiff1d(np.arange(1, ids[-1] + 1), ids)
        shown = str(missing[:5].tolist())[:-1] + (", ...]" if len(missing) > 5 else "]")
        raise ValueError(f"{name} must number its objects 1..N without gaps: it has "
                         f"{len(ids)} objects with ids up to {ids[-1]} (missing: {shown}); "
                         "use prepare_star_labels(labels) (relabels 1..N, fills holes).")
    if len(ids) > np.iinfo(np.uint16).max:
        raise ValueError(f"{name} has {len(ids)} objects; StarDist's geometry takes at most "
                         "65535 per image: cut the image into tiles.")
    holes = _hole_sizes(labels)
    if holes:
        first = next(iter(holes))
        raise ValueError(f"{name} has holes in {len(holes)} object(s) (object {first}: "
                         f"{holes[first]} pixels); StarDist's rays would stop at a hole. "
                         "Fill them with prepare_star_labels(labels) (stardist's "
                         "fill_label_holes).")
    return labels


def prepare_star_labels(labels, *, axes: str | None = None) -> np.ndarray:
    """Relabel an instance mask 1..N (order kept) and fill the holes in its objects
    (volumes ``(Z, Y, X)`` with ``axes="ZYX"``).

    Examples
    --------
    >>> lab = np.zeros((7, 7), int); lab[1:6, 1:6] = 5; lab[3, 3] = 0
    >>> fixed = prepare_star_labels(lab)
    >>> int(fixed.max()), int(fixed[3, 3])
    (1, 1)
    """
    from stardist import fill_label_holes

    labels = relabel_sequential(check_labels(labels, axes=axes))[0].astype(np.int32)
    return fill_label_holes(labels).astype(np.int32)


def _default_n_rays(ndim: int) -> int:
    return DEFAULT_N_RAYS if ndim == 2 else DEFAULT_N_RAYS_3D


def _star_dist(labels: np.ndarray, n_rays: int, anisotropy) -> np.ndarray:
    """The ray distances at every pixel (voxel), ``(*labels.shape, n_rays)``."""
    from stardist.geometry import star_dist, star_dist3D

    if labels.ndim == 2:
        return star_dist(labels, n_rays)
    return star_dist3D(labels, star_rays(n_rays, anisotropy=anisotropy))


def _draw(dist, points, shape, *, prob=None, anisotropy=None) -> np.ndarray:
    """Polygons (polyhedra) to labels, drawn least probable first."""
    from stardist.geometry import polygons_to_label, polyhedron_to_label

    if len(shape) == 2:
        return polygons_to_label(dist, points, shape, prob=prob).astype(np.int32)
    rays = star_rays(dist.shape[1], anisotropy=anisotropy)
    return polyhedron_to_label(dist, points, rays, shape, prob=prob,
                               verbose=False).astype(np.int32)


def star_targets(labels, n_rays: int | None = None, *, check: bool = True,
                 axes: str | None = None, anisotropy=None) -> np.ndarray:
    """StarDist's training targets of one instance mask: ``(1 + n_rays, Y, X)`` float32.

    Channel 0 is the object probability (``stardist.edt_prob``: the distance to the
    object's edge divided by its maximum in each object, 0 on the background); channels
    1.. are the ``n_rays`` radial distances in pixels (``stardist.geometry.star_dist``, ray
    ``k`` at angle ``2 pi k / n_rays``, running along ``(sin, cos)`` in ``(y, x)``), 0 on
    the background. The labels are checked with :func:`check_star_labels`; ``check=False``
    skips that for patches cut out of checked labels (their ids have gaps, which the
    geometry does not mind). The rays stop at the image border. ``n_rays`` defaults to
    StarDist's 32 (96 for volumes).

    A volume ``(Z, Y, X)`` (``axes="ZYX"``) gives ``(1 + n_rays, Z, Y, X)``: the
    distance to the edge is measured with voxels of size ``anisotropy`` (``edt_prob(labels,
    anisotropy)``) and the rays are :func:`star_rays` (``star_dist3D``), their distances
    in voxels along each ray.

    Examples
    --------
    >>> lab = np.zeros((9, 9), int); lab[2:7, 2:7] = 1
    >>> t = star_targets(lab, n_rays=4)
    >>> t.shape, float(t[0, 4, 4]), t[1:, 4, 4].tolist()
    ((5, 9, 9), 1.0, [2.5, 2.5, 2.5, 2.5])
    >>> ball = np.zeros((5, 9, 9), int); ball[1:4, 2:7, 2:7] = 1
    >>> star_targets(ball, 6, axes="ZYX", anisotropy=(2, 1, 1)).shape
    (7, 5, 9, 9)
    """
    from stardist import edt_prob

    ndim = spatial_ndim(axes)
    anisotropy = check_anisotropy(anisotropy, axes)
    n_rays = check_n_rays(_default_n_rays(ndim) if n_rays is None else n_rays, ndim)
    labels = (check_star_labels(labels, axes=axes) if check
              else check_labels(labels, axes=axes)).astype(np.int32)
    prob = edt_prob(labels, anisotropy=anisotropy).astype(np.float32)
    dist = _star_dist(labels, n_rays, anisotropy).astype(np.float32)
    return np.concatenate([prob[None], np.moveaxis(dist, -1, 0)])


class StarDistLoss:
    """StarDist's loss for a network whose output is ``(N, 1 + n_rays, Y, X)`` (or
    ``(N, 1 + n_rays, Z, Y, X)`` for volumes: the loss is the same in 3D).

    As ``stardist``'s ``StarDist2D`` and ``StarDist3D`` (their defaults): binary
    cross-entropy between the predicted probability (channel 0, as a logit: the sigmoid is
    part of the loss) and the target :func:`star_targets` probability, plus
    ``dist_weight`` (0.2) times the mean absolute error of the distances weighted by the
    target probability and divided by its mean (StarDist's ``masked_loss_mae`` with
    ``norm_by_mask``: central pixels count most, background none), plus
    ``background_reg`` (1e-4) times the mean absolute distance
    predicted on the background.

    Examples
    --------
    >>> lab = np.zeros((9, 9), int); lab[2:7, 2:7] = 1
    >>> target = torch.from_numpy(star_targets(lab, n_rays=4))[None]
    >>> perfect = target.clone(); perfect[:, 0] = torch.logit(target[:, 0], eps=1e-4)
    >>> loss = StarDistLoss()
    >>> float(loss(perfect, target)) < float(loss(torch.zeros_like(target), target))
    True
    """

    __name__ = "StarDist loss (cross-entropy + 0.2 x masked MAE)"

    def __init__(self, dist_weight: float = 0.2, background_reg: float = 1e-4):
        self.dist_weight = float(dist_weight)
        self.background_reg = float(background_reg)

    def __call__(self, output, target):
        """The loss of logits-and-distances ``output`` against ``target``."""
        if output.shape != target.shape:
            raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} "
                             "differ: the network needs 1 + n_rays output channels, as many "
                             "as the targets have.")
        prob = target[:, :1]
        cross_entropy = F.binary_cross_entropy_with_logits(output[:, :1], prob)
        error = (output[:, 1:] - target[:, 1:]).abs().mean(dim=1, keepdim=True)
        masked = (prob * error).mean() / (prob.mean() + 1e-7)
        background = ((1 - prob) * output[:, 1:].abs().mean(dim=1, keepdim=True)).mean()
        return cross_entropy + self.dist_weight * (masked + self.background_reg * background)


def _check_maps(maps, ndim: int) -> np.ndarray:
    maps = np.asarray(maps, np.float32)
    least = 3 if ndim == 2 else 4
    if maps.ndim != ndim + 1 or maps.shape[0] < least + 1:
        layout = "(1 + n_rays, Y, X)" if ndim == 2 else "(1 + n_rays, Z, Y, X)"
        hint = (" For the maps of a volume pass axes='ZYX'." if ndim == 2 and maps.ndim == 4
                else "")
        raise ValueError(f"StarDist maps must be {layout} with n_rays >= {least}, got "
                         f"shape {maps.shape}; use predict_maps(..., formulation='stardist')."
                         + hint)
    if maps[0].min() < 0 or maps[0].max() > 1:
        raise ValueError("channel 0 of StarDist maps must be probabilities in [0, 1] (the "
                         "network gives logits); use predict_maps(..., "
                         "formulation='stardist'), which applies the sigmoid.")
    return maps


def _check_grid(grid, ndim: int, anisotropy) -> tuple:
    if grid is None:   # StarDist's 3D examples: 1 along a coarse axis, else 2
        return (1, 1) if ndim == 2 else tuple(1 if a > 1.5 else 2
                                              for a in anisotropy or (1, 1, 1))
    values = tuple(np.broadcast_to(grid, ndim).tolist())
    if not all(isinstance(g, int) and g >= 1 for g in values):
        raise ValueError(f"grid must be a positive integer per axis ({ndim} axes), got "
                         f"{grid!r}.")
    return values


def _suppress(dist, prob, *, prob_threshold, nms_threshold, border, grid, anisotropy):
    """StarDist's NMS on the candidates of every ``grid``-th pixel (voxel) per axis."""
    from stardist import non_maximum_suppression, non_maximum_suppression_3d

    every = tuple(slice(None, None, g) for g in grid)
    keywords = dict(grid=grid, b=tuple((-(-border // g),) * 2 for g in grid),
                    prob_thresh=prob_threshold, nms_thresh=nms_threshold)
    if prob.ndim == 2:
        return non_maximum_suppression(dist[every], prob[every], **keywords)
    rays = star_rays(dist.shape[-1], anisotropy=anisotropy)
    return non_maximum_suppression_3d(dist[every], prob[every], rays, **keywords)


def instances_from_star(maps, *, prob_threshold: float = 0.5, nms_threshold: float = 0.4,
                        border: int = 2, axes: str | None = None, anisotropy=None,
                        grid=None) -> np.ndarray:
    """Label nuclei from StarDist maps ``(1 + n_rays, Y, X)`` (probability, distances).

    Every pixel with probability above ``prob_threshold`` (and at least ``border`` pixels
    from the image edge, as in StarDist) proposes its polygon; non-maximum suppression
    (``stardist.non_maximum_suppression``) keeps the most probable ones, dropping any
    polygon that overlaps a kept one by more than ``nms_threshold``; the survivors are
    drawn by ``stardist.geometry.polygons_to_label``, least probable first. Distances are
    clipped at 1e-3, as StarDist does. Choose both thresholds on validation images
    (:func:`~dlbio_teach.tuning.tune_thresholds`); StarDist's defaults are 0.5 and
    0.4.

    Volumes: maps ``(1 + n_rays, Z, Y, X)`` with ``axes="ZYX"`` and the ``anisotropy``
    the targets were made with (the rays, :func:`star_rays`, are rebuilt from it and the
    number of maps), decoded by ``stardist.non_maximum_suppression_3d`` and
    ``polyhedron_to_label``. NMS of polyhedra is slow, so only every ``grid``-th voxel
    per axis proposes one (neighbouring voxels propose nearly the same polyhedron): by
    default 1 along an axis whose ``anisotropy`` is above 1.5, else 2, the grid of
    StarDist's 3D examples. Images use every pixel (``grid`` 1).

    Examples
    --------
    >>> lab = np.zeros((20, 30), int); lab[3:12, 3:12] = 1; lab[6:16, 15:26] = 2
    >>> int(instances_from_star(star_targets(lab), prob_threshold=0.6).max())
    2
    >>> ball = np.zeros((9, 16, 16), int); ball[2:7, 4:12, 4:12] = 1
    >>> maps = star_targets(ball, 16, axes="ZYX")
    >>> int(instances_from_star(maps, axes="ZYX").max())
    1
    """
    ndim = spatial_ndim(axes)
    maps = _check_maps(maps, ndim)
    anisotropy = check_anisotropy(anisotropy, axes)
    grid = _check_grid(grid, ndim, anisotropy)
    if not 0 < prob_threshold < 1 or not 0 <= nms_threshold < 1:
        raise ValueError(f"need 0 < prob_threshold < 1 and 0 <= nms_threshold < 1, got "
                         f"{prob_threshold} and {nms_threshold}.")
    prob = np.ascontiguousarray(maps[0])
    dist = np.ascontiguousarray(np.moveaxis(np.maximum(maps[1:], 1e-3), 0, -1))
    if not np.any(prob > prob_threshold):
        return np.zeros(prob.shape, np.int32)
    points, probs, dists = _suppress(dist, prob, prob_threshold=prob_threshold,
                                     nms_threshold=nms_threshold, border=border, grid=grid,
                                     anisotropy=anisotropy)
    if len(points) == 0:
        return np.zeros(prob.shape, np.int32)
    return _draw(dists, points, prob.shape, prob=probs, anisotropy=anisotropy)


def star_threshold_grid(axes: str | None = None) -> list[dict]:
    """The settings that tuning tries: each probability threshold with each NMS threshold
    (a smaller grid for volumes, ``axes="ZYX"``).

    Examples
    --------
    >>> grid = star_threshold_grid()
    >>> len(grid), grid[0]
    (21, {'prob_threshold': 0.1, 'nms_threshold': 0.3})
    >>> len(star_threshold_grid("ZYX"))
    10
    """
    probs, nms = ((PROB_THRESHOLDS, NMS_THRESHOLDS) if spatial_ndim(axes) == 2
                  else (PROB_THRESHOLDS_3D, NMS_THRESHOLDS_3D))
    return [{"prob_threshold": p, "nms_threshold": n} for p in probs for n in nms]


def star_reconstruction(labels, n_rays: int, *, axes: str | None = None,
                        anisotropy=None) -> np.ndarray:
    """Each object of ``labels`` redrawn as the star-convex polygon of ``n_rays`` rays.

    The rays start at the object's most interior pixel (the maximum of its
    ``stardist.edt_prob``), where a trained network is most confident, and run to the
    object's edge (``star_dist``); the polygons are drawn with ``polygons_to_label``.
    Objects are renumbered 1..N in the order of their ids. A volume (``axes="ZYX"``) is
    redrawn as polyhedra of :func:`star_rays` with its ``anisotropy``.

    Examples
    --------
    >>> lab = np.zeros((12, 12), int); lab[2:10, 2:10] = 7
    >>> rebuilt = star_reconstruction(lab, 32)
    >>> int(rebuilt.max()), int(((rebuilt > 0) != (lab > 0)).sum()) < 8
    (1, True)
    """
    from stardist import edt_prob

    ndim = spatial_ndim(axes)
    n_rays = check_n_rays(n_rays, ndim)
    anisotropy = check_anisotropy(anisotropy, axes)
    labels = relabel_sequential(check_labels(labels, axes=axes))[0].astype(np.int32)
    n = int(labels.max())
    if n == 0:
        return np.zeros(labels.shape, np.int32)
    centres = np.array(ndi.maximum_position(edt_prob(labels, anisotropy=anisotropy), labels,
                                            np.arange(1, n + 1)))
    dist = _star_dist(labels, n_rays, anisotropy)[tuple(centres.T)]
    return _draw(np.maximum(dist, 1e-3), centres, labels.shape, anisotropy=anisotropy)


def star_reconstruction_f1(labels, n_rays: int, *, iou_threshold: float = 0.5,
                           axes: str | None = None, anisotropy=None) -> float:
    """F1 of the ground truth rebuilt from ``n_rays`` rays: the bound on StarDist's F1.

    A StarDist network can at best predict each object's own star-convex polygon
    (:func:`star_reconstruction`); objects it cannot describe well (long, bent, with
    concave parts) lose IoU whatever the training. Scored against the ground truth with
    :func:`~dlbio_teach.metrics.match_dataset` (counts pooled over images) at
    ``iou_threshold``, for one mask ``(Y, X)`` or a stack/list of them (volumes with
    ``axes="ZYX"`` and their ``anisotropy``). StarDist's own data notebook shows this for
    several ``n_rays`` to choose it.

    Examples
    --------
    >>> lab = np.zeros((20, 20), int); lab[2:18, 2:6] = 1; lab[14:18, 2:18] = 1  # an L
    >>> star_reconstruction_f1(lab, 4, iou_threshold=0.7) < star_reconstruction_f1(
    ...     lab, 32, iou_threshold=0.7)
    True
    """
    stack = [labels] if np.ndim(labels) == spatial_ndim(axes) else list(labels)
    rebuilt = [star_reconstruction(t, n_rays, axes=axes, anisotropy=anisotropy)
               for t in stack]
    return float(match_dataset(stack, rebuilt, thresholds=[iou_threshold],
                               axes=axes)[0]["f1"])


def swap_star_maps(maps, true_maps, *, keep: str) -> np.ndarray:
    """A network's StarDist maps with one of its two outputs replaced by the truth's.

    StarDist predicts two things: where the nuclei's centres are (the probability, channel
    0) and how far each edge is (the ray distances). When its F1 is low, decoding the
    network's probability with the true distances (``keep="probability"``), and the true
    probability with the network's distances (``keep="distances"``), tells which of the
    two limits it: the output kept alone that scores far below the truth is the one to
    train better. ``true_maps`` are :func:`star_targets` of annotated labels, with the
    same rays (``n_rays`` and, for volumes, ``anisotropy``) as the network's maps.

    Examples
    --------
    >>> lab = np.zeros((20, 30), int); lab[3:12, 3:12] = 1; lab[6:16, 15:26] = 2
    >>> true = star_targets(lab, 8)
    >>> poor = true.copy(); poor[1:] *= 0.5              # distances half as long
    >>> mixed = swap_star_maps(poor, true, keep="probability")
    >>> bool(np.array_equal(mixed, true)), bool(np.array_equal(mixed[0], poor[0]))
    (True, True)
    """
    if keep not in ("probability", "distances"):
        raise ValueError(f"keep must be 'probability' (the network's probability, the "
                         f"truth's distances) or 'distances' (the reverse), got {keep!r}.")
    maps, true_maps = np.asarray(maps, np.float32), np.asarray(true_maps, np.float32)
    if maps.shape != true_maps.shape:
        raise ValueError(f"maps {maps.shape} and true_maps {true_maps.shape} differ: make the "
                         "true maps with star_targets(labels, n_rays, ...) of the same image, "
                         "with the network's n_rays (and anisotropy for volumes).")
    mixed = true_maps.copy()
    kept = slice(0, 1) if keep == "probability" else slice(1, None)
    mixed[kept] = maps[kept]
    return mixed
