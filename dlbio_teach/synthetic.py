"""Synthetic fluorescence data whose ground truth is known exactly.

Used by the smoke profile, by the tests, and where known ground truth teaches better than
a real image can (for example, measuring what a denoiser invents). :func:`diverse_nuclei`
draws a training set of many looks (sizes, densities, texture, background, blur, noise) to
mix with real tiles.

Volumes ``(Z, Y, X)`` are drawn in micrometres and sampled on voxels of a given size
(:func:`nuclei_volume`), then imaged (:func:`image_volume`: depth attenuation, a blur wider
along z, out-of-focus light, camera noise); :func:`diverse_nuclei_volumes` is the 3D
counterpart of :func:`diverse_nuclei`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# The one definition of the course's normalisation (preprocessing imports nothing of the
# package, so this makes no cycle): synthetic images are normalised as real ones are.
from .preprocessing import normalize_percentile

__all__ = ["nuclei", "add_poisson_gaussian_noise", "blur", "diverse_nuclei", "two_conditions",
           "nucleus_crops", "add_row_noise",
           "nuclei_volume", "image_volume", "diverse_nuclei_volumes"]


def nuclei(shape=(256, 256), n_nuclei: int = 30, *, radius=(6.0, 12.0),
           touching: float = 0.3, texture: float = 0.3, background: float = 0.05,
           brightness=(0.5, 1.0), log_brightness: bool = False,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw a clean fluorescence image of elliptical nuclei and its instance labels.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(Y, X)``.
    n_nuclei : int
        Nuclei to place (some may be dropped when they would be hidden by others).
    radius : (float, float)
        Range of the semi-axes, in pixels.
    touching : float
        Fraction of nuclei placed right beside an earlier one, so that they touch.
    texture : float
        Strength of the smooth intensity texture inside nuclei (0 for flat nuclei).
    background : float
        Background intensity.
    brightness : (float, float)
        Range of the nuclei's intensities (at most 1), drawn uniformly, or log-uniformly
        with ``log_brightness`` (many dim nuclei and a few bright ones, as when DNA content
        varies over the cell cycle).
    seed : int
        Random seed: the same seed gives the same image.

    Returns
    -------
    image : ndarray of float32, shape ``shape``, values in [0, 1]
    labels : ndarray of int32, shape ``shape``; 0 is background, 1..N the nuclei

    Examples
    --------
    >>> image, labels = nuclei((64, 64), n_nuclei=4, seed=0)
    >>> image.shape, image.dtype, bool(labels.max() <= 4)
    ((64, 64), dtype('float32'), True)
    """
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be (Y, X) with both at least 16, got {shape}.")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    labels = np.zeros(shape, np.int32)
    image = np.full(shape, background, np.float32)
    centres = []
    next_label = 1
    for _ in range(n_nuclei):
        a, b = rng.uniform(*radius, size=2)
        if centres and rng.random() < touching:
            cy, cx, r0 = centres[rng.integers(len(centres))]
            angle = rng.uniform(0, 2 * np.pi)
            dist = 0.85 * (r0 + max(a, b))
            cy, cx = cy + dist * np.sin(angle), cx + dist * np.cos(angle)
        else:
            cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        theta = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / a
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / b
        inside = (u ** 2 + v ** 2 <= 1.0) & (labels == 0)
        if inside.sum() < 0.5 * np.pi * a * b:   # mostly hidden or outside: skip it
            continue
        labels[inside] = next_label
        level = (np.exp(rng.uniform(*np.log(brightness))) if log_brightness
                 else rng.uniform(*brightness))
        # Brighter centre, dimmer rim: the look of a real nucleus.
        profile = 1.0 - 0.3 * np.clip(u ** 2 + v ** 2, 0, 1)
        image[inside] = level * profile[inside]
        centres.append((cy, cx, max(a, b)))
        next_label += 1
    if texture > 0:
        noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0)
        noise /= np.abs(noise).max() + 1e-8
        image = np.where(labels > 0, image * (1 + texture * noise), image)
    image = ndi.gaussian_filter(image, 1.0)   # the optics blur every edge a little
    return np.clip(image, 0, 1).astype(np.float32), labels


