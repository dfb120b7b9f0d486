"""Volumes (Z, Y, X) in dlbio_teach.baseline, .targets, .planes, .segmentation, .star and
.tuning: the 3D baseline, a 2D segmenter's planes joined across Z, and the three
formulations in 3D."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from skimage import measure

from dlbio_teach.baseline import otsu_watershed
from dlbio_teach.metrics import match_instances
from dlbio_teach.models import UNet
from dlbio_teach.planes import anisotropy_from_labels, join_planes, label_planes
from dlbio_teach.prediction import network_ndim
from dlbio_teach.records import RunRecord
from dlbio_teach.segmentation import (
    SegmentationConfig,
    instances_from_maps,
    predict_maps,
    segment,
    train_segmentation,
    training_targets,
)
from dlbio_teach.star import (
    check_star_labels,
    instances_from_star,
    prepare_star_labels,
    star_reconstruction_f1,
    star_targets,
)
from dlbio_teach.targets import (
    distance_targets,
    instances_from_distance,
    instances_from_interior,
    three_class_targets,
)
from dlbio_teach.tuning import threshold_grid, tune_join_planes, tune_thresholds

ANISOTROPY = (2.0, 1.0, 1.0)


def balls(centres, radius, shape=(12, 32, 48), anisotropy=ANISOTROPY):
    """Balls of ``radius`` (in the units of ``anisotropy``) around ``centres`` (voxels);
    a voxel inside several goes to the nearest centre, so overlapping balls touch."""
    grid = np.indices(shape) * np.reshape(anisotropy, (3, 1, 1, 1))
    dist = np.stack([np.sqrt(((grid - np.reshape(np.multiply(c, anisotropy), (3, 1, 1, 1)))
                              ** 2).sum(0)) for c in centres])
    labels = (np.argmin(dist, axis=0) + 1).astype(np.int32)
    labels[dist.min(axis=0) > radius] = 0
    return labels


def touching_balls():
    return balls([(6, 16, 16), (6, 16, 30)], radius=8)


@pytest.fixture(scope="module")
def nuclei_3d():
    """StarDist's small volume of synthetic nuclei and its instance mask (51 nuclei)."""
    from stardist.data import test_image_nuclei_3d

    from dlbio_teach.preprocessing import normalize_percentile

    image, mask = test_image_nuclei_3d(return_mask=True)
    labels = prepare_star_labels(mask.astype(np.int32), axes="ZYX")
    return normalize_percentile(image.astype(np.float32)), labels


# --- the classical baseline in 3D ----------------------------------------------------------

def test_otsu_watershed_splits_two_touching_balls():
    labels = touching_balls()
    assert labels.max() == 2 and np.any((labels[:, :, :-1] == 1) & (labels[:, :, 1:] == 2))
    image = (labels > 0).astype(np.float32)
    got = otsu_watershed(image, axes="ZYX", anisotropy=ANISOTROPY, min_distance=4)
    m = match_instances(labels, got, threshold=0.8, axes="ZYX")
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0) and got.dtype == np.int32
    # Centres 14 apart: a window of 20 holds both, and the balls merge.
    assert otsu_watershed(image, axes="ZYX", anisotropy=ANISOTROPY, min_distance=20).max() == 1
    assert otsu_watershed(np.zeros((4, 16, 16)), axes="ZYX", anisotropy=ANISOTROPY).max() == 0


def test_anisotropy_from_the_nuclei_of_stardists_volume(nuclei_3d):
    _, labels = nuclei_3d
    z, y, x = anisotropy_from_labels(labels)
    assert 2.0 < z < 2.3 and y == 1.0 and 1.0 <= x < 1.1
    with pytest.raises(ValueError, match="no objects"):
        anisotropy_from_labels(np.zeros((2, 4, 4), int))


def test_the_anisotropic_baseline_beats_cubic_voxels(nuclei_3d):
    image, labels = nuclei_3d
    anisotropy = anisotropy_from_labels(labels)
    f1 = {a: max(match_instances(labels, otsu_watershed(image, axes="ZYX", anisotropy=a,
                                                        min_distance=d), axes="ZYX")["f1"]
                 for d in (4, 6)) for a in (None, anisotropy)}
    assert f1[anisotropy] > f1[None] and f1[anisotropy] > 0.6


# --- the targets and their decoding in 3D ----------------------------------------------------

