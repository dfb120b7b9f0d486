"""Effects between two conditions: per-image measures, the effect's interval, a pipeline's
bias against the truth, and the synthetic experiment with a known effect."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.annotators import dilate_labels, merge_touching
from dlbio_teach.conclusions import condition_effect, image_measures
from dlbio_teach.synthetic import two_conditions


def test_image_measures_by_hand():
    labels = np.zeros((10, 10), np.int32)
    labels[0:2, 0:3] = 1          # 6 pixels
    labels[5:9, 5:9] = 4          # 16 pixels; labels need not be consecutive
    assert image_measures(labels) == {"count": 2, "mean_area": 11.0}
    empty = image_measures(np.zeros((4, 4), np.int32))
    assert empty["count"] == 0 and np.isnan(empty["mean_area"])


def test_effect_by_hand_relative_and_absolute():
    control, treated = [10.0, 12.0, 8.0], [11.0, 13.2, 8.8]
    rel = condition_effect(control, treated, seed=0)
    assert rel.estimate == pytest.approx(0.10) and rel.n == 6
    assert rel.low <= rel.estimate <= rel.high
    ab = condition_effect(control, treated, relative=False, seed=0)
    assert ab.estimate == pytest.approx(1.0)
    # Every image of a condition alike: no spread, the interval is the estimate.
    flat = condition_effect([2.0, 2.0], [3.0, 3.0])
    assert (flat.low, flat.estimate, flat.high) == (0.5, 0.5, 0.5)


def test_interval_narrows_with_more_images_and_repeats_with_its_seed():
    rng = np.random.default_rng(0)
    few = condition_effect(rng.normal(100, 10, 5), rng.normal(110, 10, 5), seed=0)
    many = condition_effect(rng.normal(100, 10, 80), rng.normal(110, 10, 80), seed=0)
    assert many.width < few.width
    a = condition_effect([1.0, 2.0, 3.0], [2.0, 3.0, 5.0], seed=7)
    assert a == condition_effect([1.0, 2.0, 3.0], [2.0, 3.0, 5.0], seed=7)


def test_bias_against_a_reference_on_the_same_images():
    truth_c = np.array([100.0, 90, 110, 105])
    truth_t = 1.5 * truth_c + np.array([3.0, -2, 0, 1])
    # A pipeline that adds 20 pixels to every nucleus shrinks the relative effect.
    bias = condition_effect(truth_c + 20, truth_t + 20, reference=(truth_c, truth_t), seed=0)
    assert bias.estimate < 0 and bias.high < 0
    # One that scales every area by the same factor keeps it: the bias cancels.
    same = condition_effect(1.3 * truth_c, 1.3 * truth_t, reference=(truth_c, truth_t), seed=0)
    assert same.estimate == pytest.approx(0.0, abs=1e-12)
    assert abs(same.low) < 1e-9 and abs(same.high) < 1e-9


def test_bad_input_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="at least 2"):
        condition_effect([1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        condition_effect([1.0, np.nan], [2.0, 3.0])
    with pytest.raises(ValueError, match="relative=False"):
        condition_effect([0.0, 0.0], [2.0, 3.0])
    with pytest.raises(ValueError, match="same images"):
        condition_effect([1.0, 2.0], [2.0, 3.0], reference=([1.0, 2.0, 3.0], [2.0, 3.0]))
    with pytest.raises(ValueError, match="a pair"):
        condition_effect([1.0, 2.0], [2.0, 3.0], reference=([1.0, 2.0],))


def test_two_conditions_carry_the_effect_they_were_made_with():
    data = two_conditions(12, (128, 128), area_change=0.3, radius=8, n_nuclei=12, seed=0)
    truth = {c: [image_measures(lab)["mean_area"] for lab in data[c][1]] for c in data}
    effect = condition_effect(truth["control"], truth["treated"], seed=0)
    assert 0.15 < effect.estimate < 0.45 and effect.low > 0
    none = two_conditions(12, (128, 128), area_change=0.0, radius=8, n_nuclei=12, seed=1)
    truth0 = {c: [image_measures(lab)["mean_area"] for lab in none[c][1]] for c in none}
    null = condition_effect(truth0["control"], truth0["treated"], seed=0)
    assert null.low < 0 < null.high
    images, labels = data["control"]
    assert images.dtype == np.float32 and labels.dtype == np.int32 and images.shape == labels.shape
    again = two_conditions(12, (128, 128), area_change=0.3, radius=8, n_nuclei=12, seed=0)
    assert np.array_equal(again["treated"][0], data["treated"][0])
    with pytest.raises(ValueError, match="at least 2"):
        two_conditions(1)


def test_merging_and_growing_outlines_move_the_effect_as_the_chapter_says():
    data = two_conditions(10, (128, 128), area_change=0.2, radius=8, n_nuclei=20,
                          touching=0.5, seed=2)
    truth = [[image_measures(lab)["mean_area"] for lab in data[c][1]] for c in data]
    grown = [[image_measures(dilate_labels(lab, radius=2))["mean_area"] for lab in data[c][1]]
             for c in data]
    merged = [[image_measures(merge_touching(lab, probability=1.0))["mean_area"]
               for lab in data[c][1]] for c in data]
    assert condition_effect(*grown, reference=truth).estimate < 0   # a ring dilutes the ratio
    assert np.mean(merged[0]) > np.mean(truth[0])                   # merges enlarge nuclei
