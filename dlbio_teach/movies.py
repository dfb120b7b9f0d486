"""Time-lapse movies with known lineage, and the Cell Tracking Challenge (CTC) layout.

A tracking result, like a ground truth, is a *label movie* and a *track table*. In the label
movie ``labels[t]`` each nucleus carries the number of its track, the same number in every
frame; the track table has one row ``L B E P`` per track: its label, its first and last
frame, and the label of its parent track (0 for none). A division ends the mother's track
and starts two daughter tracks in the next frame, each with ``P`` = the mother. This is the
layout of the Cell Tracking Challenge (Ulman et al. 2017; Maška et al. 2023):
``TRA/man_trackTTT.tif`` masks and ``TRA/man_track.txt``.

:func:`synthetic_movie` simulates nuclei that drift and wander, touch, divide, enter and
leave the field, fade (photobleaching) and are imaged with Poisson-Gaussian noise, and
returns the exact truth. :func:`write_ctc` and :func:`read_ctc` write and read the CTC
layout, so the same loader reads a real CTC data set; :func:`check_tracks` says what is
wrong with a label movie and its track table.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .synthetic import add_poisson_gaussian_noise

__all__ = ["Movie", "synthetic_movie", "check_tracks", "write_ctc", "write_ctc_result", "read_ctc",
           "divisions"]


@dataclass(frozen=True)
class Movie:
    """A label movie with its track table, and optionally the images.

    Attributes
    ----------
    labels : ndarray of int32, ``(T, Y, X)``
        Each nucleus carries its track's label in every frame of the track; 0 is background.
    tracks : ndarray of int64, ``(K, 4)``
        One row ``L B E P`` per track: label, first frame, last frame, parent label (0: none).
    images : ndarray of float32 ``(T, Y, X)``, optional
        The frames as the microscope saw them (``None`` for a tracking result).
    info : dict
        How the movie was made (simulation parameters, or the folder it was read from).
    """

    labels: np.ndarray
    tracks: np.ndarray
    images: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.labels.shape[0])

    @property
    def n_tracks(self) -> int:
        """Number of tracks (rows of the track table)."""
        return int(len(self.tracks))


def divisions(tracks) -> dict:
    """The divisions of a track table: ``{mother label: [daughter labels]}``.

    A parent with a single child is not a division (the CTC layout uses it to bridge a
    gap in a track), so only parents with two or more children are returned.

    Examples
    --------
    >>> divisions(np.array([[1, 0, 2, 0], [2, 3, 5, 1], [3, 3, 5, 1], [4, 0, 5, 0]]))
    {1: [2, 3]}
    """
    tracks = np.asarray(tracks, dtype=np.int64).reshape(-1, 4)
    children: dict = {}
    for label, _, _, parent in tracks:
        if parent:
            children.setdefault(int(parent), []).append(int(label))
    return {p: sorted(c) for p, c in sorted(children.items()) if len(c) >= 2}


# --- simulation --------------------------------------------------------------------------

def _draw(cells, shape, order):
    """Render the cells (ellipses with a dimmer rim) into an image and a label image of uids.

    Pixels go to the first cell drawn (``order``), so touching nuclei do not overlap.
    """
    image = np.zeros(shape, np.float32)
    uid_map = np.zeros(shape, np.int64)
    for i in order:
        cy, cx, a, b, theta, bright = (cells[k][i] for k in ("y", "x", "a", "b", "theta",
                                                                 "bright"))
        r = int(np.ceil(max(a, b))) + 1
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 2, shape[0])
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 2, shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / a
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / b
        rr = u ** 2 + v ** 2
        inside = (rr <= 1.0) & (uid_map[y0:y1, x0:x1] == 0)
        uid_map[y0:y1, x0:x1][inside] = cells["uid"][i]
        image[y0:y1, x0:x1][inside] = bright * (1.0 - 0.3 * rr[inside])
    return image, uid_map


def synthetic_movie(n_frames: int = 24, shape=(128, 128), n_nuclei: int = 12, *,
                    radius: float = 6.0, speed: float = 0.25, drift=(0.0, 0.3),
                    division_rate: float = 0.02, frame_interval: int = 1,
                    bleaching: float = 0.01, photons: float = 30.0, read_noise: float = 1.0,
                    seed: int = 0) -> Movie:
    """Simulate a 2D time-lapse of fluorescent nuclei, with its exact tracks and lineage.

    The nuclei live on a time grid of *steps*; a frame is taken every ``frame_interval``
    steps, so the same ``seed`` with ``frame_interval=2`` and ``(n - 1) // 2 + 1`` frames
    gives every second frame of the movie of ``n`` frames with ``frame_interval=1`` (same
    nuclei, same motion, same divisions, same span of time): the nuclei move twice as far
    between frames.

    At each step a nucleus drifts by ``drift`` and wanders by a random step of standard
    deviation ``speed * radius`` along each axis; nuclei closer than about 1.7 radii push
    each other apart (they touch but hardly overlap). A nucleus older than 8 steps divides
    with probability ``division_rate`` per step: its track ends and two smaller daughters
    start a little apart, each with the mother as parent. Nuclei are simulated beyond the
    field, so they enter and leave it. The brightness falls as ``exp(-bleaching * step)``
    (photobleaching), and each frame gets Poisson-Gaussian camera noise.

    Parameters
    ----------
    n_frames : int
        Frames in the movie (at least 2).
    shape : (int, int)
        Frame shape ``(Y, X)``.
    n_nuclei : int
        Nuclei in the field at the start (about; more are simulated around it).
    radius : float
        Typical nucleus radius, in pixels (semi-axes between 0.8 and 1.2 times it).
    speed : float
        Random motion per step, relative to ``radius``.
    drift : (float, float)
        Drift per step along ``(Y, X)``, in pixels.
    division_rate : float
        Probability per step that a nucleus (older than 8 steps) divides.
    frame_interval : int
        Steps between two frames.
    bleaching : float
        Fraction of brightness lost per step (the exponent's rate).
    photons : float
        Expected photons for intensity 1 (lower: noisier), as in
        :func:`~dlbio_teach.synthetic.add_poisson_gaussian_noise`.
    read_noise : float
        Gaussian read noise, in photons.
    seed : int
        Random seed: the same seed and parameters give the same movie.

    Returns
    -------
    Movie
        ``images`` (noisy, not normalised), ``labels`` and ``tracks`` in the CTC layout.

    Examples
    --------
    >>> movie = synthetic_movie(5, (64, 64), 4, division_rate=0.2, seed=1)
    >>> movie.images.shape, movie.labels.dtype.name, movie.tracks.shape[1]
    ((5, 64, 64), 'int32', 4)
    >>> check_tracks(movie.labels, movie.tracks)     # consistent: no error
    >>> every_second = synthetic_movie(3, (64, 64), 4, division_rate=0.2, seed=1,
    ...                                frame_interval=2)
    >>> bool(np.array_equal(every_second.labels > 0, movie.labels[::2] > 0))
    True
    """
    _check_movie(n_frames, shape, frame_interval, radius, speed, division_rate, bleaching)
    rng = np.random.default_rng(seed)
    frame_interval = int(frame_interval)
    n_steps = (int(n_frames) - 1) * frame_interval + 1
    drift = np.asarray(drift, np.float64)
    low, high = _simulated_area(shape, radius, drift, n_steps)
    cells = _first_nuclei(rng, n_nuclei, shape, low, high, radius)
    next_uid = len(cells["uid"]) + 1
    parent_of: dict = {}
    present: dict = {}          # uid -> frames where it is visible
    labels_by_frame, images = [], []
    for step in range(n_steps):
        if step:
            cells, next_uid = _divide(cells, rng, radius, division_rate, next_uid, parent_of)
            cells = _move(cells, rng, radius, speed, drift, low, high)
        if step % frame_interval:
            continue
        clean, uid_map, visible = _draw_frame(cells, shape)
        for u in visible:
            present.setdefault(u, []).append(step // frame_interval)
        labels_by_frame.append(uid_map)
        images.append(_imaged(clean, step, bleaching=bleaching, photons=photons,
                              read_noise=read_noise, seed=seed))
    uid_movie = np.stack(labels_by_frame)
    labels, tracks = _ctc_tracks(uid_movie, present, parent_of)
    info = dict(n_frames=int(n_frames), shape=tuple(shape), n_nuclei=n_nuclei, radius=radius,
                speed=speed, drift=tuple(float(d) for d in drift), division_rate=division_rate,
                frame_interval=frame_interval, bleaching=bleaching, photons=photons,
                read_noise=read_noise, seed=seed)
    return Movie(labels, tracks, np.stack(images).astype(np.float32), info)


def _check_movie(n_frames, shape, frame_interval, radius, speed, division_rate, bleaching):
    """The arguments of :func:`synthetic_movie`, checked before anything is drawn."""
    if int(n_frames) < 2:
        raise ValueError(f"n_frames must be at least 2 to track anything, got {n_frames}.")
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be (Y, X) with both at least 16, got {shape}.")
    if int(frame_interval) != frame_interval or frame_interval < 1:
        raise ValueError(f"frame_interval must be a whole number of steps >= 1, got "
                         f"{frame_interval}.")
    if radius <= 1 or speed < 0 or not 0 <= division_rate < 1 or bleaching < 0:
        raise ValueError(f"need radius > 1, speed >= 0, 0 <= division_rate < 1 and "
                         f"bleaching >= 0; got radius={radius}, speed={speed}, "
                         f"division_rate={division_rate}, bleaching={bleaching}.")


def _simulated_area(shape, radius: float, drift: np.ndarray, n_steps: int) -> tuple:
    """``(low, high)`` corners of the simulated area: the field, a margin, and upstream of
    the drift the distance it carries nuclei over the movie (so that nuclei keep entering)."""
    pad = 3 * radius
    span = n_steps      # the same movie sampled every k steps: the same span
    low = np.array([-pad, -pad]) + np.minimum(0, -drift * span)
    high = np.array(shape, np.float64) + pad + np.maximum(0, -drift * span)
    return low, high


def _first_nuclei(rng, n_nuclei: int, shape, low, high, radius: float) -> dict:
    """The nuclei of the first step, spread over the simulated area as densely as
    ``n_nuclei`` over the field: one array per property, one entry per nucleus."""
    area_ratio = np.prod(high - low) / np.prod(shape)
    n_start = int(round(n_nuclei * area_ratio))
    cells = {"uid": np.arange(1, n_start + 1), "parent": np.zeros(n_start, np.int64),
             "y": rng.uniform(low[0], high[0], n_start), "x": rng.uniform(low[1], high[1], n_start),
             "a": radius * rng.uniform(0.8, 1.2, n_start),
             "b": radius * rng.uniform(0.8, 1.2, n_start),
             "theta": rng.uniform(0, np.pi, n_start), "bright": rng.uniform(0.6, 1.0, n_start),
             "age": rng.integers(0, 40, n_start), "size": np.ones(n_start)}
    cells["a0"], cells["b0"] = cells["a"].copy(), cells["b"].copy()
    return cells


def _divide(cells: dict, rng, radius: float, division_rate: float, next_uid: int,
            parent_of: dict) -> tuple:
    """One step's divisions: the mother's track ends, two daughters start a little apart.

    Returns the nuclei after the step and the next free uid; ``parent_of`` gets each
    daughter's mother."""
    n = len(cells["uid"])
    dividing = (cells["age"] >= 8) & (rng.random(n) < division_rate)
    new = {k: [] for k in cells}
    for i in np.nonzero(dividing)[0]:
        angle = rng.uniform(0, np.pi)
        offset = 0.6 * radius * np.array([np.sin(angle), np.cos(angle)])
        for sign in (1, -1):
            for k in cells:
                new[k].append(cells[k][i])
            new["uid"][-1] = next_uid
            new["parent"][-1] = cells["uid"][i]
            parent_of[next_uid] = int(cells["uid"][i])
            new["y"][-1] = cells["y"][i] + sign * offset[0]
            new["x"][-1] = cells["x"][i] + sign * offset[1]
            new["age"][-1] = 0
            new["size"][-1] = 0.75
            new["theta"][-1] = rng.uniform(0, np.pi)
            next_uid += 1
    keep = ~dividing
    cells = {k: np.concatenate([v[keep], np.asarray(new[k], v.dtype)])
             for k, v in cells.items()}
    return cells, next_uid


def _move(cells: dict, rng, radius: float, speed: float, drift: np.ndarray, low,
          high) -> dict:
    """One step's motion: drift plus a random walk, then touching nuclei pushed apart;
    the nuclei age and grow, and those that leave the simulated area are dropped."""
    n = len(cells["uid"])
    cells["y"] = cells["y"] + drift[0] + speed * radius * rng.standard_normal(n)
    cells["x"] = cells["x"] + drift[1] + speed * radius * rng.standard_normal(n)
    pos = np.stack([cells["y"], cells["x"]], axis=1)
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt((diff ** 2).sum(-1)) + np.eye(n) * 1e9
    push = np.clip(1.7 * radius - dist, 0, None) / 2
    pos = pos + (diff / dist[..., None] * push[..., None]).sum(axis=1)
    cells["y"], cells["x"] = pos[:, 0], pos[:, 1]
    cells["age"] = cells["age"] + 1
    cells["size"] = np.minimum(1.0, cells["size"] + 0.02)
    cells["a"], cells["b"] = cells["a0"] * cells["size"], cells["b0"] * cells["size"]
    inside = ((cells["y"] > low[0]) & (cells["y"] < high[0])
              & (cells["x"] > low[1]) & (cells["x"] < high[1]))
    return {k: v[inside] for k, v in cells.items()}


def _draw_frame(cells: dict, shape) -> tuple:
    """The clean frame, its map of uids and the uids annotated in it: a nucleus is
    annotated when at least a third of it lies in the field."""
    clean, uid_map = _draw(cells, shape, np.argsort(cells["uid"]))
    uids, counts = np.unique(uid_map[uid_map > 0], return_counts=True)
    full = {u: np.pi * a * b for u, a, b in zip(cells["uid"], cells["a"], cells["b"])}
    visible = [int(u) for u, c in zip(uids, counts) if c >= full[u] / 3]
    uid_map[~np.isin(uid_map, visible)] = 0
    return clean, uid_map, visible


def _imaged(clean: np.ndarray, step: int, *, bleaching: float, photons: float,
            read_noise: float, seed: int) -> np.ndarray:
    """The frame as the microscope sees it at ``step``: blurred by the optics, faded by
    photobleaching, over a dim background, with Poisson-Gaussian camera noise."""
    clean = ndi.gaussian_filter(clean, 1.0) * np.exp(-bleaching * step) + 0.05
    return add_poisson_gaussian_noise(clean, photons, read_noise=read_noise,
                                      seed=int(seed) * 100_003 + step)


def _ctc_tracks(uid_movie, present: dict, parent_of: dict):
    """Labels and the ``L B E P`` table from the frames where each simulated nucleus shows.

    A nucleus seen in frames with a gap becomes one track per stretch, each later stretch
    with the earlier as parent (the CTC convention); a daughter's parent is the mother's
    last stretch, when the mother was seen at all.
    """
    stretches = []                       # (first frame, uid, frames)
    for uid, frames in present.items():
        frames = np.asarray(frames)
        for part in np.split(frames, np.nonzero(np.diff(frames) > 1)[0] + 1):
            stretches.append((int(part[0]), uid, part))
    stretches.sort(key=lambda s: (s[0], s[1]))
    labels = np.zeros(uid_movie.shape, np.int32)
    last_label: dict = {}
    rows = []
    for label, (begin, uid, frames) in enumerate(stretches, start=1):
        if uid in last_label:
            parent = last_label[uid]
        else:
            parent = last_label.get(parent_of.get(uid, 0), 0)
        for t in frames:
            labels[t][uid_movie[t] == uid] = label
        rows.append((label, begin, int(frames[-1]), parent))
        last_label[uid] = label
    return labels, np.asarray(rows, np.int64).reshape(-1, 4)


# --- checks and the CTC layout ------------------------------------------------------------

def check_tracks(labels, tracks) -> None:
    """Raise ``ValueError`` saying what is wrong when a label movie and its track table disagree.

    The rules of the CTC layout: every label in the movie has one row ``L B E P``; the
    label is present in *every* frame from ``B`` to ``E`` and in no other (a track with a
    gap is two tracks, the second with the first as parent); a parent is a track of the
    table that ends before its child begins.

    Examples
    --------
    >>> labels = np.zeros((3, 8, 8), np.int32); labels[:, 2:4, 2:4] = 1
    >>> check_tracks(labels, [[1, 0, 2, 0]])
    >>> check_tracks(labels, [[1, 0, 2, 5]])
    Traceback (most recent call last):
    ...
    ValueError: track 1 names parent 5, which is not a track of the table...
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer movie (T, Y, X), got shape {labels.shape} "
                         f"and dtype {labels.dtype}.")
    tracks = np.asarray(tracks)
    if tracks.size == 0:
        tracks = tracks.reshape(0, 4)
    if tracks.ndim != 2 or tracks.shape[1] != 4:
        raise ValueError(f"the track table must have one row 'L B E P' per track (4 columns), "
                         f"got shape {tracks.shape}.")
    known = {int(r[0]): r for r in tracks}
    if len(known) != len(tracks):
        raise ValueError("the track table lists a label twice; each track has one row.")
    for label, begin, end, parent in tracks.tolist():
        if label <= 0 or not 0 <= begin <= end < len(labels):
            raise ValueError(f"track {label}: needs label > 0 and 0 <= B <= E < {len(labels)} "
                             f"(the number of frames), got B={begin}, E={end}.")
        if parent and parent not in known:
            raise ValueError(f"track {label} names parent {parent}, which is not a track of the "
                             f"table; set P to 0 for a track without parent, or add the parent's "
                             f"row.")
        if parent and known[parent][2] >= begin:
            raise ValueError(f"track {label} begins in frame {begin}, but its parent {parent} "
                             f"ends in frame {known[parent][2]}: a parent must end before its "
                             f"children begin.")
    frames_of: dict = {}
    for t, frame in enumerate(labels):
        for label in np.unique(frame[frame > 0]).tolist():
            frames_of.setdefault(label, []).append(t)
    missing = sorted(set(frames_of) - set(known))
    if missing:
        raise ValueError(f"labels {missing[:10]} are in the masks but not in the track table; "
                         f"add a row 'L B E P' for each.")
    for label, (_, begin, end, _) in sorted(known.items()):
        frames = frames_of.get(label, [])
        if frames != list(range(begin, end + 1)):
            shown = f"frames {frames[0]}..{frames[-1]} ({len(frames)} frames)" if frames else \
                "no frame"
            raise ValueError(f"label {label} is in {shown}, but the track table says frames "
                             f"{begin}..{end}: a track must be present in every frame from B "
                             f"to E. Split a track with a gap into two tracks, the second with "
                             f"the first as parent.")


def write_ctc(folder, movie: Movie, *, sequence: str = "01", overwrite: bool = False) -> Path:
    """Write a movie in the Cell Tracking Challenge layout; return the folder.

    ``folder/<sequence>/tTTT.tif`` holds the images (when the movie has them),
    ``folder/<sequence>_GT/TRA/man_trackTTT.tif`` the label movie and
    ``folder/<sequence>_GT/TRA/man_track.txt`` the track table: the layout of *truth*. A
    tracking result goes to :func:`write_ctc_result` instead. Everything is written to a
    temporary folder beside ``folder`` first and moved into place at the end, so a failure
    never leaves half a data set.

    Examples
    --------
    >>> import tempfile
    >>> movie = synthetic_movie(3, (32, 32), 3, seed=0)
    >>> out = write_ctc(Path(tempfile.mkdtemp()) / "sim", movie)
    >>> sorted(p.name for p in (out / "01_GT" / "TRA").iterdir())
    ['man_track.txt', 'man_track000.tif', 'man_track001.tif', 'man_track002.tif']
    """
    import tifffile

    folder = Path(folder)
    check_tracks(movie.labels, movie.tracks)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists; choose a new folder or pass overwrite=True.")
    digits = max(3, len(str(movie.n_frames - 1)))

    def fill(partial):
        tra = partial / f"{sequence}_GT" / "TRA"
        tra.mkdir(parents=True)
        _write_masks(tra, movie, digits, frames="man_track", table="man_track.txt")
        if movie.images is not None:
            raw = partial / sequence
            raw.mkdir()
            for t, frame in enumerate(movie.images):
                tifffile.imwrite(raw / f"t{t:0{digits}d}.tif", np.asarray(frame, np.float32))

    return _write_folder(folder, fill)


def _write_masks(folder: Path, movie: Movie, digits: int, *, frames: str, table: str) -> None:
    """The label movie as ``<frames>TTT.tif`` (16-bit) and the track table as ``table``."""
    import tifffile

    for t, frame in enumerate(movie.labels):
        tifffile.imwrite(folder / f"{frames}{t:0{digits}d}.tif", frame.astype(np.uint16))
    np.savetxt(folder / table, np.asarray(movie.tracks, np.int64).reshape(-1, 4), fmt="%d")


def _write_folder(target: Path, fill) -> Path:
    """Build a folder with ``fill(partial)`` under a temporary name beside ``target``, then
    move it into place (replacing ``target``): a failure never leaves half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        fill(partial)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def write_ctc_result(folder, movie: Movie, *, sequence: str = "01",
                     overwrite: bool = False) -> Path:
    """Write a tracking *result* in the Cell Tracking Challenge's result layout; return
    ``folder/<sequence>_RES``.

    ``<sequence>_RES/maskTTT.tif`` holds the label movie and ``res_track.txt`` the track
    table: the layout that the Challenge's evaluation tools compare with
    ``<sequence>_GT`` (:func:`write_ctc` writes *truth*, which those tools would take as
    the reference). ``folder`` may be the data set's own folder; only ``<sequence>_RES``
    is written, first under a temporary name and moved into place when complete.

    Examples
    --------
    >>> import tempfile
    >>> movie = synthetic_movie(2, (32, 32), 3, seed=0)
    >>> out = write_ctc_result(Path(tempfile.mkdtemp()), movie)
    >>> out.name, sorted(p.name for p in out.iterdir())
    ('01_RES', ['mask000.tif', 'mask001.tif', 'res_track.txt'])
    """
    target = Path(folder) / f"{sequence}_RES"
    check_tracks(movie.labels, movie.tracks)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; choose another folder or pass overwrite=True.")
    digits = max(3, len(str(movie.n_frames - 1)))
    return _write_folder(target, lambda partial: _write_masks(
        partial, movie, digits, frames="mask", table="res_track.txt"))


_FRAME = re.compile(r"^man_track(\d+)\.tiff?$")


def _numbered(paths, pattern, what: str) -> list:
    found = sorted((int(m.group(1)), p) for p in paths if (m := pattern.match(p.name)))
    numbers = [n for n, _ in found]
    if numbers != list(range(len(numbers))):
        gaps = sorted(set(range(max(numbers) + 1)) - set(numbers)) if numbers else []
        raise ValueError(f"{what}: frames must be numbered 0, 1, 2, ... without gaps; frame(s) "
                         f"{gaps[:10]} are missing (found {len(numbers)} files). Restore the "
                         f"missing files, or renumber the frames and the track table together.")
    return [p for _, p in found]


def read_ctc(folder, *, sequence: str = "01", images: bool = True) -> Movie:
    """Read a movie in the Cell Tracking Challenge layout (see :func:`write_ctc`).

    Reads ``<sequence>_GT/TRA`` (masks and ``man_track.txt``) and, when present and
    ``images`` is true, the frames ``<sequence>/tTTT.tif``; checks them with
    :func:`check_tracks`. A real CTC training set (e.g. ``Fluo-N2DH-SIM+``, unpacked)
    reads the same way.

    Examples
    --------
    >>> import tempfile
    >>> movie = synthetic_movie(3, (32, 32), 3, seed=0)
    >>> again = read_ctc(write_ctc(Path(tempfile.mkdtemp()) / "sim", movie))
    >>> bool(np.array_equal(again.labels, movie.labels)), again.images.shape
    (True, (3, 32, 32))
    """
    import tifffile

    folder = Path(folder)
    tra = folder / f"{sequence}_GT" / "TRA"
    if not tra.is_dir():
        raise FileNotFoundError(f"no folder {tra}: a CTC data set has <sequence>_GT/TRA/ with "
                                f"man_trackTTT.tif and man_track.txt (sequence={sequence!r}).")
    track_file = tra / "man_track.txt"
    if not track_file.is_file():
        raise FileNotFoundError(f"no track table {track_file}; it lists one track per line as "
                                f"'L B E P'.")
    paths = _numbered(tra.iterdir(), _FRAME, str(tra))
    if not paths:
        raise ValueError(f"{tra} holds no man_trackTTT.tif masks.")
    labels = np.stack([tifffile.imread(p) for p in paths]).astype(np.int32)
    table = np.loadtxt(track_file, dtype=np.int64, ndmin=2) if track_file.stat().st_size \
        else np.zeros((0, 4), np.int64)
    check_tracks(labels, table)
    raw = None
    if images and (folder / sequence).is_dir():
        frames = _numbered((folder / sequence).iterdir(), re.compile(r"^t(\d+)\.tiff?$"),
                           str(folder / sequence))
        if len(frames) != len(labels):
            raise ValueError(f"{folder / sequence} has {len(frames)} frames and {tra} "
                             f"{len(labels)}; they must be the same movie.")
        raw = np.stack([tifffile.imread(p) for p in frames]).astype(np.float32)
    return Movie(labels, table.reshape(-1, 4), raw, {"folder": str(folder), "sequence": sequence})
