"""The dataset registry, downloads through pooch, and loaders that return arrays.

Each dataset has one entry in :data:`REGISTRY`: its files (URL, sha256, size), licence,
citation and a one-line description. ``data/README.md`` shows the same entries as cards.

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
(:func:`build_mirror`) that any static HTTP server can serve.
"""
from __future__ import annotations

import argparse
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DataFile", "Dataset", "REGISTRY", "DatasetUnavailableError", "ChecksumError",
           "data_dir", "source_url", "mirror_path", "fetch", "load", "dataset_card",
           "build_mirror", "serve_mirror", "file_sha256"]

_BAI = ("https://github.com/haesleinhuepf/BioImageAnalysisNotebooks/raw/"
        "3766d2f6056aa0058241b80a66c234977e833762/data/")
_STARDIST = ("https://github.com/stardist/stardist/raw/"
             "650d3a19bf7380ec0476d672397ff0388687a9d3/stardist/data/images/")


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, named by its upstream URL and pinned by its sha256."""

    url: str
    sha256: str
    size: int | None = None
    unzip: bool = False

    @property
    def fname(self) -> str:
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


REGISTRY: dict[str, Dataset] = {d.name: d for d in [
    Dataset(
        name="stardist_nuclei",
        files={
            "image": DataFile(_STARDIST + "img2d.tif",
                              "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
                              524544),
            "labels": DataFile(_STARDIST + "mask2d.tif",
                               "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
                               524544),
        },
        description="512x512 fluorescence nuclei (2018 Data Science Bowl) with an instance "
                    "label mask of about 180 nuclei, as shipped with StarDist.",
        licence="Image: CC0 (BBBC038); file distributed in the StarDist repository (BSD-3-Clause)",
        citation="Caicedo et al. (2019) Nucleus segmentation across imaging experiments: the "
                 "2018 Data Science Bowl. Nat Methods 16:1247. Schmidt et al. (2018) Cell "
                 "detection with star-convex polygons. MICCAI.",
        source="https://github.com/stardist/stardist",
        chapters=("basics", "segmentation", "validation", "reporting"),
    ),
    Dataset(
        name="blobs",
        files={
            "image": DataFile(_BAI + "blobs.tif",
                              "71d29715e85659bf43c2c90bab59359fa2797c95a2ebeb997e15c6294e8b2a05",
                              23089),
            "labels": DataFile(_BAI + "blobs_labeled.tif",
                               "143b7d11dc1d9f00d977e2544ae826ce19420401c27134f514f03bfc145df5e6",
                               6666),
        },
        description="The ImageJ 'blobs' sample (254x256, uint8) with 63 labelled objects.",
        licence="CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase)",
        citation="Haase, R. et al. BioImageAnalysisNotebooks. "
                 "https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        source="https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        chapters=("segmentation", "validation"),
    ),
    Dataset(
        name="dsb2018_extra",
        files={"image": DataFile(_BAI + "BBBC038/0bf4b1.tif",
                                 "b96d836d94059225e8e510d8ebd8a24dd6e0a5ba651447965c4769141b619173",
                                 65701)},
        description="One more 2018 Data Science Bowl nuclei image, without a mask: "
                    "inference on unseen data and domain shift.",
        licence="CC0 (BBBC038), via BioImageAnalysisNotebooks (CC-BY-4.0)",
        citation="Caicedo et al. (2019) Nat Methods 16:1247; Ljosa et al. (2012) Annotated "
                 "high-throughput microscopy image sets for validation. Nat Methods 9:637.",
        source="https://bbbc.broadinstitute.org/BBBC038",
        chapters=("segmentation", "validation"),
    ),
    Dataset(
        name="bpae_nuclei",
        files={"image": DataFile(_BAI + "BPAE_nuclei.tif",
                                 "f59dce142a7ae14684992d041740e7a04d56d473a3e05b3183e6b34ebdecaa9e",
                                 2992272)},
        description="Well-exposed fluorescence image (680x1100, float32) of bovine pulmonary "
                    "artery endothelial cell nuclei: clean reference for simulated noise.",
        licence="CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase)",
        citation="Haase, R. et al. BioImageAnalysisNotebooks. "
                 "https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        source="https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        chapters=("restoration",),
    ),
    Dataset(
        name="hela_cells",
        files={"image": DataFile(_BAI + "hela-cells.tif",
                                 "aaba731c1eeee48d79360c0eae6a7adad58cddf83100e782bba33258397f1a0c",
                                 2067326)},
        description="The ImageJ HeLa sample (512x672, three channels, uint16): a second clean "
                    "fluorescence reference, with other structures than nuclei.",
        licence="CC-BY-4.0 (BioImageAnalysisNotebooks, R. Haase); ImageJ sample image",
        citation="Haase, R. et al. BioImageAnalysisNotebooks; ImageJ sample 'HeLa Cells'.",
        source="https://github.com/haesleinhuepf/BioImageAnalysisNotebooks",
        chapters=("restoration",),
    ),
    # The standard sets of the literature. No machine of the project reaches them; the
    # `full` profile uses them where the network allows (see `fetch_or_fallback`).
    Dataset(
        name="n2v_sem",
        files={"archive": DataFile("https://download.fht.org/jug/n2v/SEM.zip",
                                   "e1999b5d10abb1714b7663463f83d0bfb73990f5e0705b6cd212c4d3e824b96c",
                                   None, unzip=True)},
        description="Noise2Void's SEM training and validation images (Buchholz et al.).",
        licence="CC-BY-4.0",
        citation="Buchholz, Krull, Shahidi, Pigino, Jekely, Jug (2019) Content-aware image "
                 "restoration for electron microscopy. Methods Cell Biol 152:277. "
                 "Krull et al. (2019) Noise2Void. CVPR.",
        source="https://github.com/juglab/n2v", mirrored=False, chapters=("restoration",),
    ),
    Dataset(
        name="n2v_bsd68",
        files={"archive": DataFile(
            "https://download.fht.org/jug/n2v/BSD68_reproducibility_data.zip",
            "32c66d41196c9cafff465f3c7c42730f851c24766f70383672e18b8832ea8e55", None,
            unzip=True)},
        description="BSD68 with Gaussian noise (sigma 25), the Noise2Void benchmark.",
        licence="Unknown (Berkeley Segmentation Dataset, research use)",
        citation="Martin et al. (2001) ICCV; Zhang et al. (2017) IEEE TIP; Krull et al. "
                 "(2019) Noise2Void. CVPR.",
        source="https://github.com/juglab/n2v", mirrored=False, chapters=("restoration",),
    ),
    Dataset(
        name="convallaria",
        files={"archive": DataFile(
            "https://cloud.mpi-cbg.de/index.php/s/BE8raMtHQlgLDF3/download",
            "8a2ac3e2792334c833ee8a3ca449fc14eada18145f9d56fa2cb40f462c2e8909", None,
            unzip=True)},
        description="Convallaria, 100 noisy frames (35x692x520 shown here): real noisy data "
                    "whose average is a ground truth.",
        licence="CC-BY-4.0",
        citation="Krull et al. (2020) Probabilistic Noise2Void. Front Comput Sci 2:5.",
        source="https://github.com/juglab/pn2v", mirrored=False, chapters=("restoration",),
    ),
    Dataset(
        name="dsb2018_denoiseg",
        files={"archive": DataFile(
            "https://zenodo.org/record/5156969/files/DSB2018_n0.zip?download=1",
            "729d7683ccfa1ad437f666256b23e73b3b3b3da6a8e47bb37303f0c64376a299", None,
            unzip=True)},
        description="The DSB2018 nuclei subset with instance masks, as packaged by DenoiSeg "
                    "(noise-free version).",
        licence="CC0 (BBBC038)",
        citation="Caicedo et al. (2019) Nat Methods 16:1247; Buchholz et al. (2020) "
                 "DenoiSeg. ECCV workshops.",
        source="https://github.com/juglab/DenoiSeg", mirrored=False,
        chapters=("segmentation",),
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


def mirror_path(url: str) -> str:
    """Return where the file of an ``https://`` URL lies in a mirror folder: ``HOST/PATH``.

    The query string is dropped, since a static server ignores it: a mirror serving
    ``FOLDER`` answers ``$DLBIO_DATA_MIRROR/HOST/PATH?query`` with ``FOLDER/HOST/PATH``.

    Examples
    --------
    >>> mirror_path("https://zenodo.org/record/1/files/a.zip?download=1")
    'zenodo.org/record/1/files/a.zip'
    """
    if not url.startswith("https://"):
        raise ValueError(f"only https:// URLs have a place in a mirror, got {url!r}.")
    return url[len("https://"):].split("#")[0].split("?")[0]


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
    return DatasetUnavailableError(
        f"Dataset {dataset.name!r} is not available: {reason}\n"
        f"  file: {item.url}\n"
        f"  fetched from: {source_url(item.url)}\n"
        "What to do: connect to the internet and run again; or point DLBIO_DATA_MIRROR at a "
        "mirror that has it (a workshop server); or copy the file into DLBIO_DATA_DIR "
        f"(now {data_dir()}); and unset DLBIO_OFFLINE if it is set.")


def _fetch_file(dataset: Dataset, key: str, item: DataFile, folder: Path,
                progressbar: bool, fname: str | None = None) -> Path:
    import pooch
    import requests

    target = folder / (fname or item.fname)
    if target.exists():
        if file_sha256(target) == item.sha256:
            return target
        # Never serve a corrupt cache entry: move it aside and fetch it anew.
        target.unlink()
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
        File key -> path; a zip archive is unpacked and its key maps to the folder.

    Raises
    ------
    DatasetUnavailableError
        Offline, blocked or failed download, with what to do.
    ChecksumError
        The file downloaded is not the registered one; it is not kept.

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
        path = _fetch_file(dataset, key, item, folder, progressbar)
        if item.unzip:
            out = folder / (Path(item.fname).stem + ".unzipped")
            if not out.exists():
                tmp = out.with_suffix(".partial")
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(tmp)
                tmp.rename(out)
            path = out
        paths[key] = path
    return paths


def load(name: str, *, registry: dict | None = None) -> dict:
    """Fetch a dataset and return its TIFF files as NumPy arrays, keyed as in the registry.

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
            arrays[key] = path
        else:
            arrays[key] = np.asarray(tifffile.imread(path))
    return arrays