def add_poisson_gaussian_noise(image: np.ndarray, photons: float, *, read_noise: float = 0.0,
                               seed: int = 0) -> np.ndarray:
    """Simulate a camera: Poisson shot noise at ``photons`` per unit intensity, plus
    Gaussian read noise (in photons).

    The result is in the units of ``image`` (divided back by ``photons``), so it can be
    compared with the clean image directly. Fewer photons means more noise: the SNR of a
    pixel of intensity 1 is about ``sqrt(photons)``.

    Parameters
    ----------
    image : ndarray
        Clean image, non-negative, typically scaled to [0, 1].
    photons : float
        Expected photon count for intensity 1.
    read_noise : float
        Standard deviation of the Gaussian read noise, in photons.
    seed : int
        Random seed.

    Examples
    --------
    >>> clean = np.full((100, 100), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(clean, photons=100, seed=0)
    >>> round(float(noisy.std()), 2)   # sqrt(0.5 * 100) / 100
    0.07
    """
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating) and not np.issubdtype(image.dtype,
                                                                         np.integer):
        raise TypeError(f"image must be numeric, got dtype {image.dtype}.")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values; clean it first "
                         "(np.nan_to_num) before adding noise.")
    if image.min() < 0:
        raise ValueError("Poisson noise needs a non-negative image; rescale it to [0, 1] "
                         "first (dlbio_teach.preprocessing.normalize_minmax).")
    if photons <= 0:
        raise ValueError(f"photons must be positive, got {photons}.")
    rng = np.random.default_rng(seed)
    counts = rng.poisson(image.astype(np.float64) * photons).astype(np.float64)
    if read_noise > 0:
        counts += rng.normal(0.0, read_noise, size=image.shape)
    return (counts / photons).astype(np.float32)


