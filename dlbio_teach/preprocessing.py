"""Normalisation, patch sampling and splits that keep the patches of one image together."""
from __future__ import annotations

import numpy as np

__all__ = ["spatial_ndim", "check_image", "check_network_input", "check_labels",
           "normalize_percentile",
           "normalize_minmax", "random_patches", "split_indices", "grid_tiles",
           "labelled_patches"]


_LAYOUTS = {2: "an image (Y, X)", 3: "a stack of images (N, Y, X)"}
_VOLUME_LAYOUTS = {3: "a volume (Z, Y, X)", 4: "a stack of volumes (N, Z, Y, X)"}
#: The layouts of one image that the course's functions take: a plane or a volume.
AXES = ("YX", "ZYX")
_VOLUME_HINT = (" For a volume (Z, Y, X), say so: pass axes=\"ZYX\" (its shape alone cannot "
                "tell a volume from a stack of images or an image of several channels).")


def spatial_ndim(axes: str | None) -> int:
    """The number of spatial axes of one image laid out as ``axes``: 2 for ``"YX"`` (and
    for ``None``, the default of every function), 3 for ``"ZYX"``.

    A volume ``(Z, Y, X)`` and an image of three channels ``(C, Y, X)`` have the same
    number of axes, so the functions that take volumes ask for ``axes="ZYX"`` rather than
    guess from the shape.

    Examples
    --------
    >>> spatial_ndim("ZYX"), spatial_ndim(None)
    (3, 2)
    >>> spatial_ndim("XYZ")
    Traceback (most recent call last):
    ...
    ValueError: axes must be 'YX' (an image) or 'ZYX' (a volume), got 'XYZ'; reorder a
    volume to (Z, Y, X) first, e.g. np.moveaxis(volume, -1, 0) for (Y, X, Z).
    """
    if axes is None:
        return 2
    if axes not in AXES:
        raise ValueError(f"axes must be 'YX' (an image) or 'ZYX' (a volume), got {axes!r}; "
                         "reorder a volume to (Z, Y, X) first, e.g. np.moveaxis(volume, -1, 0) "
                         "for (Y, X, Z).")
    return len(axes)


def check_image(image, *, ndim=(2,), name: str = "image", min_size: int = 1,
                axes: str | None = None) -> np.ndarray:
    """Return ``image`` as a float32 array after checking what a network can take.

    Raises a ``ValueError`` that says what was given and what to do, for a wrong number of
    dimensions, a non-numeric dtype, NaN or infinite values, or a too small image.

    Parameters
    ----------
    image : array_like
        The image, or a stack of them.
    ndim : tuple of int
        The numbers of axes allowed for a plane: ``(2,)`` one image ``(Y, X)``, ``(3,)`` a
        stack ``(N, Y, X)``.
    name : str
        How the messages name the image.
    min_size : int
        Smallest side allowed (of the Y and X axes).
    axes : {None, "YX", "ZYX"}
        ``"ZYX"``: the images are volumes, so each allowed number of axes grows by one
        (``(Z, Y, X)``, or ``(N, Z, Y, X)`` for ``ndim=(3,)``).

    Examples
    --------
    >>> check_image(np.zeros((8, 8), np.uint16)).dtype
    dtype('float32')
    >>> check_image(np.zeros((4, 8, 8)), axes="ZYX").shape
    (4, 8, 8)
    """
    extra = spatial_ndim(axes) - 2
    ndim = tuple(n + extra for n in ndim)
    array = np.asarray(image)
    if array.ndim not in ndim:
        names = _VOLUME_LAYOUTS if extra else _LAYOUTS
        layouts = " or ".join(names.get(n, f"{n} axes") for n in ndim)
        hint = ""
        if array.ndim == max(ndim) + 1 and array.shape[-1] in (3, 4):
            hint = (" It looks like colour images with their channels last: keep one channel, "
                    "e.g. image[..., 0], or convert to grey with skimage.color.rgb2gray(image).")
        elif array.ndim == 3 and 2 in ndim:
            hint = (" For a colour or multi-channel image pick one channel, e.g. "
                    "image[0] (channels first); for a stack, pass one image at a time."
                    + _VOLUME_HINT)
        raise ValueError(f"{name} must be {layouts}, got shape {array.shape}.{hint}")
    _check_dtype(array, name)
    return _check_values(array.astype(np.float32, copy=False), name, min_size,
                         "use a larger image or a smaller patch")


