"""Intervals: bootstrap confidence intervals over images and paired comparisons, on cases
small enough to check by hand where possible."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.intervals import BootstrapCI, bootstrap_ci, bootstrap_matching, paired_difference
from dlbio_teach.metrics import match_instances


def boxes(*items, shape=(12, 12)):
    """Label image with one object per (label, y0, y1, x0, x1) box."""
    image = np.zeros(shape, np.int32)
    for label, y0, y1, x0, x1 in items:
        image[y0:y1, x0:x1] = label
    return image


# --- Bootstrap ------------------------------------------------------------------------


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    few = bootstrap_ci(rng.normal(0.8, 0.08, 10), seed=0)
    many = bootstrap_ci(rng.normal(0.8, 0.08, 160), seed=0)
    for ci in (few, many):
        assert ci.low < ci.estimate < ci.high
    # 16 times the images: about a quarter of the width (1 / sqrt(16)).
    assert many.width < 0.5 * few.width
    assert (few.n, many.n, few.confidence) == (10, 160, 0.95)


def test_bootstrap_ci_estimate_is_the_statistic_on_all_images_and_is_seeded():
    values = [0.2, 0.9, 0.5, 0.4, 0.8, 0.7, 0.1]
    ci = bootstrap_ci(values, statistic=np.median, seed=3)
    assert ci.estimate == 0.5
    assert ci == bootstrap_ci(values, statistic=np.median, seed=3)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)
    # A higher confidence gives a wider interval from the same resamples.
    assert bootstrap_ci(values, confidence=0.99).width > bootstrap_ci(values).width


def test_bootstrap_ci_of_identical_scores_has_no_width():
    ci = bootstrap_ci([0.7] * 6)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((0.7, 0.7, 0.7))


def test_bootstrap_ci_falls_back_on_percentile_where_bca_is_undefined():
    # Leaving out any one image never moves the median of these: BCa's acceleration is 0/0.
    ci = bootstrap_ci([0.5] * 9 + [0.9], statistic=np.median)
    assert ci.method == "percentile"
    assert ci.low == ci.estimate == 0.5 and 0.5 <= ci.high <= 0.9


def test_bootstrap_ci_str_is_readable():
    # Decimals enough for two significant digits of the width.
    ci = BootstrapCI(0.8312, 0.7801, 0.8899, 0.95, 12)
    assert str(ci) == "0.83 [0.78, 0.89] (95 % CI, 12 images)"
    assert str(BootstrapCI(0.0251, 0.0105, 0.0398, 0.9, 6)) == \
        "0.025 [0.011, 0.040] (90 % CI, 6 images)"


def test_bootstrap_ci_keeps_rows_together_for_pooled_statistics():
    # A ratio of sums over any resample of rows lies between the smallest and largest
    # per-row ratio (0.25 and 0.8): an interval outside them would mean rows were split.
    rows = np.array([[1, 4], [4, 5], [3, 6], [2, 4], [6, 8]], float)
    ci = bootstrap_ci(rows, statistic=lambda r: r[:, 0].sum() / r[:, 1].sum(), seed=0)
    assert ci.estimate == pytest.approx(16 / 27)
    assert 0.25 <= ci.low < ci.estimate < ci.high <= 0.8


def test_bootstrap_matching_pools_counts_over_images():
    matches = [{"tp": 9, "fp": 1, "fn": 0}, {"tp": 1, "fp": 3, "fn": 4},
               {"tp": 8, "fp": 0, "fn": 1}, {"tp": 7, "fp": 2, "fn": 1}]
    ci = bootstrap_matching(matches, score="f1", seed=0)
    assert ci.estimate == pytest.approx(2 * 25 / (2 * 25 + 6 + 6))
    per_image_mean = np.mean([2 * m["tp"] / (2 * m["tp"] + m["fp"] + m["fn"])
                              for m in matches])
    assert abs(ci.estimate - per_image_mean) > 0.05   # pooling is not averaging
    assert ci.low < ci.estimate < ci.high
    recall = bootstrap_matching(matches, score="recall", seed=0)
    assert recall.estimate == pytest.approx(25 / 31)


def test_bootstrap_matching_reads_match_instances_output():
    truth = boxes((1, 0, 4, 0, 4), (2, 0, 4, 6, 10), (3, 6, 10, 0, 4))
    perfect = match_instances(truth, truth)
    half = match_instances(truth, boxes((1, 0, 4, 0, 4)))
    ci = bootstrap_matching([perfect, half, perfect], score="panoptic_quality")
    assert ci.estimate == pytest.approx(7 / (7 + 1))   # 7 exact matches, 2 misses
    with pytest.raises(ValueError, match="sum_iou"):
        bootstrap_matching([{"tp": 1, "fp": 0, "fn": 0}] * 3, score="panoptic_quality")
    with pytest.raises(ValueError, match="score must be one of"):
        bootstrap_matching([perfect] * 3, score="dice")


def test_bootstrap_matching_pools_mean_true_iou():
    # Three true objects per image; "perfect" finds all three exactly, "third" one of them
    # exactly. Pooled over the four images: IoU sum 3 + 1 + 3 + 1 over 12 true objects.
    truth = boxes((1, 0, 4, 0, 4), (2, 0, 4, 6, 10), (3, 6, 10, 0, 4))
    perfect = match_instances(truth, truth)
    third = match_instances(truth, boxes((1, 0, 4, 0, 4)))
    ci = bootstrap_matching([perfect, third, perfect, third], score="mean_true_iou")
    assert ci.estimate == pytest.approx(8 / 12)
    assert ci.low <= ci.estimate <= ci.high
    with pytest.raises(ValueError, match="sum_iou"):
        bootstrap_matching([{"tp": 1, "fp": 0, "fn": 0}] * 3, score="mean_true_iou")


@pytest.mark.parametrize("values, message", [
    ([0.5, float("nan"), 0.7], "NaN"),
    (np.zeros((2, 3, 4)), "1D"),
    ([0.5], "at least 2"),
    (["a", "b"], "numeric"),
])
def test_bootstrap_ci_rejects_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(values)


def test_bootstrap_ci_rejects_bad_settings():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1, 0.2, 0.3], confidence=95)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci([0.1, 0.2, 0.3], method="basic")
    with pytest.raises(ValueError, match="seed"):
        bootstrap_ci([0.1, 0.2, 0.3], seed=-1)


# --- Paired comparison ----------------------------------------------------------------


def test_paired_difference_sign_and_tally():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.5, 0.9, 15)
    a = b + 0.03 + rng.normal(0, 0.005, 15)
    d = paired_difference(a, b, seed=0)
    assert d.difference.low > 0 and d.difference.estimate == pytest.approx(np.mean(a - b))
    assert (d.n_better, d.n_worse, d.n_ties, d.fraction_better) == (15, 0, 0, 1.0)
    swapped = paired_difference(b, a, seed=0)
    assert swapped.difference.high < 0 and swapped.n_worse == 15
    # For an error, lower is better: the tally flips, the sign of a - b does not.
    errors = paired_difference(a, b, higher_is_better=False, seed=0)
    assert errors.n_worse == 15 and errors.difference.estimate > 0
    assert str(d).startswith("a - b: 0.03") and "a better on 15 of 15 images" in str(d)


def test_paired_difference_sees_what_separate_intervals_miss():
    # Images differ a lot from one another, the methods little but consistently.
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.9, 12)
    a, b = base + 0.02, base.copy()
    ci_a, ci_b = bootstrap_ci(a), bootstrap_ci(b)
    assert ci_a.low < ci_b.high                # the separate intervals overlap ...
    assert paired_difference(a, b).difference.low > 0.015   # ... the paired one does not


def test_paired_difference_counts_ties():
    d = paired_difference([0.5, 0.6, 0.7, 0.8], [0.5, 0.5, 0.8, 0.8])
    assert (d.n_better, d.n_worse, d.n_ties) == (1, 1, 2)


def test_paired_difference_rejects_mismatched_or_nan_scores():
    with pytest.raises(ValueError, match=r"\(3,\) and scores_b \(4,\)"):
        paired_difference([0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([0.1, 0.2, 0.3], [0.1, np.nan, 0.3])
