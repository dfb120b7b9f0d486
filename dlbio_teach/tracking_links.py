"""Linking: the nuclei segmented in each frame joined into tracks and lineages.

Two linkers over the same detections (instance masks, one label image per frame, read by
:func:`detections`):

- :func:`link_nearest`, the baseline written out in full: each nucleus of frame ``t`` is
  matched to one of frame ``t + 1`` by a one-to-one assignment of least total distance
  (:func:`scipy.optimize.linear_sum_assignment`) within ``max_distance``; a nucleus left
  over starts a new track. It cannot bridge a missed detection or see a division.
- :func:`link_lap`, the linear assignment problem tracker of Jaqaman et al. (2008) through
  ``laptrack`` (Fukai & Kawaguchi 2023): frame-to-frame links, then gap closing (a nucleus
  missed for a frame) and splitting (a mother linked to two daughters).

Both return a :class:`~dlbio_teach.movies.Movie` in the Cell Tracking Challenge layout.
:func:`suggest_max_distance` proposes the linking radius from a few annotated frames (a
:class:`LinkRadius`), and :func:`motion_per_frame` measures how far the truth's nuclei move.
The tracks are scored in :mod:`dlbio_teach.tracking_scores`, exported by
:mod:`dlbio_teach.tracking_export` and drawn by :mod:`dlbio_teach.tracking_plots`;
:mod:`dlbio_teach.tracking`, the chapter's entry point, imports them all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from .movies import Movie, check_tracks

__all__ = ["detections", "link_nearest", "link_lap", "motion_per_frame", "LinkRadius",
           "suggest_max_distance"]


def detections(masks) -> list:
    """The nuclei of each frame: a list over frames of ``(labels, centroids)`` arrays.

    ``centroids`` has one row ``(y, x)`` per label, in pixels.

    Examples
    --------
    >>> masks = np.zeros((1, 6, 6), np.int32); masks[0, 1:3, 1:3] = 4
    >>> labels, centroids = detections(masks)[0]
    >>> labels.tolist(), centroids.tolist()
    ([4], [[1.5, 1.5]])
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(f"masks must be integer label images (T, Y, X), got shape "
                         f"{masks.shape} and dtype {masks.dtype}.")
    out = []
    for frame in masks:
        labels = np.unique(frame[frame > 0])
        if len(labels) == 0:
            out.append((labels, np.zeros((0, 2))))
            continue
        index = np.searchsorted(labels, frame)    # label -> row, background ignored below
        fg = frame > 0
        counts = np.bincount(index[fg], minlength=len(labels))
        yy, xx = np.nonzero(fg)
        cy = np.bincount(index[fg], weights=yy, minlength=len(labels)) / counts
        cx = np.bincount(index[fg], weights=xx, minlength=len(labels)) / counts
        out.append((labels, np.stack([cy, cx], axis=1)))
    return out


def _as_movie(masks, detected, track_of: list, parents: dict, info: dict) -> Movie:
    """Turn ``track_of[t][i]`` (a track id for detection i of frame t) and a parent map into a
    CTC label movie and table; a track with a gap is cut in two, the second with the first
    as parent, and the tracks are numbered 1, 2, ... in order of their first frame."""
    frames_of: dict = {}
    for t, ids in enumerate(track_of):
        for i in ids:
            frames_of.setdefault(int(i), []).append(t)
    pieces = []                                  # (first frame, track id, frames)
    for tid, frames in frames_of.items():
        frames = np.asarray(sorted(frames))
        for part in np.split(frames, np.nonzero(np.diff(frames) > 1)[0] + 1):
            pieces.append((int(part[0]), tid, part))
    pieces.sort(key=lambda p: (p[0], p[1]))
    new_label, last_piece, first_piece, rows = {}, {}, {}, []
    for label, (begin, tid, frames) in enumerate(pieces, start=1):
        for t in frames:
            new_label[(tid, int(t))] = label
        parent = last_piece.get(tid, 0)
        if tid not in first_piece:
            first_piece[tid] = label
        rows.append([label, begin, int(frames[-1]), parent])
        last_piece[tid] = label
    for tid, mother in parents.items():         # divisions: child's first piece -> mother's last
        if tid in first_piece and mother in last_piece:
            rows[first_piece[tid] - 1][3] = last_piece[mother]
    out = np.zeros(masks.shape, np.int32)
    for t, ((labels, _), ids) in enumerate(zip(detected, track_of)):
        lut = np.zeros(int(masks[t].max()) + 1, np.int32)
        lut[labels] = [new_label[(int(i), t)] for i in ids]
        out[t] = lut[masks[t]]
    tracks = np.asarray(rows, np.int64).reshape(-1, 4)
    check_tracks(out, tracks)
    return Movie(out, tracks, None, info)