def _check_values(array: np.ndarray, name: str, min_size: int, fix: str) -> np.ndarray:
    """The checks on values and size that :func:`check_image` and
    :func:`check_network_input` share."""
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; replace them first "
                         "(e.g. np.nan_to_num(image)) or crop them away.")
    if min(array.shape[-2:]) < min_size:
        raise ValueError(f"{name} is {array.shape[-2:]} pixels, smaller than the "
                         f"{min_size} pixels needed; {fix}.")
    return array


def _check_dtype(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {array.dtype}; take "
                         "np.abs(image) or image.real first.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}"
                         + (" (an array of Python objects: images of different sizes, or "
                            "values that are not numbers?); convert it with "
                            "image.astype(np.float32)" if array.dtype == object else "")
                         + ".")


def _channels_last_hint(shape: tuple, in_channels: int) -> str:
    """How to convert an image whose channels seem to be on its last axis."""
    c = shape[-1]
    if in_channels == 1:
        kind = {3: "an RGB colour image", 4: "an RGBA colour image"}.get(
            c, f"an image with {c} channels")
        grey = ("skimage.color.rgb2gray(image)" if c == 3 else
                "skimage.color.rgb2gray(skimage.color.rgba2rgb(image))" if c == 4 else None)
        return (f"It looks like {kind} with its channels last, (Y, X, C). Convert it to one "
                "channel: pick one, e.g. image[..., 0]"
                + (f", or convert it to grey with {grey}" if grey else "") + ".")
    if c == in_channels:
        return ("It looks like the channels are last, (Y, X, C): move them first with "
                "np.moveaxis(image, -1, 0).")
    return (f"It looks like an image with {c} channels last, (Y, X, C): move them first "
            f"with np.moveaxis(image, -1, 0), then keep the {in_channels} channels the "
            f"network was trained on, e.g. image[:{in_channels}].")


def check_network_input(image, in_channels: int | None = 1, *, name: str = "image",
                        min_size: int = 1, axes: str | None = None) -> np.ndarray:
    """Return ``image`` as a float32 ``(C, Y, X)`` array for a network with
    ``in_channels`` input channels, or raise a ``ValueError`` that says what shape came
    in, what the network expects and how to convert.

    The checks that :func:`~dlbio_teach.prediction.predict` (and so the segmentation and
    restoration calls that use it) makes before anything reaches PyTorch, whose own
    messages ("expected input[1, 32, 32, 4] to have 1 channels ...") name neither the
    image nor the fix. It recognises:

    * a colour image with its channels last, ``(Y, X, 3)`` or ``(Y, X, 4)``: pick a
      channel (``image[..., 0]``), convert to grey (``skimage.color.rgb2gray``) or move
      the axis (``np.moveaxis(image, -1, 0)``);
    * a stack of images ``(N, Y, X)`` given to a network of another number of channels:
      predict one image at a time;
    * a ``(Y, X)`` image for a network of several channels;
    * a non-numeric or complex dtype, NaN or infinite values, and sides smaller than
      ``min_size``.

    With ``axes="ZYX"`` (a network for volumes), the image is ``(Z, Y, X)`` or
    ``(C, Z, Y, X)`` and the result ``(C, Z, Y, X)``.

    Parameters
    ----------
    image : array_like
        ``(Y, X)`` (one channel) or ``(C, Y, X)``.
    in_channels : int or None
        Input channels of the network; ``None`` accepts any number.
    name : str
        How the messages name the image.
    min_size : int
        Smallest side the network can take.
    axes : {None, "YX", "ZYX"}
        The layout of one channel: a plane (default) or a volume.

    Examples
    --------
    >>> check_network_input(np.zeros((8, 8), np.uint8), 1).shape
    (1, 8, 8)
    >>> check_network_input(np.zeros((5, 8, 8)), 1, axes="ZYX").shape
    (1, 5, 8, 8)
    >>> check_network_input(np.zeros((2, 8, 8)), 2).dtype
    dtype('float32')
    >>> check_network_input(np.zeros((32, 32, 3)), 1)
    Traceback (most recent call last):
    ...
    ValueError: image has shape (32, 32, 3), but the network takes 1 channel, (C, Y, X) = (1, Y,
    X), or (Y, X). It looks like an RGB colour image with its channels last, (Y, X, C). Convert
    it to one channel: pick one, e.g. image[..., 0], or convert it to grey with
    skimage.color.rgb2gray(image).
    """
    array = np.asarray(image)
    _check_dtype(array, name)
    if spatial_ndim(axes) == 3:
        return _check_volume_input(array, in_channels, name, min_size)
    if in_channels is not None:
        in_channels = int(in_channels)
        expects = (f"the network takes {in_channels} channel{'s' if in_channels > 1 else ''}"
                   f", (C, Y, X) = ({in_channels}, Y, X)" + (", or (Y, X)"
                                                             if in_channels == 1 else ""))
    else:
        expects = "the network takes (C, Y, X)"
    if array.ndim not in (2, 3):
        hint = ""
        if array.ndim == 4 and array.shape[0] == 1:
            hint = " Drop the batch axis: image[0]."
        elif array.ndim == 4:
            hint = " For a batch of images, predict them one at a time."
        raise ValueError(f"{name} must have 2 or 3 dimensions, (Y, X) or (C, Y, X), got "
                         f"shape {array.shape}; {expects}.{hint}")
    if array.ndim == 2:
        if in_channels not in (None, 1):
            raise ValueError(
                f"{name} has shape {array.shape}, one channel (Y, X), but {expects}. Give "
                f"it all {in_channels} channels stacked first: np.stack(["
                + ("channel_1, channel_2" if in_channels == 2
                   else f"channel_1, ..., channel_{in_channels}")
                + "]); a colour image with channels last converts with "
                "np.moveaxis(image, -1, 0).")
        array = array[None]
    elif in_channels is not None and array.shape[0] != in_channels:
        first, last = array.shape[0], array.shape[-1]
        if last <= 4 and first > 4:
            hint = _channels_last_hint(array.shape, in_channels)
        else:
            hint = (f"It looks like a stack of {first} images (N, Y, X) or an image of "
                    f"{first} channels. For a stack, predict one image at a time, e.g. "
                    "[predict(model, im) for im in stack]; for channels, keep those the "
                    f"network was trained on, e.g. image[:{in_channels}]"
                    + (" or image[0]" if in_channels == 1 else "")
                    + (", or convert a colour image to grey with "
                       "skimage.color.rgb2gray(np.moveaxis(image, 0, -1))"
                       if in_channels == 1 and first == 3 else "") + ".")
        raise ValueError(f"{name} has shape {array.shape}, but {expects}. {hint}")
    return _check_values(array.astype(np.float32, copy=False), name, min_size,
                         "use a larger image")


