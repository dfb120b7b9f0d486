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
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage import feature, filters, measure, segmentation
from torch.nn import functional as F

from .augment import Augmentation, SegmentationTransform
from .models import UNet
from .prediction import predict
from .preprocessing import check_image, check_labels, random_patches
from .records import RECORD_FILE, RunRecord, _plain, rebuild_model
from .runtime import Profile
from .star import (
    DEFAULT_N_RAYS,
    StarDistLoss,
    check_n_rays,
    instances_from_star,
    star_targets,
)
from .training import History, fit

__all__ = ["BACKGROUND", "INTERIOR", "BOUNDARY", "three_class_targets", "class_weights",
           "otsu_watershed", "instances_from_interior", "distance_targets",
           "instances_from_distance", "label_tiles_separately", "FORMULATIONS",
           "SegmentationConfig", "training_targets", "WeightedCrossEntropy",
           "train_segmentation", "predict_maps", "instances_from_maps", "segment"]

#: The classes of the three-class targets.
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
    # Drop specks (4-connected regions under min_size pixels); written out rather than
    # remove_small_objects, whose keyword changed in scikit-image 0.26.
    regions = measure.label(foreground, connectivity=1)
    foreground = np.bincount(regions.ravel())[regions] >= min_size
    foreground &= regions > 0
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
    to ``max(32, n_patches // 4)``.
    """

    formulation: str
    epochs: int = 20
    n_patches: int = 512
    patch_size: int = 48
    batch_size: int = 16
    depth: int = 2
    base_channels: int = 16
    lr: float = 3e-3
    augment: bool = True
    n_val_patches: int | None = None
    profile: str | None = None
    n_rays: int = DEFAULT_N_RAYS

    def __post_init__(self):
        """Check the formulation, the patch size (a multiple of ``2 ** depth``), the rays."""
        _check_formulation(self.formulation)
        if self.patch_size % 2 ** self.depth:
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of "
                             f"2**depth = {2 ** self.depth}.")
        if self.formulation == "stardist":
            check_n_rays(self.n_rays)
            if self.augment and self.n_rays % 4:
                raise ValueError(f"n_rays must be a multiple of 4 for augment=True (90-degree "
                                 f"rotations turn ray j into ray j + n_rays / 4), got "
                                 f"{self.n_rays}; use 16, 32 or 64, or augment=False.")

    @classmethod
    def from_profile(cls, formulation: str, profile: Profile,
                     **changes) -> SegmentationConfig:
        """The sizes of a run profile, with optional changes.

        At least 12 epochs: fewer (the smoke profile's 6) leave the boundary class unlearnt.
        StarDist gets twice the profile's ``base_channels``: its ``1 + n_rays`` output maps
        are read from the last feature maps, and 16 of them are few for 33 maps (a wider
        network trains longer; chapter 3 trains and scores it).

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

    @property
    def n_outputs(self) -> int:
        """Output channels of the network."""
        if self.formulation == "stardist":
            return 1 + self.n_rays
        return OUTPUT_CHANNELS[self.formulation]

    def to_dict(self) -> dict:
        """The configuration as plain data (``n_rays`` only for StarDist)."""
        values = asdict(self)
        if self.formulation != "stardist":
            del values["n_rays"]
        return values


def training_targets(labels, *, formulation: str, n_rays: int = DEFAULT_N_RAYS) -> np.ndarray:
    """What the network learns from each instance mask of a stack ``(N, Y, X)``.

    Classes ``(N, Y, X)``, distances ``(N, Y, X)``, or StarDist's ``(N, 1 + n_rays, Y, X)``
    (whose labels must be numbered 1..N without holes:
    :func:`~dlbio_teach.star.prepare_star_labels`).

    Examples
    --------
    >>> lab = np.zeros((1, 6, 6), int); lab[0, 1:5, 1:5] = 1
    >>> training_targets(lab, formulation="three_class").dtype
    dtype('int64')
    >>> training_targets(lab, formulation="stardist", n_rays=8).shape
    (1, 9, 6, 6)
    """
    if _check_formulation(formulation) == "stardist":
        return np.stack([star_targets(t, n_rays) for t in np.asarray(labels)])
    make = {"three_class": three_class_targets, "distance": distance_targets}[formulation]
    return np.stack([make(t) for t in np.asarray(labels)])


class WeightedCrossEntropy:
    """Cross-entropy with one weight per class (:func:`class_weights`), as a loss function."""

    __name__ = "weighted cross-entropy"

    def __init__(self, weights):
        self.weights = torch.as_tensor(np.asarray(weights, np.float32))

    def __call__(self, output, target):
        """The weighted cross-entropy of logits ``(N, K, Y, X)`` against classes ``(N, Y, X)``."""
        return F.cross_entropy(output, target, weight=self.weights.to(output.device))


def _check_stacks(images, labels, *, name: str, patch_size: int):
    images = check_image(images, ndim=(3,), name=f"{name} images", min_size=patch_size)
    labels = np.asarray(labels)
    if labels.shape != images.shape:
        raise ValueError(f"{name} labels {labels.shape} must match the images "
                         f"{images.shape}: one instance mask per image.")
    return images, np.stack([check_labels(t, name=f"{name} labels") for t in labels])


def _patches(config: SegmentationConfig, images, targets, n_patches: int, seed: int):
    """The same windows of the images and their targets ``(N, Y, X)`` or ``(N, C, Y, X)``.

    StarDist's targets are computed on whole images, so a nucleus cut by the patch border
    keeps its full rays (StarDist2D computes them on the patch instead)."""
    if targets.ndim == 3:
        return random_patches([images, targets], config.patch_size, n_patches, seed=seed)
    x, *channels = random_patches([images, *np.moveaxis(targets, 1, 0)], config.patch_size,
                                  n_patches, seed=seed)
    return x, np.stack(channels, axis=1)


def _transform(config: SegmentationConfig, augmentation: Augmentation | None):
    """``fit``'s ``(augment, transform)``: StarDist's rays turn with the image in the
    transform, not in ``fit``'s flips, which know nothing of rays."""
    if config.formulation != "stardist" and augmentation is None:
        return config.augment, None
    flips = config.augment and config.formulation == "stardist"
    return config.augment and not flips, SegmentationTransform(augmentation,
                                                                config.formulation, flips=flips)


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
    val_images, val_labels : ndarray ``(M, Y, X)``
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
    images, labels = _check_stacks(images, labels, name="training", patch_size=config.patch_size)
    val_images, val_labels = _check_stacks(val_images, val_labels, name="validation",
                                           patch_size=config.patch_size)
    targets = training_targets(labels, formulation=config.formulation, n_rays=config.n_rays)
    val_targets = training_targets(val_labels, formulation=config.formulation,
                                   n_rays=config.n_rays)
    if config.formulation == "three_class":
        loss_fn = WeightedCrossEntropy(class_weights(targets))
        extra = {"class_weights": loss_fn.weights.tolist()}
    elif config.formulation == "stardist":
        loss_fn, extra = StarDistLoss(), {}
    else:
        loss_fn, extra = F.mse_loss, {}
    if augmentation is not None:
        extra["augmentation"] = augmentation.to_dict()
    n_val = config.n_val_patches or max(32, config.n_patches // 4)
    train = _patches(config, images, targets, config.n_patches, seed)
    val = _patches(config, val_images, val_targets, n_val, 1)
    fresh_model = model is None
    if model is None:
        torch.manual_seed(seed)
        model = UNet(1, config.n_outputs, depth=config.depth, base_channels=config.base_channels)
    elif config.formulation == "stardist" and getattr(model, "config", {}).get(
            "out_channels", config.n_outputs) != config.n_outputs:
        raise ValueError(f"the model has {model.config['out_channels']} output channels; "
                         f"StarDist with n_rays={config.n_rays} needs 1 + n_rays = "
                         f"{config.n_outputs}.")
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


def predict_maps(model, image, *, formulation: str, tile_size: int | None = None,
                 device=None) -> np.ndarray:
    """The network's maps for one image: class probabilities ``(3, Y, X)``, distance
    ``(Y, X)``, or StarDist's probability and ray distances ``(1 + n_rays, Y, X)``.

    Examples
    --------
    >>> net = UNet(1, 3, depth=1, base_channels=4)
    >>> p = predict_maps(net, np.zeros((16, 16)), formulation="three_class")
    >>> p.shape, bool(np.allclose(p.sum(axis=0), 1, atol=1e-5))
    ((3, 16, 16), True)
    """
    output = predict(model, image, tile_size=tile_size, device=device)
    if _check_formulation(formulation) == "three_class":
        return torch.softmax(torch.from_numpy(output), dim=0).numpy()
    if formulation == "stardist":
        if output.ndim != 3 or len(output) < 4:
            raise ValueError(f"a StarDist network has 1 + n_rays (n_rays >= 3) output "
                             f"channels; this one gives shape {output.shape}.")
        output[0] = torch.sigmoid(torch.from_numpy(output[0])).numpy()
    return output


def instances_from_maps(maps, *, formulation: str, seed_threshold: float | None = None,
                        foreground_threshold: float = 0.1, min_size: int = 10,
                        prob_threshold: float = 0.5, nms_threshold: float = 0.4) -> np.ndarray:
    """Label nuclei from :func:`predict_maps`, with thresholds chosen on validation images.

    Three classes: seeds where P(interior) > ``seed_threshold``, grown over the pixels
    where P(interior) + P(boundary) > 0.5. Distance: :func:`instances_from_distance`.
    StarDist: :func:`~dlbio_teach.star.instances_from_star` with ``prob_threshold`` and
    ``nms_threshold`` (the other thresholds do not apply).

    Examples
    --------
    >>> lab = np.zeros((10, 21), int); lab[1:9, 1:10] = 1; lab[1:9, 10:19] = 2
    >>> d = distance_targets(lab)
    >>> int(instances_from_maps(d, formulation="distance", seed_threshold=0.5).max())
    2
    """
    if _check_formulation(formulation) == "stardist":
        return instances_from_star(maps, prob_threshold=prob_threshold,
                                   nms_threshold=nms_threshold)
    if seed_threshold is None:
        raise ValueError(f"the {formulation} formulation needs a seed_threshold; choose it "
                         "with tune_thresholds on validation images.")
    if formulation == "three_class":
        maps = np.asarray(maps)
        if maps.ndim != 3 or maps.shape[0] != 3:
            raise ValueError(f"three-class maps must be (3, Y, X) probabilities, got shape "
                             f"{maps.shape}; use predict_maps(..., formulation='three_class').")
        return instances_from_interior(maps[1], maps[1] + maps[2] > 0.5,
                                       threshold=seed_threshold, min_size=min_size)
    return instances_from_distance(maps, seed_threshold=seed_threshold,
                                   foreground_threshold=foreground_threshold, min_size=min_size)


def segment(model, image, *, formulation: str, thresholds: dict,
            tile_size: int | None = None, device=None) -> np.ndarray:
    """Instance labels of one image: :func:`predict_maps`, then :func:`instances_from_maps`.

    With ``tile_size`` the maps are predicted tile by tile and labelled once, so large
    images get no seams.

    Examples
    --------
    >>> net = UNet(1, 1, depth=1, base_channels=4)
    >>> segment(net, np.zeros((16, 16)), formulation="distance",
    ...         thresholds={"seed_threshold": 0.5}).shape
    (16, 16)
    """
    maps = predict_maps(model, image, formulation=formulation, tile_size=tile_size,
                        device=device)
    return instances_from_maps(maps, formulation=formulation, **thresholds)
