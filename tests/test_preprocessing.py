"""dlbio_teach.preprocessing: input checks, normalisation, patches, splits, tiles."""
from __future__ import annotations

import re

import numpy as np
import pytest

from dlbio_teach.preprocessing import (
    check_image,
    check_labels,
    check_network_input,
    grid_tiles,
    normalize_minmax,
    normalize_percentile,
    random_patches,
    split_indices,
)

# --- check_image ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float64, np.float32,
                                   bool])
def test_check_image_returns_float32(dtype):
    image = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
    out = check_image(image)
    assert out.dtype == np.float32 and out.shape == (3, 4)
    assert np.array_equal(out, image.astype(np.float32))


def test_check_image_accepts_lists():
    assert check_image([[1, 2], [3, 4]]).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_check_image_wrong_ndim():
    with pytest.raises(ValueError, match=r"image must be an image \(Y, X\), got "
                                         r"shape \(5,\)"):
        check_image(np.zeros(5))


def test_check_image_stack_of_rgb_images_says_channels_last():
    with pytest.raises(ValueError, match=r"training images must be a stack of images "
                                         r"\(N, Y, X\), got shape \(2, 8, 8, 3\)\. It "
                                         r"looks like colour images with their channels last"):
        check_image(np.zeros((2, 8, 8, 3)), ndim=(3,), name="training images")


def test_check_image_colour_hint():
    with pytest.raises(ValueError, match=r"got shape \(8, 8, 3\).*keep one channel"):
        check_image(np.zeros((8, 8, 3)))


def test_check_image_colour_hint_names_rgb2gray():
    with pytest.raises(ValueError, match=r"skimage\.color\.rgb2gray\(image\)"):
        check_image(np.zeros((8, 8, 3)))


# --- check_network_input: what a network can take, and how to convert ------------------

def test_network_input_accepts_what_fits():
    assert check_network_input(np.zeros((8, 9), np.uint16), 1).shape == (1, 8, 9)
    out = check_network_input(np.ones((2, 8, 9)), 2)
    assert out.shape == (2, 8, 9) and out.dtype == np.float32
    assert check_network_input(np.ones((5, 8, 9)), None).shape == (5, 8, 9)
    assert check_network_input([[1, 2], [3, 4]], 1).tolist() == [[[1.0, 2.0], [3.0, 4.0]]]


@pytest.mark.parametrize("channels, grey", [(3, r"rgb2gray\(image\)"),
                                            (4, r"rgb2gray\(skimage\.color\.rgba2rgb")])
def test_network_input_rgb_channels_last(channels, grey):
    with pytest.raises(ValueError) as info:
        check_network_input(np.zeros((32, 32, channels)), 1)
    message = str(info.value)
    assert f"shape (32, 32, {channels})" in message               # what it got
    assert "takes 1 channel, (C, Y, X) = (1, Y, X)" in message      # what the net takes
    assert "channels last, (Y, X, C)" in message                    # what it looks like
    assert "image[..., 0]" in message and re.search(grey, message)  # how to convert


def test_network_input_channels_last_for_a_multichannel_net():
    with pytest.raises(ValueError, match=r"shape \(32, 32, 2\).*takes 2 channels, "
                                         r"\(C, Y, X\) = \(2, Y, X\).*channels are last.*"
                                         r"np\.moveaxis\(image, -1, 0\)"):
        check_network_input(np.zeros((32, 32, 2)), 2)


def test_network_input_stack_for_a_one_channel_net():
    with pytest.raises(ValueError) as info:
        check_network_input(np.zeros((4, 32, 32)), 1)
    message = str(info.value)
    assert "shape (4, 32, 32)" in message and "takes 1 channel" in message
    assert "stack of 4 images (N, Y, X)" in message
    assert "one image at a time" in message and "channels last" not in message


