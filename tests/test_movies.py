"""The synthetic time-lapse and the Cell Tracking Challenge layout: truth that holds,
errors that say what is wrong, nothing written half."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from dlbio_teach.movies import Movie, check_tracks, divisions, read_ctc, synthetic_movie, write_ctc


def _division_movie() -> Movie:
    """Three frames: a mother in frame 0, her two daughters in frames 1 and 2."""
    labels = np.zeros((3, 20, 24), np.int32)
    labels[0, 8:12, 10:14] = 1
    labels[1, 8:12, 5:9] = 2
    labels[1, 8:12, 15:19] = 3
    labels[2, 8:12, 4:8] = 2
    labels[2, 8:12, 16:20] = 3
    return Movie(labels, np.array([[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]]))


def test_synthetic_movie_is_reproducible_and_consistent():
    a = synthetic_movie(12, (64, 64), 6, division_rate=0.1, seed=3)
    b = synthetic_movie(12, (64, 64), 6, division_rate=0.1, seed=3)
    c = synthetic_movie(12, (64, 64), 6, division_rate=0.1, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.tracks, b.tracks)
    assert not np.array_equal(a.labels, c.labels)
    check_tracks(a.labels, a.tracks)
    assert divisions(a.tracks), "a division rate of 0.1 over 12 frames must give divisions"
    for mother, daughters in divisions(a.tracks).items():
        end = a.tracks[a.tracks[:, 0] == mother][0, 2]
        begins = a.tracks[np.isin(a.tracks[:, 0], daughters), 1]
        assert len(daughters) == 2 and np.all(begins == end + 1)


def test_frame_interval_samples_the_same_nuclei():
    every = synthetic_movie(9, (64, 64), 5, speed=0.4, seed=2)
    third = synthetic_movie(3, (64, 64), 5, speed=0.4, seed=2, frame_interval=4)
    assert np.array_equal(third.labels > 0, every.labels[::4] > 0)
    assert np.allclose(third.images, every.images[::4])


def test_nuclei_enter_leave_fade_and_are_noisy():
    movie = synthetic_movie(30, (96, 96), 10, drift=(0.0, 1.0), bleaching=0.02,
                            division_rate=0.0, seed=0)
    starts, ends = movie.tracks[:, 1], movie.tracks[:, 2]
    assert (starts > 0).any() and (ends < movie.n_frames - 1).any(), "nuclei enter and leave"
    inside = [movie.images[t][movie.labels[t] > 0].mean() for t in (0, movie.n_frames - 1)]
    assert inside[1] < 0.8 * inside[0], "photobleaching dims the nuclei"
    background = movie.images[0][movie.labels[0] == 0]
    assert background.std() > 0.01, "camera noise"


def test_ctc_round_trip(tmp_path):
    movie = synthetic_movie(5, (48, 48), 4, division_rate=0.2, seed=1)
    folder = write_ctc(tmp_path / "sim", movie)
    tra = folder / "01_GT" / "TRA"
    assert (tra / "man_track004.tif").is_file() and (folder / "01" / "t000.tif").is_file()
    table = np.loadtxt(tra / "man_track.txt", dtype=int, ndmin=2)
    assert np.array_equal(table, movie.tracks)
    again = read_ctc(folder)
    assert np.array_equal(again.labels, movie.labels) and np.allclose(again.images, movie.images)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ctc(folder, movie)


def test_missing_frame_is_named(tmp_path):
    folder = write_ctc(tmp_path / "sim", _division_movie())
    (folder / "01_GT" / "TRA" / "man_track001.tif").unlink()
    with pytest.raises(ValueError, match=r"frame\(s\) \[1\] are missing"):
        read_ctc(folder)


def test_track_with_a_gap_is_refused(tmp_path):
    movie = _division_movie()
    labels = movie.labels.copy()
    labels[1][labels[1] == 2] = 0               # track 2 in frames 2 only, table says 1..2
    with pytest.raises(ValueError, match="label 2 is in frames 2..2"):
        check_tracks(labels, movie.tracks)
    with pytest.raises(ValueError, match="label 2"):
        write_ctc(tmp_path / "bad", Movie(labels, movie.tracks))
    assert list(tmp_path.iterdir()) == [], "nothing written half"


def test_unknown_parent_and_late_parent_are_refused(tmp_path):
    movie = _division_movie()
    with pytest.raises(ValueError, match="names parent 9, which is not a track"):
        check_tracks(movie.labels, [[1, 0, 0, 0], [2, 1, 2, 9], [3, 1, 2, 1]])
    with pytest.raises(ValueError, match="a parent must end before"):
        check_tracks(movie.labels, [[1, 0, 0, 0], [2, 1, 2, 3], [3, 1, 2, 1]])
    folder = write_ctc(tmp_path / "sim", movie)
    (folder / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 0 0\n2 1 2 7\n3 1 2 1\n")
    with pytest.raises(ValueError, match="names parent 7"):
        read_ctc(folder)


def test_labels_missing_from_the_table_are_named():
    movie = _division_movie()
    with pytest.raises(ValueError, match=r"labels \[3\] are in the masks"):
        check_tracks(movie.labels, movie.tracks[:2])


def test_a_failed_write_leaves_the_old_folder_and_no_partial(tmp_path, monkeypatch):
    movie = _division_movie()
    folder = write_ctc(tmp_path / "sim", movie)
    calls, original = [], tifffile.imwrite

    def failing(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(path, data, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", failing)
    with pytest.raises(OSError, match="disk full"):
        write_ctc(folder, movie, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]
    monkeypatch.undo()
    assert np.array_equal(read_ctc(folder).labels, movie.labels)
