"""Figures the chapters share: image grids with one contrast, before/after, loss curves,
matched objects coloured by outcome, orthogonal views of a volume."""
from __future__ import annotations

import re

import numpy as np

__all__ = ["show_images", "plot_history", "error_map", "matching_overlay", "OUTCOME_COLOURS",
           "show_markdown", "bold_headings", "orthogonal_views", "OUTLINE_COLOUR",
           "plot_budget_curve", "plot_learning_curve", "plot_effects", "plot_confusion"]

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


def plot_budget_curve(runs, *, baseline=None, marks=None, this_run=None, ax=None):
    """Held-out F1 against training steps, one line per network (mean over seeds, each
    seed a dot), the baseline as a dashed line, budgets marked as vertical lines.

    ``runs`` are rows ``{"network", "seed", "steps", "held_out_f1"}`` (as
    ``benchmarks/budget_3d.py`` writes them); a network named ``"<another>, <variant>"``
    is drawn in the colour of ``<another>``, dashed (a second variant dash-dotted).
    ``marks`` maps a label to a number of steps (a profile's budget); ``this_run`` maps a
    network to ``(steps, F1)``, drawn as a star.

    Examples
    --------
    >>> rows = [{"network": "net", "seed": 0, "steps": s, "held_out_f1": f}
    ...         for s, f in ((64, 0.2), (256, 0.5))]
    >>> ax = plot_budget_curve(rows, baseline=0.4, marks={"standard": 256})
    >>> len(ax.lines)
    4
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.4))
    networks = list(dict.fromkeys(r["network"] for r in runs))
    main = [n for n in networks if n.split(",")[0] not in networks or "," not in n]
    for network in networks:
        base = network.split(",")[0] if "," in network else network
        colour = f"C{main.index(base if base in main else network)}"
        rows = [r for r in runs if r["network"] == network]
        steps = sorted({r["steps"] for r in rows})
        means = [np.mean([r["held_out_f1"] for r in rows if r["steps"] == s]) for s in steps]
        variants = [n for n in networks if n not in main and n.split(",")[0] == base]
        style = "-" if network in main else ("--", "-.")[variants.index(network) % 2]
        ax.plot(steps, means, style, color=colour, label=network)
        ax.plot([r["steps"] for r in rows], [r["held_out_f1"] for r in rows], "o",
                color=colour, alpha=0.5, ms=4)
        if this_run and network in this_run:
            ax.plot(*this_run[network], "*", color=colour, ms=12, mec="k")
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls=":", label="baseline")
    for label, steps in (marks or {}).items():
        ax.axvline(steps, color="k", lw=0.6, ls=":")
        ax.annotate(label, (steps, 1), xytext=(0, 2), textcoords="offset points", fontsize=8,
                    ha="center", va="bottom", annotation_clip=False)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training steps (batches)")
    ax.set_ylabel("held-out F1@0.5")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.figure.tight_layout()
    return ax


def plot_learning_curve(points, *, baseline=None, over_seeds=None, ax=None,
                        xlabel: str = "annotated training tiles"):
    """Test F1 against the amount of annotation: this run's scores with their intervals,
    the score of each run over seeds as a dot, the baseline as a band.

    ``points`` maps an amount (tiles, nuclei) to an interval (``estimate``, ``low``,
    ``high``, e.g. a :class:`~dlbio_teach.intervals.BootstrapCI`); ``baseline`` is one
    interval for a method that needs no annotation; ``over_seeds`` maps an amount to the
    F1 of each run (seeds, and machines where there are several).

    Examples
    --------
    >>> from dlbio_teach.intervals import BootstrapCI
    >>> ci = lambda f: BootstrapCI(f, f - 0.1, f + 0.1, 0.95, 20)
    >>> ax = plot_learning_curve({1: ci(0.5), 2: ci(0.7)}, baseline=ci(0.6),
    ...                          over_seeds={1: [0.4, 0.6], 2: [0.7, 0.8]})
    >>> len(ax.lines) >= 3
    True
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    amounts = sorted(points)
    est = np.array([points[n].estimate for n in amounts])
    err = np.array([[points[n].estimate - points[n].low, points[n].high - points[n].estimate]
                    for n in amounts]).T
    ax.errorbar(amounts, est, yerr=err, fmt="o-", color="C0", capsize=3,
                label="this run (95 % CI over test images)")
    if over_seeds:
        xs = [n for n in amounts if n in over_seeds for _ in over_seeds[n]]
        ys = [v for n in amounts if n in over_seeds for v in over_seeds[n]]
        ax.plot(xs, ys, "o", color="C0", alpha=0.35, ms=4, label="each run over seeds")
    if baseline is not None:
        ax.axhspan(baseline.low, baseline.high, color="grey", alpha=0.2, lw=0)
        ax.axhline(baseline.estimate, color="grey", ls=":", label="baseline (no annotation)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(amounts, [str(n) for n in amounts])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test F1@0.5")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.figure.tight_layout()
    return ax


