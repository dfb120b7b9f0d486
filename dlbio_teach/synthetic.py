"""Synthetic fluorescence data whose ground truth is known exactly.

Used by the smoke profile, by the tests, and where known ground truth teaches better than
a real image can (for example, measuring what a denoiser invents). :func:`diverse_nuclei`
draws a training set of many looks (sizes, densities, texture, background, blur, noise) to
mix with real tiles.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# The one definition of the course's normalisation (preprocessing imports nothing of the
# package, so this makes no cycle): synthetic images are normalised as real ones are.
from .preprocessing import normalize_percentile

__all__ = ["nuclei", "add_poisson_gaussian_noise", "blur", "diverse_nuclei"]


def nuclei(shape=(256, 256), n_nuclei: int = 30, *, radius=(6.0, 12.0),
           touching: float = 0.3, texture: float = 0.3, background: float = 0.05,
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
        Background intensity; nuclei have intensities around 0.5 to 1.
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
        brightness = rng.uniform(0.5, 1.0)
        # Brighter centre, dimmer rim: the look of a real nucleus.
        profile = 1.0 - 0.3 * np.clip(u ** 2 + v ** 2, 0, 1)
        image[inside] = brightness * profile[inside]
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