def add_row_noise(image: np.ndarray, *, strength: float, length: float = 2.0,
                  seed: int = 0) -> np.ndarray:
    """Add noise correlated along the rows (X), as the stripes of a scanning microscope.

    Independent Gaussian noise is smoothed along X only (a Gaussian of width ``length``
    pixels) and scaled to a standard deviation of ``strength``: neighbours along a row
    share their noise, neighbours along a column do not. Noise2Void's assumption of
    pixel-independent noise fails for it (:func:`dlbio_teach.assumptions.noise_autocorrelation`
    shows it).

    Examples
    --------
    >>> noisy = add_row_noise(np.zeros((64, 64), np.float32), strength=0.1, seed=0)
    >>> round(float(noisy.std()), 2)
    0.1
    """
    image = np.asarray(image, np.float32)
    if strength < 0 or length <= 0:
        raise ValueError(f"strength must be >= 0 and length > 0, got {strength} and {length}.")
    rng = np.random.default_rng(seed)
    stripes = ndi.gaussian_filter1d(rng.standard_normal(image.shape), length, axis=-1)
    stripes *= strength / (stripes.std() + 1e-12)
    return (image + stripes).astype(np.float32)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur with a Gaussian point-spread function of width ``sigma`` pixels.

    Examples
    --------
    >>> blur(np.eye(5, dtype=np.float32), 1.0).shape
    (5, 5)
    """
    return ndi.gaussian_filter(np.asarray(image, np.float32), sigma)


def _one_piece_each(labels: np.ndarray) -> np.ndarray:
    """Keep the largest connected piece of each object, fill its holes, number 1..N."""
    out = np.zeros_like(labels)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        pieces, n = ndi.label(labels[box] == i)
        if n > 1:
            pieces = pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
        out[box][ndi.binary_fill_holes(pieces > 0) & (out[box] == 0)] = i
    ids = np.unique(out)
    return np.searchsorted(ids, out).astype(np.int32)


def diverse_nuclei(n_images: int, shape=(128, 128), *, seed: int = 0,
                   radius=(4.0, 14.0), coverage=(0.1, 0.45), touching=(0.0, 0.6),
                   texture=(0.0, 0.6), background=(0.0, 0.3), blur_sigma=(0.0, 2.0),
                   photons=(5.0, 500.0)) -> tuple[np.ndarray, np.ndarray]:
    """A training set of synthetic nuclei whose look changes from image to image.

    Each image draws its own mean nucleus radius (log-uniform in ``radius``; semi-axes
    within 30 % of it), the fraction of the image its nuclei cover (``coverage``), the
    fraction placed touching another (``touching``), the nuclear ``texture``, a
    ``background`` level with a smooth illumination gradient, an extra optical blur
    (``blur_sigma``, pixels) and the photons per unit intensity (log-uniform in
    ``photons``: Poisson noise, plus Gaussian read noise). Each range is ``(low, high)``.
    Images are normalised as real ones (:func:`~dlbio_teach.preprocessing.normalize_percentile`),
    so that they can be stacked with real tiles of the same shape.

    Returns
    -------
    images : ndarray of float32 ``(n_images, *shape)``
    labels : ndarray of int32 ``(n_images, *shape)``
        Each object one connected piece without holes, numbered 1..N in each image.

    Examples
    --------
    >>> images, labels = diverse_nuclei(3, (64, 64), seed=0)
    >>> images.shape, images.dtype, labels.dtype
    ((3, 64, 64), dtype('float32'), dtype('int32'))
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}.")
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n_images):
        r = float(np.exp(rng.uniform(*np.log(radius))))
        n = max(1, round(rng.uniform(*coverage) * shape[0] * shape[1] / (np.pi * r * r)))
        clean, lab = nuclei(shape, n, radius=(0.7 * r, 1.3 * r),
                            touching=rng.uniform(*touching), texture=rng.uniform(*texture),
                            background=0.0, seed=int(rng.integers(2 ** 31)))
        yy, xx = np.mgrid[:shape[0], :shape[1]] / max(shape)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = yy * np.sin(angle) + xx * np.cos(angle)
        level = rng.uniform(*background)
        clean = clean + level * (1 + ramp - ramp.mean())
        clean = blur(clean, rng.uniform(*blur_sigma))
        noisy = add_poisson_gaussian_noise(np.clip(clean, 0, None),
                                           float(np.exp(rng.uniform(*np.log(photons)))),
                                           read_noise=rng.uniform(0, 2),
                                           seed=int(rng.integers(2 ** 31)))
        images.append(normalize_percentile(noisy))
        labels.append(_one_piece_each(lab))
    return np.stack(images).astype(np.float32), np.stack(labels)


