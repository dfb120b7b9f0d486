"""Device choice, seeding and the run profile: the few settings every chapter shares.

Nothing here imports another module of the package, so any layer may read it.
"""
from __future__ import annotations

import os
import platform
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["Profile", "PROFILES", "get_profile", "pick_device", "resolve_device",
           "seed_everything", "course_seed", "setup_course", "Course", "environment_versions",
           "hardware_info"]


@dataclass(frozen=True)
class Profile:
    """Sizes for one run of the course; chapters read them instead of testing the device.

    Attributes
    ----------
    name : str
        ``"smoke"`` (seconds per training, used by the tests), ``"standard"`` (meaningful results
        on a 2-core CPU in minutes; the numbers the book quotes, and the automatic choice
        on every device) or ``"full"`` (sized for a GPU; **unverified**: it has never been
        run end to end with the chapters' check cells passing, so it is chosen only on
        request, ``DLBIO_PROFILE=full`` or ``profile="full"``).
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
        """The profile's sizes as a plain dict (for a run record)."""
        return asdict(self)


#: The run profiles by name (the table of the introduction); ``DLBIO_PROFILE`` picks one.
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
        without it, ``"standard"`` on every device, a CUDA GPU included.
    cuda_available : bool, optional
        Whether PyTorch sees a CUDA GPU. Kept for callers that pass it (such as
        :func:`setup_course`); it does not change the automatic choice.

    Notes
    -----
    ``"full"`` is **unverified**: it has never been run end to end on a GPU with the
    chapters' check cells passing. Until such a run is recorded in
    ``benchmarks/README.md``, it is never chosen automatically; ask for it with
    ``DLBIO_PROFILE=full`` or ``profile="full"``.

    Examples
    --------
    >>> get_profile("smoke").patch_size
    32
    >>> import os
    >>> "DLBIO_PROFILE" in os.environ or get_profile(cuda_available=True).name == "standard"
    True
    >>> get_profile("full").name          # only on request: unverified end to end
    'full'
    """
    name = name or os.environ.get("DLBIO_PROFILE") or None
    if name is None:
        # `full` has not yet run end to end on a GPU with its check cells passing: until it
        # has (and the run is recorded in benchmarks/README.md), the automatic profile is
        # `standard` everywhere, whatever `cuda_available` says.
        name = "standard"
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

    Notes
    -----
    Without ``prefer`` this is the course's device: the one every training and prediction
    uses when it is given no ``device=`` (:func:`resolve_device`).

    Examples
    --------
    >>> pick_device("cpu").type
    'cpu'
    """
    import torch

    if prefer:
        return _as_device(prefer, "device")
    if os.environ.get("DLBIO_DEVICE"):
        return _as_device(os.environ["DLBIO_DEVICE"], "DLBIO_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _as_device(value, given_as: str):
    """``value`` as a ``torch.device``, with an error that says what to do when it is none."""
    import torch

    fix = ("unset DLBIO_DEVICE for the best device found" if given_as == "DLBIO_DEVICE"
           else "leave device out for the course's device (DLBIO_DEVICE, else the best "
                "device found)")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{given_as}={value!r} is not a device PyTorch knows: use 'cpu', "
                         "'cuda' (or 'cuda:1' for a second GPU) or 'mps', or "
                         f"{fix}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"A CUDA device was asked for ({given_as}={value!r}), but torch "
                           f"sees none. Use 'cpu', {fix}, or install a CUDA build of "
                           "PyTorch.")
    return device


def resolve_device(device=None):
    """The device a training or a prediction runs on: ``device`` when given, else the
    course's device.

    This is the course's one rule for devices. Every function that trains, predicts or
    loads a network (``fit``, ``train_segmentation``, ``train_restoration``, ``predict``,
    ``predict_maps``, ``segment``, ``rebuild_model``, ``load_weights``,
    ``load_bioimageio``, ...) takes ``device=None`` and asks this function, so a cell
    copied without ``device=`` trains on the GPU when there is one, never silently on the
    CPU. ``None`` means the course's device, :func:`pick_device`: ``$DLBIO_DEVICE`` when
    it is set, else CUDA, then Apple MPS, then the CPU (what :func:`setup_course` prints
    and keeps in ``course.device``). Any other value names the device: ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``.

    Parameters
    ----------
    device : str or torch.device, optional
        The device asked for; ``None`` for the course's device.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        ``device`` names no device PyTorch knows (such as ``"gpu"``).
    RuntimeError
        A CUDA device is asked for, and PyTorch sees none.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device() == pick_device()     # the course's device
    True
    """
    return pick_device() if device is None else _as_device(device, "device")


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
        """One line with the package version, device, profile, seed and library versions."""
        import torch

        from . import __version__
        return (f"dlbio_teach {__version__} | device: {self.device} | profile: "
                f"{self.profile.name} | seed: {self.seed} | torch {torch.__version__}, "
                f"numpy {np.__version__}, python {platform.python_version()}")


