"""Instance segmentation of nuclei: a classical baseline and U-Nets, with one API.

The same four calls serve every formulation (the U-Net's three classes, its distance map,
StarDist's polygons, see :mod:`dlbio_teach.star`):
:class:`SegmentationConfig` (sizes from the run profile), :func:`train_segmentation`
(one call, writes the run record with ``run_dir=``), :func:`segment` (a trained network
and an image in, instance labels out; tiled for large images) and
:func:`~dlbio_teach.tuning.tune_thresholds` (post-processing thresholds chosen on validation
images, in :mod:`dlbio_teach.tuning`). :func:`~dlbio_teach.tuning.tune_otsu_watershed`
tunes the baseline the same way. The building blocks:

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

Volumes ``(Z, Y, X)`` take the same functions with ``axes="ZYX"`` (a volume's shape alone
cannot be told from a stack of images): the baseline and the targets in 3D, with the
voxels' ``anisotropy`` (their size along Z, Y and X, e.g. ``(2, 1, 1)`` when the planes
are twice as far apart as the pixels; :func:`anisotropy_from_labels` measures it from the
nuclei) for the distances; a :class:`SegmentationConfig` with ``axes="ZYX"`` trains a 3D
U-Net. A 2D network can segment a volume too, plane by plane: :func:`label_planes` runs
any 2D segmenter on each plane and :func:`join_planes` joins the planes' nuclei across Z
by their overlap.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from skimage import feature, filters, measure, segmentation
from torch.nn import functional as F

from .augment import Augmentation, SegmentationTransform
from .models import UNet
from .prediction import network_ndim, predict
from .preprocessing import check_image, check_labels, random_patches, spatial_ndim
from .records import RECORD_FILE, RunRecord, _plain, rebuild_model
from .runtime import Profile
from .star import (
    DEFAULT_N_RAYS,
    DEFAULT_N_RAYS_3D,
    StarDistLoss,
    check_anisotropy,
    check_n_rays,
    instances_from_star,
    star_targets,
)
from .training import History, fit

__all__ = ["BACKGROUND", "INTERIOR", "BOUNDARY", "three_class_targets", "class_weights",
           "otsu_watershed", "instances_from_interior", "distance_targets",
           "instances_from_distance", "label_tiles_separately", "anisotropy_from_labels",
           "label_planes", "join_planes", "FORMULATIONS", "SegmentationConfig",
           "training_targets", "WeightedCrossEntropy", "train_segmentation", "predict_maps",
           "instances_from_maps", "segment"]

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


# --- Training, decoding and tuning: one shape for every formulation ----------------------

#: What a U-Net learns to predict, three classes, the distance to the nucleus edge, or
#: StarDist's object probability and radial distances.
FORMULATIONS = ("three_class", "distance", "stardist")
OUTPUT_CHANNELS = {"three_class": 3, "distance": 1}


def _check_formulation(formulation: str) -> str:
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}.")
    return formulation


@dataclass(frozen=True)
class SegmentationConfig:
    """Everything that defines one segmentation training; stored in the run record.

    ``formulation`` is what the U-Net learns: ``"three_class"`` (background / interior /
    boundary, weighted cross-entropy), ``"distance"`` (:func:`distance_targets`, mean
    squared error) or ``"stardist"`` (:func:`~dlbio_teach.star.star_targets` with
    ``n_rays`` rays, :class:`~dlbio_teach.star.StarDistLoss`; ``n_rays`` a multiple of 4
    when ``augment``, so that rotations map rays onto rays). ``n_val_patches`` defaults
    to ``max(32, n_patches // 4)``; ``n_rays`` to StarDist's 32 (96 for volumes).

    Volumes: ``axes="ZYX"`` trains a 3D U-Net (``UNet(ndim=3)``, halving Z too unless
    ``pool_z=False``) on volumes ``(N, Z, Y, X)``, with ``patch_size`` one side or one per
    axis, e.g. ``(16, 32, 32)``, and the voxels' ``anisotropy`` along ``(Z, Y, X)`` for
    the distance targets and StarDist's rays (:func:`~dlbio_teach.star.star_rays`; decode
    with the same ``anisotropy``). ``augment`` flips and turns volumes in the YX plane
    only (Z is sampled differently). StarDist 3D trains without them (``augment`` is
    ``False`` by default there): its golden-spiral rays have no mirror or quarter-turn
    symmetry on the voxel grid, so no renumbering of the rays matches a flipped volume.
    The ``augmentation=`` of :func:`train_segmentation` (intensities, zoom) still applies.

    Examples
    --------
    >>> c = SegmentationConfig("stardist", axes="ZYX", patch_size=(16, 32, 32), n_rays=64,
    ...                        anisotropy=(2, 1, 1))
    >>> c.ndim, c.augment, c.n_outputs
    (3, False, 65)
    """

    formulation: str
    epochs: int = 20
    n_patches: int = 512
    patch_size: int | tuple = 48
    batch_size: int = 16
    depth: int = 2
    base_channels: int = 16
    lr: float = 3e-3
    augment: bool | None = None
    n_val_patches: int | None = None
    profile: str | None = None
    n_rays: int | None = None
    axes: str = "YX"
    anisotropy: tuple | None = None
    pool_z: bool = True

    def __post_init__(self):
        """Check the formulation, the axes, the patch size (a multiple of ``2 ** depth``
        along each pooled axis), the rays; fill in the defaults that depend on them."""
        _check_formulation(self.formulation)
        ndim = spatial_ndim(self.axes)
        star_3d = self.formulation == "stardist" and ndim == 3
        default_rays = DEFAULT_N_RAYS if ndim == 2 else DEFAULT_N_RAYS_3D
        self._set(anisotropy=check_anisotropy(self.anisotropy, self.axes),
                  augment=not star_3d if self.augment is None else self.augment,
                  n_rays=default_rays if self.n_rays is None else self.n_rays,
                  patch_size=_check_patch_size(self.patch_size, ndim))
        multiples = self.multiples
        if any(p % m for p, m in zip(np.broadcast_to(self.patch_size, ndim), multiples)):
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of "
                             + (f"2**depth = {2 ** self.depth}." if ndim == 2 else
                                f"{multiples} along (Z, Y, X): 2**depth along each axis "
                                "the U-Net halves."))
        if self.formulation == "stardist":
            check_n_rays(self.n_rays, ndim)
            if ndim == 2 and self.augment and self.n_rays % 4:
                raise ValueError(f"n_rays must be a multiple of 4 for augment=True (90-degree "
                                 f"rotations turn ray j into ray j + n_rays / 4), got "
                                 f"{self.n_rays}; use 16, 32 or 64, or augment=False.")
            if star_3d and self.augment:
                raise ValueError("StarDist 3D trains with augment=False: its golden-spiral "
                                 "rays do not map onto one another under flips or "
                                 "90-degree turns, so flipped targets would be wrong. Pass "
                                 "augment=False (or leave it out: False is StarDist 3D's "
                                 "default); augmentation= of train_segmentation "
                                 "(intensities, zoom) still works.")

    def _set(self, **values):
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_profile(cls, formulation: str, profile: Profile,
                     **changes) -> SegmentationConfig:
        """The sizes of a run profile, with optional changes.

        At least 12 epochs: fewer (the smoke profile's 6) leave the boundary class unlearnt.
        StarDist gets twice the profile's ``base_channels``: its ``1 + n_rays`` output maps
        are read from the last feature maps, and 16 of them are few for 33 maps (a wider
        network trains longer; chapter 3 trains and scores it). For volumes give
        ``axes="ZYX"`` and a ``patch_size`` per axis among the changes.

        Examples
        --------
        >>> from dlbio_teach.runtime import get_profile
        >>> SegmentationConfig.from_profile("distance", get_profile("smoke")).epochs
        12
        """
        values = dict(formulation=formulation, epochs=max(profile.epochs, 12),
                      n_patches=profile.n_patches, patch_size=profile.patch_size,
                      batch_size=profile.batch_size, base_channels=profile.base_channels,
                      profile=profile.name)
        if formulation == "stardist":
            values["base_channels"] = 2 * profile.base_channels
        values.update(changes)
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict) -> SegmentationConfig:
        """The configuration :meth:`to_dict` gave, e.g. a run record's ``hyperparameters``
        (other keys are left out).

        Examples
        --------
        >>> c = SegmentationConfig("stardist", axes="ZYX", patch_size=(8, 16, 16),
        ...                        anisotropy=(2, 1, 1))
        >>> SegmentationConfig.from_dict({**c.to_dict(), "loss": "StarDist loss"}) == c
        True
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def ndim(self) -> int:
        """How many spatial axes the images have (2, or 3 for volumes)."""
        return spatial_ndim(self.axes)

    @property
    def multiples(self) -> tuple:
        """What each side of a patch must be a multiple of (Z's is 1 when ``pool_z`` is off)."""
        step = 2 ** self.depth
        return (step,) * 2 if self.ndim == 2 else (step if self.pool_z else 1, step, step)

    @property
    def n_outputs(self) -> int:
        """Output channels of the network."""
        if self.formulation == "stardist":
            return 1 + self.n_rays
        return OUTPUT_CHANNELS[self.formulation]

    def to_dict(self) -> dict:
        """The configuration as plain data (``n_rays`` only for StarDist; ``axes``,
        ``anisotropy`` and ``pool_z`` only for volumes)."""
        values = asdict(self)
        if self.formulation != "stardist":
            del values["n_rays"]
        if self.ndim == 2:
            for name in ("axes", "anisotropy", "pool_z"):
                del values[name]
        return values


def _check_patch_size(patch_size, ndim: int):
    """An integer side, or a tuple of one side per spatial axis."""
    sides = np.atleast_1d(patch_size)
    if (sides.ndim != 1 or len(sides) not in (1, ndim)
            or not np.issubdtype(sides.dtype, np.integer) or np.any(sides < 1)):
        raise ValueError(f"patch_size must be a positive integer or one per spatial axis "
                         f"({ndim}), got {patch_size!r}.")
    return int(sides[0]) if np.ndim(patch_size) == 0 else tuple(int(v) for v in sides)


def training_targets(labels, *, formulation: str, n_rays: int | None = None,
                     axes: str | None = None, anisotropy=None) -> np.ndarray:
    """What the network learns from each instance mask of a stack ``(N, Y, X)``.

    Classes ``(N, Y, X)``, distances ``(N, Y, X)``, or StarDist's ``(N, 1 + n_rays, Y, X)``
    (whose labels must be numbered 1..N without holes:
    :func:`~dlbio_teach.star.prepare_star_labels`). For volumes ``(N, Z, Y, X)``
    (``axes="ZYX"``) each has a Z axis more; ``anisotropy`` shapes the distances and rays.

    Examples
    --------
    >>> lab = np.zeros((1, 6, 6), int); lab[0, 1:5, 1:5] = 1
    >>> training_targets(lab, formulation="three_class").dtype
    dtype('int64')
    >>> training_targets(lab, formulation="stardist", n_rays=8).shape
    (1, 9, 6, 6)
    >>> training_targets(lab[None], formulation="distance", axes="ZYX").shape
    (1, 1, 6, 6)
    """
    if _check_formulation(formulation) == "stardist":
        return np.stack([star_targets(t, n_rays, axes=axes, anisotropy=anisotropy)
                         for t in np.asarray(labels)])
    if formulation == "three_class":
        return np.stack([three_class_targets(t, axes=axes) for t in np.asarray(labels)])
    return np.stack([distance_targets(t, axes=axes, anisotropy=anisotropy)
                     for t in np.asarray(labels)])


class WeightedCrossEntropy:
    """Cross-entropy with one weight per class (:func:`class_weights`), as a loss function."""

    __name__ = "weighted cross-entropy"

    def __init__(self, weights):
        self.weights = torch.as_tensor(np.asarray(weights, np.float32))

    def __call__(self, output, target):
        """The weighted cross-entropy of logits ``(N, K, Y, X)`` against classes ``(N, Y, X)``
        (``(N, K, Z, Y, X)`` and ``(N, Z, Y, X)`` for volumes)."""
        return F.cross_entropy(output, target, weight=self.weights.to(output.device))


def _check_stacks(images, labels, *, name: str, config: SegmentationConfig):
    images = check_image(images, ndim=(3,), name=f"{name} images", axes=config.axes,
                         min_size=min(np.broadcast_to(config.patch_size, config.ndim)[-2:]))
    labels = np.asarray(labels)
    if labels.shape != images.shape:
        raise ValueError(f"{name} labels {labels.shape} must match the images "
                         f"{images.shape}: one instance mask per image.")
    return images, np.stack([check_labels(t, name=f"{name} labels", axes=config.axes)
                             for t in labels])


def _patches(config: SegmentationConfig, images, targets, n_patches: int, seed: int):
    """The same windows of the images and their targets ``(N, Y, X)`` or ``(N, C, Y, X)``.

    StarDist's targets are computed on whole images, so a nucleus cut by the patch border
    keeps its full rays (StarDist2D computes them on the patch instead). Volumes get their
    channel axis here, ``(N, 1, Z, Y, X)``: ``fit`` adds one to image stacks only."""
    window = dict(seed=seed, axes=config.axes)
    if targets.ndim == images.ndim:
        x, y = random_patches([images, targets], config.patch_size, n_patches, **window)
    else:
        x, *channels = random_patches([images, *np.moveaxis(targets, 1, 0)],
                                      config.patch_size, n_patches, **window)
        y = np.stack(channels, axis=1)
    if config.ndim == 3:
        x, y = x[:, None], (y[:, None] if config.formulation == "distance" else y)
    return x, y


def _transform(config: SegmentationConfig, augmentation: Augmentation | None):
    """``fit``'s ``(augment, transform)``: StarDist's rays turn with the image in the
    transform, not in ``fit``'s flips, which know nothing of rays."""
    if config.formulation != "stardist" and augmentation is None:
        return config.augment, None
    flips = config.augment and config.formulation == "stardist"
    return config.augment and not flips, SegmentationTransform(augmentation,
                                                                config.formulation, flips=flips)


def _loss(config: SegmentationConfig, targets) -> tuple:
    """The loss function of a formulation, and what the run record notes about it."""
    if config.formulation == "three_class":
        loss_fn = WeightedCrossEntropy(class_weights(targets))
        return loss_fn, {"class_weights": loss_fn.weights.tolist()}
    if config.formulation == "stardist":
        return StarDistLoss(), {}
    return F.mse_loss, {}


def _network(config: SegmentationConfig, model, seed: int):
    """A new seeded U-Net for ``config``, or ``model`` after checking it fits."""
    if model is None:
        torch.manual_seed(seed)
        dims = {} if config.ndim == 2 else {"ndim": 3, "pool_z": config.pool_z}
        return UNet(1, config.n_outputs, depth=config.depth,
                    base_channels=config.base_channels, **dims)
    if network_ndim(model) != config.ndim:
        raise ValueError(f"the model takes {'volumes' if network_ndim(model) == 3 else 'images'}"
                         f" but the configuration has axes={config.axes!r}; give a model of "
                         f"{config.ndim} spatial axes (UNet(ndim={config.ndim})) or none.")
    if config.formulation == "stardist" and getattr(model, "config", {}).get(
            "out_channels", config.n_outputs) != config.n_outputs:
        raise ValueError(f"the model has {model.config['out_channels']} output channels; "
                         f"StarDist with n_rays={config.n_rays} needs 1 + n_rays = "
                         f"{config.n_outputs}.")
    return model


def train_segmentation(config: SegmentationConfig, images, labels, val_images, val_labels, *,
                       seed: int = 0, device=None, model=None, run_dir=None,
                       record: dict | None = None, checkpoint_dir=None, progress: bool = True,
                       augmentation: Augmentation | None = None, reuse=None):
    """Train a U-Net to segment nuclei; return ``(model, history)``.

    Parameters
    ----------
    config : SegmentationConfig
    images, labels : ndarray ``(N, Y, X)``
        Normalised training images and their instance masks; patches are cut from them.
        Volumes ``(N, Z, Y, X)`` when ``config.axes`` is ``"ZYX"``.
    val_images, val_labels : ndarray ``(M, Y, X)`` (or ``(M, Z, Y, X)``)
        Validation images: their loss picks the best epoch. The validation patches are the
        same for every seed, so that the seeds of an ensemble are judged alike.
    seed : int
        Seeds the training patches, the initial weights and the batch order.
    device : torch.device, optional
    model : torch.nn.Module, optional
        Start from this network (fine-tuning) instead of a new U-Net.
    run_dir : path, optional
        Where :func:`~dlbio_teach.training.fit` writes the run record and weights.
    record : dict, optional
        More for the run record (``datasets``, ``splits``, ``notes``, ...).
    checkpoint_dir : path, optional
        Checkpoints to resume an interrupted training (see :func:`~dlbio_teach.training.fit`).
    progress : bool
    augmentation : Augmentation, optional
        Random intensity, blur, noise and zoom changes of each training batch
        (:mod:`dlbio_teach.augment`), on top of ``config.augment``'s flips and rotations;
        ``None`` (default) adds none.
    reuse : path, optional
        The folder of an earlier run. When its record shows the same settings, seed and
        training data (the sha256 of the arrays, which every record of this function
        holds), its network is loaded instead of trained again: a seeded training on the
        CPU gives the same weights, so this only saves time. Otherwise it trains.

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei
    >>> pairs = [nuclei((64, 64), 6, seed=s) for s in range(3)]
    >>> x = np.stack([p[0] for p in pairs]); y = np.stack([p[1] for p in pairs])
    >>> cfg = SegmentationConfig("distance", epochs=1, n_patches=16, patch_size=32,
    ...                          base_channels=4)
    >>> net, history = train_segmentation(cfg, x[:2], y[:2], x[2:], y[2:], progress=False)
    >>> history.epochs_run, net.config["out_channels"]
    (1, 1)
    """
    images, labels = _check_stacks(images, labels, name="training", config=config)
    val_images, val_labels = _check_stacks(val_images, val_labels, name="validation",
                                           config=config)
    make = dict(formulation=config.formulation, n_rays=config.n_rays, axes=config.axes,
                anisotropy=config.anisotropy)
    targets = training_targets(labels, **make)
    val_targets = training_targets(val_labels, **make)
    loss_fn, extra = _loss(config, targets)
    if augmentation is not None:
        extra["augmentation"] = augmentation.to_dict()
    n_val = config.n_val_patches or max(32, config.n_patches // 4)
    train = _patches(config, images, targets, config.n_patches, seed)
    val = _patches(config, val_images, val_targets, n_val, 1)
    fresh_model = model is None
    model = _network(config, model, seed)
    augment, transform = _transform(config, augmentation)
    record = dict(record or {})
    extra["training_data_sha256"] = _data_sha256(images, labels, val_images, val_labels)
    record["hyperparameters"] = {**config.to_dict(), **extra,
                                 **record.get("hyperparameters", {})}
    record.setdefault("profile", config.profile)
    reused = _reused_run(reuse, seed=seed, hyperparameters={**config.to_dict(), **extra},
                         fresh_model=fresh_model, device=device)
    if reused is not None:
        model, history = reused
        if run_dir is not None:
            record["notes"] = (f"Weights reused from {reuse}, a run with the same settings, "
                               f"seed and data. " + record.get("notes", "")).strip()
            RunRecord.create(model=model, history=history, seed=seed, **record).save(run_dir)
        return model, history
    history = fit(model, train, val, loss_fn=loss_fn, epochs=config.epochs,
                  batch_size=config.batch_size, lr=config.lr, augment=augment,
                  transform=transform, device=device, seed=seed, progress=progress,
                  run_dir=run_dir, record=record, checkpoint_dir=checkpoint_dir,
                  resume=checkpoint_dir is not None)
    return model, history


def _data_sha256(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _reused_run(folder, *, seed: int, hyperparameters: dict, fresh_model: bool, device):
    """``(model, history)`` of the run in ``folder`` if it trained exactly this; else None."""
    if folder is None or not fresh_model or not (Path(folder) / RECORD_FILE).is_file():
        return None
    earlier = RunRecord.load(folder)
    if earlier.seed != seed or any(earlier.hyperparameters.get(k) != v
                                   for k, v in _plain(hyperparameters).items()):
        return None
    model = rebuild_model(folder, device=device or "cpu")
    fields = set(History.__dataclass_fields__)
    return model, History(**{k: v for k, v in earlier.history.items() if k in fields})


def _check_network_axes(model, axes) -> int:
    ndim = spatial_ndim(axes)
    if network_ndim(model) == ndim:
        return ndim
    if ndim == 2:
        raise ValueError("this network takes volumes (Z, Y, X): pass axes='ZYX'.")
    raise ValueError("this network takes images (Y, X), not volumes: run it plane by plane, "
                     "label_planes(volume, lambda plane: segment(model, plane, ...)), then "
                     "join_planes; or train a network of volumes (SegmentationConfig(..., "
                     "axes='ZYX')).")


def predict_maps(model, image, *, formulation: str, tile_size=None, device=None,
                 axes: str | None = None) -> np.ndarray:
    """The network's maps for one image: class probabilities ``(3, Y, X)``, distance
    ``(Y, X)``, or StarDist's probability and ray distances ``(1 + n_rays, Y, X)``.

    A network of volumes takes a volume ``(Z, Y, X)`` with ``axes="ZYX"`` and gives the
    same maps with a Z axis; ``tile_size`` is then one side or one per axis.

    Examples
    --------
    >>> net = UNet(1, 3, depth=1, base_channels=4)
    >>> p = predict_maps(net, np.zeros((16, 16)), formulation="three_class")
    >>> p.shape, bool(np.allclose(p.sum(axis=0), 1, atol=1e-5))
    ((3, 16, 16), True)
    >>> net3d = UNet(1, 1, depth=1, base_channels=4, ndim=3)
    >>> predict_maps(net3d, np.zeros((4, 16, 16)), formulation="distance", axes="ZYX").shape
    (4, 16, 16)
    """
    ndim = _check_network_axes(model, axes)
    output = predict(model, image, tile_size=tile_size, device=device)
    if _check_formulation(formulation) == "three_class":
        return torch.softmax(torch.from_numpy(output), dim=0).numpy()
    if formulation == "stardist":
        if output.ndim != ndim + 1 or len(output) < 4:
            raise ValueError(f"a StarDist network has 1 + n_rays (n_rays >= 3) output "
                             f"channels; this one gives shape {output.shape}.")
        output[0] = torch.sigmoid(torch.from_numpy(output[0])).numpy()
    return output


def instances_from_maps(maps, *, formulation: str, seed_threshold: float | None = None,
                        foreground_threshold: float = 0.1, min_size: int = 10,
                        prob_threshold: float = 0.5, nms_threshold: float = 0.4,
                        axes: str | None = None, anisotropy=None) -> np.ndarray:
    """Label nuclei from :func:`predict_maps`, with thresholds chosen on validation images.

    Three classes: seeds where P(interior) > ``seed_threshold``, grown over the pixels
    where P(interior) + P(boundary) > 0.5. Distance: :func:`instances_from_distance`.
    StarDist: :func:`~dlbio_teach.star.instances_from_star` with ``prob_threshold`` and
    ``nms_threshold`` (the other thresholds do not apply). The maps of a volume need
    ``axes="ZYX"``; StarDist's also the ``anisotropy`` the network was trained with
    (``config.anisotropy``), which shapes its rays.

    Examples
    --------
    >>> lab = np.zeros((10, 21), int); lab[1:9, 1:10] = 1; lab[1:9, 10:19] = 2
    >>> d = distance_targets(lab)
    >>> int(instances_from_maps(d, formulation="distance", seed_threshold=0.5).max())
    2
    """
    if _check_formulation(formulation) == "stardist":
        return instances_from_star(maps, prob_threshold=prob_threshold,
                                   nms_threshold=nms_threshold, axes=axes,
                                   anisotropy=anisotropy)
    if seed_threshold is None:
        raise ValueError(f"the {formulation} formulation needs a seed_threshold; choose it "
                         "with tune_thresholds on validation images.")
    if formulation == "three_class":
        maps = np.asarray(maps)
        if maps.ndim != spatial_ndim(axes) + 1 or maps.shape[0] != 3:
            layout = "(3, Y, X)" if spatial_ndim(axes) == 2 else "(3, Z, Y, X)"
            raise ValueError(f"three-class maps must be {layout} probabilities, got shape "
                             f"{maps.shape}; use predict_maps(..., formulation='three_class')"
                             + (" and axes='ZYX' for a volume." if maps.ndim == 4 else "."))
        return instances_from_interior(maps[1], maps[1] + maps[2] > 0.5, axes=axes,
                                       threshold=seed_threshold, min_size=min_size)
    return instances_from_distance(maps, seed_threshold=seed_threshold, axes=axes,
                                   foreground_threshold=foreground_threshold, min_size=min_size)


def segment(model, image, *, formulation: str, thresholds: dict, tile_size=None,
            device=None, axes: str | None = None, anisotropy=None) -> np.ndarray:
    """Instance labels of one image: :func:`predict_maps`, then :func:`instances_from_maps`.

    With ``tile_size`` the maps are predicted tile by tile and labelled once, so large
    images get no seams. A volume ``(Z, Y, X)`` needs ``axes="ZYX"`` and a network of
    volumes (StarDist's also its ``anisotropy``); a network of images segments a volume
    plane by plane with :func:`label_planes` and :func:`join_planes`.

    Examples
    --------
    >>> net = UNet(1, 1, depth=1, base_channels=4)
    >>> segment(net, np.zeros((16, 16)), formulation="distance",
    ...         thresholds={"seed_threshold": 0.5}).shape
    (16, 16)
    """
    maps = predict_maps(model, image, formulation=formulation, tile_size=tile_size,
                        device=device, axes=axes)
    return instances_from_maps(maps, formulation=formulation, axes=axes, anisotropy=anisotropy,
                               **thresholds)
