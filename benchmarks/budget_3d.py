"""How long must a 3D network train? Chapter 6's held-out F1 against training steps.

Chapter 6 trains its 3D U-Net (distance) and its StarDist 3D for one budget: 8 epochs of
32 steps (batch 4, patches 16 x 32 x 32) in ``standard``. Here each network trains again,
with chapter 6's data and settings, for longer, in stages: one training resumed from its
checkpoint after each budget (with a constant learning rate and seeded epochs, a training
stopped after 8 epochs and resumed to 32 takes the same steps as one run for 32). After
each budget, as in the chapter, the thresholds are tuned on the annotated part of
StarDist's volume (x < 20) and the held-out part (x >= 20) is scored once: F1@0.5 pooled
over its six blocks. The tuned 3D Otsu + watershed gives the line to beat.

StarDist 3D is also scored with the truth's distances in place of its own, and with the
truth's probability in place of its own (``dlbio_teach.star.swap_star_maps``): which of its
two outputs limits it, at each budget.

Results go to ``dlbio_teach/budget_3d_results.json`` after every budget (a run cut short
keeps what it finished); chapter 6 draws them. Seed 0 of both networks takes about
15 minutes on 2 cores::

    python benchmarks/budget_3d.py                         # seed 0, epochs 2 8 32 64
    python benchmarks/budget_3d.py --seeds 1 --epochs 2 8 32
    python benchmarks/budget_3d.py --epochs 2 8 32 --anisotropy-range 1 5
    python benchmarks/budget_3d.py --fine-tune --networks "StarDist 3D" --epochs 8 32 64 128
    python benchmarks/budget_3d.py --fine-tune --validate-on annotated --networks "StarDist 3D"
    python benchmarks/budget_3d.py --annotated-only --networks "StarDist 3D" --out OTHER.json

``--fine-tune`` measures the chapter's fine-tuning instead: each network trains for the
chapter's 8 epochs on the synthetic volumes, then on the annotated part (patches
16 x 32 x 16, the learning rate the chapter fine-tunes it with) in stages of ``--epochs``;
its rows are named "..., fine-tuned on the annotated part" and count the steps of both.
As in the chapter, the synthetic validation volumes pick the epoch that the training
returns; ``--validate-on annotated`` lets the annotated part pick it instead (rows
"..., fine-tuned and validated on the annotated part").

``--annotated-only`` trains a new network on the annotated part alone (patches
16 x 32 x 16, the default learning rate), in stages of ``--epochs``; its rows are named
"..., trained on the annotated part only". ``--out`` writes to another results file than
the one chapter 6 draws.

``--anisotropy-range 1 5`` draws the training volumes with anisotropies from 1 to 5 (the
look varies, the voxel size too) instead of at the voxel size of StarDist's volume: the
rows it adds show what training at the target's voxel size is worth.
"""
from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "dlbio_teach" / "budget_3d_results.json"
SPLIT_X = 20
STEPS_PER_EPOCH = 32          # chapter 6, standard: 128 patches, batch 4
NETWORKS = {"3D U-Net (distance)": "distance", "StarDist 3D": "stardist"}
PRETRAIN_EPOCHS = 8           # chapter 6's training on synthetic volumes, standard
FINE_TUNE_LR = {"distance": 3e-4, "stardist": 3e-3}   # chapter 6's, per formulation
FINE_TUNED = {"synthetic": ", fine-tuned on the annotated part",
              "annotated": ", fine-tuned and validated on the annotated part"}
ANNOTATED_ONLY = {"synthetic": ", trained on the annotated part only",
                  "annotated": ", trained and validated on the annotated part only"}


def chapter_data(anisotropy_range=None):
    """Chapter 6's volumes (standard): StarDist's volume split at x = 20, the anisotropy
    read from its nuclei, and 8 + 2 synthetic volumes drawn at that anisotropy (or with
    anisotropies drawn from ``anisotropy_range``)."""
    from dlbio_teach.data import load
    from dlbio_teach.planes import anisotropy_from_labels
    from dlbio_teach.preprocessing import normalize_percentile
    from dlbio_teach.star import prepare_star_labels
    from dlbio_teach.synthetic import diverse_nuclei_volumes

    stack = load("stardist_nuclei_3d")
    volume = normalize_percentile(stack["image"].astype(np.float32))
    truth = prepare_star_labels(stack["labels"].astype(np.int32), axes="ZYX")
    anisotropy = anisotropy_from_labels(truth)
    parts = {name: (volume[..., cut], prepare_star_labels(truth[..., cut], axes="ZYX"))
             for name, cut in (("annotated", slice(None, SPLIT_X)),
                               ("held_out", slice(SPLIT_X, None)))}
    drawn = diverse_nuclei_volumes(10, (32, 64, 64), seed=0,
                                   anisotropy=anisotropy_range or (anisotropy[0],) * 2)
    x = np.stack([normalize_percentile(image) for image, _, _ in drawn])
    y = np.stack([labels for _, labels, _ in drawn])
    return (x[:8], y[:8], x[8:], y[8:]), parts, anisotropy