def two_conditions(n_images: int, shape=(256, 256), *, area_change: float = 0.10,
                   radius: float = 10.0, n_nuclei: int = 30, touching: float = 0.3,
                   photons: float = 200.0, seed: int = 0) -> dict:
    """Images of two conditions whose nuclei differ in size by a known amount.

    Both conditions are imaged alike (the same nucleus density, texture, blur and
    photons; many dim nuclei and a few bright ones, log-uniform intensities from 0.1 to 1,
    so that normalised images look like the course's real nuclei); only the nuclei of
    ``"treated"`` have semi-axes ``sqrt(1 + area_change)``
    times larger, so their areas are ``1 + area_change`` times larger on average. Every
    image is drawn with its own seed, so the images are independent samples of their
    condition, and normalised as real images are.

    Parameters
    ----------
    n_images : int
        Images per condition (at least 2, for an interval over images).
    shape : tuple of int
    area_change : float
        Relative change of the mean nucleus area, e.g. 0.10 for 10 % larger.
    radius : float
        Mean semi-axis of a control nucleus, in pixels (semi-axes within 25 % of it).
    n_nuclei, touching : int, float
        As in :func:`nuclei`.
    photons : float
        Photons per unit intensity (:func:`add_poisson_gaussian_noise`).
    seed : int

    Returns
    -------
    dict
        ``{"control": (images, labels), "treated": (images, labels)}``, each ``images``
        float32 ``(n_images, *shape)`` and ``labels`` int32 of the same shape.

    Examples
    --------
    >>> data = two_conditions(2, (64, 64), n_nuclei=5, radius=6, seed=0)
    >>> images, labels = data["treated"]
    >>> sorted(data), images.shape, labels.dtype
    (['control', 'treated'], (2, 64, 64), dtype('int32'))
    """
    if int(n_images) < 2:
        raise ValueError(f"n_images must be at least 2 per condition, got {n_images}.")
    if not -1 < area_change:
        raise ValueError(f"area_change must be above -1 (a relative change), got "
                         f"{area_change}.")
    rng = np.random.default_rng(seed)
    out = {}
    for condition, change in (("control", 0.0), ("treated", area_change)):
        r = radius * np.sqrt(1 + change)
        images, labels = [], []
        for _ in range(int(n_images)):
            clean, lab = nuclei(shape, n_nuclei, radius=(0.75 * r, 1.25 * r),
                                touching=touching, brightness=(0.1, 1.0), log_brightness=True,
                                seed=int(rng.integers(2 ** 31)))
            noisy = add_poisson_gaussian_noise(clean, photons, read_noise=1.0,
                                               seed=int(rng.integers(2 ** 31)))
            images.append(normalize_percentile(noisy))
            labels.append(lab)
        out[condition] = (np.stack(images).astype(np.float32), np.stack(labels))
    return out


# --- Volumes (Z, Y, X) -------------------------------------------------------------------

