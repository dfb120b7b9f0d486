"""dlbio_teach.restoration on volumes (Z, Y, X): the 3D blind spot, the configuration, a
3D U-Net trained on stacks of volumes, and the classical baselines filtering in 3D."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from dlbio_teach.metrics import psnr, rescale_affine, restoration_scores, ssim
from dlbio_teach.prediction import predict
from dlbio_teach.restoration import (
    METHODS,
    RestorationConfig,
    gaussian_poisson,
    n2v_loss,
    n2v_mask,
    n2v_mask_batch,
    nl_means_poisson,
    train_restoration,
    training_patches,
)
from dlbio_teach.runtime import get_profile
from dlbio_teach.synthetic import add_poisson_gaussian_noise
from dlbio_teach.training import _augment


def unique_volume(d, h, w):
    """Every value unique, and it tells where it came from: v = (z * h + y) * w + x."""
    return np.arange(d * h * w, dtype=np.float32).reshape(d, h, w)


def sources(masked, mask):
    """Positions of the hidden voxels, and of the voxels their values were copied from."""
    d, h, w = mask.shape
    zs, ys, xs = np.nonzero(mask)
    v = masked[zs, ys, xs].astype(np.int64)
    return (zs, ys, xs), (v // (h * w), v // w % h, v % w)


def blob_volumes(n, shape=(16, 40, 40), *, seed=0, photons=8):
    """Smooth random blobs (a clean truth in [0.1, 1]) and their Poisson-noisy images."""
    rng = np.random.default_rng(seed)
    clean = []
    for _ in range(n):
        v = ndi.gaussian_filter((rng.random(shape) > 0.995).astype(np.float32), (1.5, 3, 3))
        clean.append(0.1 + 0.9 * v / v.max())
    clean = np.stack(clean).astype(np.float32)
    return clean, add_poisson_gaussian_noise(clean, photons=photons, seed=seed + 1)


# --- The 3D blind spot -------------------------------------------------------------------

@pytest.mark.parametrize("radius", [1, 2, (1, 2, 2), (2, 1, 3)])
@pytest.mark.parametrize("shape", [(6, 20, 23), (16, 32, 32), (3, 9, 40)])
def test_hidden_voxels_take_a_neighbour_within_the_radius(radius, shape):
    volume = unique_volume(*shape)
    rz, ry, rx = np.broadcast_to(radius, 3)
    for seed in range(4):
        masked, mask = n2v_mask(volume, fraction=0.1, radius=radius, seed=seed, axes="ZYX")
        assert masked.shape == mask.shape == shape
        assert masked.dtype == mask.dtype == np.float32
        assert set(np.unique(mask).tolist()) == {0.0, 1.0}
        # Exactly the hidden voxels change, each to another voxel's value.
        assert np.array_equal(masked[mask == 0], volume[mask == 0])
        assert np.all(masked[mask == 1] != volume[mask == 1])
        (z, y, x), (sz, sy, sx) = sources(masked, mask)
        assert np.all(np.abs(sz - z) <= rz) and np.all(np.abs(sy - y) <= ry)
        assert np.all(np.abs(sx - x) <= rx)
        assert not np.any((sz == z) & (sy == y) & (sx == x)), "a voxel replaced by itself"


def test_replacements_fill_the_box_around_the_voxel_but_its_centre():
    volume = unique_volume(24, 60, 60)
    offsets = set()
    for seed in range(6):
        masked, mask = n2v_mask(volume, fraction=0.05, radius=(1, 2, 2), seed=seed, axes="ZYX")
        (z, y, x), (sz, sy, sx) = sources(masked, mask)
        inner = (z >= 1) & (z < 23) & (y >= 2) & (y < 58) & (x >= 2) & (x < 58)
        offsets |= set(zip((sz - z)[inner].tolist(), (sy - y)[inner].tolist(),
                           (sx - x)[inner].tolist()))
    assert len(offsets) == 3 * 5 * 5 - 1 and (0, 0, 0) not in offsets


@pytest.mark.parametrize("fraction", [0.01, 0.02, 0.05, 0.1, 0.25])
def test_fraction_of_hidden_voxels_and_the_same_share_in_every_plane(fraction):
    _, mask = n2v_mask(np.zeros((10, 120, 120)), fraction=fraction, seed=0, axes="ZYX")
    assert 0.7 * fraction <= mask.mean() <= 1.4 * fraction
    per_plane = mask.sum(axis=(1, 2))
    assert np.all(per_plane == per_plane[0]) and per_plane[0] > 0


def test_hidden_voxels_are_stratified_in_each_plane():
    """Fraction 1/64: one hidden voxel in every 8x8 block of every plane."""
    _, mask = n2v_mask(np.zeros((4, 64, 64)), fraction=1 / 64, seed=3, axes="ZYX")
    per_block = mask.reshape(4, 8, 8, 8, 8).sum(axis=(2, 4))
    assert np.all(per_block == 1)


def test_mask_of_a_volume_is_seeded_and_leaves_the_input():
    volume = np.random.default_rng(0).random((6, 16, 16)).astype(np.float32)
    copy = volume.copy()
    a = n2v_mask(volume, seed=1, axes="ZYX")
    b = n2v_mask(volume, seed=1, axes="ZYX")
    c = n2v_mask(volume, seed=2, axes="ZYX")
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert np.array_equal(volume, copy)


@pytest.mark.parametrize("shape", [(1, 8, 8), (8, 1, 8), (2, 2, 2), (5, 3, 1)])
def test_thin_volumes_still_copy_from_a_neighbour(shape):
    """A side of one voxel (a single plane, row or column): the neighbour is found along
    another axis, never the voxel itself."""
    volume = unique_volume(*shape)
    for seed in range(10):
        masked, mask = n2v_mask(volume, fraction=0.5, radius=1, seed=seed, axes="ZYX")
        assert mask.sum() > 0 and np.all(masked[mask == 1] != volume[mask == 1])


def test_mask_batch_of_volumes():
    x = torch.rand(3, 1, 6, 12, 12, generator=torch.Generator().manual_seed(0))
    x = torch.cat([x, 10 * x], dim=1)                      # two channels, linked
    masked, mask = n2v_mask_batch(x, fraction=0.1, radius=(1, 2, 2),
                                  generator=torch.Generator().manual_seed(0))
    assert masked.shape == x.shape and mask.shape == (3, 1, 6, 12, 12)
    keep = mask.expand_as(x) == 0
    assert torch.equal(masked[keep], x[keep])
    assert torch.allclose(masked[:, 1], 10 * masked[:, 0])  # same neighbour for both
    assert not torch.equal(mask[0], mask[1])


def test_n2v_loss_over_hidden_voxels_only():
    target = torch.zeros(1, 1, 2, 3, 3)
    prediction = torch.full((1, 1, 2, 3, 3), 50.0)
    mask = torch.zeros(1, 1, 2, 3, 3)
    mask[0, 0, 1, 2, 0] = 1
    prediction[0, 0, 1, 2, 0] = 2.0
    assert float(n2v_loss(prediction, target, mask)) == pytest.approx(4.0)


def test_mask_errors():
    with pytest.raises(ValueError, match=r"must be an image \(Y, X\).*axes=\"ZYX\""):
        n2v_mask(np.zeros((4, 16, 16)))                       # a volume, not said so
    with pytest.raises(ValueError, match=r"radius must be at least 1.*\(0, 2, 2\)"):
        n2v_mask(np.zeros((4, 16, 16)), radius=(0, 2, 2), axes="ZYX")
    with pytest.raises(ValueError, match=r"radius must be an int or 3 ints .*Z, Y, X.*got "
                                         r"\(1, 2\)"):
        n2v_mask(np.zeros((4, 16, 16)), radius=(1, 2), axes="ZYX")
    with pytest.raises(ValueError, match=r"\(N, C, Z, Y, X\), got shape \(4, 16, 16\)"):
        n2v_mask_batch(torch.zeros(4, 16, 16), fraction=0.1, radius=1)
    with pytest.raises(ValueError, match="no neighbour"):
        n2v_mask(np.zeros((1, 1, 1)), axes="ZYX")


# --- The configuration ---------------------------------------------------------------------

def test_config_of_volumes():
    cfg = RestorationConfig("n2v", patch_size=(8, 32, 32), n2v_radius=(1, 2, 2), axes="ZYX")
    assert cfg.ndim == 3 and cfg.patch_size == (8, 32, 32) and cfg.pool_z
    assert RestorationConfig("care", patch_size=16, axes="ZYX").ndim == 3   # a cube
    assert RestorationConfig("care", patch_size=16).ndim == 2
    # Z need not be a multiple of 2**depth when the U-Net keeps it (pool_z=False).
    assert RestorationConfig("n2v", patch_size=(6, 32, 32), axes="ZYX", pool_z=False)
    with pytest.raises(ValueError, match=r"its Z side 6 must be a multiple of 2\*\*depth = 4 "
                                         r"\(or pool_z=False"):
        RestorationConfig("n2v", patch_size=(6, 32, 32), axes="ZYX")
    with pytest.raises(ValueError, match=r"its X side 30 must be a multiple of 2\*\*depth = 8"):
        RestorationConfig("n2v", patch_size=(8, 32, 30), depth=3, axes="ZYX")
    with pytest.raises(ValueError, match=r"patch_size must be an int or 3 ints .*got \(32, 32\)"):
        RestorationConfig("n2v", patch_size=(32, 32), axes="ZYX")
    with pytest.raises(ValueError, match=r"n2v_radius must be an int or 2 ints .*got \(1, 2, 2\)"):
        RestorationConfig("n2v", n2v_radius=(1, 2, 2))
    with pytest.raises(ValueError, match="pool_z=False is for volumes"):
        RestorationConfig("n2v", pool_z=False)
    with pytest.raises(ValueError, match="axes must be 'YX' .* or 'ZYX'"):
        RestorationConfig("n2v", axes="XYZ")


def test_config_of_volumes_round_trips_through_a_run_record():
    cfg = RestorationConfig("n2v", patch_size=(8, 32, 32), n2v_radius=(1, 2, 2), axes="ZYX",
                            pool_z=False)
    values = json.loads(json.dumps(cfg.to_dict()))           # tuples come back as lists
    assert values["axes"] == "ZYX" and values["pool_z"] is False
    assert RestorationConfig(**values) == cfg
    assert "axes='ZYX'" in repr(cfg) and "patch_size=(8, 32, 32)" in repr(cfg)


def test_config_of_images_keeps_its_fields():
    """The fields of volumes stay out of an image's configuration, record and repr."""
    cfg = RestorationConfig("n2v", patch_size=48)
    assert "axes" not in cfg.to_dict() and "pool_z" not in cfg.to_dict()
    assert repr(cfg) == ("RestorationConfig(method='n2v', epochs=20, n_patches=768, "
                         "patch_size=48, batch_size=16, depth=2, base_channels=16, lr=0.001, "
                         "patience=None, n2v_fraction=0.02, n2v_radius=2, n_val_patches=None, "
                         "profile=None)")
    assert RestorationConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize("name, patch, n_patches, batch, epochs", [
    ("smoke", (8, 32, 32), 64, 4, 3), ("standard", (16, 48, 48), 128, 4, 10),
    ("full", (32, 96, 96), 1024, 8, 30)])