def held_out_blocks(shape):
    """Chapter 6's six blocks of the held-out part."""
    _, rows, cols = shape
    return [(slice(None), slice(a, b), slice(c, d))
            for a, b in ((0, rows // 3), (rows // 3, 2 * rows // 3), (2 * rows // 3, rows))
            for c, d in ((0, cols // 2), (cols // 2, cols))]


def held_out_f1(labels, truth) -> float:
    from dlbio_teach.metrics import match_instances

    matches = [match_instances(truth[b], labels[b], axes="ZYX")
               for b in held_out_blocks(truth.shape)]
    tp, fp, fn = (sum(m[k] for m in matches) for k in ("tp", "fp", "fn"))
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def tuned_score(maps, parts, formulation, anisotropy) -> dict:
    """Tune on the annotated part's ``maps["annotated"]``, score the held-out part's
    ``maps["held_out"]`` once (chapter 6's protocol)."""
    from dlbio_teach.segmentation import instances_from_maps
    from dlbio_teach.tuning import tune_thresholds

    truth_a, truth_h = parts["annotated"][1], parts["held_out"][1]
    star = {"anisotropy": anisotropy} if formulation == "stardist" else {}
    tuned = tune_thresholds([maps["annotated"]], [truth_a], formulation=formulation,
                            axes="ZYX", **star)
    labels = instances_from_maps(maps["held_out"], formulation=formulation, axes="ZYX",
                                 **star, **tuned.best)
    return {"annotated_f1": round(float(tuned.score), 4),
            "held_out_f1": round(held_out_f1(labels, truth_h), 4), "thresholds": tuned.best}


def baseline(parts, anisotropy) -> dict:
    from dlbio_teach.baseline import otsu_watershed
    from dlbio_teach.tuning import tune_otsu_watershed

    (image_a, truth_a), (image_h, truth_h) = parts["annotated"], parts["held_out"]
    tuned = tune_otsu_watershed([image_a], [truth_a], axes="ZYX", anisotropy=anisotropy,
                                min_distances=(2, 3, 4, 6, 8))
    labels = otsu_watershed(image_h, axes="ZYX", anisotropy=anisotropy, **tuned.best)
    return {"annotated_f1": round(float(tuned.score), 4),
            "held_out_f1": round(held_out_f1(labels, truth_h), 4)}


def save(results: dict, path: Path = RESULTS) -> None:
    part = path.with_suffix(".json.part")
    part.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    part.replace(path)


def _config(formulation, anisotropy, epochs, **changes):
    """Chapter 6's configuration of a 3D network (standard)."""
    from dlbio_teach.segmentation import SegmentationConfig

    settings = dict(axes="ZYX", anisotropy=anisotropy, patch_size=(16, 32, 32), n_patches=128,
                    batch_size=4, epochs=epochs, base_channels=8, n_val_patches=16)
    return SegmentationConfig(formulation, **{**settings, **changes})


def _training_stages(formulation, data, anisotropy, *, seed, epochs):
    """One training on the synthetic volumes, stopped after each of ``epochs`` and resumed
    from its checkpoint: yields ``(epochs, steps, seconds, network)``."""
    from dlbio_teach.segmentation import train_segmentation

    with tempfile.TemporaryDirectory() as checkpoints:
        seconds = 0.0
        for stage in sorted(epochs):
            start = time.perf_counter()
            net, _ = train_segmentation(_config(formulation, anisotropy, stage), *data,
                                        seed=seed, progress=False, checkpoint_dir=checkpoints)
            seconds += time.perf_counter() - start
            yield stage, stage * STEPS_PER_EPOCH, seconds, net


def _fine_tuning_stages(formulation, data, parts, anisotropy, *, seed, epochs,
                        validate_on="synthetic", pretrain=True):
    """Chapter 6's fine-tuning: ``PRETRAIN_EPOCHS`` on the synthetic volumes, then the
    annotated part (patches 16 x 32 x 16) in stages of ``epochs``, resumed from a
    checkpoint, its best epoch picked on the synthetic validation volumes (or on the
    annotated part); yields ``(epochs, steps, seconds, network)`` counting both trainings.
    ``pretrain=False``: the annotated part only, from a new network at the default
    learning rate."""
    import copy

    from dlbio_teach.segmentation import train_segmentation

    pretrained, seconds, before = None, 0.0, 0
    if pretrain:
        start = time.perf_counter()
        pretrained, _ = train_segmentation(_config(formulation, anisotropy, PRETRAIN_EPOCHS),
                                           *data, seed=seed, progress=False)
        seconds, before = time.perf_counter() - start, PRETRAIN_EPOCHS
    image, truth = parts["annotated"]
    validation = data[2:] if validate_on == "synthetic" else (image[None], truth[None])
    changes = dict(lr=FINE_TUNE_LR[formulation]) if pretrain else {}
    with tempfile.TemporaryDirectory() as checkpoints:
        for stage in sorted(epochs):
            config = _config(formulation, anisotropy, stage, patch_size=(16, 32, 16), **changes)
            start = time.perf_counter()
            net, _ = train_segmentation(config, image[None], truth[None], *validation, seed=seed,
                                        model=copy.deepcopy(pretrained), progress=False,
                                        checkpoint_dir=checkpoints)
            seconds += time.perf_counter() - start
            total = before + stage
            yield total, total * STEPS_PER_EPOCH, seconds, net


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 8, 32, 64])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--anisotropy-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="draw the training volumes with anisotropies from LOW to HIGH "
                             "instead of at the target's (rows named '..., anisotropy LOW "
                             "to HIGH')")
    parser.add_argument("--fine-tune", action="store_true",
                        help="train for the chapter's epochs on the synthetic volumes, then "
                             "fine-tune on the annotated part in stages of --epochs")
    parser.add_argument("--annotated-only", action="store_true",
                        help="train a new network on the annotated part alone, in stages of "
                             "--epochs (no synthetic volumes)")
    parser.add_argument("--validate-on", choices=["synthetic", "annotated"], default="synthetic",
                        help="with --fine-tune or --annotated-only: what picks the epoch the "
                             "training returns")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="results file (default: the one chapter 6 draws)")
    args = parser.parse_args(argv)
    on_annotated = args.fine_tune or args.annotated_only
    if args.fine_tune and args.annotated_only:
        parser.error("choose one of --fine-tune and --annotated-only.")
    if on_annotated and args.anisotropy_range:
        parser.error("--fine-tune and --annotated-only train at the target's voxel size; "
                     "leave out --anisotropy-range.")

    import torch

    from dlbio_teach.segmentation import predict_maps
    from dlbio_teach.star import star_targets, swap_star_maps

    data, parts, anisotropy = chapter_data(args.anisotropy_range)
    true_maps = {part: star_targets(truth, 96, axes="ZYX", anisotropy=anisotropy)
                 for part, (_, truth) in parts.items()}
    suffix = (", anisotropy {:g} to {:g}".format(*args.anisotropy_range)
              if args.anisotropy_range else "")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.update(date=datetime.date.today().isoformat(), steps_per_epoch=STEPS_PER_EPOCH,
                   torch=torch.__version__, threads=torch.get_num_threads(),
                   baseline=baseline(parts, anisotropy))
    runs = results.setdefault("runs", [])
    for seed in args.seeds:
        for name in args.networks:
            formulation = NETWORKS[name]
            if on_annotated:
                stages = _fine_tuning_stages(formulation, data, parts, anisotropy, seed=seed,
                                             epochs=args.epochs, validate_on=args.validate_on,
                                             pretrain=args.fine_tune)
            else:
                stages = _training_stages(formulation, data, anisotropy, seed=seed,
                                          epochs=args.epochs)
            for epochs, steps, seconds, net in stages:
                maps = {part: predict_maps(net, image, formulation=formulation, axes="ZYX")
                        for part, (image, _) in parts.items()}
                network = name + (FINE_TUNED[args.validate_on] if args.fine_tune else
                                  ANNOTATED_ONLY[args.validate_on] if args.annotated_only
                                  else suffix)
                row = {"network": network, "seed": seed, "epochs": epochs, "steps": steps,
                       "training_seconds": round(seconds, 1),
                       **tuned_score(maps, parts, formulation, anisotropy)}
                if formulation == "stardist":
                    for keep in ("probability", "distances"):
                        swapped = {part: swap_star_maps(maps[part], true_maps[part],
                                                        keep=keep) for part in parts}
                        row[f"own_{keep}_only"] = tuned_score(
                            swapped, parts, formulation, anisotropy)["held_out_f1"]
                key = (network, seed, epochs)
                runs[:] = [r for r in runs
                           if (r["network"], r["seed"], r["epochs"]) != key] + [row]
                save(results, args.out)
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