def nucleus_crops(n_crops: int, *, rare_fraction: float = 0.05, size: int = 32,
                  photons: float = 30.0, neighbours: float = 0.4,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Crops centred on one nucleus each, a few of them with a micronucleus (a rare class).

    Micronuclei, small extra nuclei beside the main one, are scored in genotoxicity
    assays, where they appear in a few cells per hundred: a rare phenotype with a known
    truth. Each crop holds one textured elliptical nucleus; a share ``rare_fraction`` (drawn
    at random for each crop, so the count varies a little) also holds a micronucleus close
    to its rim. A share ``neighbours`` of all crops shows part of another nucleus at its
    border, so that "more than one bright object" does not give the class away.

    Parameters
    ----------
    n_crops : int
        Crops to draw.
    rare_fraction : float
        Probability that a crop holds a micronucleus (class 1).
    size : int
        Side of the square crops (at least 24).
    photons : float
        Camera photons at intensity 1 (Poisson noise; fewer is noisier).
    neighbours : float
        Probability that part of a neighbouring nucleus enters the crop.
    seed : int
        Random seed: the same seed gives the same crops.

    Returns
    -------
    crops : ndarray of float32, shape ``(n_crops, size, size)``, background near 0
    classes : ndarray of int64, shape ``(n_crops,)``, 1 where the crop holds a micronucleus

    Examples
    --------
    >>> crops, classes = nucleus_crops(200, rare_fraction=0.1, seed=0)
    >>> crops.shape, crops.dtype, 5 < int(classes.sum()) < 40
    ((200, 32, 32), dtype('float32'), True)
    """
    if size < 24:
        raise ValueError(f"size must be at least 24 pixels (a nucleus and its rim), got {size}.")
    if not 0 <= rare_fraction <= 1 or not 0 <= neighbours <= 1:
        raise ValueError("rare_fraction and neighbours are probabilities in [0, 1], got "
                         f"{rare_fraction} and {neighbours}.")
    if n_crops < 1:
        raise ValueError(f"n_crops must be at least 1, got {n_crops}.")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) - (size - 1) / 2
    classes = (rng.random(n_crops) < rare_fraction).astype(np.int64)
    crops = np.full((n_crops, size, size), 0.03, np.float32)

    def ellipse(cy, cx, a, b, theta):
        u = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / a
        v = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)) / b
        return u ** 2 + v ** 2

    for crop, rare in zip(crops, classes):
        a, b = rng.uniform(5.0, 9.0, size=2)
        theta = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(-1.5, 1.5, size=2)
        level = rng.uniform(0.4, 1.0)
        r2 = ellipse(cy, cx, a, b, theta)
        texture = ndi.gaussian_filter(rng.standard_normal((size, size)), 1.5)
        texture /= np.abs(texture).max() + 1e-8
        inside = r2 <= 1
        crop[inside] = level * (1 - 0.3 * r2[inside]) * (1 + 0.3 * texture[inside])
        if rare:   # a micronucleus just outside the rim
            angle = rng.uniform(0, 2 * np.pi)
            reach = max(a, b) + rng.uniform(2.0, 4.0)
            r = rng.uniform(2.0, 3.0)
            dot = ellipse(cy + reach * np.sin(angle), cx + reach * np.cos(angle), r, r, 0.0)
            crop[dot <= 1] = level * rng.uniform(0.5, 1.0)
        if rng.random() < neighbours:   # another nucleus cut by the border
            angle = rng.uniform(0, 2 * np.pi)
            reach = size / 2 + rng.uniform(2.0, 6.0)
            other = ellipse(reach * np.sin(angle), reach * np.cos(angle),
                            *rng.uniform(5.0, 9.0, size=2), rng.uniform(0, np.pi))
            crop[(other <= 1) & ~inside] = rng.uniform(0.4, 1.0)
    crops = ndi.gaussian_filter(crops, (0, 1.0, 1.0))   # the optics blur every edge
    return add_poisson_gaussian_noise(crops, photons, seed=seed + 1), classes


def _volume_shape(shape) -> tuple:
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if (len(shape) != 3 or not all(isinstance(s, (int, np.integer)) for s in shape)
            or shape[0] < 4 or min(shape[1:]) < 16):
        raise ValueError(f"shape must be (Z, Y, X): Z at least 4 planes, Y and X at least "
                         f"16 pixels, got {shape}. For a 2D image use nuclei().")
    return tuple(int(s) for s in shape)


def _three(value, name: str, example: str, *, zero_ok: bool = False) -> np.ndarray:
    """``value`` as three finite numbers (Z, Y, X), all positive (or >= 0 with zero_ok)."""
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        out = None
    if (out is None or out.shape != (3,) or not np.all(np.isfinite(out))
            or not np.all(out >= 0 if zero_ok else out > 0)):
        kind = "non-negative" if zero_ok else "positive"
        raise ValueError(f"{name} must be three {kind} numbers (Z, Y, X) in micrometres, "
                         f"e.g. {example}, got {value!r}.")
    return out


def _random_rotation(rng) -> np.ndarray:
    """A uniformly random 3D rotation matrix (from a random unit quaternion)."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def nuclei_volume(shape=(32, 96, 96), n_nuclei: int = 60, *, radius=(3.0, 5.0),
                  voxel_size=(1.5, 0.5, 0.5), touching: float = 0.3, texture: float = 0.3,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw a clean fluorescence volume of ellipsoidal nuclei and its instance labels.

    The nuclei are drawn in micrometres and then sampled on the voxel grid: each is an
    ellipsoid with its three semi-axes drawn from ``radius`` (µm) and a random
    orientation. With anisotropic voxels (a z step larger than the pixel size, as in
    most confocal and light-sheet stacks) round nuclei span fewer planes than pixels:
    in voxel units they look flattened. The default volume is 48 µm along each axis,
    sampled by 32 planes of 1.5 µm and 96 x 96 pixels of 0.5 µm.

    Parameters
    ----------
    shape : (int, int, int)
        Volume shape ``(Z, Y, X)`` in voxels.
    n_nuclei : int
        Nuclei to place (some are dropped when they would be mostly hidden by others or
        lie mostly outside the volume).
    radius : (float, float)
        Range of the semi-axes, in micrometres.
    voxel_size : (float, float, float)
        Size of a voxel ``(Z, Y, X)`` in micrometres.
    touching : float
        Fraction of nuclei placed right beside an earlier one, so that they touch.
    texture : float
        Strength of the smooth intensity texture inside nuclei (0 for flat nuclei).
    seed : int
        Random seed: the same seed gives the same volume.

    Returns
    -------
    clean : ndarray of float32, shape ``shape``, values in [0, 1]
        Light emitted by the nuclei (around 0.5 to 1, brighter at the centre), 0 between
        them; blurred by half a micrometre only. :func:`image_volume` turns it into
        what a microscope records.
    labels : ndarray of int32, shape ``shape``
        0 is background, 1..N the nuclei; each one connected piece without holes.

    Examples
    --------
    >>> clean, labels = nuclei_volume((16, 48, 48), n_nuclei=5, seed=0)
    >>> clean.shape, clean.dtype, labels.dtype
    ((16, 48, 48), dtype('float32'), dtype('int32'))
    >>> bool(np.array_equal(np.unique(labels), np.arange(labels.max() + 1)))
    True
    """
    shape = _volume_shape(shape)
    voxel = _three(voxel_size, "voxel_size", "(2.0, 0.5, 0.5)")
    if np.shape(radius) != (2,) or not 0 < radius[0] <= radius[1]:
        raise ValueError(f"radius must be (low, high) in micrometres with 0 < low <= high, "
                         f"got {radius!r}.")
    rng = np.random.default_rng(seed)
    extent = np.array(shape) * voxel                     # the volume's size in µm
    labels = np.zeros(shape, np.int32)
    image = np.zeros(shape, np.float32)
    placed = []                                          # (centre in µm, largest semi-axis)
    for _ in range(n_nuclei):
        semi = rng.uniform(*radius, size=3)
        if placed and rng.random() < touching:
            centre0, r0 = placed[rng.integers(len(placed))]
            direction = rng.standard_normal(3)
            centre = centre0 + 0.85 * (r0 + semi.max()) * direction / np.linalg.norm(direction)
        else:
            centre = rng.uniform(0, 1, size=3) * extent
        rotation = _random_rotation(rng)                 # columns: the nucleus' own axes
        # Only the box around the nucleus is computed: fast for small nuclei.
        low = np.maximum(np.floor((centre - semi.max()) / voxel), 0).astype(int)
        high = np.minimum(np.ceil((centre + semi.max()) / voxel) + 1, shape).astype(int)
        if np.any(high <= low):
            continue
        box = tuple(slice(a, b) for a, b in zip(low, high))
        d = [g * v - c for g, v, c in zip(np.ogrid[box], voxel, centre)]   # µm from centre
        q = sum(((rotation[0, k] * d[0] + rotation[1, k] * d[1] + rotation[2, k] * d[2])
                 / semi[k]) ** 2 for k in range(3))
        inside = (q <= 1.0) & (labels[box] == 0)
        if inside.sum() < 0.5 * (4 / 3) * np.pi * semi.prod() / voxel.prod():
            continue                                     # mostly hidden or outside: skip
        labels[box][inside] = len(placed) + 1
        brightness = rng.uniform(0.5, 1.0)
        # Brighter centre, dimmer rim: the look of a real nucleus.
        image[box][inside] = brightness * (1.0 - 0.3 * q[inside])
        placed.append((centre, semi.max()))
    if texture > 0:
        noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.0 / voxel)
        noise /= np.abs(noise).max() + 1e-8
        image = np.where(labels > 0, image * (1 + texture * noise), image)
    # A nucleus cut in two by earlier ones keeps its largest piece; no light without a label.
    labels = _one_piece_each(labels)
    image = np.where(labels > 0, image, 0).astype(np.float32)
    image = ndi.gaussian_filter(image, 0.5 / voxel)      # edges soft over half a micrometre
    return np.clip(image, 0, 1).astype(np.float32), labels


def image_volume(clean: np.ndarray, *, voxel_size=(1.5, 0.5, 0.5), psf_sigma=(1.0, 0.3, 0.3),
                 out_of_focus: float = 0.3, attenuation: float | None = 100.0,
                 background: float = 0.05, photons: float = 100.0, read_noise: float = 1.0,
                 seed: int = 0) -> np.ndarray:
    """Image a clean volume through a microscope: depth attenuation, an anisotropic blur,
    out-of-focus light, background and camera noise; normalised as real data.

    In this order:

    1. *attenuation*: the light from plane ``z`` is multiplied by
       ``exp(-depth / attenuation)``, with ``depth = z * voxel_size[0]`` µm below the first
       plane (light scattered and absorbed on its way through the sample);
    2. *blur*: a Gaussian point-spread function of width ``psf_sigma`` (µm, per axis;
       wider along z, as every microscope's);
    3. *out-of-focus light*: ``out_of_focus`` times a copy blurred four times wider is
       added: the haze that nuclei above and below the focal plane leave in it (strong
       in a widefield microscope, small in a confocal one);
    4. *background*: a constant level added to every voxel;
    5. *camera*: Poisson noise at ``photons`` per unit intensity and Gaussian read noise
       (:func:`add_poisson_gaussian_noise`);
    6. *normalisation*: :func:`~dlbio_teach.preprocessing.normalize_percentile`, as for
       the 2D images and real data.

    Parameters
    ----------
    clean : ndarray ``(Z, Y, X)``
        Non-negative light emitted by the sample, e.g. from :func:`nuclei_volume`.
    voxel_size : (float, float, float)
        Size of a voxel ``(Z, Y, X)`` in micrometres: the sampling of ``clean``.
    psf_sigma : (float, float, float)
        Standard deviation of the point-spread function ``(Z, Y, X)`` in micrometres
        (0 for no blur along an axis).
    out_of_focus : float
        Strength of the out-of-focus haze (0 for none).
    attenuation : float or None
        Depth in micrometres over which light falls to ``1/e`` of its value at the first
        plane; ``None`` for none.
    background : float
        Background level, in the units of ``clean``.
    photons : float
        Expected photon count for intensity 1: fewer photons, more noise.
    read_noise : float
        Standard deviation of the camera's read noise, in photons.
    seed : int
        Random seed of the noise.

    Returns
    -------
    ndarray of float32, shape of ``clean``
        1st and 99.8th percentiles at 0 and 1.

    Examples
    --------
    >>> clean, labels = nuclei_volume((16, 48, 48), n_nuclei=5, seed=0)
    >>> image = image_volume(clean, photons=50, seed=0)
    >>> image.shape, image.dtype
    ((16, 48, 48), dtype('float32'))
    """
    clean = np.asarray(clean)
    if clean.ndim != 3:
        raise ValueError(f"clean must be a volume (Z, Y, X), got shape {clean.shape}. For "
                         "a 2D image use blur() and add_poisson_gaussian_noise().")
    if not np.all(np.isfinite(clean)) or clean.min() < 0:
        raise ValueError(f"clean must hold light: finite and non-negative values, got values "
                         f"from {np.nanmin(clean)} to {np.nanmax(clean)}. Rescale it to "
                         "[0, 1] first (dlbio_teach.preprocessing.normalize_minmax).")
    voxel = _three(voxel_size, "voxel_size", "(2.0, 0.5, 0.5)")
    sigma = _three(psf_sigma, "psf_sigma", "(1.0, 0.3, 0.3)", zero_ok=True)
    if not (np.isfinite(out_of_focus) and out_of_focus >= 0):
        raise ValueError(f"out_of_focus must be a number >= 0 (0 for none), got "
                         f"{out_of_focus!r}.")
    if attenuation is not None and not (np.isfinite(attenuation) and attenuation > 0):
        raise ValueError(f"attenuation must be a positive depth in micrometres, or None "
                         f"for none, got {attenuation!r}.")
    if not (np.isfinite(background) and background >= 0):
        raise ValueError(f"background must be a number >= 0, got {background!r}.")
    light = clean.astype(np.float32)
    if attenuation is not None:
        depth = np.arange(clean.shape[0]) * voxel[0]
        light = light * np.exp(-depth / attenuation).astype(np.float32)[:, None, None]
    seen = blur(light, sigma / voxel)
    if out_of_focus > 0:
        seen = seen + out_of_focus * blur(light, 4 * sigma / voxel)
    noisy = add_poisson_gaussian_noise(seen + background, photons,
                                       read_noise=read_noise, seed=seed)
    return normalize_percentile(noisy)


def diverse_nuclei_volumes(n_volumes: int, shape=(32, 96, 96), *, seed: int = 0,
                           radius=(2.5, 6.0), coverage=(0.05, 0.3), touching=(0.0, 0.6),
                           texture=(0.0, 0.6), anisotropy=(1.0, 5.0), psf_sigma_z=(0.5, 2.5),
                           psf_sigma_xy=(0.1, 0.6), out_of_focus=(0.0, 0.8),
                           attenuation=(20.0, 300.0), background=(0.0, 0.3),
                           photons=(5.0, 500.0)) -> list:
    """A training set of synthetic nuclei volumes whose look changes from volume to volume.

    The 3D counterpart of :func:`diverse_nuclei`. Each volume draws its own mean nucleus
    radius (log-uniform in ``radius``, µm; semi-axes within 30 % of it), the fraction of
    the volume its nuclei fill (``coverage``), the fraction placed touching another
    (``touching``), the nuclear ``texture``, the ``anisotropy`` (the z step over the
    pixel size, which is 0.5 µm), the point-spread function (``psf_sigma_z`` and
    ``psf_sigma_xy``, µm), the ``out_of_focus`` haze, the ``attenuation`` depth
    (log-uniform, µm), the ``background`` level and the photons per unit intensity
    (log-uniform in ``photons``; Gaussian read noise of 0 to 2 photons); then
    :func:`nuclei_volume` draws it and :func:`image_volume` images it. Each range is
    ``(low, high)``.

    Returns
    -------
    list of (image, labels, voxel_size)
        ``image`` float32 ``shape``, normalised as real data; ``labels`` int32 ``shape``,
        each object one connected piece without holes, numbered 1..N; ``voxel_size`` the
        ``(Z, Y, X)`` voxel size in µm of that volume (needed to show it undistorted,
        :func:`~dlbio_teach.viz.orthogonal_views`, or to resample it).

    Examples
    --------
    >>> volumes = diverse_nuclei_volumes(2, (16, 48, 48), seed=0)
    >>> image, labels, voxel_size = volumes[0]
    >>> image.shape, image.dtype, labels.dtype, len(voxel_size)
    ((16, 48, 48), dtype('float32'), dtype('int32'), 3)
    """
    if n_volumes < 1:
        raise ValueError(f"n_volumes must be at least 1, got {n_volumes}.")
    shape = _volume_shape(shape)
    rng = np.random.default_rng(seed)
    pixel = 0.5
    volumes = []
    for _ in range(n_volumes):
        voxel = (pixel * float(rng.uniform(*anisotropy)), pixel, pixel)
        r = float(np.exp(rng.uniform(*np.log(radius))))
        size = np.prod(np.array(shape) * voxel)
        n = max(1, round(rng.uniform(*coverage) * size / (4 / 3 * np.pi * r ** 3)))
        clean, labels = nuclei_volume(shape, n, radius=(0.7 * r, 1.3 * r), voxel_size=voxel,
                                      touching=rng.uniform(*touching),
                                      texture=rng.uniform(*texture),
                                      seed=int(rng.integers(2 ** 31)))
        image = image_volume(
            clean, voxel_size=voxel,
            psf_sigma=(rng.uniform(*psf_sigma_z),) + (rng.uniform(*psf_sigma_xy),) * 2,
            out_of_focus=rng.uniform(*out_of_focus),
            attenuation=float(np.exp(rng.uniform(*np.log(attenuation)))),
            background=rng.uniform(*background),
            photons=float(np.exp(rng.uniform(*np.log(photons)))),
            read_noise=rng.uniform(0, 2), seed=int(rng.integers(2 ** 31)))
        volumes.append((image, labels, voxel))
    return volumes
