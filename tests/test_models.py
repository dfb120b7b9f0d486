"""dlbio_teach.models: the U-Net, the tiny CNN and the parameter count."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dlbio_teach.models import TinyCNN, UNet, count_parameters


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("size", [(37, 53), (32, 32), (9, 70), (1, 1)])
def test_unet_output_shape_equals_input_shape(depth, size):
    net = UNet(1, 1, depth=depth, base_channels=4).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 1, *size))
    assert y.shape == (2, 1, *size)
    assert torch.isfinite(y).all()


def test_unet_channels():
    net = UNet(in_channels=2, out_channels=3, depth=2, base_channels=4).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 2, 37, 53))
    assert y.shape == (1, 3, 37, 53)
    assert net.config == dict(in_channels=2, out_channels=3, depth=2, base_channels=4,
                              residual=False, residual_output=False)
    assert net.multiple == 4


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_unet_channels_double_per_level(depth):
    net = UNet(1, 1, depth=depth, base_channels=4)
    assert len(net.down) == len(net.up) == len(net.up_blocks) == depth
    assert net.bottom.body[0].out_channels == 4 * 2 ** depth
    assert net.multiple == 2 ** depth


def test_unet_padding_does_not_change_the_valid_part():
    """Cropping back after padding: a row added at the bottom changes only pixels near it."""
    net = UNet(1, 1, depth=2, base_channels=4).eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        full = net(x)
        cut = net(x[..., :61, :])
    assert cut.shape == (1, 1, 61, 64)
    assert torch.allclose(full[..., :20, :], cut[..., :20, :], atol=1e-5)


def test_unet_residual_output_adds_the_input():
    torch.manual_seed(1)
    plain = UNet(1, 1, depth=2, base_channels=4).eval()
    res = UNet(1, 1, depth=2, base_channels=4, residual_output=True).eval()
    res.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 37, 53)
    with torch.no_grad():
        assert torch.allclose(res(x), plain(x) + x, atol=1e-6)
    # Freshly built, the head is zero, so the untrained network is the identity.
    res = UNet(1, 1, depth=2, base_channels=4, residual_output=True).eval()
    assert not res.head.weight.any() and not res.head.bias.any()
    with torch.no_grad():
        assert torch.equal(res(x), x)


def test_unet_residual_output_needs_equal_channels():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        UNet(1, 2, residual_output=True)


def test_unet_residual_blocks():
    plain = UNet(1, 1, depth=2, base_channels=4)
    res = UNet(1, 1, depth=2, base_channels=4, residual=True)
    assert all(b.shortcut is None for b in plain.down)
    assert all(isinstance(b.shortcut, nn.Conv2d) for b in res.down)
    assert count_parameters(res) > count_parameters(plain)
    with torch.no_grad():
        assert res.eval()(torch.rand(1, 1, 37, 53)).shape == (1, 1, 37, 53)


@pytest.mark.parametrize("shape", [(1, 37, 53), (37, 53), (1, 1, 1, 37, 53)])
def test_unet_rejects_non_batches(shape):
    net = UNet(1, 1, depth=2, base_channels=4)
    with pytest.raises(ValueError, match=r"UNet expects a batch \(N, C, Y, X\).*x\[None, "
                                         r"None\]"):
        net(torch.zeros(shape))


def test_unet_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be at least 1, got 0"):
        UNet(depth=0)


def test_unet_learns_gradients_everywhere():
    net = UNet(1, 1, depth=2, base_channels=4)
    net(torch.rand(2, 1, 32, 32)).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name


def test_unet_translation_equivariant_in_the_interior():
    """A convolutional network: shifting the input by the pooling multiple shifts the output."""
    net = UNet(1, 1, depth=2, base_channels=4).eval()
    x = torch.rand(1, 1, 96, 96)
    with torch.no_grad():
        a = net(x)
        b = net(torch.roll(x, shifts=(8, 8), dims=(2, 3)))
    assert torch.allclose(a[..., 30:60, 30:60], b[..., 38:68, 38:68], atol=1e-5)


def test_tiny_cnn():
    net = TinyCNN(in_channels=2, n_classes=5, channels=8)
    assert net(torch.zeros(4, 2, 32, 32)).shape == (4, 5)
    assert net(torch.zeros(1, 2, 17, 23)).shape == (1, 5)   # any patch size
    assert net.config == dict(in_channels=2, n_classes=5, channels=8, pool=3)


def test_count_parameters():
    assert count_parameters(nn.Linear(3, 2)) == 8
    assert count_parameters(nn.Conv2d(1, 4, 3)) == 4 * 9 + 4
    # TinyCNN: conv 1->c, conv c->2c, linear (2c * pool^2)->k
    c, k, pool = 8, 3, 3
    expected = (9 * c + c) + (9 * c * 2 * c + 2 * c) + (2 * c * pool * pool * k + k)
    assert count_parameters(TinyCNN(1, k, c, pool=pool)) == expected


def test_count_parameters_ignores_frozen():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    for p in net[0].parameters():
        p.requires_grad_(False)
    assert count_parameters(net) == 3


def test_unet_parameters_grow_with_width_and_depth():
    base = count_parameters(UNet(1, 1, depth=2, base_channels=8))
    assert count_parameters(UNet(1, 1, depth=2, base_channels=16)) > 3 * base
    assert count_parameters(UNet(1, 1, depth=3, base_channels=8)) > 3 * base


def test_freeze_encoder_trains_only_the_decoder():
    import numpy as np

    from dlbio_teach.models import freeze_encoder, unfreeze
    from dlbio_teach.training import fit

    net = UNet(1, 2, depth=2, base_channels=4)
    encoder = {k: v.clone() for k, v in net.state_dict().items()
               if k.startswith(("down.", "bottom."))}
    decoder = {k: v.clone() for k, v in net.state_dict().items()
               if k.startswith(("up.", "up_blocks.", "head."))}
    assert any("running_mean" in k for k in encoder)
    freeze_encoder(net)
    n_total = sum(p.numel() for p in net.parameters())
    assert 0 < count_parameters(net) < n_total
    net.train()
    assert not any(m.training for m in net.down.modules())
    assert not net.bottom.training and net.up_blocks.training and net.training
    rng = np.random.default_rng(0)
    x = rng.random((16, 16, 16), dtype=np.float32)
    y = (x > 0.5).astype(np.int64)
    fit(net, (x, y), (x[:4], y[:4]), loss_fn=nn.functional.cross_entropy, epochs=2,
        batch_size=4, lr=1e-2, progress=False)
    state = net.state_dict()
    for k, v in encoder.items():   # weights and batch-norm running statistics
        assert torch.equal(state[k].cpu(), v), f"frozen {k} changed"
    assert any(not torch.equal(state[k].cpu(), v) for k, v in decoder.items())
    unfreeze(net)
    assert count_parameters(net) == n_total
    assert net.train().bottom.training
    with pytest.raises(TypeError, match="needs a UNet"):
        freeze_encoder(TinyCNN())


def test_unet_3d_takes_volumes_of_any_size():
    net = UNet(1, 2, depth=2, base_channels=4, ndim=3)
    assert net(torch.zeros(1, 1, 7, 21, 18)).shape == (1, 2, 7, 21, 18)
    assert net.config["ndim"] == 3 and net.multiples == (4, 4, 4)
    flat = UNet(1, 1, depth=2, base_channels=4, ndim=3, pool_z=False)
    assert flat.multiples == (1, 4, 4)
    assert flat(torch.zeros(1, 1, 3, 16, 16)).shape == (1, 1, 3, 16, 16)
    assert isinstance(net.head, nn.Conv3d)
    with pytest.raises(ValueError, match=r"UNet\(ndim=3\) expects a batch of volumes"):
        net(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="ndim must be 2"):
        UNet(1, 1, ndim=4)


def test_unet_2d_configuration_and_weights_do_not_know_of_volumes():
    torch.manual_seed(0)
    net = UNet(1, 1, depth=2, base_channels=4)
    assert "ndim" not in net.config and net.multiples == (4, 4)
    assert all(not isinstance(m, nn.Conv3d) for m in net.modules())
