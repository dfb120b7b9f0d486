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


# --- the 2D data stay as they were --------------------------------------------------------

def test_nuclei_2d_results_are_pinned():
    """nuclei(seed=0) as the chapters have always drawn it (values recorded once)."""
    import hashlib

    image, labels = nuclei(seed=0)
    assert hashlib.sha256(labels.tobytes()).hexdigest() == \
        "73cfb36c227b816db5b5e46ebe2873e473639308dc2edd6a7e3a4a5705810d3e"
    assert labels.max() == 29
    points = [(3, 3), (48, 173), (148, 54), (207, 104), (234, 205)]
    expected = [0.4337787330150604, 0.6883317828178406, 0.42043405771255493,
                0.754728376865387, 0.813832700252533]
    np.testing.assert_allclose([image[p] for p in points], expected, rtol=1e-6)
    assert float(image.astype(np.float64).sum()) == pytest.approx(7886.933769159019,
                                                                   rel=1e-7)


def test_diverse_nuclei_results_are_pinned():
    import hashlib

    from dlbio_teach.synthetic import diverse_nuclei

    images, labels = diverse_nuclei(3, (96, 96), seed=0)
    assert hashlib.sha256(labels.tobytes()).hexdigest() == \
        "7ea5534f135793497d5aa47deb654893d9779dc2f7bf88f7babcaf347e54671d"
    np.testing.assert_allclose(images[:, 40, 50],
                               [0.32404625415802, 0.28096893429756165, 0.17119525372982025],
                               rtol=1e-5)
    assert float(images.astype(np.float64).sum()) == pytest.approx(6931.869094253459,
                                                                    rel=1e-6)


# --- nuclei_volume ----------------------------------------------------------------------------

def touching_pairs_3d(labels: np.ndarray) -> set:
    """Pairs of different labels that share a face (6-connectivity)."""
    pairs = set()
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)
        a, b = a[1:], a[:-1]
        touch = (a > 0) & (b > 0) & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[touch].tolist(), b[touch].tolist())}
    return pairs


def extents(labels: np.ndarray) -> np.ndarray:
    """(z, y, x) extent in voxels of each object's bounding box."""
    return np.array([[s.stop - s.start for s in box] for box in ndi.find_objects(labels)
                     if box is not None])


@pytest.mark.parametrize("shape", [(32, 96, 96), (4, 16, 16), (10, 40, 24)])
def test_nuclei_volume_shapes_dtypes_ranges(shape):
    from dlbio_teach.synthetic import nuclei_volume

    clean, labels = nuclei_volume(shape, n_nuclei=10, seed=1)
    assert clean.shape == shape and labels.shape == shape
    assert clean.dtype == np.float32 and labels.dtype == np.int32
    assert clean.min() >= 0.0 and clean.max() <= 1.0
    assert 0 <= labels.max() <= 10


