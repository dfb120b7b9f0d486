"""dlbio_teach.viz and dlbio_teach.widgets: figures, and viewers that fall back to them."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dlbio_teach import widgets  # noqa: E402
from dlbio_teach.training import History  # noqa: E402
from dlbio_teach.viz import OUTCOME_COLOURS, error_map, matching_overlay, plot_history, show_images  # noqa: E402
from dlbio_teach.widgets import compare_viewer, slider_plot, widgets_available  # noqa: E402


@pytest.fixture(autouse=True)
def no_widgets(monkeypatch):
    monkeypatch.setenv("DLBIO_WIDGETS", "0")
    yield
    plt.close("all")


def axes_with_images(fig):
    return [ax for ax in fig.axes if ax.images]


def ramp(offset=0.0, shape=(16, 16)):
    return np.linspace(0, 1, shape[0] * shape[1]).reshape(shape).astype(np.float32) + offset


# --- show_images ------------------------------------------------------------------------

@pytest.mark.parametrize("n, ncols, grid", [(1, None, (1, 1)), (3, None, (1, 3)),
                                            (7, None, (2, 5)), (4, 2, (2, 2)),
                                            (5, 3, (2, 3))])
def test_show_images_grid(n, ncols, grid):
    images = [ramp(i) for i in range(n)]
    fig = show_images(images, [f"im{i}" for i in range(n)], ncols=ncols)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == grid[0] * grid[1]
    shown = axes_with_images(fig)
    assert len(shown) == n
    assert [ax.get_title() for ax in shown] == [f"im{i}" for i in range(n)]
    assert all(not ax.axison for ax in fig.axes)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(3.2 * grid[1]) and h == pytest.approx(3.2 * grid[0])


def test_show_images_shared_contrast():
    dim, bright = ramp(), ramp() * 10
    fig = show_images([dim, bright], shared_contrast=True, percentiles=(0, 100))
    clims = [ax.images[0].get_clim() for ax in axes_with_images(fig)]
    assert clims[0] == clims[1] == pytest.approx((0.0, 10.0))
    fig = show_images([dim, bright], shared_contrast=False, percentiles=(0, 100))
    clims = [ax.images[0].get_clim() for ax in axes_with_images(fig)]
    assert clims[0] == pytest.approx((0.0, 1.0)) and clims[1] == pytest.approx((0.0, 10.0))


def test_show_images_constant_image_has_valid_range():
    fig = show_images([np.ones((4, 4))])
    lo, hi = axes_with_images(fig)[0].images[0].get_clim()
    assert hi > lo


def test_show_images_labels_use_a_categorical_map():
    labels = np.zeros((16, 16), np.int32)
    labels[2:6, 2:6], labels[8:12, 8:12] = 1, 25
    fig = show_images([ramp(), labels], labels=[False, True], cmap="viridis",
                      percentiles=(0, 100))
    image_ax, label_ax = axes_with_images(fig)
    assert image_ax.images[0].get_cmap().name == "viridis"
    assert len(label_ax.images) == 2 and label_ax.images[1].get_cmap().name == "tab20"
    # The label image does not take part in the shared contrast.
    assert image_ax.images[0].get_clim() == pytest.approx((0.0, 1.0))
    shown = label_ax.images[1].get_array()
    assert shown.mask[0, 0] and not shown.mask[3, 3]


def test_show_images_without_titles():
    fig = show_images([ramp(), ramp()])
    assert all(ax.get_title() == "" for ax in fig.axes)


# --- plot_history -------------------------------------------------------------------------

def test_plot_history_lines_and_best_epoch():
    h = History(train_loss=[1.0, 0.5, 0.4], val_loss=[1.2, 0.6, 0.7], best_epoch=1)
    ax = plot_history(h)
    lines = ax.get_lines()
    assert len(lines) == 3                    # train, validation, best-epoch marker
    assert list(lines[0].get_xdata()) == [1, 2, 3]
    assert list(lines[0].get_ydata()) == [1.0, 0.5, 0.4]
    assert list(lines[1].get_ydata()) == [1.2, 0.6, 0.7]
    assert list(lines[2].get_xdata()) == [2] and list(lines[2].get_ydata()) == [0.6]
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]


def test_plot_history_several_runs_on_given_axes():
    _, given = plt.subplots()
    a = History(train_loss=[1.0, 0.5])
    b = History(train_loss=[2.0, 1.0], val_loss=[2.1, 1.1], best_epoch=-1)
    ax = plot_history(a, b, names=["care", "n2v"], ax=given, log=False)
    assert ax is given and ax.get_yscale() == "linear"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["care train", "n2v train", "n2v validation"]
    assert len(ax.get_lines()) == 3          # no marker without a best epoch


# --- error_map ------------------------------------------------------------------------------

def test_error_map_is_signed_and_centred():
    target = np.zeros((10, 10))
    prediction = np.zeros((10, 10))
    prediction[:5] = 0.5
    prediction[5:] = -0.25
    ax = error_map(target, prediction, title="err")
    im = ax.images[0]
    assert np.allclose(im.get_array(), prediction)
    lo, hi = im.get_clim()
    assert lo == -hi and hi == pytest.approx(0.5)
    assert im.get_cmap().name == "RdBu_r"
    assert ax.get_title() == "err"
    assert len(ax.figure.axes) == 2           # the image and its colour bar


def test_error_map_limits():
    ax = error_map(np.zeros((4, 4)), np.ones((4, 4)), limit=3.0)
    assert ax.images[0].get_clim() == (-3.0, 3.0)
    ax = error_map(np.ones((4, 4)), np.ones((4, 4)))   # no error at all: a valid range
    assert ax.images[0].get_clim() == (-1.0, 1.0)


# --- widgets --------------------------------------------------------------------------------

def test_widgets_unavailable_when_disabled():
    assert widgets_available() is False


def test_widgets_unavailable_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("DLBIO_WIDGETS")
    assert widgets_available() is False        # pytest is not a Jupyter kernel


def test_compare_viewer_static_figure():
    images = {"noisy": ramp(), "restored": ramp(0.5), "truth": ramp(1.0)}
    fig = compare_viewer(images, percentiles=(0, 100))
    assert isinstance(fig, Figure)
    shown = axes_with_images(fig)
    assert [ax.get_title() for ax in shown] == ["noisy", "restored", "truth"]
    assert all(ax.images[0].get_clim() == pytest.approx((0.0, 2.0)) for ax in shown)


@pytest.mark.parametrize("images", [
    {"a": np.zeros((8, 8)), "b": np.zeros((8, 9))},
    {"a": np.zeros((8, 8))},
    {"a": np.zeros((2, 8, 8)), "b": np.zeros((2, 8, 8))},
])
def test_compare_viewer_errors(images):
    with pytest.raises(ValueError, match="at least two 2D images of the same shape"):
        compare_viewer(images)


def test_compare_viewer_with_widgets(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setattr(widgets, "widgets_available", lambda: True)
    viewer = compare_viewer({"a": ramp(), "b": ramp(1.0)})
    assert not isinstance(viewer, Figure)
    controls, border, out = viewer.children
    left, right = controls.children
    assert (left.value, right.value) == ("a", "b") and border.value == 0.5
    border.value = 0.25                        # redraws without error
    right.value = "a"


def test_slider_plot_static_values():
    seen = []
    assert slider_plot(seen.append, values=range(1, 10), name="sigma") is None
    assert seen == [1, 5, 9]                  # first, middle, last
    seen.clear()
    slider_plot(seen.append, values=[0.1, 0.2, 0.4], name="s", static_values=[0.4])
    assert seen == [0.4]
    seen.clear()
    slider_plot(seen.append, values=["a", "b"], name="s")
    assert seen == ["a", "b"]                 # no value twice


def test_slider_plot_draws_figures():
    def draw(sigma):
        fig, ax = plt.subplots()
        ax.set_title(f"sigma={sigma}")

    before = len(plt.get_fignums())
    slider_plot(draw, values=[1, 2, 3, 4], name="sigma")
    assert len(plt.get_fignums()) == before + 3


def test_slider_plot_with_widgets(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setattr(widgets, "widgets_available", lambda: True)
    seen = []

    def function(x):
        seen.append(x)

    slider_plot(function, values=[1, 2, 3], name="x")
    assert seen == [2]                        # interact draws once, at the middle value


def test_matching_overlay_colours_each_outcome():
    from matplotlib.colors import to_rgb

    true = np.zeros((20, 20), np.int32)
    true[2:8, 2:8] = 1              # found (TP)
    true[12:18, 12:18] = 2          # missed (FN)
    pred = np.zeros_like(true)
    pred[2:8, 2:8] = 4
    pred[12:18, 2:8] = 5            # spurious (FP)
    fig, ax = plt.subplots()
    m = matching_overlay(np.zeros((20, 20)), true, pred, ax=ax)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    rgb = ax.images[0].get_array()
    for outcome, (y, x) in {"TP": (2, 4), "FP": (12, 4), "FN": (12, 14)}.items():
        assert np.allclose(rgb[y, x], to_rgb(OUTCOME_COLOURS[outcome])), outcome
    assert np.allclose(rgb[10, 10], 0)   # background stays dark
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["TP 1", "FP 1", "FN 1"]
    plt.close(fig)
