"""Figures the chapters share: image grids with one contrast, before/after, loss curves,
matched objects coloured by outcome."""
from __future__ import annotations

import re

import numpy as np

__all__ = ["show_images", "plot_history", "error_map", "matching_overlay", "OUTCOME_COLOURS",
           "show_markdown", "bold_headings"]

#: Colours of true positives, false positives and false negatives (Okabe-Ito colours,
#: readable with the common colour-vision deficiencies).
OUTCOME_COLOURS = {"TP": "#009E73", "FP": "#D55E00", "FN": "#56B4E9"}


def _contrast(images, percentiles):
    values = np.concatenate([np.asarray(im, np.float32).ravel() for im in images])
    lo, hi = np.percentile(values, percentiles)
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def show_images(images, titles=None, *, shared_contrast: bool = True,
                percentiles=(1.0, 99.8), cmap: str = "magma", ncols: int | None = None,
                size: float = 3.2, labels=None):
    """Show 2D images side by side; with ``shared_contrast`` all use one display range.

    One display range is what makes images comparable: with a contrast per image, a noisy
    and a denoised image can look alike.

    Parameters
    ----------
    images : sequence of ndarray ``(Y, X)``
    titles : sequence of str, optional
    shared_contrast : bool
        One display range from the pooled percentiles of all images.
    percentiles : (float, float)
        Percentiles mapped to the ends of the colour map.
    cmap : str
        Colour map for intensity images.
    ncols : int, optional
        Columns of the grid (default: all in one row, up to 5).
    labels : sequence of bool, optional
        Which images are label images (shown with a categorical colour map).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = show_images([np.zeros((4, 4)), np.ones((4, 4))], ["a", "b"])
    """
    import matplotlib.pyplot as plt

    images = [np.asarray(im) for im in images]
    labels = labels or [False] * len(images)
    n = len(images)
    ncols = ncols or min(n, 5)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows),
                             squeeze=False)
    intensity = [im for im, lab in zip(images, labels) if not lab]
    shared = _contrast(intensity, percentiles) if shared_contrast and intensity else None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        im = images[i]
        if labels[i]:
            shown = np.ma.masked_where(im == 0, (im % 20) + 1)
            ax.imshow(np.zeros_like(im), cmap="gray")
            ax.imshow(shown, cmap="tab20", interpolation="nearest", vmin=1, vmax=20)
        else:
            lo, hi = shared or _contrast([im], percentiles)
            ax.imshow(im, cmap=cmap, vmin=lo, vmax=hi)
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    fig.tight_layout()
    return fig


def plot_history(*histories, names=None, ax=None, log: bool = True):
    """Plot training and validation loss per epoch for one or more histories.

    Examples
    --------
    >>> from dlbio_teach.training import History
    >>> ax = plot_history(History(train_loss=[1.0, 0.5], val_loss=[1.1, 0.7]))
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    names = names or [""] * len(histories)
    for i, (h, name) in enumerate(zip(histories, names)):
        colour = f"C{i}"
        label = f"{name} " if name else ""
        ax.plot(np.arange(1, len(h.train_loss) + 1), h.train_loss, color=colour,
                label=f"{label}train")
        if h.val_loss:
            ax.plot(np.arange(1, len(h.val_loss) + 1), h.val_loss, color=colour, ls="--",
                    label=f"{label}validation")
            if h.best_epoch >= 0:
                ax.plot(h.best_epoch + 1, h.val_loss[h.best_epoch], "o", color=colour)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax


def error_map(target, prediction, *, ax=None, title: str = "prediction - target",
              limit: float | None = None):
    """Show the signed error of a prediction on a diverging colour map, centred on zero.

    Examples
    --------
    >>> ax = error_map(np.zeros((4, 4)), np.ones((4, 4)))
    """
    import matplotlib.pyplot as plt

    diff = np.asarray(prediction, np.float32) - np.asarray(target, np.float32)
    limit = limit or float(np.percentile(np.abs(diff), 99.5)) or 1.0
    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    handle = ax.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    ax.figure.colorbar(handle, ax=ax, fraction=0.046)
    return ax


def matching_overlay(image, true_labels, pred_labels, *, threshold: float = 0.5, ax=None,
                     title: str | None = None):
    """Outline objects by matching outcome: TP and FP predictions, FN (missed) true objects.

    Predictions matched to a true object (IoU >= ``threshold``) are outlined as TP, the
    other predictions as FP; true objects left unmatched are outlined as FN.

    Returns
    -------
    dict
        The :func:`dlbio_teach.metrics.match_instances` result drawn.

    Examples
    --------
    >>> t = np.zeros((8, 8), int); t[1:4, 1:4] = 1; t[5:8, 5:8] = 2
    >>> m = matching_overlay(np.zeros((8, 8)), t, np.where(t == 1, 1, 0))
    >>> m["tp"], m["fn"]
    (1, 1)
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch
    from skimage.segmentation import find_boundaries

    from .metrics import match_instances

    match = match_instances(true_labels, pred_labels, threshold=threshold)
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    matched_true = [t for t, _, _ in match["pairs"]]
    matched_pred = [p for _, p, _ in match["pairs"]]
    outlines = {
        "TP": find_boundaries(np.where(np.isin(pred_labels, matched_pred), pred_labels, 0)),
        "FP": find_boundaries(np.where(np.isin(pred_labels, matched_pred, invert=True),
                                       pred_labels, 0)),
        "FN": find_boundaries(np.where(np.isin(true_labels, matched_true, invert=True),
                                       true_labels, 0)),
    }
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    lo, hi = _contrast([image], (1.0, 99.8))
    grey = np.clip((np.asarray(image, np.float32) - lo) / (hi - lo), 0, 1)
    rgb = np.repeat(grey[..., None] * 0.8, 3, axis=-1)
    for outcome, outline in outlines.items():
        rgb[outline] = to_rgb(OUTCOME_COLOURS[outcome])
    ax.imshow(rgb, interpolation="nearest")
    ax.axis("off")
    counts = {"TP": match["tp"], "FP": match["fp"], "FN": match["fn"]}
    ax.legend(handles=[Patch(color=OUTCOME_COLOURS[k], label=f"{k} {v}")
                       for k, v in counts.items()],
              loc="lower right", fontsize=7, framealpha=0.8)
    ax.set_title(title or f"matching at IoU {threshold:g}", fontsize=10)
    return match


def bold_headings(markdown: str) -> str:
    r"""Markdown headings turned into bold lines, so that a generated document shown inside a
    chapter does not mix its headings with the chapter's.

    Examples
    --------
    >>> bold_headings("# Card\ntext")
    '**Card**\ntext'
    """
    return re.sub(r"^#+ (.*)$", r"**\1**", markdown, flags=re.M)


def show_markdown(markdown: str):
    """Display Markdown (a model card, a checklist) in a notebook, headings in bold."""
    from IPython.display import Markdown, display
    display(Markdown(bold_headings(markdown)))
