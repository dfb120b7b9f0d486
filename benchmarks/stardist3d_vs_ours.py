r"""The course's StarDist 3D (PyTorch U-Net + stardist geometry) against StarDist's own StarDist3D.

Both are trained as chapter 6 trains its StarDist 3D: on the course's diverse synthetic
volumes, drawn at the anisotropy of StarDist's volume (``diverse_nuclei_volumes(10,
(32, 64, 64), seed=0, anisotropy=...)``: eight for training, two for validation, each
normalised with ``normalize_percentile``), with the same patch size
(16 x 32 x 32), batch size (4), number of optimisation steps, rays (96, golden spiral with
the anisotropy of StarDist's volume, read from its nuclei) and the same depth and width of
U-Net (2 levels, 8 channels in the first), without augmentation. The thresholds of both are
tuned on the annotated part of StarDist's volume (x < 20) with the course's
``tune_thresholds`` over the course's grid for volumes (the decoding is the same functions
of the ``stardist`` package), and both are scored once with the course's
``match_instances`` at IoU 0.5 on the held-out part (x >= 20). A third row gives StarDist3D
as its users run it: its own ``optimize_thresholds`` and ``predict_instances``. Wall time
is the training's.

Setup (its own environment: TensorFlow beside PyTorch; from the repository root)::

    python -m venv .venv-stardist
    .venv-stardist/bin/pip install torch==2.13.0 -e ".[stardist-bench]"
    .venv-stardist/bin/python benchmarks/stardist3d_vs_ours.py

``--train-on annotated`` trains both instead on the annotated part of StarDist's volume
itself (the nuclei a learner annotated, as chapter 6's fine-tuning uses them), with patches
16 x 32 x 16 (the part is 20 columns wide) and the synthetic validation volumes; thresholds
are still tuned on the annotated part and the held-out part is still scored once::

    .venv-stardist/bin/python benchmarks/stardist3d_vs_ours.py --train-on annotated --epochs 32

Each trains at its own default learning rate (ours 3e-3, StarDist3D's 3e-4) unless
``--learning-rate`` gives both the same one::

    .venv-stardist/bin/python benchmarks/stardist3d_vs_ours.py --train-on annotated \
        --epochs 32 --learning-rate 3e-3

The last line reads
``F1@0.5 difference (ours - StarDist3D): +x; wall time ratio (ours / StarDist3D): y;
StarDist3D F1 z``: the comparison means something only where ``z`` is at least 0.5, where
StarDist's own network works.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time

import numpy as np
import torch

SPLIT_X = 20          # the annotated part of StarDist's volume is x < SPLIT_X (chapter 6)


def volumes_and_target():
    """Chapter 6's training volumes and StarDist's volume, split as the chapter splits it."""
    from dlbio_teach.data import load
    from dlbio_teach.planes import anisotropy_from_labels
    from dlbio_teach.preprocessing import normalize_percentile
    from dlbio_teach.star import prepare_star_labels
    from dlbio_teach.synthetic import diverse_nuclei_volumes

    stack = load("stardist_nuclei_3d")
    volume = normalize_percentile(stack["image"].astype(np.float32))
    truth = prepare_star_labels(stack["labels"].astype(np.int32), axes="ZYX")
    drawn = diverse_nuclei_volumes(10, (32, 64, 64), seed=0,
                                   anisotropy=(anisotropy_from_labels(truth)[0],) * 2)
    x = np.stack([normalize_percentile(image) for image, _, _ in drawn])
    y = np.stack([labels for _, labels, _ in drawn])
    parts = {"annotated": (volume[..., :SPLIT_X], truth[..., :SPLIT_X]),
             "held_out": (volume[..., SPLIT_X:], truth[..., SPLIT_X:])}
    parts = {k: (v, prepare_star_labels(t, axes="ZYX")) for k, (v, t) in parts.items()}
    return (x[:8], y[:8], x[8:], y[8:]), parts, anisotropy_from_labels(truth)


def ours(x, y, xv, yv, *, patch, batch, steps_per_epoch, epochs, n_rays, n_val, seed,
         channels, anisotropy, lr=None):
    """Train the course's StarDist 3D; return (maps function, seconds)."""
    from dlbio_teach.segmentation import SegmentationConfig, predict_maps, train_segmentation

    config = SegmentationConfig("stardist", axes="ZYX", anisotropy=anisotropy,
                                epochs=epochs, n_patches=steps_per_epoch * batch,
                                patch_size=patch, batch_size=batch, n_rays=n_rays,
                                n_val_patches=n_val, base_channels=channels,
                                **({"lr": lr} if lr else {}))
    start = time.perf_counter()
    net, _ = train_segmentation(config, x, y, xv, yv, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    return (lambda image: predict_maps(net, image, formulation="stardist", axes="ZYX")), seconds


def theirs(x, y, xv, yv, *, patch, batch, steps_per_epoch, epochs, n_rays, n_val, seed,
           channels, anisotropy, basedir, lr=None):
    """Train StarDist3D; return (model, maps function, seconds)."""
    import tensorflow as tf
    from stardist import Rays_GoldenSpiral
    from stardist.models import Config3D, StarDist3D

    tf.keras.utils.set_random_seed(seed)
    config = Config3D(rays=Rays_GoldenSpiral(n_rays, anisotropy=anisotropy),
                      anisotropy=anisotropy, grid=(1, 1, 1), n_channel_in=1,
                      backbone="unet", unet_n_depth=2, unet_n_filter_base=channels,
                      train_patch_size=patch, train_batch_size=batch, train_epochs=epochs,
                      train_steps_per_epoch=steps_per_epoch, train_n_val_patches=n_val,
                      train_tensorboard=False, **({"train_learning_rate": lr} if lr else {}))
    model = StarDist3D(config, name="stardist3d_bench", basedir=str(basedir))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):   # Keras prints a bar per step
        model.train(list(x), list(y), validation_data=(list(xv), list(yv)), seed=seed)
    seconds = time.perf_counter() - start

    def maps(image):
        prob, dist = model.predict(image)
        return np.concatenate([prob[None], np.moveaxis(dist, -1, 0)]).astype(np.float32)

    return model, maps, seconds


