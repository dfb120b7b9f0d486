"""dlbio_teach.attribution: occlusion maps, checked on networks whose evidence is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlbio_teach.attribution import occlusion_map
from dlbio_teach.models import TinyCNN


class CornerReader(nn.Module):
    """Class 1's score is the mean of the top-left 4 x 4 pixels: its only evidence."""

    def forward(self, x):
        score = 10 * x[:, 0, :4, :4].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_occlusion_points_at_the_only_evidence():
    patches = np.ones((2, 16, 16), np.float32)
    maps = occlusion_map(CornerReader(), patches, target=1, size=4, stride=2, device="cpu")
    assert maps.shape == (2, 16, 16)
    assert maps[:, :4, :4].min() > 0                  # hiding the corner costs
    assert np.abs(maps[:, 6:, 6:]).max() == 0         # hiding elsewhere changes nothing
    # Hiding with the value the corner already has cannot show it: a limit of the method.
    same = occlusion_map(CornerReader(), patches, target=1, value=1.0, device="cpu")
    assert np.abs(same).max() == 0


def test_occlusion_sign_and_other_class():
    patches = np.ones((1, 16, 16), np.float32)
    toward_0 = occlusion_map(CornerReader(), patches, target=0, device="cpu")
    assert toward_0[0, :4, :4].max() < 0              # hiding the corner helps class 0


def test_occlusion_leaves_the_model_as_it_was():
    model = TinyCNN(n_classes=2, channels=4).train()
    before = [p.clone() for p in model.parameters()]
    occlusion_map(model, np.random.default_rng(0).random((3, 16, 16)), target=1, device="cpu")
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_occlusion_rejects_bad_input():
    with pytest.raises(ValueError, match="stack"):
        occlusion_map(CornerReader(), np.zeros((16, 16)), target=1, device="cpu")
    with pytest.raises(ValueError, match="size"):
        occlusion_map(CornerReader(), np.zeros((1, 8, 8)), target=1, size=9, device="cpu")
