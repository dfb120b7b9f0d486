"""dlbio_teach.baseline, .targets and .segmentation: targets, weights, the classical baseline,
instances, and the training and prediction API."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.baseline import otsu_watershed
from dlbio_teach.metrics import match_instances
from dlbio_teach.segmentation import label_tiles_separately
from dlbio_teach.synthetic import nuclei
from dlbio_teach.targets import (
    BACKGROUND,
    BOUNDARY,
    INTERIOR,
    class_weights,
    distance_targets,
    instances_from_distance,
    instances_from_interior,
    three_class_targets,
)


def touching_pair():
    labels = np.zeros((12, 20), np.int32)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2          # touches object 1 along a column
    return labels


def test_three_class_targets_separate_touching_objects():
    target = three_class_targets(touching_pair())
    assert set(np.unique(target)) == {BACKGROUND, INTERIOR, BOUNDARY}
    assert np.all(target[2:10, 9] == BOUNDARY) and np.all(target[2:10, 10] == BOUNDARY)
    # The interiors of the two objects are not connected.
    from scipy import ndimage as ndi
    assert ndi.label(target == INTERIOR)[1] == 2


def test_targets_refuse_float_masks():
    with pytest.raises(ValueError, match="integer instance mask"):
        three_class_targets(np.zeros((4, 4), np.float32))


def test_class_weights_favour_rare_classes_and_refuse_missing_ones():
    weights = class_weights(three_class_targets(touching_pair()))
    assert weights.mean() == pytest.approx(1.0)
    assert weights[BACKGROUND] < weights[INTERIOR]
    with pytest.raises(ValueError, match="absent"):
        class_weights(np.zeros((4, 4), int))


def test_instances_from_perfect_interior_recover_the_objects():
    labels = touching_pair()
    target = three_class_targets(labels)
    instances = instances_from_interior((target == INTERIOR).astype(np.float32),
                                        foreground=labels > 0, min_size=4)
    m = match_instances(labels, instances, threshold=0.9)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)


def test_instances_threshold_is_checked():
    with pytest.raises(ValueError, match="threshold"):
        instances_from_interior(np.zeros((8, 8)), threshold=1.0)


def test_otsu_watershed_splits_synthetic_nuclei_reasonably():
    image, labels = nuclei((128, 128), n_nuclei=12, seed=3)
    m = match_instances(labels, otsu_watershed(image), threshold=0.5)
    assert m["f1"] > 0.6
    assert otsu_watershed(image).dtype == np.int32


@pytest.mark.needs_mirror
def test_otsu_watershed_on_real_nuclei(data_home):
    from dlbio_teach.data import load
    from dlbio_teach.preprocessing import normalize_percentile

    data = load("stardist_nuclei")
    predicted = otsu_watershed(normalize_percentile(data["image"]))
    m = match_instances(data["labels"].astype(np.int32), predicted, threshold=0.5)
    # A real baseline: clearly better than nothing, clearly short of perfect.
    assert 0.5 < m["f1"] < 0.99
    assert abs(m["n_pred"] - m["n_true"]) < 0.3 * m["n_true"]


def test_distance_targets_peak_at_each_centre_and_vanish_outside():
    labels = touching_pair()
    d = distance_targets(labels)
    assert d.dtype == np.float32 and d.shape == labels.shape
    assert np.all(d[labels == 0] == 0) and np.all(d[labels > 0] > 0)
    for i in (1, 2):
        assert d[labels == i].max() == pytest.approx(1.0)
    # The shared edge of two touching objects is a valley between two peaks.
    assert d[5, 9] < 0.3 and d[5, 10] < 0.3


def test_distance_targets_small_objects_also_reach_one():
    labels = np.zeros((20, 20), np.int32)
    labels[1:4, 1:4] = 1            # small
    labels[6:19, 6:19] = 2          # large
    d = distance_targets(labels)
    assert d[2, 2] == pytest.approx(1.0) and d[12, 12] == pytest.approx(1.0)


def test_instances_from_distance_recovers_touching_objects():
    labels = touching_pair()
    pred = instances_from_distance(distance_targets(labels), seed_threshold=0.5,
                                   foreground_threshold=0.1, min_size=2)
    m = match_instances(labels, pred, threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)
    # Without a valley (one seed region) the two objects merge.
    merged = instances_from_distance(distance_targets((labels > 0).astype(np.int32)),
                                     seed_threshold=0.2, foreground_threshold=0.1, min_size=2)
    assert merged.max() == 1


def test_instances_from_distance_checks_thresholds():
    with pytest.raises(ValueError, match="foreground_threshold < seed_threshold"):
        instances_from_distance(np.zeros((8, 8)), seed_threshold=0.2, foreground_threshold=0.3)


def test_label_tiles_separately_cuts_objects_at_tile_borders():
    labels = np.zeros((16, 16), np.int32)
    labels[1:4, 1:4] = 1            # inside tile (0, 0)
    labels[6:10, 6:10] = 2          # across the centre of four 8-pixel tiles
    image = (labels > 0).astype(float)
    naive = label_tiles_separately(image, lambda t: measure_label(t > 0.5), tile_size=8)
    assert naive.max() == 5         # object 2 cut into four pieces
    whole = measure_label(image > 0.5)
    assert whole.max() == 2


def measure_label(mask):
    from skimage.measure import label
    return label(mask)


# --- the training / decoding / tuning API ------------------------------------------------

from dlbio_teach.models import UNet  # noqa: E402
from dlbio_teach.preprocessing import random_patches  # noqa: E402
from dlbio_teach.records import RunRecord  # noqa: E402
from dlbio_teach.runtime import get_profile, hardware_info  # noqa: E402
from dlbio_teach.segmentation import (  # noqa: E402
    SegmentationConfig,
    WeightedCrossEntropy,
    instances_from_maps,
    predict_maps,
    segment,
    train_segmentation,
    training_targets,
)
from dlbio_teach.training import fit  # noqa: E402
from dlbio_teach.tuning import threshold_grid, tune_otsu_watershed, tune_thresholds  # noqa: E402


def nuclei_stack(n=3, size=64, seed=0):
    pairs = [nuclei((size, size), 8, seed=seed + s) for s in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def tiny_config(formulation, **changes):
    values = dict(epochs=2, n_patches=32, patch_size=32, batch_size=8, base_channels=4)
    values.update(changes)
    return SegmentationConfig(formulation, **values)


def test_config_from_profile_and_its_checks():
    smoke = SegmentationConfig.from_profile("three_class", get_profile("smoke"))
    assert smoke.epochs == 12 and smoke.profile == "smoke" and smoke.n_outputs == 3
    standard = SegmentationConfig.from_profile("distance", get_profile("standard"), lr=1e-3)
    assert standard.epochs == 20 and standard.lr == 1e-3 and standard.n_outputs == 1
    with pytest.raises(ValueError, match="formulation must be one of"):
        SegmentationConfig("stardust")
    with pytest.raises(ValueError, match="multiple of"):
        SegmentationConfig("distance", patch_size=30, depth=2)


@pytest.mark.parametrize("formulation", ["three_class", "distance"])
def test_train_segmentation_equals_the_recipe_it_replaces(formulation):
    """One call gives exactly the network that the chapters used to build by hand."""
    x, y = nuclei_stack()
    config = tiny_config(formulation)
    net, history = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], seed=0,
                                      progress=False)
    targets = training_targets(y, formulation=formulation)
    if formulation == "three_class":
        loss = WeightedCrossEntropy(class_weights(targets[:2]))
    else:
        from torch.nn import functional as F
        loss = F.mse_loss
    train = random_patches([x[:2], targets[:2]], 32, 32, seed=0)
    val = random_patches([x[2:], targets[2:]], 32, 32, seed=1)
    import torch
    torch.manual_seed(0)
    by_hand = UNet(1, config.n_outputs, depth=2, base_channels=4)
    h = fit(by_hand, train, val, loss_fn=loss, epochs=2, batch_size=8, lr=3e-3, augment=True,
            progress=False)
    assert h.train_loss == history.train_loss and h.val_loss == history.val_loss
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  by_hand.state_dict().values()))


def test_train_segmentation_writes_its_run_record(tmp_path):
    x, y = nuclei_stack()
    net, history = train_segmentation(tiny_config("three_class", epochs=1), x[:2], y[:2],
                                      x[2:], y[2:], progress=False, run_dir=tmp_path,
                                      record={"datasets": ["blobs"],
                                              "splits": {"train": [0, 1], "validation": [2]}})
    record = RunRecord.load(tmp_path)
    assert record.hyperparameters["formulation"] == "three_class"
    assert record.hyperparameters["loss"] == "weighted cross-entropy"
    assert len(record.hyperparameters["class_weights"]) == 3
    assert record.splits["validation"] == [2] and "blobs" in record.datasets


def test_train_segmentation_fine_tunes_the_model_given():
    x, y = nuclei_stack()
    start = UNet(1, 1, depth=2, base_channels=4)
    net, _ = train_segmentation(tiny_config("distance", epochs=1), x[:2], y[:2], x[2:], y[2:],
                                model=start, progress=False)
    assert net is start


def test_train_segmentation_says_what_is_wrong():
    x, y = nuclei_stack()
    with pytest.raises(ValueError, match="must match the images"):
        train_segmentation(tiny_config("distance"), x[:2], y[:1], x[2:], y[2:])
    with pytest.raises(ValueError, match="integer instance mask"):
        train_segmentation(tiny_config("distance"), x[:2], y[:2].astype(float), x[2:], y[2:])
    with pytest.raises(ValueError, match="smaller than"):
        train_segmentation(tiny_config("distance", patch_size=128), x[:2], y[:2], x[2:], y[2:])


def test_instances_from_maps_matches_the_building_blocks():
    labels = touching_pair()
    d = distance_targets(labels)
    assert np.array_equal(instances_from_maps(d, formulation="distance", seed_threshold=0.5),
                          instances_from_distance(d, seed_threshold=0.5))
    target = three_class_targets(labels)
    probs = np.stack([(target == k).astype(np.float32) for k in range(3)])
    got = instances_from_maps(probs, formulation="three_class", seed_threshold=0.5, min_size=4)
    assert match_instances(labels, got)["f1"] == 1.0
    with pytest.raises(ValueError, match=r"\(3, Y, X\)"):
        instances_from_maps(d, formulation="three_class", seed_threshold=0.5)


def test_tune_thresholds_picks_the_best_setting_on_a_hand_made_case():
    labels = touching_pair()
    d = distance_targets(labels)
    # Seeds above 0.95 would vanish; 0.3 is a valid seed level for this clean map.
    tuned = tune_thresholds([d], [labels], formulation="distance",
                            candidates=[{"seed_threshold": 0.99, "foreground_threshold": 0.1},
                                        {"seed_threshold": 0.3, "foreground_threshold": 0.1}])
    assert tuned.best == {"seed_threshold": 0.3, "foreground_threshold": 0.1}
    assert tuned.scores == [0.0, 1.0] and tuned.score == 1.0
    assert len(threshold_grid("distance")) == 11 * 3


def test_segment_tiled_equals_whole_image():
    x, y = nuclei_stack(n=3, size=64)
    net, _ = train_segmentation(tiny_config("distance", epochs=1), x[:2], y[:2], x[2:], y[2:],
                                progress=False)
    big = np.concatenate([x[0], x[1]], axis=1)
    thresholds = {"seed_threshold": 0.3, "foreground_threshold": 0.05}
    whole = segment(net, big, formulation="distance", thresholds=thresholds)
    tiled = segment(net, big, formulation="distance", thresholds=thresholds, tile_size=32)
    assert np.array_equal(whole, tiled)
    probs = predict_maps(UNet(1, 3, depth=1, base_channels=4), x[0], formulation="three_class")
    assert probs.shape == (3, 64, 64) and np.allclose(probs.sum(0), 1, atol=1e-5)


def test_tune_otsu_watershed_chooses_on_the_images_given():
    image, labels = nuclei((96, 96), 10, touching=0.5, seed=3)
    tuned = tune_otsu_watershed([image], [labels], min_distances=(2, 6, 30))
    assert tuned.best["min_distance"] in (2, 6, 30)
    assert tuned.score == max(tuned.scores)
    assert tuned.candidates == [{"min_distance": d} for d in (2, 6, 30)]


def test_segmentation_calls_explain_bad_images():
    """The segmentation calls give the course's messages for RGB images and stacks."""
    x, y = nuclei_stack()
    rgb = np.repeat(x[..., None], 3, axis=-1)
    with pytest.raises(ValueError, match=r"stack of images \(N, Y, X\).*channels last"):
        train_segmentation(tiny_config("distance"), rgb[:2], y[:2], x[2:], y[2:])
    net = UNet(1, 1, depth=1, base_channels=4)
    with pytest.raises(ValueError, match=r"RGB colour image with its channels last.*rgb2gray"):
        segment(net, rgb[0], formulation="distance", thresholds={"seed_threshold": 0.5})
    with pytest.raises(ValueError, match=r"stack of 3 images"):
        segment(net, x, formulation="distance", thresholds={"seed_threshold": 0.5})


