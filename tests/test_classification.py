"""dlbio_teach.classification: scores for a rare class, measured features, the baseline
neuron; and the rare-class crops of dlbio_teach.synthetic."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.classification import (
    FEATURES,
    class_report,
    confusion_matrix,
    logistic_regression,
    measured_features,
)
from dlbio_teach.synthetic import nucleus_crops


def test_confusion_matrix_by_hand():
    counts = confusion_matrix([0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2])
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert confusion_matrix([0, 0], [0, 0], n_classes=2).tolist() == [[2, 0], [0, 0]]


def test_class_report_by_hand():
    # 8 common (6 right), 2 rare (1 right).
    true = [0] * 8 + [1] * 2
    predicted = [0] * 6 + [1] * 2 + [1, 0]
    report = class_report(true, predicted)
    assert report.accuracy == pytest.approx(7 / 10)
    assert report.recall == pytest.approx((6 / 8, 1 / 2))
    assert report.balanced_accuracy == pytest.approx((6 / 8 + 1 / 2) / 2)
    assert report.support == (8, 2)
    # Wilson's interval for 1 of 2 (95 %): 0.095 to 0.905.
    assert report.recall_low[1] == pytest.approx(0.0945, abs=1e-3)
    assert report.recall_high[1] == pytest.approx(0.9055, abs=1e-3)
    assert report.recall_text(1) == "0.50 [0.09, 0.91] (of 2)"


def test_majority_answer_is_accurate_but_not_balanced():
    true = np.r_[np.zeros(190, int), np.ones(10, int)]
    report = class_report(true, np.zeros(200, int))
    assert report.accuracy == 0.95 and report.balanced_accuracy == 0.5
    assert report.recall_high[1] < 0.35   # 0 of 10 found: the interval says so


def test_fewer_members_give_wider_recall_intervals():
    small = class_report([1] * 10 + [0], [1] * 5 + [0] * 5 + [0])
    large = class_report([1] * 1000 + [0], [1] * 500 + [0] * 500 + [0])
    width = lambda r: r.recall_high[1] - r.recall_low[1]   # noqa: E731
    assert width(small) > 4 * width(large)


def test_class_report_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        class_report([0, 1], [0])
    with pytest.raises(ValueError, match="integers"):
        class_report([0.0, 1.0], [0.2, 0.8])
    with pytest.raises(ValueError, match="no member"):
        class_report([0, 0], [0, 1], n_classes=2)


def test_measured_features_of_drawn_shapes():
    crops = np.zeros((2, 32, 32), np.float32)
    crops[0, 8:24, 8:24] = 1.0                    # a square: solid, round-ish moments
    crops[1, 14:18, 2:30] = 0.5                   # a bar: elongated, dimmer
    features = measured_features(crops)
    assert features.shape == (2, len(FEATURES))
    area, mean, eccentricity, solidity = features.T
    assert area[0] > area[1] and mean[0] > mean[1]
    assert eccentricity[1] > 0.9 > eccentricity[0]
    assert solidity[0] > 0.95
    assert np.all(measured_features(np.zeros((1, 24, 24))) == 0)   # nothing to measure
    with pytest.raises(ValueError, match="stack"):
        measured_features(np.zeros((24, 24)))


def test_logistic_regression_finds_a_rare_class_only_when_balanced():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.05).astype(int)
    x = rng.normal(size=(2000, 2)) + np.c_[1.2 * y, np.zeros(2000)]   # overlapping classes
    balanced = class_report(y, logistic_regression(x, y, balanced=True)(x))
    plain = class_report(y, logistic_regression(x, y, balanced=False)(x))
    assert balanced.recall[1] > plain.recall[1] + 0.3
    assert balanced.balanced_accuracy > plain.balanced_accuracy
    with pytest.raises(ValueError, match="both must be present"):
        logistic_regression(x, np.zeros(2000, int))


def test_nucleus_crops_are_reproducible_and_rare():
    crops, classes = nucleus_crops(400, rare_fraction=0.05, seed=3)
    again, same = nucleus_crops(400, rare_fraction=0.05, seed=3)
    assert np.array_equal(crops, again) and np.array_equal(classes, same)
    assert crops.shape == (400, 32, 32) and crops.dtype == np.float32
    assert 5 <= classes.sum() <= 40
    # A micronucleus adds bright pixels outside the main nucleus: more foreground.
    area = measured_features(crops)[:, 0]
    assert area[classes == 1].mean() > area[classes == 0].mean()
    assert nucleus_crops(50, rare_fraction=0.0)[1].sum() == 0
    with pytest.raises(ValueError, match="probabilities"):
        nucleus_crops(10, rare_fraction=1.5)
    with pytest.raises(ValueError, match="at least 24"):
        nucleus_crops(10, size=16)