def test_distance_targets_measure_in_the_voxels_units():
    labels = balls([(6, 16, 24)], radius=8)       # round in space: flat in voxels
    flat = distance_targets(labels, axes="ZYX", anisotropy=ANISOTROPY)
    cubic = distance_targets(labels, axes="ZYX")
    assert flat[6, 16, 24] == pytest.approx(1.0) and np.all(flat[labels == 0] == 0)
    # 2 planes up and 4 pixels aside are both 4 units from the centre: alike in space.
    assert flat[8, 16, 24] == pytest.approx(flat[6, 16, 28], abs=0.02)
    assert flat[8, 16, 24] == pytest.approx(flat[4, 16, 24], abs=0.02)
    assert cubic[6, 16, 28] - cubic[8, 16, 24] > 0.2


def test_three_classes_and_distances_recover_touching_balls():
    labels = touching_balls()
    classes = three_class_targets(labels, axes="ZYX")
    assert classes.shape == labels.shape and set(np.unique(classes)) == {0, 1, 2}
    interior = instances_from_interior((classes == 1).astype(np.float32), labels > 0,
                                       axes="ZYX", min_size=4)
    distance = instances_from_distance(distance_targets(labels, axes="ZYX",
                                                        anisotropy=ANISOTROPY),
                                       seed_threshold=0.5, axes="ZYX")
    for got in (interior, distance):
        m = match_instances(labels, got, threshold=0.8, axes="ZYX")
        assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)


def test_star_targets_3d_are_stardists_own(nuclei_3d):
    from stardist import Rays_GoldenSpiral, edt_prob
    from stardist.geometry import star_dist3D

    _, labels = nuclei_3d
    t = star_targets(labels, 16, axes="ZYX", anisotropy=(2, 1, 1))
    assert t.shape == (17, 31, 61, 57) and t.dtype == np.float32
    assert np.allclose(t[0], edt_prob(labels, anisotropy=(2, 1, 1)))
    rays = Rays_GoldenSpiral(16, anisotropy=(2, 1, 1))
    assert np.allclose(np.moveaxis(t[1:], 0, -1), star_dist3D(labels, rays))
    assert np.all(t[:, labels == 0] == 0)


def test_stardist_3d_from_true_targets_recovers_the_nuclei(nuclei_3d):
    _, labels = nuclei_3d
    anisotropy = anisotropy_from_labels(labels)
    maps = star_targets(labels, 32, axes="ZYX", anisotropy=anisotropy)
    got = instances_from_star(maps, axes="ZYX", anisotropy=anisotropy)
    assert got.shape == labels.shape and got.dtype == np.int32
    m = match_instances(labels, got, threshold=0.5, axes="ZYX")
    assert m["f1"] >= 0.9 and m["n_true"] == 51


def test_perfect_3d_stardist_maps_of_two_balls_and_their_tuning():
    labels = touching_balls()
    maps = star_targets(labels, 32, axes="ZYX", anisotropy=ANISOTROPY)
    got = instances_from_maps(maps, formulation="stardist", axes="ZYX", anisotropy=ANISOTROPY)
    m = match_instances(labels, got, threshold=0.7, axes="ZYX")
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)
    tuned = tune_thresholds([maps], [labels], formulation="stardist", axes="ZYX",
                            anisotropy=ANISOTROPY)
    assert tuned.score == 1.0 and len(tuned.candidates) == len(threshold_grid("stardist",
                                                                              "ZYX")) < 21


def test_more_rays_rebuild_polyhedra_better():
    labels = balls([(6, 10, 12), (6, 22, 34)], radius=7)
    f1 = [star_reconstruction_f1(labels, n, iou_threshold=0.85, axes="ZYX",
                                 anisotropy=ANISOTROPY) for n in (6, 64)]
    assert f1 == [0.0, 1.0]


def test_a_cavity_in_a_nucleus_is_a_hole_in_3d():
    labels = balls([(6, 16, 16)], radius=8)
    labels[6, 16, 16] = 0
    with pytest.raises(ValueError, match=r"holes in 1 object\(s\) \(object 1: 1 pixels\)"):
        check_star_labels(labels, axes="ZYX")
    assert prepare_star_labels(labels, axes="ZYX")[6, 16, 16] == 1


def test_the_3d_geometry_needs_no_tensorflow():
    """The StarDist 3D path runs with TensorFlow and Keras unimportable."""
    code = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Refuse())
