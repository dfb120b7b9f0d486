"""The course's StarDist (PyTorch U-Net + stardist geometry) against StarDist's own StarDist2D.

Both are trained on the same tiles of the StarDist nuclei image (chapter 3's data and
split: ``grid_tiles(image, 4, 4)``, ``split_indices(16, (0.5, 0.2, 0.3), seed=0)``, image
normalised with ``normalize_percentile``, labels through ``prepare_star_labels``) with the
same patch size, batch size, number of optimisation steps, rays, flips and 90-degree
rotations, and the same number of validation patches for choosing the best epoch. Each
keeps its own network (the course: a depth-2 U-Net of 32 channels at full resolution by
default, with a constant learning rate: ``--channels 16 --lr-schedule cosine`` is what
``SegmentationConfig.from_profile("stardist", standard)`` gives since version 0.9.0;
StarDist2D: its default depth-3 U-Net of 32, learning rate 3e-4) and its own way of
drawing patches (the course: ``n_patches`` drawn once, seen every epoch; StarDist2D: fresh
patches each step, 90 % with foreground). The thresholds of both are tuned on the
validation tiles with the course's ``tune_thresholds`` over the same grid of probability
and NMS thresholds (the decoding is the same functions of the ``stardist`` package), and
both are scored with the course's ``match_dataset`` at IoU 0.5 on the same test tiles. A
third row gives StarDist2D as its users run it: its own ``optimize_thresholds`` and
``predict_instances``. Wall time is the training's (the same data preparation is not
counted).

Setup (its own environment: TensorFlow beside PyTorch; from the repository root)::

    python -m venv .venv-stardist
    .venv-stardist/bin/pip install torch==2.13.0 -e ".[stardist-bench]"
    .venv-stardist/bin/python benchmarks/stardist_vs_ours.py            # about 10 min, 2 cores

``stardist-bench`` installs tensorflow-cpu, tensorboard (StarDist2D does not train without
it) and stardist. The data come through ``DLBIO_DATA_MIRROR``; when it is not set and
``../shared/data-mirror`` exists, that folder is served on a loopback port, as
``benchmarks/course_time.py`` does. The last line reads
``F1@0.5 difference (ours - StarDist): +0.012; wall time ratio (ours / StarDist): 0.87``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_DIR = REPO_ROOT.parent / "shared" / "data-mirror"


def tiles_and_split():
    """Chapter 3's tiles, labels (made ready for StarDist) and split."""
    from dlbio_teach.data import load
    from dlbio_teach.mirror import serve_mirror
    from dlbio_teach.preprocessing import grid_tiles, normalize_percentile, split_indices
    from dlbio_teach.star import prepare_star_labels

    if "DLBIO_DATA_MIRROR" not in os.environ and MIRROR_DIR.is_dir():
        os.environ["DLBIO_DATA_MIRROR"], _ = serve_mirror(MIRROR_DIR)
    nuclei = load("stardist_nuclei")
    image = normalize_percentile(nuclei["image"])
    tiles = grid_tiles(image, 4, 4)
    labels = np.stack([prepare_star_labels(t)
                       for t in grid_tiles(nuclei["labels"].astype(np.int32), 4, 4)])
    return tiles, labels, split_indices(len(tiles), (0.5, 0.2, 0.3), seed=0)


