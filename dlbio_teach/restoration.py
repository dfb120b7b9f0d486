"""Image restoration: CARE, Noise2Noise and Noise2Void through one interface.

The three methods train the same U-Net and differ only in what they learn from:

* **CARE** (Weigert et al. 2018): pairs of a noisy image and a clean image of the same field.
* **Noise2Noise** (Lehtinen et al. 2018): pairs of two independent noisy images of the same
  field; the noise averages out in the loss, so no clean image is needed.
* **Noise2Void** (Krull et al. 2019): single noisy images. A few pixels of each patch are
  hidden (replaced by a neighbour) and the network must predict them from their
  surroundings; since the noise of a pixel cannot be guessed from its neighbours, only the
  signal can be learned. The masking is written out in :func:`n2v_mask`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.restoration import denoise_nl_means
from torch.nn import functional as F

from .models import UNet
from .preprocessing import check_image, random_patches
from .runtime import Profile
from .training import fit

__all__ = ["METHODS", "RestorationConfig", "anscombe", "inverse_anscombe", "gaussian_poisson",
           "nl_means_poisson", "n2v_mask", "n2v_mask_batch",
           "n2v_loss", "training_patches", "train_restoration"]

#: The restoration methods, CARE, Noise2Noise and Noise2Void.
METHODS = ("care", "n2n", "n2v")


@dataclass(frozen=True)
class RestorationConfig:
    """Everything that defines one restoration training; stored in the run record.

    ``n2v_fraction`` is the share of pixels hidden per patch (N2V's default 0.2 %, here
    larger because our patches are few), ``n2v_radius`` the neighbourhood a replacement
    value is drawn from. ``n_val_patches`` (default: a quarter of ``n_patches``) are cut
    from the validation images once and scored after every epoch.
    """

    method: str
    epochs: int = 20
    n_patches: int = 768
    patch_size: int = 64
    batch_size: int = 16
    depth: int = 2
    base_channels: int = 16
    lr: float = 1e-3
    patience: int | None = None
    n2v_fraction: float = 0.02
    n2v_radius: int = 2
    n_val_patches: int | None = None
    profile: str | None = None

    def __post_init__(self):
        """Check the method, and that the patch size is a multiple of ``2 ** depth``."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        if self.patch_size % 2 ** self.depth:
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of "
                             f"2**depth = {2 ** self.depth}.")

    @classmethod
    def from_profile(cls, method: str, profile: Profile, **changes) -> RestorationConfig:
        """The sizes of a run profile, with optional changes.

        Examples
        --------
        >>> from dlbio_teach.runtime import get_profile
        >>> RestorationConfig.from_profile("n2v", get_profile("smoke")).patch_size
        32
        """
        values = dict(method=method, epochs=profile.epochs, n_patches=profile.n_patches,
                      patch_size=profile.patch_size, batch_size=profile.batch_size,
                      base_channels=profile.base_channels, profile=profile.name)
        values.update(changes)
        return cls(**values)

    def to_dict(self) -> dict:
        """The configuration as plain data."""
        return asdict(self)


