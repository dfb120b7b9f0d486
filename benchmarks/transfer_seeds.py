"""Chapter 3's section 12 (a model that transfers to another microscope) with several seeds.

The chapter trains each network once, with the course seed. Whether diversity helps, and
whether the model recommended for a new microscope beats the baseline there, are claims
about methods: this script repeats the section's protocol for each seed and prints one
Markdown table, so that the claims can be read over seeds as well as over tiles.

For each seed, as in the chapter (standard profile, the same data and splits):

1. the three formulations (three classes, distance, StarDist) are trained on the nuclei
   image's 8 training tiles ("one image"), and again with ``Augmentation.standard()`` and
   16 ``diverse_nuclei`` tiles mixed in ("with diversity");
2. section 9's model is the one-image formulation with the highest F1@0.5 on the nuclei
   validation tiles, with the thresholds chosen there;
3. the blobs image is rescaled to the nuclei's median object area and cut into 9 tiles:
   3 target tiles (the course seed's draw, fixed across seeds, as in the chapter) on which
   every threshold, Otsu's ``min_distance`` and the recommended model (the
   diversity-trained formulation with the highest F1 there) are chosen, and 6 held-out
   tiles, scored once.

The table gives, per seed, the pooled F1@0.5 on the held-out tiles of section 9's model as
is, of every network with thresholds from the target tiles, and of the baseline, and which
model was recommended. About 3 minutes per seed on 2 cores (standard profile)::

    python benchmarks/transfer_seeds.py --seeds 0 1 2

The data come through ``DLBIO_DATA_MIRROR``; when it is not set and ``../shared/data-mirror``
exists, that folder is served on a loopback port, as ``benchmarks/course_time.py`` does.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR_DIR = REPO_ROOT.parent / "shared" / "data-mirror"
FORMULATIONS = {"three classes": "three_class", "distance": "distance", "StarDist": "stardist"}


def nuclei_tiles():
    """Chapter 3's tiles, ground truth, labels made ready for training, and split."""
    from dlbio_teach.data import load
    from dlbio_teach.preprocessing import grid_tiles, normalize_percentile, split_indices
    from dlbio_teach.star import prepare_star_labels

    nuclei = load("stardist_nuclei")
    labels = nuclei["labels"].astype(np.int32)
    tiles, truth = grid_tiles(normalize_percentile(nuclei["image"]), 4, 4), grid_tiles(labels, 4, 4)
    ready = np.stack([prepare_star_labels(t) for t in truth])
    return tiles, truth, ready, split_indices(len(tiles), (0.5, 0.2, 0.3), seed=0), labels


def blob_tiles(nuclei_labels, *, split_seed: int = 0):
    """The blobs image rescaled to the nuclei's median object area, its 3 x 3 tiles, and
    the target and held-out tile indices (chapter 3, section 12)."""
    from scipy import ndimage as ndi
    from skimage import measure

    from dlbio_teach.data import load
    from dlbio_teach.preprocessing import grid_tiles, normalize_percentile

    blobs = load("blobs")
    nucleus_area = np.median([r.area for r in measure.regionprops(nuclei_labels)])
    blob_area = np.median([r.area for r in measure.regionprops(blobs["labels"].astype(np.int32))])
    scale = float(np.sqrt(nucleus_area / blob_area))
    image = normalize_percentile(ndi.zoom(blobs["image"].astype(np.float32), scale, order=1))
    truth = ndi.zoom(blobs["labels"].astype(np.int32), scale, order=0)
    order = np.random.default_rng(split_seed).permutation(9)
    return grid_tiles(image, 3, 3), grid_tiles(truth, 3, 3), np.sort(order[:3]), np.sort(order[3:])


def train_all(seed: int, tiles, ready, train_ids, val_ids):
    """The six networks of section 12 for one seed: {(training, name): network}."""
    from dlbio_teach.augment import Augmentation
    from dlbio_teach.runtime import get_profile
    from dlbio_teach.segmentation import SegmentationConfig, train_segmentation
    from dlbio_teach.synthetic import diverse_nuclei

    profile = get_profile("standard")
    synthetic, synthetic_labels = diverse_nuclei(2 * len(train_ids), (128, 128), seed=1)
    data = {"one image": (tiles[train_ids], ready[train_ids], None),
            "with diversity": (np.concatenate([tiles[train_ids], synthetic]),
                               np.concatenate([ready[train_ids], synthetic_labels]),
                               Augmentation.standard())}
    networks = {}
    for training, (x, y, augmentation) in data.items():
        for name, formulation in FORMULATIONS.items():
            networks[training, name], _ = train_segmentation(
                SegmentationConfig.from_profile(formulation, profile), x, y, tiles[val_ids],
                ready[val_ids], seed=seed, augmentation=augmentation, progress=False)
    return networks