def _check_volume_input(array: np.ndarray, in_channels: int | None, name: str,
                        min_size: int) -> np.ndarray:
    """:func:`check_network_input` for a network that takes volumes."""
    takes = (f"the network takes volumes of {in_channels} channel(s), (C, Z, Y, X)"
             if in_channels is not None else "the network takes (C, Z, Y, X)")
    if array.ndim == 3 and in_channels in (None, 1):
        array = array[None]
    if array.ndim != 4:
        hint = (" Drop the batch axis: volume[0]." if array.ndim == 5 and array.shape[0] == 1
                else " A plane (Y, X) needs a network for planes (or stack it: volume[None])."
                if array.ndim == 2 else "")
        raise ValueError(f"{name} has shape {array.shape}, but {takes}"
                         + (", or (Z, Y, X)" if in_channels in (None, 1) else "") + f".{hint}")
    if in_channels is not None and array.shape[0] != in_channels:
        raise ValueError(f"{name} has shape {array.shape}, {array.shape[0]} channel(s), but "
                         f"{takes}. Keep the channels the network was trained on, e.g. "
                         f"volume[:{in_channels}], with the channel axis first "
                         "(np.moveaxis(volume, -1, 0) moves a last one).")
    return _check_values(array.astype(np.float32, copy=False), name, min_size,
                         "use a larger volume")


def check_labels(labels, *, name: str = "labels", axes: str | None = None) -> np.ndarray:
    """Return ``labels`` after checking it is an instance mask: integer, 0 = background,
    2D ``(Y, X)``, or 3D ``(Z, Y, X)`` with ``axes="ZYX"``.

    Examples
    --------
    >>> check_labels(np.array([[0, 1], [2, 2]])).shape
    (2, 2)
    >>> check_labels(np.zeros((3, 4, 4), int), axes="ZYX").shape
    (3, 4, 4)
    """
    array = np.asarray(labels)
    ndim = spatial_ndim(axes)
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.integer):
        hint = ""
        if array.ndim == 3 and ndim == 2 and np.issubdtype(array.dtype, np.integer):
            hint = (" For a stack of 2D masks, pass one mask at a time (or a list of them "
                    "where a function takes several)." + _VOLUME_HINT)
        raise ValueError(f"{name} must be a {ndim}D integer instance mask (0 = background, 1.. "
                         f"objects), got shape {array.shape} and dtype {array.dtype}.{hint}")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} has negative labels; use 0 for background, 1.. for objects.")
    return array


