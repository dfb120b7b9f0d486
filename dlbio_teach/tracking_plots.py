"""Drawing: tracks over the image, and lineage trees.

:func:`plot_tracks` draws each track's path over an image, with its start and the
divisions marked; :func:`plot_lineage` draws the lineage trees, time downwards. Both take a
:class:`~dlbio_teach.movies.Movie` in the Cell Tracking Challenge layout (the truth or a
linker's result, :mod:`dlbio_teach.tracking_links`) and return the matplotlib axes.
"""
from __future__ import annotations

import numpy as np

from .movies import Movie, divisions
from .tracking_export import tracks_table

__all__ = ["plot_tracks", "plot_lineage"]


def _track_colours(n: int):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab20")
    return [cmap(i % 20) for i in range(n + 1)]


def plot_tracks(movie: Movie, *, image=None, ax=None, title: str | None = None):
    """Draw every track's path over an image (default: the maximum projection of the labels'
    outlines), a dot where a track starts and a cross where a division happens.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> masks = np.zeros((2, 8, 8), np.int32); masks[:, 2:4, 2:4] = 1
    >>> ax = plot_tracks(Movie(masks, np.array([[1, 0, 1, 0]])))
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    if image is None:
        image = (movie.labels > 0).mean(axis=0)
    ax.imshow(image, cmap="gray")
    table = tracks_table(movie)
    colours = _track_colours(int(movie.labels.max()))
    for track, rows in table.groupby("track"):
        ax.plot(rows["x"], rows["y"], "-", color=colours[track], lw=1.2)
        ax.plot(rows["x"].iloc[0], rows["y"].iloc[0], ".", color=colours[track], ms=4)
    for mother in divisions(movie.tracks):
        last = table[table["track"] == mother].iloc[-1]
        ax.plot(last["x"], last["y"], "x", color="white", ms=7, mew=2)
    ax.set_axis_off()
    ax.set_title(title or f"{movie.n_tracks} tracks, {len(divisions(movie.tracks))} divisions")
    return ax


def plot_lineage(movie: Movie, *, ax=None, title: str | None = None, min_length: int = 1):
    """Draw the lineage trees: time downwards, one vertical line per track, a horizontal
    bar joining a mother to her daughters. Tracks shorter than ``min_length`` frames
    without parent or children are left out.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = plot_lineage(Movie(np.zeros((3, 4, 4), np.int32),
    ...                         np.array([[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]])))
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    tracks = np.asarray(movie.tracks)
    rows = {int(r[0]): r for r in tracks}
    children: dict = {}
    for label, _, _, parent in tracks.tolist():
        children.setdefault(parent, []).append(label)
    x_of: dict = {}

    def place(label, x):      # depth first: daughters side by side, then the next tree
        kids = children.get(label, [])
        if not kids:
            x_of[label] = x
            return x + 1
        for kid in kids:
            x = place(kid, x)
        x_of[label] = float(np.mean([x_of[k] for k in kids]))
        return x

    x = 0
    for root in children.get(0, []):
        r = rows[root]
        if r[2] - r[1] + 1 >= min_length or root in children:
            x = place(root, x)
    colours = _track_colours(int(tracks[:, 0].max()) if len(tracks) else 0)
    for label, xpos in x_of.items():
        _, begin, end, parent = rows[label]
        ax.plot([xpos, xpos], [begin, end], color=colours[label], lw=2)
        if parent in x_of:
            ax.plot([x_of[parent], xpos], [rows[parent][2], begin], color="0.4", lw=1)
    ax.set_ylim(movie.n_frames - 0.5, -0.5)
    ax.set_ylabel("frame")
    ax.set_xticks([])
    ax.set_title(title or f"lineages ({len(divisions(tracks))} divisions)")
    return ax
