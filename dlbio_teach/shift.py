"""Domain shift: controlled shifts of images, and a detector of shifted images.

:func:`shift_image` makes controlled shifts (noise, gamma, blur, magnification) and
:func:`shift_labels` moves the labels with them; :class:`ShiftDetector` learns a few image
statistics from the training images and flags an image whose statistics lie outside them.

Every random draw takes an explicit ``seed``; nothing here keeps global state.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .preprocessing import check_image, check_labels

__all__ = ["SHIFT_KINDS", "shift_image", "shift_labels", "ShiftDetector"]


#: The kinds of shift :func:`shift_image` makes.
SHIFT_KINDS = ("noise", "gamma", "blur", "scale")


def shift_image(image, *, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """A controlled domain shift of one image; ``strength=0`` returns the image unchanged.

    ``kind`` and what ``strength`` means:

    * ``"noise"``: add Gaussian noise of standard deviation ``strength`` times the image's
      intensity range (max - min), e.g. another camera gain or a shorter exposure;
    * ``"gamma"``: ``x ** (1 + strength)`` on the intensities mapped to [0, 1] and back
      (another detector response or display setting; ``strength > -1``);
    * ``"blur"``: Gaussian blur of ``strength`` pixels (defocus, a lower-NA objective);
    * ``"scale"``: magnification by ``1 + strength`` about the centre, cropped, or padded
      by reflection, back to the same shape (another objective or binning; ``> -1``).

    Examples
    --------
    >>> shift_image(np.array([[0.0, 0.5, 1.0]]), kind="gamma", strength=1.0).tolist()
    [[0.0, 0.25, 1.0]]
    >>> img = np.random.default_rng(0).random((8, 8))
    >>> shift_image(img, kind="scale", strength=0.5).shape
    (8, 8)
    """
    image = check_image(image)
    if kind not in SHIFT_KINDS:
        raise ValueError(f"kind must be one of {SHIFT_KINDS}, got {kind!r}.")
    strength = float(strength)
    if kind in ("noise", "blur") and strength < 0:
        raise ValueError(f"strength for {kind!r} must be >= 0, got {strength}.")
    if kind in ("gamma", "scale") and strength <= -1:
        raise ValueError(f"strength for {kind!r} must be > -1, got {strength}.")
    if strength == 0:
        return image.copy()
    lo, hi = float(image.min()), float(image.max())
    if kind == "noise":
        rng = np.random.default_rng(seed)
        out = image + rng.normal(0.0, strength * (hi - lo), size=image.shape)
    elif kind == "gamma":
        span = max(hi - lo, 1e-12)
        out = lo + span * ((image - lo) / span) ** (1.0 + strength)
    elif kind == "blur":
        out = ndi.gaussian_filter(image, strength)
    else:
        from skimage.transform import rescale

        factor = 1.0 + strength
        zoomed = rescale(image, factor, order=1, anti_aliasing=factor < 1,
                         preserve_range=True)
        h, w = image.shape
        zh, zw = zoomed.shape
        if factor > 1:
            y0, x0 = (zh - h) // 2, (zw - w) // 2
            out = zoomed[y0:y0 + h, x0:x0 + w]
        else:
            py, px = h - zh, w - zw
            out = np.pad(zoomed, ((py // 2, py - py // 2), (px // 2, px - px // 2)),
                         mode="reflect")
    return np.asarray(out, np.float32)


def shift_labels(labels, *, kind: str, strength: float) -> np.ndarray:
    """The labels that go with ``shift_image(image, kind=kind, strength=strength)``.

    Only ``"scale"`` moves objects: the labels are magnified the same way (nearest
    neighbour) and cropped to the same shape; the other shifts change intensities and
    return the labels unchanged. Shrinking (``strength < 0``) pads the image with mirrored
    content, which has no labels: it is refused here.

    Examples
    --------
    >>> lab = np.zeros((8, 8), np.int32); lab[3:5, 3:5] = 1
    >>> int((shift_labels(lab, kind="scale", strength=1.0) == 1).sum())
    16
    """
    labels = check_labels(labels)
    if kind not in SHIFT_KINDS:
        raise ValueError(f"kind must be one of {SHIFT_KINDS}, got {kind!r}.")
    strength = float(strength)
    if kind != "scale" or strength == 0:
        return labels.astype(np.int32, copy=True)
    if strength < 0:
        raise ValueError("shrinking (scale strength < 0) pads the image with mirrored, "
                         "unlabelled content; use strength > 0 to score a shifted image.")
    from skimage.transform import rescale

    zoomed = rescale(labels, 1.0 + strength, order=0, anti_aliasing=False,
                     preserve_range=True).astype(np.int32)
    h, w = labels.shape
    y0, x0 = (zoomed.shape[0] - h) // 2, (zoomed.shape[1] - w) // 2
    return np.ascontiguousarray(zoomed[y0:y0 + h, x0:x0 + w])


def _noise_sigma(image) -> float:
    """Gaussian noise level, Immerkaer's (1996) fast estimate.

    The 3x3 kernel below cancels intensity that is locally flat or linear; for white noise
    of standard deviation s its output has standard deviation 6 s, and
    ``s = sqrt(pi / 2) * mean(|output|) / 6``. Edges add a little, alike on similar images.
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = ndi.convolve(image.astype(np.float64), kernel, mode="reflect")
    return float(np.sqrt(np.pi / 2) * np.mean(np.abs(response)) / 6.0)