def test_train_segmentation_reuses_an_identical_run(tmp_path):
    """Same settings, seed and data: the earlier network is loaded, not trained again;
    anything different trains."""
    x, y = nuclei_stack()
    config = tiny_config("distance", epochs=1)
    first, h1 = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                                   run_dir=tmp_path / "first")
    again, h2 = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                                   reuse=tmp_path / "first", run_dir=tmp_path / "again")
    import torch
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                  again.state_dict().values()))
    assert h2.train_loss == pytest.approx(h1.train_loss)
    assert "reused from" in RunRecord.load(tmp_path / "again").notes
    train_segmentation(config, x[:2], y[:2], x[2:], y[2:], seed=1, progress=False,
                       reuse=tmp_path / "first", run_dir=tmp_path / "seed1")
    assert "reused" not in RunRecord.load(tmp_path / "seed1").notes      # another seed: trained
    changed_data = x.copy()
    changed_data[0, 0, 0] += 0.5
    train_segmentation(config, changed_data[:2], y[:2], x[2:], y[2:], progress=False,
                       reuse=tmp_path / "first", run_dir=tmp_path / "data")
    assert "reused" not in RunRecord.load(tmp_path / "data").notes       # other data: trained


def test_a_run_on_another_family_of_cpu_kernels_is_not_reused(tmp_path):
    """The same seed on another family of CPU kernels trains other weights: train again."""
    import json

    x, y = nuclei_stack()
    config = tiny_config("distance", epochs=1)
    train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                       run_dir=tmp_path / "first")
    record = tmp_path / "first" / "run_record.json"
    written = json.loads(record.read_text())
    assert written["hardware"]["cpu_kernels"] == hardware_info("cpu")["cpu_kernels"]
    written["hardware"]["cpu_kernels"] = "ANOTHER"
    record.write_text(json.dumps(written))
    train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                       reuse=tmp_path / "first", run_dir=tmp_path / "other")
    assert "reused" not in RunRecord.load(tmp_path / "other").notes


