"""Instance segmentation of nuclei with U-Nets: one API for training and prediction.

The same four calls serve every formulation (the U-Net's three classes, its distance map,
StarDist's polygons, see :mod:`dlbio_teach.star`):
:class:`SegmentationConfig` (sizes from the run profile), :func:`train_segmentation`
(one call, writes the run record with ``run_dir=``), :func:`segment` (a trained network
and an image in, instance labels out; tiled for large images: :func:`predict_maps`, then
:func:`instances_from_maps`) and :func:`~dlbio_teach.tuning.tune_thresholds`
(post-processing thresholds chosen on validation images). :func:`label_tiles_separately`
is what *not* to do on a large image (label each tile on its own), kept to show the seams.

The building blocks have modules of their own: the classical baseline every network must
beat (:mod:`dlbio_teach.baseline`), the training targets and the instances read back from
them (:mod:`dlbio_teach.targets`), and a volume's planes (:mod:`dlbio_teach.planes`).
Their functions are documented there, and can still be imported from here
(``from dlbio_teach.segmentation import otsu_watershed``).

Volumes ``(Z, Y, X)`` take the same calls with ``axes="ZYX"``: a
:class:`SegmentationConfig` with ``axes="ZYX"`` trains a 3D U-Net, with the voxels'
``anisotropy`` (:func:`~dlbio_teach.planes.anisotropy_from_labels`) for the distances and
rays. A 2D network segments a volume plane by plane
(:func:`~dlbio_teach.planes.label_planes`, then :func:`~dlbio_teach.planes.join_planes`).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from skimage import measure, segmentation  # noqa: F401 (measure: label_tiles_separately's example)
from torch.nn import functional as F

from .augment import Augmentation, SegmentationTransform
from .baseline import otsu_watershed  # noqa: F401 (importable from here, see above)
from .models import UNet
from .planes import (  # noqa: F401 (importable from here, see above)
    anisotropy_from_labels,
    join_planes,
    label_planes,
)
from .prediction import network_ndim, predict
from .preprocessing import check_image, check_labels, random_patches, spatial_ndim
from .records import RECORD_FILE, RunRecord, _plain, rebuild_model
from .runtime import Profile, hardware_info
from .star import (
    DEFAULT_N_RAYS,
    DEFAULT_N_RAYS_3D,
    StarDistLoss,
    check_anisotropy,
    check_n_rays,
    instances_from_star,
    star_targets,
)
from .targets import (  # noqa: F401 (importable from here, see above)
    BACKGROUND,
    BOUNDARY,
    INTERIOR,
    class_weights,
    distance_targets,
    instances_from_distance,
    instances_from_interior,
    three_class_targets,
)
from .training import History, fit

# This module's own names, documented on its page. The names of the baseline, targets
# and planes modules above are importable from here too, but are not listed: each is
# documented once, in its own module.
__all__ = ["FORMULATIONS", "SegmentationConfig", "training_targets", "WeightedCrossEntropy",
           "train_segmentation", "predict_maps", "instances_from_maps", "segment",
           "label_tiles_separately"]

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
    boundary, weighted cross-entropy), ``"distance"``
    (:func:`~dlbio_teach.targets.distance_targets`, mean squared error) or ``"stardist"``
    (:func:`~dlbio_teach.star.star_targets` with
    ``n_rays`` rays, :class:`~dlbio_teach.star.StarDistLoss`; ``n_rays`` a multiple of 4
    when ``augment``, so that rotations map rays onto rays). ``n_val_patches`` defaults
    to ``max(32, n_patches // 4)``; ``n_rays`` to StarDist's 32 (96 for volumes).
    ``lr_schedule="cosine"`` lowers the learning rate ``lr`` towards 0 over the epochs
    (:func:`~dlbio_teach.training.epoch_lr`). ``dropout`` adds the U-Net's dropout layers
    (``UNet(dropout=...)``), for Monte Carlo dropout at prediction.

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
    lr_schedule: str = "constant"
    augment: bool | None = None
    n_val_patches: int | None = None
    profile: str | None = None
    n_rays: int | None = None
    axes: str = "YX"
    anisotropy: tuple | None = None
    pool_z: bool = True
    dropout: float = 0.0

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
        Every formulation gets the profile's ``base_channels``. StarDist in 2D also gets
        ``lr_schedule="cosine"``: with a constant rate, the same seed on CPUs whose
        kernels round differently gave test scores 0.15 apart in chapter 3 (and twice the
        channels, tried before, cost three times as long without settling it). For
        volumes give ``axes="ZYX"`` and a ``patch_size`` per axis among the changes.

        Examples
        --------
        >>> from dlbio_teach.runtime import get_profile
        >>> SegmentationConfig.from_profile("distance", get_profile("smoke")).epochs
        12
        >>> star = SegmentationConfig.from_profile("stardist", get_profile("standard"))
        >>> star.base_channels, star.lr_schedule
        (16, 'cosine')
        """
        values = dict(formulation=formulation, epochs=max(profile.epochs, 12),
                      n_patches=profile.n_patches, patch_size=profile.patch_size,
                      batch_size=profile.batch_size, base_channels=profile.base_channels,
                      profile=profile.name)
        if formulation == "stardist" and spatial_ndim(changes.get("axes", "YX")) == 2:
            values["lr_schedule"] = "cosine"
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
        """The configuration as plain data (``n_rays`` only for StarDist; ``lr_schedule``
        only when not constant, ``dropout`` only when not 0; ``axes``, ``anisotropy`` and
        ``pool_z`` only for volumes)."""
        values = asdict(self)
        if self.formulation != "stardist":
            del values["n_rays"]
        if self.lr_schedule == "constant":   # records made before the option keep matching
            del values["lr_schedule"]
        if not self.dropout:
            del values["dropout"]
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
    """Cross-entropy with one weight per class (:func:`~dlbio_teach.targets.class_weights`),
    as a loss function."""

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
                    base_channels=config.base_channels, dropout=config.dropout, **dims)
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
    device : str or torch.device, optional
        Where to train. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`), as in
        :func:`~dlbio_teach.training.fit`. The returned network is on it, a reused one too.
    model : torch.nn.Module, optional
        Start from this network (fine-tuning) instead of a new U-Net; it is moved to
        ``device`` and trained in place.
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
        The folder of an earlier run. When its record shows the same settings, seed,
        training data (the sha256 of the arrays, which every record of this function
        holds) and family of CPU kernels, its network is loaded instead of trained again:
        a seeded training on the CPU gives the same weights, so this only saves time.
        Otherwise it trains.

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
                  batch_size=config.batch_size, lr=config.lr,
                  lr_schedule=config.lr_schedule, augment=augment,
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
    # Another family of CPU kernels trains other weights from the same seed (records made
    # before the family was recorded are taken as this one's).
    kernels = hardware_info("cpu")["cpu_kernels"]
    if earlier.hardware.get("cpu_kernels", kernels) != kernels:
        return None
    # to_dict leaves out settings at their defaults (no dropout, a constant rate): a record
    # that holds one the new run leaves out trained something else.
    settings = {f.name for f in fields(SegmentationConfig)}
    if (settings & set(earlier.hyperparameters)) - set(hyperparameters):
        return None
    model = rebuild_model(folder, device=device)
    names = set(History.__dataclass_fields__)
    return model, History(**{k: v for k, v in earlier.history.items() if k in names})


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

    The network runs on ``device``, by default the course's device, without being moved
    (see :func:`~dlbio_teach.prediction.predict`).

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
    where P(interior) + P(boundary) > 0.5. Distance:
    :func:`~dlbio_teach.targets.instances_from_distance`. StarDist:
    :func:`~dlbio_teach.star.instances_from_star` with ``prob_threshold`` and
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
    plane by plane with :func:`~dlbio_teach.planes.label_planes` and
    :func:`~dlbio_teach.planes.join_planes`. The network runs on ``device``, by default
    the course's device (see :func:`~dlbio_teach.prediction.predict`).

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
