"""Tracking by detection: link nuclei segmented in each frame into tracks and lineages.

Two linkers over the same detections (instance masks, one label image per frame):

- :func:`link_nearest`, the baseline written out in full: each nucleus of frame ``t`` is
  matched to one of frame ``t + 1`` by a one-to-one assignment of least total distance
  (:func:`scipy.optimize.linear_sum_assignment`) within ``max_distance``; a nucleus left
  over starts a new track. It cannot bridge a missed detection or see a division.
- :func:`link_lap`, the linear assignment problem tracker of Jaqaman et al. (2008) through
  ``laptrack`` (Fukai & Kawaguchi 2023): frame-to-frame links, then gap closing (a nucleus
  missed for a frame) and splitting (a mother linked to two daughters).

Both return a :class:`~dlbio_teach.movies.Movie` in the Cell Tracking Challenge layout,
which :func:`score_tracking` compares with the truth through ``traccuracy`` (the CTC
measures TRA, DET and LNK, and the division F1), and :func:`summarize_scores` puts
bootstrap intervals over movies on them (:mod:`dlbio_teach.intervals`); it also scores the
detector alone (:func:`detection_f1`) and warns when the tracking measures read well on
masks that a poor detector made. :func:`suggest_max_distance` proposes the linking radius
from a few annotated frames. Tracks leave as a table (:func:`tracks_table`, CSV, in pixels
or in micrometres and time), a GEFF graph (:func:`write_geff`) or the Challenge's result
layout (:func:`~dlbio_teach.movies.write_ctc_result`), and are drawn by :func:`plot_tracks`
and :func:`plot_lineage`.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from .intervals import bootstrap_ci
from .metrics import match_dataset
from .movies import Movie, check_tracks, divisions

__all__ = ["detections", "link_nearest", "link_lap", "TrackingScores", "score_tracking",
           "detection_f1", "suggest_max_distance", "LinkRadius", "summarize_scores",
           "tracking_graph", "tracks_table", "write_geff", "motion_per_frame", "plot_tracks",
           "plot_lineage"]


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


def tracking_graph(movie: Movie, name: str | None = None):
    """A ``traccuracy.TrackingGraph`` of a CTC movie: one node per nucleus and frame, an
    edge along each track and from a parent's last node to its children's first.

    Examples
    --------
    >>> masks = np.zeros((2, 8, 8), np.int32); masks[:, 2:4, 2:4] = 1
    >>> graph = tracking_graph(Movie(masks, np.array([[1, 0, 1, 0]])))
    >>> len(graph.nodes), len(graph.edges)
    (2, 1)
    """
    import networkx as nx
    from traccuracy import TrackingGraph

    labels = np.asarray(movie.labels)
    stride = int(labels.max()) + 1
    graph = nx.DiGraph()
    for t, (ids, centroids) in enumerate(detections(labels)):
        for label, (y, x) in zip(ids.tolist(), centroids.tolist()):
            graph.add_node(t * stride + label + 1, t=t, y=y, x=x, segmentation_id=label)
    for label, begin, end, parent in np.asarray(movie.tracks).tolist():
        for t in range(begin, end):
            graph.add_edge(t * stride + label + 1, (t + 1) * stride + label + 1)
        if parent:
            parent_end = int(movie.tracks[movie.tracks[:, 0] == parent][0, 2])
            graph.add_edge(parent_end * stride + parent + 1, begin * stride + label + 1)
    return TrackingGraph(graph, segmentation=labels, location_keys=("y", "x"), name=name)


@dataclass(frozen=True)
class TrackingScores:
    """The Cell Tracking Challenge measures of one tracking result against the truth.

    Attributes
    ----------
    TRA : float
        Tracking accuracy: 1 - (weighted graph edits to turn the result into the truth) /
        (the edits to build the truth from nothing); 1 is perfect.
    DET : float
        The same for the nuclei alone (detection accuracy).
    LNK : float
        The same for the links alone (link accuracy).
    division_f1 : float
        F1 of the divisions found in the frame where they happen (``nan`` when there is
        none in either).
    division_tp, division_fp, division_fn : int
        Divisions found in the right frame with the right daughters; predicted divisions
        that are not (invented, or a daughter wrong); true divisions that are not
        (missed, or a daughter wrong).
    edge_fp, edge_fn : int
        Links that should not be there, and links missing.
    detection_f1 : float
        The detector alone, frame by frame: F1 of the nuclei paired one to one at
        IoU >= 0.5 (:func:`~dlbio_teach.metrics.match_dataset`, pooled over frames). DET
        can read high when this is low: the CTC's matching accepts a result nucleus that
        covers more than half of a true one, so one blob over several nuclei still counts.
    """

    TRA: float
    DET: float
    LNK: float
    division_f1: float
    division_tp: int
    division_fp: int
    division_fn: int
    edge_fp: int
    edge_fn: int
    detection_f1: float = float("nan")

    def to_dict(self) -> dict:
        """The scores as a plain dict."""
        return asdict(self)


def _numbered_from_one(movie: Movie) -> Movie:
    """The same movie with its tracks numbered 1, 2, ... in the order of the table (the
    labels of the masks and the parents renumbered together)."""
    labels, tracks = np.asarray(movie.labels), np.asarray(movie.tracks, np.int64).reshape(-1, 4)
    present = np.unique(labels[labels > 0])
    order = np.concatenate([tracks[:, 0], np.setdiff1d(present, tracks[:, 0])])
    lut = np.zeros(int(max(order.max(initial=0), labels.max(initial=0))) + 1, np.int32)
    lut[order] = np.arange(1, len(order) + 1)
    renumbered = np.column_stack([lut[tracks[:, 0]], tracks[:, 1:3], lut[tracks[:, 3]]])
    return Movie(lut[labels], renumbered, movie.images, movie.info)


def score_tracking(truth: Movie, result: Movie) -> TrackingScores:
    """Score a tracking result against the truth with ``traccuracy``'s CTC measures.

    For TRA, DET and LNK (``traccuracy``'s ``CTCMetrics``) nuclei are matched as the CTC
    does (a result nucleus covers more than half of a true one); for the division F1
    (``DivisionMetrics``, a division counts when found in its frame with both daughters)
    they are paired one to one at IoU >= 0.5.

    It warns when the detector alone is poor (``TrackingScores.detection_f1`` below
    ``0.5``) while DET reads at least 0.2 higher: check detection on annotated frames
    before reading tracking measures.

    The tracks of each movie are numbered 1, 2, ... before they are compared, which
    changes no score: the Challenge's masks number nuclei by track, up to 65535, and
    ``traccuracy``'s IoU matching builds a table as large as the largest label squared.

    Examples
    --------
    >>> masks = np.zeros((3, 20, 20), np.int32)
    >>> masks[0, 8:12, 8:12] = 1
    >>> masks[1:, 8:12, 3:7] = 2; masks[1:, 8:12, 13:17] = 3
    >>> truth = Movie(masks, np.array([[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]]))
    >>> s = score_tracking(truth, truth)
    >>> s.TRA, s.division_f1
    (1.0, 1.0)
    """
    from traccuracy import run_metrics
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    if truth.labels.shape != result.labels.shape:
        raise ValueError(f"truth and result must be movies of the same shape, got "
                         f"{truth.labels.shape} and {result.labels.shape}.")
    truth, result = _numbered_from_one(truth), _numbered_from_one(result)
    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")      # and traccuracy's progress bars are not shown
        ctc = run_metrics(tracking_graph(truth, "truth"), tracking_graph(result, "result"),
                          CTCMatcher(), [CTCMetrics()])[0][0]["results"]
        # Divisions need a one-to-one matching (the CTC matcher lets one predicted nucleus
        # cover two true ones): nuclei are paired at IoU >= 0.5 for them.
        div = run_metrics(tracking_graph(truth, "truth"), tracking_graph(result, "result"),
                          IOUMatcher(iou_threshold=0.5, one_to_one=True),
                          [DivisionMetrics()])[0][0]["results"]["Frame Buffer 0"]
    tp = int(div["True Positive Divisions"])
    fp = int(div["Total Predicted Divisions"]) - tp   # invented, or with a wrong daughter
    fn = int(div["Total GT Divisions"]) - tp          # missed, or with a wrong daughter
    # traccuracy's F1 (2 tp / (true + predicted divisions)), from the counts, so that a result
    # with no division at all scores 0 (not undefined) when the truth has some.
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    scores = TrackingScores(TRA=float(ctc["TRA"]), DET=float(ctc["DET"]),
                            LNK=float(ctc["LNK"]), division_f1=float(f1), division_tp=tp,
                            division_fp=fp, division_fn=fn, edge_fp=int(ctc["fp_edges"]),
                            edge_fn=int(ctc["fn_edges"]),
                            detection_f1=detection_f1(truth.labels, result.labels))
    if scores.detection_f1 < POOR_DETECTION and scores.DET - scores.detection_f1 >= 0.2:
        warnings.warn(f"the detector's F1 per frame is {scores.detection_f1:.2f} (nuclei paired "
                      f"one to one at IoU 0.5) while DET reads {scores.DET:.2f}: the CTC's "
                      "matching counts a result nucleus that covers more than half of a true "
                      "one, so merged or oversized detections still score. Fix detection "
                      "first; TRA and LNK mean little on such masks.", UserWarning,
                      stacklevel=2)
    return scores


#: Below this per-frame detection F1, :func:`score_tracking` warns that DET can mislead.
POOR_DETECTION = 0.5


def detection_f1(truth_masks, result_masks, *, iou_threshold: float = 0.5) -> float:
    """F1 of a detector over the frames of a movie: nuclei paired one to one at IoU at
    least ``iou_threshold`` in each frame, counts pooled over frames.

    Examples
    --------
    >>> truth = np.zeros((2, 10, 20), np.int32); truth[:, 2:8, 2:8] = 1; truth[:, 2:8, 12:18] = 2
    >>> blob = (truth > 0).astype(np.int32); blob[:, 2:8, 8:12] = 1   # one blob over both
    >>> detection_f1(truth, truth), detection_f1(truth, blob)
    (1.0, 0.0)
    """
    truth_masks, result_masks = np.asarray(truth_masks), np.asarray(result_masks)
    if truth_masks.shape != result_masks.shape:
        raise ValueError(f"truth and result masks must have the same shape, got "
                         f"{truth_masks.shape} and {result_masks.shape}.")
    return float(match_dataset(list(truth_masks), list(result_masks),
                               thresholds=[iou_threshold])[0]["f1"])


def _pooled_f1(counts) -> float:
    """F1 of the divisions of several movies counted together: rows ``(tp, fp, fn)``."""
    tp, fp, fn = np.asarray(counts, float).reshape(-1, 3).sum(axis=0)
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def summarize_scores(scores, *, seed: int = 0) -> dict:
    """Bootstrap 95 % intervals over movies for TRA, DET, LNK and the division F1.

    TRA, DET and LNK are averaged over movies; the division F1 is pooled (the divisions of
    all movies counted together), so a movie without divisions adds nothing to it. The
    movies are resampled with :func:`~dlbio_teach.intervals.bootstrap_ci` (percentile
    intervals: a handful of movies is too few for BCa).

    Parameters
    ----------
    scores : sequence of TrackingScores
        One per movie (at least 2).
    seed : int

    Returns
    -------
    dict
        ``{"TRA": BootstrapCI, "DET": ..., "LNK": ..., "division F1": ...}``.

    Examples
    --------
    >>> s = [TrackingScores(0.9 + i / 100, 0.95, 0.9, 0.5, 1, 1, 1, 2, 3) for i in range(5)]
    >>> summary = summarize_scores(s)
    >>> round(summary["TRA"].estimate, 3), round(summary["division F1"].estimate, 3)
    (0.92, 0.5)
    """
    scores = list(scores)
    out = {name: bootstrap_ci([getattr(s, name) for s in scores], method="percentile",
                              seed=seed) for name in ("TRA", "DET", "LNK")}
    counts = np.array([[s.division_tp, s.division_fp, s.division_fn] for s in scores], float)
    out["division F1"] = bootstrap_ci(counts, statistic=_pooled_f1, method="percentile",
                                      seed=seed)
    return out


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
