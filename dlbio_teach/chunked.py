"""Volumes larger than memory: read chunk by chunk, predict with a halo, join the
instances that cross chunk borders, write OME-Zarr.

A volume ``(Z, Y, X)`` that does not fit in memory is kept in chunks (a Zarr store), and
Dask processes it one chunk at a time:

1. :func:`open_volume` opens the store, or an OME-Zarr image, as a lazy ``dask.array``;
2. :func:`predict_chunked` applies a prediction function to each chunk read with a halo of
   context around it (``dask.array.map_overlap``), so that the chunks' results fit
   together without seams;
3. :func:`label_chunked` labels each chunk and joins the instances that cross chunk borders;
4. :func:`write_ome_zarr` writes the image and its labels as OME-Zarr, with the voxel size,
   for napari or Fiji.

No step holds the whole volume: each reads chunks and the result is written chunk by
chunk. The same calls run on one machine (Dask's threads) and on a cluster: create a
``dask.distributed.Client`` first and the computations go to its workers. There each
chunk's task reaches a worker pickled, with its own copy of ``predict_fn`` (and of the
network inside it), and reads and writes the stores itself: a store's path must name
the same folder on every worker (a shared file system, or object storage such as
``s3://``). Local paths are made absolute here, so that a worker started in another
folder still finds them; ``predict_fn`` runs only on the workers.
"""
from __future__ import annotations

import inspect
import warnings
from functools import partial
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import zarr
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["open_volume", "predict_chunked", "label_chunked", "write_ome_zarr"]


# --- Opening a volume --------------------------------------------------------------------

def _absolute(path) -> str:
    """A store's path as every worker must read it: a local path made absolute (a
    worker may run in another folder), a URL (``s3://...``) as it is."""
    path = str(path)
    return path if "://" in path else str(Path(path).expanduser().resolve())


