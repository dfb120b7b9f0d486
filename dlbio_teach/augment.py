"""On-the-fly, seeded augmentations for segmentation training: a microscope in a batch.

A network trained on one image learns that image's brightness, contrast, blur, noise and
nuclear size. Changing them at random at every step, while the targets say the same
nuclei are there, teaches it that they do not matter. :class:`Augmentation` holds the
strengths; its :meth:`~Augmentation.transform` is the ``transform(batch, generator)`` that
:func:`~dlbio_teach.training.fit` applies to each training batch (``batch`` is
``[images (N, 1, Y, X), targets]``), and what
:func:`~dlbio_teach.segmentation.train_segmentation` builds from ``augmentation=``.

* Intensity (the input only, targets untouched): :func:`scale_offset`, :func:`gamma`,
  :func:`gaussian_noise`, :func:`gaussian_blur`.
* Geometry (input and targets together): :func:`zoom` (scale jitter), and
  :func:`flip_rotate`, the flips and 90-degree rotations of ``fit(augment=True)`` made
  right for StarDist's rays.

Targets are those of a segmentation formulation: ``"three_class"`` (classes, ``(N, Y, X)``
integers: resampled nearest), ``"distance"`` (per-object normalised distance, ``(N, 1, Y,
X)``: unchanged by a zoom, resampled linearly) or ``"stardist"`` (probability and ray
distances ``(N, 1 + n_rays, Y, X)``: distances scale with the zoom, rays turn with the
image). Every random number comes from the ``generator`` given, so the same seed gives the
same batch. Validation batches, which ``fit`` computes under ``torch.no_grad()``, pass
unchanged.

Batches of volumes, images ``(N, 1, Z, Y, X)`` with targets of a Z axis more, take the
same calls: intensities change alike; the blur acts within each plane (Y and X); the zoom
scales all three axes alike (in voxels, so the anisotropy stays); flips and rotations turn
the YX plane only. StarDist 3D targets cannot be flipped (see :func:`flip_rotate`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

__all__ = ["TARGET_KINDS", "Augmentation", "SegmentationTransform", "scale_offset", "gamma",
           "gaussian_noise", "gaussian_blur", "zoom", "flip_rotate"]

#: The kinds of targets the geometric augmentations know (the segmentation formulations).
TARGET_KINDS = ("three_class", "distance", "stardist")


def _check_kind(formulation: str) -> str:
    if formulation not in TARGET_KINDS:
        raise ValueError(f"formulation must be one of {TARGET_KINDS}, got {formulation!r}.")
    return formulation


def _chosen(n: int, p: float, generator) -> torch.Tensor:
    """Which of ``n`` samples an augmentation applies to, each with probability ``p``."""
    return torch.rand(n, generator=generator) < p


def _uniform(n: int, low: float, high: float, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _per_sample(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``values`` ``(N,)`` shaped to broadcast over ``images`` ``(N, C, ...)``."""
    return values.view(-1, *(1,) * (images.ndim - 1))


def scale_offset(images, generator, *, scale: float, offset: float,
                 p: float = 1.0) -> torch.Tensor:
    """Multiply each image by a factor in ``[1 - scale, 1 + scale]`` and add an offset in
    ``[-offset, offset]`` (a different gain and background level).

    Examples
    --------
    >>> x = torch.ones(2, 1, 4, 4)
    >>> y = scale_offset(x, torch.Generator().manual_seed(0), scale=0.5, offset=0.0)
    >>> bool(torch.all((y >= 0.5) & (y <= 1.5))), bool(torch.equal(
    ...     y, scale_offset(x, torch.Generator().manual_seed(0), scale=0.5, offset=0.0)))
    (True, True)
    """
    n = len(images)
    chosen = _chosen(n, p, generator)
    factor = torch.where(chosen, _uniform(n, 1 - scale, 1 + scale, generator), torch.ones(n))
    shift = torch.where(chosen, _uniform(n, -offset, offset, generator), torch.zeros(n))
    return images * _per_sample(factor, images) + _per_sample(shift, images)