def test_nuclei_volume_is_seeded():
    from dlbio_teach.synthetic import nuclei_volume

    a = nuclei_volume((16, 48, 48), n_nuclei=10, seed=7)
    b = nuclei_volume((16, 48, 48), n_nuclei=10, seed=7)
    c = nuclei_volume((16, 48, 48), n_nuclei=10, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nuclei_volume_labels_are_valid_instance_masks(seed):
    from dlbio_teach.synthetic import nuclei_volume

    _, labels = nuclei_volume(n_nuclei=80, touching=0.8, seed=seed)
    n = labels.max()
    assert n > 20
    assert np.array_equal(np.unique(labels), np.arange(n + 1))           # 1..N, no gaps
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        mask = labels[box] == i
        assert ndi.label(mask)[1] == 1, i                                # one piece
        assert np.array_equal(ndi.binary_fill_holes(mask), mask), i     # no holes
    assert len(touching_pairs_3d(labels)) >= 5                           # they do touch


def test_nuclei_volume_light_comes_from_labelled_nuclei_only():
    from dlbio_teach.synthetic import nuclei_volume

    clean, labels = nuclei_volume(n_nuclei=40, seed=3)
    near = ndi.binary_dilation(labels > 0, iterations=4)
    assert clean[~near].max() < 1e-3      # only the tail of the half-micrometre blur
    inside = ndi.binary_erosion(labels > 0, iterations=1)
    assert np.median(clean[inside]) > 0.3


def test_nuclei_volume_anisotropic_voxels_flatten_nuclei():
    """The same nuclei in micrometres span fewer planes than pixels when the z step is
    four times the pixel size."""
    from dlbio_teach.synthetic import nuclei_volume

    kwargs = dict(n_nuclei=30, radius=(2.0, 3.0), touching=0.0, seed=4)
    _, iso = nuclei_volume((48, 48, 48), voxel_size=(0.5, 0.5, 0.5), **kwargs)
    _, aniso = nuclei_volume((24, 48, 48), voxel_size=(2.0, 0.5, 0.5), **kwargs)
    e_iso, e_aniso = extents(iso), extents(aniso)
    ratio_iso = np.median(e_iso[:, 0] / e_iso[:, 1:].mean(axis=1))
    ratio_aniso = np.median(e_aniso[:, 0] / e_aniso[:, 1:].mean(axis=1))
    assert 0.7 < ratio_iso < 1.4
    assert ratio_aniso < 0.45
    # In y and x nothing changed: the same size in pixels.
    assert np.median(e_aniso[:, 1:]) == pytest.approx(np.median(e_iso[:, 1:]), rel=0.25)


def test_nuclei_volume_radius_is_in_micrometres():
    from dlbio_teach.synthetic import nuclei_volume

    r = 3.0
    expected = 4 / 3 * np.pi * r ** 3                                      # µm³
    for voxel_size, shape in [((0.5, 0.5, 0.5), (64, 96, 96)), ((1.5, 0.5, 0.5), (24, 96, 96)),
                              ((1.0, 1.0, 1.0), (32, 48, 48))]:
        _, labels = nuclei_volume(shape, n_nuclei=15, radius=(r, r), voxel_size=voxel_size,
                                  touching=0.0, seed=5)
        counts = np.bincount(labels.ravel())[1:]
        volume = np.median(counts) * np.prod(voxel_size)
        assert volume == pytest.approx(expected, rel=0.25), voxel_size


def test_nuclei_volume_touching():
    from dlbio_teach.synthetic import nuclei_volume

    _, together = nuclei_volume(n_nuclei=30, touching=1.0, seed=0)
    _, apart = nuclei_volume(n_nuclei=30, touching=0.0, seed=0)
    share = [len({i for p in touching_pairs_3d(t) for i in p}) / t.max()
             for t in (together, apart)]
    assert share[0] > 0.7 and share[0] > 2 * share[1]


def test_nuclei_volume_texture_changes_intensities_only():
    from dlbio_teach.synthetic import nuclei_volume

    flat, labels = nuclei_volume(n_nuclei=10, texture=0.0, seed=6)
    textured, labels2 = nuclei_volume(n_nuclei=10, texture=0.8, seed=6)
    assert np.array_equal(labels, labels2)
    assert not np.allclose(flat, textured)


@pytest.mark.parametrize("shape", [(64, 64), (3, 64, 64), (8, 15, 64), (4, 16, 16, 16), 32,
                                   (8.0, 32, 32)])
def test_nuclei_volume_bad_shape(shape):
    from dlbio_teach.synthetic import nuclei_volume

    with pytest.raises(ValueError, match=r"shape must be \(Z, Y, X\).*got"):
        nuclei_volume(shape)


@pytest.mark.parametrize("voxel_size", [(1.0, 1.0), (0, 0.5, 0.5), (-1, 0.5, 0.5),
                                        (np.nan, 0.5, 0.5), "abc", 1.0, (1, 1, 1, 1)])
def test_nuclei_volume_bad_voxel_size(voxel_size):
    from dlbio_teach.synthetic import nuclei_volume

    with pytest.raises(ValueError, match=r"voxel_size must be three positive numbers "
                                         r"\(Z, Y, X\) in micrometres.*got"):
        nuclei_volume((8, 32, 32), voxel_size=voxel_size)


@pytest.mark.parametrize("radius", [(0.0, 3.0), (5.0, 3.0), (3.0,), 3.0])
def test_nuclei_volume_bad_radius(radius):
    from dlbio_teach.synthetic import nuclei_volume

    with pytest.raises(ValueError, match="radius must be"):
        nuclei_volume((8, 32, 32), radius=radius)


def test_a_volume_is_drawn_and_imaged_in_well_under_a_second():
    import time

    from dlbio_teach.synthetic import image_volume, nuclei_volume

    nuclei_volume((8, 32, 32), seed=0)                      # imports and caches warm
    start = time.perf_counter()
    clean, _ = nuclei_volume((32, 96, 96), seed=1)
    image_volume(clean, seed=1)
    assert time.perf_counter() - start < 1.0


# --- image_volume ---------------------------------------------------------------------------

def plane_means(image):
    return image.reshape(image.shape[0], -1).mean(axis=1)


def test_image_volume_shape_dtype_normalisation_and_seed():
    from dlbio_teach.synthetic import image_volume, nuclei_volume

    clean, _ = nuclei_volume((16, 48, 48), n_nuclei=10, seed=0)
    image = image_volume(clean, seed=0)
    assert image.shape == clean.shape and image.dtype == np.float32
    lo, hi = np.percentile(image, [1, 99.8])
    assert abs(lo) < 1e-5 and abs(hi - 1) < 1e-5
    assert np.array_equal(image, image_volume(clean, seed=0))
    assert not np.array_equal(image, image_volume(clean, seed=1))


def test_image_volume_attenuation_dims_deeper_planes():
    from dlbio_teach.synthetic import image_volume

    clean = np.full((20, 32, 32), 0.5, np.float32)
    common = dict(voxel_size=(2.0, 0.5, 0.5), psf_sigma=(0, 0, 0), out_of_focus=0.0,
                  background=0.0, photons=1e5, read_noise=0.0, seed=0)
    means = plane_means(image_volume(clean, attenuation=30.0, **common))
    assert np.all(np.diff(means) < 0)                  # every plane dimmer than the last
    # exp(-depth / 30 µm), seen through the normalisation (an offset and a scale):
    depth = np.arange(20) * 2.0
    expected = (1 - np.exp(-depth / 30.0)) / (1 - np.exp(-depth[-1] / 30.0))
    np.testing.assert_allclose((means[0] - means) / (means[0] - means[-1]), expected,
                               atol=0.01)
    flat = plane_means(image_volume(clean, attenuation=None, **common))
    assert abs(flat[:5].mean() - flat[-5:].mean()) < 0.02 * (means[0] - means[-1])


def test_image_volume_blur_is_wider_in_z():
    from dlbio_teach.synthetic import image_volume

    point = np.zeros((31, 31, 31), np.float32)
    point[15, 15, 15] = 1.0
    image = image_volume(point, voxel_size=(0.5, 0.5, 0.5), psf_sigma=(2.0, 0.5, 0.5),
                         out_of_focus=0.0, attenuation=None, background=0.0, photons=1e7,
                         read_noise=0.0)
    along_z, along_x = image[:, 15, 15], image[15, 15, :]
    idx = np.arange(31) - 15

    def spread(p):
        return np.sqrt(np.sum(p * idx ** 2) / np.sum(p))

    assert spread(along_z) == pytest.approx(4 * spread(along_x), rel=0.15)   # 2 µm / 0.5 µm
    assert spread(along_x) == pytest.approx(1.0, rel=0.15)                   # 0.5 µm = 1 px


def test_image_volume_out_of_focus_light_reaches_other_planes():
    from dlbio_teach.synthetic import image_volume

    point = np.zeros((31, 31, 31), np.float32)
    point[15, 13:18, 13:18] = 1.0
    common = dict(voxel_size=(1.0, 0.5, 0.5), psf_sigma=(0.8, 0.3, 0.3), attenuation=None,
                  background=0.0, photons=1e7, read_noise=0.0)
    sharp = image_volume(point, out_of_focus=0.0, **common)
    hazy = image_volume(point, out_of_focus=1.0, **common)
    # Light 6 planes away from the nucleus, relative to its own plane.
    assert sharp[21, 15, 15] / sharp[15, 15, 15] < 1e-3
    assert hazy[21, 15, 15] / hazy[15, 15, 15] > 0.01


@pytest.mark.parametrize("photons", [10.0, 100.0, 1000.0])
def test_image_volume_noise_follows_photons(photons):
    """Noise relative to the signal: sqrt(level / photons) over the step, whatever the
    normalisation."""
    from dlbio_teach.synthetic import image_volume

    clean = np.full((8, 64, 64), 0.2, np.float32)
    clean[:, :, 32:] = 0.8
    image = image_volume(clean, voxel_size=(1.0, 0.5, 0.5), psf_sigma=(0, 0, 0),
                         out_of_focus=0.0, attenuation=None, background=0.0,
                         photons=photons, read_noise=0.0, seed=2)
    dim, bright = image[:, :, :32], image[:, :, 32:]
    step = bright.mean() - dim.mean()
    assert bright.std() / step == pytest.approx(np.sqrt(0.8 / photons) / 0.6, rel=0.1)
    assert dim.std() / step == pytest.approx(np.sqrt(0.2 / photons) / 0.6, rel=0.1)


def test_image_volume_background_adds_shot_noise():
    """The normalisation takes the background level away, not its shot noise."""
    from dlbio_teach.synthetic import image_volume, nuclei_volume

    clean, labels = nuclei_volume((16, 48, 48), n_nuclei=15, seed=3)
    far = ~ndi.binary_dilation(labels > 0, iterations=4)
    inside = ndi.binary_erosion(labels > 0, iterations=1)
    common = dict(photons=100.0, read_noise=0.0, out_of_focus=0.0, attenuation=None)

    def noise_over_signal(image):
        return image[far].std() / (np.median(image[inside]) - np.median(image[far]))

    dark = image_volume(clean, background=0.01, **common)
    bright = image_volume(clean, background=0.5, **common)
    assert noise_over_signal(bright) > 3 * noise_over_signal(dark)


@pytest.mark.parametrize("kwargs, message", [
    (dict(psf_sigma=(1.0, 0.5)), r"psf_sigma must be three non-negative numbers"),
    (dict(psf_sigma=(-1.0, 0.5, 0.5)), r"psf_sigma must be three non-negative numbers"),
    (dict(voxel_size=(0.0, 0.5, 0.5)), r"voxel_size must be three positive numbers"),
    (dict(attenuation=0.0), r"attenuation must be a positive depth .* or None"),
    (dict(attenuation=-10.0), r"attenuation must be a positive depth .* or None"),
    (dict(out_of_focus=-0.1), r"out_of_focus must be a number >= 0"),
    (dict(background=-0.1), r"background must be a number >= 0"),
    (dict(photons=0), r"photons must be positive"),
])
def test_image_volume_bad_arguments(kwargs, message):
    from dlbio_teach.synthetic import image_volume

    with pytest.raises(ValueError, match=message):
        image_volume(np.zeros((4, 16, 16), np.float32), **kwargs)


def test_image_volume_refuses_an_image():
    from dlbio_teach.synthetic import image_volume

    with pytest.raises(ValueError, match=r"clean must be a volume \(Z, Y, X\), got shape "
                                         r"\(32, 32\)"):
        image_volume(np.zeros((32, 32), np.float32))


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_image_volume_refuses_what_is_not_light(bad):
    from dlbio_teach.synthetic import image_volume

    clean = np.zeros((4, 16, 16), np.float32)
    clean[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"clean must hold light: finite and non-negative"
                                         r".*normalize_minmax"):
        image_volume(clean, psf_sigma=(0, 0, 0), background=0.0)


# --- diverse_nuclei_volumes -------------------------------------------------------------------

def test_diverse_nuclei_volumes_shapes_voxel_sizes_and_seed():
    from dlbio_teach.synthetic import diverse_nuclei_volumes

    volumes = diverse_nuclei_volumes(3, (16, 48, 48), seed=0)
    assert len(volumes) == 3
    for image, labels, voxel_size in volumes:
        assert image.shape == labels.shape == (16, 48, 48)
        assert image.dtype == np.float32 and labels.dtype == np.int32
        lo, hi = np.percentile(image, [1, 99.8])
        assert abs(lo) < 1e-5 and abs(hi - 1) < 1e-5
        assert len(voxel_size) == 3 and voxel_size[1:] == (0.5, 0.5)
        assert 0.5 <= voxel_size[0] <= 2.5                   # anisotropy 1 to 5
    again = diverse_nuclei_volumes(3, (16, 48, 48), seed=0)
    other = diverse_nuclei_volumes(3, (16, 48, 48), seed=1)
    for (a, la, va), (b, lb, vb) in zip(volumes, again):
        assert np.array_equal(a, b) and np.array_equal(la, lb) and va == vb
    assert not np.array_equal(volumes[0][0], other[0][0])


def test_diverse_nuclei_volumes_vary():
    from dlbio_teach.synthetic import diverse_nuclei_volumes

    volumes = diverse_nuclei_volumes(8, (24, 64, 64), seed=2)
    z_steps = [v[0] for _, _, v in volumes]
    counts = [labels.max() for _, labels, _ in volumes]
    sizes = [np.median(np.bincount(labels.ravel())[1:]) * np.prod(v)
             for _, labels, v in volumes if labels.max()]
    noise = [np.std(np.diff(image[labels == 0])) for image, labels, _ in volumes]
    assert max(z_steps) > 2 * min(z_steps)                # anisotropy
    assert max(counts) > 2 * min(counts)                  # sparse and crowded
    assert max(sizes) > 2.5 * min(sizes)                  # small and large nuclei (µm³)
    assert max(noise) > 2 * min(noise)
    # Attenuation and haze: in most volumes the deepest planes hold less light.
    deeper_dimmer = [plane_means(image)[-3:].mean() < plane_means(image)[:3].mean()
                     for image, _, _ in volumes]
    assert sum(deeper_dimmer) >= 5


def test_diverse_nuclei_volumes_labels_are_valid_instance_masks():
    from dlbio_teach.synthetic import diverse_nuclei_volumes

    for _, labels, _ in diverse_nuclei_volumes(4, (16, 48, 48), seed=3, touching=(0.6, 0.9)):
        n = labels.max()
        assert np.array_equal(np.unique(labels), np.arange(n + 1))
        for i, box in enumerate(ndi.find_objects(labels), start=1):
            mask = labels[box] == i
            assert ndi.label(mask)[1] == 1
            assert np.array_equal(ndi.binary_fill_holes(mask), mask)


def test_diverse_nuclei_volumes_refuses_bad_requests():
    from dlbio_teach.synthetic import diverse_nuclei_volumes

    with pytest.raises(ValueError, match="at least 1"):
        diverse_nuclei_volumes(0)
    with pytest.raises(ValueError, match=r"shape must be \(Z, Y, X\)"):
        diverse_nuclei_volumes(2, (64, 64))