def link_nearest(masks, *, max_distance: float) -> Movie:
    """Link detections frame to frame by the assignment of least total distance.

    For each pair of consecutive frames, :func:`scipy.optimize.linear_sum_assignment`
    pairs nuclei one to one so that the sum of centroid distances is smallest; a pair
    further apart than ``max_distance`` is not linked. An unpaired nucleus of the new frame
    starts a track; an unpaired one of the old frame ends its track. No gaps, no divisions.

    Parameters
    ----------
    masks : ndarray ``(T, Y, X)``
        Instance labels of each frame (any numbering per frame).
    max_distance : float
        Longest link, in pixels.

    Returns
    -------
    Movie
        The tracks in the CTC layout (``images`` is ``None``).

    Examples
    --------
    >>> masks = np.zeros((3, 12, 12), np.int32)
    >>> masks[0, 1:3, 1:3] = 1; masks[1, 2:4, 2:4] = 5; masks[2, 3:5, 3:5] = 2
    >>> link_nearest(masks, max_distance=3).tracks.tolist()
    [[1, 0, 2, 0]]
    """
    masks = np.asarray(masks)
    detected = detections(masks)
    next_id = len(detected[0][0]) + 1
    track_of = [np.arange(1, next_id)]
    for t in range(1, len(detected)):
        before, now = detected[t - 1][1], detected[t][1]
        ids = np.zeros(len(now), np.int64)
        if len(before) and len(now):
            distance = cdist(before, now)
            rows, cols = linear_sum_assignment(np.where(distance <= max_distance, distance,
                                                        1e9))
            close = distance[rows, cols] <= max_distance
            ids[cols[close]] = track_of[t - 1][rows[close]]
        for i in np.nonzero(ids == 0)[0]:
            ids[i] = next_id
            next_id += 1
        track_of.append(ids)
    return _as_movie(masks, detected, track_of, {},
                     {"linker": "nearest neighbour", "max_distance": max_distance})


def link_lap(masks, *, max_distance: float, divisions: bool = True,
             gap_frames: int = 1) -> Movie:
    """Link detections with ``laptrack``'s LAP tracker: gap closing and divisions.

    The tracker (Jaqaman et al. 2008) first links frame to frame, then solves a second
    assignment between track segments: a segment may continue after up to ``gap_frames``
    frames without a detection, or split into two (a division). All costs are squared
    distances; links longer than ``max_distance`` are not allowed.

    Parameters
    ----------
    masks : ndarray ``(T, Y, X)``
        Instance labels of each frame.
    max_distance : float
        Longest link, gap closure or mother-to-daughter step, in pixels.
    divisions : bool
        Allow splitting (divisions).
    gap_frames : int
        Frames a nucleus may be missed and still keep its track (0: no gap closing).

    Returns
    -------
    Movie
        The tracks in the CTC layout (a division: the mother's track ends, two tracks
        begin in the next frame with the mother as parent).

    Examples
    --------
    >>> masks = np.zeros((3, 20, 20), np.int32)
    >>> masks[0, 8:12, 8:12] = 1                                   # the mother
    >>> masks[1, 8:12, 3:7] = 1; masks[1, 8:12, 13:17] = 2         # two daughters
    >>> masks[2, 8:12, 2:6] = 1; masks[2, 8:12, 14:18] = 2
    >>> link_lap(masks, max_distance=7).tracks.tolist()
    [[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]]
    """
    import pandas as pd
    from laptrack import LapTrack

    masks = np.asarray(masks)
    detected = detections(masks)
    rows = [(t, i, y, x) for t, (_, cen) in enumerate(detected) for i, (y, x) in enumerate(cen)]
    df = pd.DataFrame(rows, columns=["frame", "i", "y", "x"])
    cutoff = float(max_distance) ** 2
    tracker = LapTrack(cutoff=cutoff,
                       gap_closing_cutoff=cutoff if gap_frames > 0 else False,
                       gap_closing_max_frame_count=max(int(gap_frames) + 1, 1),
                       splitting_cutoff=cutoff if divisions else False)
    track_of = [np.zeros(len(labels), np.int64) for labels, _ in detected]
    parents = {}
    if len(df):
        track_df, split_df, _ = tracker.predict_dataframe(df, ["y", "x"], frame_col="frame",
                                                          only_coordinate_cols=False)
        for t, i, tid in zip(track_df["frame"], track_df["i"], track_df["track_id"]):
            track_of[int(t)][int(i)] = int(tid) + 1
        if len(split_df):
            parents = {int(c) + 1: int(p) + 1 for p, c in zip(split_df["parent_track_id"],
                                                              split_df["child_track_id"])}
    return _as_movie(masks, detected, track_of, parents,
                     {"linker": "LAP with divisions" if divisions else "LAP",
                      "max_distance": max_distance, "gap_frames": gap_frames})