def test_config_of_volumes_from_profile(name, patch, n_patches, batch, epochs):
    profile = get_profile(name)
    cfg = RestorationConfig.from_profile("n2v", profile, axes="ZYX")
    assert (cfg.axes, cfg.patch_size, cfg.n_patches, cfg.batch_size, cfg.epochs,
            cfg.base_channels, cfg.profile) == ("ZYX", patch, n_patches, batch, epochs,
                                                profile.base_channels, name)
    assert RestorationConfig.from_profile("n2v", profile, axes="ZYX",
                                          epochs=1).epochs == 1         # changes still win
    assert RestorationConfig.from_profile("n2v", profile, axes="ZYX",
                                          depth=3).patch_size[0] % 8 == 0
    assert RestorationConfig.from_profile("n2v", profile) == \
        RestorationConfig.from_profile("n2v", profile, axes=None)


# --- Training on volumes -------------------------------------------------------------------

def test_training_patches_of_volumes():
    clean, noisy = blob_volumes(2, (10, 24, 24))
    cfg = RestorationConfig("care", n_patches=6, patch_size=(4, 16, 8), axes="ZYX")
    x, y = training_patches(cfg, noisy, clean, seed=0)
    assert x.shape == y.shape == (6, 1, 4, 16, 8)
    assert np.mean((x - y) ** 2) < 0.5 * np.mean((x - y[::-1]) ** 2)   # aligned windows
    a, b = training_patches(RestorationConfig("n2n", n_patches=6, patch_size=(4, 8, 8),
                                              axes="ZYX"), noisy, noisy2=clean, seed=0)
    assert a.shape == (6, 1, 4, 8, 8) and np.array_equal(a[:3], b[3:])
    (p,) = training_patches(RestorationConfig("n2v", n_patches=5, patch_size=(4, 8, 8),
                                              axes="ZYX"), noisy, seed=0)
    assert p.shape == (5, 1, 4, 8, 8)


