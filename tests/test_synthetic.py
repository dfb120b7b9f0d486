"""dlbio_teach.synthetic: nuclei with known ground truth, camera noise, blur."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from dlbio_teach.synthetic import add_poisson_gaussian_noise, blur, nuclei


def touching_pairs(labels: np.ndarray) -> set:
    """Pairs of different labels that share an edge (4-connectivity)."""
    pairs = set()
    for a, b in ((labels[1:, :], labels[:-1, :]), (labels[:, 1:], labels[:, :-1])):
        touch = (a > 0) & (b > 0) & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[touch].tolist(), b[touch].tolist())}
    return pairs


# --- nuclei ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (16, 16)])
def test_nuclei_shapes_dtypes_ranges(shape):
    image, labels = nuclei(shape, n_nuclei=8, radius=(4, 7), seed=1)
    assert image.shape == shape and labels.shape == shape
    assert image.dtype == np.float32 and labels.dtype == np.int32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert labels.min() >= 0 and labels.max() <= 8


def test_nuclei_labels_are_consecutive():
    _, labels = nuclei((128, 128), n_nuclei=30, seed=2)
    n = labels.max()
    assert n > 10
    assert np.array_equal(np.unique(labels), np.arange(n + 1))


def test_nuclei_each_label_is_one_object():
    _, labels = nuclei((128, 128), n_nuclei=25, touching=0.0, seed=3)
    for lab in range(1, labels.max() + 1):
        _, n_parts = ndi.label(labels == lab)
        assert n_parts == 1, lab


def test_nuclei_are_brighter_than_background():
    image, labels = nuclei((128, 128), n_nuclei=20, background=0.05, texture=0.0, seed=4)
    inside = image[ndi.binary_erosion(labels > 0, iterations=3)]
    outside = image[~ndi.binary_dilation(labels > 0, iterations=4)]
    assert inside.min() > 0.25
    assert np.allclose(outside, 0.05, atol=1e-3)


def test_nuclei_background_parameter():
    image, labels = nuclei((96, 96), n_nuclei=3, background=0.2, seed=0)
    outside = image[~ndi.binary_dilation(labels > 0, iterations=4)]
    assert np.allclose(outside, 0.2, atol=1e-3)


def test_nuclei_radius_sets_size():
    _, small = nuclei((128, 128), n_nuclei=10, radius=(3, 4), touching=0.0, seed=5)
    _, large = nuclei((128, 128), n_nuclei=10, radius=(10, 12), touching=0.0, seed=5)
    area_small = np.bincount(small.ravel())[1:].mean()
    area_large = np.bincount(large.ravel())[1:].mean()
    assert area_small < 1.3 * np.pi * 4 * 4
    assert area_large > np.pi * 0.5 * 10 * 10
    assert area_large > 4 * area_small


def test_nuclei_touching():
    _, together = nuclei((128, 128), n_nuclei=30, touching=1.0, seed=0)
    _, apart = nuclei((128, 128), n_nuclei=8, radius=(4, 5), touching=0.0, seed=0)
    pairs = touching_pairs(together)
    assert len(pairs) >= 3, pairs
    # Every nucleus after the first is placed beside an earlier one: nearly all touch.
    touching_labels = {lab for pair in pairs for lab in pair}
    assert len(touching_labels) >= 0.8 * together.max()
    apart_labels = {lab for pair in touching_pairs(apart) for lab in pair}
    assert len(apart_labels) / apart.max() < len(touching_labels) / together.max()


def test_nuclei_texture():
    flat, labels = nuclei((96, 96), n_nuclei=10, texture=0.0, seed=6)
    textured, labels2 = nuclei((96, 96), n_nuclei=10, texture=0.8, seed=6)
    assert np.array_equal(labels, labels2)    # texture changes intensities only
    assert not np.allclose(flat, textured)


def test_nuclei_deterministic():
    a = nuclei((64, 64), n_nuclei=10, seed=7)
    b = nuclei((64, 64), n_nuclei=10, seed=7)
    c = nuclei((64, 64), n_nuclei=10, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("shape", [(8, 64), (64, 15), (64,), (4, 64, 64)])
def test_nuclei_bad_shape(shape):
    with pytest.raises(ValueError, match=r"shape must be \(Y, X\) with both at least 16"):
        nuclei(shape)


# --- add_poisson_gaussian_noise ----------------------------------------------------------

@pytest.mark.parametrize("level, photons", [(0.5, 100.0), (0.2, 10.0), (1.0, 3.0)])
def test_poisson_noise_statistics(level, photons):
    clean = np.full((300, 300), level, np.float32)
    noisy = add_poisson_gaussian_noise(clean, photons=photons, seed=0)
    assert noisy.shape == clean.shape and noisy.dtype == np.float32
    expected_var = level / photons
    assert abs(noisy.mean() - level) < 4 * np.sqrt(expected_var / noisy.size)
    assert noisy.var() == pytest.approx(expected_var, rel=0.03)
    # Counts are integers: values are multiples of 1 / photons.
    counts = noisy.astype(np.float64) * photons
    assert np.allclose(counts, np.round(counts), atol=1e-3)


def test_read_noise_adds_variance():
    clean = np.full((300, 300), 0.5, np.float32)
    photons, read = 50.0, 4.0
    noisy = add_poisson_gaussian_noise(clean, photons=photons, read_noise=read, seed=1)
    expected_var = 0.5 / photons + (read / photons) ** 2
    assert noisy.var() == pytest.approx(expected_var, rel=0.03)
    assert noisy.mean() == pytest.approx(0.5, abs=0.005)


def test_noise_is_signal_dependent():
    clean = np.zeros((200, 200), np.float32)
    clean[:, 100:] = 1.0
    noisy = add_poisson_gaussian_noise(clean, photons=20, seed=2)
    assert np.all(noisy[:, :100] == 0)         # no light, no shot noise
    assert noisy[:, 100:].var() == pytest.approx(1 / 20, rel=0.05)


def test_more_photons_less_noise():
    clean, _ = nuclei((96, 96), n_nuclei=10, seed=0)
    errors = [np.mean((add_poisson_gaussian_noise(clean, photons=p, seed=0) - clean) ** 2)
              for p in (2, 20, 200)]
    assert errors[0] > errors[1] > errors[2]


def test_noise_accepts_integer_images():
    clean = np.full((50, 50), 3, np.uint16)
    noisy = add_poisson_gaussian_noise(clean, photons=1.0, seed=0)
    assert noisy.dtype == np.float32
    assert noisy.mean() == pytest.approx(3.0, abs=0.15)


def test_noise_deterministic():
    clean, _ = nuclei((64, 64), n_nuclei=5, seed=0)
    a = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=3)
    b = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=3)
    c = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_noise_rejects_negative_values():
    image = np.zeros((10, 10), np.float32)
    image[3, 3] = -0.1
    with pytest.raises(ValueError, match="non-negative"):
        add_poisson_gaussian_noise(image, photons=10)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_noise_rejects_nan_and_inf(bad):
    image = np.ones((10, 10), np.float32)
    image[0, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        add_poisson_gaussian_noise(image, photons=10)


@pytest.mark.parametrize("photons", [0, -5.0])
def test_noise_rejects_non_positive_photons(photons):
    with pytest.raises(ValueError, match="photons must be positive"):
        add_poisson_gaussian_noise(np.ones((4, 4)), photons=photons)


def test_noise_rejects_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        add_poisson_gaussian_noise(np.array([["a", "b"]]), photons=10)


# --- blur -------------------------------------------------------------------------------

def test_blur_spreads_a_point():
    point = np.zeros((21, 21), np.float32)
    point[10, 10] = 1.0
    out = blur(point, 2.0)
    assert out.shape == point.shape and out.dtype == np.float32
    assert out.sum() == pytest.approx(1.0, rel=1e-4)
    assert out[10, 10] < 0.1 and out[10, 10] == out.max()
    assert np.allclose(out, out.T) and np.allclose(out, out[::-1])
    assert blur(point, 4.0)[10, 10] < out[10, 10]


def test_blur_converts_integers():
    out = blur(np.eye(8, dtype=np.uint8) * 200, 1.0)
    assert out.dtype == np.float32 and out.max() < 200


# --- diverse_nuclei ------------------------------------------------------------------------

def test_diverse_nuclei_shapes_match_real_tiles_and_are_seeded():
    from dlbio_teach.synthetic import diverse_nuclei

    images, labels = diverse_nuclei(4, (128, 128), seed=0)
    assert images.shape == labels.shape == (4, 128, 128)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    again, again_labels = diverse_nuclei(4, (128, 128), seed=0)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    other, _ = diverse_nuclei(4, (128, 128), seed=1)
    assert not np.array_equal(images, other)
    # Normalised as real images are: 1st and 99.8th percentiles at 0 and 1.
    for image in images:
        lo, hi = np.percentile(image, [1, 99.8])
        assert abs(lo) < 1e-5 and abs(hi - 1) < 1e-5


def test_diverse_nuclei_vary_in_size_density_and_look():
    from dlbio_teach.synthetic import diverse_nuclei

    images, labels = diverse_nuclei(8, (128, 128), seed=2)
    sizes = [np.median(np.bincount(t.ravel())[1:]) for t in labels]
    counts = [t.max() for t in labels]
    assert max(sizes) > 2.5 * min(sizes)                 # small and large nuclei
    assert max(counts) > 2 * min(counts)                 # sparse and crowded images
    background = [np.median(i[t == 0]) for i, t in zip(images, labels)]
    noise = [np.std(np.diff(i[t == 0])) for i, t in zip(images, labels)]
    assert np.ptp(background) > 0.02 and max(noise) > 2 * min(noise)
    assert sum(len(touching_pairs(t)) > 0 for t in labels) >= 2


def test_diverse_nuclei_labels_are_valid_instance_masks():
    from dlbio_teach.star import check_star_labels
    from dlbio_teach.synthetic import diverse_nuclei

    _, labels = diverse_nuclei(6, (96, 96), seed=3, touching=(0.5, 0.9))
    for t in labels:
        n = t.max()
        assert n > 0 and np.array_equal(np.unique(t), np.arange(n + 1))   # 1..N, no gaps
        for i in range(1, n + 1):
            assert ndi.label(t == i)[1] == 1                              # one piece each
        check_star_labels(t)                                              # no holes


def test_diverse_nuclei_refuses_an_empty_set():
    from dlbio_teach.synthetic import diverse_nuclei

    with pytest.raises(ValueError, match="at least 1"):
        diverse_nuclei(0)
