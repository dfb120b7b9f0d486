"""The networks of the course, written out to be read: a U-Net and a tiny CNN.

The U-Net is the one every later chapter trains (restoration, segmentation); it is built
step by step in chapter 1, so it stays short. The same class builds the 3D U-Net for
volumes (``ndim=3``): only the layers' dimension changes.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet", "TinyCNN", "MonteCarloDropout", "count_parameters", "freeze_encoder",
           "unfreeze"]


def _layers(ndim: int):
    """The convolution, batch norm and transposed convolution of ``ndim`` spatial axes."""
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 (images) or 3 (volumes), got {ndim}.")
    return ((nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d) if ndim == 2
            else (nn.Conv3d, nn.BatchNorm3d, nn.ConvTranspose3d))


class ConvBlock(nn.Module):
    """Two 3x3 (3x3x3 for ``ndim=3``) convolutions with ReLU, optionally with a residual
    shortcut."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool = False,
                 ndim: int = 2):
        super().__init__()
        conv, norm, _ = _layers(ndim)
        self.body = nn.Sequential(
            conv(in_channels, out_channels, 3, padding=1),
            norm(out_channels),
            nn.ReLU(inplace=True),
            conv(out_channels, out_channels, 3, padding=1),
            norm(out_channels),
        )
        self.shortcut = (conv(in_channels, out_channels, 1) if residual else None)

    def forward(self, x):
        """Two convolutions, plus the shortcut when residual, then ReLU."""
        y = self.body(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return F.relu(y)


class MonteCarloDropout(nn.Module):
    """Dropout of whole feature maps that can stay on at prediction time.

    In training it drops each channel with probability ``p`` (``nn.Dropout2d`` or
    ``nn.Dropout3d``). At prediction it is off, as any dropout, unless ``sampling`` is
    ``True``: then every forward pass drops other channels, and repeated passes give a
    spread of predictions (Monte Carlo dropout, Gal and Ghahramani 2016;
    :func:`~dlbio_teach.ensembles.mc_dropout_maps` switches it on for you).

    Examples
    --------
    >>> drop = MonteCarloDropout(0.5).eval()
    >>> bool(torch.equal(drop(torch.ones(1, 8, 2, 2)), torch.ones(1, 8, 2, 2)))
    True
    >>> drop.sampling = True
    >>> bool(torch.equal(drop(torch.ones(1, 8, 2, 2)), torch.ones(1, 8, 2, 2)))
    False
    """

    def __init__(self, p: float = 0.1):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), e.g. 0.1, got {p}.")
        self.p = float(p)
        self.sampling = False

    def forward(self, x):
        """Drop channels of ``(N, C, ...)`` in training or while sampling; else pass ``x``."""
        drop = F.dropout2d if x.ndim == 4 else F.dropout3d
        return drop(x, self.p, training=self.training or self.sampling)