def normalize_percentile(image, low: float = 1.0, high: float = 99.8, *,
                         clip: bool = False, eps: float = 1e-6) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of ``image`` to 0 and 1 (as CARE does).

    Percentiles rather than min/max, so that a few hot pixels do not set the scale.

    Examples
    --------
    >>> x = normalize_percentile(np.arange(1000.0).reshape(10, 100), 1, 99)
    >>> round(float(np.percentile(x, 1)), 3), round(float(np.percentile(x, 99)), 3)
    (0.0, 1.0)
    """
    image = check_image(image, ndim=(2, 3))
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}.")
    lo, hi = np.percentile(image, [low, high])
    out = ((image - lo) / max(hi - lo, eps)).astype(np.float32)
    return np.clip(out, 0, 1) if clip else out


def normalize_minmax(image) -> np.ndarray:
    """Map the minimum and maximum of ``image`` to 0 and 1.

    Examples
    --------
    >>> normalize_minmax(np.array([[2.0, 4.0]])).tolist()
    [[0.0, 1.0]]
    """
    image = check_image(image, ndim=(2, 3))
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / max(hi - lo, 1e-12)).astype(np.float32)


def random_patches(arrays, patch_size, n_patches: int, *, seed: int = 0,
                   weights=None, axes: str | None = None):
    """Cut the same random windows out of one or more aligned image stacks.

    Parameters
    ----------
    arrays : sequence of ndarray
        Aligned images of equal shape ``(N, Y, X)`` or ``(Y, X)`` (e.g. noisy, clean, mask);
        with ``axes="ZYX"``, volumes ``(N, Z, Y, X)`` or ``(Z, Y, X)``.
    patch_size : int or tuple of int
        Side of the square (cubic) patches, or one side per spatial axis.
    n_patches : int
        Patches to draw.
    seed : int
        Random seed.
    weights : ndarray, optional
        Probability of drawing from each image ``(N,)``.
    axes : {None, "YX", "ZYX"}
        The layout of one image.

    Returns
    -------
    tuple of ndarray, each ``(n_patches, *patch_size)``

    Examples
    --------
    >>> a = np.arange(100.0).reshape(10, 10)
    >>> p, q = random_patches([a, a * 2], 4, n_patches=3, seed=0)
    >>> p.shape, bool(np.all(q == 2 * p))
    ((3, 4, 4), True)
    >>> random_patches([np.zeros((6, 10, 10))], (2, 4, 4), n_patches=3, axes="ZYX")[0].shape
    (3, 2, 4, 4)
    """
    ndim = spatial_ndim(axes)
    arrays = [np.asarray(a) for a in arrays]
    stacks = [a[None] if a.ndim == ndim else a for a in arrays]
    shape = stacks[0].shape
    if any(s.shape != shape for s in stacks):
        raise ValueError(f"arrays must have equal shapes, got {[s.shape for s in stacks]}.")
    if len(shape) != ndim + 1:
        raise ValueError(f"arrays must be images {'(Z, Y, X)' if ndim == 3 else '(Y, X)'} or "
                         f"stacks of them, got shape {shape}."
                         + (_VOLUME_HINT if len(shape) == 4 and ndim == 2 else ""))
    n, sides = shape[0], shape[1:]
    size = tuple(int(v) for v in np.broadcast_to(patch_size, ndim))
    if any(p > side for p, side in zip(size, sides)):
        raise ValueError(f"patch_size {patch_size} is larger than the images "
                         f"({'x'.join(map(str, sides))}); choose a smaller patch or larger "
                         "images.")
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=n_patches, p=weights)
    corners = [rng.integers(0, side - p + 1, size=n_patches) for side, p in zip(sides, size)]
    return tuple(
        np.stack([s[(i, *(slice(c, c + p) for c, p in zip(corner, size)))]
                  for i, *corner in zip(idx, *corners)])
        for s in stacks)


def split_indices(n: int, fractions=(0.6, 0.2, 0.2), *, seed: int = 0):
    """Split ``range(n)`` into disjoint train / validation / test index arrays.

    Split whole images (or whole tiles), never patches of one image, so that no pixel of a
    test image was seen in training.

    Examples
    --------
    >>> train, val, test = split_indices(10, seed=0)
    >>> len(train), len(val), len(test), len(set(train) & set(test))
    (6, 2, 2, 0)
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions}.")
    if n < len(fractions):
        raise ValueError(f"need at least {len(fractions)} items to split, got {n}.")
    order = np.random.default_rng(seed).permutation(n)
    if any(f <= 0 for f in fractions):
        raise ValueError(f"every fraction must be positive, got {fractions}.")
    counts = np.maximum(1, np.round(np.asarray(fractions) * n).astype(int))
    counts[0] = n - counts[1:].sum()
    if counts[0] < 1:
        raise ValueError(f"{n} items are too few for the fractions {fractions}: "
                         "every split needs at least one; use more images or tiles.")
    bounds = np.cumsum(counts)[:-1]
    return tuple(np.sort(part) for part in np.split(order, bounds))