def n2v_mask_batch(x: torch.Tensor, *, fraction: float, radius: int,
                   generator: torch.Generator | None = None):
    """Blind-spot masking of a batch ``(N, C, Y, X)``: returns ``(masked, mask)``.

    The patch is divided into boxes of about ``1 / fraction`` pixels; one pixel per box is
    chosen at random (stratified sampling, so the hidden pixels cover the patch evenly) and
    replaced by the value of a random other pixel within ``radius``.
    """
    if radius < 1:
        raise ValueError(f"radius must be at least 1 (a neighbour to copy from), got {radius}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    n, c, h, w = x.shape
    box = max(1, int(round(fraction ** -0.5)))
    gy, gx = torch.meshgrid(torch.arange(0, h, box), torch.arange(0, w, box), indexing="ij")
    gy, gx = gy.reshape(-1), gx.reshape(-1)
    k = gy.numel()
    ys = (gy + torch.randint(0, box, (n, k), generator=generator)).clamp(max=h - 1)
    xs = (gx + torch.randint(0, box, (n, k), generator=generator)).clamp(max=w - 1)
    # A random offset in the (2r+1)^2 neighbourhood, never (0, 0): the pixel itself.
    span = 2 * radius + 1
    choice = torch.randint(0, span * span - 1, (n, k), generator=generator)
    choice = choice + (choice >= (span * span) // 2).long()
    dy, dx = choice // span - radius, choice % span - radius
    sy = (ys + dy).clamp(0, h - 1)
    sx = (xs + dx).clamp(0, w - 1)
    same = (sy == ys) & (sx == xs)            # clamped onto itself at the border
    sy = torch.where(same, torch.where(ys > 0, ys - 1, ys + 1), sy)
    batch = torch.arange(n)[:, None].expand(n, k)
    masked = x.clone()
    mask = torch.zeros((n, 1, h, w), dtype=x.dtype)
    masked[batch, :, ys, xs] = x[batch, :, sy, sx]
    mask[batch, 0, ys, xs] = 1.0
    return masked, mask


def n2v_mask(patch, *, fraction: float = 0.02, radius: int = 2, seed: int = 0):
    """Blind-spot masking of one image ``(Y, X)``: returns ``(masked, mask)`` as arrays.

    Examples
    --------
    >>> patch = np.arange(64.0).reshape(8, 8)
    >>> masked, mask = n2v_mask(patch, fraction=0.1, seed=0)
    >>> bool(np.all(masked[mask == 0] == patch[mask == 0])), int(mask.sum()) > 0
    (True, True)
    """
    patch = check_image(patch)
    x = torch.from_numpy(patch)[None, None]
    masked, mask = n2v_mask_batch(x, fraction=fraction, radius=radius,
                                  generator=torch.Generator().manual_seed(seed))
    return masked[0, 0].numpy(), mask[0, 0].numpy()


def n2v_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
    """Mean squared error over the masked (blind-spot) pixels only."""
    return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def training_patches(config: RestorationConfig, noisy, clean=None, noisy2=None, *,
                     seed: int = 0):
    """Cut the patches one method learns from, out of aligned image stacks ``(N, Y, X)``.

    Returns the tuple that :func:`dlbio_teach.training.fit` takes: ``(input, target)``
    for CARE and Noise2Noise, ``(noisy,)`` for Noise2Void (masked at each step).
    """
    noisy = np.asarray(noisy, np.float32)
    if config.method == "care":
        if clean is None:
            raise ValueError("CARE needs clean targets: pass clean=... (same shape as noisy).")
        return random_patches([noisy, clean], config.patch_size, config.n_patches, seed=seed)
    if config.method == "n2n":
        if noisy2 is None:
            raise ValueError("Noise2Noise needs a second, independent noisy image of each "
                             "field: pass noisy2=... (same shape as noisy).")
        # Both directions: each noisy image serves once as input and once as target; half
        # as many windows, so that every method takes the same number of steps.
        a, b = random_patches([noisy, noisy2], config.patch_size,
                              max(1, config.n_patches // 2), seed=seed)
        return np.concatenate([a, b]), np.concatenate([b, a])
    (patches,) = random_patches([noisy], config.patch_size, config.n_patches, seed=seed)
    return (patches,)


def train_restoration(config: RestorationConfig, train: dict, val: dict, *, device=None,
                      seed: int = 0, checkpoint_dir=None, progress: bool = True,
                      run_dir=None, record: dict | None = None):
    """Train a U-Net for one restoration method; return ``(model, history)``.

    Parameters
    ----------
    config : RestorationConfig
    train, val : dict
        ``{"noisy": (N, Y, X), "clean": ..., "noisy2": ...}``: the stacks the method
        needs (CARE: noisy + clean; Noise2Noise: noisy + noisy2; Noise2Void: noisy).
        Validation is scored with the method's own loss, so Noise2Void and Noise2Noise
        never see a clean image.
    device, seed, progress
        Passed to :func:`dlbio_teach.training.fit`; ``seed`` also seeds the initial
        weights and the training patches.
    checkpoint_dir : path, optional
        Checkpoints to resume an interrupted training (see :func:`~dlbio_teach.training.fit`),
        as in :func:`~dlbio_teach.segmentation.train_segmentation`: after each epoch the
        folder gets ``last.pt`` (weights, optimiser state, history) and ``best.pt``; when
        it already holds a ``last.pt``, the training continues from that epoch and takes
        the same steps as one that was never interrupted. Use one folder per training
        (per method and seed): a folder of a finished training trains no more.
    run_dir : path, optional
        Where ``fit`` writes the run record (with this configuration) and the weights.
    record : dict, optional
        More for the run record (``datasets``, ``splits``, ``synthetic_data``, ...).

    Examples
    --------
    >>> from dlbio_teach.synthetic import nuclei, add_poisson_gaussian_noise
    >>> clean = np.stack([nuclei((64, 64), 5, seed=s)[0] for s in range(2)])
    >>> noisy = add_poisson_gaussian_noise(clean, photons=20)
    >>> cfg = RestorationConfig("n2v", epochs=1, n_patches=16, patch_size=32, base_channels=4)
    >>> model, history = train_restoration(cfg, {"noisy": noisy}, {"noisy": noisy},
    ...                                    progress=False)
    >>> history.epochs_run
    1

    With ``checkpoint_dir``, a second call (after a disconnect, or with more epochs)
    continues where the first stopped:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = train_restoration(cfg, {"noisy": noisy}, {"noisy": noisy}, progress=False,
    ...                       checkpoint_dir=folder)
    >>> longer = replace(cfg, epochs=2)
    >>> model, history = train_restoration(longer, {"noisy": noisy}, {"noisy": noisy},
    ...                                    progress=False, checkpoint_dir=folder)
    >>> history.epochs_run, len(history.val_loss)
    (2, 2)
    """
    for part, stacks in (("train", train), ("val", val)):
        for key, value in stacks.items():
            check_image(value, ndim=(3,), name=f"{part}[{key!r}]",
                        min_size=config.patch_size)
    torch.manual_seed(seed)   # same initial weights for every method of one seed
    # CARE and Noise2Noise predict a correction of the input. Noise2Void must not: its
    # training never shows a pixel's own value (the blind spot), so a residual path would
    # pass that pixel's noise straight through at prediction time.
    model = UNet(1, 1, depth=config.depth, base_channels=config.base_channels,
                 residual_output=config.method != "n2v")
    train_data = training_patches(config, train["noisy"], train.get("clean"),
                                  train.get("noisy2"), seed=seed)
    n_val = config.n_val_patches or max(1, config.n_patches // 4)
    val_data = training_patches(replace(config, n_patches=n_val), val["noisy"],
                                val.get("clean"), val.get("noisy2"), seed=seed + 1)
    if config.method == "n2v":
        def transform(batch, generator):
            masked, mask = n2v_mask_batch(batch[0], fraction=config.n2v_fraction,
                                          radius=config.n2v_radius, generator=generator)
            return [masked, batch[0], mask]
        loss_fn = n2v_loss
    else:
        transform, loss_fn = None, F.mse_loss
    record = dict(record or {})
    record["hyperparameters"] = {**config.to_dict(), **record.get("hyperparameters", {})}
    record.setdefault("profile", config.profile)
    history = fit(model, train_data, val_data, loss_fn=loss_fn, epochs=config.epochs,
                  batch_size=config.batch_size, lr=config.lr, device=device,
                  patience=config.patience, augment=True, transform=transform,
                  checkpoint_dir=checkpoint_dir, resume=checkpoint_dir is not None,
                  seed=seed, progress=progress, run_dir=run_dir, record=record)
    return model, history


# --- Classical baselines, made fair for Poisson-Gaussian noise ----------------------------
#
# Shot noise grows with the signal, while a Gaussian filter and non-local means assume one
# noise level everywhere. The generalised Anscombe transform (Murtagh, Starck & Bijaoui 1995)
# makes Poisson-Gaussian noise close to Gaussian with unit variance; the filter runs there,
# and its output is mapped back with the closed-form approximation of the exact unbiased
# inverse (Makitalo & Foi 2011, 2013). Written out here because the course teaches it.


def anscombe(image, *, photons: float, read_noise: float) -> np.ndarray:
    """Generalised Anscombe transform: Poisson-Gaussian noise -> noise of unit variance.

    ``image`` is scaled so that 1 means ``photons`` photons (as
    :func:`~dlbio_teach.synthetic.add_poisson_gaussian_noise` makes it); ``read_noise`` is
    the camera's Gaussian noise in photons (standard deviation).

    Examples
    --------
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> flat = np.full((200, 200), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(flat, photons=20, read_noise=1.0, seed=0)
    >>> round(float(anscombe(noisy, photons=20, read_noise=1.0).std()), 1)
    1.0
    """
    counts = np.asarray(image, np.float64) * photons
    return 2.0 * np.sqrt(np.maximum(counts + 3.0 / 8.0 + read_noise ** 2, 0.0))


def inverse_anscombe(transformed, *, photons: float, read_noise: float) -> np.ndarray:
    """Back from :func:`anscombe`'s domain, unbiased for a denoised (smooth) image.

    Examples
    --------
    >>> x = np.linspace(0.2, 1.0, 5)
    >>> back = inverse_anscombe(anscombe(x, photons=50, read_noise=1.0), photons=50,
    ...                         read_noise=1.0)
    >>> bool(np.allclose(back, x, atol=0.01))
    True
    """
    d = np.maximum(np.asarray(transformed, np.float64), 1.0)
    r = np.sqrt(1.5)
    counts = (d ** 2 / 4 + r / (4 * d) - 11 / (8 * d ** 2) + 5 * r / (8 * d ** 3)
              - 1 / 8 - read_noise ** 2)
    return (counts / photons).astype(np.float32)


def gaussian_poisson(image, *, sigma: float, photons: float, read_noise: float) -> np.ndarray:
    """Gaussian filter of width ``sigma`` applied after :func:`anscombe`, then inverted.

    Examples
    --------
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> flat = np.full((64, 64), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(flat, photons=10, read_noise=1.0, seed=0)
    >>> out = gaussian_poisson(noisy, sigma=2.0, photons=10, read_noise=1.0)
    >>> bool(out.std() < noisy.std() / 3)
    True
    """
    image = check_image(image)
    stabilised = anscombe(image, photons=photons, read_noise=read_noise)
    return inverse_anscombe(ndi.gaussian_filter(stabilised, sigma), photons=photons,
                            read_noise=read_noise)


def nl_means_poisson(image, *, strength: float, photons: float,
                     read_noise: float) -> np.ndarray:
    """Non-local means applied after :func:`anscombe` (unit noise), then inverted.

    ``strength`` sets the filter's ``h`` in units of the (unit) noise standard deviation of
    the stabilised image; choose it on validation images.

    Examples
    --------
    >>> from dlbio_teach.synthetic import add_poisson_gaussian_noise
    >>> clean = np.full((32, 32), 0.5, np.float32)
    >>> noisy = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=0)
    >>> out = nl_means_poisson(noisy, strength=1.0, photons=10, read_noise=1.0)
    >>> bool(out.std() < noisy.std())
    True
    """
    image = check_image(image)
    stabilised = anscombe(image, photons=photons, read_noise=read_noise)
    denoised = denoise_nl_means(stabilised, h=strength, sigma=1.0, patch_size=5,
                                patch_distance=6, fast_mode=True)
    return inverse_anscombe(denoised, photons=photons, read_noise=read_noise)
