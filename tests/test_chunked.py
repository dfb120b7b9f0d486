"""dlbio_teach.chunked: a volume processed chunk by chunk gives the whole-volume result."""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from dlbio_teach.chunked import label_chunked, open_volume, predict_chunked, write_ome_zarr

# A Gaussian filter that pads with zeros, as a network's convolutions do; its output at a
# voxel reads 4 * sigma = 4 voxels around it (its receptive radius).
SMOOTH = partial(ndi.gaussian_filter, sigma=1.0, mode="constant", truncate=4.0)
RADIUS = 4


def noise(shape=(24, 64, 64), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def blobs(shape=(24, 64, 64), seed=0):
    """Irregular connected regions of every size, many across chunk borders."""
    return ndi.gaussian_filter(noise(shape, seed), 2.0) > 0.52


def balls(shape=(40, 48, 48), n=16, seed=0):
    """A distance-like map of balls, some touching: 1 at a ball's centre, falling to 0 at
    its edge (the largest value where balls overlap)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    out = np.zeros(shape, np.float32)
    for _ in range(n):
        centre = rng.uniform(4, np.array(shape) - 4)
        radius = rng.uniform(4.0, 6.0)
        r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
        out = np.maximum(out, 1 - r / radius)
    return out


def grow_whole(values, *, threshold, seed_threshold, min_seed_size=0):
    seeds = ndi.label(values > seed_threshold)[0]
    small = np.bincount(seeds.ravel()) < min_seed_size
    small[0] = False
    seeds[small[seeds]] = 0
    return watershed(-values, seeds, mask=values > threshold)


def same_instances(a, b) -> bool:
    """The same partition into instances, whatever their numbers."""
    a, b = np.asarray(a), np.asarray(b)
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def instance_f1(true, pred, *, threshold=0.5) -> float:
    """F1 of the one-to-one matching of 3D instances at IoU >= threshold (the course's)."""
    from dlbio_teach.metrics import match_instances
    return match_instances(true, pred, threshold=threshold, axes="ZYX")["f1"]


def test_the_helpers_tell_instances_apart():
    a = np.zeros((1, 4, 4), int)
    a[0, :2] = 1
    a[0, 2:] = 2
    merged = (a > 0).astype(int)
    assert same_instances(a, a * 3) and not same_instances(a, merged)
    assert instance_f1(a, a * 3) == 1.0
    assert instance_f1(a, merged) == pytest.approx(2 / 3)


# --- open_volume ---------------------------------------------------------------------------

def test_open_volume_from_an_array_with_chunks():
    v = open_volume(noise(), chunks=(8, 32, 32))
    assert isinstance(v, da.Array) and v.numblocks == (3, 2, 2)
    assert np.array_equal(v.compute(), noise())


def test_open_volume_from_a_zarr_store_keeps_its_chunks(tmp_path):
    z = zarr.open(str(tmp_path / "v.zarr"), mode="w", shape=(24, 64, 64), chunks=(8, 16, 16),
                  dtype=np.float32)
    z[:] = noise()
    v = open_volume(tmp_path / "v.zarr")
    assert v.chunksize == (8, 16, 16)
    assert np.array_equal(v.compute(), noise())


def test_open_volume_drops_leading_axes_of_length_one():
    assert open_volume(np.zeros((1, 1, 4, 8, 8))).shape == (4, 8, 8)


@pytest.mark.parametrize("shape, hint", [((2, 4, 8, 8), "volume[c]"),
                                         ((8, 8), "image[None]"),
                                         ((8,), "(Z, Y, X)")])
def test_open_volume_says_what_to_do_with_other_shapes(shape, hint):
    with pytest.raises(ValueError, match=r"\(Z, Y, X\)") as err:
        open_volume(np.zeros(shape))
    assert hint in str(err.value) and str(shape) in str(err.value)


def test_open_volume_of_a_missing_store():
    with pytest.raises(FileNotFoundError, match="No Zarr store at"):
        open_volume("/no/such/volume.zarr")


# --- predict_chunked -----------------------------------------------------------------------

def test_chunked_prediction_equals_whole_volume():
    x = noise()
    chunked = predict_chunked(open_volume(x, chunks=(8, 16, 16)), SMOOTH, halo=RADIUS)
    assert chunked.numblocks == (3, 4, 4)
    whole = SMOOTH(x)
    assert np.abs(chunked.compute() - whole).max() < 1e-6
    assert whole.std() > 0.01                           # the function does something


def test_a_halo_below_the_receptive_radius_makes_seams():
    x = noise()
    seamed = predict_chunked(open_volume(x, chunks=(8, 16, 16)), SMOOTH, halo=1).compute()
    assert np.abs(seamed - SMOOTH(x)).max() > 1e-3


def test_a_last_chunk_thinner_than_the_halo_joins_the_one_before():
    x = noise((30, 64, 64))                             # chunks of 8 in Z, the last of 6
    chunked = predict_chunked(open_volume(x, chunks=(8, 32, 32)), SMOOTH, halo=7)
    assert chunked.chunks[0] == (8, 8, 14)
    assert np.abs(chunked.compute() - SMOOTH(x)).max() < 1e-6


def test_halo_per_axis():
    x = noise()
    smooth_yx = partial(ndi.gaussian_filter, sigma=(0, 1.0, 1.0), mode="constant")
    chunked = predict_chunked(open_volume(x, chunks=(8, 16, 16)), smooth_yx, halo=(0, 4, 4))
    assert np.abs(chunked.compute() - smooth_yx(x)).max() < 1e-6


def test_chunked_network_equals_whole_volume_and_why_the_edges_are_not_mirrored():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv3d(4, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv3d(4, 1, 3, padding=1)).eval()   # radius 3

    def predict(v):
        with torch.no_grad():
            return net(torch.from_numpy(v)[None, None])[0, 0].numpy()

    x = open_volume(noise((16, 32, 32)), chunks=(8, 16, 16))
    whole = predict(noise((16, 32, 32)))
    assert np.abs(predict_chunked(x, predict, halo=3).compute() - whole).max() < 1e-5
    # A mirrored border at the volume's edges (Dask's boundary="reflect") replaces the
    # network's own zero padding there: the edges differ.
    mirrored = da.map_overlap(predict, x, depth=3, boundary="reflect", dtype=np.float32)
    assert np.abs(mirrored.compute() - whole).max() > 1e-3


def test_output_channels_in_front():
    x = noise()
    two = predict_chunked(open_volume(x, chunks=(8, 16, 16)),
                          lambda v: np.stack([SMOOTH(v), -SMOOTH(v)]), halo=RADIUS,
                          out_channels=2)
    assert two.shape == (2, 24, 64, 64)
    out = two.compute()
    assert np.abs(out[0] - SMOOTH(x)).max() < 1e-6 and np.abs(out[1] + SMOOTH(x)).max() < 1e-6


def test_predict_fn_must_keep_the_shape():
    x = open_volume(noise(), chunks=(8, 32, 32))
    with pytest.raises(ValueError, match=r"returned shape \(2, .*out_channels=C"):
        predict_chunked(x, lambda v: np.stack([v, v]), halo=2).compute()


@pytest.mark.parametrize("halo, message", [(-1, "halo must be"), ((2, 2), "halo must be"),
                                           (9, "larger than the chunks there")])
def test_halo_errors(halo, message):
    with pytest.raises(ValueError, match=message):
        predict_chunked(open_volume(noise(), chunks=(8, 16, 16)), SMOOTH, halo=halo)


# --- label_chunked: connected components ---------------------------------------------------

def test_a_block_across_chunk_borders_is_one_instance():
    fg = np.zeros((16, 16, 16), bool)
    fg[5:11, 2:14, 6:10] = True                     # crosses the borders at 8 in Z and Y
    labels = label_chunked(open_volume(fg, chunks=(8, 8, 8))).compute()
    assert labels.max() == 1 and np.array_equal(labels > 0, fg)


def test_blocks_touching_by_an_edge_across_a_border_stay_two():
    fg = np.zeros((16, 16, 16), bool)
    fg[4:8, 4:8, 2:6] = True
    fg[8:12, 8:12, 2:6] = True                      # meets the first along an edge only
    labels = label_chunked(open_volume(fg, chunks=(8, 8, 8))).compute()
    assert labels.max() == 2 == ndi.label(fg)[1]


def test_a_u_shape_joined_through_another_chunk_is_one_instance():
    fg = np.zeros((8, 16, 16), bool)
    fg[2:4, 2:4, 2:12] = True                       # two arms in the chunks x < 8 ...
    fg[2:4, 10:12, 2:12] = True
    fg[2:4, 2:12, 10:12] = True                     # ... joined only in the chunks x >= 8
    labels = label_chunked(open_volume(fg, chunks=(8, 8, 8))).compute()
    assert labels.max() == 1


@pytest.mark.parametrize("use_store", [False, True])
def test_chunked_labels_equal_whole_volume_labels(tmp_path, use_store):
    fg = blobs()
    whole, n = ndi.label(fg)
    store = tmp_path / "labels" if use_store else None
    labels = label_chunked(open_volume(fg, chunks=(8, 16, 16)), store=store)
    result = labels.compute()
    assert n > 20 and result.dtype == np.int32
    assert same_instances(result, whole)
    assert np.array_equal(np.unique(result), np.arange(n + 1))   # numbered 1..n
    if use_store:                                   # the result is read from the store
        assert np.array_equal(open_volume(store / "labels").compute(), result)


def test_a_map_is_thresholded():
    values = ndi.gaussian_filter(noise(), 2.0)
    labels = label_chunked(open_volume(values, chunks=(8, 16, 16)), threshold=0.52)
    assert same_instances(labels.compute(), ndi.label(values > 0.52)[0])


@pytest.mark.parametrize("volume, kwargs, message", [
    (np.zeros((8, 8, 8)), {}, "give threshold="),
    (np.zeros((8, 8, 8), bool), {"threshold": 0.5}, "give no threshold"),
    (np.zeros((8, 8, 8)), {"threshold": 0.5, "seed_threshold": 0.4, "halo": 2},
     "must be above threshold"),
    (np.zeros((8, 8, 8)), {"threshold": 0.1, "seed_threshold": 0.5}, "give halo="),
])
def test_label_chunked_errors(volume, kwargs, message):
    with pytest.raises(ValueError, match=message):
        label_chunked(volume, **kwargs)


# --- label_chunked: seeds grown by a watershed ---------------------------------------------

def test_touching_nuclei_split_by_a_chunk_border_stay_two():
    # Two balls of radius 6 meeting at the plane z = 16, which is also a chunk border.
    grid = np.indices((32, 32, 32), dtype=np.float32)
    values = np.zeros((32, 32, 32), np.float32)
    for z in (10.4, 21.5):
        r = np.sqrt((grid[0] - z) ** 2 + (grid[1] - 15.6) ** 2 + (grid[2] - 16.3) ** 2)
        values = np.maximum(values, 1 - r / 6.0)
    x = open_volume(values, chunks=(16, 16, 16))
    assert label_chunked(x, threshold=0.05).max().compute() == 1      # touching: one region
    labels = label_chunked(x, threshold=0.05, seed_threshold=0.5, halo=12).compute()
    assert labels.max() == 2
    assert set(np.unique(labels[:15])) == {0, 1} and set(np.unique(labels[17:])) == {0, 2}
    assert same_instances(labels, grow_whole(values, threshold=0.05, seed_threshold=0.5))


def test_chunked_watershed_equals_whole_volume_watershed(tmp_path):
    values = balls()         # 40 voxels in Z: the last chunk (8) is thinner than the halo
    whole = grow_whole(values, threshold=0.05, seed_threshold=0.5)
    labels = label_chunked(open_volume(values, chunks=(16, 16, 16)), threshold=0.05,
                           seed_threshold=0.5, halo=12, store=tmp_path / "labels")
    result = labels.compute()
    assert whole.max() >= 10
    assert instance_f1(whole, result) == 1.0
    assert same_instances(result, whole)
    # Without a halo, each chunk grows the seeds without seeing its neighbours' voxels.
    no_halo = label_chunked(open_volume(values, chunks=(16, 16, 16)), threshold=0.05,
                            seed_threshold=0.5, halo=0).compute()
    assert not same_instances(no_halo, whole)


def test_small_seeds_are_dropped_as_in_the_whole_volume(tmp_path):
    values = balls()
    specks = np.zeros_like(values)
    specks[[3, 20, 36], [30, 15, 40], [7, 31, 16]] = 0.9    # single voxels above the seeds'
    values = np.maximum(values, specks)                     # threshold: noise, not nuclei
    whole = grow_whole(values, threshold=0.05, seed_threshold=0.5, min_seed_size=5)
    labels = label_chunked(open_volume(values, chunks=(16, 16, 16)), threshold=0.05,
                           seed_threshold=0.5, halo=12, min_seed_size=5,
                           store=tmp_path / "labels").compute()
    assert same_instances(labels, whole)
    assert labels.max() == len(np.unique(labels)) - 1          # numbered 1, 2, ... n
    with_specks = label_chunked(open_volume(values, chunks=(16, 16, 16)), threshold=0.05,
                                seed_threshold=0.5, halo=12).compute()
    assert with_specks.max() >= labels.max() + 3


# --- write_ome_zarr ------------------------------------------------------------------------

def test_ome_zarr_round_trip_with_voxel_size(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path = str(tmp_path / "nuclei.ome.zarr")
    image = noise((12, 32, 40))
    labels = ndi.label(image > 0.9)[0]
    write_ome_zarr(path, image, labels, voxel_size=(2.0, 0.5, 0.25), chunks=(6, 16, 16))
    nodes = list(Reader(parse_url(path))())
    found = {str(n.zarr.path).rstrip("/").split("/")[-1]: n for n in nodes if n.data}
    assert set(found) == {"nuclei.ome.zarr", "labels"}
    for name, expected in (("nuclei.ome.zarr", image), ("labels", labels)):
        node = found[name]
        assert len(node.data) == 1 and np.array_equal(np.asarray(node.data[0]), expected)
        scale = node.metadata["coordinateTransformations"][0][0]
        assert scale == {"type": "scale", "scale": [2.0, 0.5, 0.25]}
        assert [a["unit"] for a in node.metadata["axes"]] == ["micrometer"] * 3
    assert open_volume(path).chunksize == (6, 16, 16)
    assert open_volume(path + "/labels/labels").dtype == np.int32


def test_labels_are_added_to_an_existing_image(tmp_path):
    path = tmp_path / "v.ome.zarr"
    write_ome_zarr(path, noise((8, 16, 16)), voxel_size=(1, 1, 1))
    labels = np.zeros((8, 16, 16), np.int32)
    labels[2:4, 2:4, 2:4] = 7
    write_ome_zarr(path, labels=labels, voxel_size=(1, 1, 1), labels_name="nuclei")
    assert np.array_equal(open_volume(path / "labels" / "nuclei").compute(), labels)
    assert np.array_equal(open_volume(path).compute(), noise((8, 16, 16)))
    with pytest.raises(ValueError, match="do not match the image"):
        write_ome_zarr(path, labels=labels[:4], voxel_size=(1, 1, 1))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"voxel_size": (1, 1, 1)}, ValueError, "Nothing to write"),
    ({"image": np.zeros((4, 4, 4)), "voxel_size": (1, 1)}, ValueError, "three positive"),
    ({"labels": np.zeros((4, 4, 4), int), "voxel_size": (1, 1, 1)}, FileNotFoundError,
     "No Zarr store"),
])
def test_write_ome_zarr_errors(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        write_ome_zarr(tmp_path / "missing.ome.zarr", **kwargs)


# --- Chapter 6's chunked path, on one machine and on a cluster of worker processes -------

CLUSTER_CHUNKS, CLUSTER_HALO, VOXEL = (16, 32, 32), 12, (2.0, 0.5, 0.5)


def chapter_network():
    """A small 3D U-Net with fixed, seeded weights, untrained. Its output is its input plus
    a correction from all its layers (``residual_output``, the head drawn at random), so
    a distance-like input stays distance-like and the labelling finds its balls."""
    import torch

    from dlbio_teach.models import UNet

    torch.manual_seed(0)
    net = UNet(1, 1, depth=2, base_channels=4, ndim=3, residual_output=True)
    torch.nn.init.normal_(net.head.weight, std=0.1)
    return net.eval()


def chapter_path(folder, image, net, *, witness):
    """Chapter 6's section 4, its calls in its order, every path relative to the working
    folder: the image written as chunked OME-Zarr, the network's distance map predicted
    chunk by chunk into a Zarr store, seeds grown across chunks, the labels added to the
    image. The processes that ran the network leave their id in the folder ``witness``."""
    from dlbio_teach.segmentation import predict_maps

    def distance_map(block, *, net):            # defined where it is used, as in a notebook
        (witness / str(os.getpid())).touch()
        return predict_maps(net, block, formulation="distance", axes="ZYX")

    zarr_path = folder / "big.ome.zarr"
    write_ome_zarr(zarr_path, image, voxel_size=VOXEL, chunks=CLUSTER_CHUNKS)
    lazy = open_volume(zarr_path)
    # Dask's own to_zarr stores the path as it is given: on a cluster, an absolute one.
    map_path = (folder / "distance_map.zarr").resolve()
    predict_chunked(lazy, partial(distance_map, net=net),
                    halo=CLUSTER_HALO).to_zarr(str(map_path))
    labels = label_chunked(open_volume(map_path), halo=CLUSTER_HALO, min_seed_size=10,
                           threshold=0.05, seed_threshold=0.5, store=folder / "labels.zarr")
    write_ome_zarr(zarr_path, labels=labels, voxel_size=VOXEL, labels_name="nuclei")


def read_back(folder):
    """The image, the map and the labels that :func:`chapter_path` left in ``folder``."""
    return (open_volume(folder / "big.ome.zarr").compute(),
            open_volume(folder / "distance_map.zarr").compute(),
            open_volume(folder / "big.ome.zarr" / "labels" / "nuclei").compute())


@pytest.fixture(scope="module")
def process_cluster(tmp_path_factory):
    """Two worker processes of one thread each, started in a folder of their own: every
    task reaches them pickled, and a path that only makes sense in the learner's
    working folder would be read or written in theirs."""
    from dask.distributed import LocalCluster

    workers_folder = tmp_path_factory.mktemp("workers")
    here = os.getcwd()
    os.chdir(workers_folder)
    try:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, local_directory=str(workers_folder))
    finally:
        os.chdir(here)
    try:
        yield cluster
    finally:
        cluster.close()