def gamma(images, generator, *, strength: float, p: float = 1.0) -> torch.Tensor:
    """Gamma correction with ``gamma = exp(u)``, ``u`` in ``[-strength, strength]``, of each
    image between its own minimum and maximum (which stay where they are).

    Examples
    --------
    >>> x = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    >>> y = gamma(x, torch.Generator().manual_seed(0), strength=0.5)
    >>> float(y.min()), float(y.max()), bool(torch.allclose(y, x))
    (0.0, 1.0, False)
    """
    n = len(images)
    chosen = _chosen(n, p, generator)
    g = torch.where(chosen, torch.exp(_uniform(n, -strength, strength, generator)),
                    torch.ones(n))
    axes = tuple(range(1, images.ndim))
    low = images.amin(dim=axes, keepdim=True)
    span = (images.amax(dim=axes, keepdim=True) - low).clamp_min(1e-6)
    return low + span * ((images - low) / span).clamp(0, 1) ** _per_sample(g, images)


def gaussian_noise(images, generator, *, sigma: float, p: float = 1.0) -> torch.Tensor:
    """Add Gaussian noise of a standard deviation drawn in ``[0, sigma]`` for each image.

    Examples
    --------
    >>> y = gaussian_noise(torch.zeros(1, 1, 64, 64), torch.Generator().manual_seed(0),
    ...                    sigma=0.1)
    >>> 0 < float(y.std()) <= 0.11
    True
    """
    n = len(images)
    std = torch.where(_chosen(n, p, generator), _uniform(n, 0, sigma, generator),
                      torch.zeros(n))
    return images + _per_sample(std, images) * torch.randn(images.shape, generator=generator)