def _level0(group) -> str:
    """Path of the full-resolution array of an OME-Zarr image (NGFF 0.4 or 0.5)."""
    attrs = dict(group.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise ValueError(
            f"The Zarr group at {group.store} is not an OME-Zarr image (no 'multiscales' "
            f"metadata); its arrays are {sorted(group.array_keys())}. Open one of them: "
            "open_volume('path/to/store/name').")
    return multiscales[0]["datasets"][0]["path"]


def _as_volume(x: da.Array, what: str) -> da.Array:
    shape = x.shape
    while x.ndim > 3 and x.shape[0] == 1:        # (T, C, Z, Y, X) with one T and one C
        x = x[0]
    if x.ndim == 3:
        return x
    if x.ndim == 2:
        raise ValueError(
            f"{what} has shape {shape}, one image (Y, X); a volume is (Z, Y, X). For one "
            "image use dlbio_teach.prediction.predict; for a volume of one plane add an "
            "axis: image[None].")
    if x.ndim > 3:
        raise ValueError(
            f"{what} has shape {shape}; a volume is (Z, Y, X) with one channel. Process "
            "one channel at a time: volume[c] for (C, Z, Y, X), volume[..., c] for "
            "(Z, Y, X, C); for a Zarr store, index the array that zarr.open(path) returns.")
    raise ValueError(f"{what} has shape {shape}; a volume is (Z, Y, X).")


def open_volume(path_or_array, *, chunks=None) -> da.Array:
    """A volume ``(Z, Y, X)`` as a lazy Dask array, read chunk by chunk.

    Parameters
    ----------
    path_or_array : str, Path, ndarray or dask.array.Array
        A Zarr array, an OME-Zarr image (its full-resolution level is opened; its labels
        are images too: ``"image.ome.zarr/labels/nuclei"``), or an array already in memory.
        Leading axes of length 1 are dropped, as in an OME-Zarr image stored
        ``(T, C, Z, Y, X)`` with one time point and one channel.
    chunks : tuple of 3 ints, optional
        The chunks Dask processes, ``(z, y, x)`` voxels each. Default: the store's own
        chunks (Dask's automatic chunks for an array in memory). Larger chunks mean fewer,
        larger pieces in memory at once; chunks of the store's size read each stored
        chunk once.

    Returns
    -------
    dask.array.Array of shape ``(Z, Y, X)``, nothing read yet.

    Examples
    --------
    >>> v = open_volume(np.zeros((4, 32, 32), np.float32), chunks=(2, 16, 16))
    >>> v.shape, v.numblocks
    ((4, 32, 32), (2, 2, 2))
    """
    if isinstance(path_or_array, da.Array):
        x, what = path_or_array, "The dask array"
    elif isinstance(path_or_array, np.ndarray):
        x, what = da.from_array(path_or_array, chunks="auto"), "The array"
    else:
        if "://" not in str(path_or_array) and not Path(path_or_array).exists():
            raise FileNotFoundError(f"No Zarr store at {path_or_array}: check the path "
                                    "(a folder such as volume.zarr or image.ome.zarr).")
        node = zarr.open(_absolute(path_or_array), mode="r")
        if not hasattr(node, "shape"):          # a group: an OME-Zarr image
            node = node[_level0(node)]
        x, what = da.from_zarr(node), f"The Zarr array at {path_or_array}"
    x = _as_volume(x, what)
    return x if chunks is None else x.rechunk(tuple(chunks))


# --- Prediction with a halo --------------------------------------------------------------

def _with_halo(x: da.Array, halo) -> tuple[da.Array, tuple[int, int, int]]:
    """``x`` in chunks that can lend each other a halo of ``halo`` voxels, and the halo
    per axis; a last chunk thinner than the halo joins the one before it."""
    depth = (halo,) * 3 if np.ndim(halo) == 0 else tuple(halo)
    if len(depth) != 3 or any(int(d) != d or d < 0 for d in depth):
        raise ValueError(f"halo must be a number of voxels >= 0, or one per axis (Z, Y, X); "
                         f"got {halo!r}.")
    chunks = []
    for axis, d, sizes in zip("ZYX", depth, x.chunks):
        if len(sizes) > 1 and d > min(sizes[:-1]):
            raise ValueError(
                f"The halo along {axis} ({d} voxels) is larger than the chunks there "
                f"({min(sizes[:-1])} voxels): a chunk's halo comes from its neighbours "
                "only. Use larger chunks (open_volume(..., chunks=...)) or a smaller halo.")
        if len(sizes) > 1 and sizes[-1] < d:
            sizes = (*sizes[:-2], sizes[-2] + sizes[-1])
        chunks.append(sizes)
    return x.rechunk(tuple(chunks), method="tasks"), tuple(int(d) for d in depth)


def _predict_block(block, *, predict_fn, dtype, out_channels):
    out = np.asarray(predict_fn(block))
    expected = block.shape if out_channels is None else (out_channels, *block.shape)
    if out.shape != expected:
        raise ValueError(
            f"predict_fn returned shape {out.shape} for a chunk of shape {block.shape}; "
            f"expected {expected}: it must keep the size of what it is given"
            + ("" if out_channels else " (with channels first, pass out_channels=C)") + ".")
    return out.astype(dtype, copy=False)


def predict_chunked(volume, predict_fn, *, halo, dtype=np.float32,
                    out_channels: int | None = None) -> da.Array:
    """Apply ``predict_fn`` to a volume chunk by chunk, each chunk read with a halo.

    Each chunk is handed to ``predict_fn`` with ``halo`` voxels of its neighbours around
    it, and only the chunk's own voxels of the result are kept
    (``dask.array.map_overlap``). With a halo at least the receptive radius of
    ``predict_fn`` (how far its output at a voxel looks: ``truncate * sigma`` for a
    Gaussian filter, the receptive radius of a network), the result equals
    ``predict_fn`` applied to the whole volume, without seams. At the volume's edges no
    halo is added, so ``predict_fn`` sees the same edge as on the whole volume. For a
    U-Net, also choose chunks and halo as multiples of ``2**depth``, so that its pooling
    grid is the whole volume's.

    Parameters
    ----------
    volume : str, Path, ndarray or dask.array.Array
        ``(Z, Y, X)``, anything :func:`open_volume` opens; its chunks are the pieces.
    predict_fn : callable
        ``(z, y, x) float32 array -> (z, y, x) array`` (``(C, z, y, x)`` with
        ``out_channels``), e.g. ``lambda v: predict(model, v)`` for a trained 3D network,
        which runs on the course's device as :func:`~dlbio_teach.prediction.predict`
        does. On a ``dask.distributed`` cluster it is pickled to every worker, with the
        network it holds: a network on a GPU is unpickled on a GPU, so move it to the CPU
        first (``model.cpu()``) unless every worker has one; ``predict`` then runs it on
        each worker's own device (``DLBIO_DEVICE`` there, else its GPU, else its CPU).
    halo : int or tuple of 3 ints
        Voxels of context on each side of a chunk, the same along every axis or one per
        axis ``(Z, Y, X)``; at most the chunk size.
    dtype : numpy dtype
        Of the result.
    out_channels : int, optional
        Channels ``C`` in front of the output, when ``predict_fn`` returns ``(C, z, y, x)``.

    Returns
    -------
    dask.array.Array ``(Z, Y, X)`` or ``(C, Z, Y, X)``, lazy: ``.compute()`` it for a
    volume that fits, or write it to Zarr chunk by chunk (:func:`write_ome_zarr`).

    Examples
    --------
    >>> from functools import partial
    >>> from scipy import ndimage as ndi
    >>> volume = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    >>> smooth = partial(ndi.gaussian_filter, sigma=1.0, mode="constant")  # radius 4
    >>> chunked = predict_chunked(open_volume(volume, chunks=(4, 16, 16)), smooth, halo=4)
    >>> float(np.abs(chunked.compute() - smooth(volume)).max())
    0.0
    """
    x, depth = _with_halo(open_volume(volume).astype(np.float32), halo)
    block_fn = partial(_predict_block, predict_fn=predict_fn, dtype=np.dtype(dtype),
                       out_channels=out_channels)
    # boundary="none": a chunk on the volume's edge gets no halo on that side, so
    # predict_fn sees the real edge and pads it as it pads a whole volume (a network's
    # zero-padded convolutions, the U-Net's reflect padding to a multiple of 2**depth).
    # boundary="reflect" would hand it a mirrored border instead of its own padding: the
    # same only for a function that itself mirrors exactly as Dask does (a Gaussian filter
    # with mode="reflect"), different at the edges for a network.
    # meta: the result's type, given, so that Dask does not call predict_fn on an empty
    # chunk here to find it out; the network then runs only where the chunks are.
    if out_channels is None:
        return da.map_overlap(block_fn, x, depth=depth, boundary="none", trim=True,
                              dtype=dtype, meta=np.empty((0, 0, 0), dtype))
    # A channel axis in front of the output: map_overlap's three steps, written out.
    grown = da.overlap.overlap(x, depth=dict(enumerate(depth)), boundary="none")
    out = grown.map_blocks(block_fn, new_axis=0, chunks=((out_channels,), *grown.chunks),
                           dtype=dtype, meta=np.empty((0, 0, 0, 0), dtype))
    return da.overlap.trim_internal(out, {0: 0, 1: depth[0], 2: depth[1], 3: depth[2]},
                                    boundary="none")


# --- Instances across chunk borders ------------------------------------------------------

def _label_block(foreground: np.ndarray) -> np.ndarray:
    return ndi.label(foreground)[0].astype(np.int32)


def _count_block(labels: np.ndarray) -> np.ndarray:
    return np.full((1, 1, 1), labels.max(initial=0), np.int64)


def _regular(x: da.Array) -> da.Array:
    """Chunks of the first chunk's size (the last one smaller), as a Zarr store has them."""
    sizes = tuple(c[0] for c in x.chunks)
    regular = all(set(c[:-1]) <= {s} and c[-1] <= s for c, s in zip(x.chunks, sizes))
    return x if regular else x.rechunk(sizes, method="tasks")


def _keep(x: da.Array, store, name: str, *alongside: da.Array):
    """Compute ``x`` chunk by chunk and keep it: in the Zarr array ``store/name``, or in
    memory without a store. The small arrays ``alongside``, computed from ``x``, come
    with it: each chunk of ``x`` is computed once for all."""
    if store is None:
        x, *alongside = dask.persist(x, *alongside)
        return x, dask.compute(*alongside)
    x = _regular(x)       # each of x's chunks is then written to its own stored chunk
    target = zarr.open(_absolute(Path(store) / name), mode="w", shape=x.shape,
                       chunks=x.chunksize, dtype=x.dtype)
    written = da.store(x, target, lock=False, compute=False)
    _, *alongside = dask.compute(written, *alongside)
    return da.from_zarr(target), tuple(alongside)


def _face_pairs(face: np.ndarray, axis: int, below: int, above: int) -> np.ndarray:
    """Pairs (label below, label above) of voxels facing each other across a chunk face,
    both in the foreground, in the numbering of the whole volume."""
    lower, upper = np.moveaxis(face, axis, 0).astype(np.int64)
    both = (lower > 0) & (upper > 0)
    pairs = np.stack([lower[both] + below, upper[both] + above], axis=1)
    return np.unique(pairs, axis=0)


def _touching_pairs(local: da.Array, offsets: np.ndarray) -> np.ndarray:
    """Pass 2: the label pairs that touch across every face between two chunks."""
    starts = [np.cumsum((0, *sizes)) for sizes in local.chunks]
    tasks = []
    for index in np.ndindex(*local.numblocks):
        box = [slice(s[i], s[i + 1]) for s, i in zip(starts, index)]
        for axis in range(3):
            if index[axis] + 1 == local.numblocks[axis]:
                continue
            border = starts[axis][index[axis] + 1]
            face = list(box)
            face[axis] = slice(border - 1, border + 1)      # last plane below, first above
            above = list(index)
            above[axis] += 1
            tasks.append(dask.delayed(_face_pairs)(local[tuple(face)], axis,
                                                   offsets[index], offsets[tuple(above)]))
    return np.concatenate([np.zeros((0, 2), np.int64), *dask.compute(*tasks)])


def _join(pairs: np.ndarray, n_labels: int) -> np.ndarray:
    """New label of each chunk label: touching labels are joined (union-find: the
    connected components of the graph of touching pairs), and the instances numbered
    1, 2, ... in the order of their first chunk label; 0 stays background."""
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(n_labels + 1, n_labels + 1))
    return connected_components(graph, directed=False)[1].astype(np.int32)


