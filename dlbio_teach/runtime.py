"""Device choice, seeding and the run profile: the few settings every chapter shares.

Nothing here imports another module of the package, so any layer may read it.
"""
from __future__ import annotations

import os
import platform
import random
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Profile", "PROFILES", "get_profile", "pick_device", "seed_everything",
           "setup_course", "Course"]


@dataclass(frozen=True)
class Profile:
    """Sizes for one run of the course; chapters read them instead of testing the device.

    Attributes
    ----------
    name : str
        ``"smoke"`` (seconds per training, used by CI), ``"standard"`` (meaningful results
        on a 2-core CPU in minutes; the numbers the book quotes) or ``"full"`` (a GPU).
    epochs : int
        Passes over the training patches for one training.
    n_patches : int
        Training patches drawn for one training.
    patch_size : int
        Side of a square training patch, in pixels.
    batch_size : int
        Patches per optimisation step.
    base_channels : int
        Feature maps in the first U-Net level.
    n_images : int
        Synthetic images per split, or a cap on real images.
    image_size : int
        Side of a synthetic image, in pixels.
    n_seeds : int
        Repeated trainings (ensembles, seed spread).
    """

    name: str
    epochs: int
    n_patches: int
    patch_size: int
    batch_size: int
    base_channels: int
    n_images: int
    image_size: int
    n_seeds: int

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": Profile("smoke", epochs=6, n_patches=256, patch_size=32, batch_size=16,
                     base_channels=8, n_images=3, image_size=128, n_seeds=2),
    "standard": Profile("standard", epochs=20, n_patches=512, patch_size=48, batch_size=16,
                        base_channels=16, n_images=8, image_size=256, n_seeds=3),
    "full": Profile("full", epochs=60, n_patches=4096, patch_size=96, batch_size=32,
                    base_channels=32, n_images=24, image_size=512, n_seeds=5),
}


def get_profile(name: str | None = None, *, cuda_available: bool | None = None) -> Profile:
    """Return the run profile named, or the one the environment asks for.

    Parameters
    ----------
    name : str, optional
        ``"smoke"``, ``"standard"`` or ``"full"``. When omitted, ``$DLBIO_PROFILE`` decides;
        without it, ``"full"`` on a CUDA GPU and ``"standard"`` elsewhere.
    cuda_available : bool, optional
        Overrides the GPU test (for tests and documentation).

    Examples
    --------
    >>> get_profile("smoke").patch_size
    32
    """
    name = name or os.environ.get("DLBIO_PROFILE") or None
    if name is None:
        if cuda_available is None:
            import torch
            cuda_available = torch.cuda.is_available()
        name = "full" if cuda_available else "standard"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}. Choose one of {sorted(PROFILES)} "
            "(argument `profile=` or environment variable DLBIO_PROFILE).")
    return PROFILES[key]


def pick_device(prefer: str | None = None):
    """Return the best available ``torch.device``: CUDA, then Apple MPS, then CPU.

    Parameters
    ----------
    prefer : str, optional
        Force a device (``"cpu"``, ``"cuda"``, ``"mps"``); ``$DLBIO_DEVICE`` does the same.

    Examples
    --------
    >>> pick_device("cpu").type
    'cpu'
    """
    import torch

    prefer = prefer or os.environ.get("DLBIO_DEVICE")
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("A CUDA device was asked for, but torch sees none. "
                               "Unset DLBIO_DEVICE or install a CUDA build of PyTorch.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch, and ask PyTorch for deterministic kernels.

    Determinism is requested with ``warn_only=True``: on a GPU some kernels have no
    deterministic version, and a course must not stop for that. On a CPU, seeded runs
    repeat exactly.

    Examples
    --------
    >>> seed_everything(0); a = np.random.rand(); seed_everything(0)
    >>> a == np.random.rand()
    True
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(int(seed))
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass(frozen=True)
class Course:
    """What :func:`setup_course` chose: pass ``course.device`` and ``course.profile`` on."""

    device: object
    profile: Profile
    seed: int

    def describe(self) -> str:
        import torch

        from . import __version__
        return (f"dlbio_teach {__version__} | device: {self.device} | profile: "
                f"{self.profile.name} | seed: {self.seed} | torch {torch.__version__}, "
                f"numpy {np.__version__}, python {platform.python_version()}")


def setup_course(seed: int = 0, profile: str | None = None, device: str | None = None,
                 *, verbose: bool = True) -> Course:
    """Pick the device, seed everything and choose the run profile, in one call.

    Every chapter starts with this. It prints one line saying what was chosen, so that a
    notebook's output records the conditions of its run.

    Parameters
    ----------
    seed : int
        Seed for Python, NumPy and PyTorch.
    profile : str, optional
        Run profile; see :func:`get_profile`.
    device : str, optional
        Force a device; see :func:`pick_device`.
    verbose : bool
        Print the one-line summary.

    Examples
    --------
    >>> course = setup_course(seed=1, profile="smoke", device="cpu", verbose=False)
    >>> course.profile.name, course.device.type
    ('smoke', 'cpu')
    """
    dev = pick_device(device)
    prof = get_profile(profile, cuda_available=dev.type == "cuda")
    seed_everything(seed)
    course = Course(device=dev, profile=prof, seed=int(seed))
    if verbose:
        print(course.describe())
    return course

