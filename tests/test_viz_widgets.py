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


# --- orthogonal_views ---------------------------------------------------------------------

def ramp_volume(shape=(6, 20, 30)):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_orthogonal_views_shows_three_sections_through_the_position():
    from dlbio_teach.viz import orthogonal_views

    volume = ramp_volume()
    fig = orthogonal_views(volume, position=(2, 5, 7), title="a volume")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 and len(axes_with_images(fig)) == 3
    xy, xz, yz = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["XY (z=2)", "XZ (y=5)", "YZ (x=7)"]
    np.testing.assert_array_equal(xy.images[0].get_array(), volume[2])
    np.testing.assert_array_equal(xz.images[0].get_array(), volume[:, 5, :])
    np.testing.assert_array_equal(yz.images[0].get_array(), volume[:, :, 7].T)
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == [("x", "y"), ("x", "z"),
                                                                        ("z", "y")]
    # One display range for the three panels.
    assert xy.images[0].get_clim() == xz.images[0].get_clim() == yz.images[0].get_clim()
    assert fig._suptitle.get_text() == "a volume"


def crosshair(ax):
    """(row, column) of the horizontal and vertical line drawn on a panel."""
    lines = ax.get_lines()
    rows = [line.get_ydata()[0] for line in lines if line.get_ydata()[0] == line.get_ydata()[1]]
    cols = [line.get_xdata()[0] for line in lines if line.get_xdata()[0] == line.get_xdata()[1]]
    return rows, cols


def test_orthogonal_views_crosshairs_mark_the_other_planes():
    from dlbio_teach.viz import orthogonal_views

    fig = orthogonal_views(ramp_volume(), position=(2, 5, 7))
    xy, xz, yz = fig.axes
    assert crosshair(xy) == ([5], [7])      # y and x
    assert crosshair(xz) == ([2], [7])      # z and x
    assert crosshair(yz) == ([5], [2])      # y and z


def test_orthogonal_views_default_position_is_the_centre():
    from dlbio_teach.viz import orthogonal_views

    fig = orthogonal_views(ramp_volume((7, 20, 31)))
    assert [ax.get_title() for ax in fig.axes] == ["XY (z=3)", "XZ (y=10)", "YZ (x=15)"]


@pytest.mark.parametrize("voxel_size", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5), (0.3, 0.6, 0.4)])
def test_orthogonal_views_aspect_follows_the_voxel_size(voxel_size):
    """Drawn on screen, each panel has the proportions of the volume in micrometres."""
    from dlbio_teach.viz import orthogonal_views

    vz, vy, vx = voxel_size
    nz, ny, nx = shape = (10, 40, 30)
    fig = orthogonal_views(ramp_volume(shape), voxel_size=voxel_size)
    xy, xz, yz = fig.axes
    assert xy.get_aspect() == pytest.approx(vy / vx)
    assert xz.get_aspect() == pytest.approx(vz / vx)
    assert yz.get_aspect() == pytest.approx(vy / vz)
    fig.canvas.draw()
    boxes = [ax.get_window_extent() for ax in fig.axes]
    for box, (height, width) in zip(boxes, [(ny * vy, nx * vx), (nz * vz, nx * vx),
                                            (ny * vy, nz * vz)]):
        assert box.height / box.width == pytest.approx(height / width, rel=0.03)
    # The same micrometre is the same length on screen in every panel.
    per_um = [boxes[0].width / (nx * vx), boxes[1].height / (nz * vz),
              boxes[2].height / (ny * vy)]
    assert max(per_um) / min(per_um) < 1.05


def test_orthogonal_views_squashes_nothing():
    """A ball of 4 µm radius sampled with 2 µm planes and 0.5 µm pixels spans 4 planes
    but 16 pixels: on screen it is as tall as it is wide in the XZ panel."""
    from dlbio_teach.viz import orthogonal_views

    z, y, x = np.ogrid[:20, :48, :48]
    ball = ((((z - 10) * 2.0) ** 2 + ((y - 24) * 0.5) ** 2 + ((x - 24) * 0.5) ** 2) <= 16)
    fig = orthogonal_views(ball.astype(np.float32), voxel_size=(2.0, 0.5, 0.5))
    xz = fig.axes[1]
    fig.canvas.draw()
    section = xz.images[0].get_array()
    rows, cols = np.nonzero(section)
    box = xz.get_window_extent()
    px_per_row = box.height / section.shape[0]
    px_per_col = box.width / section.shape[1]
    height = (np.ptp(rows) + 1) * px_per_row
    width = (np.ptp(cols) + 1) * px_per_col
    assert height == pytest.approx(width, rel=0.3)
    assert np.ptp(rows) + 1 < (np.ptp(cols) + 1) / 2       # in voxels it is flat


def test_orthogonal_views_outlines_labels():
    from matplotlib.colors import to_rgba

    from dlbio_teach.viz import OUTLINE_COLOUR, orthogonal_views

    labels = np.zeros((8, 16, 16), np.int32)
    labels[2:6, 4:12, 4:12] = 3
    fig = orthogonal_views(np.zeros((8, 16, 16)), labels=labels, position=(4, 8, 8))
    for ax in fig.axes:
        assert len(ax.images) == 2
        outline = ax.images[1]
        rim = ~np.ma.getmaskarray(outline.get_array())
        assert rim.any() and to_rgba(OUTLINE_COLOUR) == outline.get_cmap()(1.0)
    rim = ~np.ma.getmaskarray(fig.axes[0].images[1].get_array())     # XY at z=4
    assert rim[4, 4] and rim[4, 11] and rim[11, 8] and not rim[8, 8] and not rim[0, 0]


