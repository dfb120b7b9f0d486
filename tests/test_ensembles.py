"""Ensembles: the mean and the disagreement of members, and whether it points at errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlbio_teach.ensembles import combine_ensemble, uncertainty_on_errors


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
