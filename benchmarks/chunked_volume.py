"""The chunked path on volumes larger than memory: peak memory at two sizes, and the chunked
result against the whole-volume one on a volume that fits.

Each size (``--sizes-gib``, GiB of float32 voxels) runs in its own child process, which:

1. builds a synthetic volume lazily, chunk by chunk (Gaussian blobs on noise; each chunk
   drawn from a generator seeded by its position, the blobs of its neighbours included,
   so that the volume has no seams and is never whole in memory), and writes it as an
   OME-Zarr image in a temporary folder;
2. segments it through ``dlbio_teach.chunked``: ``open_volume``, ``predict_chunked`` with a
   Gaussian filter (sigma 2, receptive radius 8 = the halo), ``label_chunked`` (threshold,
   instances joined across chunk borders, kept in a Zarr store), and writes the labels into
   the same OME-Zarr image;
3. reports its wall time and its peak resident memory (``ru_maxrss``).

The field of view is fixed (``--lateral``, 512 x 512 voxels) and the depth grows with the
size, as a longer stack of the same field; chunks are 32 x 256 x 256 voxels (8 MiB of
float32), four to a layer. Dask runs on its threaded scheduler with ``--threads`` threads
(2). In ``map_overlap`` Dask's scheduler keeps chunks of several layers in memory at once
(about 30 chunks, 7 to 8 layers here, counted with a scheduler callback): the peak is set
by the chunk and layer sizes, not by the depth, once the volume is more than about 16
layers deep (0.5 GiB is 16 layers); below that the run ends before that plateau.

Then, on a volume that fits (64 x 256 x 256, chunks of 32 x 64 x 64), the chunked map and
instances are compared with the whole-volume ones (``scipy.ndimage`` on the whole array):
the largest map difference, and the instance F1 at IoU 0.5 (one-to-one matching).

    python benchmarks/chunked_volume.py --sizes-gib 0.5 2
    python benchmarks/chunked_volume.py --sizes-gib 0.01 0.02 --lateral 128 --chunks 16 64 64

The last line reads (on one line)::

    chunked: 2.00 GiB volume, peak RSS P GiB (P GiB at 0.50 GiB); chunked vs whole:
    max map difference D, instance F1 F

Goals: the peak at 2 GiB under 1.5 GiB, and within 20 % of the peak at 0.5 GiB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

SPACING = 16.0      # mean distance between blob centres, voxels
SIGMA = 3.0         # blob width, voxels
NOISE = 0.2         # standard deviation of the noise (blob peaks are 1)
SMOOTH_SIGMA = 2.0  # the "prediction": a Gaussian filter ...
HALO = 8            # ... whose receptive radius is 4 * sigma
THRESHOLD = 0.25    # foreground of the smoothed volume
VOXEL_SIZE = (1.0, 0.5, 0.5)


# --- A synthetic volume, chunk by chunk ------------------------------------------------------

def _chunk_box(chunks, index):
    starts = np.array([sum(c[:i]) for c, i in zip(chunks, index)])
    return starts, np.array([c[i] for c, i in zip(chunks, index)])


def _blob_centres(chunks, index, seed):
    """Blob centres inside one chunk, from a generator seeded by the chunk's position."""
    starts, sizes = _chunk_box(chunks, index)
    rng = np.random.default_rng([seed, *index])
    n = rng.poisson(np.prod(sizes) / SPACING ** 3)
    return starts + rng.random((n, 3)) * sizes


def _synthetic_chunk(block_info=None, *, chunks, seed):
    """One chunk: the blobs of this chunk and of its neighbours that reach it, and noise."""
    index = block_info[None]["chunk-location"]
    lo, hi = _chunk_box(chunks, index)
    hi = lo + hi
    reach = int(np.ceil(4 * SIGMA))
    out = np.zeros(hi - lo, np.float32)
    for step in np.ndindex(3, 3, 3):
        near = tuple(i + s - 1 for i, s in zip(index, step))
        if any(n < 0 or n >= len(c) for n, c in zip(near, chunks)):
            continue
        centres = _blob_centres(chunks, near, seed)
        centres = centres[np.all((centres > lo - reach) & (centres < hi + reach), axis=1)]
        for centre in centres:
            a = np.maximum(np.floor(centre).astype(int) - reach, lo)
            b = np.minimum(np.floor(centre).astype(int) + reach + 1, hi)
            if np.any(b <= a):
                continue
            z, y, x = (np.exp(-0.5 * ((np.arange(s, e) - c) / SIGMA) ** 2).astype(np.float32)
                       for s, e, c in zip(a, b, centre))
            out[tuple(slice(s - o, e - o) for s, e, o in zip(a, b, lo))] += (
                z[:, None, None] * y[None, :, None] * x[None, None, :])
    rng = np.random.default_rng([seed, *index, 1])
    out += NOISE * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def synthetic_volume(shape, chunks, *, seed=0):
    """A lazy float32 volume of Gaussian blobs on noise, computed chunk by chunk."""
    import dask.array as da

    chunks = da.core.normalize_chunks(chunks, shape)
    return da.map_blocks(partial(_synthetic_chunk, chunks=chunks, seed=seed), chunks=chunks,
                         dtype=np.float32, meta=np.zeros((0, 0, 0), np.float32))


def smooth(volume):
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(volume, SMOOTH_SIGMA, truncate=HALO / SMOOTH_SIGMA)


# --- One size, in a child process -----------------------------------------------------------

def _peak_gib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # KiB on Linux
    return kib / 2 ** 20 if sys.platform != "darwin" else kib / 2 ** 30