def _blur_one(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur one image ``(1, Y, X)``, or each plane of a volume ``(1, Z, Y, X)``."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    planes = image.reshape(-1, 1, *image.shape[-2:])
    out = F.pad(planes, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    return F.conv2d(out, kernel.view(1, 1, -1, 1)).reshape(image.shape)


def gaussian_blur(images, generator, *, sigma: float, p: float = 1.0) -> torch.Tensor:
    """Blur each image with a Gaussian of width drawn in ``[0, sigma]`` pixels (a softer
    focus or a coarser optics); reflected at the borders. Images must be larger than
    ``3 * sigma`` pixels. Volumes are blurred in each plane (Y and X), not along Z.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 21, 21); x[0, 0, 10, 10] = 1
    >>> y = gaussian_blur(x, torch.Generator().manual_seed(0), sigma=2.0)
    >>> float(y.max()) < 1, round(float(y.sum()), 4)
    (True, 1.0)
    """
    n = len(images)
    widths = torch.where(_chosen(n, p, generator), _uniform(n, 0, sigma, generator),
                         torch.zeros(n))
    out = [_blur_one(image, float(w)) if w > 0.1 else image
           for image, w in zip(images, widths)]
    return torch.stack(out)


def _resample(t: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    return F.grid_sample(t, grid, mode=mode, padding_mode="zeros", align_corners=False)


def zoom(batch, generator=None, *, strength: float = 0.0, formulation: str, p: float = 1.0,
         factors=None) -> list:
    """Zoom each image and its targets about the centre by a factor in ``[1 / (1 +
    strength), 1 + strength]`` (log-uniform): nuclei of other sizes, or other pixel sizes.

    The image is resampled linearly; three-class targets nearest (classes stay classes);
    distance targets linearly (they are normalised per object, so a zoom leaves their
    values alone); StarDist targets: the probability linearly, the ray distances nearest
    and multiplied by the factor. Outside the original image (zooming out) everything is
    0: background. ``factors`` ``(N,)`` sets the factors instead of drawing them. Volumes
    are zoomed alike along Z, Y and X (a StarDist 3D ray keeps its direction in voxels, so
    its distance scales by the factor too).

    Examples
    --------
    >>> x = torch.zeros(1, 1, 8, 8); x[..., 3:5, 3:5] = 1
    >>> y = torch.zeros(1, 8, 8, dtype=torch.long); y[..., 3:5, 3:5] = 1
    >>> zx, zy = zoom([x, y], formulation="three_class", factors=torch.tensor([2.0]))
    >>> int((zx[0, 0] > 0.5).sum()), int(zy.sum())
    (16, 16)
    """
    images, targets = batch[0], batch[1]
    n = len(images)
    if factors is None:
        log_max = math.log1p(strength)
        factors = torch.where(_chosen(n, p, generator),
                              torch.exp(_uniform(n, -log_max, log_max, generator)),
                              torch.ones(n))
    factors = torch.as_tensor(factors, dtype=torch.float32)
    ndim = images.ndim - 2
    theta = torch.zeros(n, ndim, ndim + 1)
    for axis in range(ndim):
        theta[:, axis, axis] = 1 / factors
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = _resample(images, grid, "bilinear")
    kind = _check_kind(formulation)
    if kind == "three_class":
        targets = _resample(targets[:, None].float(), grid, "nearest")[:, 0].to(targets.dtype)
    elif kind == "distance":
        targets = _resample(targets, grid, "bilinear")
    else:
        prob = _resample(targets[:, :1], grid, "bilinear")
        dist = _resample(targets[:, 1:], grid, "nearest") * _per_sample(factors, targets)
        targets = torch.cat([prob, dist], dim=1)
    return [images, targets, *batch[2:]]


def _turn_rays(dist: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Reorder StarDist's rays ``(N, R, Y, X)`` after ``rot90(k)`` and a flip of ``x``.

    Ray ``j`` runs along ``(sin, cos)(2 pi j / R)`` in ``(y, x)`` (``stardist``'s
    convention). ``torch.rot90`` by 90 degrees turns ``(dy, dx)`` into ``(-dx, dy)``, the
    angle minus 90 degrees, so the new ray ``j`` is the old ray ``j + R / 4``; flipping
    ``x`` maps the angle ``phi`` to ``pi - phi``, ray ``j`` to ray ``R / 2 - j``.
    """
    n_rays = dist.shape[1]
    if k:
        dist = torch.roll(dist, shifts=-k * n_rays // 4, dims=1)
    if flip:
        dist = dist[:, (n_rays // 2 - torch.arange(n_rays)) % n_rays]
    return dist


def flip_rotate(batch, generator, *, formulation: str) -> list:
    """The same random 90-degree rotation and flip of the images and targets of a batch.

    The same draws as ``fit(augment=True)``, so with three-class or distance targets the
    result is the same; with StarDist targets the rays are also renumbered to point where
    they did (which needs ``n_rays`` a multiple of 4), something ``fit(augment=True)`` does
    not know to do. Volumes turn in the YX plane. StarDist 3D targets
    ``(N, 1 + n_rays, Z, Y, X)`` are refused: their golden-spiral rays have no mirror or
    quarter-turn symmetry, so no renumbering makes the flipped rays those of the flipped
    nuclei (recomputing them from flipped labels would).

    Examples
    --------
    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> y = torch.zeros(1, 5, 4, 4)
    >>> out = flip_rotate([x, y], torch.Generator().manual_seed(0), formulation="stardist")
    >>> sorted(out[0].flatten().tolist()) == list(range(16))
    True
    """
    kind = _check_kind(formulation)
    # StarDist 3D's ray k (of n) has z = -1 + 2k / (n - 1) and azimuth k g (g the golden
    # angle). A flip of Z sends z to the ray n - 1 - k, whose azimuth (n - 1 - k) g is the
    # mirror of k g about the azimuth (n - 1) g / 2: a tilted axis, off the voxel grid, and
    # with anisotropic rays not even that. No flip or quarter turn of the grid maps the
    # rays onto rays, so flipped targets would need the rays recomputed from flipped
    # labels. StarDist 3D trains without flips instead (its zoom and intensity changes stay).
    if kind == "stardist" and batch[1].ndim == 5:
        raise ValueError("StarDist 3D targets cannot be flipped or turned: the golden-spiral "
                         "rays do not map onto one another. Train StarDist 3D without flips "
                         "(augment=False, its default).")
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    if kind == "stardist" and (batch[1].shape[1] - 1) % 4:
        raise ValueError(f"rotating StarDist targets needs n_rays a multiple of 4, got "
                         f"{batch[1].shape[1] - 1}; use 16, 32 or 64 rays, or no flips.")
    out = []
    for t in batch:
        if t.ndim >= 3:
            t = torch.rot90(t, k, dims=(-2, -1)) if t.shape[-1] == t.shape[-2] else t
            t = torch.flip(t, dims=(-1,)) if flip else t
        out.append(t)
    if kind == "stardist":
        turned = _turn_rays(out[1][:, 1:], k if out[1].shape[-1] == out[1].shape[-2] else 0,
                            flip)
        out[1] = torch.cat([out[1][:, :1], turned], dim=1)
    return out


@dataclass(frozen=True)
class Augmentation:
    """Strengths of the random changes made to each training batch; 0 turns one off.

    ``intensity_scale`` and ``intensity_offset``: gain in ``[1 - s, 1 + s]``, offset in
    ``[-o, o]`` (:func:`scale_offset`); ``gamma``: ``log(gamma)`` in ``[-g, g]``
    (:func:`gamma`); ``noise``: Gaussian noise of standard deviation up to this
    (:func:`gaussian_noise`); ``blur``: Gaussian blur of width up to this many pixels
    (:func:`gaussian_blur`); ``zoom``: factors in ``[1 / (1 + z), 1 + z]`` (:func:`zoom`).
    Each change is made to each image with probability ``p``. :meth:`standard` gives
    strengths that suit normalised fluorescence nuclei.

    Examples
    --------
    >>> Augmentation.standard().zoom
    0.25
    """

    intensity_scale: float = 0.0
    intensity_offset: float = 0.0
    gamma: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    zoom: float = 0.0
    p: float = 0.5

    def __post_init__(self):
        """Check that the strengths are usable."""
        for name, value in asdict(self).items():
            if not value >= 0:
                raise ValueError(f"{name} must be at least 0, got {value}.")
        if self.intensity_scale >= 1 or self.p > 1:
            raise ValueError(f"need intensity_scale < 1 and p <= 1, got "
                             f"{self.intensity_scale} and {self.p}.")

    @classmethod
    def standard(cls, **changes) -> Augmentation:
        """Strengths for normalised fluorescence nuclei, with optional changes.

        Examples
        --------
        >>> Augmentation.standard(noise=0.0).noise
        0.0
        """
        values = dict(intensity_scale=0.3, intensity_offset=0.1, gamma=0.3, noise=0.05,
                      blur=1.0, zoom=0.25, p=0.5)
        values.update(changes)
        return cls(**values)

    def to_dict(self) -> dict:
        """The strengths as plain data (for run records)."""
        return asdict(self)

    def transform(self, formulation: str, *, flips: bool = False) -> SegmentationTransform:
        """The ``transform(batch, generator)`` for :func:`~dlbio_teach.training.fit`.

        Examples
        --------
        >>> t = Augmentation(noise=0.1).transform("distance")
        >>> x, y = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)
        >>> out = t([x, y], torch.Generator().manual_seed(0))
        >>> bool(out[1] is y), bool(torch.equal(out[0], x))
        (True, False)
        """
        return SegmentationTransform(self, formulation, flips=flips)


class SegmentationTransform:
    """Apply an :class:`Augmentation` (and, with ``flips``, :func:`flip_rotate`) to a batch.

    Order: flips and rotations, zoom, blur, gamma, gain and offset, noise. Batches seen
    under ``torch.no_grad()`` (``fit``'s validation) are returned unchanged.

    Examples
    --------
    >>> t = SegmentationTransform(None, "stardist", flips=True)
    >>> x, y = torch.rand(2, 1, 8, 8), torch.rand(2, 33, 8, 8)
    >>> with torch.no_grad():
    ...     bool(t([x, y], torch.Generator())[0] is x)
    True
    """

    def __init__(self, augmentation: Augmentation | None, formulation: str, *,
                 flips: bool = False):
        self.augmentation = augmentation
        self.formulation = _check_kind(formulation)
        self.flips = flips

    def __call__(self, batch, generator):
        """The augmented batch ``[images, targets, ...]``."""
        if not torch.is_grad_enabled():
            return batch
        if self.flips:
            batch = flip_rotate(batch, generator, formulation=self.formulation)
        a = self.augmentation
        if a is None:
            return batch
        if a.zoom:
            batch = zoom(batch, generator, strength=a.zoom, formulation=self.formulation,
                         p=a.p)
        x = batch[0]
        if a.blur:
            x = gaussian_blur(x, generator, sigma=a.blur, p=a.p)
        if a.gamma:
            x = gamma(x, generator, strength=a.gamma, p=a.p)
        if a.intensity_scale or a.intensity_offset:
            x = scale_offset(x, generator, scale=a.intensity_scale,
                             offset=a.intensity_offset, p=a.p)
        if a.noise:
            x = gaussian_noise(x, generator, sigma=a.noise, p=a.p)
        return [x, *batch[1:]]
