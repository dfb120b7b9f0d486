"""read_ctc on folders laid out as the Cell Tracking Challenge's downloads are, built by
hand here (not by the course's own writer), with the answer computed by hand.

A training sequence of the Challenge unpacks as

    01/t000.tif ...                  the frames (t0000.tif ... for movies of 1000 frames
                                     or more), 8- or 16-bit
    01_GT/TRA/man_track000.tif ...   16-bit masks of every frame, one label per track
    01_GT/TRA/man_track.txt          one line 'L B E P' per track
    01_GT/SEG/man_seg013.tif ...     full outlines of a few frames only, numbered on
                                     their own (not by track)
    01_ST/SEG/man_seg000.tif ...     the silver truth's outlines, in some data sets

A nucleus missed for a frame is a track that ends, and a new track whose parent it is,
starting two frames after its end: the one parent with one child that is not a division.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from dlbio_teach.movies import divisions, read_ctc
from dlbio_teach.tracking import score_tracking, tracking_graph, tracks_table

SHAPE = (24, 40)
GAP_BEFORE, GAP_AFTER, WHOLE, MOTHER, DAUGHTER_A, DAUGHTER_B = 7, 300, 40000, 12, 13, 14


def truth_tracks(n_frames: int) -> np.ndarray:
    """The track table, computed by hand: a nucleus missed in frame 2 (tracks 7 then 300),
    one present throughout with a label above 32767 (16-bit unsigned only), and a mother
    dividing after frame 1 into 13 and 14."""
    last = n_frames - 1
    return np.array([[GAP_BEFORE, 0, 1, 0],
                     [GAP_AFTER, 3, last, GAP_BEFORE],      # B = the parent's E + 2: the gap
                     [WHOLE, 0, last, 0],
                     [MOTHER, 0, 1, 0],
                     [DAUGHTER_A, 2, last, MOTHER],
                     [DAUGHTER_B, 2, last, MOTHER]], np.int64)


def truth_masks(n_frames: int) -> np.ndarray:
    """16-bit masks, each nucleus a 4 x 4 square that drifts one pixel right per frame."""
    masks = np.zeros((n_frames, *SHAPE), np.uint16)
    for label, begin, end, _ in truth_tracks(n_frames).tolist():
        y, x = {GAP_BEFORE: (2, 2), GAP_AFTER: (2, 2), WHOLE: (18, 2), MOTHER: (10, 12),
                DAUGHTER_A: (7, 12), DAUGHTER_B: (13, 12)}[label]
        for t in range(begin, end + 1):
            shift = t % 20
            masks[t, y:y + 4, x + shift:x + shift + 4] = label
    return masks


def truth_frames(n_frames: int) -> np.ndarray:
    """16-bit frames as a camera gives them: the nuclei bright over a dim background."""
    rng = np.random.default_rng(0)
    frames = rng.integers(90, 110, (n_frames, *SHAPE)).astype(np.uint16)
    frames[truth_masks(n_frames) > 0] += 3000
    return frames


def challenge_download(root, n_frames: int, digits: int, *, sequence: str = "01"):
    """Write a training sequence as the Challenge ships it, file by file."""
    masks, frames = truth_masks(n_frames), truth_frames(n_frames)
    raw, tra, seg = (root / sequence, root / f"{sequence}_GT" / "TRA",
                     root / f"{sequence}_GT" / "SEG")
    silver = root / f"{sequence}_ST" / "SEG"
    for folder in (raw, tra, seg, silver):
        folder.mkdir(parents=True)
    for t in range(n_frames):
        tifffile.imwrite(raw / f"t{t:0{digits}d}.tif", frames[t])
        tifffile.imwrite(tra / f"man_track{t:0{digits}d}.tif", masks[t])
        # The silver truth: every frame, numbered 1, 2, ... whatever the track.
        tifffile.imwrite(silver / f"man_seg{t:0{digits}d}.tif", _renumbered(masks[t]))
    # The gold segmentation truth: two frames only, whole outlines numbered 1, 2, ...
    for t in (1, 3):
        outlines = _renumbered(masks[t])
        tifffile.imwrite(seg / f"man_seg{t:0{digits}d}.tif", np.maximum(
            outlines, np.pad(outlines, 1)[2:, 1:-1]))       # one row larger than the marker
    lines = [" ".join(map(str, row)) for row in truth_tracks(n_frames).tolist()]
    (tra / "man_track.txt").write_text("\n".join(lines) + "\n")
    return root


def _renumbered(frame: np.ndarray) -> np.ndarray:
    values = np.unique(frame)
    return np.searchsorted(values, frame).astype(np.uint16)


# 5 frames: t000.tif ... t004.tif; 1001 frames: t0000.tif ... t1000.tif, as in the long
# movies of the Challenge (1000 frames or more).
@pytest.mark.parametrize("n_frames, digits", [(5, 3), (1001, 4)])
def test_read_ctc_reads_a_download_as_the_challenge_lays_it_out(tmp_path, n_frames, digits):
    folder = challenge_download(tmp_path / "Fluo-N2DH-XYZ", n_frames, digits)
    if digits == 4:
        assert (folder / "01" / "t1000.tif").is_file()
        assert (folder / "01_GT" / "TRA" / "man_track0000.tif").is_file()
    movie = read_ctc(folder)
    # The frames, in order, with their 16-bit values.
    assert movie.images.shape == (n_frames, *SHAPE) and movie.images.dtype == np.float32
    assert np.array_equal(movie.images, truth_frames(n_frames).astype(np.float32))
    # The tracking masks, not the segmentation truth beside them: labels above 32767 kept.
    assert np.array_equal(movie.labels, truth_masks(n_frames).astype(np.int32))
    assert movie.labels.max() == WHOLE and 1 not in movie.labels    # not SEG's 1, 2, ...
    # The table as written, and the gap read as a gap, not as a division.
    assert np.array_equal(movie.tracks, truth_tracks(n_frames))
    assert divisions(movie.tracks) == {MOTHER: [DAUGHTER_A, DAUGHTER_B]}
    assert movie.info == {"folder": str(folder), "sequence": "01"}


def test_the_lineage_of_a_download_bridges_the_missed_frame(tmp_path):
    movie = read_ctc(challenge_download(tmp_path / "download", 5, 3))
    graph = tracking_graph(movie).graph
    node = {(attrs["t"], attrs["segmentation_id"]): n for n, attrs in graph.nodes(data=True)}
    # Nodes: 7 in frames 0-1, 300 in 3-4, 40000 in 0-4, 12 in 0-1, 13 and 14 in 2-4.
    assert len(node) == 2 + 2 + 5 + 2 + 3 + 3
    assert (2, GAP_BEFORE) not in node and (2, GAP_AFTER) not in node     # the missed frame
    expected = {((0, 7), (1, 7)), ((1, 7), (3, 300)), ((3, 300), (4, 300)),
                ((1, 12), (2, 13)), ((1, 12), (2, 14)), ((0, 12), (1, 12))}
    expected |= {((t, 40000), (t + 1, 40000)) for t in range(4)}
    expected |= {((t, d), (t + 1, d)) for d in (13, 14) for t in (2, 3)}
    edges = {(a, b) for a, b in graph.edges}
    assert edges == {(node[a], node[b]) for a, b in expected}
    gap = [(a, b) for a, b in graph.edges if graph.nodes[b]["t"] - graph.nodes[a]["t"] == 2]
    assert [(graph.nodes[a]["segmentation_id"], graph.nodes[b]["segmentation_id"])
            for a, b in gap] == [(GAP_BEFORE, GAP_AFTER)]
    # One row per nucleus and frame; the track after the gap names the one before.
    table = tracks_table(movie)
    assert len(table) == len(node)
    assert set(table.loc[table.track == GAP_AFTER, "parent"]) == {GAP_BEFORE}
    assert table.loc[table.track == GAP_AFTER, "frame"].tolist() == [3, 4]


def test_a_download_scored_against_itself_is_perfect(tmp_path):
    movie = read_ctc(challenge_download(tmp_path / "download", 5, 3))
    scores = score_tracking(movie, movie)
    assert scores.TRA == scores.DET == scores.LNK == 1.0
    assert scores.division_f1 == 1.0


def test_the_masks_alone_and_a_second_sequence(tmp_path):
    folder = challenge_download(tmp_path / "download", 5, 3, sequence="02")
    with pytest.raises(FileNotFoundError, match="sequence='01'"):
        read_ctc(folder)
    movie = read_ctc(folder, sequence="02", images=False)
    assert movie.images is None and movie.labels.shape == (5, *SHAPE)


def test_frames_and_masks_of_different_lengths_are_named(tmp_path):
    folder = challenge_download(tmp_path / "download", 5, 3)
    (folder / "01" / "t004.tif").unlink()
    with pytest.raises(ValueError, match="has 4 frames .* 5; they must be the same movie"):
        read_ctc(folder)