def tuned_f1(maps_of, parts, anisotropy):
    """Tune on the annotated part with the course's grid, score the held-out part."""
    from dlbio_teach.metrics import match_instances
    from dlbio_teach.segmentation import instances_from_maps
    from dlbio_teach.tuning import tune_thresholds

    (va, ta), (vh, th) = parts["annotated"], parts["held_out"]
    tuning = tune_thresholds([maps_of(va)], [ta], formulation="stardist", axes="ZYX",
                             anisotropy=anisotropy)
    labels = instances_from_maps(maps_of(vh), formulation="stardist", axes="ZYX",
                                 anisotropy=anisotropy, **tuning.best)
    return match_instances(th, labels, axes="ZYX"), tuning.best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-per-epoch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8, help="chapter 6's standard: 8")
    parser.add_argument("--rays", type=int, default=96)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-on", choices=["synthetic", "annotated"], default="synthetic",
                        help="the synthetic volumes (chapter 6's training) or the annotated "
                             "part of StarDist's volume")
    parser.add_argument("--learning-rate", type=float,
                        help="train both at this rate (default: each at its own default, "
                             "3e-3 for ours, 3e-4 for StarDist3D)")
    args = parser.parse_args(argv)

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)

    data, parts, anisotropy = volumes_and_target()
    patch = (16, 32, 32)
    if args.train_on == "annotated":
        image, truth = parts["annotated"]
        data, patch = (image[None], truth[None], data[2], data[3]), (16, 32, 16)
    budget = dict(patch=patch, batch=4, steps_per_epoch=args.steps_per_epoch,
                  epochs=args.epochs, n_rays=args.rays, seed=args.seed, channels=args.channels,
                  n_val=16, anisotropy=anisotropy, lr=args.learning_rate)
    rows = {}
    maps_ours, seconds = ours(*data, **budget)
    rows["dlbio_teach StarDist 3D (PyTorch)"] = (*tuned_f1(maps_ours, parts, anisotropy), seconds)
    from dlbio_teach.metrics import match_instances
    with tempfile.TemporaryDirectory() as basedir:
        model, maps_theirs, seconds = theirs(*data, **budget, basedir=basedir)
        rows["StarDist3D (TensorFlow)"] = (*tuned_f1(maps_theirs, parts, anisotropy), seconds)
        quiet = io.StringIO()
        (va, ta), (vh, th) = parts["annotated"], parts["held_out"]
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            model.optimize_thresholds([va], [ta])
            own = model.predict_instances(vh)[0]
        rows["StarDist3D, its own optimize_thresholds"] = (
            match_instances(th, own, axes="ZYX"),
            {"prob_threshold": round(model.thresholds.prob, 3),
             "nms_threshold": model.thresholds.nms}, seconds)

    import stardist
    print(f"trained on {args.train_on} volumes {data[0].shape[1:]}: {len(data[0])} train, "
          f"{len(data[2])} synthetic validation; StarDist's volume: annotated "
          f"{parts['annotated'][0].shape}, held out {parts['held_out'][0].shape} "
          f"({parts['held_out'][1].max()} nuclei); patch {' x '.join(map(str, patch))}, "
          f"batch 4, {args.steps_per_epoch * args.epochs} steps, {args.rays} rays, "
          f"learning rate {args.learning_rate or 'each its default'}, "
          f"anisotropy {tuple(round(a, 2) for a in anisotropy)}; torch {torch.__version__}, "
          f"tensorflow {tf.__version__}, stardist {stardist.__version__}, {args.threads} "
          f"threads, {os.cpu_count()} CPU cores")
    print("\n| model | F1@0.5 held out | found | false | missed | training wall time (s) | "
          "thresholds (prob, NMS) |\n|---|---|---|---|---|---|---|")
    for name, (m, best, seconds) in rows.items():
        print(f"| {name} | {m['f1']:.3f} | {m['tp']} | {m['fp']} | {m['fn']} | {seconds:.0f} "
              f"| {best['prob_threshold']:g}, {best['nms_threshold']:g} |")
    (a, _, t_a), (b, _, t_b) = rows["dlbio_teach StarDist 3D (PyTorch)"], \
        rows["StarDist3D (TensorFlow)"]
    print(f"\nF1@0.5 difference (ours - StarDist3D): {a['f1'] - b['f1']:+.3f}; "
          f"wall time ratio (ours / StarDist3D): {t_a / t_b:.2f}; StarDist3D F1 {b['f1']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