def _relabel_block(local: np.ndarray, table: dict, block_id=None) -> np.ndarray:
    numbers = np.where(local > 0, local.astype(np.int64) + table["offsets"][block_id], 0)
    return table["lut"][numbers]


def _connected(foreground: da.Array, store, name: str) -> da.Array:
    """Connected components (faces touching) of a chunked foreground: equal to
    ``scipy.ndimage.label`` of the whole volume, up to the numbering."""
    # Pass 1: each chunk labelled alone, 1, 2, ... n_k in chunk k.
    local = _regular(foreground).map_blocks(_label_block, dtype=np.int32)
    counts = local.map_blocks(_count_block, chunks=(1, 1, 1), dtype=np.int64)
    local, (counts,) = _keep(local, store, "chunk_labels", counts)
    # Chunk k's labels become offset_k + 1 .. offset_k + n_k: unique in the volume.
    offsets = (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)
    # Pass 2: the pairs that touch across chunk faces, joined.
    lut = _join(_touching_pairs(local, offsets), int(counts.sum()))
    # Pass 3: each chunk renumbered.
    table = dask.delayed({"offsets": offsets, "lut": lut}, pure=True)
    joined = local.map_blocks(_relabel_block, table, dtype=np.int32,
                              meta=np.zeros((0, 0, 0), np.int32))
    return _keep(joined, store, name)[0]


