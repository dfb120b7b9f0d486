"""dlbio_teach.metrics: PSNR, SSIM, affine rescaling, the combined scores and the metric
panel (object matching is tested in test_matching.py)."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.annotators import dilate_labels, merge_touching
from dlbio_teach.metrics import metric_panel, psnr, rescale_affine, restoration_scores, ssim


def textured(shape=(64, 64), seed=0):
    from scipy import ndimage as ndi

    noise = np.random.default_rng(seed).random(shape)
    return ndi.gaussian_filter(noise, 2.0).astype(np.float32)


# --- psnr ----------------------------------------------------------------------------

def test_psnr_hand_computed():
    target = np.zeros((8, 8))
    assert psnr(target, target + 0.1, data_range=1.0) == pytest.approx(20.0, abs=1e-4)
    # 10 log10(1 / 0.01) = 20 dB; data range 2 adds 20 log10(2) dB.
    assert psnr(target, target + 0.1, data_range=2.0) == pytest.approx(
        20.0 + 20 * np.log10(2), abs=1e-4)
    assert psnr(target, target - 0.01, data_range=1.0) == pytest.approx(40.0, abs=1e-3)


def test_psnr_mixed_errors():
    target = np.zeros((2, 2))
    prediction = np.array([[0.2, 0.0], [0.0, 0.0]])    # MSE = 0.04 / 4 = 0.01
    assert psnr(target, prediction, data_range=1.0) == pytest.approx(20.0, abs=1e-4)


def test_psnr_returns_float_and_orders_quality():
    t = textured()
    rng = np.random.default_rng(1)
    small = psnr(t, t + 0.01 * rng.standard_normal(t.shape), data_range=1.0)
    large = psnr(t, t + 0.1 * rng.standard_normal(t.shape), data_range=1.0)
    assert isinstance(small, float) and small > large + 15


def test_psnr_data_range_is_required():
    with pytest.raises(TypeError):
        psnr(np.zeros((4, 4)), np.ones((4, 4)))


def test_psnr_rescale_removes_gain_and_offset():
    t = textured()
    distorted = 3.0 * t - 0.5
    assert psnr(t, distorted, data_range=1.0) < 10
    assert psnr(t, distorted, data_range=1.0, rescale=True) > 80


# --- ssim ----------------------------------------------------------------------------

def test_ssim_identical_is_one():
    t = textured()
    value = ssim(t, t, data_range=1.0)
    assert isinstance(value, float)
    assert value == pytest.approx(1.0, abs=1e-9)


def test_ssim_decreases_with_noise():
    t = textured()
    rng = np.random.default_rng(2)
    values = [ssim(t, t + s * rng.standard_normal(t.shape), data_range=1.0)
              for s in (0.01, 0.05, 0.2)]
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_rescale():
    t = textured()
    distorted = 0.3 * t + 0.2
    assert ssim(t, distorted, data_range=1.0) < 0.99
    assert ssim(t, distorted, data_range=1.0, rescale=True) == pytest.approx(1.0, abs=1e-4)


# --- rescale_affine --------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [(3.0, 2.0), (0.5, -1.0), (-2.0, 0.3)])
def test_rescale_affine_recovers_affine(a, b):
    t = textured(seed=3)
    out = rescale_affine(a * t + b, t)
    assert out.dtype == np.float32 and out.shape == t.shape
    assert np.allclose(out, t, atol=1e-5)


def test_rescale_affine_is_least_squares():
    rng = np.random.default_rng(4)
    t = rng.random((20, 20))
    p = t + 0.3 * rng.standard_normal(t.shape)
    out = rescale_affine(p, t).astype(np.float64)
    A = np.stack([p.ravel(), np.ones(p.size)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, t.ravel(), rcond=None)
    assert np.allclose(out, a * p + b, atol=1e-5)
    # The residual is orthogonal to the prediction and has zero mean.
    residual = t - out
    assert abs(residual.mean()) < 1e-5 and abs(np.mean(residual * p)) < 1e-5


def test_rescale_affine_constant_prediction_gives_target_mean():
    t = textured(seed=5)
    out = rescale_affine(np.full(t.shape, 7.0), t)
    assert np.allclose(out, t.mean(), atol=1e-6)


def test_rescale_affine_shape_mismatch():
    with pytest.raises(ValueError, match=r"target \(4, 4\) and prediction \(4, 5\) must have "
                                         "the same shape"):
        rescale_affine(np.zeros((4, 5)), np.zeros((4, 4)))


# --- restoration_scores -----------------------------------------------------------------

def test_restoration_scores_rescale_makes_affine_copy_perfect():
    t = textured(seed=6)
    distorted = 2.5 * t + 0.4
    scores = restoration_scores(t, distorted)
    assert sorted(scores) == ["psnr", "ssim"]
    assert scores["psnr"] > 80
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-4)
    raw = restoration_scores(t, distorted, rescale=False)
    assert raw["psnr"] < 20 and raw["ssim"] < scores["ssim"]


def test_restoration_scores_match_single_metrics():
    t = textured(seed=7)
    p = t + 0.05 * np.random.default_rng(7).standard_normal(t.shape)
    scores = restoration_scores(t, p, data_range=2.0, rescale=False)
    assert scores["psnr"] == pytest.approx(psnr(t, p, data_range=2.0))
    assert scores["ssim"] == pytest.approx(ssim(t, p, data_range=2.0))
    rescaled = restoration_scores(t, p, data_range=1.0)
    assert rescaled["psnr"] == pytest.approx(psnr(t, p, data_range=1.0, rescale=True))
    assert rescaled["ssim"] == pytest.approx(ssim(t, p, data_range=1.0, rescale=True))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_mismatch(metric):
    with pytest.raises(ValueError, match="must have the same shape"):
        metric(np.zeros((16, 16)), np.zeros((16, 17)), data_range=1.0)


def test_restoration_scores_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        restoration_scores(np.zeros((16, 16)), np.zeros((17, 16)))


def test_metrics_check_their_inputs():
    good = np.zeros((16, 16))
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="prediction contains NaN"):
        psnr(good, bad, data_range=1.0)
    with pytest.raises(ValueError, match="target contains NaN"):
        ssim(bad, good, data_range=1.0)
    with pytest.raises(ValueError, match=r"target must be an image \(Y, X\)"):
        restoration_scores(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)))


# --- metric_panel --------------------------------------------------------------------


def test_metric_panel_sees_different_errors():
    t = np.zeros((20, 30), np.int32)
    t[2:10, 2:10] = 1
    t[2:10, 10:18] = 2
    t[12:18, 20:26] = 3
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