def test_augmentation_turns_volumes_in_the_yx_plane_only():
    """Flips and rotations keep every plane in its place: the values of plane z stay in
    plane z, and a volume that changes only along Z is left as it is."""
    volume = torch.arange(2 * 5 * 6 * 6, dtype=torch.float32).reshape(2, 1, 5, 6, 6)
    along_z = torch.arange(5, dtype=torch.float32)[:, None, None].expand(2, 1, 5, 6, 6)
    seen = set()
    for seed in range(12):
        generator = torch.Generator().manual_seed(seed)
        out, flat = _augment([volume, along_z.clone()], generator)
        assert torch.equal(flat, along_z)
        for z in range(5):
            assert torch.equal(out[:, :, z].flatten(1).sort().values,
                               volume[:, :, z].flatten(1).sort().values)
        seen.add(tuple(out[0, 0, 0].flatten().tolist()))
    assert len(seen) > 2, "the planes were never turned"


@pytest.fixture(scope="module")
def volumes():
    return blob_volumes(3, (16, 40, 40), seed=0)


def tiny_config(method, **kw):
    return RestorationConfig(method, **{**dict(epochs=3, n_patches=24, patch_size=(8, 24, 24),
                                               batch_size=4, base_channels=4, lr=3e-3,
                                               axes="ZYX"), **kw})


