"""dlbio_teach.star and the "stardist" formulation of dlbio_teach.segmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbio_teach.metrics import match_instances
from dlbio_teach.models import UNet
from dlbio_teach.segmentation import (
    SegmentationConfig,
    instances_from_maps,
    predict_maps,
    segment,
    train_segmentation,
    training_targets,
)
from dlbio_teach.star import (
    StarDistLoss,
    check_star_labels,
    instances_from_star,
    prepare_star_labels,
    star_reconstruction,
    star_reconstruction_f1,
    star_targets,
)
from dlbio_teach.synthetic import nuclei
from dlbio_teach.tuning import threshold_grid, tune_thresholds


def touching_pair():
    labels = np.zeros((20, 32), np.int32)
    labels[3:15, 3:15] = 1
    labels[5:17, 15:28] = 2          # touches object 1 along a column
    return labels


def crosses():
    """Non-convex objects: plus signs of arm width 3 and several lengths."""
    labels = np.zeros((64, 64), np.int32)
    for i, (cy, cx, arm) in enumerate([(12, 12, 8), (12, 44, 10), (44, 14, 9),
                                       (46, 46, 12)], start=1):
        labels[cy - arm:cy + arm + 1, cx - 1:cx + 2] = i
        labels[cy - 1:cy + 2, cx - arm:cx + arm + 1] = i
    return labels


# --- targets and the labels they need ------------------------------------------------------

def test_star_targets_are_stardists_own():
    from stardist import edt_prob
    from stardist.geometry import star_dist

    labels = touching_pair()
    t = star_targets(labels, n_rays=16)
    assert t.shape == (17, 20, 32) and t.dtype == np.float32
    assert np.allclose(t[0], edt_prob(labels))
    assert np.allclose(np.moveaxis(t[1:], 0, -1), star_dist(labels, 16))
    assert np.all(t[:, labels == 0] == 0)


def test_non_consecutive_labels_get_a_clear_error_and_a_fix():
    labels = touching_pair()
    labels[labels == 2] = 5
    with pytest.raises(ValueError, match=r"1..N without gaps.*missing: \[2, 3, 4\].*"
                                         r"prepare_star_labels"):
        star_targets(labels)
    with pytest.raises(ValueError, match="without gaps"):
        training_targets(labels[None], formulation="stardist")
    fixed = prepare_star_labels(labels)
    assert sorted(np.unique(fixed).tolist()) == [0, 1, 2]
    assert np.array_equal(fixed > 0, labels > 0)


def test_labels_with_holes_get_a_clear_error_and_a_fix():
    labels = touching_pair()
    labels[8:10, 8:10] = 0           # a 4-pixel hole in object 1
    with pytest.raises(ValueError, match=r"holes in 1 object\(s\) \(object 1: 4 pixels\)"):
        check_star_labels(labels)
    assert np.array_equal(prepare_star_labels(labels), touching_pair())


def test_a_notch_open_to_the_background_is_no_hole():
    labels = touching_pair()
    labels[3:9, 8:10] = 0            # cut in from the top edge of object 1
    assert check_star_labels(labels) is not None


@pytest.mark.parametrize("n_rays", [2, 0, 8.0, True])
def test_wrong_n_rays_is_refused(n_rays):
    with pytest.raises(ValueError, match="n_rays must be an integer of at least 3"):
        SegmentationConfig("stardist", n_rays=n_rays)


def test_n_rays_that_rotations_cannot_map_are_refused_with_augmentation():
    with pytest.raises(ValueError, match="multiple of 4"):
        SegmentationConfig("stardist", n_rays=30)
    assert SegmentationConfig("stardist", n_rays=30, augment=False).n_outputs == 31
    # n_rays is StarDist's alone: the other formulations' records are unchanged.
    assert "n_rays" not in SegmentationConfig("distance").to_dict()
    assert SegmentationConfig("stardist").to_dict()["n_rays"] == 32



def test_stardist_from_a_profile_gets_its_channels_and_a_cosine_rate_in_2d_only():
    from dlbio_teach.runtime import get_profile

    standard = get_profile("standard")
    config = SegmentationConfig.from_profile("stardist", standard)
    assert config.base_channels == standard.base_channels and config.n_outputs == 33
    assert config.lr_schedule == "cosine" and config.to_dict()["lr_schedule"] == "cosine"
    changed = SegmentationConfig.from_profile("stardist", standard, base_channels=8, n_rays=16,
                                              lr_schedule="constant")
    assert changed.base_channels == 8 and "lr_schedule" not in changed.to_dict()
    for formulation in ("distance", "three_class"):
        assert SegmentationConfig.from_profile(formulation, standard).lr_schedule == "constant"
    volume = SegmentationConfig.from_profile("stardist", standard, axes="ZYX",
                                             patch_size=(8, 32, 32))
    assert volume.lr_schedule == "constant", "StarDist 3D keeps chapter 6's constant rate"


def test_a_model_with_the_wrong_number_of_rays_is_refused():
    x, y = nuclei((32, 32), 3, seed=0)
    config = SegmentationConfig("stardist", epochs=1, n_patches=4, patch_size=32,
                                base_channels=4, n_rays=8)
    with pytest.raises(ValueError, match=r"needs 1 \+ n_rays = 9"):
        train_segmentation(config, x[None], y[None], x[None], y[None],
                           model=UNet(1, 17, depth=2, base_channels=4), progress=False)


def test_maps_that_are_not_stardists_are_refused():
    with pytest.raises(ValueError, match=r"\(1 \+ n_rays, Y, X\)"):
        instances_from_star(np.zeros((3, 8, 8)))
    logits = np.zeros((9, 8, 8))
    logits[0] = 4.0
    with pytest.raises(ValueError, match="probabilities in"):
        instances_from_maps(logits, formulation="stardist")
    with pytest.raises(ValueError, match="1 \\+ n_rays"):
        predict_maps(UNet(1, 3, depth=1, base_channels=4), np.zeros((8, 8)),
                     formulation="stardist")
    with pytest.raises(ValueError, match="needs a seed_threshold"):
        instances_from_maps(np.zeros((8, 8)), formulation="distance")


def test_any_image_size_fits_with_grid_one():
    net = UNet(1, 9, depth=2, base_channels=4)
    maps = predict_maps(net, np.random.default_rng(0).random((37, 45)), formulation="stardist")
    assert maps.shape == (9, 37, 45) and 0 <= maps[0].min() and maps[0].max() <= 1
    assert segment(net, np.zeros((37, 45)), formulation="stardist",
                   thresholds={"prob_threshold": 0.5, "nms_threshold": 0.4}).shape == (37, 45)


# --- decoding, tuning, the loss ------------------------------------------------------------

def test_perfect_maps_give_back_the_objects():
    labels = touching_pair()
    pred = instances_from_star(star_targets(labels), prob_threshold=0.5, nms_threshold=0.4)
    m = match_instances(labels, pred, threshold=0.7)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)
    assert pred.dtype == np.int32
    assert instances_from_star(np.zeros((33, 16, 16))).max() == 0


def test_tuning_tries_probability_and_nms_thresholds():
    labels = touching_pair()
    grid = threshold_grid("stardist")
    assert {(c["prob_threshold"], c["nms_threshold"]) for c in grid} >= {(0.5, 0.4)}
    assert len(grid) <= 24      # cheap: a few seconds on three 128 x 128 tiles
    tuned = tune_thresholds([star_targets(labels)], [labels], formulation="stardist")
    assert tuned.score == 1.0 and set(tuned.best) == {"prob_threshold", "nms_threshold"}


def test_loss_is_lowest_for_the_target_and_checks_rays():
    target = torch.from_numpy(star_targets(touching_pair(), n_rays=8))[None]
    best = target.clone()
    best[:, 0] = torch.logit(target[:, 0], eps=1e-6)
    loss = StarDistLoss()
    worse = best.clone()
    worse[:, 1:] += 2.0
    assert float(loss(best, target)) < float(loss(worse, target))
    with pytest.raises(ValueError, match="1 \\+ n_rays output channels"):
        loss(best[:, :5], target)


# --- the ray-count bound -------------------------------------------------------------------

def test_reconstruction_f1_rises_with_rays_on_non_convex_objects():
    labels = crosses()
    f1 = [star_reconstruction_f1(labels, n, iou_threshold=0.6) for n in (4, 8, 32)]
    assert f1[0] < f1[1] <= f1[2] and f1[2] == 1.0
    assert star_reconstruction_f1([labels, labels], 32, iou_threshold=0.6) == 1.0


def test_reconstruction_of_convex_objects_is_nearly_exact():
    labels = touching_pair()
    labels[labels == 2] = 7          # any ids: renumbered 1..N
    rebuilt = star_reconstruction(labels, 64)
    assert rebuilt.max() == 2
    assert match_instances(labels, rebuilt, threshold=0.85)["f1"] == 1.0


# --- end to end ----------------------------------------------------------------------------

def test_stardist_trains_and_segments_end_to_end():
    pairs = [nuclei((48, 48), 5, radius=(5, 8), seed=s) for s in range(3)]
    x = np.stack([p[0] for p in pairs])
    y = np.stack([prepare_star_labels(p[1]) for p in pairs])
    config = SegmentationConfig("stardist", epochs=2, n_patches=16, patch_size=32,
                                batch_size=8, base_channels=4, n_rays=8)
    net, history = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False)
    assert history.epochs_run == 2 and np.isfinite(history.val_loss).all()
    assert net.config["out_channels"] == 9
    maps = predict_maps(net, x[2], formulation="stardist")
    tuned = tune_thresholds([maps], [y[2]], formulation="stardist")
    labels = segment(net, x[2], formulation="stardist", thresholds=tuned.best)
    assert labels.shape == (48, 48) and labels.dtype == np.int32


def test_stardist_training_equals_the_recipe_it_replaces():
    """StarDist 2D: targets on whole images, the same patches, rays turned with the flips:
    exactly the network of the explicit recipe (pinned while volumes were added)."""
    from dlbio_teach.augment import SegmentationTransform
    from dlbio_teach.preprocessing import random_patches
    from dlbio_teach.training import fit

    pairs = [nuclei((48, 48), 5, radius=(5, 8), seed=s) for s in range(3)]
    x = np.stack([p[0] for p in pairs])
    y = np.stack([prepare_star_labels(p[1]) for p in pairs])
    config = SegmentationConfig("stardist", epochs=2, n_patches=16, patch_size=32,
                                batch_size=8, base_channels=4, n_rays=8)
    net, history = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], seed=0,
                                      progress=False)
    targets = np.stack([star_targets(t, 8) for t in y])

    def patches(images, maps, n, seed):
        first, *channels = random_patches([images, *np.moveaxis(maps, 1, 0)], 32, n,
                                          seed=seed)
        return first, np.stack(channels, axis=1)

    torch.manual_seed(0)
    by_hand = UNet(1, 9, depth=2, base_channels=4)
    h = fit(by_hand, patches(x[:2], targets[:2], 16, 0), patches(x[2:], targets[2:], 32, 1),
            loss_fn=StarDistLoss(), epochs=2, batch_size=8, lr=3e-3, augment=False,
            transform=SegmentationTransform(None, "stardist", flips=True), progress=False)
    assert h.train_loss == history.train_loss and h.val_loss == history.val_loss
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  by_hand.state_dict().values()))


def test_swap_star_maps_finds_the_output_that_limits_f1():
    from dlbio_teach.star import swap_star_maps

    image, labels = nuclei((96, 96), 8, seed=3)
    truth = prepare_star_labels(labels)
    true = star_targets(truth, 16)
    short = true.copy()
    short[1:] *= 0.4                      # a network whose distances are far too short
    settings = dict(prob_threshold=0.5, nms_threshold=0.4)

    def f1(maps):
        return match_instances(truth, instances_from_star(maps, **settings))["f1"]

    own_probability = swap_star_maps(short, true, keep="probability")
    own_distances = swap_star_maps(short, true, keep="distances")
    assert np.array_equal(own_probability[1:], true[1:])
    assert np.array_equal(own_distances[1:], short[1:])
    assert f1(own_probability) > 0.9 > 0.5 > f1(own_distances)
    with pytest.raises(ValueError, match="keep must be"):
        swap_star_maps(short, true, keep="prob")
    with pytest.raises(ValueError, match="star_targets"):
        swap_star_maps(short, star_targets(truth, 8), keep="distances")
