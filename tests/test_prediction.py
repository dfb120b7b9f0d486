"""dlbio_teach.prediction: whole-image and tiled prediction give the same result."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbio_teach.models import UNet
from dlbio_teach.prediction import network_in_channels, predict


def random_unet(depth=2, in_channels=1, out_channels=1, seed=0, **kw):
    torch.manual_seed(seed)
    net = UNet(in_channels, out_channels, depth=depth, base_channels=4, **kw)
    # Non-trivial batch-norm statistics, so that eval mode is not the identity.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def image(shape=(200, 173), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.mark.parametrize("depth", [2, 3])
def test_tiled_equals_whole_image(depth):
    net = random_unet(depth=depth)
    x = image()
    whole = predict(net, x)
    tiled = predict(net, x, tile_size=64)
    assert whole.shape == tiled.shape == x.shape
    assert np.abs(tiled - whole).max() < 1e-4
    assert whole.std() > 1e-3            # the network does something


def test_whole_image_equals_direct_forward():
    net = random_unet()
    x = image((45, 61))
    with torch.no_grad():
        direct = net(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert np.allclose(predict(net, x), direct, atol=1e-6)


def test_tile_size_is_rounded_and_margin_respected():
    net = random_unet(depth=2)
    x = image((150, 130), seed=1)
    whole = predict(net, x)
    # tile 30 is rounded up to 32; an explicit margin of 33 to 36.
    assert np.abs(predict(net, x, tile_size=30, margin=33) - whole).max() < 1e-4


def test_too_small_margin_makes_seams():
    net = random_unet(depth=2)
    x = image((128, 128), seed=2)
    whole = predict(net, x)
    seamed = predict(net, x, tile_size=32, margin=0)
    assert np.abs(seamed - whole).max() > 1e-3


def test_tiles_larger_than_image_predict_in_one_go():
    net = random_unet()
    x = image((40, 50))
    assert np.array_equal(predict(net, x, tile_size=64), predict(net, x))


def test_single_channel_output_is_2d():
    out = predict(random_unet(), image((37, 53)))
    assert out.shape == (37, 53) and out.dtype == np.float32


def test_three_channel_output():
    net = random_unet(out_channels=3)
    x = image((70, 90))
    out = predict(net, x)
    assert out.shape == (3, 70, 90) and out.dtype == np.float32
    tiled = predict(net, x, tile_size=32)
    assert tiled.shape == (3, 70, 90)
    assert np.abs(tiled - out).max() < 1e-4


def test_multi_channel_input():
    net = random_unet(in_channels=2, out_channels=1)
    x = np.stack([image((40, 44), seed=0), image((40, 44), seed=1)])
    assert predict(net, x).shape == (40, 44)
    with pytest.raises(ValueError, match="takes 2 channels"):
        predict(net, x[0])          # one channel for a two-channel network


def test_integer_images_are_accepted():
    net = random_unet()
    x = (image((33, 35)) * 255).astype(np.uint8)
    assert np.allclose(predict(net, x), predict(net, x.astype(np.float32)))


def test_training_mode_is_restored():
    net = random_unet().train()
    predict(net, image((32, 32)))
    assert net.training
    net.eval()
    predict(net, image((32, 32)))
    assert not net.training


def test_prediction_uses_eval_mode():
    """Batch norm in training mode would use the tile's own statistics."""
    net = random_unet().train()
    x = image((64, 64))
    out = predict(net, x)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert np.allclose(out, expected, atol=1e-6)


def test_models_without_multiple():
    net = torch.nn.Conv2d(1, 2, 3, padding=1).eval()
    x = image((50, 70))
    whole = predict(net, x)
    assert whole.shape == (2, 50, 70)
    assert np.abs(predict(net, x, tile_size=16) - whole).max() < 1e-5


def test_explicit_device():
    net = random_unet()
    x = image((32, 40))
    assert np.allclose(predict(net, x, device="cpu"), predict(net, x))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_image_is_rejected(bad):
    x = image((32, 32))
    x[5, 5] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict(random_unet(), x)


@pytest.mark.parametrize("shape", [(10,), (1, 1, 8, 8)])
def test_wrong_ndim_is_rejected(shape):
    with pytest.raises(ValueError, match="2 or 3 dimensions"):
        predict(random_unet(), np.zeros(shape, np.float32))


# --- bad input at the front door: clear messages, not PyTorch's ---------------------------

def test_rgb_channels_last_image_is_explained():
    """(32, 32, 3) used to reach PyTorch as 32 channels ("expected input[1, 32, 32, 3] to
    have 1 channels, but got 32 channels")."""
    with pytest.raises(ValueError) as info:
        predict(random_unet(), image((32, 32, 3)))
    message = str(info.value)
    assert "shape (32, 32, 3)" in message
    assert "takes 1 channel, (C, Y, X) = (1, Y, X)" in message
    assert "channels last" in message
    assert "image[..., 0]" in message and "skimage.color.rgb2gray(image)" in message
    assert "expected input" not in message