def _drop_small(labels: da.Array, min_size: int) -> da.Array:
    """Labels numbered 1..n with those of fewer than ``min_size`` voxels (summed over the
    chunks) set to 0, the others renumbered 1, 2, ..."""
    # One pass over the chunks: each chunk's counts, padded to the longest, summed.
    counts = dask.compute(*[dask.delayed(np.bincount)(block.ravel())
                            for block in labels.to_delayed().ravel()])
    sizes = np.zeros(max(len(c) for c in counts), np.int64)
    for c in counts:
        sizes[:len(c)] += c
    n = len(sizes) - 1
    keep = sizes >= min_size
    keep[0] = False
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    return labels.map_blocks(lambda block: lut[block], dtype=np.int32)


def _grow_block(values: np.ndarray, seeds: np.ndarray, *, threshold: float) -> np.ndarray:
    from skimage.segmentation import watershed

    return watershed(-values, seeds, mask=values > threshold).astype(np.int32)


def label_chunked(volume_map, *, threshold: float | None = None,
                  seed_threshold: float | None = None, halo=None, store=None,
                  min_seed_size: int = 0) -> da.Array:
    """Instance labels of a chunked volume, joined across chunk borders.

    Without ``seed_threshold``: the connected regions (voxels touching by a face) of the
    foreground ``volume_map > threshold`` (or of a boolean ``volume_map``). Each chunk is
    labelled alone; the labels facing each other across a chunk face are joined
    (union-find over the touching pairs); the instances are numbered 1, 2, ... The result
    equals ``scipy.ndimage.label`` of the whole volume, up to the numbering.

    With ``seed_threshold``, for touching nuclei: the seeds, connected regions of
    ``volume_map > seed_threshold`` (e.g. a predicted distance to the nucleus edge), are
    labelled as above, across chunks; then each chunk, read with ``halo`` voxels of
    context, grows them by a watershed on ``volume_map`` over ``volume_map > threshold``.
    Every seed has one number in the whole volume, so its parts in different chunks stay
    one instance, and two touching nuclei stay two. With a halo at least the diameter of
    the largest nucleus, the result equals the same watershed on the whole volume.

    Parameters
    ----------
    volume_map : str, Path, ndarray or dask.array.Array
        ``(Z, Y, X)``: a boolean foreground, or a map (probability, distance) to threshold;
        anything :func:`open_volume` opens.
    threshold : float, optional
        Foreground is ``volume_map > threshold``; needed for a map, not for a boolean.
    seed_threshold : float, optional
        Above ``threshold``; seeds are ``volume_map > seed_threshold``.
    halo : int or tuple of 3 ints, optional
        Context for the watershed (with ``seed_threshold`` only).
    min_seed_size : int
        With ``seed_threshold``: seeds of fewer voxels (counted over the whole volume,
        across chunks) are dropped before growing, as
        :func:`~dlbio_teach.segmentation.instances_from_maps` drops them (its ``min_size``):
        specks of noise above the seed threshold would otherwise become nuclei.
    store : str or Path, optional
        A folder where the labels are kept, chunk by chunk: Zarr arrays ``labels`` (the
        result), ``chunk_labels`` (each chunk labelled alone) and, with
        ``seed_threshold``, ``seeds``. Keep it as long as the result is used. Without a
        store everything stays in memory: fine for a volume that fits.

    Returns
    -------
    dask.array.Array of int32 ``(Z, Y, X)``, computed when this function runs (each
    chunk in turn) and read from ``store``, or from memory. With ``seed_threshold`` the
    map is read twice: store a prediction first (:func:`write_ome_zarr` or
    ``dask.array.to_zarr``), so that it is not computed twice.

    Examples
    --------
    >>> foreground = np.zeros((8, 8, 8), bool)
    >>> foreground[2:6, 2:6, 2:6] = True      # one cube across 8 chunks
    >>> labels = label_chunked(open_volume(foreground, chunks=(4, 4, 4)))
    >>> labels.numblocks, int(labels.max().compute())
    ((2, 2, 2), 1)
    """
    x = _regular(open_volume(volume_map))
    if x.dtype == bool:
        if threshold is not None or seed_threshold is not None:
            raise ValueError("volume_map is a boolean foreground: give no threshold (or "
                             "pass the map itself to threshold it).")
        return _connected(x, store, "labels")
    if threshold is None:
        raise ValueError(f"volume_map is a map of {x.dtype}: give threshold= (the "
                         "foreground is volume_map > threshold), e.g. 0.5 for a probability.")
    if seed_threshold is None:
        return _connected(x > threshold, store, "labels")
    if not seed_threshold > threshold:
        raise ValueError(f"seed_threshold ({seed_threshold}) must be above threshold "
                         f"({threshold}): seeds are the centres of the foreground.")
    if halo is None:
        raise ValueError("Growing seeds needs context: give halo= at least the diameter "
                         "of the largest nucleus, in voxels.")
    _with_halo(x, halo)                                  # check the halo first
    seeds = _connected(x > seed_threshold, store, "seeds")
    if min_seed_size > 1:
        seeds = _drop_small(seeds, min_seed_size)
    (x, depth), (seeds, _) = _with_halo(x, halo), _with_halo(seeds, halo)
    grow = partial(_grow_block, threshold=threshold)
    grown = da.map_overlap(grow, x, seeds, depth=depth, boundary="none", trim=True,
                           dtype=np.int32)
    return _keep(grown, store, "labels")[0]


