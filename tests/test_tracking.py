"""Linking and scoring on hand-built movies whose right answer is known."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dlbio_teach.movies import Movie, divisions, synthetic_movie
from dlbio_teach.tracking import (
    TrackingScores,
    detection_f1,
    detections,
    link_lap,
    link_nearest,
    motion_per_frame,
    score_tracking,
    suggest_max_distance,
    summarize_scores,
    tracks_table,
    write_geff,
)


def _division_movie() -> Movie:
    """A mother in frame 0 divides; her daughters sit 5 pixels either side in frame 1 and
    move one pixel further out in frame 2. A bystander walks along the bottom."""
    labels = np.zeros((3, 30, 24), np.int32)
    labels[0, 8:12, 10:14] = 1
    labels[1, 8:12, 5:9] = 2
    labels[1, 8:12, 15:19] = 3
    labels[2, 8:12, 4:8] = 2
    labels[2, 8:12, 16:20] = 3
    for t in range(3):
        labels[t, 22:26, 2 + 3 * t:6 + 3 * t] = 4
    return Movie(labels, np.array([[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1], [4, 0, 2, 0]]))


def _shuffled_labels(labels, seed=0):
    """The same nuclei numbered anew in every frame, as a segmenter would."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for t, frame in enumerate(labels):
        ids = np.unique(frame[frame > 0])
        new = rng.permutation(len(ids)) + 10
        for old, n in zip(ids, new):
            out[t][frame == old] = n
    return out


def test_detections_are_centroids():
    (labels, centroids), = detections(_division_movie().labels[:1])
    assert labels.tolist() == [1, 4]
    assert np.allclose(centroids, [[9.5, 11.5], [23.5, 3.5]])


def test_nearest_neighbour_misses_the_division_and_lap_finds_it():
    truth = _division_movie()
    masks = _shuffled_labels(truth.labels)
    nn = link_nearest(masks, max_distance=8)
    lap = link_lap(masks, max_distance=8)
    assert divisions(nn.tracks) == {}, "frame-to-frame one-to-one linking cannot divide"
    assert len(divisions(lap.tracks)) == 1
    s_nn, s_lap = score_tracking(truth, nn), score_tracking(truth, lap)
    assert s_lap.TRA == 1.0 and s_lap.division_f1 == 1.0 and s_lap.LNK == 1.0
    assert s_nn.division_f1 == 0.0 and s_nn.division_fn == 1 and s_nn.TRA < 1.0
    assert s_nn.DET == 1.0, "the same detections: only the links differ"


def test_lap_closes_a_gap_and_nearest_neighbour_does_not():
    labels = np.zeros((4, 12, 20), np.int32)
    for t in (0, 1, 3):                         # missed in frame 2
        labels[t, 4:8, 2 + 3 * t:6 + 3 * t] = 1
    nn = link_nearest(labels, max_distance=5)
    lap = link_lap(labels, max_distance=7, gap_frames=1)
    assert len(nn.tracks) == 2 and nn.tracks[1, 3] == 0
    # A closed gap in the CTC layout: two tracks, the second with the first as parent.
    assert lap.tracks.tolist() == [[1, 0, 1, 0], [2, 3, 3, 1]]
    assert len(link_lap(labels, max_distance=7, gap_frames=0).tracks) == 2


def test_scores_fall_for_a_wrong_link():
    truth = _division_movie()
    swapped = truth.labels.copy()
    swapped[2][truth.labels[2] == 2], swapped[2][truth.labels[2] == 3] = 3, 2
    wrong = score_tracking(truth, Movie(swapped, truth.tracks))
    assert wrong.DET == 1.0 and wrong.LNK < 1.0 and wrong.TRA < 1.0


def test_scores_do_not_depend_on_the_track_numbers():
    # The Challenge's masks number nuclei by track, in 16 bits: up to 65535.
    truth = _division_movie()
    nn = link_nearest(_shuffled_labels(truth.labels), max_distance=8)
    big = np.array([0, 40000, 7, 33000, 500])          # track 1 -> 40000, 2 -> 7, ...
    renumbered = Movie(big[truth.labels], np.column_stack(
        [big[truth.tracks[:, 0]], truth.tracks[:, 1:3], big[truth.tracks[:, 3]]]))
    assert score_tracking(renumbered, nn) == score_tracking(truth, nn)
    assert score_tracking(renumbered, renumbered).TRA == 1.0


def test_score_needs_same_shape():
    truth = _division_movie()
    with pytest.raises(ValueError, match="same shape"):
        score_tracking(truth, Movie(truth.labels[:2], truth.tracks[:1]))