def test_noise2void_on_volumes_learns_and_restores_a_volume(volumes):
    _, noisy = volumes
    model, history = train_restoration(tiny_config("n2v", n2v_radius=(1, 2, 2)),
                                       {"noisy": noisy[:2]}, {"noisy": noisy[2:]},
                                       seed=0, progress=False)
    assert model.ndim == 3 and model.config["ndim"] == 3 and not model.residual_output
    assert history.epochs_run == 3 and history.train_loss[-1] < history.train_loss[0]
    assert predict(model, noisy[2]).shape == (16, 40, 40)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_volumes(volumes, method, tmp_path):
    clean, noisy = volumes
    noisy2 = add_poisson_gaussian_noise(clean, photons=8, seed=9)
    data = {"noisy": noisy[:2], "clean": clean[:2], "noisy2": noisy2[:2]}
    val = {"noisy": noisy[2:], "clean": clean[2:], "noisy2": noisy2[2:]}
    model, history = train_restoration(tiny_config(method, epochs=1, n_patches=8), data, val,
                                       checkpoint_dir=tmp_path, progress=False)
    assert model.residual_output == (method != "n2v") and model.config["ndim"] == 3
    assert history.epochs_run == 1 and (tmp_path / "last.pt").exists()
    assert predict(model, noisy[2]).shape == (16, 40, 40)