# --- OME-Zarr out -------------------------------------------------------------------------

def _open_group(path, mode: str):
    # OME-Zarr 0.4: a Zarr v2 store with "/" between chunk indices, the version that
    # napari, Fiji and every ome-zarr release read today (0.5 is stored as Zarr v3).
    path = _absolute(path)
    if int(zarr.__version__.split(".")[0]) >= 3:
        return zarr.open_group(path, mode=mode, zarr_format=2)
    # With zarr 2, ome-zarr's own store, which writes the "/".
    from ome_zarr.io import parse_url

    return zarr.open_group(parse_url(path, mode=mode).store, mode=mode)


def _storage_options(volume) -> dict:
    """Chunks of the store, and with zarr 2 the "/" between chunk indices: Dask 2025.12 and
    later build the store from these options and no longer pass on ome-zarr's separator."""
    options = {"chunks": volume.chunksize}
    if int(zarr.__version__.split(".")[0]) < 3:
        options["dimension_separator"] = "/"
    return options


def _writers():
    """ome_zarr's write_image and write_labels."""
    with warnings.catch_warnings():
        # ome-zarr 0.14 to 0.18 warn on import about a default argument they deprecate.
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_image, write_labels
    return write_image, write_labels


def _writer_options(voxel_size) -> dict:
    """Keyword arguments of ome_zarr's writers: one resolution level, axes z, y, x in
    micrometres, and the voxel size as the scale of level 0."""
    from ome_zarr.format import FormatV04

    write_image, _ = _writers()
    if "scale" in inspect.signature(write_image).parameters:     # ome-zarr 0.15 and later
        return {"fmt": FormatV04(), "scaler": None, "scale_factors": (), "axes": "zyx",
                "scale": dict(zip("zyx", voxel_size)),
                "axes_units": dict.fromkeys("zyx", "micrometer")}
    return {"fmt": FormatV04(), "scaler": None,
            "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
            "coordinate_transformations": [[{"type": "scale", "scale": list(voxel_size)}]]}