def _high_frequency(image) -> float:
    """Fraction of the (mean-removed) power spectrum above 0.25 cycles per pixel."""
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    total = spectrum.sum()
    return float(spectrum[np.hypot(fy, fx) > 0.25].sum() / total) if total > 0 else 0.0


class ShiftDetector:
    """Flag images whose simple statistics lie outside those of the training images.

    Each image is summarised by ``FEATURES``: the mean of its darkest 5 % of pixels (the
    background level), its mean, the mean of its brightest 1 % (the bright level), the
    noise level (Immerkaer's estimate) and the fraction of its power above 0.25 cycles per
    pixel (fine detail: noise raises it, blur and magnification lower it). :meth:`fit`
    stores their mean and standard deviation over the training images; the *score* of an
    image is the largest absolute z-score of its statistics, "how many standard deviations
    its most unusual statistic lies from the training images" (a ``max |z|`` rather than a
    Mahalanobis distance: stable with a dozen training images, and :meth:`zscores` names
    the statistic that moved). A statistic that hardly varies over the training images
    gets 1 % of its mean as standard deviation, so that a tiny change is not infinitely
    unusual.

    The threshold is the ``quantile`` of the *leave-one-out* scores of the training images
    (each scored by a detector fitted without it), so that it reflects how new
    in-distribution images score, not how training images score on themselves (always
    lower). With fewer than about 100 training images, 0.99 is in effect the largest.

    Parameters
    ----------
    quantile : float
        Quantile of the leave-one-out training scores used as threshold.
    threshold : float, optional
        A fixed threshold instead (e.g. 5 standard deviations).

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei, add_poisson_gaussian_noise
    >>> train = [add_poisson_gaussian_noise(nuclei((64, 64), 6, seed=s)[0], 200, seed=s)
    ...          for s in range(12)]
    >>> det = ShiftDetector().fit(train)
    >>> new = add_poisson_gaussian_noise(nuclei((64, 64), 6, seed=99)[0], 200, seed=99)
    >>> det.is_out_of_distribution(new)
    False
    >>> det.is_out_of_distribution(shift_image(new, kind="noise", strength=0.2))
    True
    """

    FEATURES = ("dark", "mean", "bright", "noise_sigma", "high_frequency")

    def __init__(self, *, quantile: float = 0.99, threshold: float | None = None):
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}.")
        if threshold is not None and not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}.")
        self.quantile = float(quantile)
        self.threshold = None if threshold is None else float(threshold)
        self._fixed_threshold = threshold is not None
        self.mean_ = self.std_ = None
        self.train_scores_ = None

    @classmethod
    def statistics(cls, image) -> dict:
        """The statistics of one image, by name (see ``FEATURES``).

        Examples
        --------
        >>> s = ShiftDetector.statistics(np.zeros((16, 16)))
        >>> list(s) == list(ShiftDetector.FEATURES), s["noise_sigma"]
        (True, 0.0)
        """
        image = check_image(image, min_size=8).astype(np.float64)
        flat = np.sort(image.ravel())
        n_dark, n_bright = math.ceil(0.05 * flat.size), math.ceil(0.01 * flat.size)
        # Means of the darkest 5 % and brightest 1 % rather than percentiles: camera
        # counts are integers, and a percentile of integers jumps from step to step.
        values = (flat[:n_dark].mean(), flat.mean(), flat[-n_bright:].mean(),
                  _noise_sigma(image), _high_frequency(image))
        return dict(zip(cls.FEATURES, map(float, values)))

    @staticmethod
    def _moments(table):
        mean = table.mean(axis=0)
        std = table.std(axis=0, ddof=1)
        # A statistic (nearly) constant over the training images, e.g. a percentile of
        # integer counts, gets 1 % of its mean as spread, not a division by ~zero.
        return mean, np.maximum(std, 0.01 * np.abs(mean) + 1e-12)

    def fit(self, images) -> ShiftDetector:
        """Learn the statistics of in-distribution images (at least 3; 10 or more advised).

        Parameters
        ----------
        images : sequence of ndarray ``(Y, X)``, or ndarray ``(N, Y, X)``
            Training images, prepared exactly as the images to check will be.

        Returns
        -------
        ShiftDetector
            ``self``, fitted.
        """
        if isinstance(images, np.ndarray) and images.ndim != 3:
            raise ValueError(f"images must be a stack (N, Y, X) or a list of (Y, X) "
                             f"images, got an array of shape {images.shape}.")
        images = list(images)
        if len(images) < 3:
            raise ValueError(f"fit needs at least 3 training images, got {len(images)}; "
                             "pass the training set, 10 or more images if you can.")
        table = np.array([list(self.statistics(im).values()) for im in images])
        self.mean_, self.std_ = self._moments(table)
        loo = []
        for i in range(len(table)):
            mean, std = self._moments(np.delete(table, i, axis=0))
            loo.append(float(np.max(np.abs((table[i] - mean) / std))))
        self.train_scores_ = np.array(loo)
        if not self._fixed_threshold:
            self.threshold = float(np.quantile(self.train_scores_, self.quantile))
        return self

    def _check_fitted(self):
        if self.mean_ is None:
            raise RuntimeError("this ShiftDetector is not fitted; call .fit(train_images) "
                               "first.")

    def zscores(self, image) -> dict:
        """z-score of each statistic of ``image`` against the training images, by name."""
        self._check_fitted()
        values = np.array(list(self.statistics(image).values()))
        return dict(zip(self.FEATURES, map(float, (values - self.mean_) / self.std_)))

    def score(self, image) -> float:
        """The largest absolute z-score of the statistics of ``image``."""
        return float(max(abs(z) for z in self.zscores(image).values()))

    def is_out_of_distribution(self, image) -> bool:
        """Whether the score of ``image`` exceeds the threshold."""
        return bool(self.score(image) > self.threshold)

    def __repr__(self) -> str:
        """``ShiftDetector(unfitted)``, or how many images it was fitted on, and its threshold."""
        state = "unfitted" if self.mean_ is None else \
            f"fitted on {len(self.train_scores_)} images, threshold {self.threshold:.2f}"
        return f"ShiftDetector({state})"