def test_lap_beats_nearest_neighbour_on_a_synthetic_movie():
    movie = synthetic_movie(20, (96, 96), 10, speed=0.4, division_rate=0.05, seed=0)
    assert divisions(movie.tracks)
    s_nn = score_tracking(movie, link_nearest(movie.labels, max_distance=12))
    s_lap = score_tracking(movie, link_lap(movie.labels, max_distance=12))
    assert s_lap.division_f1 > 0.5 and s_nn.division_f1 == 0.0
    assert s_lap.TRA > s_nn.TRA and s_lap.DET == s_nn.DET == 1.0


def test_summary_pools_division_counts():
    scores = [TrackingScores(0.9, 1.0, 0.8, 1.0, 2, 0, 0, 0, 0),
              TrackingScores(0.8, 1.0, 0.7, 0.0, 0, 0, 2, 0, 0),
              TrackingScores(0.7, 1.0, 0.6, math.nan, 0, 0, 0, 0, 0)]
    summary = summarize_scores(scores)
    assert summary["TRA"].estimate == pytest.approx(0.8)
    assert summary["division F1"].estimate == pytest.approx(2 / 3)   # 2 tp, 2 fn
    assert summary["division F1"].low <= 2 / 3 <= summary["division F1"].high


def test_motion_table_and_geff(tmp_path):
    truth = _division_movie()
    assert motion_per_frame(truth) == pytest.approx(2.0)   # median of 1, 1 (daughters), 3, 3
    table = tracks_table(truth)
    assert len(table) == 8 and set(table[table.track == 2].parent) == {1}
    table.to_csv(tmp_path / "t.csv", index=False)
    assert pd.read_csv(tmp_path / "t.csv").equals(table)
    import geff
    path = write_geff(truth, tmp_path / "t.geff")
    graph, _ = geff.read(path)
    assert graph.number_of_nodes() == 8 and graph.number_of_edges() == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.geff"], "no partial left"
    with pytest.raises(FileExistsError):
        write_geff(truth, path)


def test_daughters_checker(capsys):
    from dlbio_teach.exercises import check
    tracks = _division_movie().tracks
    assert check.daughters([3, 2], tracks=tracks, mother=1)
    assert not check.daughters([2], tracks=tracks, mother=1)
    assert not check.daughters("two", tracks=tracks, mother=1)
    assert not check.daughters(..., tracks=tracks, mother=1)
    out = capsys.readouterr().out
    assert "Correct" in out and "tracks[tracks[:, 3] == 1, 0]" in out and "Not answered" in out


def test_frame_links_checker(capsys):
    from dlbio_teach.exercises import check
    before = np.array([[0.0, 0.0], [10.0, 0.0], [50.0, 50.0]])
    after = np.array([[10.0, 1.0], [0.0, 1.0]])
    assert check.frame_links([(0, 1), (1, 0)], before=before, after=after, max_distance=5)
    assert not check.frame_links([(0, 0), (1, 1)], before=before, after=after, max_distance=5)
    assert not check.frame_links([(0, 1), (1, 0), (2, 0)], before=before, after=after,
                                 max_distance=5)
    assert "longer than max_distance" in capsys.readouterr().out


# --- detection before tracking, linking radius, physical units, the result layout ----------

def _blob_masks(movie: Movie) -> np.ndarray:
    """A failed detector: the foreground of each frame grown into a few large blobs."""
    from scipy import ndimage as ndi
    grown = ndi.binary_dilation(movie.labels > 0, iterations=3, structure=np.ones((1, 3, 3)))
    return np.stack([ndi.label(frame)[0] for frame in grown]).astype(np.int32)


def test_a_failed_detector_is_flagged_while_det_reads_high():
    movie = synthetic_movie(6, (96, 96), n_nuclei=14, radius=6.0, seed=3)
    blobs = _blob_masks(movie)
    with pytest.warns(UserWarning, match="Fix detection first"):
        poor = score_tracking(movie, link_lap(blobs, max_distance=12))
    assert poor.detection_f1 < 0.5 <= poor.DET, (poor.detection_f1, poor.DET)
    assert poor.DET - poor.detection_f1 >= 0.2
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a good detector raises no warning
        good = score_tracking(movie, link_lap(movie.labels, max_distance=12))
    assert good.detection_f1 == 1.0 and good.DET == 1.0


