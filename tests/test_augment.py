"""dlbio_teach.augment: seeded intensity and geometric augmentations for segmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dlbio_teach.augment import (
    Augmentation,
    flip_rotate,
    gamma,
    gaussian_blur,
    gaussian_noise,
    scale_offset,
    zoom,
)
from dlbio_teach.segmentation import SegmentationConfig, train_segmentation
from dlbio_teach.star import star_targets
from dlbio_teach.synthetic import nuclei
from dlbio_teach.targets import distance_targets, three_class_targets
from dlbio_teach.training import _augment


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def disk(size=48, radius=9, centre=None):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = centre or (size // 2, size // 2)
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2).astype(np.int32)


def batch_of(kind, n=3, size=32):
    pairs = [nuclei((size, size), 4, radius=(4, 7), seed=s) for s in range(n)]
    x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    labels = [p[1] for p in pairs]
    if kind == "three_class":
        y = torch.from_numpy(np.stack([three_class_targets(t) for t in labels]))
    elif kind == "distance":
        y = torch.from_numpy(np.stack([distance_targets(t) for t in labels]))[:, None]
    else:
        y = torch.from_numpy(np.stack([star_targets(t, 8) for t in labels]))
    return [x, y]


INTENSITY = {
    "scale_offset": lambda x, g: scale_offset(x, g, scale=0.3, offset=0.1),
    "gamma": lambda x, g: gamma(x, g, strength=0.4),
    "noise": lambda x, g: gaussian_noise(x, g, sigma=0.1),
    "blur": lambda x, g: gaussian_blur(x, g, sigma=1.5),
}


@pytest.mark.parametrize("name", sorted(INTENSITY))
def test_intensity_augmentations_are_seeded(name):
    x = batch_of("distance")[0]
    a, b, c = (INTENSITY[name](x, gen(s)) for s in (0, 0, 1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)


@pytest.mark.parametrize("kind", ["three_class", "distance", "stardist"])
def test_geometric_augmentations_are_seeded(kind):
    batch = batch_of(kind)
    for op in (lambda b, g: zoom(b, g, strength=0.3, formulation=kind),
               lambda b, g: flip_rotate(b, g, formulation=kind)):
        a, b = op(batch, gen(3)), op(batch, gen(3))
        assert all(torch.equal(s, t) for s, t in zip(a, b))
        assert a[1].dtype == batch[1].dtype and a[1].shape == batch[1].shape


@pytest.mark.parametrize("kind", ["three_class", "distance", "stardist"])
def test_intensity_changes_leave_targets_alone(kind):
    batch = batch_of(kind)
    t = Augmentation.standard(zoom=0.0, p=1.0).transform(kind)
    out = t(batch, gen(0))
    assert out[1] is batch[1]
    assert not torch.equal(out[0], batch[0])


def test_validation_batches_pass_unchanged():
    batch = batch_of("stardist")
    t = Augmentation.standard(p=1.0).transform("stardist", flips=True)
    with torch.no_grad():
        assert t(batch, gen(0)) is batch


def test_zoom_scales_stardist_distances_with_the_object():
    labels = disk()
    target = torch.from_numpy(star_targets(labels, 16))[None]
    image = torch.from_numpy(labels.astype(np.float32))[None, None]
    factor = 1.25
    zx, zt = zoom([image, target], formulation="stardist", factors=torch.tensor([factor]))
    zoomed_labels = (zx[0, 0].numpy() > 0.5).astype(np.int32)
    # Inside the object (away from its rim), the rays are those of the zoomed object, up
    # to the rasterisation of the two disks (about half a pixel).
    want = star_targets(zoomed_labels, 16)
    inner = distance_targets(zoomed_labels) > 0.3
    error = np.abs(zt[0, 1:].numpy()[:, inner] - want[1:, inner])
    assert error.mean() < 0.6 and error.max() < 2.5
    centre = zt[0, 1:, 24, 24].numpy()
    assert np.allclose(centre, factor * target[0, 1:, 24, 24].numpy(), atol=1e-5)
    assert abs(float(zt[0, 0].max()) - 1.0) < 0.05      # the probability is not scaled


def test_zoom_keeps_classes_and_per_object_distances():
    labels = disk(radius=7)
    image = torch.from_numpy(labels.astype(np.float32))[None, None]
    classes = torch.from_numpy(three_class_targets(labels))[None]
    zx, zc = zoom([image, classes], formulation="three_class", factors=torch.tensor([0.8]))
    assert set(torch.unique(zc).tolist()) <= {0, 1, 2} and zc.dtype == torch.long
    assert int(((zc[0] > 0) != (zx[0, 0] > 0.5)).sum()) <= 4
    dist = torch.from_numpy(distance_targets(labels))[None, None]
    _, zd = zoom([image, dist], formulation="distance", factors=torch.tensor([1.3]))
    assert abs(float(zd.max()) - 1.0) < 0.05             # still 1 at the centre


def test_flip_rotate_turns_stardist_rays_with_the_image():
    _, labels = nuclei((32, 32), 4, radius=(4, 8), seed=2)
    target = torch.from_numpy(star_targets(labels, 16))[None]
    seen = set()
    for seed in range(26):
        g = gen(seed)
        k = int(torch.randint(0, 4, (1,), generator=g))
        flip = bool(torch.randint(0, 2, (1,), generator=g))
        _, out = flip_rotate([target[:, :1], target], gen(seed), formulation="stardist")
        moved = np.rot90(labels, k)
        moved = np.ascontiguousarray(moved[:, ::-1] if flip else moved)
        assert np.allclose(out[0].numpy(), star_targets(moved, 16), atol=1e-4)
        seen.add((k, flip))
    assert len(seen) == 8


def test_flip_rotate_draws_as_fit_does():
    batch = batch_of("three_class")
    ours = flip_rotate(batch, gen(5), formulation="three_class")
    fits = _augment(batch, gen(5))
    assert all(torch.equal(a, b) for a, b in zip(ours, fits))


def test_flip_rotate_needs_rays_in_fours():
    batch = [torch.zeros(1, 1, 8, 8), torch.zeros(1, 7, 8, 8)]
    with pytest.raises(ValueError, match="multiple of 4"):
        flip_rotate(batch, gen(0), formulation="stardist")


def test_augmentation_checks_its_strengths():
    with pytest.raises(ValueError, match="noise must be at least 0"):
        Augmentation(noise=-0.1)
    with pytest.raises(ValueError, match="intensity_scale < 1"):
        Augmentation(intensity_scale=1.0)
    with pytest.raises(ValueError, match="formulation must be one of"):
        Augmentation().transform("restoration")


def test_train_segmentation_takes_an_augmentation():
    pairs = [nuclei((48, 48), 5, seed=s) for s in range(3)]
    x = np.stack([p[0] for p in pairs])
    y = np.stack([p[1] for p in pairs])
    config = SegmentationConfig("distance", epochs=1, n_patches=16, patch_size=32,
                                batch_size=8, base_channels=4)
    plain = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False)[1]
    # All strengths 0: nothing drawn, nothing changed, the same training as without.
    none = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                              augmentation=Augmentation())[1]
    assert none.train_loss == plain.train_loss
    runs = [train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                               augmentation=Augmentation.standard())[1] for _ in range(2)]
    assert runs[0].train_loss == runs[1].train_loss != plain.train_loss
    # Validation batches are not augmented: the first epoch's validation loss is of the
    # network's own output on clean patches.
    assert np.isfinite(runs[0].val_loss[0])


def test_blur_keeps_the_mean():
    x = torch.rand(2, 1, 24, 24)
    y = gaussian_blur(x, gen(0), sigma=2.0)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.05)
    assert F.mse_loss(y, x) > 0


# --- batches of volumes (N, 1, Z, Y, X) ----------------------------------------------------

def ball_volume(shape=(8, 24, 24), radius=6):
    zz, yy, xx = np.indices(shape)
    centre = np.array(shape) // 2
    inside = ((zz - centre[0]) * 2) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
    return (inside <= radius ** 2).astype(np.int32)


def volume_batch(kind):
    labels = ball_volume()
    x = torch.from_numpy(np.stack([labels, labels[:, ::-1]]).astype(np.float32))[:, None]
    x = x * torch.tensor([1.0, 2.0]).view(-1, 1, 1, 1, 1)
    if kind == "three_class":
        y = torch.from_numpy(np.stack([three_class_targets(labels, axes="ZYX")] * 2))
    elif kind == "distance":
        y = torch.from_numpy(np.stack([distance_targets(labels, axes="ZYX")] * 2))[:, None]
    else:
        y = torch.from_numpy(np.stack([star_targets(labels, 16, axes="ZYX")] * 2))
    return [x, y]


@pytest.mark.parametrize("name", sorted(INTENSITY))
def test_intensity_augmentations_take_volumes(name):
    x = volume_batch("distance")[0] + 0.1 * torch.rand(2, 1, 8, 24, 24, generator=gen(1))
    a, b = INTENSITY[name](x, gen(0)), INTENSITY[name](x, gen(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_gamma_of_volumes_keeps_each_volumes_range():
    x = volume_batch("distance")[0] + 0.1 * torch.rand(2, 1, 8, 24, 24, generator=gen(1))
    y = gamma(x, gen(0), strength=0.5)
    assert torch.allclose(y.amin(dim=(1, 2, 3, 4)), x.amin(dim=(1, 2, 3, 4)), atol=1e-6)
    assert torch.allclose(y.amax(dim=(1, 2, 3, 4)), x.amax(dim=(1, 2, 3, 4)), atol=1e-5)


def test_blur_of_volumes_stays_within_planes():
    x = torch.zeros(1, 1, 5, 21, 21)
    x[0, 0, 2, 10, 10] = 1
    y = gaussian_blur(x, gen(0), sigma=2.0, p=1.0)
    assert float(y[0, 0, 2].max()) < 1 and round(float(y[0, 0, 2].sum()), 4) == 1.0
    assert float(y[0, 0, [0, 1, 3, 4]].abs().max()) == 0.0


def test_zoom_of_volumes_scales_all_three_axes():
    labels = ball_volume((8, 24, 24), radius=6)
    image = torch.from_numpy(labels.astype(np.float32))[None, None]
    classes = torch.from_numpy(three_class_targets(labels, axes="ZYX"))[None]
    zx, zc = zoom([image, classes], formulation="three_class", factors=torch.tensor([0.5]))
    assert zc.dtype == torch.long and set(torch.unique(zc).tolist()) <= {0, 1, 2}
    def extents(t):
        inside = np.nonzero(t[0].numpy() > 0)
        return [int(v.max() - v.min() + 1) for v in inside]

    assert extents(classes) == [7, 13, 13] and extents(zc) == [4, 7, 7]   # halved in 3D
    target = torch.from_numpy(star_targets(labels, 16, axes="ZYX"))[None]
    _, zt = zoom([image, target], formulation="stardist", factors=torch.tensor([1.5]))
    assert np.allclose(zt[0, 1:, 4, 12, 12].numpy(), 1.5 * target[0, 1:, 4, 12, 12].numpy(),
                       atol=1e-5)


@pytest.mark.parametrize("kind", ["three_class", "distance"])
def test_flips_of_volumes_turn_the_yx_plane_only(kind):
    batch = volume_batch(kind)
    batch[0] = batch[0] * torch.arange(1.0, 9.0).view(1, 1, 8, 1, 1)   # planes told apart
    for seed in range(6):
        ours = flip_rotate(batch, gen(seed), formulation=kind)
        fits = _augment(batch, gen(seed))
        assert all(torch.equal(a, b) for a, b in zip(ours, fits))
        assert torch.equal(ours[0].sum(dim=(-2, -1)), batch[0].sum(dim=(-2, -1)))


def test_stardist_3d_targets_are_not_flipped_but_take_the_rest():
    batch = volume_batch("stardist")
    with pytest.raises(ValueError, match="golden-spiral"):
        flip_rotate(batch, gen(0), formulation="stardist")
    out = Augmentation.standard(p=1.0).transform("stardist")(batch, gen(0))
    assert out[0].shape == batch[0].shape and out[1].shape == batch[1].shape
    assert not torch.equal(out[1], batch[1])          # zoomed with the image


def test_train_segmentation_augments_volumes():
    labels = np.stack([ball_volume((8, 32, 32), radius=8)] * 2)
    images = labels.astype(np.float32)
    config = SegmentationConfig("distance", axes="ZYX", patch_size=(8, 16, 16), epochs=1,
                                n_patches=4, batch_size=2, n_val_patches=2, base_channels=4)
    runs = [train_segmentation(config, images[:1], labels[:1], images[1:], labels[1:],
                               progress=False, augmentation=a)[1]
            for a in (None, Augmentation.standard(p=1.0))]
    assert np.isfinite(runs[1].train_loss).all() and runs[0].train_loss != runs[1].train_loss