def plot_confusion(counts, *, names, ax=None, title: str = ""):
    """A confusion matrix (rows: true class, columns: predicted) with each cell's count and
    its share of the row, so that a rare class's row reads as its recall.

    Examples
    --------
    >>> ax = plot_confusion(np.array([[90, 5], [3, 2]]), names=["common", "rare"])
    >>> len(ax.texts)
    4
    """
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or len(names) != len(counts):
        raise ValueError(f"counts must be square with one name per class, got shape "
                         f"{counts.shape} and {len(names)} names.")
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6, 2.4))
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{n}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return ax


def plot_effects(effects, *, truth, design=None, ax=None, xlabel: str = "effect"):
    """Each pipeline's estimate of an effect with its interval, beside the truth's.

    ``effects`` maps a pipeline's name to an interval (``estimate``, ``low``, ``high``);
    ``truth`` is the same effect measured on the true labels (drawn as a band);
    ``design`` the effect the data were made with (a dashed line). Values in percent
    when they are relative effects: pass them multiplied by 100.

    Examples
    --------
    >>> from dlbio_teach.intervals import BootstrapCI
    >>> ci = lambda f: BootstrapCI(f, f - 3, f + 3, 0.95, 16)
    >>> ax = plot_effects({"Otsu": ci(6.0), "U-Net": ci(20.0)}, truth=ci(9.0), design=10)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['Otsu', 'U-Net']
    """
    import matplotlib.pyplot as plt

    names = list(effects)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    ax.axvspan(truth.low, truth.high, color="C2", alpha=0.2, lw=0)
    ax.axvline(truth.estimate, color="C2", label="measured on the true labels")
    if design is not None:
        ax.axvline(design, color="k", ls="--", lw=0.8, label="made with")
    ax.axvline(0, color="grey", lw=0.6)
    for y, name in enumerate(names):
        e = effects[name]
        ax.errorbar(e.estimate, y, xerr=[[e.estimate - e.low], [e.high - e.estimate]],
                    fmt="o", color="C0", capsize=3)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0), borderaxespad=0)
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


#: Colour of the label outlines and crosshairs of :func:`orthogonal_views`.
OUTLINE_COLOUR = "#56B4E9"