def motion_per_frame(movie: Movie) -> float:
    """Median distance a nucleus moves between frames, in pixels (from the truth's tracks).

    Examples
    --------
    >>> masks = np.zeros((3, 12, 12), np.int32)
    >>> masks[0, 1:3, 1:3] = 1; masks[1, 1:3, 3:5] = 1; masks[2, 1:3, 5:7] = 1
    >>> motion_per_frame(Movie(masks, np.array([[1, 0, 2, 0]])))
    2.0
    """
    steps = []
    previous = {}
    for labels, centroids in detections(movie.labels):
        now = dict(zip(labels.tolist(), centroids))
        steps += [float(np.hypot(*(now[k] - previous[k]))) for k in now if k in previous]
        previous = now
    return float(np.median(steps)) if steps else 0.0


@dataclass
class LinkRadius:
    """A ``max_distance`` for :func:`link_nearest` and :func:`link_lap`, with what it was
    read from (all in pixels; ``step`` is ``None`` when no nucleus was followed)."""

    max_distance: float
    diameter: float
    neighbour_distance: float
    step: float | None
    reasoning: str


def suggest_max_distance(masks, *, tracked: bool = False) -> LinkRadius:
    """Propose the linking radius from annotated frames ``(T, Y, X)`` (two are enough).

    Read from the masks: the nuclei's median diameter (of a disc of the same area), the
    median distance from a nucleus to its nearest neighbour in the same frame and, with
    ``tracked=True`` (consecutive frames in which each nucleus keeps its label), the 95th
    percentile of the distance a nucleus moves between frames. The proposal is 1.5 times
    that step (room for nuclei faster than those annotated) and, without steps, one nucleus
    diameter: nuclei that move less than their own size per frame are the ones
    frame-to-frame linking can follow. ``reasoning`` says which rule was used, and warns
    when the radius reaches the distance to the next nucleus (links become ambiguous:
    image more often, or link on more than position).

    Examples
    --------
    >>> masks = np.zeros((2, 40, 60), np.int32)
    >>> masks[0, 10:20, 10:20] = 1; masks[0, 10:20, 40:50] = 2
    >>> masks[1, 10:20, 12:22] = 1; masks[1, 10:20, 42:52] = 2    # both moved 2 px
    >>> r = suggest_max_distance(masks, tracked=True)
    >>> round(r.diameter, 1), r.step, r.max_distance
    (11.3, 2.0, 3.0)
    >>> suggest_max_distance(masks).max_distance == r.diameter
    True
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or not np.issubdtype(masks.dtype, np.integer) or len(masks) < 1:
        raise ValueError(f"masks must be annotated frames (T, Y, X) of integer labels, got "
                         f"shape {masks.shape} and dtype {masks.dtype}; give a single frame "
                         "as frame[None].")
    areas = [a for frame in masks for a in np.bincount(frame.ravel())[1:] if a > 0]
    if not areas:
        raise ValueError("the masks hold no nucleus: annotate at least a few in each frame.")
    diameter = float(np.median(2 * np.sqrt(np.asarray(areas) / np.pi)))
    found = detections(masks)
    gaps = [cdist(c, c) + np.diag(np.full(len(c), np.inf)) for _, c in found if len(c) > 1]
    neighbour = float(np.median(np.concatenate([g.min(axis=1) for g in gaps]))) if gaps \
        else float("inf")
    steps = []
    if tracked:
        for (before, at_before), (after, at_after) in zip(found, found[1:]):
            common, i, j = np.intersect1d(before, after, return_indices=True)
            steps += np.hypot(*(at_after[j] - at_before[i]).T).tolist()
        if not steps:
            raise ValueError("tracked=True, but no label is in two consecutive frames: give "
                             "consecutive frames in which each nucleus keeps its label, or "
                             "tracked=False.")
    step = float(np.percentile(steps, 95)) if steps else None
    if step is not None:
        radius = 1.5 * step
        reasoning = (f"1.5 x the 95th percentile of {len(steps)} annotated steps "
                     f"({step:.1f} px)")
    else:
        radius = diameter
        reasoning = (f"one nucleus diameter ({diameter:.1f} px): no steps were annotated, and "
                     "frame-to-frame linking follows nuclei that move less than their size")
    if radius >= neighbour:
        reasoning += (f"; warning: it reaches the median distance to the nearest neighbour "
                      f"({neighbour:.1f} px), so a nucleus may be linked to its neighbour: "
                      "image more often if you can")
    return LinkRadius(float(radius), diameter, neighbour, step, reasoning)
