"""Workshop mirrors of the datasets, and the ``prefetch`` command line.

A mirror is a folder that holds each file of the registry (:data:`~dlbio_teach.data.REGISTRY`)
at ``HOST/PATH`` of its ``https://`` URL (:func:`mirror_path`): served by any static HTTP
server, it answers for ``https://`` once learners set ``DLBIO_DATA_MIRROR`` (see
:func:`~dlbio_teach.data.source_url`). :func:`build_mirror` fills one, every file checked
against its sha256; :func:`serve_mirror` serves one from a background thread (the tests,
the benchmarks).

The command line lives here and runs as ``python -m dlbio_teach.data`` (which starts
``python -m dlbio_teach.mirror`` with the same arguments, so that the data layer never
imports this one): ``list`` prints the registry, ``cards`` the dataset cards, ``prefetch``
downloads the datasets into ``DLBIO_DATA_DIR`` (for offline work), and
``prefetch --all --to FOLDER`` builds a workshop mirror.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .data import (
    REGISTRY,
    ChecksumError,
    DatasetUnavailableError,
    _fetch_file,
    data_dir,
    dataset_card,
    fetch,
    file_sha256,
)

__all__ = ["mirror_path", "build_mirror", "serve_mirror"]


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
    ``DLBIO_DATA_MIRROR=http://SERVER:8000`` (see :func:`~dlbio_teach.data.source_url`).
    Each file is checked against its sha256: a file already in ``folder`` with the right
    hash is kept, one in the download folder (:func:`~dlbio_teach.data.data_dir`) is
    copied, any other is downloaded (through ``$DLBIO_DATA_MIRROR`` when set). Files are
    written through a temporary file and renamed only once verified, so an interrupted or
    failed run leaves no half-written file behind.

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
        :class:`~dlbio_teach.data.DatasetUnavailableError` or
        :class:`~dlbio_teach.data.ChecksumError` that stopped it.

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


def serve_mirror(folder, *, host: str = "127.0.0.1", port: int = 0):
    """Serve ``folder`` over HTTP from a background thread; return ``(base_url, server)``.

    The folder must hold each file at ``HOST/PATH`` of its upstream URL; then setting
    ``DLBIO_DATA_MIRROR`` to ``base_url`` makes :func:`~dlbio_teach.data.fetch` download
    from it. The tests use this on a free loopback port (``port=0``). Stop it with
    ``server.shutdown()``.

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
                    "its sha256. The large standard sets of the literature (--all; no "
                    "chapter uses them) are skipped, with a note, when they cannot be "
                    "reached.")
    pre.add_argument("names", nargs="*", help="datasets (default: every mirrored one)")
    pre.add_argument("--all", action="store_true",
                     help="also try the large standard sets of the literature, which no "
                          "chapter uses (needs the internet)")
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
    """The ``prefetch`` command: one line per dataset; exit status 1 if a mirrored dataset
    (those the chapters load are all mirrored), or one named explicitly, could not be had."""
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
            print(f"SKIPPED {n}: cannot be reached ({str(err).splitlines()[0]}); no chapter "
                  "uses it.")
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