def orthogonal_views(volume, *, voxel_size=(1.0, 1.0, 1.0), position=None, labels=None,
                     mode: str = "section", axes=None, title: str | None = None,
                     percentiles=(1.0, 99.8), cmap: str = "magma", size: float = 6.0):
    """Show a volume ``(Z, Y, X)`` as three orthogonal panels: XY, XZ and YZ.

    The XY panel is the plane ``z`` seen from above; the XZ panel below it is the plane
    ``y`` (z running down), the YZ panel beside it the plane ``x`` (z running right).
    Each panel is drawn with the aspect of the voxels, so that with a z step larger than
    the pixel size (``voxel_size``) a round nucleus looks round, not squashed: the
    axes count voxels, the lengths on screen are micrometres. The three panels share one
    display range.

    Parameters
    ----------
    volume : ndarray ``(Z, Y, X)``
    voxel_size : (float, float, float)
        Size of a voxel ``(Z, Y, X)``, e.g. in micrometres; only the ratios matter.
    position : (int, int, int), optional
        The voxel ``(z, y, x)`` that the three sections go through, marked by crosshair
        lines. Default: the centre of the volume.
    labels : ndarray ``(Z, Y, X)`` of int, optional
        Instance labels whose outlines are drawn over each panel.
    mode : {"section", "max"}
        ``"section"``: the planes through ``position``. ``"max"``: maximum projections
        along z, y and x (every object at once, but a bright object hides a dim one
        behind it; ``labels`` are then outlined as one projected foreground, and
        ``position`` is not used).
    axes : sequence of three matplotlib Axes, optional
        Where to draw the XY, XZ and YZ panels; default: a new figure laid out with
        the right proportions.
    title : str, optional
        Title of the figure.
    percentiles : (float, float)
        Percentiles of the three panels mapped to the ends of the colour map.
    cmap : str
        Colour map.
    size : float
        Height and width of a new figure's larger side, in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Its axes are the XY, XZ and YZ panels, in that order.

    Examples
    --------
    >>> volume = np.zeros((10, 40, 40)); volume[5, 15:25, 15:25] = 1
    >>> fig = orthogonal_views(volume, voxel_size=(2.0, 0.5, 0.5))
    >>> [ax.get_title() for ax in fig.axes]
    ['XY (z=5)', 'XZ (y=20)', 'YZ (x=20)']
    >>> fig.axes[1].get_aspect()          # a z step is 4 pixels tall
    4.0
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from skimage.segmentation import find_boundaries

    volume = np.asarray(volume)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise ValueError(f"volume must be (Z, Y, X), got shape {volume.shape}. For a 2D "
                         "image use show_images; for several channels show one, "
                         "volume[c].")
    try:
        vz, vy, vx = (float(v) for v in voxel_size)
    except (TypeError, ValueError):
        vz = vy = vx = float("nan")
    if not all(np.isfinite(v) and v > 0 for v in (vz, vy, vx)):
        raise ValueError(f"voxel_size must be three positive numbers (Z, Y, X), e.g. "
                         f"(2.0, 0.5, 0.5), got {voxel_size!r}.")
    if mode not in ("section", "max"):
        raise ValueError(f"mode must be 'section' or 'max', got {mode!r}.")
    nz, ny, nx = volume.shape
    if position is None:
        position = (nz // 2, ny // 2, nx // 2)
    position = tuple(position)
    if (len(position) != 3 or not all(isinstance(p, (int, np.integer)) for p in position)
            or not all(0 <= p < n for p, n in zip(position, volume.shape))):
        raise ValueError(f"position must be a voxel (z, y, x) inside the volume of shape "
                         f"{volume.shape}, got {position!r}.")
    z, y, x = (int(p) for p in position)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != volume.shape:
            raise ValueError(f"labels must have the volume's shape {volume.shape}, got "
                             f"{labels.shape}.")

    def panels(array):   # XY (Y, X), XZ (Z, X), YZ (Y, Z)
        if mode == "max":
            return array.max(axis=0), array.max(axis=1), array.max(axis=2).T
        return array[z], array[:, y, :], array[:, :, x].T

    if axes is None:
        width, height = nx * vx + nz * vz, ny * vy + nz * vz
        scale = size / max(width, height)
        fig = plt.figure(figsize=(width * scale + 0.6, height * scale + 0.9))
        grid = fig.add_gridspec(2, 2, width_ratios=[nx * vx, nz * vz],
                                height_ratios=[ny * vy, nz * vz], hspace=0.35, wspace=0.3)
        axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]),
                fig.add_subplot(grid[0, 1])]
    elif len(axes) != 3:
        raise ValueError(f"axes must be three matplotlib Axes (XY, XZ, YZ), got {len(axes)}.")
    fig = axes[0].figure
    sections = panels(volume.astype(np.float32))
    lo, hi = _contrast(sections, percentiles)
    if labels is None:
        outlines = (None,) * 3
    else:    # a projection of labels would mix objects: outline the projected foreground
        outlines = panels(labels if mode == "section" else labels > 0)
    # name, the plane's coordinate, (x label, y label), aspect, crosshair (row, column)
    specs = (("XY", f"z={z}", "xy", vy / vx, (y, x)),
             ("XZ", f"y={y}", "xz", vz / vx, (z, x)),
             ("YZ", f"x={x}", "zy", vy / vz, (y, z)))
    for ax, section, outline, (name, plane, (xlabel, ylabel), aspect, (row, col)) in zip(
            axes, sections, outlines, specs):
        ax.imshow(section, cmap=cmap, vmin=lo, vmax=hi, aspect=aspect,
                  interpolation="nearest")
        if outline is not None:
            rim = find_boundaries(outline, mode="inner") & (outline > 0)
            ax.imshow(np.ma.masked_where(~rim, rim), cmap=ListedColormap([OUTLINE_COLOUR]),
                      vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
        if mode == "section":
            ax.axhline(row, color="white", lw=0.8, alpha=0.6)
            ax.axvline(col, color="white", lw=0.8, alpha=0.6)
            ax.set_title(f"{name} ({plane})", fontsize=9)
        else:
            ax.set_title(f"{name} (max over {plane[0]})", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

