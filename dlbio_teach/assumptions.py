"""Checking what a restoration method assumes about the data, without clean images.

Noise2Void and Noise2Self assume noise that is independent from pixel to pixel;
:func:`noise_autocorrelation` shows whether it is (a scanning microscope's stripes show as
a ridge along the rows). Noise2Self's own tool, :func:`self_supervised_loss`, scores a
denoiser that never sees a pixel's own value against the noisy image itself, so that its
parameters can be chosen without a clean image. CARE assumes registered pairs;
:func:`pair_shifts` measures, with :func:`skimage.registration.phase_cross_correlation`,
how far each target lies from its input.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from .preprocessing import check_image

__all__ = ["noise_autocorrelation", "self_supervised_loss", "pair_shifts"]


def noise_autocorrelation(image, *, size: int = 4, smoothing: float = 2.0) -> np.ndarray:
    """Autocorrelation of an image's fine detail, lags ``-size..size`` along Y and X.

    The image minus a Gaussian smoothing of width ``smoothing`` keeps mostly noise (and
    sharp edges); its autocorrelation, normalised to 1 at lag 0, is about 0 at every other
    lag when the noise is independent from pixel to pixel. Correlated noise shows as
    values well above 0 along the direction of the correlation: ``result[size, size + 1]``
    (one pixel along X) for the stripes of a scanning microscope. Compute it on a region
    without sharp structures where possible; edges add a little correlation in every
    direction.

    Returns ``(2 * size + 1, 2 * size + 1)``, lag 0 at the centre.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> white = rng.normal(size=(128, 128))
    >>> round(float(noise_autocorrelation(white)[4, 5]), 1)   # a neighbour along X
    -0.1
    >>> stripes = ndi.uniform_filter1d(white, 5, axis=1)
    >>> bool(noise_autocorrelation(stripes)[4, 5] > 0.5)
    True
    """
    image = check_image(image, name="image", min_size=2 * size + 3)
    if size < 1:
        raise ValueError(f"size must be at least 1 (lags to show), got {size}.")
    detail = image - ndi.gaussian_filter(image, smoothing)
    detail = detail - detail.mean()
    spectrum = np.fft.rfft2(detail, s=[2 * s for s in detail.shape])
    correlation = np.fft.irfft2(np.abs(spectrum) ** 2, s=[2 * s for s in detail.shape])
    correlation = np.fft.fftshift(correlation)
    cy, cx = (s // 2 for s in correlation.shape)
    window = correlation[cy - size:cy + size + 1, cx - size:cx + size + 1]
    return (window / window[size, size]).astype(np.float32)


def self_supervised_loss(noisy, denoised_without_centre) -> float:
    """Noise2Self's loss: the mean squared difference between a noisy image and a
    denoising of it in which no pixel used its own value (a *J-invariant* denoiser, such
    as ``gaussian_poisson(..., j_invariant=True)``).

    When the noise is independent from pixel to pixel and has mean 0, this loss equals
    the denoiser's squared error against the clean image plus the noise variance, a
    constant: the parameter that minimises it is the one that the clean image would
    pick, up to chance. ``noisy`` may be a stack; the loss is over all its pixels.

    Examples
    --------
    >>> from dlbio_teach.restoration import gaussian_poisson
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> noisy = add_poisson_gaussian_noise(np.full((64, 64), 0.5), photons=10, seed=0)
    >>> losses = [self_supervised_loss(noisy, gaussian_poisson(noisy, sigma=s, photons=10,
    ...           read_noise=0, j_invariant=True)) for s in (0.5, 4.0)]
    >>> bool(losses[1] < losses[0])   # a flat field: the wider filter is better
    True
    """
    noisy = np.asarray(noisy, np.float64)
    denoised = np.asarray(denoised_without_centre, np.float64)
    if noisy.shape != denoised.shape:
        raise ValueError(f"noisy {noisy.shape} and denoised {denoised.shape} must have the "
                         "same shape (the denoising of that very image).")
    return float(np.mean((denoised - noisy) ** 2))


def pair_shifts(inputs, targets, *, upsample: int = 10) -> np.ndarray:
    """How far each target lies from its input, ``(N, 2)`` in pixels (dy, dx).

    The shift that moves each target onto its input, from the peak of their
    cross-correlation (:func:`skimage.registration.phase_cross_correlation`, to
    ``1 / upsample`` of a pixel). Both images are centred and multiplied by a Hann window
    first: the correlation is computed by FFT, which joins each image's opposite edges,
    and those seams would pull the estimate towards no shift. A noisy input correlates
    with its clean target well enough at any usable signal; pairs more than a few tenths
    of a pixel apart should be registered before a CARE training (for example with
    ``scipy.ndimage.shift``).

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei
    >>> image, _ = nuclei((96, 96), 10, seed=0)
    >>> moved = np.roll(image, (2, -3), axis=(0, 1))
    >>> pair_shifts(image[None], moved[None]).round().tolist()   # to 0.1 pixel: -1.9, 2.9
    [[-2.0, 3.0]]
    """
    inputs = np.asarray(inputs, np.float32)
    targets = np.asarray(targets, np.float32)
    if inputs.shape != targets.shape or inputs.ndim != 3:
        raise ValueError(f"inputs and targets must be stacks (N, Y, X) of the same shape, "
                         f"got {inputs.shape} and {targets.shape}.")
    taper = window("hann", inputs.shape[1:])
    return np.array([phase_cross_correlation((a - a.mean()) * taper, (b - b.mean()) * taper,
                                             upsample_factor=upsample, normalization=None)[0]
                     for a, b in zip(inputs, targets)], np.float64)
