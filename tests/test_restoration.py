"""dlbio_teach.restoration: N2V masking and loss, training patches, and a quality check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbio_teach.metrics import psnr
from dlbio_teach.prediction import predict
from dlbio_teach.restoration import (
    METHODS,
    RestorationConfig,
    n2v_loss,
    n2v_mask,
    n2v_mask_batch,
    train_restoration,
    training_patches,
)
from dlbio_teach.runtime import get_profile
from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei


def unique_image(h, w):
    """Every value unique, and the value tells where it came from: v = y * w + x."""
    return np.arange(h * w, dtype=np.float32).reshape(h, w)


# --- n2v_mask -----------------------------------------------------------------------------

def test_n2v_mask_shapes_and_dtypes():
    patch = np.random.default_rng(0).random((32, 40))
    masked, mask = n2v_mask(patch, fraction=0.05, seed=0)
    assert masked.shape == mask.shape == (32, 40)
    assert masked.dtype == mask.dtype == np.float32
    assert set(np.unique(mask).tolist()) == {0.0, 1.0}


def test_n2v_mask_keeps_unmasked_pixels():
    patch = np.random.default_rng(1).random((48, 48)).astype(np.float32)
    masked, mask = n2v_mask(patch, fraction=0.1, seed=1)
    assert np.array_equal(masked[mask == 0], patch[mask == 0])
    assert mask.sum() > 0


def test_n2v_mask_changes_masked_pixels():
    patch = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    masked, mask = n2v_mask(patch, fraction=0.05, seed=2)
    changed = masked[mask == 1] != patch[mask == 1]
    assert changed.mean() > 0.95
    # With unique values, every hidden pixel is changed.
    image = unique_image(64, 64)
    masked, mask = n2v_mask(image, fraction=0.05, seed=2)
    assert np.all(masked[mask == 1] != image[mask == 1])


@pytest.mark.parametrize("fraction", [0.01, 0.02, 0.05, 0.1, 0.25])
def test_n2v_mask_fraction(fraction):
    _, mask = n2v_mask(np.zeros((120, 120)), fraction=fraction, seed=0)
    assert 0.7 * fraction <= mask.mean() <= 1.4 * fraction


def test_n2v_mask_is_stratified():
    """One hidden pixel per box: every 8x8 block of a 64x64 patch has one (fraction 1/64)."""
    _, mask = n2v_mask(np.zeros((64, 64)), fraction=1 / 64, seed=3)
    per_block = mask.reshape(8, 8, 8, 8).sum(axis=(1, 3))
    assert np.all(per_block == 1)


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("shape", [(20, 23), (64, 64)])
def test_n2v_replacement_comes_from_within_radius(radius, shape):
    h, w = shape
    image = unique_image(h, w)
    for seed in range(5):
        masked, mask = n2v_mask(image, fraction=0.1, radius=radius, seed=seed)
        ys, xs = np.nonzero(mask)
        source = masked[ys, xs].astype(np.int64)
        sy, sx = source // w, source % w
        assert np.all(np.abs(sy - ys) <= radius) and np.all(np.abs(sx - xs) <= radius)
        assert not np.any((sy == ys) & (sx == xs)), "a pixel replaced by itself"


def test_n2v_replacements_are_spread_over_the_neighbourhood():
    image = unique_image(200, 200)
    offsets = set()
    for seed in range(4):
        masked, mask = n2v_mask(image, fraction=0.05, radius=2, seed=seed)
        ys, xs = np.nonzero(mask)
        src = masked[ys, xs].astype(np.int64)
        inner = (ys >= 2) & (ys < 198) & (xs >= 2) & (xs < 198)
        offsets |= set(zip((src // 200 - ys)[inner].tolist(), (src % 200 - xs)[inner].tolist()))
    assert len(offsets) == 24 and (0, 0) not in offsets   # the 5x5 square but its centre


def test_n2v_mask_deterministic():
    image = np.random.default_rng(4).random((32, 32))
    a = n2v_mask(image, seed=5)
    b = n2v_mask(image, seed=5)
    c = n2v_mask(image, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_n2v_mask_does_not_modify_input():
    image = unique_image(16, 16)
    copy = image.copy()
    n2v_mask(image, fraction=0.2, seed=0)
    assert np.array_equal(image, copy)


def test_n2v_mask_checks_input():
    with pytest.raises(ValueError, match=r"must be an image \(Y, X\)"):
        n2v_mask(np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="NaN"):
        n2v_mask(np.full((16, 16), np.nan))


def test_n2v_mask_batch():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 24, 24)
    x = torch.cat([x, 10 * x], dim=1)                  # two channels, linked
    masked, mask = n2v_mask_batch(x, fraction=0.1, radius=2,
                                  generator=torch.Generator().manual_seed(0))
    assert masked.shape == x.shape and mask.shape == (3, 1, 24, 24)
    assert mask.dtype == x.dtype
    keep = mask.expand_as(x) == 0
    assert torch.equal(masked[keep], x[keep])
    # Both channels take their value from the same neighbour.
    assert torch.allclose(masked[:, 1], 10 * masked[:, 0])
    # Each patch of the batch has its own blind spots.
    assert not torch.equal(mask[0], mask[1])
    assert torch.equal(x, torch.cat([x[:, :1], 10 * x[:, :1]], dim=1))   # input untouched


def test_n2v_mask_batch_without_generator():
    masked, mask = n2v_mask_batch(torch.rand(2, 1, 16, 16), fraction=0.1, radius=1)
    assert mask.sum() > 0 and masked.shape == (2, 1, 16, 16)


# --- n2v_loss -----------------------------------------------------------------------------

def test_n2v_loss_counts_masked_pixels_only():
    target = torch.zeros(2, 1, 4, 4)
    prediction = torch.full((2, 1, 4, 4), 100.0)       # wrong everywhere outside the mask
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, 0, 1, 1] = mask[1, 0, 2, 3] = 1
    prediction[0, 0, 1, 1] = 1.0
    prediction[1, 0, 2, 3] = 3.0
    assert float(n2v_loss(prediction, target, mask)) == pytest.approx((1 + 9) / 2)


def test_n2v_loss_equals_mse_with_a_full_mask():
    p, t = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    full = torch.ones(2, 1, 8, 8)
    assert torch.allclose(n2v_loss(p, t, full), torch.nn.functional.mse_loss(p, t))


def test_n2v_loss_empty_mask_and_gradient():
    p = torch.rand(1, 1, 4, 4, requires_grad=True)
    zeros = torch.zeros(1, 1, 4, 4)
    assert float(n2v_loss(p, zeros, zeros).detach()) == 0.0
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 0, 0] = 1
    n2v_loss(p, zeros, mask).backward()
    assert p.grad[0, 0, 0, 0] != 0
    assert torch.count_nonzero(p.grad) == 1        # no gradient from unmasked pixels


# --- RestorationConfig ----------------------------------------------------------------------

def test_config_validation():
    assert METHODS == ("care", "n2n", "n2v")
    with pytest.raises(ValueError, match="method must be one of"):
        RestorationConfig("n3v")
    with pytest.raises(ValueError, match=r"patch_size 36 must be a multiple of 2\*\*depth = 8"):
        RestorationConfig("care", patch_size=36, depth=3)


def test_config_from_profile():
    smoke = get_profile("smoke")
    cfg = RestorationConfig.from_profile("care", smoke, epochs=2)
    assert (cfg.method, cfg.epochs, cfg.n_patches, cfg.patch_size, cfg.batch_size,
            cfg.base_channels) == ("care", 2, smoke.n_patches, smoke.patch_size,
                                   smoke.batch_size, smoke.base_channels)
    d = cfg.to_dict()
    assert d["method"] == "care" and d["epochs"] == 2 and RestorationConfig(**d) == cfg


# --- training_patches -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def stacks():
    clean = np.stack([nuclei((64, 64), 8, seed=s)[0] for s in range(3)])
    noisy = add_poisson_gaussian_noise(clean, photons=10, seed=0)
    noisy2 = add_poisson_gaussian_noise(clean, photons=10, seed=1)
    return clean, noisy, noisy2


def test_training_patches_care(stacks):
    clean, noisy, _ = stacks
    cfg = RestorationConfig("care", n_patches=20, patch_size=16)
    x, y = training_patches(cfg, noisy, clean, seed=0)
    assert x.shape == y.shape == (20, 16, 16) and x.dtype == np.float32
    # Aligned: the noisy patch is the clean patch plus noise, not another field.
    assert np.mean((x - y) ** 2) < 0.5 * np.mean((x - y[::-1]) ** 2)


def test_training_patches_n2n_uses_both_directions(stacks):
    _, noisy, noisy2 = stacks
    cfg = RestorationConfig("n2n", n_patches=10, patch_size=16)
    x, y = training_patches(cfg, noisy, noisy2=noisy2, seed=1)
    # Five windows, each used in both directions: as many patches as the other methods.
    assert x.shape == y.shape == (10, 16, 16)
    assert np.array_equal(x[:5], y[5:]) and np.array_equal(x[5:], y[:5])
    assert not np.array_equal(x[:5], y[:5])


def test_training_patches_n2v(stacks):
    _, noisy, _ = stacks
    cfg = RestorationConfig("n2v", n_patches=12, patch_size=32)
    out = training_patches(cfg, noisy, seed=2)
    assert len(out) == 1 and out[0].shape == (12, 32, 32)


def test_training_patches_deterministic(stacks):
    clean, noisy, _ = stacks
    cfg = RestorationConfig("care", n_patches=8, patch_size=16)
    a = training_patches(cfg, noisy, clean, seed=3)
    b = training_patches(cfg, noisy, clean, seed=3)
    c = training_patches(cfg, noisy, clean, seed=4)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


def test_training_patches_errors(stacks):
    _, noisy, _ = stacks
    with pytest.raises(ValueError, match="CARE needs clean targets"):
        training_patches(RestorationConfig("care", patch_size=16), noisy)
    with pytest.raises(ValueError, match="Noise2Noise needs a second, independent noisy"):
        training_patches(RestorationConfig("n2n", patch_size=16), noisy, clean=noisy)
    with pytest.raises(ValueError, match="larger than the images"):
        training_patches(RestorationConfig("n2v", patch_size=128), noisy)


# --- train_restoration ------------------------------------------------------------------------

def tiny_config(method, **kw):
    return RestorationConfig(method, **{**dict(epochs=1, n_patches=16, patch_size=16,
                                               batch_size=8, base_channels=4), **kw})


def test_train_restoration_input_errors(stacks):
    clean, noisy, _ = stacks
    cfg = tiny_config("care", patch_size=32)
    with pytest.raises(ValueError, match=r"train\[.noisy.\] must be a stack of images"):
        train_restoration(cfg, {"noisy": noisy[0], "clean": clean[0]}, {"noisy": noisy},
                          progress=False)
    with pytest.raises(ValueError, match=r"val\['noisy'\] is \(16, 16\) pixels, smaller "
                                         "than the 32"):
        train_restoration(cfg, {"noisy": noisy, "clean": clean},
                          {"noisy": noisy[:, :16, :16], "clean": clean[:, :16, :16]},
                          progress=False)
    bad = noisy.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"train\['noisy'\] contains NaN"):
        train_restoration(cfg, {"noisy": bad, "clean": clean}, {"noisy": noisy},
                          progress=False)
    with pytest.raises(ValueError, match="CARE needs clean targets"):
        train_restoration(cfg, {"noisy": noisy}, {"noisy": noisy}, progress=False)


@pytest.mark.parametrize("method", METHODS)
def test_train_restoration_runs(stacks, method, tmp_path):
    clean, noisy, noisy2 = stacks
    data = {"noisy": noisy, "clean": clean, "noisy2": noisy2}
    val = {"noisy": noisy} if method == "n2v" else data     # N2V validates without clean
    model, history = train_restoration(tiny_config(method, epochs=2), data, val,
                                       checkpoint_dir=tmp_path, progress=False)
    assert history.epochs_run == 2 and len(history.val_loss) == 2
    # N2V never sees a pixel's own value in training: no residual path for it.
    assert model.residual_output == (method != "n2v") and model.config["base_channels"] == 4
    assert not model.training
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()
    assert predict(model, noisy[0]).shape == (64, 64)


def test_train_restoration_seeded(stacks):
    _, noisy, _ = stacks
    runs = [train_restoration(tiny_config("n2v"), {"noisy": noisy}, {"noisy": noisy},
                              seed=s, progress=False)[0].state_dict() for s in (1, 1, 2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


@pytest.mark.parametrize("method", ["n2v", "care"])
def test_train_restoration_resumes_from_its_checkpoints(stacks, method, tmp_path,
                                                        monkeypatch):
    """Interrupted after 2 epochs and called again for 4: the same run as 4 in one go."""
    import dlbio_teach.training as training

    clean, noisy, _ = stacks
    data = {"noisy": noisy, "clean": clean}
    val = {"noisy": noisy} if method == "n2v" else data
    straight, h_straight = train_restoration(tiny_config(method, epochs=4), data, val,
                                             checkpoint_dir=tmp_path / "a", progress=False)
    train_restoration(tiny_config(method, epochs=2), data, val,
                      checkpoint_dir=tmp_path / "b", progress=False)
    trained = []
    run_epoch = training._run_epoch

    def counting(*args, optimizer, **kwargs):
        trained.append(optimizer is not None)
        return run_epoch(*args, optimizer=optimizer, **kwargs)

    monkeypatch.setattr(training, "_run_epoch", counting)
    resumed, h_resumed = train_restoration(tiny_config(method, epochs=4), data, val,
                                           checkpoint_dir=tmp_path / "b", progress=False)
    assert sum(trained) == 2                 # epochs 3 and 4 only: it continued, not restarted
    assert h_resumed.epochs_run == h_straight.epochs_run == 4
    assert np.allclose(h_resumed.train_loss, h_straight.train_loss, rtol=1e-6, atol=0)
    assert np.allclose(h_resumed.val_loss, h_straight.val_loss, rtol=1e-6, atol=0)
    assert h_resumed.best_epoch == h_straight.best_epoch
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=1e-6) for k in a)


def test_train_restoration_without_checkpoint_starts_fresh(stacks, tmp_path):
    """An empty checkpoint folder changes nothing: the same weights as no folder."""
    _, noisy, _ = stacks
    runs = [train_restoration(tiny_config("n2v", epochs=2), {"noisy": noisy},
                              {"noisy": noisy}, progress=False,
                              checkpoint_dir=folder)[0].state_dict()
            for folder in (None, tmp_path / "empty")]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.fixture(scope="module")
def photon_starved():
    """Three 96x96 synthetic training/validation fields and one held-out field, 5 photons."""
    clean = np.stack([nuclei((96, 96), 12, seed=s)[0] for s in range(3)])
    noisy = add_poisson_gaussian_noise(clean, photons=5, seed=0)
    test_clean = nuclei((96, 96), 12, seed=10)[0]
    test_noisy = add_poisson_gaussian_noise(test_clean, photons=5, seed=2)
    return clean, noisy, test_clean, test_noisy


@pytest.mark.parametrize("method", ["care", "n2v"])
def test_restoration_beats_the_noisy_input(photon_starved, method):
    clean, noisy, test_clean, test_noisy = photon_starved
    cfg = RestorationConfig(method, epochs=8, n_patches=128, patch_size=32, batch_size=8,
                            base_channels=8, lr=3e-3)
    train = {"noisy": noisy[:2], "clean": clean[:2]}
    val = {"noisy": noisy[2:], "clean": clean[2:]}
    if method == "n2v":
        train, val = {"noisy": noisy[:2]}, {"noisy": noisy[2:]}   # never sees a clean image
    model, history = train_restoration(cfg, train, val, seed=0, progress=False)
    assert history.train_loss[-1] < history.train_loss[0]
    restored = predict(model, test_noisy)
    before = psnr(test_clean, test_noisy, data_range=1.0)
    after = psnr(test_clean, restored, data_range=1.0)
    assert after > before + 1.0, (method, before, after)


def test_train_restoration_explains_rgb_stacks():
    """Channels-last colour images get the course's message, not PyTorch's."""
    from dlbio_teach.restoration import RestorationConfig, train_restoration
    rgb = np.zeros((2, 64, 64, 3), np.float32)
    config = RestorationConfig("n2v", epochs=1, n_patches=8, patch_size=32, base_channels=4)
    with pytest.raises(ValueError, match=r"stack of images \(N, Y, X\).*channels last"):
        train_restoration(config, {"noisy": rgb}, {"noisy": rgb}, progress=False)


def test_train_restoration_writes_its_run_record(tmp_path):
    from dlbio_teach.records import RunRecord
    from dlbio_teach.restoration import RestorationConfig, train_restoration
    noisy = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    config = RestorationConfig("n2v", epochs=1, n_patches=8, patch_size=32, base_channels=4)
    train_restoration(config, {"noisy": noisy}, {"noisy": noisy}, progress=False,
                      run_dir=tmp_path, record={"datasets": ["hela_cells"]})
    record = RunRecord.load(tmp_path)
    assert record.hyperparameters["method"] == "n2v" and "hela_cells" in record.datasets


def test_variance_stabilised_baselines_beat_the_noisy_input():
    from dlbio_teach.metrics import psnr
    from dlbio_teach.restoration import anscombe, gaussian_poisson, nl_means_poisson
    from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei
    clean = nuclei((96, 96), 12, seed=1)[0]
    noisy = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=2)
    base = psnr(clean, noisy, data_range=1.0)
    for out in (gaussian_poisson(noisy, sigma=1.5, photons=10, read_noise=1.0),
                nl_means_poisson(noisy, strength=1.0, photons=10, read_noise=1.0)):
        assert psnr(clean, out, data_range=1.0) > base + 3
    # The transform makes the noise variance about 1 at every brightness.
    for level in (0.1, 0.5, 1.0):
        flat = np.full((128, 128), level, np.float32)
        sample = add_poisson_gaussian_noise(flat, photons=10, read_noise=1.0, seed=3)
        assert abs(anscombe(sample, photons=10, read_noise=1.0).std() - 1) < 0.1


# --- Pins: images are masked and configured as they always were -------------------------

def _mask_of_images(x, fraction, radius, generator):
    """The blind-spot masking of images as first written, for images only: the generic
    masking of images and volumes must give the same pixels from the same generator."""
    n, c, h, w = x.shape
    box = max(1, int(round(fraction ** -0.5)))
    gy, gx = torch.meshgrid(torch.arange(0, h, box), torch.arange(0, w, box), indexing="ij")
    gy, gx = gy.reshape(-1), gx.reshape(-1)
    k = gy.numel()
    ys = (gy + torch.randint(0, box, (n, k), generator=generator)).clamp(max=h - 1)
    xs = (gx + torch.randint(0, box, (n, k), generator=generator)).clamp(max=w - 1)
    span = 2 * radius + 1
    choice = torch.randint(0, span * span - 1, (n, k), generator=generator)
    choice = choice + (choice >= (span * span) // 2).long()
    dy, dx = choice // span - radius, choice % span - radius
    sy = (ys + dy).clamp(0, h - 1)
    sx = (xs + dx).clamp(0, w - 1)
    same = (sy == ys) & (sx == xs)
    sy = torch.where(same, torch.where(ys > 0, ys - 1, ys + 1), sy)
    batch = torch.arange(n)[:, None].expand(n, k)
    masked = x.clone()
    mask = torch.zeros((n, 1, h, w), dtype=x.dtype)
    masked[batch, :, ys, xs] = x[batch, :, sy, sx]
    mask[batch, 0, ys, xs] = 1.0
    return masked, mask


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (3, 2, 20, 23), (1, 1, 64, 64), (2, 1, 5, 2)])
@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.25, 1.0])
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_images_are_masked_as_they_always_were(shape, fraction, radius):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(7))
    for seed in range(3):
        ours = n2v_mask_batch(x, fraction=fraction, radius=radius,
                              generator=torch.Generator().manual_seed(seed))
        reference = _mask_of_images(x, fraction, radius, torch.Generator().manual_seed(seed))
        assert torch.equal(ours[0], reference[0]) and torch.equal(ours[1], reference[1])
    masked, mask = n2v_mask(x[0, 0].numpy(), fraction=fraction, radius=radius, seed=4)
    reference = _mask_of_images(x[:1, :1], fraction, radius, torch.Generator().manual_seed(4))
    assert np.array_equal(masked, reference[0][0, 0].numpy())
    assert np.array_equal(mask, reference[1][0, 0].numpy())


def test_an_image_network_and_record_are_as_they_always_were(stacks, tmp_path):
    """A training on images builds the same 2D U-Net and records the same settings."""
    from dlbio_teach.records import RunRecord
    _, noisy, _ = stacks
    cfg = tiny_config("n2v")
    model, _ = train_restoration(cfg, {"noisy": noisy}, {"noisy": noisy}, progress=False,
                                 run_dir=tmp_path)
    assert model.config == dict(in_channels=1, out_channels=1, depth=2, base_channels=4,
                                residual=False, residual_output=False)
    assert sorted(RunRecord.load(tmp_path).hyperparameters) == sorted(
        ["method", "epochs", "n_patches", "patch_size", "batch_size", "depth",
         "base_channels", "lr", "patience", "n2v_fraction", "n2v_radius", "n_val_patches",
         "profile", "loss", "optimizer", "weight_decay", "augment"])