def write_ome_zarr(path, image=None, labels=None, *, voxel_size, chunks=None,
                   labels_name: str = "labels"):
    """Write a volume and/or its instance labels as an OME-Zarr image, chunk by chunk.

    The image is the group at ``path`` (replaced if it exists); the labels are the label
    image ``labels/<labels_name>`` inside it, which napari shows as a labels layer over
    the image (``napari path --plugin napari-ome-zarr``) and Fiji's OME-Zarr readers
    (MoBIE, the N5/Zarr plugins) open with it.
    The voxel size is stored as the scale of the axes z, y, x (in micrometres), so that
    viewers show the volume in its true proportions. Lazy arrays (from
    :func:`predict_chunked`, :func:`label_chunked`) are computed as they are written.

    Parameters
    ----------
    path : str or Path
        The OME-Zarr image, by convention a folder named ``*.ome.zarr``.
    image : array ``(Z, Y, X)``, optional
        Anything :func:`open_volume` opens. Without it, ``path`` must already hold an image
        of the labels' shape, and the labels are added to it.
    labels : array ``(Z, Y, X)`` of integers, optional
        0 for background, one number per instance; stored as int32.
    voxel_size : tuple of 3 floats
        ``(z, y, x)`` size of a voxel in micrometres.
    chunks : tuple of 3 ints, optional
        Chunks of the store; default: the arrays' own (Dask) chunks.
    labels_name : str
        Name of the label image.

    Returns
    -------
    str: ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "cube.ome.zarr")
    >>> cube = np.zeros((4, 16, 16), np.float32); cube[1:3, 4:12, 4:12] = 1
    >>> _ = write_ome_zarr(path, cube, (cube > 0).astype(int), voxel_size=(2.0, 0.5, 0.5))
    >>> open_volume(path).shape, int(open_volume(path + "/labels/labels").max().compute())
    ((4, 16, 16), 1)
    """
    write_image, write_labels = _writers()
    if image is None and labels is None:
        raise ValueError("Nothing to write: give image=, labels=, or both.")
    if len(voxel_size) != 3 or not all(float(v) > 0 for v in voxel_size):
        raise ValueError(f"voxel_size must be three positive sizes (z, y, x) in "
                         f"micrometres, got {voxel_size!r}.")
    options = _writer_options(tuple(float(v) for v in voxel_size))
    if image is not None:
        image = _regular(open_volume(image, chunks=chunks))
        shape, group = image.shape, _open_group(path, mode="w")
        write_image(image, group, storage_options=_storage_options(image), **options)
    else:
        shape, group = open_volume(path).shape, _open_group(path, mode="a")
    if labels is not None:
        labels = _regular(open_volume(labels, chunks=chunks))
        if labels.shape != shape:
            raise ValueError(f"labels of shape {labels.shape} do not match the image's "
                             f"{shape}: labels need one number per voxel of the image.")
        # Recent ome-zarr lists the label values (dask.array.unique) as it writes; plain
        # tasks reshape the labels for that, rather than a cluster-wide shuffle.
        with dask.config.set({"array.rechunk.method": "tasks"}):
            write_labels(labels.astype(np.int32), group, name=labels_name,
                         storage_options=_storage_options(labels), **options)
    return str(path)