def test_detection_f1_counts_one_to_one_pairs_and_checks_shapes():
    truth = np.zeros((2, 10, 20), np.int32)
    truth[:, 2:8, 2:8], truth[:, 2:8, 12:18] = 1, 2
    half = truth.copy()
    half[1][half[1] == 2] = 0            # one nucleus missed in one frame
    assert detection_f1(truth, half) == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
    with pytest.raises(ValueError, match="same shape"):
        detection_f1(truth, truth[:1])


def test_suggested_radius_follows_the_annotated_steps():
    movie = synthetic_movie(4, (96, 96), n_nuclei=10, radius=6.0, speed=0.8, seed=1)
    steps = []
    from dlbio_teach.tracking import detections as found_in
    found = found_in(movie.labels)
    for (a, ca), (b, cb) in zip(found, found[1:]):
        _, i, j = np.intersect1d(a, b, return_indices=True)
        steps += np.hypot(*(cb[j] - ca[i]).T).tolist()
    r = suggest_max_distance(movie.labels[:2], tracked=True)
    assert r.step is not None and r.max_distance == pytest.approx(1.5 * r.step)
    assert r.step <= max(steps) + 1e-9 and "95th percentile" in r.reasoning
    untracked = suggest_max_distance(movie.labels[:1])
    assert untracked.step is None and untracked.max_distance == untracked.diameter
    assert 8 < untracked.diameter < 14          # the simulated radius is 6 pixels


def test_suggested_radius_warns_when_neighbours_are_closer():
    masks = np.zeros((2, 20, 40), np.int32)
    masks[0, 5:10, 5:10], masks[0, 5:10, 12:17] = 1, 2        # neighbours 7 px apart
    masks[1, 5:10, 13:18], masks[1, 5:10, 20:25] = 1, 2        # both moved 8 px
    r = suggest_max_distance(masks, tracked=True)
    assert r.max_distance > r.neighbour_distance and "warning" in r.reasoning


@pytest.mark.parametrize("bad, match", [
    (np.zeros((8, 8), np.int32), r"\(T, Y, X\)"),
    (np.zeros((2, 8, 8), np.float32), "integer"),
    (np.zeros((2, 8, 8), np.int32), "no nucleus"),
])
def test_suggested_radius_rejects_what_is_not_annotated_frames(bad, match):
    with pytest.raises(ValueError, match=match):
        suggest_max_distance(bad)


def test_suggested_radius_needs_shared_labels_when_tracked():
    masks = np.zeros((2, 20, 20), np.int32)
    masks[0, 2:6, 2:6], masks[1, 2:6, 2:6] = 1, 2
    with pytest.raises(ValueError, match="consecutive frames"):
        suggest_max_distance(masks, tracked=True)


def test_tracks_table_in_physical_units():
    movie = synthetic_movie(3, (48, 48), n_nuclei=4, seed=0)
    plain = tracks_table(movie)
    table = tracks_table(movie, pixel_size=0.25, frame_interval=5.0, time_unit="s")
    assert np.allclose(table["x_um"], (plain["x"] * 0.25).round(3))
    assert np.allclose(table["area_um2"], plain["area"] * 0.0625, atol=1e-3)
    assert table["time_s"].tolist() == (plain["frame"] * 5.0).tolist()
    with pytest.raises(ValueError, match="pixel_size must be a positive number"):
        tracks_table(movie, pixel_size=0)


def test_result_layout_is_what_the_challenge_reads(tmp_path):
    import tifffile

    from dlbio_teach.movies import read_ctc, write_ctc, write_ctc_result
    movie = synthetic_movie(3, (48, 48), n_nuclei=4, seed=0)
    data = write_ctc(tmp_path / "set", movie)
    result = link_lap(movie.labels, max_distance=12)
    out = write_ctc_result(data, result)
    assert out == data / "01_RES"
    assert sorted(p.name for p in out.iterdir()) == ["mask000.tif", "mask001.tif", "mask002.tif",
                                                     "res_track.txt"]
    assert np.array_equal(tifffile.imread(out / "mask001.tif"), result.labels[1])
    assert np.array_equal(np.loadtxt(out / "res_track.txt", dtype=np.int64, ndmin=2),
                          result.tracks)
    assert np.array_equal(read_ctc(data).labels, movie.labels), "the truth is left as it was"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ctc_result(data, result)
    bad = Movie(result.labels, result.tracks[:1])               # a table that misses tracks
    with pytest.raises(ValueError):
        write_ctc_result(data, bad, overwrite=True)
    assert sorted(p.name for p in data.iterdir()) == ["01", "01_GT", "01_RES"], \
        "nothing half-written is left beside the result"