def run_one(config: dict) -> dict:
    """Write, segment and write back one synthetic volume; wall time and peak memory."""
    import dask

    from dlbio_teach.chunked import label_chunked, open_volume, predict_chunked, write_ome_zarr

    dask.config.set(scheduler="threads", num_workers=config["threads"])
    shape, chunks = tuple(config["shape"]), tuple(config["chunks"])
    folder = Path(tempfile.mkdtemp(prefix="chunked-", dir=config["tmp"]))
    path = folder / "volume.ome.zarr"
    seconds = {}
    try:
        start = time.perf_counter()
        write_ome_zarr(path, synthetic_volume(shape, chunks, seed=config["seed"]),
                       voxel_size=VOXEL_SIZE)
        seconds["write volume"] = time.perf_counter() - start
        print(f"  {shape}: volume written ({seconds['write volume']:.0f} s, peak RSS "
              f"{_peak_gib():.2f} GiB)", flush=True)

        start = time.perf_counter()
        values = predict_chunked(open_volume(path), smooth, halo=HALO)
        labels = label_chunked(values, threshold=THRESHOLD, store=folder / "labels")
        seconds["predict and label"] = time.perf_counter() - start
        print(f"  {shape}: labelled ({seconds['predict and label']:.0f} s, peak RSS "
              f"{_peak_gib():.2f} GiB)", flush=True)

        start = time.perf_counter()
        write_ome_zarr(path, labels=labels, voxel_size=VOXEL_SIZE, labels_name="blobs")
        n_instances = int(open_volume(path / "labels" / "blobs").max().compute())
        seconds["write labels"] = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"gib": float(np.prod(shape)) * 4 / 2 ** 30, "shape": list(shape),
            "chunks": list(chunks), "instances": n_instances, "seconds": seconds,
            "total_s": sum(seconds.values()), "peak_gib": _peak_gib()}


def run_child(config: dict) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    try:
        subprocess.run([sys.executable, __file__, "--_one", json.dumps(config), str(out)],
                       env=env, check=True)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


# --- Chunked against whole, on a volume that fits ------------------------------------------

def instance_f1(true, pred, *, threshold=0.5) -> float:
    """F1 of the one-to-one matching of 3D instances at IoU >= threshold (the course's)."""
    from dlbio_teach.metrics import match_instances
    return match_instances(true, pred, threshold=threshold, axes="ZYX")["f1"]


def chunked_vs_whole(shape=(64, 256, 256), chunks=(32, 64, 64), *, seed=0) -> dict:
    from scipy import ndimage as ndi

    from dlbio_teach.chunked import label_chunked, open_volume, predict_chunked

    volume = synthetic_volume(shape, chunks, seed=seed).compute()
    whole_map = smooth(volume)
    chunked_map = predict_chunked(open_volume(volume, chunks=chunks), smooth, halo=HALO)
    difference = float(np.abs(chunked_map.compute() - whole_map).max())
    whole = ndi.label(whole_map > THRESHOLD)[0]
    chunked = label_chunked(chunked_map, threshold=THRESHOLD).compute()
    return {"difference": difference, "f1": instance_f1(whole, chunked),
            "instances": int(whole.max()), "shape": shape, "chunks": chunks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gib", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--lateral", type=int, default=512, help="Y = X, voxels")
    parser.add_argument("--chunks", type=int, nargs=3, default=[32, 256, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="folder for the temporary stores")
    args = parser.parse_args(argv)

    import dask
    dask.config.set(scheduler="threads", num_workers=args.threads)

    results = []
    for gib in sorted(args.sizes_gib):
        depth = max(1, round(gib * 2 ** 30 / (4 * args.lateral ** 2)))
        shape = (depth, args.lateral, args.lateral)
        print(f"{gib:.2f} GiB: volume {shape}, chunks {tuple(args.chunks)} ...", flush=True)
        results.append(run_child({"shape": shape, "chunks": args.chunks, "seed": args.seed,
                                  "threads": args.threads, "tmp": args.tmp}))
        print(f"  {results[-1]}", flush=True)
    print("comparing chunked with whole on a volume that fits ...", flush=True)
    comparison = chunked_vs_whole(seed=args.seed)

    print("\n| volume (GiB) | shape | chunks | instances | wall time (s) | peak RSS (GiB) |"
          "\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['gib']:.2f} | {' x '.join(map(str, r['shape']))} | "
              f"{' x '.join(map(str, r['chunks']))} | {r['instances']} | "
              f"{r['total_s']:.0f} | {r['peak_gib']:.2f} |")
    print(f"\nChunked vs whole on {' x '.join(map(str, comparison['shape']))} voxels "
          f"(chunks {' x '.join(map(str, comparison['chunks']))}, "
          f"{comparison['instances']} instances).")
    small, big = results[0], results[-1]
    print(f"Goals: peak at {big['gib']:.2f} GiB under 1.5 GiB: "
          f"{'met' if big['peak_gib'] < 1.5 else 'NOT met'}; within 20 % of the peak at "
          f"{small['gib']:.2f} GiB: "
          f"{'met' if big['peak_gib'] <= 1.2 * small['peak_gib'] else 'NOT met'}.")
    print(f"chunked: {big['gib']:.2f} GiB volume, peak RSS {big['peak_gib']:.2f} GiB "
          f"({small['peak_gib']:.2f} GiB at {small['gib']:.2f} GiB); chunked vs whole: "
          f"max map difference {comparison['difference']:.0e}, "
          f"instance F1 {comparison['f1']:.3f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--_one":
        Path(sys.argv[3]).write_text(json.dumps(run_one(json.loads(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
