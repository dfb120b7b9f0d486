"""Scoring: a tracking result compared with the truth, and summarized over movies.

:func:`score_tracking` compares a result (a :class:`~dlbio_teach.movies.Movie` in the Cell
Tracking Challenge layout, as the linkers of :mod:`dlbio_teach.tracking_links` return it)
with the truth through ``traccuracy``: the CTC measures TRA, DET and LNK, and the division
F1, in a :class:`TrackingScores`. Both movies enter ``traccuracy`` as graphs
(:func:`tracking_graph`). It also scores the detector alone (:func:`detection_f1`) and
warns when the tracking measures read well on masks that a poor detector made.
:func:`summarize_scores` puts bootstrap intervals over movies on the measures
(:mod:`dlbio_teach.intervals`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .intervals import bootstrap_ci
from .metrics import match_dataset
from .movies import Movie
from .tracking_links import detections

__all__ = ["tracking_graph", "TrackingScores", "score_tracking", "detection_f1",
           "summarize_scores"]


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
