"""Domain shift: controlled shifts of images and labels, and the shift detector."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.shift import SHIFT_KINDS, ShiftDetector, shift_image, shift_labels
from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei


def noisy_nuclei(seed, size=64):
    return add_poisson_gaussian_noise(nuclei((size, size), 6, seed=seed)[0], 200, seed=seed)


def test_shift_image_kinds():
    image = noisy_nuclei(0)
    for kind in SHIFT_KINDS:
        assert np.array_equal(shift_image(image, kind=kind, strength=0), image)
        assert shift_image(image, kind=kind, strength=0.3).shape == image.shape
    flat = np.full((64, 64), 0.5, np.float32)
    flat[0, 0] = 0
    flat[0, 1] = 1   # range 1
    noisy = shift_image(flat, kind="noise", strength=0.1, seed=4)
    assert np.std(noisy - flat) == pytest.approx(0.1, rel=0.05)
    assert np.array_equal(noisy, shift_image(flat, kind="noise", strength=0.1, seed=4))
    assert shift_image(image, kind="blur", strength=2).std() < image.std()
    gamma = shift_image(image, kind="gamma", strength=1.0)
    assert (gamma.min(), gamma.max()) == pytest.approx((image.min(), image.max()))
    spot = np.zeros((32, 32), np.float32)
    spot[12:20, 12:20] = 1   # an 8x8 square
    assert (shift_image(spot, kind="scale", strength=1.0) > 0.5).sum() == \
        pytest.approx(4 * 64, rel=0.15)
    # Zooming out fills the new field of view by mirroring; the centre holds a 4x4 square.
    zoomed_out = shift_image(spot, kind="scale", strength=-0.5)
    assert (zoomed_out[8:24, 8:24] > 0.5).sum() == pytest.approx(64 / 4, rel=0.3)
    with pytest.raises(ValueError, match="kind must be one of"):
        shift_image(image, kind="rotate", strength=1)
    with pytest.raises(ValueError, match="> -1"):
        shift_image(image, kind="gamma", strength=-1)


def test_shift_detector_passes_new_images_and_flags_shifted_ones():
    detector = ShiftDetector().fit([noisy_nuclei(s) for s in range(12)])
    held_out = [noisy_nuclei(s) for s in range(100, 108)]
    assert not any(detector.is_out_of_distribution(x) for x in held_out)
    for kind, strength in [("noise", 0.05), ("gamma", 0.5), ("gamma", -0.3),
                           ("blur", 1.5), ("scale", 0.5)]:
        shifted = [shift_image(x, kind=kind, strength=strength, seed=i)
                   for i, x in enumerate(held_out[:3])]
        assert all(detector.is_out_of_distribution(x) for x in shifted), (kind, strength)
    # The z-scores say which statistics moved.
    z = detector.zscores(shift_image(held_out[0], kind="noise", strength=0.05))
    assert z["noise_sigma"] > 5 and z["high_frequency"] > 2
    z = detector.zscores(shift_image(held_out[0], kind="blur", strength=1.5))
    assert z["noise_sigma"] < -5 and z["high_frequency"] < -2


def test_shift_detector_threshold_and_errors():
    train = [noisy_nuclei(s) for s in range(5)]
    detector = ShiftDetector(quantile=1.0).fit(train)
    assert detector.threshold == pytest.approx(detector.train_scores_.max())
    fixed = ShiftDetector(threshold=7.0).fit(train)
    assert fixed.threshold == 7.0
    with pytest.raises(RuntimeError, match="fit"):
        ShiftDetector().score(train[0])
    with pytest.raises(ValueError, match="at least 3"):
        ShiftDetector().fit(train[:2])
    with pytest.raises(ValueError, match="stack"):
        ShiftDetector().fit(train[0])
    with pytest.raises(ValueError, match=r"must be an image \(Y, X\)"):
        detector.score(np.stack(train[:2]))


def test_shift_labels_follows_shift_image():
    lab = np.zeros((64, 64), np.int32)
    lab[20:30, 24:34] = 1
    lab[40:50, 40:52] = 2
    for kind in ("noise", "gamma", "blur"):
        assert np.array_equal(shift_labels(lab, kind=kind, strength=0.3), lab)
    for strength in (0.25, 0.5, 1.0):
        moved = shift_image((lab > 0).astype(float), kind="scale", strength=strength) > 0.5
        labelled = shift_labels(lab, kind="scale", strength=strength) > 0
        assert labelled.shape == lab.shape
        assert (moved ^ labelled).sum() <= 0.1 * labelled.sum()
    with pytest.raises(ValueError, match="shrinking"):
        shift_labels(lab, kind="scale", strength=-0.2)
    with pytest.raises(ValueError, match="kind"):
        shift_labels(lab, kind="rotate", strength=0.2)