import numpy as np
from dlbio_teach.star import star_targets, instances_from_star
lab = np.zeros((8, 16, 16), np.int32); lab[2:6, 4:12, 4:12] = 1
print(int(instances_from_star(star_targets(lab, 16, axes="ZYX"), axes="ZYX").max()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


# --- a 2D segmenter, plane by plane -----------------------------------------------------------

def test_join_planes_rejoins_a_nucleus_cut_into_planes():
    ball = balls([(6, 16, 24)], radius=8)
    planes = label_planes(ball.astype(np.float32), lambda p: measure.label(p > 0.5) * 7)
    assert set(np.unique(planes)) == {0, 7}                      # the same id in every plane
    shuffled = planes * np.arange(1, 13)[:, None, None]          # other ids in each plane
    for per_plane in (planes, shuffled):
        joined = join_planes(per_plane)
        assert joined.max() == 1 and np.array_equal(joined > 0, ball > 0)


def test_join_planes_keeps_weakly_overlapping_neighbours_apart():
    planes = np.zeros((2, 8, 30), np.int32)
    planes[0, 2:6, 0:10] = 1
    planes[1, 2:6, 7:17] = 1                  # 3 of its 10 columns over the one below
    assert join_planes(planes, min_overlap=0.5).max() == 2
    assert join_planes(planes, min_overlap=0.3).max() == 1
    # One-to-one: of two sections over one, only one continues it.
    planes[:] = 0
    planes[0, 2:6, 0:20] = 1
    planes[1, 2:6, 0:9], planes[1, 2:6, 11:16] = 3, 4
    joined = join_planes(planes, min_overlap=0.5)
    assert joined.max() == 2 and joined[1, 3, 2] == joined[0, 3, 2] != joined[1, 3, 12]


def test_tune_join_planes_chooses_the_threshold():
    truth = np.zeros((2, 8, 30), np.int32)
    truth[0, 2:6, 0:10] = 1
    truth[1, 2:6, 7:17] = 2                   # two neighbours, overlapping by 0.3
    tuned = tune_join_planes([truth], [truth], min_overlaps=(0.2, 0.5))
    assert tuned.best == {"min_overlap": 0.5} and tuned.scores[0] < tuned.scores[1] == 1.0


def test_a_2d_network_segments_a_volume_plane_by_plane():
    net = UNet(1, 1, depth=1, base_channels=4)
    volume = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    per_plane = label_planes(volume, lambda p: segment(net, p, formulation="distance",
                                                       thresholds={"seed_threshold": 0.5}))
    assert per_plane.shape == (3, 16, 16) and join_planes(per_plane).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="plane by plane"):
        segment(net, volume, formulation="distance", thresholds={"seed_threshold": 0.5},
                axes="ZYX")
    with pytest.raises(ValueError, match=r"labels of shape \(8, 8\) for plane 0"):
        label_planes(volume, lambda p: np.zeros((8, 8), int))


# --- 3D networks ----------------------------------------------------------------------------

def tiny_3d(formulation, **changes):
    values = dict(axes="ZYX", patch_size=(16, 32, 32), epochs=1, n_patches=8, batch_size=4,
                  n_val_patches=4, base_channels=4, anisotropy=(2.1, 1.0, 1.1))
    if formulation == "stardist":
        values["n_rays"] = 32
    values.update(changes)
    return SegmentationConfig(formulation, **values)


@pytest.mark.parametrize("formulation,maps_shape", [
    ("three_class", (3, 31, 61, 57)), ("distance", (31, 61, 57)),
    ("stardist", (33, 31, 61, 57))])
def test_a_tiny_3d_training_runs_for_each_formulation(nuclei_3d, formulation, maps_shape):
    image, labels = nuclei_3d
    config = tiny_3d(formulation)
    net, history = train_segmentation(config, image[None], labels[None], image[None],
                                      labels[None], progress=False)
    assert network_ndim(net) == 3 and net.config["ndim"] == 3
    assert history.epochs_run == 1 and np.isfinite(history.val_loss).all()
    maps = predict_maps(net, image, formulation=formulation, axes="ZYX")
    assert maps.shape == maps_shape
    thresholds = ({"prob_threshold": 0.95, "nms_threshold": 0.4} if formulation == "stardist"
                  else {"seed_threshold": 0.5})
    got = segment(net, image, formulation=formulation, thresholds=thresholds, axes="ZYX",
                  anisotropy=config.anisotropy)
    assert got.shape == image.shape and got.dtype == np.int32


def test_a_3d_stardist_run_records_its_rays(tmp_path, nuclei_3d):
    image, labels = nuclei_3d
    config = tiny_3d("stardist", pool_z=False, patch_size=(12, 32, 32))
    assert config.augment is False
    net, _ = train_segmentation(config, image[None], labels[None], image[None], labels[None],
                                progress=False, run_dir=tmp_path)
    record = RunRecord.load(tmp_path).hyperparameters
    assert record["n_rays"] == 32 and record["anisotropy"] == [2.1, 1.0, 1.1]
    assert record["axes"] == "ZYX" and record["patch_size"] == [12, 32, 32]
    assert SegmentationConfig.from_dict(record) == config
    assert net.config["pool_z"] is False


def test_3d_training_targets_and_patches_per_axis():
    labels = touching_balls()[None]
    assert training_targets(labels, formulation="three_class", axes="ZYX").shape == \
        (1, 12, 32, 48)
    assert training_targets(labels, formulation="stardist", n_rays=8, axes="ZYX",
                            anisotropy=ANISOTROPY).shape == (1, 9, 12, 32, 48)
    assert SegmentationConfig("distance", axes="ZYX", patch_size=(6, 32, 32),
                              pool_z=False).patch_size == (6, 32, 32)
    with pytest.raises(ValueError, match=r"must be a multiple of \(4, 4, 4\) along \(Z, Y, X\)"):
        SegmentationConfig("distance", axes="ZYX", patch_size=(6, 32, 32))
    with pytest.raises(ValueError, match="one per spatial axis"):
        SegmentationConfig("distance", axes="ZYX", patch_size=(32, 32))


# --- what volumes need said ----------------------------------------------------------------

def test_volumes_without_axes_get_told_to_say_so():
    volume = touching_balls()
    hint = r'For a volume \(Z, Y, X\), say so: pass axes="ZYX"'
    with pytest.raises(ValueError, match=hint):
        three_class_targets(volume)
    with pytest.raises(ValueError, match=hint):
        otsu_watershed(volume.astype(float))
    with pytest.raises(ValueError, match=hint):
        star_targets(volume)
    with pytest.raises(ValueError, match="pass axes='ZYX'"):
        instances_from_star(star_targets(volume, 8, axes="ZYX"))
    with pytest.raises(ValueError, match="pass axes='ZYX'"):
        predict_maps(UNet(1, 1, depth=1, base_channels=4, ndim=3), volume.astype(float),
                     formulation="distance")
    with pytest.raises(ValueError, match=r"three-class maps must be \(3, Y, X\).*axes='ZYX'"):
        instances_from_maps(np.zeros((3, 4, 8, 8)), formulation="three_class",
                            seed_threshold=0.5)
    with pytest.raises(ValueError, match=r"stack of images \(N, Y, X\)"):
        train_segmentation(SegmentationConfig("distance", patch_size=16), volume[None] * 1.0,
                           volume[None], volume[None] * 1.0, volume[None])


def test_3d_settings_refused_where_they_do_not_apply():
    with pytest.raises(ValueError, match=r"anisotropy \(2, 1, 1\) is for volumes"):
        distance_targets(np.zeros((4, 4), int), anisotropy=(2, 1, 1))
    with pytest.raises(ValueError, match="3 positive numbers"):
        SegmentationConfig("distance", axes="ZYX", anisotropy=(2, 1))
    with pytest.raises(ValueError, match="StarDist 3D trains with augment=False"):
        SegmentationConfig("stardist", axes="ZYX", augment=True)
    with pytest.raises(ValueError, match=r"at least 4 \(a polyhedron"):
        SegmentationConfig("stardist", axes="ZYX", n_rays=3)
    with pytest.raises(ValueError, match="axes must be 'YX'"):
        SegmentationConfig("distance", axes="XYZ")
    with pytest.raises(ValueError, match="the model takes images"):
        train_segmentation(tiny_3d("distance"), np.zeros((1, 16, 32, 32)),
                           np.ones((1, 16, 32, 32), int), np.zeros((1, 16, 32, 32)),
                           np.ones((1, 16, 32, 32), int), model=UNet(1, 1), progress=False)
    with pytest.raises(ValueError, match="min_overlap must be in"):
        join_planes(np.zeros((2, 4, 4), int), min_overlap=0)
