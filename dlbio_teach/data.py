"""The dataset registry, downloads through pooch, and loaders that return arrays.

Each dataset has one entry in :data:`REGISTRY`: its files (URL, sha256, size), licence,
citation, a one-line description and the chapters whose notebooks load it.
``data/README.md`` and ``book/datasets.md`` show the same entries as cards (regenerate
them with ``python -m dlbio_teach.data cards``).

A file's sha256 is either *verified* (computed from the file itself, which the course's
tests download and check, ``tests/test_data.py``) or *as published by its source*:
copied from where the file is published, never computed here. A file that an installed
Python package ships as well (``shipped_in``, e.g. StarDist's 3D volume) has the sha256 of
the package's copy, which the tests check, and :func:`fetch` copies it from the package
instead of downloading it. The cards say which.

Environment variables
---------------------
DLBIO_DATA_DIR
    Where downloads are kept. Default: ``data/downloads`` inside a clone of the course,
    else the operating system's cache folder.
DLBIO_DATA_MIRROR
    A base URL that stands in for ``https://``: ``https://HOST/PATH`` is fetched from
    ``$DLBIO_DATA_MIRROR/HOST/PATH`` (workshop mirrors, tests).
DLBIO_OFFLINE
    ``1`` to use the cache only and never touch the network.

Run ``python -m dlbio_teach.data --help`` to list or prefetch the datasets;
``python -m dlbio_teach.data prefetch --all --to FOLDER`` builds a workshop mirror
(:func:`~dlbio_teach.mirror.build_mirror`) that any static HTTP server can serve. The
mirror and that command line are :mod:`dlbio_teach.mirror`'s: ``python -m
dlbio_teach.data`` starts ``python -m dlbio_teach.mirror`` with the same arguments, and
this module never imports the mirror (data flows one way: ``dlbio_teach/__init__.py``).
"""
from __future__ import annotations

import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DataFile", "Dataset", "REGISTRY", "DatasetUnavailableError", "ChecksumError",
           "data_dir", "source_url", "fetch", "load", "dataset_card", "file_sha256",
           "shipped_path"]

_BAI = ("https://github.com/haesleinhuepf/BioImageAnalysisNotebooks/raw/"
        "3766d2f6056aa0058241b80a66c234977e833762/data/")
_STARDIST = ("https://github.com/stardist/stardist/raw/"
             "650d3a19bf7380ec0476d672397ff0388687a9d3/stardist/data/images/")