def test_orthogonal_views_max_projections():
    from dlbio_teach.viz import orthogonal_views

    volume = np.random.default_rng(0).random((6, 20, 30)).astype(np.float32)
    labels = np.zeros(volume.shape, np.int32)
    labels[1:3, 2:6, 2:6], labels[3:5, 2:6, 4:9] = 1, 2
    fig = orthogonal_views(volume, mode="max", labels=labels, voxel_size=(2, 1, 1))
    xy, xz, yz = fig.axes
    np.testing.assert_array_equal(xy.images[0].get_array(), volume.max(axis=0))
    np.testing.assert_array_equal(xz.images[0].get_array(), volume.max(axis=1))
    np.testing.assert_array_equal(yz.images[0].get_array(), volume.max(axis=2).T)
    assert [ax.get_title() for ax in fig.axes] == ["XY (max over z)", "XZ (max over y)",
                                                   "YZ (max over x)"]
    assert all(not ax.get_lines() for ax in fig.axes)       # no crosshairs
    assert xz.get_aspect() == pytest.approx(2.0)
    # The projected foreground is outlined: its rim in XY, not the border between objects.
    rim = ~np.ma.getmaskarray(xy.images[1].get_array())
    assert rim[2, 2] and rim[5, 8] and not rim[3, 5]


def test_orthogonal_views_draws_into_given_axes():
    from dlbio_teach.viz import orthogonal_views

    fig, given = plt.subplots(1, 4)
    out = orthogonal_views(ramp_volume(), axes=given[:3])
    assert out is fig
    assert [len(ax.images) for ax in given] == [1, 1, 1, 0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(volume=np.zeros((16, 16))), r"volume must be \(Z, Y, X\), got shape \(16, 16\)"),
    (dict(volume=np.zeros((2, 4, 16, 16))), r"volume must be \(Z, Y, X\), got shape"),
    (dict(voxel_size=(1.0, 1.0)), r"voxel_size must be three positive numbers"),
    (dict(voxel_size=(0.0, 1.0, 1.0)), r"voxel_size must be three positive numbers"),
    (dict(voxel_size="big"), r"voxel_size must be three positive numbers"),
    (dict(position=(4, 0, 0)), r"position must be a voxel \(z, y, x\) inside the volume of "
                               r"shape \(4, 16, 16\), got \(4, 0, 0\)"),
    (dict(position=(0, 0)), r"position must be a voxel"),
    (dict(position=(0.5, 1, 1)), r"position must be a voxel"),
    (dict(labels=np.zeros((4, 16, 8), int)), r"labels must have the volume's shape"),
    (dict(mode="mean"), r"mode must be 'section' or 'max', got 'mean'"),
    (dict(axes=[None, None]), r"axes must be three matplotlib Axes"),
])
def test_orthogonal_views_bad_input(kwargs, message):
    from dlbio_teach.viz import orthogonal_views

    volume = kwargs.pop("volume", np.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match=message):
        orthogonal_views(volume, **kwargs)


def test_plot_budget_curve_draws_means_seeds_baseline_and_marks():
    from dlbio_teach.viz import plot_budget_curve

    rows = [{"network": n, "seed": s, "steps": steps, "held_out_f1": f}
            for n, base in (("a", 0.2), ("b", 0.5))
            for s in (0, 1) for steps, f in ((64, base + 0.1 * s), (256, base + 0.2 + 0.1 * s))]
    ax = plot_budget_curve(rows, baseline=0.4, marks={"standard": 256},
                           this_run={"a": (256, 0.45)})
    mean_a = ax.lines[0]
    assert list(mean_a.get_xdata()) == [64, 256]
    assert np.allclose(mean_a.get_ydata(), [0.25, 0.45])
    assert ax.get_xscale() == "log" and ax.get_ylim() == (0, 1)
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [256]
    horizontal = [line for line in ax.lines if list(line.get_ydata()) == [0.4, 0.4]]
    assert len(horizontal) == 1
    plt.close("all")


def test_plot_budget_curve_draws_a_variant_dashed_in_its_networks_colour():
    from dlbio_teach.viz import plot_budget_curve

    rows = [{"network": n, "seed": 0, "steps": 64, "held_out_f1": 0.5}
            for n in ("net", "other", "net, variant")]
    ax = plot_budget_curve(rows)
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    colours = {name: line.get_color() for name, line in lines.items()}
    assert colours["net, variant"] == colours["net"] != colours["other"]
    assert lines["net, variant"].get_linestyle() == "--" and lines["net"].get_linestyle() == "-"
    plt.close("all")


def test_plot_budget_curve_tells_two_variants_of_one_network_apart():
    from dlbio_teach.viz import plot_budget_curve

    rows = [{"network": n, "seed": 0, "steps": 64, "held_out_f1": 0.5}
            for n in ("net", "net, one variant", "net, another")]
    ax = plot_budget_curve(rows)
    styles = {line.get_label(): line.get_linestyle() for line in ax.lines
              if not line.get_label().startswith("_")}
    assert styles == {"net": "-", "net, one variant": "--", "net, another": "-."}
    plt.close("all")
