"""Export: tracks written out for other programs and readers.

Tracks leave as a table (:func:`tracks_table`, one row per nucleus and frame, written as
CSV, in pixels or in micrometres and time) or as a GEFF graph (:func:`write_geff`, a Zarr
folder that napari and trackers read); the Challenge's result layout is written by
:func:`~dlbio_teach.movies.write_ctc_result`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .movies import Movie
from .tracking_links import detections
from .tracking_scores import tracking_graph

__all__ = ["tracks_table", "write_geff"]


def tracks_table(movie: Movie, *, pixel_size: float | None = None,
                 frame_interval: float | None = None, time_unit: str = "min"):
    """The tracks as a table (``pandas.DataFrame``): one row per nucleus and frame.

    Columns ``track``, ``parent`` (the parent track, 0 for none), ``frame``, ``y``, ``x``
    (centroid, pixels) and ``area`` (pixels); ``table.to_csv(path, index=False)`` writes it.
    Given the ``pixel_size`` (micrometres) it adds ``y_um``, ``x_um`` and ``area_um2``;
    given the ``frame_interval`` (in ``time_unit``) it adds ``time_<time_unit>``: the
    table then says what a reader needs without the microscope's settings at hand.

    Examples
    --------
    >>> masks = np.zeros((2, 8, 8), np.int32); masks[:, 2:4, 2:4] = 1
    >>> tracks_table(Movie(masks, np.array([[1, 0, 1, 0]]))).columns.tolist()
    ['track', 'parent', 'frame', 'y', 'x', 'area']
    >>> t = tracks_table(Movie(masks, np.array([[1, 0, 1, 0]])), pixel_size=0.5,
    ...                  frame_interval=10)
    >>> t[["time_min", "y_um", "area_um2"]].values.tolist()
    [[0.0, 1.25, 1.0], [10.0, 1.25, 1.0]]
    """
    import pandas as pd

    for name, value in (("pixel_size", pixel_size), ("frame_interval", frame_interval)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}.")
    parent = {int(r[0]): int(r[3]) for r in np.asarray(movie.tracks)}
    rows = []
    for t, (labels, centroids) in enumerate(detections(movie.labels)):
        areas = np.bincount(movie.labels[t].ravel())
        for label, (y, x) in zip(labels.tolist(), centroids.tolist()):
            rows.append((label, parent.get(label, 0), t, round(y, 2), round(x, 2),
                         int(areas[label])))
    table = pd.DataFrame(rows, columns=["track", "parent", "frame", "y", "x", "area"])
    if frame_interval is not None:
        table[f"time_{time_unit}"] = table["frame"] * float(frame_interval)
    if pixel_size is not None:
        table["y_um"] = (table["y"] * pixel_size).round(3)
        table["x_um"] = (table["x"] * pixel_size).round(3)
        table["area_um2"] = (table["area"] * pixel_size ** 2).round(3)
    return table


def write_geff(movie: Movie, path, *, overwrite: bool = False) -> Path:
    """Write the tracks as a GEFF graph (a Zarr folder that napari and trackers read).

    The graph is written to a temporary folder beside ``path`` and moved into place when
    complete, so a failure leaves no half-written graph.

    Nodes carry ``t``, ``y``, ``x`` and ``track`` (the CTC label); edges follow the tracks
    and go from each mother to her daughters.

    Examples
    --------
    >>> import tempfile, geff
    >>> masks = np.zeros((2, 8, 8), np.int32); masks[:, 2:4, 2:4] = 1
    >>> folder = Path(tempfile.mkdtemp())
    >>> out = write_geff(Movie(masks, np.array([[1, 0, 1, 0]])), folder / "t.geff")
    >>> graph, _ = geff.read(out)
    >>> graph.number_of_nodes(), graph.number_of_edges()
    (2, 1)
    """
    import geff

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose a new path or pass overwrite=True.")
    tg = tracking_graph(movie)
    graph = tg.graph.copy()
    for _, attrs in graph.nodes(data=True):
        attrs["track"] = attrs.pop("segmentation_id")
        attrs.pop("bbox", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:                    # written beside the target, moved into place when complete
        geff.write(graph, str(partial / path.name), axis_names=["t", "y", "x"],
                   axis_types=["time", "space", "space"])
        if path.exists():
            shutil.rmtree(path)
        os.replace(partial / path.name, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return path