_PORTFOLIO = "careamics-portfolio, the dataset registry of CAREamics"
_STARDIST_PACKAGE = "the stardist 0.9.2 package"


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, named by its upstream URL and pinned by its sha256.

    Attributes
    ----------
    url : str
        Where the file is published (``https://``).
    sha256 : str
        Its SHA-256 (hex); :func:`fetch` keeps a download only if it matches.
    size : int, optional
        Its size in bytes, when known.
    unzip : bool
        A zip archive: :func:`fetch` extracts it, :func:`load` reads the arrays inside.
    verified : bool
        ``True`` only when ``sha256`` was computed from the file itself (the files that
        the course's tests download and check). ``False``: the hash is the one its
        source publishes, never checked here.
    hash_from : str
        For an unverified hash: where it was published.
    shipped_in : str
        ``"package:path"`` when an installed Python package ships the same file (e.g.
        ``"stardist:data/images/img3d.tif"``, the path inside the package's folder):
        :func:`fetch` copies it from there when it has the registered sha256, and
        downloads it from ``url`` otherwise.
    """

    url: str
    sha256: str
    size: int | None = None
    unzip: bool = False
    verified: bool = False
    hash_from: str = ""
    shipped_in: str = ""

    @property
    def fname(self) -> str:
        """The file's name in the download folder (its URL's last part; ``.zip`` if unzipped)."""
        name = self.url.rstrip("/").split("/")[-1].split("?")[0]
        return name if not self.unzip or name.endswith(".zip") else name + ".zip"


@dataclass(frozen=True)
class Dataset:
    """A registry entry: what the files are, where they come from, and how to cite them."""

    name: str
    files: dict
    description: str
    licence: str
    citation: str
    source: str
    mirrored: bool = True
    chapters: tuple = field(default_factory=tuple)
    """Chapters whose notebooks load the dataset (``tests/test_data.py`` reads the
    notebooks and checks this); empty when no chapter uses it."""


#: Every dataset of the course by name, with its files, licence, citation and the
#: chapters that use it (the cards of the page *Datasets*).
REGISTRY: dict[str, Dataset] = {d.name: d for d in [
    Dataset(
        name="stardist_nuclei",
        files={
            "image": DataFile(_STARDIST + "img2d.tif",
                              "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
                              524544, verified=True),
            "labels": DataFile(_STARDIST + "mask2d.tif",
                               "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
                               524544, verified=True),
        },
        description="512x512 fluorescence nuclei (2018 Data Science Bowl) with an instance "
                    "label mask of 125 nuclei (label values run to 183, with gaps), as "
                    "shipped with StarDist.",
        licence="Image: CC0 (BBBC038); file distributed in the StarDist repository (BSD-3-Clause)",
        citation="Caicedo et al. (2019) Nucleus segmentation across imaging experiments: the "
                 "2018 Data Science Bowl. Nat Methods 16:1247. Schmidt et al. (2018) Cell "
                 "detection with star-convex polygons. MICCAI.",
        source="https://github.com/stardist/stardist",
        chapters=("basics", "segmentation", "validation", "reporting"),
    ),
    Dataset(
        name="stardist_nuclei_3d",
        files={
            "image": DataFile(_STARDIST + "img3d.tif",
                              "f5626d500c7a738cd321698f43df36e2ac149d98456579c5cbcf8af48c7253e8",
                              138925, hash_from=_STARDIST_PACKAGE,
                              shipped_in="stardist:data/images/img3d.tif"),
            "labels": DataFile(_STARDIST + "mask3d.tif",
                               "a2ff51b712941a90cf3a5628b11f04f5d7fa3f29c808c065d3be6ff938b215a1",
                               15419, hash_from=_STARDIST_PACKAGE,
                               shipped_in="stardist:data/images/mask3d.tif"),
        },
        description="A 31x61x57 (Z, Y, X) uint16 volume of nuclei with an instance label "
                    "mask of 51 nuclei (label values run to 162, with gaps), as shipped with "
                    "StarDist (`stardist.data.test_image_nuclei_3d`, whose documentation "
                    "calls them synthetic nuclei). The nuclei span half as many planes as "
                    "pixels (median 7 planes, 15 pixels): anisotropic sampling, whose voxel "
                    "size the files do not record.",
        licence="BSD-3-Clause (the StarDist repository)",
        citation="Weigert, Schmidt, Haase, Sugawara, Myers (2020) Star-convex polyhedra for "
                 "3D object detection and segmentation in microscopy. WACV. "
                 "doi:10.1109/WACV45572.2020.9093435",
        source="https://github.com/stardist/stardist",
        mirrored=False,
        chapters=("volumes",),
    ),
    Dataset(
        name="blobs",
        files={
            "image": DataFile(_BAI + "blobs.tif",
                              "71d29715e85659bf43c2c90bab59359fa2797c95a2ebeb997e15c6294e8b2a05",
                              23089, verified=True),
            "labels": DataFile(_BAI + "blobs_labeled.tif",
                               "143b7d11dc1d9f00d977e2544ae826ce19420401c27134f514f03bfc145df5e6",
                               6666, verified=True),
        },
        description="The ImageJ 'blobs' sample (254x256, uint8) with 63 labelled objects.",
        licence="CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase)",
        citation="Haase, R. et al. BioImageAnalysisNotebooks. "
                 "https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        source="https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        chapters=("segmentation", "reporting"),
    ),
    Dataset(
        name="dsb2018_extra",
        files={"image": DataFile(_BAI + "BBBC038/0bf4b1.tif",
                                 "b96d836d94059225e8e510d8ebd8a24dd6e0a5ba651447965c4769141b619173",
                                 65701, verified=True)},
        description="One more 2018 Data Science Bowl nuclei image, without a mask: "
                    "inference on unseen data and domain shift.",
        licence="CC0 (BBBC038), via BioImageAnalysisNotebooks (CC-BY-4.0)",
        citation="Caicedo et al. (2019) Nat Methods 16:1247; Ljosa et al. (2012) Annotated "
                 "high-throughput microscopy image sets for validation. Nat Methods 9:637.",
        source="https://bbbc.broadinstitute.org/BBBC038",
        chapters=("validation",),
    ),
    Dataset(
        name="bpae_nuclei",
        files={"image": DataFile(_BAI + "BPAE_nuclei.tif",
                                 "f59dce142a7ae14684992d041740e7a04d56d473a3e05b3183e6b34ebdecaa9e",
                                 2992272, verified=True)},
        description="Well-exposed fluorescence image (680x1100, float32) of bovine pulmonary "
                    "artery endothelial cell nuclei: a clean reference to which noise can "
                    "be added, for your own experiments (no chapter loads it).",
        licence="CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase)",
        citation="Haase, R. et al. BioImageAnalysisNotebooks. "
                 "https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        source="https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        chapters=(),
    ),
    Dataset(
        name="hela_cells",
        files={"image": DataFile(_BAI + "hela-cells.tif",
                                 "aaba731c1eeee48d79360c0eae6a7adad58cddf83100e782bba33258397f1a0c",
                                 2067326, verified=True)},
        description="The ImageJ HeLa sample (512x672, three channels, uint16): a clean "
                    "fluorescence reference to which noise is added at known photon counts, "
                    "with other structures than nuclei.",
        licence="CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase); ImageJ sample image",
        citation="Haase, R. et al. BioImageAnalysisNotebooks; ImageJ sample 'HeLa Cells'.",
        source="https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        chapters=("restoration",),
    ),
    # The standard sets of the literature, listed for learners who want the published
    # benchmarks. No chapter loads them, and the course's tests do not download them: their
    # sha256 is the one published in careamics-portfolio, never checked here.
    Dataset(
        name="n2v_sem",
        files={"archive": DataFile("https://download.fht.org/jug/n2v/SEM.zip",
                                   "e1999b5d10abb1714b7663463f83d0bfb73990f5e0705b6cd212c4d3e824b96c",
                                   None, unzip=True, hash_from=_PORTFOLIO)},
        description="Noise2Void's SEM training and validation images (Buchholz et al.). "
                    "Not used by any chapter.",
        licence="CC-BY-4.0",
        citation="Buchholz, Krull, Shahidi, Pigino, Jekely, Jug (2019) Content-aware image "
                 "restoration for electron microscopy. Methods Cell Biol 152:277. "
                 "Krull et al. (2019) Noise2Void. CVPR.",
        source="https://github.com/juglab/n2v", mirrored=False,
    ),
    Dataset(
        name="n2v_bsd68",
        files={"archive": DataFile(
            "https://download.fht.org/jug/n2v/BSD68_reproducibility_data.zip",
            "32c66d41196c9cafff465f3c7c42730f851c24766f70383672e18b8832ea8e55", None,
            unzip=True, hash_from=_PORTFOLIO)},
        description="BSD68 with Gaussian noise (sigma 25), the Noise2Void benchmark. Not used "
                    "by any chapter.",
        licence="Unknown (Berkeley Segmentation Dataset, research use)",
        citation="Martin et al. (2001) ICCV; Zhang et al. (2017) IEEE TIP; Krull et al. "
                 "(2019) Noise2Void. CVPR.",
        source="https://github.com/juglab/n2v", mirrored=False,
    ),
    Dataset(
        name="convallaria",
        files={"archive": DataFile(
            "https://cloud.mpi-cbg.de/index.php/s/BE8raMtHQlgLDF3/download",
            "8a2ac3e2792334c833ee8a3ca449fc14eada18145f9d56fa2cb40f462c2e8909", None,
            unzip=True, hash_from=_PORTFOLIO)},
        description="Convallaria: real noisy fluorescence frames of one field, from "
                    "Probabilistic Noise2Void. Not used by any chapter.",
        licence="CC-BY-4.0",
        citation="Krull et al. (2020) Probabilistic Noise2Void. Front Comput Sci 2:5.",
        source="https://github.com/juglab/pn2v", mirrored=False,
    ),
    Dataset(
        name="dsb2018_denoiseg",
        files={"archive": DataFile(
            "https://zenodo.org/record/5156969/files/DSB2018_n0.zip?download=1",
            "729d7683ccfa1ad437f666256b23e73b3b3b3da6a8e47bb37303f0c64376a299", None,
            unzip=True, hash_from=_PORTFOLIO)},
        description="The DSB2018 nuclei subset with instance masks, as packaged by DenoiSeg "
                    "(noise-free version). Not used by any chapter.",
        licence="CC0 (BBBC038)",
        citation="Caicedo et al. (2019) Nat Methods 16:1247; Buchholz et al. (2020) "
                 "DenoiSeg. ECCV workshops.",
        source="https://github.com/juglab/DenoiSeg", mirrored=False,
    ),
]}


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither in the cache nor reachable."""


class ChecksumError(RuntimeError):
    """A downloaded file does not have the sha256 the registry gives."""


def _course_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "_toc.yml").exists() else None


def data_dir() -> Path:
    """Return the download folder (``$DLBIO_DATA_DIR``, a clone's ``data/downloads``, or
    the OS cache).

    Examples
    --------
    >>> isinstance(data_dir(), Path)
    True
    """
    if os.environ.get("DLBIO_DATA_DIR"):
        return Path(os.environ["DLBIO_DATA_DIR"]).expanduser()
    root = _course_root()
    if root is not None:
        return root / "data" / "downloads"
    import pooch
    return Path(pooch.os_cache("dlbio_teach"))


def source_url(url: str, mirror: str | None = None) -> str:
    """Return where ``url`` is fetched from: ``https://HOST/PATH`` becomes
    ``MIRROR/HOST/PATH`` when a mirror is given (default: ``$DLBIO_DATA_MIRROR``).

    Examples
    --------
    >>> source_url("https://example.org/a/b.tif", mirror="http://127.0.0.1:8000")
    'http://127.0.0.1:8000/example.org/a/b.tif'
    """
    if mirror is None:
        mirror = os.environ.get("DLBIO_DATA_MIRROR", "")
    mirror = mirror.strip()
    if mirror and url.startswith("https://"):
        return mirror.rstrip("/") + "/" + url[len("https://"):]
    return url


def _offline() -> bool:
    return os.environ.get("DLBIO_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def file_sha256(path) -> str:
    """Return the sha256 (hex) of a file: what the registry and the run records store.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = Path(tmp) / "a.txt"; _ = p.write_bytes(b"abc")
    ...     file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    import pooch
    return pooch.file_hash(str(path), alg="sha256")


def _unavailable(dataset: Dataset, item: DataFile, reason: str) -> DatasetUnavailableError:
    package = (f"; or install the Python package {item.shipped_in.split(':')[0]!r}, which "
               "ships this file" if item.shipped_in else "")
    return DatasetUnavailableError(
        f"Dataset {dataset.name!r} is not available: {reason}\n"
        f"  file: {item.url}\n"
        f"  fetched from: {source_url(item.url)}\n"
        "What to do: connect to the internet and run again; or point DLBIO_DATA_MIRROR at a "
        "mirror that has it (a workshop server); or copy the file into DLBIO_DATA_DIR "
        f"(now {data_dir()}){package}; and unset DLBIO_OFFLINE if it is set.")


def shipped_path(item: DataFile) -> Path | None:
    """Return where an installed package keeps the file ``item.shipped_in`` names, or
    ``None`` (no ``shipped_in``, package not installed, or file not in it).

    The package is found without being imported.

    Examples
    --------
    >>> item = REGISTRY["stardist_nuclei_3d"].files["image"]
    >>> shipped_path(item).name                   # doctest: +SKIP
    'img3d.tif'
    >>> shipped_path(DataFile("https://example.org/a.tif", "0" * 64)) is None
    True
    """
    import importlib.util

    if not item.shipped_in:
        return None
    package, _, inside = item.shipped_in.partition(":")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / inside
        if path.is_file():
            return path
    return None


def _copy_shipped(dataset: Dataset, key: str, item: DataFile, target: Path) -> Path | None:
    """Copy the file that an installed package ships to ``target`` when its sha256 is the
    registered one; ``None`` when no package ships it, or (online) when its copy differs
    and the file is to be downloaded instead. The copy goes through a temporary file in the
    target's folder and is checked before it is renamed into place: ``target`` is either
    absent or complete."""
    import shutil
    import tempfile

    source = shipped_path(item)
    if source is None:
        return None
    if file_sha256(source) != item.sha256:
        if not _offline():
            return None
        raise ChecksumError(
            f"The file {key!r} of dataset {dataset.name!r} that an installed package ships "
            f"({source}) does not have the registered sha256 {item.sha256}, so it was not "
            "used: another version of the package may ship another file, or the copy is "
            f"damaged. What to do: unset DLBIO_OFFLINE to download it from {item.url}; or "
            f"reinstall the package ({item.shipped_in.split(':')[0]}).")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        if file_sha256(Path(tmp)) != item.sha256:      # changed while it was copied
            return None
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _fetch_file(dataset: Dataset, key: str, item: DataFile, folder: Path,
                progressbar: bool, fname: str | None = None, *,
                from_package: bool = False) -> Path:
    import pooch
    import requests

    target = folder / (fname or item.fname)
    if target.exists():
        if file_sha256(target) == item.sha256:
            return target
        # Never serve a corrupt cache entry: move it aside and fetch it anew.
        target.unlink()
    if from_package and item.shipped_in:
        copied = _copy_shipped(dataset, key, item, target)
        if copied is not None:
            return copied
    if _offline():
        raise _unavailable(dataset, item, "DLBIO_OFFLINE=1 and it is not in the cache.")
    try:
        # pooch downloads to a temporary file and moves it in place only after the hash
        # matched, so an interrupted or corrupt download never lands in the cache.
        path = pooch.retrieve(source_url(item.url), known_hash=f"sha256:{item.sha256}",
                              fname=target.name, path=folder, progressbar=progressbar)
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ChecksumError(
            f"The file {key!r} of dataset {dataset.name!r} was downloaded from "
            f"{source_url(item.url)} but its sha256 is not the registered "
            f"{item.sha256}. It was not kept. The server (or mirror) may hold another "
            "version of the file: check DLBIO_DATA_MIRROR, and report it if the upstream "
            f"file changed.\n  pooch said: {err}") from None
    except (requests.exceptions.RequestException, OSError) as err:
        raise _unavailable(dataset, item, f"the download failed ({type(err).__name__}: "
                                          f"{err}).") from None
    return Path(path)


def fetch(name: str, *, registry: dict | None = None, progressbar: bool = True) -> dict:
    """Download a dataset (if it is not cached yet), check its hashes and return its paths.

    A file that an installed Python package ships (``shipped_in``) is copied from the
    package instead, when the package's copy has the registered sha256.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY`.
    registry : dict, optional
        Another registry to look the name up in (tests).
    progressbar : bool
        Show a download progress bar.

    Returns
    -------
    dict
        File key -> path; a zip archive is extracted and its key maps to the folder. The
        folder holds a marker file (``EXTRACTED_MARKER``), written last, with the
        archive's sha256 and the sha256 of every file extracted; a folder is reused only
        when its marker matches the archive and its files match the marker, and is
        extracted anew otherwise.

    Raises
    ------
    DatasetUnavailableError
        Offline, blocked or failed download, with what to do.
    ChecksumError
        The file downloaded is not the registered one; it is not kept. Offline, also when
        the copy that a package ships is not the registered one.

    Examples
    --------
    >>> paths = fetch("blobs")            # doctest: +SKIP
    >>> sorted(paths)                     # doctest: +SKIP
    ['image', 'labels']
    """
    registry = REGISTRY if registry is None else registry
    if name not in registry:
        raise KeyError(f"No dataset called {name!r}. Known datasets: {sorted(registry)}.")
    dataset = registry[name]
    folder = data_dir() / dataset.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, item in dataset.files.items():
        path = _fetch_file(dataset, key, item, folder, progressbar, from_package=True)
        if item.unzip:
            path = _extract(path, folder / (Path(item.fname).stem + ".unzipped"),
                            item.sha256)
        paths[key] = path
    return paths


EXTRACTED_MARKER = ".dlbio-extracted.json"
"""Name of the marker file that :func:`fetch` writes last into an extracted archive."""


def _listing(folder: Path) -> dict:
    """Relative POSIX path -> sha256 of every file under ``folder`` but the marker."""
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() != EXTRACTED_MARKER}


def _extraction_is_intact(out: Path, archive_sha256: str) -> bool:
    import json

    marker = out / EXTRACTED_MARKER
    if not out.is_dir() or not marker.is_file():
        return False
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("archive_sha256") == archive_sha256
            and record.get("files") == _listing(out))


def _extract(archive: Path, out: Path, archive_sha256: str) -> Path:
    """Extract ``archive`` (already checked against ``archive_sha256``) into ``out``, or
    reuse ``out`` when its marker says it came from this archive and its files are
    unchanged. Extraction goes to a temporary folder, gets its marker last, and is then
    renamed into place, so ``out`` is never half-written."""
    import json
    import shutil
    import tempfile

    if _extraction_is_intact(out, archive_sha256):
        return out
    if out.exists():
        # No marker, another archive's marker, or files changed since: never reuse it.
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)     # extractall drops absolute paths and ".." parts
        record = {"archive": archive.name, "archive_sha256": archive_sha256,
                  "files": _listing(tmp)}
        (tmp / EXTRACTED_MARKER).write_text(json.dumps(record, indent=1), encoding="utf-8")
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


_ARRAY_SUFFIXES = (".tif", ".tiff", ".npy", ".npz")


def _read_arrays(folder: Path) -> dict:
    """Every TIFF, ``.npy`` and ``.npz`` file under ``folder`` as NumPy arrays, keyed by
    its path relative to ``folder`` (an ``.npz`` gives ``"path.npz/name"`` per array).
    Nothing is unpickled: ``np.load`` runs with ``allow_pickle=False``."""
    import tifffile

    arrays = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if (not p.is_file() or p.suffix.lower() not in _ARRAY_SUFFIXES
                or any(part.startswith(".") or part == "__MACOSX"
                       for part in p.relative_to(folder).parts)):
            continue
        try:
            if p.suffix.lower() in (".tif", ".tiff"):
                arrays[rel] = np.asarray(tifffile.imread(p))
            elif p.suffix.lower() == ".npy":
                arrays[rel] = np.load(p, allow_pickle=False)
            else:
                with np.load(p, allow_pickle=False) as npz:
                    for array_name in npz.files:
                        arrays[f"{rel}/{array_name}"] = npz[array_name]
        except ValueError as err:
            if "pickle" not in str(err).lower():
                raise
            raise ValueError(
                f"{p} holds Python objects (a pickled array), and load() never unpickles: "
                "unpickling runs code from the file. Its folder is "
                f"{folder} (from fetch()); if you trust the source, read it yourself with "
                "np.load(path, allow_pickle=True).") from None
    return arrays


def load(name: str, *, registry: dict | None = None) -> dict:
    """Fetch a dataset and return its files as NumPy arrays, keyed as in the registry.

    A TIFF file's key maps to its array. A zip archive's key maps to a dict of arrays: one
    per TIFF, ``.npy`` or ``.npz`` file inside, keyed by its path in the archive (an
    ``.npz`` file gives one entry per array, ``"path.npz/name"``); other files are left
    out. Nothing is unpickled: an ``.npy`` file of Python objects raises a ``ValueError``
    (use :func:`fetch` for the extracted folder).

    Examples
    --------
    >>> blobs = load("blobs")                          # doctest: +SKIP
    >>> blobs["image"].shape, blobs["labels"].max()    # doctest: +SKIP
    ((254, 256), 63)
    """
    import tifffile

    arrays = {}
    for key, path in fetch(name, registry=registry).items():
        if path.is_dir():
            arrays[key] = _read_arrays(path)
        else:
            arrays[key] = np.asarray(tifffile.imread(path))
    return arrays


def fetch_or_fallback(name: str, fallback: str) -> tuple[str, dict]:
    """Load ``name``; if it cannot be had, say so loudly and load ``fallback`` instead.

    Returns the name of the dataset actually loaded and its arrays. (No chapter uses it:
    it is here for learners who try a large standard set and want a mirrored one when
    it cannot be downloaded.)
    """
    try:
        return name, load(name)
    except DatasetUnavailableError as err:
        first = str(err).splitlines()[0]
        print(f"NOTE: {first}\nNOTE: falling back to the mirrored dataset {fallback!r}.",
              file=sys.stderr)
        return fallback, load(fallback)


# What the card says of a mirrored (small, chapter) dataset and of a standard one.
_PREFETCHED = {True: "yes, by `python -m dlbio_teach.data prefetch` (and served by a "
                     "workshop mirror)",
               False: "only by `python -m dlbio_teach.data prefetch --all` (a large "
                      "standard set)"}


def _hash_note(f: DataFile) -> str:
    if f.verified:
        return "verified: the course's tests download this file and check its checksum"
    if f.shipped_in:
        return (f"of the copy shipped in {f.hash_from or 'a Python package'}, which the "
                "course's tests check; the download from the URL is not checked by the "
                "course's tests")
    return f"as published by {f.hash_from or 'its source'}; not checked by the course's tests"


def _prefetched(d: Dataset) -> str:
    packages = {f.shipped_in.split(":")[0] for f in d.files.values()}
    if len(packages) == 1 and "" not in packages:
        return (f"comes with the Python package `{packages.pop()}` (a dependency of the "
                "course): `load` copies it from there, and downloads it from the URL below "
                "only when the package's copy differs")
    return _PREFETCHED[d.mirrored]


def dataset_card(name: str) -> str:
    """Return a dataset's registry entry as a Markdown card (as in ``data/README.md``).

    Examples
    --------
    >>> print(dataset_card("n2v_sem"))          # doctest: +ELLIPSIS
    ### `n2v_sem`
    ...
    - **Used in:** no chapter (no notebook of the course loads it)
    ...sha256 `e1999b5d...` (as published by ...; not checked by the course's tests)
    <BLANKLINE>
    """
    d = REGISTRY[name]
    used = (", ".join(d.chapters) if d.chapters
            else "no chapter (no notebook of the course loads it)")
    lines = [f"### `{d.name}`", "", d.description, "",
             f"- **Licence:** {d.licence}", f"- **Cite:** {d.citation}",
             f"- **Source:** <{d.source}>",
             f"- **Used in:** {used}",
             f"- **Prefetched:** {_prefetched(d)}",
             "- **Files:**"]
    for key, f in d.files.items():
        size = f"{f.size:,} bytes" if f.size else "size not recorded"
        lines.append(f"  - `{key}`: <{f.url}> ({size}), sha256 `{f.sha256}` "
                     f"({_hash_note(f)})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # The command line (list, cards, prefetch) is dlbio_teach.mirror's, the layer after
    # this one: it runs as a program of its own, so that this module never imports it.
    import subprocess
    sys.exit(subprocess.call([sys.executable, "-m", "dlbio_teach.mirror", *sys.argv[1:]]))