def held_out_scores(networks, nuclei, blobs) -> dict:
    """Section 12's protocol for one seed's networks; pooled held-out F1@0.5 by method."""
    from dlbio_teach.baseline import otsu_watershed
    from dlbio_teach.intervals import bootstrap_matching
    from dlbio_teach.metrics import match_instances
    from dlbio_teach.segmentation import predict_maps, segment
    from dlbio_teach.tuning import tune_otsu_watershed, tune_thresholds

    tiles, ready, val_ids = nuclei
    b_tiles, b_truth, target, held = blobs

    def held_out_f1(segment_tile):
        matches = [match_instances(b_truth[i], segment_tile(b_tiles[i])) for i in held]
        return bootstrap_matching(matches, seed=0)

    def tuned(net, formulation, images, truths):
        maps = [predict_maps(net, t, formulation=formulation) for t in images]
        return tune_thresholds(maps, list(truths), formulation=formulation)

    otsu = tune_otsu_watershed(list(b_tiles[target]), list(b_truth[target]))
    rows = {"Otsu + watershed": held_out_f1(lambda t: otsu_watershed(t, **otsu.best))}
    on_validation, on_target = {}, {}
    for (training, name), net in networks.items():
        formulation = FORMULATIONS[name]
        if training == "one image":
            on_validation[name] = tuned(net, formulation, tiles[val_ids], ready[val_ids])
        tuning = tuned(net, formulation, b_tiles[target], b_truth[target])
        on_target[training, name] = tuning
        rows[f"{name}, {training}"] = held_out_f1(
            lambda t, net=net, f=formulation, thr=tuning.best:
            segment(net, t, formulation=f, thresholds=thr))
    section9 = max(on_validation, key=lambda k: on_validation[k].score)
    rows["section 9's model, as is"] = held_out_f1(
        lambda t: segment(networks["one image", section9], t, formulation=FORMULATIONS[section9],
                          thresholds=on_validation[section9].best))
    recommended = max(FORMULATIONS, key=lambda k: on_target["with diversity", k].score)
    rows["recommended"] = rows[f"{recommended}, with diversity"]
    return {"rows": rows, "section9": section9, "recommended": recommended}


def main() -> None:
    """Run the protocol for each seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    from dlbio_teach.mirror import serve_mirror

    if "DLBIO_DATA_MIRROR" not in os.environ and MIRROR_DIR.is_dir():
        os.environ["DLBIO_DATA_MIRROR"], _ = serve_mirror(MIRROR_DIR)
    tiles, _, ready, (train_ids, val_ids, _), labels = nuclei_tiles()
    blobs = blob_tiles(labels)
    results = {seed: held_out_scores(train_all(seed, tiles, ready, train_ids, val_ids),
                                     (tiles, ready, val_ids), blobs) for seed in args.seeds}
    first = results[args.seeds[0]]["rows"]
    print(f"held-out blobs tiles {blobs[3].tolist()}, target tiles {blobs[2].tolist()}; "
          "pooled F1@0.5 [95 % interval over the 6 tiles]\n")
    print("| method | " + " | ".join(f"seed {s}" for s in args.seeds) + " |")
    print("|---|" + "---|" * len(args.seeds))
    for row in first:
        cells = [f"{results[s]['rows'][row].estimate:.3f} [{results[s]['rows'][row].low:.2f}, "
                 f"{results[s]['rows'][row].high:.2f}]" for s in args.seeds]
        print(f"| {row} | " + " | ".join(cells) + " |")
    print("| section 9's choice | " + " | ".join(results[s]["section9"] for s in args.seeds) + " |")
    print("| recommended (target tiles) | "
          + " | ".join(f"{results[s]['recommended']}, with diversity" for s in args.seeds) + " |")
    margins = [results[s]["rows"]["recommended"].estimate
               - results[s]["rows"]["Otsu + watershed"].estimate for s in args.seeds]
    print("\nrecommended minus baseline, held-out F1@0.5, by seed: "
          + ", ".join(f"{m:+.3f}" for m in margins))


if __name__ == "__main__":
    main()
