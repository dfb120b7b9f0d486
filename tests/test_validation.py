"""Validation: bootstrap intervals, paired comparison, annotators and consensus, ensembles,
shift detection; on cases small enough to check by hand where possible."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlbio_teach.metrics import match_instances
from dlbio_teach.synthetic import add_poisson_gaussian_noise, nuclei
from dlbio_teach.validation import (SHIFT_KINDS, BootstrapCI, ShiftDetector,
                                    agreement_matrix, bootstrap_ci, bootstrap_matching,
                                    combine_ensemble, dilate_labels, drop_small_objects,
                                    erode_labels, majority_vote, merge_touching,
                                    paired_difference, shift_image, simulate_annotators,
                                    staple, uncertainty_on_errors)


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


# --- Simulated annotators -------------------------------------------------------------


def test_dilate_and_erode_by_hand():
    lab = boxes((4, 2, 7, 2, 7), shape=(9, 9))          # a 5x5 square
    generous = dilate_labels(lab, radius=1)
    assert int((generous == 4).sum()) == 7 * 7 - 4      # one pixel out, corners excluded
    tight = erode_labels(lab, radius=1)
    assert np.array_equal(tight == 4, boxes((1, 3, 6, 3, 6), shape=(9, 9)) > 0)
    assert generous.shape == tight.shape == lab.shape and tight.dtype == np.int32


def test_erode_separates_touching_objects_but_keeps_small_ones():
    lab = boxes((1, 1, 7, 1, 5), (2, 1, 7, 5, 9), (3, 10, 11, 10, 11))
    tight = erode_labels(lab, radius=1)
    # Objects 1 and 2 touched along column 4|5; now a two-pixel gap parts them.
    assert tight[:, 4].max() == 0 and tight[:, 5].max() == 0
    assert int((tight == 3).sum()) == 1                # the one-pixel object stays
    assert np.array_equal(erode_labels(lab, radius=0), lab)


def test_drop_small_objects():
    lab = boxes((1, 0, 5, 0, 5), (2, 0, 4, 6, 10), (3, 7, 8, 7, 8), (4, 10, 11, 0, 2))
    assert np.unique(drop_small_objects(lab, area_quantile=0.5, probability=1.0)).tolist() \
        == [0, 1, 2]
    assert np.array_equal(drop_small_objects(lab, probability=0.0), lab)
    draws = [np.unique(drop_small_objects(lab, area_quantile=0.5, probability=0.5,
                                          seed=s)).tolist() for s in range(20)]
    assert all({1, 2} <= set(d) for d in draws)        # large objects are never missed
    assert len({tuple(d) for d in draws}) > 1          # the seed decides which are missed
    assert draws[3] == np.unique(drop_small_objects(lab, area_quantile=0.5,
                                                    probability=0.5, seed=3)).tolist()


def test_merge_touching():
    # 1 touches 2 (side), 2 touches 3 (corner); 4 is one background pixel away from 3.
    lab = boxes((1, 0, 3, 0, 3), (2, 0, 3, 3, 6), (3, 3, 5, 6, 8), (4, 6, 8, 6, 8))
    merged = merge_touching(lab, probability=1.0)
    assert np.array_equal(merged, np.where(lab == 4, 4, np.where(lab > 0, 1, 0)))
    assert np.array_equal(merge_touching(lab, probability=0.0), lab)
    assert np.unique(merge_touching(lab, probability=1.0, distance=2)).tolist() == [0, 1]


def test_simulate_annotators_have_their_biases():
    _, truth = nuclei((96, 96), n_nuclei=14, touching=0.5, seed=2)
    ann = simulate_annotators(truth, seed=0)
    assert sorted(ann) == ["generous", "merges", "misses_small", "tight"]
    for labels in ann.values():
        assert labels.shape == truth.shape and np.issubdtype(labels.dtype, np.integer)

    def count(x):
        return len(np.unique(x)) - 1

    area = (truth > 0).sum()
    assert (ann["generous"] > 0).sum() > area > (ann["tight"] > 0).sum()
    assert count(ann["generous"]) == count(ann["tight"]) == count(truth)
    assert count(ann["misses_small"]) < count(truth)
    assert count(ann["merges"]) < count(truth)
    again = simulate_annotators(truth, seed=0)
    assert all(np.array_equal(ann[k], again[k]) for k in ann)


def test_annotators_reject_non_label_images():
    with pytest.raises(ValueError, match="integer instance mask"):
        dilate_labels(np.zeros((4, 4), float))
    with pytest.raises(ValueError, match="2D"):
        simulate_annotators(np.zeros((2, 4, 4), int))
    with pytest.raises(ValueError, match="probability"):
        merge_touching(np.zeros((4, 4), int), probability=1.5)


# --- Consensus and agreement ----------------------------------------------------------


def test_majority_vote_by_hand():
    a = np.array([[1, 1, 0], [0, 1, 0]])
    b = np.array([[1, 0, 0], [1, 1, 0]])
    c = np.array([[0, 1, 1], [0, 1, 0]])
    # Votes per pixel: [[2, 2, 1], [1, 3, 0]]; foreground where 2 or more of 3.
    assert majority_vote([a, b, c]).astype(int).tolist() == [[1, 1, 0], [0, 1, 0]]
    # Two annotators who disagree tie: background.
    assert majority_vote([a, b]).astype(int).tolist() == [[1, 0, 0], [0, 1, 0]]
    # Label images count as foreground wherever > 0; a dict works like a list.
    assert np.array_equal(majority_vote({"x": 5 * a, "y": 2 * b, "z": c}),
                          majority_vote(np.stack([a, b, c])))


def test_staple_of_identical_annotators_is_their_mask():
    mask = boxes((1, 2, 8, 3, 9)) > 0
    result = staple([mask, mask, mask])
    assert np.array_equal(result.consensus, mask)
    assert np.allclose(result.probability, mask, atol=1e-6)
    assert np.allclose(result.sensitivity, 1) and np.allclose(result.specificity, 1)
    assert result.sensitivity.shape == (3,)


def test_staple_trusts_a_tight_annotator_less_on_foreground():
    _, truth = nuclei((64, 64), n_nuclei=8, seed=0)
    tight = erode_labels(truth, radius=2)
    generous = dilate_labels(truth, radius=2)
    result = staple([truth, truth, tight, generous])
    sens, spec = result.sensitivity, result.specificity
    assert sens[2] < sens[0] - 0.1 and sens[2] < sens[1] - 0.1     # misses foreground
    assert spec[3] < spec[0] - 0.05                                  # adds foreground
    assert spec[2] > 0.99 and sens[3] > 0.99
    assert np.array_equal(result.consensus, truth > 0)


def test_consensus_rejects_bad_masks():
    m = np.zeros((4, 4), int)
    with pytest.raises(ValueError, match=r"\(4, 4\), \(4, 5\)"):
        majority_vote([m, np.zeros((4, 5), int)])
    with pytest.raises(ValueError, match="at least 2"):
        staple([m])
    with pytest.raises(ValueError, match="NaN"):
        majority_vote([m.astype(float), np.full((4, 4), np.nan)])
    with pytest.raises(ValueError, match="empty"):
        staple([m, m])


def test_agreement_matrix_by_hand():
    a = boxes((1, 0, 3, 0, 3), (2, 3, 6, 3, 6), shape=(6, 6))
    b = boxes((7, 0, 3, 0, 3), shape=(6, 6))           # finds one of the two
    f1 = agreement_matrix([a, b, a], measure="f1")
    assert np.allclose(f1, [[1, 2 / 3, 1], [2 / 3, 1, 2 / 3], [1, 2 / 3, 1]])
    dice = agreement_matrix({"a": a, "b": b}, measure="dice")
    assert dice[0, 1] == pytest.approx(2 * 9 / (18 + 9))
    # Stacks of images pool counts: image 1 gives tp=1, fn=1; image 2 tp=2: F1 = 6/7.
    pooled = agreement_matrix([np.stack([a, a]), np.stack([b, a])])
    assert pooled[0, 1] == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))


def test_agreement_matrix_of_simulated_annotators():
    _, truth = nuclei((96, 96), n_nuclei=14, touching=0.5, seed=2)
    m = agreement_matrix(simulate_annotators(truth, seed=0))
    assert m.shape == (4, 4) and np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
    off = m[np.triu_indices(4, 1)]
    assert np.all(off < 1) and np.all(off > 0.2)
    with pytest.raises(ValueError, match="measure"):
        agreement_matrix([truth, truth], measure="iou")
    with pytest.raises(ValueError, match="one shape"):
        agreement_matrix([truth, truth[:10]])


# --- Ensembles ------------------------------------------------------------------------


def test_combine_ensemble_by_hand():
    p = np.array([[[0.2, 1.0, 0.5]], [[0.4, 0.0, 0.5]]])      # 2 members, 1x3 image
    mean, std = combine_ensemble(p)
    assert np.allclose(mean, [[0.3, 0.5, 0.5]])
    assert np.allclose(std, [[0.1, 0.5, 0.0]])
    _, entropy = combine_ensemble(p, uncertainty="entropy")
    h = -(0.3 * math.log2(0.3) + 0.7 * math.log2(0.7))
    assert np.allclose(entropy, [[h, 1.0, 1.0]])
    # Class probabilities (M, C, Y, X): the mean keeps the classes, the map does not.
    classes = np.stack([p, 1 - p], axis=1)
    mean_c, std_c = combine_ensemble(classes)
    assert mean_c.shape == (2, 1, 3) and std_c.shape == (1, 3)
    assert np.allclose(std_c, std)
    assert np.allclose(combine_ensemble(classes, uncertainty="entropy")[1], entropy)


def test_ensemble_uncertainty_is_higher_on_error_pixels():
    # Five members each draw the same disk with its own small shift and radius: they agree
    # inside and outside, and disagree along the rim, where the mean is also wrong.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    truth = np.hypot(yy - 24, xx - 24) <= 12
    members = []
    for _ in range(5):
        cy, cx = 24 + rng.normal(0, 1.5, 2)
        r = 12 + rng.normal(0, 1.5)
        members.append(1 / (1 + np.exp(np.hypot(yy - cy, xx - cx) - r)))
    mean, unc = combine_ensemble(np.stack(members))
    result = uncertainty_on_errors(unc, mean > 0.5, truth)
    assert result["n_error"] > 0
    assert result["error"] > 2 * result["correct"]
    assert result["auroc"] > 0.8


def test_uncertainty_on_errors_without_errors_and_bad_input():
    unc = np.array([[0.1, 0.2]])
    r = uncertainty_on_errors(unc, np.array([[1, 0]]), np.array([[1, 0]]))
    assert math.isnan(r["error"]) and math.isnan(r["auroc"]) and r["n_correct"] == 2
    with pytest.raises(ValueError, match="same shape"):
        uncertainty_on_errors(unc, np.array([[1, 0, 0]]), np.array([[1, 0, 0]]))


@pytest.mark.parametrize("probabilities, message", [
    (np.full((1, 4, 4), 0.5), "at least 2 members"),
    (np.full((2, 4), 0.5), r"\(M, Y, X\)"),
    (np.full((2, 4, 4), 3.0), r"\[0, 1\]"),
])
def test_combine_ensemble_rejects_bad_input(probabilities, message):
    with pytest.raises(ValueError, match=message):
        combine_ensemble(probabilities)


# --- Domain shift ---------------------------------------------------------------------


def noisy_nuclei(seed, size=64):
    return add_poisson_gaussian_noise(nuclei((size, size), 6, seed=seed)[0], 200, seed=seed)


def test_shift_image_kinds():
    image = noisy_nuclei(0)
    for kind in SHIFT_KINDS:
        assert np.array_equal(shift_image(image, kind=kind, strength=0), image)
        assert shift_image(image, kind=kind, strength=0.3).shape == image.shape
    flat = np.full((64, 64), 0.5, np.float32); flat[0, 0] = 0; flat[0, 1] = 1   # range 1
    noisy = shift_image(flat, kind="noise", strength=0.1, seed=4)
    assert np.std(noisy - flat) == pytest.approx(0.1, rel=0.05)
    assert np.array_equal(noisy, shift_image(flat, kind="noise", strength=0.1, seed=4))
    assert shift_image(image, kind="blur", strength=2).std() < image.std()
    gamma = shift_image(image, kind="gamma", strength=1.0)
    assert (gamma.min(), gamma.max()) == pytest.approx((image.min(), image.max()))
    spot = np.zeros((32, 32), np.float32); spot[12:20, 12:20] = 1       # an 8x8 square
    assert (shift_image(spot, kind="scale", strength=1.0) > 0.5).sum() == \
        pytest.approx(4 * 64, rel=0.15)
    # Zooming out fills the new field of view by mirroring; the centre holds a 4x4 square.
    zoomed_out = shift_image(spot, kind="scale", strength=-0.5)
    assert (zoomed_out[8:24, 8:24] > 0.5).sum() == pytest.approx(64 / 4, rel=0.3)
    with pytest.raises(ValueError, match="kind must be one of"):
        shift_image(image, kind="rotate", strength=1)
    with pytest.raises(ValueError, match="> -1"):
        shift_image(image, kind="gamma", strength=-1)


def test_shift_detector_passes_new_images_and_flags_shifted_ones():
    detector = ShiftDetector().fit([noisy_nuclei(s) for s in range(12)])
    held_out = [noisy_nuclei(s) for s in range(100, 108)]
    assert not any(detector.is_out_of_distribution(x) for x in held_out)
    for kind, strength in [("noise", 0.05), ("gamma", 0.5), ("gamma", -0.3),
                           ("blur", 1.5), ("scale", 0.5)]:
        shifted = [shift_image(x, kind=kind, strength=strength, seed=i)
                   for i, x in enumerate(held_out[:3])]
        assert all(detector.is_out_of_distribution(x) for x in shifted), (kind, strength)
    # The z-scores say which statistics moved.
    z = detector.zscores(shift_image(held_out[0], kind="noise", strength=0.05))
    assert z["noise_sigma"] > 5 and z["high_frequency"] > 2
    z = detector.zscores(shift_image(held_out[0], kind="blur", strength=1.5))
    assert z["noise_sigma"] < -5 and z["high_frequency"] < -2


def test_shift_detector_threshold_and_errors():
    train = [noisy_nuclei(s) for s in range(5)]
    detector = ShiftDetector(quantile=1.0).fit(train)
    assert detector.threshold == pytest.approx(detector.train_scores_.max())
    fixed = ShiftDetector(threshold=7.0).fit(train)
    assert fixed.threshold == 7.0
    with pytest.raises(RuntimeError, match="fit"):
        ShiftDetector().score(train[0])
    with pytest.raises(ValueError, match="at least 3"):
        ShiftDetector().fit(train[:2])
    with pytest.raises(ValueError, match="stack"):
        ShiftDetector().fit(train[0])
    with pytest.raises(ValueError, match="dimensions"):
        detector.score(np.stack(train[:2]))


# --- consensus_instances, metric_panel, shift_labels ----------------------------------------


def test_consensus_instances_keeps_touching_objects_apart():
    from dlbio_teach.validation import consensus_instances

    a = np.zeros((8, 16), np.int32); a[1:7, 1:8] = 1; a[1:7, 8:15] = 2
    merged = np.where(a > 0, 1, 0).astype(np.int32)
    out = consensus_instances({"x": a, "y": a, "z": merged})
    assert out.max() == 2 and np.array_equal(out > 0, a > 0)
    # A consensus mask given explicitly bounds the result.
    mask = np.zeros_like(a, bool); mask[1:7, 1:8] = True
    assert np.array_equal(consensus_instances([a, a, merged], mask) > 0, mask)
    with pytest.raises(ValueError, match="shape"):
        consensus_instances([a, a], np.zeros((3, 3), bool))


def test_metric_panel_sees_different_errors():
    from dlbio_teach.validation import dilate_labels, merge_touching, metric_panel

    t = np.zeros((20, 30), np.int32); t[2:10, 2:10] = 1; t[2:10, 10:18] = 2; t[12:18, 20:26] = 3
    same = metric_panel([t], [t])
    assert same == {"pixel_dice": 1.0, "object_f1": 1.0, "count_error": 0.0,
                    "boundary_distance": 0.0, "hausdorff": 0.0}
    merged = metric_panel(t, merge_touching(t, probability=1.0))
    assert merged["pixel_dice"] == 1.0 and merged["object_f1"] < 1 and merged["count_error"] < 0
    assert merged["boundary_distance"] == 0.0
    grown = metric_panel(t, dilate_labels(t, radius=1))
    assert grown["pixel_dice"] < 1 and grown["count_error"] == 0 and grown["hausdorff"] > 0
    assert 0.5 <= grown["boundary_distance"] <= 1.5
    empty = np.zeros_like(t)
    assert metric_panel([empty], [empty])["object_f1"] == 1.0
    one = metric_panel([empty], [t])
    assert one["pixel_dice"] == 0.0 and one["count_error"] == np.inf and one["hausdorff"] == np.inf
    assert one["boundary_distance"] == np.inf
    with pytest.raises(ValueError, match="one prediction per"):
        metric_panel([t, t], [t])


def test_shift_labels_follows_shift_image():
    from dlbio_teach.validation import shift_image, shift_labels

    lab = np.zeros((64, 64), np.int32); lab[20:30, 24:34] = 1; lab[40:50, 40:52] = 2
    for kind in ("noise", "gamma", "blur"):
        assert np.array_equal(shift_labels(lab, kind=kind, strength=0.3), lab)
    for strength in (0.25, 0.5, 1.0):
        moved = shift_image((lab > 0).astype(float), kind="scale", strength=strength) > 0.5
        labelled = shift_labels(lab, kind="scale", strength=strength) > 0
        assert labelled.shape == lab.shape
        assert (moved ^ labelled).sum() <= 0.1 * labelled.sum()
    with pytest.raises(ValueError, match="shrinking"):
        shift_labels(lab, kind="scale", strength=-0.2)
    with pytest.raises(ValueError, match="kind"):
        shift_labels(lab, kind="rotate", strength=0.2)
