"""Ensembles: the mean and the disagreement of members, and whether it points at errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlbio_teach.ensembles import combine_ensemble, mc_dropout_maps, uncertainty_on_errors
from dlbio_teach.segmentation import predict_maps


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


# --- Monte Carlo dropout -----------------------------------------------------------------

def _dropout_unet(p=0.3):
    from dlbio_teach.models import UNet
    torch.manual_seed(0)
    return UNet(1, 3, depth=1, base_channels=4, dropout=p)


def test_mc_dropout_passes_differ_and_repeat_with_their_seed():
    net = _dropout_unet().eval()
    image = np.random.default_rng(0).random((24, 24)).astype(np.float32)
    state = torch.random.get_rng_state()
    a = mc_dropout_maps(net, image, formulation="three_class", n_samples=3, seed=1, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state), "the global random state moved"
    b = mc_dropout_maps(net, image, formulation="three_class", n_samples=3, seed=1, device="cpu")
    c = mc_dropout_maps(net, image, formulation="three_class", n_samples=3, seed=2, device="cpu")
    assert a.shape == (3, 3, 24, 24) and np.allclose(a.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.allclose(a[0], a[1]), "each pass should drop other feature maps"
    # Sampling is switched off afterwards: a plain prediction is deterministic again.
    plain = [predict_maps(net, image, formulation="three_class", device="cpu") for _ in range(2)]
    assert np.array_equal(*plain) and not net.training


def test_dropout_is_off_in_a_plain_prediction_and_on_in_training():
    net = _dropout_unet(0.5)
    x = torch.ones(1, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))


def test_dropout_network_keeps_the_weights_of_one_without_dropout():
    from dlbio_teach.models import UNet
    torch.manual_seed(0)
    plain = UNet(1, 3, depth=1, base_channels=4)
    dropped = _dropout_unet()
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in dropped.state_dict().items())
    assert "dropout" not in plain.config and dropped.config["dropout"] == 0.3


def test_mc_dropout_needs_dropout_and_two_passes():
    from dlbio_teach.models import UNet
    with pytest.raises(ValueError, match="no dropout layers"):
        mc_dropout_maps(UNet(1, 3, depth=1, base_channels=4), np.zeros((16, 16)),
                        formulation="three_class", device="cpu")
    with pytest.raises(ValueError, match="at least 2"):
        mc_dropout_maps(_dropout_unet(), np.zeros((16, 16)), formulation="three_class",
                        n_samples=1, device="cpu")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        UNet(1, 1, dropout=1.0)
