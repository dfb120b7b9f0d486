"""Image restoration: CARE, Noise2Noise and Noise2Void through one interface.

The three methods train the same U-Net and differ only in what they learn from:

* **CARE** (Weigert et al. 2018): pairs of a noisy image and a clean image of the same field.
* **Noise2Noise** (Lehtinen et al. 2018): pairs of two independent noisy images of the same
  field; the noise averages out in the loss, so no clean image is needed.
* **Noise2Void** (Krull et al. 2019): single noisy images. A few pixels of each patch are
  hidden (replaced by a neighbour) and the network must predict them from their
  surroundings; since the noise of a pixel cannot be guessed from its neighbours, only the
  signal can be learned. The masking is written out in :func:`n2v_mask`.

Volumes ``(Z, Y, X)`` go through the same functions when the caller says so
(``axes="ZYX"``): the configuration builds a 3D U-Net, the blind spots are voxels whose
replacement is drawn from a box around them in Z, Y and X, and the classical baselines
filter in 3D.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.restoration import denoise_nl_means
from torch.nn import functional as F

from .models import UNet
from .preprocessing import check_image, random_patches, spatial_ndim
from .runtime import Profile
from .training import fit

__all__ = ["METHODS", "RestorationConfig", "anscombe", "inverse_anscombe", "gaussian_poisson",
           "nl_means_poisson", "n2v_mask", "n2v_mask_batch",
           "n2v_loss", "training_patches", "train_restoration"]

#: The restoration methods, CARE, Noise2Noise and Noise2Void.
METHODS = ("care", "n2n", "n2v")


@dataclass(frozen=True, repr=False)
class RestorationConfig:
    """Everything that defines one restoration training; stored in the run record.

    ``n2v_fraction`` is the share of pixels hidden per patch (N2V's default 0.2 %, here
    larger because our patches are few), ``n2v_radius`` the neighbourhood a replacement
    value is drawn from. ``n_val_patches`` (default: a quarter of ``n_patches``) are cut
    from the validation images once and scored after every epoch.

    For volumes, ``axes="ZYX"``: the stacks are then ``(N, Z, Y, X)``, the U-Net is 3D,
    ``patch_size`` and ``n2v_radius`` may give one value per axis (``(16, 48, 48)``,
    ``(1, 2, 2)``), and ``pool_z=False`` keeps the U-Net from halving Z (for stacks of
    few, widely spaced planes). The two fields of volumes are left out of a plane's
    ``repr`` and :meth:`to_dict`.

    Examples
    --------
    >>> RestorationConfig("n2v", patch_size=(8, 32, 32), n2v_radius=(1, 2, 2),
    ...                   axes="ZYX").patch_size
    (8, 32, 32)
    >>> RestorationConfig("n2v", patch_size=(6, 32, 32), axes="ZYX")
    Traceback (most recent call last):
    ...
    ValueError: patch_size (6, 32, 32): its Z side 6 must be a multiple of 2**depth = 4
    (or pool_z=False, which halves Y and X only).
    """

    method: str
    epochs: int = 20
    n_patches: int = 768
    patch_size: int | tuple = 64
    batch_size: int = 16
    depth: int = 2
    base_channels: int = 16
    lr: float = 1e-3
    patience: int | None = None
    n2v_fraction: float = 0.02
    n2v_radius: int | tuple = 2
    n2v_struct: int = 0
    n_val_patches: int | None = None
    profile: str | None = None
    axes: str | None = None
    pool_z: bool = True

    def __post_init__(self):
        """Check the method, the layout, and that each patch side is a multiple of what
        the U-Net halves (``2 ** depth``)."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        ndim = spatial_ndim(self.axes)
        if ndim == 2 and not self.pool_z:
            raise ValueError("pool_z=False is for volumes: it needs axes='ZYX'.")
        if not isinstance(self.n2v_struct, (int, np.integer)) or self.n2v_struct < 0:
            raise ValueError(f"n2v_struct must be an int >= 0 (pixels hidden on each side of "
                             f"a blind spot along X), got {self.n2v_struct!r}.")
        for name in ("patch_size", "n2v_radius"):   # a run record's JSON gives lists
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        sizes = _per_axis(self.patch_size, ndim, "patch_size")
        _per_axis(self.n2v_radius, ndim, "n2v_radius")
        if isinstance(self.patch_size, int):
            if self.patch_size % 2 ** self.depth:
                raise ValueError(f"patch_size {self.patch_size} must be a multiple of "
                                 f"2**depth = {2 ** self.depth}.")
            return
        for axis, side in zip("ZYX"[-ndim:], sizes):
            multiple = 1 if axis == "Z" and not self.pool_z else 2 ** self.depth
            if side % multiple:
                hint = (" (or pool_z=False, which halves Y and X only)" if axis == "Z"
                        else "")
                raise ValueError(f"patch_size {self.patch_size}: its {axis} side {side} must "
                                 f"be a multiple of 2**depth = {multiple}{hint}.")

    @property
    def ndim(self) -> int:
        """How many spatial axes the images have (2, or 3 for volumes)."""
        return spatial_ndim(self.axes)

    @classmethod
    def from_profile(cls, method: str, profile: Profile, *, axes: str | None = None,
                     **changes) -> RestorationConfig:
        """The sizes of a run profile, with optional changes.

        With ``axes="ZYX"``, sizes for volumes: patches of ``(s // 3, s, s)`` voxels for the
        profile's side ``s`` (Z rounded down to a multiple of ``2 ** depth``), a quarter
        of the patches, a quarter of the batch (at least 2) and half the epochs (at least
        3). A patch of 16 x 48 x 48 voxels holds 16 times the pixels of a 48 x 48 patch
        and its convolutions have three times the weights, so the same numbers would take
        about fifty times as long.

        Examples
        --------
        >>> from dlbio_teach.runtime import get_profile
        >>> RestorationConfig.from_profile("n2v", get_profile("smoke")).patch_size
        32
        >>> RestorationConfig.from_profile("n2v", get_profile("standard"),
        ...                                axes="ZYX").patch_size
        (16, 48, 48)
        """
        values = dict(method=method, epochs=profile.epochs, n_patches=profile.n_patches,
                      patch_size=profile.patch_size, batch_size=profile.batch_size,
                      base_channels=profile.base_channels, profile=profile.name)
        if spatial_ndim(axes) == 3:
            side = profile.patch_size
            multiple = 2 ** changes.get("depth", cls.depth)
            values.update(axes=axes, patch_size=(max(multiple, side // 3 // multiple * multiple),
                                                 side, side),
                          n_patches=max(1, profile.n_patches // 4),
                          batch_size=max(2, profile.batch_size // 4),
                          epochs=max(3, profile.epochs // 2))
        values.update(changes)
        return cls(**values)

    def to_dict(self) -> dict:
        """The configuration as plain data."""
        values = asdict(self)
        if self.axes is None:
            del values["axes"], values["pool_z"]
        if not self.n2v_struct:   # plain Noise2Void: its records stay as they were
            del values["n2v_struct"]
        return values

    def __repr__(self) -> str:
        """The fields of :meth:`to_dict`, as the constructor takes them."""
        fields = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"{type(self).__name__}({fields})"


def _per_axis(value, ndim: int, name: str) -> tuple:
    """``value`` (one int, or one per spatial axis) as a tuple of ``ndim`` ints."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim
    if len(values) != ndim or not all(isinstance(v, (int, np.integer)) for v in values):
        raise ValueError(f"{name} must be an int or {ndim} ints (one per axis, "
                         f"{', '.join('ZYX'[-ndim:])}), got {value!r}.")
    return tuple(int(v) for v in values)


def n2v_mask_batch(x: torch.Tensor, *, fraction: float, radius: int | tuple,
                   struct: int = 0, generator: torch.Generator | None = None):
    """Blind-spot masking of a batch ``(N, C, Y, X)`` or ``(N, C, Z, Y, X)``: returns
    ``(masked, mask)``, the mask ``(N, 1, ...)``.

    Each image (each plane of a volume) is divided into squares of about ``1 / fraction``
    pixels, of side ``round(fraction ** -0.5)``; one pixel per square is chosen at random
    (stratified sampling, so the hidden pixels cover the patch evenly) and replaced by the
    value of a random other pixel within ``radius`` along each axis. ``radius`` is one
    int, or one per spatial axis.

    In a volume, every plane thus holds the same share of hidden voxels, however few or
    far apart the planes, and the replacement comes from the box of ``2 * radius + 1``
    voxels along Z, Y and X around the hidden voxel, the voxel itself excluded.
    Noise2Void's own package and CAREamics spread the hidden voxels over cubes instead,
    and draw the replacement from the same width along every axis (a radius of 5 by
    default). For stacks whose planes lie far apart compared with the pixel size, a
    smaller radius along Z, such as ``(1, 2, 2)``, keeps the replacement about as close in
    space along Z as along Y and X.

    With ``struct`` > 0 (*structured* Noise2Void, Broaddus et al. 2020), the ``struct``
    pixels on each side of every blind spot along X are replaced as well, by the values
    of pixels drawn at random from anywhere in the same image: where the noise is
    correlated along rows (the stripes of a scanning microscope), the neighbours along
    the row would otherwise tell the network the hidden pixel's noise. The loss stays on
    the blind spots alone (``mask``).
    """
    if x.ndim not in (4, 5):
        raise ValueError(f"x must be a batch (N, C, Y, X) or (N, C, Z, Y, X), got shape "
                         f"{tuple(x.shape)}.")
    n, sides = x.shape[0], tuple(x.shape[2:])
    ndim = len(sides)
    radii = _per_axis(radius, ndim, "radius")
    if min(radii) < 1:
        raise ValueError(f"radius must be at least 1 (a neighbour to copy from), got {radius}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    if struct < 0:
        raise ValueError(f"struct must be >= 0 (pixels along X on each side), got {struct}.")
    # Where a hidden pixel clamped onto itself at the border moves: the first axis that
    # has a neighbour (Y for an image, Z for a volume).
    movable = [i for i, side in enumerate(sides) if side > 1]
    if not movable:
        raise ValueError(f"a patch of {sides} pixels has no neighbour to copy from.")
    box = max(1, int(round(fraction ** -0.5)))
    boxes = (1,) * (ndim - 2) + (box, box)
    grid = torch.meshgrid(*(torch.arange(0, s, b) for s, b in zip(sides, boxes)), indexing="ij")
    grid = [g.reshape(-1) for g in grid]
    k = grid[0].numel()
    where = [(g + torch.randint(0, b, (n, k), generator=generator)).clamp(max=s - 1)
             for g, b, s in zip(grid, boxes, sides)]
    # A random offset in the box of (2r+1) pixels along each axis, never 0 along all of
    # them (the pixel itself): an index into the box that skips its centre.
    spans = [2 * r + 1 for r in radii]
    size = int(np.prod(spans))
    choice = torch.randint(0, size - 1, (n, k), generator=generator)
    choice = choice + (choice >= size // 2).long()
    offsets = []
    for span, r in zip(reversed(spans), reversed(radii)):
        offsets.insert(0, choice % span - r)
        choice = choice // span
    source = [(w + d).clamp(0, s - 1) for w, d, s in zip(where, offsets, sides)]
    same = torch.stack([s == w for s, w in zip(source, where)]).all(0)  # clamped onto itself
    axis = movable[0]
    source[axis] = torch.where(same, torch.where(where[axis] > 0, where[axis] - 1,
                                                 where[axis] + 1), source[axis])
    batch = torch.arange(n)[:, None].expand(n, k)
    masked = x.clone()
    mask = torch.zeros((n, 1, *sides), dtype=x.dtype)
    masked[(batch, slice(None), *where)] = x[(batch, slice(None), *source)]
    mask[(batch, 0, *where)] = 1.0
    for step in [d for d in range(-struct, struct + 1) if d]:
        target = [*where[:-1], (where[-1] + step).clamp(0, sides[-1] - 1)]
        anywhere = [torch.randint(0, s, (n, k), generator=generator) for s in sides]
        itself = torch.stack([a == t for a, t in zip(anywhere, target)]).all(0)
        anywhere[-2] = torch.where(itself, (target[-2] + 1) % sides[-2], anywhere[-2])
        masked[(batch, slice(None), *target)] = x[(batch, slice(None), *anywhere)]
    return masked, mask


def n2v_mask(patch, *, fraction: float = 0.02, radius: int | tuple = 2, seed: int = 0,
             axes: str | None = None):
    """Blind-spot masking of one image ``(Y, X)``, or of a volume ``(Z, Y, X)`` with
    ``axes="ZYX"``: returns ``(masked, mask)`` as arrays (see :func:`n2v_mask_batch`).

    Examples
    --------
    >>> patch = np.arange(64.0).reshape(8, 8)
    >>> masked, mask = n2v_mask(patch, fraction=0.1, seed=0)
    >>> bool(np.all(masked[mask == 0] == patch[mask == 0])), int(mask.sum()) > 0
    (True, True)
    >>> volume = np.arange(512.0).reshape(8, 8, 8)
    >>> masked, mask = n2v_mask(volume, fraction=0.25, radius=(1, 2, 2), axes="ZYX")
    >>> mask.shape, float(mask.mean())
    ((8, 8, 8), 0.25)
    """
    patch = check_image(patch, axes=axes)
    x = torch.from_numpy(patch)[None, None]
    masked, mask = n2v_mask_batch(x, fraction=fraction, radius=radius,
                                  generator=torch.Generator().manual_seed(seed))
    return masked[0, 0].numpy(), mask[0, 0].numpy()


def n2v_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
    """Mean squared error over the masked (blind-spot) pixels only."""
    return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def training_patches(config: RestorationConfig, noisy, clean=None, noisy2=None, *,
                     seed: int = 0):
    """Cut the patches one method learns from, out of aligned image stacks ``(N, Y, X)``
    (volumes ``(N, Z, Y, X)`` when ``config.axes == "ZYX"``).

    Returns the tuple that :func:`dlbio_teach.training.fit` takes: ``(input, target)``
    for CARE and Noise2Noise, ``(noisy,)`` for Noise2Void (masked at each step). Patches
    of images are ``(n_patches, Y, X)``; patches of volumes carry their channel axis,
    ``(n_patches, 1, Z, Y, X)``, since ``fit`` adds one only to stacks of images.

    Examples
    --------
    >>> config = RestorationConfig("n2v", n_patches=3, patch_size=(4, 8, 8), axes="ZYX")
    >>> training_patches(config, np.zeros((2, 6, 16, 16)))[0].shape
    (3, 1, 4, 8, 8)
    """
    noisy = np.asarray(noisy, np.float32)
    cut = dict(seed=seed, axes=config.axes)
    if config.method == "care":
        if clean is None:
            raise ValueError("CARE needs clean targets: pass clean=... (same shape as noisy).")
        patches = random_patches([noisy, clean], config.patch_size, config.n_patches, **cut)
    elif config.method == "n2n":
        if noisy2 is None:
            raise ValueError("Noise2Noise needs a second, independent noisy image of each "
                             "field: pass noisy2=... (same shape as noisy).")
        # Both directions: each noisy image serves once as input and once as target; half
        # as many windows, so that every method takes the same number of steps.
        a, b = random_patches([noisy, noisy2], config.patch_size,
                              max(1, config.n_patches // 2), **cut)
        patches = np.concatenate([a, b]), np.concatenate([b, a])
    else:
        patches = random_patches([noisy], config.patch_size, config.n_patches, **cut)
    if config.ndim == 3:
        patches = tuple(p[:, None] for p in patches)
    return tuple(patches)


def train_restoration(config: RestorationConfig, train: dict, val: dict, *, device=None,
                      seed: int = 0, checkpoint_dir=None, progress: bool = True,
                      run_dir=None, record: dict | None = None):
    """Train a U-Net for one restoration method; return ``(model, history)``.

    Parameters
    ----------
    config : RestorationConfig
    train, val : dict
        ``{"noisy": (N, Y, X), "clean": ..., "noisy2": ...}``: the stacks the method
        needs (CARE: noisy + clean; Noise2Noise: noisy + noisy2; Noise2Void: noisy).
        Validation is scored with the method's own loss, so Noise2Void and Noise2Noise
        never see a clean image. With ``config.axes == "ZYX"``, stacks of volumes
        ``(N, Z, Y, X)``, and the U-Net is 3D (``UNet(ndim=3)``).
    device : str or torch.device, optional
        Where to train. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`), as in
        :func:`~dlbio_teach.training.fit`; the returned network is on it.
    seed, progress
        Passed to :func:`dlbio_teach.training.fit`; ``seed`` also seeds the initial
        weights and the training patches.
    checkpoint_dir : path, optional
        Checkpoints to resume an interrupted training (see :func:`~dlbio_teach.training.fit`),
        as in :func:`~dlbio_teach.segmentation.train_segmentation`: after each epoch the
        folder gets ``last.pt`` (weights, optimiser state, history) and ``best.pt``; when
        it already holds a ``last.pt``, the training continues from that epoch and takes
        the same steps as one that was never interrupted. Use one folder per training
        (per method and seed): a folder of a finished training trains no more.
    run_dir : path, optional
        Where ``fit`` writes the run record (with this configuration) and the weights.
    record : dict, optional
        More for the run record (``datasets``, ``splits``, ``synthetic_data``, ...).

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei, add_poisson_gaussian_noise
    >>> clean = np.stack([nuclei((64, 64), 5, seed=s)[0] for s in range(2)])
    >>> noisy = add_poisson_gaussian_noise(clean, photons=20)
    >>> cfg = RestorationConfig("n2v", epochs=1, n_patches=16, patch_size=32, base_channels=4)
    >>> model, history = train_restoration(cfg, {"noisy": noisy}, {"noisy": noisy},
    ...                                    progress=False)
    >>> history.epochs_run
    1

    With ``checkpoint_dir``, a second call (after a disconnect, or with more epochs)
    continues where the first stopped:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = train_restoration(cfg, {"noisy": noisy}, {"noisy": noisy}, progress=False,
    ...                       checkpoint_dir=folder)
    >>> longer = replace(cfg, epochs=2)
    >>> model, history = train_restoration(longer, {"noisy": noisy}, {"noisy": noisy},
    ...                                    progress=False, checkpoint_dir=folder)
    >>> history.epochs_run, len(history.val_loss)
    (2, 2)

    Volumes, with a 3D U-Net:

    >>> from scipy import ndimage
    >>> blobs = ndimage.gaussian_filter(np.random.default_rng(0).random((2, 8, 32, 32)), 2)
    >>> cfg3d = RestorationConfig("n2v", epochs=1, n_patches=4, patch_size=(8, 16, 16),
    ...                           batch_size=2, base_channels=4, axes="ZYX")
    >>> model, history = train_restoration(cfg3d, {"noisy": blobs}, {"noisy": blobs},
    ...                                    progress=False)
    >>> model.ndim, history.epochs_run
    (3, 1)
    """
    for part, stacks in (("train", train), ("val", val)):
        for key, value in stacks.items():
            _check_stack(value, config, name=f"{part}[{key!r}]")
    torch.manual_seed(seed)   # same initial weights for every method of one seed
    # CARE and Noise2Noise predict a correction of the input. Noise2Void must not: its
    # training never shows a pixel's own value (the blind spot), so a residual path would
    # pass that pixel's noise straight through at prediction time.
    volume = dict(ndim=3, pool_z=config.pool_z) if config.ndim == 3 else {}
    model = UNet(1, 1, depth=config.depth, base_channels=config.base_channels,
                 residual_output=config.method != "n2v", **volume)
    train_data = training_patches(config, train["noisy"], train.get("clean"),
                                  train.get("noisy2"), seed=seed)
    n_val = config.n_val_patches or max(1, config.n_patches // 4)
    val_data = training_patches(replace(config, n_patches=n_val), val["noisy"],
                                val.get("clean"), val.get("noisy2"), seed=seed + 1)
    if config.method == "n2v":
        def transform(batch, generator):
            masked, mask = n2v_mask_batch(batch[0], fraction=config.n2v_fraction,
                                          radius=config.n2v_radius, struct=config.n2v_struct,
                                          generator=generator)
            return [masked, batch[0], mask]
        loss_fn = n2v_loss
    else:
        transform, loss_fn = None, F.mse_loss
    record = dict(record or {})
    record["hyperparameters"] = {**config.to_dict(), **record.get("hyperparameters", {})}
    record.setdefault("profile", config.profile)
    history = fit(model, train_data, val_data, loss_fn=loss_fn, epochs=config.epochs,
                  batch_size=config.batch_size, lr=config.lr, device=device,
                  patience=config.patience, augment=True, transform=transform,
                  checkpoint_dir=checkpoint_dir, resume=checkpoint_dir is not None,
                  seed=seed, progress=progress, run_dir=run_dir, record=record)
    return model, history


def _check_stack(value, config: RestorationConfig, *, name: str) -> np.ndarray:
    """A training or validation stack checked against the configuration's layout and
    patch size, with a hint when a volume comes without ``axes="ZYX"``."""
    sizes = _per_axis(config.patch_size, config.ndim, "patch_size")
    shape = np.shape(value)
    try:
        stack = check_image(value, ndim=(3,), name=name, axes=config.axes,
                            min_size=min(sizes[-2:]))
    except ValueError as err:
        if config.ndim == 2 and len(shape) == 4 and shape[-1] not in (3, 4):
            raise ValueError(f"{err} For a stack of volumes (N, Z, Y, X), say so in the "
                             "configuration: RestorationConfig(..., axes='ZYX').") from None
        raise
    if config.ndim == 3 and stack.shape[1] < sizes[0]:
        raise ValueError(f"{name} has {stack.shape[1]} planes, fewer than the {sizes[0]} of "
                         f"a patch {config.patch_size}; use a smaller patch along Z.")
    return stack


# --- Classical baselines, made fair for Poisson-Gaussian noise ----------------------------
#
# Shot noise grows with the signal, while a Gaussian filter and non-local means assume one
# noise level everywhere. The generalised Anscombe transform (Murtagh, Starck & Bijaoui 1995)
# makes Poisson-Gaussian noise close to Gaussian with unit variance; the filter runs there,
# and its output is mapped back with the closed-form approximation of the exact unbiased
# inverse (Makitalo & Foi 2011, 2013). Written out here because the course teaches it.


def anscombe(image, *, photons: float, read_noise: float) -> np.ndarray:
    """Generalised Anscombe transform: Poisson-Gaussian noise -> noise of unit variance.

    ``image`` is scaled so that 1 means ``photons`` photons (as
    :func:`~dlbio_teach.synthetic.add_poisson_gaussian_noise` makes it); ``read_noise`` is
    the camera's Gaussian noise in photons (standard deviation).

    Examples
    --------
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> flat = np.full((200, 200), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(flat, photons=20, read_noise=1.0, seed=0)
    >>> round(float(anscombe(noisy, photons=20, read_noise=1.0).std()), 1)
    1.0
    """
    counts = np.asarray(image, np.float64) * photons
    return 2.0 * np.sqrt(np.maximum(counts + 3.0 / 8.0 + read_noise ** 2, 0.0))


def inverse_anscombe(transformed, *, photons: float, read_noise: float) -> np.ndarray:
    """Back from :func:`anscombe`'s domain, unbiased for a denoised (smooth) image.

    Examples
    --------
    >>> x = np.linspace(0.2, 1.0, 5)
    >>> back = inverse_anscombe(anscombe(x, photons=50, read_noise=1.0), photons=50,
    ...                         read_noise=1.0)
    >>> bool(np.allclose(back, x, atol=0.01))
    True
    """
    d = np.maximum(np.asarray(transformed, np.float64), 1.0)
    r = np.sqrt(1.5)
    counts = (d ** 2 / 4 + r / (4 * d) - 11 / (8 * d ** 2) + 5 * r / (8 * d ** 3)
              - 1 / 8 - read_noise ** 2)
    return (counts / photons).astype(np.float32)


def gaussian_poisson(image, *, sigma: float | tuple, photons: float, read_noise: float,
                     axes: str | None = None, j_invariant: bool = False) -> np.ndarray:
    """Gaussian filter of width ``sigma`` applied after :func:`anscombe`, then inverted.

    With ``j_invariant``, the filter's centre weight is 0 (the rest renormalised): each
    output pixel is then computed without that pixel's own value, which is what lets
    Noise2Self (Batson and Royer, 2019) score the filter against the noisy image itself
    (:func:`dlbio_teach.assumptions.self_supervised_loss`).

    ``image`` is ``(Y, X)``, or a volume ``(Z, Y, X)`` with ``axes="ZYX"``, filtered in 3D.
    ``sigma`` is one width in pixels, or one per axis: for a stack whose planes lie
    three pixels apart, ``(sigma / 3, sigma, sigma)`` blurs as far in space along Z as
    along Y and X.

    Examples
    --------
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> flat = np.full((64, 64), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(flat, photons=10, read_noise=1.0, seed=0)
    >>> out = gaussian_poisson(noisy, sigma=2.0, photons=10, read_noise=1.0)
    >>> bool(out.std() < noisy.std() / 3)
    True
    >>> volume = add_poisson_gaussian_noise(np.full((8, 32, 32), 0.5, np.float32),
    ...                                     photons=10, read_noise=1.0, seed=0)
    >>> out = gaussian_poisson(volume, sigma=(1.0, 2.0, 2.0), photons=10, read_noise=1.0,
    ...                        axes="ZYX")
    >>> out.shape, bool(out.std() < volume.std() / 3)
    ((8, 32, 32), True)
    """
    image = check_image(image, axes=axes)
    sigma = _per_axis_width(sigma, image.ndim)
    stabilised = anscombe(image, photons=photons, read_noise=read_noise)
    if j_invariant:
        filtered = ndi.correlate(stabilised, _donut_kernel(sigma, image.ndim), mode="reflect")
    else:
        filtered = ndi.gaussian_filter(stabilised, sigma)
    return inverse_anscombe(filtered, photons=photons, read_noise=read_noise)


def _donut_kernel(sigma, ndim: int) -> np.ndarray:
    """A Gaussian kernel (4 sigma each way, as ``gaussian_filter``'s) with its centre 0."""
    widths = (sigma,) * ndim if np.ndim(sigma) == 0 else sigma
    profiles = []
    for width in widths:
        radius = max(1, int(4 * width + 0.5))
        t = np.arange(-radius, radius + 1, dtype=np.float64)
        profiles.append(np.exp(-0.5 * (t / max(width, 1e-6)) ** 2))
    kernel = profiles[0]
    for profile in profiles[1:]:
        kernel = np.multiply.outer(kernel, profile)
    kernel[tuple(len(p) // 2 for p in profiles)] = 0.0
    return kernel / kernel.sum()


def _per_axis_width(sigma, ndim: int):
    """``sigma`` as one number, or checked to hold one per axis."""
    if np.ndim(sigma) == 0:
        return float(sigma)
    if len(sigma) != ndim:
        raise ValueError(f"sigma must be one width or {ndim} (one per axis, "
                         f"{', '.join('ZYX'[-ndim:])}), got {sigma!r}.")
    return tuple(float(v) for v in sigma)


def nl_means_poisson(image, *, strength: float, photons: float, read_noise: float,
                     axes: str | None = None, patch_distance: int | None = None) -> np.ndarray:
    """Non-local means applied after :func:`anscombe` (unit noise), then inverted.

    ``strength`` sets the filter's ``h`` in units of the (unit) noise standard deviation of
    the stabilised image; choose it on validation images. Each pixel is compared through
    the patch of 5 pixels (5 x 5, or 5 x 5 x 5 voxels in a volume) around it with those
    of its neighbours up to ``patch_distance`` pixels away along each axis: 6 by default
    for an image (13 x 13 = 169 candidates), 3 for a volume (7 x 7 x 7 = 343 candidates;
    a distance of 6 would compare 2197 and take about eight times as long).

    Examples
    --------
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> clean = np.full((32, 32), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=0)
    >>> out = nl_means_poisson(noisy, strength=1.0, photons=10, read_noise=1.0)
    >>> bool(out.std() < noisy.std())
    True
    >>> volume = add_poisson_gaussian_noise(np.full((8, 16, 16), 0.5, np.float32),
    ...                                     photons=10, read_noise=1.0, seed=0)
    >>> out = nl_means_poisson(volume, strength=1.0, photons=10, read_noise=1.0, axes="ZYX")
    >>> out.shape, bool(out.std() < volume.std())
    ((8, 16, 16), True)
    """
    image = check_image(image, axes=axes)
    if patch_distance is None:
        patch_distance = 6 if image.ndim == 2 else 3
    stabilised = anscombe(image, photons=photons, read_noise=read_noise)
    denoised = denoise_nl_means(stabilised, h=strength, sigma=1.0, patch_size=5,
                                patch_distance=patch_distance, fast_mode=True)
    return inverse_anscombe(denoised, photons=photons, read_noise=read_noise)