def grid_tiles(image, n_y: int, n_x: int) -> np.ndarray:
    """Cut an image ``(Y, X)`` into ``n_y * n_x`` equal, non-overlapping tiles.

    The edge rows and columns that do not fill a tile are dropped. A stack ``(N, Y, X)``
    (or a list of equal images) gives the tiles of each image in turn, ``N * n_y * n_x``.

    Examples
    --------
    >>> grid_tiles(np.zeros((10, 12)), 2, 3).shape
    (6, 5, 4)
    >>> grid_tiles(np.zeros((2, 10, 12)), 2, 2).shape
    (8, 5, 6)
    """
    image = np.asarray(image)
    if image.ndim == 3:
        return np.concatenate([grid_tiles(one, n_y, n_x) for one in image])
    if image.ndim != 2:
        raise ValueError(f"grid_tiles takes an image (Y, X) or a stack (N, Y, X), got shape "
                         f"{image.shape}.")
    th, tw = image.shape[0] // n_y, image.shape[1] // n_x
    return np.stack([image[i * th:(i + 1) * th, j * tw:(j + 1) * tw]
                     for i in range(n_y) for j in range(n_x)])


def labelled_patches(images, labels, *, patch_size: int, n_per_class: int, stride: int = 1,
                     seed: int = 0):
    """Patches centred on object and on background pixels, for a patch classifier.

    Parameters
    ----------
    images, labels : ndarray ``(N, Y, X)`` or ``(Y, X)``
        Images and their label masks (any value > 0 is an object).
    patch_size : int
        Side of the square patches (even sizes put the centre just below and right).
    n_per_class : int
        Patches drawn per class from each image (balanced classes).
    stride : int
        Centres are drawn on a grid of this step; 1 allows neighbouring, overlapping
        patches (what chapter 1 uses to show leakage).
    seed : int
        Random seed.

    Returns
    -------
    patches : ndarray ``(M, patch_size, patch_size)``
    classes : ndarray ``(M,)`` of int64, 1 where the centre pixel is an object
    image_ids : ndarray ``(M,)``, the image each patch came from

    Examples
    --------
    >>> img = np.zeros((32, 32), np.float32); lab = np.zeros((32, 32), int)
    >>> lab[10:20, 10:20] = 1
    >>> p, c, ids = labelled_patches(img, lab, patch_size=8, n_per_class=5, seed=0)
    >>> p.shape, int(c.sum()), ids.tolist() == [0] * 10
    ((10, 8, 8), 5, True)
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    if images.ndim == 2:
        images, labels = images[None], labels[None]
    if images.shape != labels.shape:
        raise ValueError(f"images {images.shape} and labels {labels.shape} must have the "
                         "same shape.")
    half = patch_size // 2
    if min(images.shape[1:]) < patch_size + 1:
        raise ValueError(f"images of {images.shape[1:]} are too small for patches of "
                         f"{patch_size} pixels.")
    rng = np.random.default_rng(seed)
    patches, classes, ids = [], [], []
    for i, (image, label) in enumerate(zip(images, labels)):
        grid = np.zeros(label.shape, bool)
        grid[half:label.shape[0] - patch_size + half + 1:stride,
             half:label.shape[1] - patch_size + half + 1:stride] = True
        for cls, where in ((0, grid & (label == 0)), (1, grid & (label > 0))):
            ys, xs = np.nonzero(where)
            if len(ys) == 0:
                continue
            pick = rng.choice(len(ys), size=n_per_class, replace=len(ys) < n_per_class)
            for y, x in zip(ys[pick], xs[pick]):
                patches.append(image[y - half:y - half + patch_size,
                                     x - half:x - half + patch_size])
                classes.append(cls)
                ids.append(i)
    return (np.stack(patches), np.asarray(classes, np.int64), np.asarray(ids))