def test_rgb_channels_last_for_a_three_channel_net_says_moveaxis():
    net = random_unet(in_channels=3)
    x = image((32, 40, 3))
    with pytest.raises(ValueError, match=r"np\.moveaxis\(image, -1, 0\)"):
        predict(net, x)
    assert predict(net, np.moveaxis(x, -1, 0)).shape == (32, 40)


def test_stack_for_a_one_channel_net_is_explained():
    with pytest.raises(ValueError) as info:
        predict(random_unet(), image((4, 32, 32)))
    message = str(info.value)
    assert "shape (4, 32, 32)" in message and "takes 1 channel" in message
    assert "stack of 4 images" in message and "one image at a time" in message


def test_2d_image_for_a_two_channel_net_is_explained():
    with pytest.raises(ValueError, match=r"shape \(32, 32\), one channel \(Y, X\), but the "
                                         r"network takes 2 channels, \(C, Y, X\) = \(2, Y, X\)"):
        predict(random_unet(in_channels=2), image((32, 32)))


def test_nan_image_message_says_what_to_do():
    x = image((32, 32))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite.*np\.nan_to_num"):
        predict(random_unet(), x)


def test_non_numeric_image_is_rejected():
    with pytest.raises(ValueError, match="must be numeric"):
        predict(random_unet(), np.full((8, 8), "x"))


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 30)])
def test_images_smaller_than_the_unet_multiple_are_padded(depth, shape):
    """The U-Net pads sides to its multiple 2**depth, so smaller images need no error."""
    net = random_unet(depth=depth)
    assert min(shape) < net.multiple
    out = predict(net, image(shape))
    assert out.shape == shape and np.all(np.isfinite(out))


def test_image_too_small_for_an_unpadded_network_is_explained():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 5), torch.nn.ReLU()).eval()
    assert predict(net, image((9, 9))).shape == (2, 5, 5)
    with pytest.raises(ValueError, match=r"\(3, 3\) pixels is smaller than this network "
                                         r"can take.*larger image"):
        predict(net, image((3, 3)))


def test_network_in_channels():
    assert network_in_channels(random_unet(in_channels=3)) == 3
    assert network_in_channels(torch.nn.Conv2d(4, 2, 3)) == 4
    assert network_in_channels(torch.nn.Sequential(torch.nn.Identity())) is None
    # Without a known channel count, any (C, Y, X) is passed on.
    assert predict(torch.nn.Identity(), image((2, 8, 8))).shape == (2, 8, 8)


def test_predict_volume_tiled_equals_whole():
    from dlbio_teach.prediction import network_ndim, predict
    torch.manual_seed(0)
    net = UNet(1, 2, depth=1, base_channels=4, ndim=3).eval()
    assert network_ndim(net) == 3
    volume = np.random.default_rng(0).random((10, 30, 34)).astype(np.float32)
    whole = predict(net, volume)
    tiled = predict(net, volume, tile_size=(4, 12, 12), margin=(8, 12, 12))
    assert whole.shape == (2, 10, 30, 34)
    assert np.abs(whole - tiled).max() < 1e-5
    short = predict(net, volume, tile_size=(4, 12, 12), margin=(0, 0, 0))
    assert np.abs(whole - short).max() > 1e-3      # without context, tiles show seams
    with pytest.raises(ValueError, match="volumes"):
        predict(net, np.zeros((3, 2, 8, 8)))


class _RecordsPrecision(torch.nn.Module):
    """A one-channel network that notes the convolution precision it ran under."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.seen = []

    def forward(self, x):
        conv = getattr(torch.backends.cudnn, "conv", None)
        self.seen.append(conv.fp32_precision if hasattr(conv, "fp32_precision")
                         else ("tf32" if torch.backends.cudnn.allow_tf32 else "ieee"))
        self.seen.append(torch.is_autocast_enabled())
        return self.conv(x)


def _precision_now():
    conv = getattr(torch.backends.cudnn, "conv", None)
    return (conv.fp32_precision if hasattr(conv, "fp32_precision")
            else torch.backends.cudnn.allow_tf32)


def test_prediction_runs_in_full_float32_and_restores_the_setting():
    net = _RecordsPrecision()
    before = _precision_now()
    predict(net, np.zeros((16, 16), np.float32))
    assert net.seen == ["ieee", False]          # no TF32, no float16 autocast
    assert _precision_now() == before           # training keeps PyTorch's default