class UNet(nn.Module):
    """A U-Net (Ronneberger et al., 2015) for images, or volumes, of any size.

    The encoder halves the resolution ``depth`` times and doubles the channels each time;
    the decoder upsamples back and concatenates the encoder's features of the same
    resolution (the skip connections). Inputs whose sides are not multiples of
    ``2**depth`` are reflect-padded and the output is cropped back, so any ``(Y, X)`` works.
    With ``ndim=3`` every layer is its 3D twin (the 3D U-Net of Çiçek et al., 2016) and
    the input is a batch of volumes ``(N, C, Z, Y, X)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input image and of the prediction.
    depth : int
        Number of down-sampling steps; the receptive field grows with it.
    base_channels : int
        Feature maps at full resolution.
    residual : bool
        Add a 1x1 shortcut around each block (as CARE's residual option).
    residual_output : bool
        Predict a correction added to the input (needs ``in_channels == out_channels``):
        the usual choice for restoration.
    ndim : {2, 3}
        Spatial axes: 2 for images ``(Y, X)``, 3 for volumes ``(Z, Y, X)``.
    pool_z : bool
        For ``ndim=3``: halve Z too at each step (default). ``False`` pools Y and X only,
        for stacks with few, widely spaced planes (strongly anisotropic voxels): the
        network then sees the same physical extent along each axis sooner.

    Examples
    --------
    >>> net = UNet(1, 1, depth=2, base_channels=8)
    >>> net(torch.zeros(1, 1, 30, 45)).shape
    torch.Size([1, 1, 30, 45])
    >>> UNet(1, 1, depth=2, base_channels=4, ndim=3)(torch.zeros(1, 1, 6, 20, 20)).shape
    torch.Size([1, 1, 6, 20, 20])
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 2,
                 base_channels: int = 16, residual: bool = False,
                 residual_output: bool = False, ndim: int = 2, pool_z: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}.")
        if residual_output and in_channels != out_channels:
            raise ValueError("residual_output needs in_channels == out_channels.")
        conv, _, up_conv = _layers(ndim)
        self.config = dict(in_channels=in_channels, out_channels=out_channels, depth=depth,
                           base_channels=base_channels, residual=residual,
                           residual_output=residual_output)
        if ndim == 3:   # a 2D network's configuration stays what it always was
            self.config.update(ndim=3, pool_z=bool(pool_z))
        if dropout:     # and so does one without dropout
            self.config.update(dropout=float(dropout))
        self.drop = MonteCarloDropout(dropout) if dropout else nn.Identity()
        self.ndim = ndim
        self.depth = depth
        self.residual_output = residual_output
        self.pool = (2,) * ndim if ndim == 2 or pool_z else (1, 2, 2)
        channels = [base_channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for c in channels[:-1]:
            self.down.append(ConvBlock(c_in, c, residual, ndim))
            c_in = c
        self.bottom = ConvBlock(channels[-2], channels[-1], residual, ndim)
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for c_high, c_low in zip(reversed(channels[:-1]), reversed(channels[1:])):
            self.up.append(up_conv(c_low, c_high, self.pool, stride=self.pool))
            self.up_blocks.append(ConvBlock(2 * c_high, c_high, residual, ndim))
        self.head = conv(channels[0], out_channels, 1)
        if residual_output:
            # Start as the identity: the untrained network returns its input unchanged,
            # so training can only move it away from the noisy image where that helps.
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def train(self, mode: bool = True):
        """Set training mode; the parts frozen by :func:`freeze_encoder` stay in
        evaluation mode, so that their batch-norm statistics do not change."""
        super().train(mode)
        for name in getattr(self, "frozen", ()):
            getattr(self, name).eval()
        return self

    @property
    def multiple(self) -> int:
        """Input sides (Y and X) are padded to a multiple of this."""
        return 2 ** self.depth

    @property
    def multiples(self) -> tuple:
        """The multiple of each spatial axis (Z's is 1 when ``pool_z`` is off)."""
        return tuple(p ** self.depth for p in getattr(self, "pool", (2, 2)))

    def forward(self, x):
        """Map a batch ``(N, C, Y, X)`` (``(N, C, Z, Y, X)`` for ``ndim=3``) to the same
        shape with ``out_channels``, padding and cropping sides that are not a multiple
        of :attr:`multiples`."""
        ndim = getattr(self, "ndim", 2)
        if x.ndim != ndim + 2:
            which = "UNet expects a batch (N, C, Y, X)" if ndim == 2 else \
                "UNet(ndim=3) expects a batch of volumes (N, C, Z, Y, X)"
            raise ValueError(f"{which}, got shape "
                             f"{tuple(x.shape)}; add axes with x[None, None].")
        sides = x.shape[2:]
        pads = [(-n) % m for n, m in zip(sides, self.multiples)]
        inp = x
        if any(pads):
            mode = "reflect" if min(sides) > max(pads) else "replicate"
            x = F.pad(x, [v for pad in reversed(pads) for v in (0, pad)], mode=mode)
        skips = []
        pool = F.max_pool2d if ndim == 2 else F.max_pool3d
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = pool(x, self.pool)
        x = self.drop(self.bottom(x))
        for up, block, skip in zip(self.up, self.up_blocks, reversed(skips)):
            x = block(self.drop(torch.cat([up(x), skip], dim=1)))
        x = self.head(x)[(...,) + tuple(slice(0, n) for n in sides)]
        return x + inp if self.residual_output else x


class TinyCNN(nn.Module):
    """A small classifier for patches: two conv layers, pooling and a linear layer.

    The features are pooled to a coarse ``pool x pool`` grid rather than to one value, so
    that the classifier still knows *where* in the patch something is (whether the centre
    pixel lies in a nucleus, say).

    Examples
    --------
    >>> TinyCNN(n_classes=2)(torch.zeros(4, 1, 32, 32)).shape
    torch.Size([4, 2])
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, channels: int = 16,
                 pool: int = 3):
        super().__init__()
        self.config = dict(in_channels=in_channels, n_classes=n_classes, channels=channels,
                           pool=pool)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(pool),
        )
        self.classifier = nn.Linear(2 * channels * pool * pool, n_classes)

    def forward(self, x):
        """Class scores (logits) ``(N, n_classes)`` of a batch of patches ``(N, C, Y, X)``."""
        return self.classifier(self.features(x).flatten(1))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def freeze_encoder(unet: UNet) -> UNet:
    """Freeze a U-Net's encoder (the ``down`` blocks and the ``bottom``) for fine-tuning.

    The encoder's parameters stop receiving gradients (``requires_grad = False``) and its
    batch-norm layers stay in evaluation mode even when the network trains, so neither
    its weights nor its running statistics change: only the decoder (``up``,
    ``up_blocks``, ``head``) learns. This is the usual way to adapt a shared model to a
    few annotated images of your own. :func:`unfreeze` undoes it.

    Parameters
    ----------
    unet : UNet
        Changed in place.

    Returns
    -------
    UNet
        The same network, for chaining.

    Examples
    --------
    >>> net = freeze_encoder(UNet(1, 3, depth=2, base_channels=4))
    >>> count_parameters(net) < sum(p.numel() for p in net.parameters())
    True
    >>> net.train().bottom.training, net.up_blocks.training
    (False, True)
    """
    if not isinstance(unet, UNet):
        raise TypeError(f"freeze_encoder needs a UNet, got {type(unet).__name__}; for "
                        "another network set requires_grad=False on the layers to keep.")
    unet.frozen = ("down", "bottom")
    for name in unet.frozen:
        for p in getattr(unet, name).parameters():
            p.requires_grad_(False)
    return unet.train(unet.training)


def unfreeze(unet: UNet) -> UNet:
    """Undo :func:`freeze_encoder`: every parameter trains again.

    Examples
    --------
    >>> net = unfreeze(freeze_encoder(UNet(1, 1, depth=1, base_channels=4)))
    >>> count_parameters(net) == sum(p.numel() for p in net.parameters())
    True
    """
    unet.frozen = ()
    for p in unet.parameters():
        p.requires_grad_(True)
    return unet.train(unet.training)
