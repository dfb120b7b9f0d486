"""Annotators: simulated biases, majority vote, STAPLE, agreement and consensus instances,
on cases small enough to check by hand where possible."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.annotators import (
    agreement_matrix,
    consensus_instances,
    dilate_labels,
    drop_small_objects,
    erode_labels,
    majority_vote,
    merge_touching,
    simulate_annotators,
    staple,
)
from dlbio_teach.synthetic import nuclei


def boxes(*items, shape=(12, 12)):
    """Label image with one object per (label, y0, y1, x0, x1) box."""
    image = np.zeros(shape, np.int32)
    for label, y0, y1, x0, x1 in items:
        image[y0:y1, x0:x1] = label
    return image


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


def test_consensus_instances_keeps_touching_objects_apart():
    a = np.zeros((8, 16), np.int32)
    a[1:7, 1:8] = 1
    a[1:7, 8:15] = 2
    merged = np.where(a > 0, 1, 0).astype(np.int32)
    out = consensus_instances({"x": a, "y": a, "z": merged})
    assert out.max() == 2 and np.array_equal(out > 0, a > 0)
    # A consensus mask given explicitly bounds the result.
    mask = np.zeros_like(a, bool)
    mask[1:7, 1:8] = True
    assert np.array_equal(consensus_instances([a, a, merged], mask) > 0, mask)
    with pytest.raises(ValueError, match="shape"):
        consensus_instances([a, a], np.zeros((3, 3), bool))