def test_training_on_volumes_is_seeded(volumes):
    _, noisy = volumes
    cfg = tiny_config("n2v", epochs=1, n_patches=8)
    runs = [train_restoration(cfg, {"noisy": noisy[:2]}, {"noisy": noisy[2:]}, seed=s,
                              progress=False)[0].state_dict() for s in (1, 1, 2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_a_u_net_that_keeps_z(volumes):
    _, noisy = volumes
    cfg = tiny_config("n2v", epochs=1, n_patches=8, patch_size=(6, 24, 24), pool_z=False)
    model, _ = train_restoration(cfg, {"noisy": noisy[:2, :12]}, {"noisy": noisy[2:, :12]},
                                 progress=False)
    assert model.config["pool_z"] is False and model.multiples == (1, 4, 4)
    assert predict(model, noisy[2, :7]).shape == (7, 40, 40)


def test_training_on_volumes_explains_wrong_layouts(volumes):
    _, noisy = volumes
    with pytest.raises(ValueError, match=r"stack of images \(N, Y, X\), got shape "
                                         r"\(2, 16, 40, 40\).*axes='ZYX'"):
        train_restoration(RestorationConfig("n2v", patch_size=16), {"noisy": noisy[:2]},
                          {"noisy": noisy[2:]}, progress=False)
    with pytest.raises(ValueError, match=r"train\['noisy'\] must be a stack of volumes "
                                         r"\(N, Z, Y, X\), got shape \(2, 40, 40\)"):
        train_restoration(tiny_config("n2v"), {"noisy": noisy[:2, 0]}, {"noisy": noisy[2:]},
                          progress=False)
    with pytest.raises(ValueError, match=r"val\['noisy'\] has 4 planes, fewer than the 8 of "
                                         r"a patch \(8, 24, 24\)"):
        train_restoration(tiny_config("n2v"), {"noisy": noisy[:2]}, {"noisy": noisy[2:, :4]},
                          progress=False)
    with pytest.raises(ValueError, match=r"val\['noisy'\] is \(16, 16\) pixels, smaller than "
                                         r"the 24"):
        train_restoration(tiny_config("n2v"), {"noisy": noisy[:2]},
                          {"noisy": noisy[2:, :, :16, :16]}, progress=False)


# --- Classical baselines in 3D, and scores of volumes --------------------------------------

@pytest.fixture(scope="module")
def photon_starved_volume():
    clean, noisy = blob_volumes(1, (16, 48, 48), seed=4, photons=5)
    return clean[0], noisy[0]


def test_filters_in_3d_beat_the_noisy_volume(photon_starved_volume):
    clean, noisy = photon_starved_volume
    base = psnr(clean, noisy, data_range=1.0, axes="ZYX")
    gauss = gaussian_poisson(noisy, sigma=(1.0, 1.5, 1.5), photons=5, read_noise=0.0,
                             axes="ZYX")
    nlm = nl_means_poisson(noisy, strength=0.8, photons=5, read_noise=0.0, axes="ZYX")
    assert gauss.shape == nlm.shape == clean.shape
    for out in (gauss, nlm):
        assert psnr(clean, out, data_range=1.0, axes="ZYX") > base + 5
    # Smoothing along Z too does better than plane by plane (no blur along Z).
    planes = gaussian_poisson(noisy, sigma=(0.0, 1.5, 1.5), photons=5, read_noise=0.0,
                              axes="ZYX")
    assert psnr(clean, gauss, data_range=1.0, axes="ZYX") > \
        psnr(clean, planes, data_range=1.0, axes="ZYX") + 1


def test_nl_means_searches_a_smaller_window_in_volumes(photon_starved_volume, monkeypatch):
    import dlbio_teach.restoration as restoration

    calls = []
    real = restoration.denoise_nl_means

    def spy(image, **kwargs):
        calls.append((image.ndim, kwargs["patch_distance"]))
        return real(image, **kwargs)

    monkeypatch.setattr(restoration, "denoise_nl_means", spy)
    _, noisy = photon_starved_volume
    nl_means_poisson(noisy[:8, :16, :16], strength=1.0, photons=5, read_noise=0.0, axes="ZYX")
    nl_means_poisson(noisy[0], strength=1.0, photons=5, read_noise=0.0)
    nl_means_poisson(noisy[:8, :16, :16], strength=1.0, photons=5, read_noise=0.0, axes="ZYX",
                     patch_distance=2)
    assert calls == [(3, 3), (2, 6), (3, 2)]


def test_filters_explain_volumes_given_as_images():
    volume = np.full((4, 16, 16), 0.5, np.float32)
    for filt in (lambda v, **kw: gaussian_poisson(v, sigma=1.0, **kw),
                 lambda v, **kw: nl_means_poisson(v, strength=1.0, **kw)):
        with pytest.raises(ValueError, match=r"must be an image \(Y, X\).*axes=\"ZYX\""):
            filt(volume, photons=5, read_noise=1.0)
    with pytest.raises(ValueError, match=r"sigma must be one width or 3 .*got \(1.0, 2.0\)"):
        gaussian_poisson(volume, sigma=(1.0, 2.0), photons=5, read_noise=1.0, axes="ZYX")


def test_scores_of_volumes():
    rng = np.random.default_rng(0)
    target = rng.random((8, 16, 16)).astype(np.float32)
    noisy = target + 0.1 * rng.standard_normal(target.shape).astype(np.float32)
    mse = np.mean((noisy.astype(np.float64) - target) ** 2)
    assert psnr(target, noisy, data_range=1.0, axes="ZYX") == pytest.approx(
        10 * np.log10(1 / mse), rel=1e-5)
    assert np.allclose(rescale_affine(2 * target + 1, target, axes="ZYX"), target, atol=1e-5)
    assert psnr(target, 3 * noisy, data_range=1.0, rescale=True, axes="ZYX") > 15
    assert ssim(target, target, data_range=1.0, axes="ZYX") == pytest.approx(1.0)
    scores = restoration_scores(target, noisy, axes="ZYX")
    assert scores["psnr"] > 15 and 0 < scores["ssim"] < 1
    with pytest.raises(ValueError, match=r"target must be an image \(Y, X\).*axes=\"ZYX\""):
        psnr(target, noisy, data_range=1.0)


def test_noise2void_on_volumes_beats_the_noisy_input():
    """Never shown a clean voxel, a small 3D U-Net learns to restore a held-out volume."""
    clean, noisy = blob_volumes(4, (16, 48, 48), seed=4, photons=5)
    cfg = RestorationConfig("n2v", epochs=6, n_patches=64, patch_size=(8, 32, 32),
                            batch_size=4, base_channels=8, lr=3e-3, axes="ZYX")
    model, _ = train_restoration(cfg, {"noisy": noisy[:2]}, {"noisy": noisy[2:3]}, seed=0,
                                 progress=False)
    before = psnr(clean[3], noisy[3], data_range=1.0, axes="ZYX")
    after = psnr(clean[3], predict(model, noisy[3]), data_range=1.0, axes="ZYX")
    assert after > before + 5, (before, after)