def ours(x, y, xv, yv, *, patch, batch, steps_per_epoch, epochs, n_rays, n_val, seed,
         channels, lr_schedule="constant"):
    """Train the course's StarDist; return (maps function, seconds)."""
    from dlbio_teach.segmentation import SegmentationConfig, predict_maps, train_segmentation

    config = SegmentationConfig("stardist", epochs=epochs, n_patches=steps_per_epoch * batch,
                                patch_size=patch, batch_size=batch, n_rays=n_rays,
                                n_val_patches=n_val, base_channels=channels,
                                lr_schedule=lr_schedule)
    start = time.perf_counter()
    net, _ = train_segmentation(config, x, y, xv, yv, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    return (lambda image: predict_maps(net, image, formulation="stardist")), seconds


def _fliprot(x, y):
    """StarDist augmenter: the same random 90-degree rotation and flip of image and labels."""
    k, flip = np.random.randint(4), np.random.randint(2)
    x, y = np.rot90(x, k), np.rot90(y, k)
    if flip:
        x, y = x[:, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def theirs(x, y, xv, yv, *, patch, batch, steps_per_epoch, epochs, n_rays, n_val, seed,
           basedir, channels=None):
    """Train StarDist2D; return (model, maps function, seconds)."""
    import tensorflow as tf
    from stardist.models import Config2D, StarDist2D

    tf.keras.utils.set_random_seed(seed)
    config = Config2D(n_rays=n_rays, grid=(1, 1), n_channel_in=1,
                      train_patch_size=(patch, patch), train_batch_size=batch,
                      train_epochs=epochs, train_steps_per_epoch=steps_per_epoch,
                      train_n_val_patches=n_val, train_tensorboard=False)
    model = StarDist2D(config, name="stardist_bench", basedir=str(basedir))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):   # Keras prints a bar per step
        model.train(list(x), list(y), validation_data=(list(xv), list(yv)),
                    augmenter=_fliprot, seed=seed)
    seconds = time.perf_counter() - start

    def maps(image):
        prob, dist = model.predict(image, verbose=False) if _takes_verbose(model) else \
            model.predict(image)
        return np.concatenate([prob[None], np.moveaxis(dist, -1, 0)]).astype(np.float32)

    return model, maps, seconds


def _takes_verbose(model) -> bool:
    import inspect
    return "verbose" in inspect.signature(model.predict).parameters


def score(truth, predictions) -> dict:
    from dlbio_teach.metrics import match_dataset

    return match_dataset(list(truth), list(predictions), thresholds=[0.5])[0]


def tuned_predictions(maps_of, xv, yv, xt):
    """Tune on validation with the course's grid, then segment the test tiles."""
    from dlbio_teach.segmentation import instances_from_maps
    from dlbio_teach.tuning import tune_thresholds

    tuning = tune_thresholds([maps_of(t) for t in xv], list(yv), formulation="stardist")
    return tuning.best, [instances_from_maps(maps_of(t), formulation="stardist", **tuning.best)
                         for t in xt]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps-per-epoch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rays", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32,
                        help="base channels of the course's U-Net (its standard StarDist: 32)")
    parser.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                        help="the course's learning-rate schedule (chapter 3: cosine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)

    tiles, labels, (train, val, test) = tiles_and_split()
    budget = dict(patch=args.patch, batch=args.batch, steps_per_epoch=args.steps_per_epoch,
                  epochs=args.epochs, n_rays=args.rays, seed=args.seed, channels=args.channels,
                  n_val=max(32, args.steps_per_epoch * args.batch // 4))
    data = (tiles[train], labels[train], tiles[val], labels[val])
    rows = {}
    maps_ours, seconds = ours(*data, **budget, lr_schedule=args.lr_schedule)
    best, predicted = tuned_predictions(maps_ours, tiles[val], labels[val], tiles[test])
    rows["dlbio_teach StarDist (PyTorch)"] = (score(labels[test], predicted), seconds, best)
    with tempfile.TemporaryDirectory() as basedir:
        model, maps_theirs, seconds = theirs(*data, **budget, basedir=basedir)
        best, predicted = tuned_predictions(maps_theirs, tiles[val], labels[val], tiles[test])
        rows["StarDist2D (TensorFlow)"] = (score(labels[test], predicted), seconds, best)
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            model.optimize_thresholds(list(tiles[val]), list(labels[val]))
        own = [model.predict_instances(t)[0] for t in tiles[test]]
        rows["StarDist2D, its own optimize_thresholds"] = (
            score(labels[test], own), seconds,
            {"prob_threshold": round(model.thresholds.prob, 3),
             "nms_threshold": model.thresholds.nms})

    import stardist
    print(f"tiles {tiles.shape[1:]}: {len(train)} train, {len(val)} validation, {len(test)} "
          f"test; patch {args.patch}, batch {args.batch}, "
          f"{args.steps_per_epoch * args.epochs} steps, {args.rays} rays; torch "
          f"{torch.__version__}, tensorflow {tf.__version__}, stardist {stardist.__version__}, "
          f"{args.threads} threads, {os.cpu_count()} CPU cores")
    print("\n| model | F1@0.5 | DSB accuracy@0.5 | PQ@0.5 | training wall time (s) | "
          "thresholds (prob, NMS) |\n|---|---|---|---|---|---|")
    for name, (s, seconds, best) in rows.items():
        print(f"| {name} | {s['f1']:.3f} | {s['accuracy']:.3f} | {s['panoptic_quality']:.3f} "
              f"| {seconds:.0f} | {best['prob_threshold']:g}, {best['nms_threshold']:g} |")
    (a, t_a, _), (b, t_b, _) = rows["dlbio_teach StarDist (PyTorch)"], \
        rows["StarDist2D (TensorFlow)"]
    print(f"\nF1@0.5 difference (ours - StarDist): {a['f1'] - b['f1']:+.3f}; "
          f"wall time ratio (ours / StarDist): {t_a / t_b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
