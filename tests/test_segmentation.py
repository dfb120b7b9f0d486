"""dlbio_teach.segmentation: targets, weights, the classical baseline, instances."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.metrics import match_instances
from dlbio_teach.segmentation import (BACKGROUND, BOUNDARY, INTERIOR, class_weights,
                                      instances_from_interior, otsu_watershed,
                                      three_class_targets)
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
