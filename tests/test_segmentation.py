"""dlbio_teach.segmentation: targets, weights, the classical baseline, instances."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.metrics import match_instances
from dlbio_teach.segmentation import (BACKGROUND, BOUNDARY, INTERIOR, class_weights,
                                      distance_targets, instances_from_distance,
                                      instances_from_interior, label_tiles_separately,
                                      otsu_watershed, three_class_targets)
from dlbio_teach.synthetic import nuclei


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