def course_seed(seed: int | None = None) -> int:
    """The seed asked for, else ``$DLBIO_SEED``, else 0.

    The chapters call :func:`setup_course` without a seed, so that one variable repeats a
    whole chapter with other trainings (``DLBIO_SEED=3``), as ``benchmarks/lessons.py``
    does; splits of the data keep their own fixed seeds.

    Examples
    --------
    >>> course_seed(7)
    7
    >>> import os
    >>> "DLBIO_SEED" in os.environ or course_seed() == 0
    True
    """
    if seed is not None:
        return int(seed)
    value = os.environ.get("DLBIO_SEED", "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"DLBIO_SEED={value!r} is not an integer: set it to a whole number "
                         "such as 0, 1 or 2, or unset it for seed 0.") from None


def setup_course(seed: int | None = None, profile: str | None = None,
                 device: str | None = None, *, verbose: bool = True) -> Course:
    """Pick the device, seed everything and choose the run profile, in one call.

    Every chapter starts with this. It prints one line saying what was chosen, so that a
    notebook's output records the conditions of its run.

    Parameters
    ----------
    seed : int, optional
        Seed for Python, NumPy and PyTorch, and for the chapter's trainings
        (``course.seed``). When omitted, ``$DLBIO_SEED`` decides; without it, 0.
    profile : str, optional
        Run profile; see :func:`get_profile`.
    device : str, optional
        Force ``course.device``; see :func:`pick_device`. Trainings and predictions called
        without ``device=`` run on the course's device, :func:`pick_device` (see
        :func:`resolve_device`), not on this argument: to move them all, set
        ``DLBIO_DEVICE`` before the first cell instead, or pass ``device=course.device``.
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
    seed = course_seed(seed)
    seed_everything(seed)
    course = Course(device=dev, profile=prof, seed=seed)
    if verbose:
        print(course.describe())
    return course


# --- Environment capture: what a run record says about the machine ----------------------

# Distributions whose versions a run record lists (when installed).
_DISTRIBUTIONS = ("torch", "numpy", "scipy", "scikit-image", "matplotlib", "tifffile",
                  "pooch", "SimpleITK", "bioimageio.spec")

def environment_versions() -> dict:
    """Versions of Python, this package (and its commit), and the libraries it uses.

    ``torch`` is ``torch.__version__``, which names the build (``2.13.0+cu130``: the
    CUDA variant); ``torch_distribution`` is the installed distribution's version.
    ``cuda`` and ``cudnn`` are the versions PyTorch was built with (None when absent).

    Examples
    --------
    >>> import torch
    >>> environment_versions()["torch"] == torch.__version__
    True
    """
    from importlib import metadata

    import torch

    from . import __version__
    versions = {"python": platform.python_version(), "dlbio_teach": __version__}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    versions["torch_distribution"] = versions.get("torch")
    versions["torch"] = torch.__version__
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = _cudnn_version()
    commit = _git_commit()
    if commit:
        versions["dlbio_teach_git_commit"] = commit
    return versions


def _cudnn_version() -> int | None:
    import torch
    try:
        return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() \
            else None
    except (RuntimeError, AttributeError):
        return None


def _git_commit() -> str | None:
    """The clone's commit (with ``-dirty`` when tracked files changed), or None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device) -> dict:
    """Platform, CPU, its kernel family, threads and the device (its name, GPU memory, CUDA
    and cuDNN).

    ``cpu_kernels`` is the family of CPU kernels PyTorch runs (``"AVX512"``, ``"AVX2"``...):
    two families round sums in another order, so the same seed trains other weights.

    Examples
    --------
    >>> hardware_info("cpu")["device"]
    'cpu'
    """
    import torch

    device = torch.device(device)
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "cpu": _cpu_name(), "cpu_kernels": str(torch.backends.cpu.get_cpu_capability()),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "cuda": torch.version.cuda, "device_name": _cpu_name()}
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, cudnn=torch.backends.cudnn.version(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1))
    elif device.type == "mps":
        info["device_name"] = "Apple MPS"
    return info
