"""Tracking by detection: link nuclei segmented in each frame into tracks and lineages.

The chapter's entry point; each step has a module of its own, and every name below can be
imported from here (``from dlbio_teach.tracking import link_lap``):

- linking (:mod:`dlbio_teach.tracking_links`): :func:`link_nearest`, the nearest-neighbour
  baseline written out in full, and :func:`link_lap`, the LAP tracker of Jaqaman et al.
  (2008) through ``laptrack``, with gap closing and divisions; :func:`suggest_max_distance`
  proposes the linking radius from a few annotated frames;
- scoring (:mod:`dlbio_teach.tracking_scores`): :func:`score_tracking` compares a
  :class:`~dlbio_teach.movies.Movie` with the truth through ``traccuracy`` (TRA, DET, LNK,
  division F1), :func:`summarize_scores` puts bootstrap intervals over movies on them, and
  :func:`detection_f1` scores the detector alone;
- export (:mod:`dlbio_teach.tracking_export`): :func:`tracks_table` (CSV, in pixels or in
  micrometres and time) and :func:`write_geff` (a GEFF graph); the Challenge's result layout
  is :func:`~dlbio_teach.movies.write_ctc_result`;
- drawing (:mod:`dlbio_teach.tracking_plots`): :func:`plot_tracks` and :func:`plot_lineage`.
"""
from __future__ import annotations

from .tracking_export import tracks_table, write_geff  # noqa: F401 (importable from here, see above)
from .tracking_links import (  # noqa: F401 (importable from here, see above)
    LinkRadius,
    detections,
    link_lap,
    link_nearest,
    motion_per_frame,
    suggest_max_distance,
)
from .tracking_plots import plot_lineage, plot_tracks  # noqa: F401 (importable from here, see above)
from .tracking_scores import (  # noqa: F401 (importable from here, see above)
    TrackingScores,
    detection_f1,
    score_tracking,
    summarize_scores,
    tracking_graph,
)

__all__ = ["detections", "link_nearest", "link_lap", "TrackingScores", "score_tracking",
           "detection_f1", "suggest_max_distance", "LinkRadius", "summarize_scores",
           "tracking_graph", "tracks_table", "write_geff", "motion_per_frame", "plot_tracks",
           "plot_lineage"]
