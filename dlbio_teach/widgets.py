"""Interactive viewers (ipywidgets) that fall back to static figures.

Widgets need a live kernel with a widget front end (JupyterLab, Notebook 7, Colab). In the
HTML book and under nbval they would show nothing, so there, and whenever
``DLBIO_WIDGETS=0`` or ipywidgets is missing, each viewer draws a static figure instead.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .viz import show_images

__all__ = ["widgets_available", "compare_viewer", "slider_plot"]


def widgets_available() -> bool:
    """True when ipywidgets can render here (a live kernel, not disabled by DLBIO_WIDGETS=0).

    Examples
    --------
    >>> os.environ["DLBIO_WIDGETS"] = "0"; widgets_available()
    False
    """
    if os.environ.get("DLBIO_WIDGETS", "").strip() == "0":
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    # A kernel with a front end (Jupyter, VS Code) or Colab; not plain IPython in a terminal.
    return shell is not None and ("google.colab" in sys.modules
                                  or type(shell).__name__ == "ZMQInteractiveShell")


def compare_viewer(images: dict, *, percentiles=(1.0, 99.8), cmap: str = "magma",
                   size: float = 4.5):
    """Compare images of one scene: a swipe slider between two chosen images.

    With widgets: drop-downs choose the left and right image and a slider moves the border
    between them, on one shared contrast. Without: a static row of the images.

    Parameters
    ----------
    images : dict of str -> ndarray ``(Y, X)``
        E.g. ``{"noisy": x, "restored": y, "ground truth": z}``; at least two, same shape.

    Returns
    -------
    ipywidgets.Widget or matplotlib.figure.Figure

    Examples
    --------
    >>> os.environ["DLBIO_WIDGETS"] = "0"
    >>> fig = compare_viewer({"a": np.zeros((8, 8)), "b": np.ones((8, 8))})
    """
    names = list(images)
    arrays = [np.asarray(images[k], np.float32) for k in names]
    if len(arrays) < 2 or any(a.shape != arrays[0].shape or a.ndim != 2 for a in arrays):
        raise ValueError("compare_viewer needs at least two 2D images of the same shape, "
                         f"got shapes {[a.shape for a in arrays]}.")
    import matplotlib.pyplot as plt

    if not widgets_available():
        figure = show_images(arrays, names, percentiles=percentiles, cmap=cmap)
        # Closed, the figure is shown once, as the cell's result; open, Jupyter's inline
        # backend would draw it a second time at the end of the cell.
        plt.close(figure)
        return figure

    import ipywidgets as w

    lo, hi = np.percentile(np.concatenate([a.ravel() for a in arrays]), percentiles)
    left = w.Dropdown(options=names, value=names[0], description="left")
    right = w.Dropdown(options=names, value=names[1], description="right")
    border = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="border")
    out = w.Output()

    def draw(*_):
        a, b = images[left.value], images[right.value]
        cut = int(border.value * a.shape[1])
        shown = np.concatenate([a[:, :cut], b[:, cut:]], axis=1)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(size, size))
            ax.imshow(shown, cmap=cmap, vmin=lo, vmax=hi)
            ax.axvline(cut - 0.5, color="white", lw=1)
            ax.set_title(f"{left.value}  |  {right.value}")
            ax.axis("off")
            plt.show()

    for control in (left, right, border):
        control.observe(draw, names="value")
    draw()
    return w.VBox([w.HBox([left, right]), border, out])


def slider_plot(function, *, values, name: str, static_values=None):
    """Call ``function(value)`` (which draws a figure) from a slider over ``values``.

    Without widgets, ``function`` is called once for each of ``static_values`` (default:
    the first, middle and last value), so the static page still shows the effect.

    Examples
    --------
    >>> os.environ["DLBIO_WIDGETS"] = "0"
    >>> seen = []
    >>> slider_plot(seen.append, values=[1, 2, 3], name="x")
    >>> seen
    [1, 2, 3]
    """
    values = list(values)
    if not widgets_available():
        static_values = static_values or sorted({values[0], values[len(values) // 2],
                                                 values[-1]}, key=values.index)
        for v in static_values:
            function(v)
        return None
    import ipywidgets as w
    return w.interact(function, **{name: w.SelectionSlider(options=values,
                                                           value=values[len(values) // 2],
                                                           description=name)})