def test_network_input_2d_image_for_a_two_channel_net():
    with pytest.raises(ValueError, match=r"shape \(32, 32\), one channel \(Y, X\), but the "
                                         r"network takes 2 channels.*np\.stack\(\[channel_1, "
                                         r"channel_2\]\)"):
        check_network_input(np.zeros((32, 32)), 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_network_input_nan_inf(bad):
    image = np.zeros((3, 16, 16))
    image[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite.*np\.nan_to_num"):
        check_network_input(image, 3)


@pytest.mark.parametrize("image, match", [
    (np.array([["a", "b"], ["c", "d"]]), "must be numeric, got dtype <U1"),
    (np.empty((4, 4), dtype=object), "must be numeric.*objects.*astype"),
    (np.zeros((4, 4), np.complex64), "real-valued.*np.abs"),
])
def test_network_input_dtype(image, match):
    with pytest.raises(ValueError, match=match):
        check_network_input(image, 1)


@pytest.mark.parametrize("shape, hint", [((1, 1, 8, 8), r"batch axis: image\[0\]"),
                                         ((2, 1, 8, 8), "one at a time"), ((8,), "")])
def test_network_input_wrong_ndim(shape, hint):
    with pytest.raises(ValueError, match=r"2 or 3 dimensions, \(Y, X\) or \(C, Y, X\).*"
                                         + hint):
        check_network_input(np.zeros(shape), 1)


def test_network_input_too_small():
    assert check_network_input(np.zeros((8, 8)), 1, min_size=8).shape == (1, 8, 8)
    with pytest.raises(ValueError, match=r"\(7, 8\) pixels, smaller than the 8 pixels"):
        check_network_input(np.zeros((7, 8)), 1, min_size=8)
    with pytest.raises(ValueError, match="smaller than the 1 pixels"):
        check_network_input(np.zeros((0, 8)), 1)


def test_check_image_several_ndims_and_name():
    assert check_image(np.zeros((2, 8, 8)), ndim=(2, 3)).shape == (2, 8, 8)
    with pytest.raises(ValueError, match=r"stack must be a stack of images \(N, Y, X\)"):
        check_image(np.zeros((8, 8)), ndim=(3,), name="stack")
    with pytest.raises(ValueError, match=r"must be an image \(Y, X\) or a stack of images"):
        check_image(np.zeros((1, 2, 8, 8)), ndim=(2, 3))


def test_check_image_non_numeric():
    with pytest.raises(ValueError, match="must be numeric, got dtype <U1"):
        check_image(np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_image_nan_inf(bad):
    image = np.ones((4, 4))
    image[1, 2] = bad
    with pytest.raises(ValueError, match="contains NaN or infinite values.*nan_to_num"):
        check_image(image)


def test_check_image_too_small():
    assert check_image(np.zeros((32, 40)), min_size=32).shape == (32, 40)
    with pytest.raises(ValueError, match=r"is \(31, 40\) pixels, smaller than the 32 "
                                         "pixels needed"):
        check_image(np.zeros((31, 40)), min_size=32)
    with pytest.raises(ValueError, match="smaller than the 16 pixels"):
        check_image(np.zeros((3, 20, 10)), ndim=(3,), min_size=16)


# --- normalisation ----------------------------------------------------------------------

def test_normalize_percentile_maps_percentiles():
    image = np.random.default_rng(0).gamma(2.0, 100.0, size=(64, 64))
    out = normalize_percentile(image, 1, 99.8)
    assert out.shape == image.shape and out.dtype == np.float32
    lo, hi = np.percentile(out, [1, 99.8])
    assert lo == pytest.approx(0.0, abs=1e-5) and hi == pytest.approx(1.0, abs=1e-5)
    assert out.min() < 0 or out.max() > 1     # not clipped by default


def test_normalize_percentile_ignores_hot_pixels():
    image = np.tile(np.linspace(0.0, 1.0, 100), (100, 1))
    image[0, 0] = 1e6
    out = normalize_percentile(image, 1, 99)
    assert np.median(out) == pytest.approx(0.5, abs=0.02)
    assert normalize_minmax(image).max() == 1.0
    assert np.median(normalize_minmax(image)) < 1e-5


def test_normalize_percentile_clip():
    image = np.random.default_rng(1).normal(size=(50, 50))
    out = normalize_percentile(image, 2, 98, clip=True)
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.mean(out == 0) == pytest.approx(0.02, abs=0.005)


def test_normalize_percentile_is_monotonic():
    image = np.random.default_rng(2).random((30, 30))
    out = normalize_percentile(image)
    order = np.argsort(image.ravel())
    assert np.all(np.diff(out.ravel()[order]) >= 0)


def test_normalize_percentile_constant_image():
    out = normalize_percentile(np.full((8, 8), 5.0))
    assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_normalize_percentile_stack():
    stack = np.random.default_rng(3).random((3, 20, 20)) * 10
    out = normalize_percentile(stack, 0, 100)
    assert out.shape == (3, 20, 20)
    assert out.min() == pytest.approx(0.0, abs=1e-6) and out.max() == pytest.approx(1.0)


@pytest.mark.parametrize("low, high", [(50, 50), (60, 40), (-1, 99), (1, 101)])
def test_normalize_percentile_bad_percentiles(low, high):
    with pytest.raises(ValueError, match="need 0 <= low < high <= 100"):
        normalize_percentile(np.ones((4, 4)), low, high)


def test_normalize_percentile_checks_input():
    with pytest.raises(ValueError, match="NaN"):
        normalize_percentile(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"an image \(Y, X\) or a stack of images"):
        normalize_percentile(np.ones(10))


def test_normalize_minmax():
    image = np.array([[2, 4], [6, 10]], np.uint16)
    out = normalize_minmax(image)
    assert out.dtype == np.float32
    assert out.tolist() == [[0.0, 0.25], [0.5, 1.0]]
    assert np.all(normalize_minmax(np.full((3, 3), 7.0)) == 0)
    with pytest.raises(ValueError, match=r"an image \(Y, X\) or a stack of images"):
        normalize_minmax(np.ones((1, 1, 1, 1)))


# --- random_patches ---------------------------------------------------------------------

def test_random_patches_are_aligned():
    rng = np.random.default_rng(0)
    a = rng.random((4, 40, 50))
    b = a * 3 + 1
    mask = (a > 0.5).astype(np.uint8)
    pa, pb, pm = random_patches([a, b, mask], 16, 30, seed=1)
    assert pa.shape == pb.shape == pm.shape == (30, 16, 16)
    assert pm.dtype == np.uint8
    assert np.allclose(pb, pa * 3 + 1)
    assert np.array_equal(pm, (pa > 0.5).astype(np.uint8))


def test_random_patches_are_windows_of_the_images():
    images = np.arange(3 * 20 * 30, dtype=np.int64).reshape(3, 20, 30)
    (patches,) = random_patches([images], 8, 25, seed=2)
    for p in patches:
        i, y, x = np.unravel_index(p[0, 0], images.shape)
        assert y + 8 <= 20 and x + 8 <= 30
        assert np.array_equal(p, images[i, y:y + 8, x:x + 8])


def test_random_patches_2d_input():
    image = np.arange(100.0).reshape(10, 10)
    (p,) = random_patches([image], 10, 3, seed=0)
    assert p.shape == (3, 10, 10)
    assert all(np.array_equal(q, image) for q in p)   # the whole image is the only window


def test_random_patches_deterministic():
    a = np.random.default_rng(0).random((5, 32, 32))
    (p1,) = random_patches([a], 8, 10, seed=3)
    (p2,) = random_patches([a], 8, 10, seed=3)
    (p3,) = random_patches([a], 8, 10, seed=4)
    assert np.array_equal(p1, p2) and not np.array_equal(p1, p3)


def test_random_patches_weights():
    stack = np.stack([np.full((12, 12), i, np.float32) for i in range(3)])
    (p,) = random_patches([stack], 4, 50, seed=0, weights=[0.0, 0.0, 1.0])
    assert np.all(p == 2)


def test_random_patches_too_big():
    with pytest.raises(ValueError, match=r"patch_size 33 is larger than the images "
                                         r"\(32x40\)"):
        random_patches([np.zeros((2, 32, 40))], 33, 4)


def test_random_patches_unequal_shapes():
    with pytest.raises(ValueError, match="equal shapes"):
        random_patches([np.zeros((2, 32, 32)), np.zeros((2, 32, 31))], 8, 4)


# --- split_indices ----------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 5, 10, 17, 100])
def test_split_indices_disjoint_and_covering(n):
    parts = split_indices(n, seed=1)
    assert len(parts) == 3
    together = np.concatenate(parts)
    assert len(together) == n
    assert sorted(together.tolist()) == list(range(n))
    for p in parts:
        assert len(p) >= 1
        assert np.all(np.diff(p) > 0)          # sorted, no repeats


def test_split_indices_sizes():
    train, val, test = split_indices(100, (0.7, 0.2, 0.1), seed=0)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert [len(p) for p in split_indices(10, (0.5, 0.5))] == [5, 5]


def test_split_indices_deterministic():
    a = split_indices(50, seed=2)
    b = split_indices(50, seed=2)
    c = split_indices(50, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_split_indices_errors():
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        split_indices(10, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="need at least 3 items to split, got 2"):
        split_indices(2)


# --- grid_tiles -------------------------------------------------------------------------

def test_grid_tiles_order_and_content():
    image = np.arange(10 * 12).reshape(10, 12)
    tiles = grid_tiles(image, 2, 3)
    assert tiles.shape == (6, 5, 4)
    assert np.array_equal(tiles[0], image[:5, :4])
    assert np.array_equal(tiles[2], image[:5, 8:12])    # row-major: first row first
    assert np.array_equal(tiles[3], image[5:10, :4])
    assert np.array_equal(tiles[5], image[5:10, 8:12])


def test_grid_tiles_drops_the_remainder():
    image = np.arange(11 * 13).reshape(11, 13)
    tiles = grid_tiles(image, 2, 2)
    assert tiles.shape == (4, 5, 6)
    covered = np.zeros(image.shape, bool)
    for t in tiles:
        i, j = np.unravel_index(t[0, 0], image.shape)
        covered[i:i + 5, j:j + 6] = True
    assert covered[:10, :12].all() and not covered[10:].any() and not covered[:, 12:].any()


def test_grid_tiles_single_tile():
    image = np.random.default_rng(0).random((7, 9))
    assert np.array_equal(grid_tiles(image, 1, 1)[0], image)


# --- volumes (Z, Y, X): the caller says so with axes="ZYX" ---------------------------------

def test_a_volume_needs_axes_and_the_message_says_how():
    with pytest.raises(ValueError, match=r'axes="ZYX"'):
        check_labels(np.zeros((4, 8, 8), int))
    with pytest.raises(ValueError, match=r'axes="ZYX"'):
        check_image(np.zeros((4, 8, 8)))
    assert check_labels(np.zeros((4, 8, 8), int), axes="ZYX").shape == (4, 8, 8)
    assert check_image(np.zeros((2, 4, 8, 8)), ndim=(3,), axes="ZYX").shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match=r"a volume \(Z, Y, X\), got shape \(8, 8\)"):
        check_image(np.zeros((8, 8)), axes="ZYX")
    with pytest.raises(ValueError, match="axes must be 'YX'"):
        check_labels(np.zeros((4, 8, 8), int), axes="XYZ")


def test_network_input_of_volumes():

    assert check_network_input(np.zeros((3, 8, 8)), 1, axes="ZYX").shape == (1, 3, 8, 8)
    assert check_network_input(np.zeros((2, 3, 8, 8)), 2, axes="ZYX").shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"2 channel\(s\), but the network takes volumes of 1"):
        check_network_input(np.zeros((2, 3, 8, 8)), 1, axes="ZYX")
    with pytest.raises(ValueError, match=r"Drop the batch axis"):
        check_network_input(np.zeros((1, 1, 3, 8, 8)), 1, axes="ZYX")
    with pytest.raises(ValueError, match="NaN"):
        check_network_input(np.full((3, 8, 8), np.nan), 1, axes="ZYX")


def test_random_patches_of_volumes_keep_arrays_aligned():
    from dlbio_teach.preprocessing import random_patches
    volume = np.arange(2 * 6 * 10 * 12, dtype=np.float32).reshape(2, 6, 10, 12)
    p, q = random_patches([volume, -volume], (3, 4, 5), n_patches=6, seed=0, axes="ZYX")
    assert p.shape == (6, 3, 4, 5) and np.array_equal(q, -p)
    steps = np.diff(p, axis=1), np.diff(p, axis=2), np.diff(p, axis=3)
    assert [float(np.unique(s)[0]) for s in steps] == [120.0, 12.0, 1.0]   # real sub-volumes
    with pytest.raises(ValueError, match="larger than the images"):
        random_patches([volume], (7, 4, 4), n_patches=1, axes="ZYX")
    with pytest.raises(ValueError, match='axes="ZYX"'):
        random_patches([volume], 4, n_patches=1)
