"""Object matching metrics, on cases small enough to count by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlbio_teach.metrics import (
    iou_matrix,
    match_dataset,
    match_instances,
    matching_scores,
    merges_and_splits,
)


def squares(*boxes, shape=(12, 12)):
    """Label image with one object per (label, y0, y1, x0, x1) box."""
    image = np.zeros(shape, np.int32)
    for label, y0, y1, x0, x1 in boxes:
        image[y0:y1, x0:x1] = label
    return image


TRUE = squares((1, 0, 4, 0, 4), (2, 0, 4, 6, 10), (3, 6, 10, 0, 4))   # three 4x4 objects


def test_perfect_prediction_with_other_label_numbers():
    pred = np.where(TRUE > 0, TRUE * 10 + 5, 0)
    m = match_instances(TRUE, pred)
    assert (m["tp"], m["fp"], m["fn"]) == (3, 0, 0)
    assert m["f1"] == m["accuracy"] == m["panoptic_quality"] == 1.0
    assert m["mean_matched_iou"] == 1.0
    assert sorted(p[:2] for p in m["pairs"]) == [(1, 15), (2, 25), (3, 35)]


def test_hand_counted_partial_case():
    # Object 1 found with IoU 12/16 = 0.75 (a 4x3 box inside the 4x4); object 2 missed;
    # object 3 found exactly; one false positive far away.
    pred = squares((1, 0, 4, 0, 3), (3, 6, 10, 0, 4), (9, 10, 12, 10, 12))
    m = match_instances(TRUE, pred, threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(4 / 6)
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert m["mean_matched_iou"] == pytest.approx((0.75 + 1.0) / 2)
    assert m["panoptic_quality"] == pytest.approx(1.75 / (2 + 0.5 + 0.5))
    # At IoU 0.8 the 0.75 match no longer counts.
    strict = match_instances(TRUE, pred, threshold=0.8)
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 2, 2)


def test_merge_is_one_fp_and_two_fn_at_iou_half():
    # Two touching true objects predicted as one: IoU with each is 8/16 = 0.5 at most.
    true = squares((1, 0, 4, 0, 4), (2, 0, 4, 4, 8))
    pred = squares((1, 0, 4, 0, 8))
    iou, _, _ = iou_matrix(true, pred)
    assert iou.tolist() == [[0.5], [0.5]]
    m = match_instances(true, pred, threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 1)        # IoU 0.5 counts (>=)
    m = match_instances(true, pred, threshold=0.51)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 1, 2)
    assert merges_and_splits(true, pred) == {"merges": 1, "splits": 0}


def test_split_is_counted_as_a_split():
    true = squares((1, 0, 4, 0, 8))
    pred = squares((1, 0, 4, 0, 4), (2, 0, 4, 4, 8))
    assert merges_and_splits(true, pred) == {"merges": 0, "splits": 1}
    m = match_instances(true, pred, threshold=0.6)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 2, 1)


def test_empty_images_are_explicit():
    empty = np.zeros((5, 5), np.int32)
    both = match_instances(empty, empty)
    assert (both["tp"], both["fp"], both["fn"]) == (0, 0, 0)
    assert both["f1"] == both["accuracy"] == both["precision"] == both["recall"] == 1.0
    assert math.isnan(both["mean_matched_iou"])
    nothing_found = match_instances(TRUE, np.zeros_like(TRUE))
    assert (nothing_found["fn"], nothing_found["f1"], nothing_found["recall"]) == (3, 0.0, 0.0)
    nothing_there = match_instances(np.zeros_like(TRUE), TRUE)
    assert (nothing_there["fp"], nothing_there["precision"]) == (3, 0.0)


def test_hungarian_beats_greedy_below_half():
    # At IoU 0.3 a prediction can overlap two true objects; one-to-one matching must
    # pair A with the object only it covers, leaving the best total.
    true = squares((1, 0, 4, 0, 4), (2, 0, 4, 4, 6), shape=(4, 8))
    pred = squares((1, 0, 4, 1, 6), (2, 0, 4, 0, 2), shape=(4, 8))
    iou, _, _ = iou_matrix(true, pred)
    m = match_instances(true, pred, threshold=0.3)
    assert m["tp"] == 2
    best_total = max(iou[0, 0] + iou[1, 1], iou[0, 1] + iou[1, 0])
    assert m["sum_iou"] == pytest.approx(best_total)


def test_pooled_scores_weigh_objects_not_images():
    counts = [match_instances(TRUE, TRUE), match_instances(TRUE, np.zeros_like(TRUE))]
    pooled = matching_scores(**{k: sum(c[k] for c in counts)
                                for k in ("tp", "fp", "fn", "sum_iou")})
    assert pooled["recall"] == pytest.approx(3 / 6)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 3, 2), np.int32), "2D integer"),
    (np.zeros((3, 3), np.float32), "2D integer"),
    (-np.ones((3, 3), np.int32), "negative"),
])
def test_bad_label_images_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        match_instances(bad, np.zeros((3, 3), np.int32))


def test_shape_mismatch_and_threshold_are_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        iou_matrix(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="threshold"):
        match_instances(TRUE, TRUE, threshold=0)


def test_match_dataset_pools_counts_at_each_threshold():
    # Image 1: object 1 predicted 1 px too narrow (IoU 12/16 = 0.75), others exact.
    # Image 2: nothing predicted.
    pred = squares((1, 0, 4, 0, 3), (2, 0, 4, 6, 10), (3, 6, 10, 0, 4))
    rows = match_dataset([TRUE, TRUE], [pred, np.zeros_like(TRUE)], thresholds=[0.5, 0.75, 0.8])
    assert [r["threshold"] for r in rows] == [0.5, 0.75, 0.8]
    assert [(r["tp"], r["fp"], r["fn"]) for r in rows] == [(3, 0, 3), (3, 0, 3), (2, 1, 4)]
    assert rows[0]["f1"] == pytest.approx(6 / 9)
    assert rows[0]["accuracy"] == pytest.approx(3 / 6)
    assert rows[0]["mean_matched_iou"] == pytest.approx((0.75 + 1 + 1) / 3)
    assert rows[2]["n_images"] == 2


def test_match_dataset_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="one prediction per ground-truth image"):
        match_dataset([TRUE, TRUE], [TRUE])
    with pytest.raises(ValueError, match="one prediction per ground-truth image"):
        match_dataset([], [])


# --- Below IoU 0.5: as many matches as possible, then the largest total IoU ------------


def test_below_half_the_number_of_matches_comes_first():
    # A strip 4 pixels high. True objects: 1 = columns 0-9 (area 40), 2 = columns 10-11
    # (area 8). Predicted: 5 = columns 2-11, shifted right over both (area 40), and
    # 6 = columns 0-1, a fragment of object 1 (area 8). The IoUs, exactly:
    #   IoU(1, 5) = 32 / 48 = 2/3,   IoU(1, 6) = 8 / 40 = 1/5,
    #   IoU(2, 5) = 8 / 40 = 1/5,    IoU(2, 6) = 0.
    true = squares((1, 0, 4, 0, 10), (2, 0, 4, 10, 12), shape=(4, 12))
    pred = squares((5, 0, 4, 2, 12), (6, 0, 4, 0, 2), shape=(4, 12))
    iou, true_ids, pred_ids = iou_matrix(true, pred)
    assert (true_ids.tolist(), pred_ids.tolist()) == ([1, 2], [5, 6])
    assert iou.tolist() == [[2 / 3, 1 / 5], [1 / 5, 0.0]]

    # The old rule, the largest total IoU of pairs with IoU >= 0.1, takes (1, 5) alone:
    # 2/3 > 1/5 + 1/5. One true positive.
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-np.where(iou >= 0.1, iou, 0.0))
    old = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= 0.1]
    assert len(old) == 1 and sum(iou[r, c] for r, c in old) == pytest.approx(2 / 3)

    # The maximum matching pairs (1, 6) and (2, 5): two true positives, IoU sum 2/5.
    m = match_instances(true, pred, threshold=0.1)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)
    assert sorted(p[:2] for p in m["pairs"]) == [(1, 6), (2, 5)]
    assert m["sum_iou"] == pytest.approx(2 / 5)
    assert m["mean_matched_iou"] == pytest.approx(1 / 5)
    assert m["mean_true_iou"] == pytest.approx(1 / 5)
    assert m["accuracy"] == 1.0
    # From 0.25 up only (1, 5) is admissible: one match, whichever rule.
    for threshold in (0.25, 0.5):
        m = match_instances(true, pred, threshold=threshold)
        assert (m["tp"], m["sum_iou"]) == (1, pytest.approx(2 / 3))


def test_below_half_the_total_iou_breaks_ties_between_maximum_matchings():
    # A 4x4 image. True 1 = rows 0-2 (12 px), 2 = row 3 (4 px); predicted 7 = columns 0-2
    # (12 px), 8 = column 3 (4 px). Every pair overlaps:
    #   IoU(1, 7) = 9/15,  IoU(1, 8) = 3/13,  IoU(2, 7) = 3/13,  IoU(2, 8) = 1/7.
    # At 0.1 both assignments make two matches; (1, 7) + (2, 8) has the larger total.
    true = squares((1, 0, 3, 0, 4), (2, 3, 4, 0, 4), shape=(4, 4))
    pred = squares((7, 0, 4, 0, 3), (8, 0, 4, 3, 4), shape=(4, 4))
    iou, _, _ = iou_matrix(true, pred)
    assert iou.tolist() == [[9 / 15, 3 / 13], [3 / 13, 1 / 7]]
    m = match_instances(true, pred, threshold=0.1)
    assert sorted(p[:2] for p in m["pairs"]) == [(1, 7), (2, 8)]
    assert m["sum_iou"] == pytest.approx(9 / 15 + 1 / 7)


@pytest.mark.parametrize("threshold", [0.1, 0.2, 0.3, 0.4, 0.5, 0.7])
def test_matching_is_lexicographically_optimal_on_random_boxes(threshold):
    # Brute force over every one-to-one assignment: the most pairs with IoU >= threshold,
    # then the largest total IoU of those pairs. At 0.1, 6 of these 100 cases are ones
    # where the largest total IoU alone would make fewer matches.
    from itertools import permutations

    rng = np.random.default_rng(int(threshold * 100))
    for _ in range(100):
        images = []
        for _ in range(2):
            image = np.zeros((10, 10), np.int32)
            for label in range(1, rng.integers(3, 6) + 1):
                y, x = rng.integers(0, 8, 2)
                h, w = rng.integers(2, 8, 2)
                image[y:y + h, x:x + w] = label
            images.append(image)
        iou, _, _ = iou_matrix(*images)
        n_t, n_p = iou.shape
        best = (0, 0.0)
        small, large = (n_t, n_p) if n_t <= n_p else (n_p, n_t)
        for perm in permutations(range(large), small):
            pairs = [(i, j) if n_t <= n_p else (j, i) for i, j in enumerate(perm)]
            ok = [iou[i, j] for i, j in pairs if iou[i, j] >= threshold]
            best = max(best, (len(ok), sum(ok)), key=lambda b: (b[0], round(b[1], 9)))
        m = match_instances(*images, threshold=threshold)
        assert m["tp"] == best[0]
        assert m["sum_iou"] == pytest.approx(best[1])


# --- mean_true_iou --------------------------------------------------------------------


def test_mean_true_iou_counts_missed_objects_as_zero():
    # Object 1 found with IoU 0.75, object 2 missed, object 3 exact, one false positive.
    pred = squares((1, 0, 4, 0, 3), (3, 6, 10, 0, 4), (9, 10, 12, 10, 12))
    m = match_instances(TRUE, pred)
    assert m["mean_true_iou"] == pytest.approx((0.75 + 0 + 1.0) / 3)
    assert m["mean_true_iou"] == pytest.approx(m["recall"] * m["mean_matched_iou"])


def test_mean_true_iou_of_empty_images_is_explicit():
    empty = np.zeros((5, 5), np.int32)
    assert match_instances(empty, empty)["mean_true_iou"] == 1.0       # nothing to find
    assert match_instances(np.zeros_like(TRUE), TRUE)["mean_true_iou"] == 0.0
    assert match_instances(TRUE, np.zeros_like(TRUE))["mean_true_iou"] == 0.0
    assert matching_scores(tp=0, fp=0, fn=0, sum_iou=0.0)["mean_true_iou"] == 1.0
    assert matching_scores(tp=0, fp=2, fn=0, sum_iou=0.0)["mean_true_iou"] == 0.0


def test_match_dataset_pools_mean_true_iou():
    pred = squares((1, 0, 4, 0, 3), (2, 0, 4, 6, 10), (3, 6, 10, 0, 4))
    rows = match_dataset([TRUE, TRUE], [pred, np.zeros_like(TRUE)], thresholds=[0.5, 0.8])
    # 0.5: IoU sum 0.75 + 1 + 1 over 6 true objects; 0.8: the 0.75 match is lost.
    assert rows[0]["mean_true_iou"] == pytest.approx(2.75 / 6)
    assert rows[1]["mean_true_iou"] == pytest.approx(2.0 / 6)


# --- volumes: IoU of voxels --------------------------------------------------------------

def test_matching_volumes_counts_voxels_not_planes():
    from dlbio_teach.metrics import match_instances, merges_and_splits
    true = np.zeros((4, 6, 6), int)
    true[:, 1:4, 1:4] = 1                       # a 4-plane cube of 36 voxels
    pred = np.zeros_like(true)
    pred[:2, 1:4, 1:4] = 1                      # only its upper 2 planes: IoU 18 / 36
    m = match_instances(true, pred, axes="ZYX")
    assert (m["tp"], m["pairs"][0][2]) == (1, 0.5)
    assert match_instances(true, pred, axes="ZYX", threshold=0.51)["tp"] == 0
    # each plane scored on its own would call every overlapping plane perfect
    per_plane = [match_instances(t, p) for t, p in zip(true, pred)]
    assert [m["f1"] for m in per_plane] == [1.0, 1.0, 0.0, 0.0]
    merged = np.where(true > 0, 1, 0)
    two = true.copy()
    two[2:][two[2:] > 0] = 2                    # split in z into two true objects
    assert merges_and_splits(two, merged, axes="ZYX") == {"merges": 1, "splits": 0}


def test_matching_a_volume_without_axes_says_how():
    from dlbio_teach.metrics import match_instances
    volume = np.zeros((3, 5, 5), int)
    with pytest.raises(ValueError, match=r'pass axes="ZYX"'):
        match_instances(volume, volume)


def test_stardist_3d_nuclei_volume_matches_itself():
    tifffile = pytest.importorskip("tifffile")
    from importlib.util import find_spec
    from pathlib import Path

    from dlbio_teach.metrics import f1_at, match_instances
    spec = find_spec("stardist")
    if spec is None:
        pytest.skip("stardist is not installed")
    mask = tifffile.imread(Path(spec.origin).parent / "data" / "images" / "mask3d.tif")
    assert mask.shape == (31, 61, 57)
    m = match_instances(mask, mask, axes="ZYX")
    assert (m["n_true"], m["f1"]) == (51, 1.0)
    eroded = np.where(np.roll(mask, 1, axis=0) == mask, mask, 0)   # thinner in z
    assert f1_at([mask], [eroded], axes="ZYX", threshold=0.9) < 1.0