def fetch_or_fallback(name: str, fallback: str) -> tuple[str, dict]:
    """Load ``name``; if it cannot be had, say so loudly and load ``fallback`` instead.

    Returns the name of the dataset actually loaded and its arrays.
    """
    try:
        return name, load(name)
    except DatasetUnavailableError as err:
        first = str(err).splitlines()[0]
        print(f"NOTE: {first}\nNOTE: falling back to the mirrored dataset {fallback!r}.",
              file=sys.stderr)
        return fallback, load(fallback)


def _copy_verified(source: Path, target: Path, sha256: str) -> None:
    """Copy ``source`` to ``target`` through a temporary file in the target's folder, so
    that ``target`` is either absent or complete, and check the copy's sha256."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                               dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        if file_sha256(Path(tmp)) != sha256:
            raise ChecksumError(f"The copy of {source} does not have the sha256 {sha256}.")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_mirror(folder, names=None, *, registry: dict | None = None,
                 progressbar: bool = False) -> dict:
    """Put the files of datasets into ``folder`` laid out as a mirror: ``folder/HOST/PATH``.

    Served by any static HTTP server (``python -m http.server 8000 --directory FOLDER``),
    the folder answers for ``https://`` once learners set
    ``DLBIO_DATA_MIRROR=http://SERVER:8000`` (see :func:`source_url`). Each file is
    checked against its sha256: a file already in ``folder`` with the right hash is kept,
    one in the download folder (:func:`data_dir`) is copied, any other is downloaded
    (through ``$DLBIO_DATA_MIRROR`` when set). Files are written through a temporary file
    and renamed only once verified, so an interrupted or failed run leaves no half-written
    file behind.

    Parameters
    ----------
    folder : path
        The mirror folder (created if needed).
    names : list of str, optional
        Datasets to put in; default: every dataset of the registry.
    registry : dict, optional
        Another registry to take the datasets from (tests).
    progressbar : bool
        Show download progress bars.

    Returns
    -------
    dict
        Dataset name -> ``None`` when all its files are in the mirror, else the
        :class:`DatasetUnavailableError` or :class:`ChecksumError` that stopped it.

    Examples
    --------
    >>> status = build_mirror("workshop-mirror", ["blobs"])     # doctest: +SKIP
    >>> status                                                  # doctest: +SKIP
    {'blobs': None}
    """
    registry = REGISTRY if registry is None else registry
    folder = Path(folder)
    names = list(registry) if names is None else list(names)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise KeyError(f"No dataset called {unknown[0]!r}. Known datasets: {sorted(registry)}.")
    status = {}
    for name in names:
        dataset = registry[name]
        status[name] = None
        for key, item in dataset.files.items():
            target = folder / mirror_path(item.url)
            cached = data_dir() / dataset.name / item.fname
            try:
                if target.is_file() and file_sha256(target) == item.sha256:
                    continue
                if cached.is_file() and file_sha256(cached) == item.sha256:
                    _copy_verified(cached, target, item.sha256)
                    continue
                if target.exists():
                    target.unlink()    # a stale or damaged copy: never serve it
                _fetch_file(dataset, key, item, target.parent, progressbar,
                            fname=target.name)
            except (DatasetUnavailableError, ChecksumError) as err:
                status[name] = err
                break
    return status


def dataset_card(name: str) -> str:
    """Return a dataset's registry entry as a Markdown card (as in ``data/README.md``)."""
    d = REGISTRY[name]
    lines = [f"### `{d.name}`", "", d.description, "",
             f"- **Licence:** {d.licence}", f"- **Cite:** {d.citation}",
             f"- **Source:** <{d.source}>",
             f"- **Used in:** {', '.join(d.chapters) or '-'}",
             f"- **Reachable from the project's CI mirror:** {'yes' if d.mirrored else 'no'}",
             "- **Files:**"]
    for key, f in d.files.items():
        size = f"{f.size:,} bytes" if f.size else "size not recorded"
        lines.append(f"  - `{key}`: <{f.url}> ({size}), sha256 `{f.sha256}`")
    return "\n".join(lines) + "\n"