# --- 2D results pinned while the functions grew a Z axis ------------------------------------

def otsu_watershed_2d_reference(image, min_distance=8, min_size=10):
    """The baseline as written for images only, before volumes: the 2D results must stay."""
    from scipy import ndimage as ndi
    from skimage import feature, filters, measure, segmentation

    foreground = image > filters.threshold_otsu(image)
    regions = measure.label(foreground, connectivity=1)
    foreground = (np.bincount(regions.ravel())[regions] >= min_size) & (regions > 0)
    distance = ndi.distance_transform_edt(foreground)
    peaks = feature.peak_local_max(distance, min_distance=min_distance,
                                   labels=measure.label(foreground), exclude_border=False)
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-distance, markers, mask=foreground)
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


@pytest.mark.parametrize("seed,min_distance", [(0, 3), (1, 6), (2, 10)])
def test_otsu_watershed_2d_is_unchanged(seed, min_distance):
    image, _ = nuclei((96, 96), 12, touching=0.5, seed=seed)
    assert np.array_equal(otsu_watershed(image, min_distance=min_distance),
                          otsu_watershed_2d_reference(image, min_distance=min_distance))


def test_2d_configs_and_networks_record_what_they_always_did():
    """Run records (and reuse=, which compares them) of 2D trainings keep their keys."""
    keys = {"formulation", "epochs", "n_patches", "patch_size", "batch_size", "depth",
            "base_channels", "lr", "augment", "n_val_patches", "profile"}
    assert set(SegmentationConfig("distance").to_dict()) == keys
    star = SegmentationConfig("stardist").to_dict()
    assert set(star) == keys | {"n_rays"} and star["n_rays"] == 32 and star["augment"] is True
    x, y = nuclei_stack()
    net, _ = train_segmentation(tiny_config("distance", epochs=1), x[:2], y[:2], x[2:], y[2:],
                                progress=False)
    assert set(net.config) == {"in_channels", "out_channels", "depth", "base_channels",
                               "residual", "residual_output"}


def test_dropout_trains_a_network_with_dropout_and_is_recorded(tmp_path):
    from dlbio_teach.models import MonteCarloDropout

    x, y = nuclei_stack()
    config = tiny_config("three_class", epochs=1, dropout=0.2)
    assert config.to_dict()["dropout"] == 0.2
    net, _ = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                                run_dir=tmp_path)
    assert net.config["dropout"] == 0.2
    assert any(isinstance(m, MonteCarloDropout) for m in net.modules())
    assert RunRecord.load(tmp_path).hyperparameters["dropout"] == 0.2
    # The same settings without dropout are another run: reuse= does not load this one.
    plain, history = train_segmentation(tiny_config("three_class", epochs=1), x[:2], y[:2],
                                        x[2:], y[2:], progress=False, reuse=tmp_path)
    assert not any(isinstance(m, MonteCarloDropout) for m in plain.modules())