def test_chapter_path_on_worker_processes_equals_the_local_scheduler(tmp_path, monkeypatch,
                                                                     process_cluster):
    from dask.distributed import Client

    image = balls((32, 64, 64), n=20, seed=1)
    net = chapter_network()
    monkeypatch.chdir(tmp_path)                   # the learner's working folder
    for folder in ("local", "cluster", "ran_here", "ran_there"):
        Path(folder).mkdir()
    chapter_path(Path("local"), image, net, witness=tmp_path / "ran_here")  # Dask's threads
    with Client(process_cluster) as client:
        workers = client.run(lambda: (os.getpid(), os.getcwd()))
        chapter_path(Path("cluster"), image, net, witness=tmp_path / "ran_there")
    # Two worker processes, in a working folder other than this one, ran the network.
    assert {int(p.name) for p in Path("ran_there").iterdir()} == \
        {pid for pid, _ in workers.values()} and len(workers) == 2
    assert os.getpid() not in {pid for pid, _ in workers.values()}
    assert all(cwd != os.getcwd() for _, cwd in workers.values())
    assert [p.name for p in Path("ran_here").iterdir()] == [str(os.getpid())]
    # What the cluster wrote is where the learner asked for it, read here after it closed.
    local, cluster = read_back(Path("local")), read_back(Path("cluster"))
    local_image, local_map, local_labels = local
    cluster_image, cluster_map, cluster_labels = cluster
    assert np.array_equal(cluster_image, image) and np.array_equal(local_image, image)
    assert 0 < np.abs(local_map - image).max() < 0.1              # the network did something
    assert np.array_equal(cluster_map, local_map)
    # The same numbers, not only the same instances: the numbering is fixed by the chunks.
    assert np.array_equal(cluster_labels, local_labels)
    assert local_labels.max() >= 10
    chunk_of = sum(np.indices(image.shape) // np.reshape(CLUSTER_CHUNKS, (3, 1, 1, 1))
                   * np.reshape((4, 2, 1), (3, 1, 1, 1)))            # each voxel's chunk
    pieces = np.unique(np.stack([local_labels, chunk_of])[:, local_labels > 0], axis=1)
    assert len(pieces[0]) > len(np.unique(pieces[0])), "some nuclei cross a chunk border"
    whole = grow_whole(local_map, threshold=0.05, seed_threshold=0.5, min_seed_size=10)
    assert same_instances(cluster_labels, whole)