def serve_mirror(folder, *, host: str = "127.0.0.1", port: int = 0):
    """Serve ``folder`` over HTTP from a background thread; return ``(base_url, server)``.

    The folder must hold each file at ``HOST/PATH`` of its upstream URL; then setting
    ``DLBIO_DATA_MIRROR`` to ``base_url`` makes :func:`fetch` download from it. The tests
    use this on a free loopback port (``port=0``). Stop it with ``server.shutdown()``.

    Examples
    --------
    >>> import tempfile
    >>> url, server = serve_mirror(tempfile.mkdtemp())
    >>> url.startswith("http://127.0.0.1:")
    True
    >>> server.shutdown(); server.server_close()
    """
    import functools
    import http.server
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
            pass

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="dlbio-data-mirror",
                     daemon=True).start()
    return f"http://{host}:{server.server_address[1]}", server


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlbio_teach.data",
        description="List or download the course's datasets (for offline use or a "
                    "workshop mirror).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the registry")
    pre = sub.add_parser(
        "prefetch", help="download datasets into DLBIO_DATA_DIR, or into a workshop mirror",
        description="Download datasets into DLBIO_DATA_DIR (for offline work), or with "
                    "--to into a workshop mirror folder. Every file is checked against "
                    "its sha256. The large standard sets (--all) are skipped, with a note, "
                    "when they cannot be reached; the full profile then falls back to the "
                    "mirrored data.")
    pre.add_argument("names", nargs="*", help="datasets (default: every mirrored one)")
    pre.add_argument("--all", action="store_true",
                     help="also try the large standard sets (needs the internet)")
    pre.add_argument("--to", metavar="FOLDER", type=Path,
                     help="build a workshop mirror: put each file at FOLDER/HOST/PATH of its "
                          "URL; serve FOLDER with any static HTTP server and let learners "
                          "set DLBIO_DATA_MIRROR=http://SERVER:PORT")
    sub.add_parser("cards", help="print the dataset cards as Markdown")
    args = parser.parse_args(argv)
    if args.command == "list":
        for d in REGISTRY.values():
            print(f"{d.name:20s} {'mirrored' if d.mirrored else 'standard':9s} {d.description}")
    elif args.command == "cards":
        print("\n".join(dataset_card(n) for n in REGISTRY))
    else:
        return _prefetch(args.names, include_standard=args.all, to=args.to)
    return 0


def _prefetch(names, *, include_standard: bool, to: Path | None) -> int:
    """The ``prefetch`` command: one line per dataset; exit status 1 if a dataset that the
    smoke and standard profiles use, or one named explicitly, could not be had."""
    requested = set(names)
    names = names or [n for n, d in REGISTRY.items() if d.mirrored or include_standard]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        print(f"Unknown dataset(s) {unknown}. Known datasets: {sorted(REGISTRY)}.")
        return 2
    if to is not None:
        status = build_mirror(to, names, progressbar=True)
    else:
        status = {}
        for n in names:
            try:
                fetch(n)
                status[n] = None
            except (DatasetUnavailableError, ChecksumError) as err:
                status[n] = err
    failed = 0
    for n, err in status.items():
        if err is None:
            print(f"ok      {n}")
        elif (isinstance(err, DatasetUnavailableError) and not REGISTRY[n].mirrored
              and n not in requested):
            print(f"SKIPPED {n}: cannot be reached ({str(err).splitlines()[0]}); the full "
                  "profile falls back to the mirrored data without it.")
        else:
            failed += 1
            print(f"FAILED  {n}: {str(err).splitlines()[0]}")
    if to is not None:
        print(f"Mirror folder: {Path(to).resolve()}\n"
              f"Serve it with any static HTTP server, e.g.\n"
              f"  python -m http.server 8000 --directory {to}\n"
              "and let learners set DLBIO_DATA_MIRROR=http://<this machine's address>:8000")
    else:
        print(f"Data folder: {data_dir()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
