"""dlbio_teach.exercises: every checker accepts a right answer and rejects a wrong one."""
from __future__ import annotations

import numpy as np
import pytest

from dlbio_teach.exercises import check
from dlbio_teach.preprocessing import normalize_minmax, normalize_percentile
from dlbio_teach.restoration import n2v_mask

IMAGE = np.random.default_rng(0).gamma(2.0, 50.0, size=(32, 32))


def verdict(capsys, result, expected: bool):
    out = capsys.readouterr().out
    assert bool(result) is expected
    assert out.count("\n") == 1, out           # one line of feedback
    if expected:
        assert out.startswith("Correct: ") and "Not yet" not in out
    else:
        assert out.startswith("Not yet: ") and "Correct" not in out
    return out


def test_available_checkers():
    assert dir(check) == sorted(["percentile_normalisation", "gradient_step", "leakage_split",
                                 "photon_snr", "n2v_mask", "best_sigma", "f1_from_counts",
                                 "threshold_split", "hygiene_steps",
                                 "images_to_halve_ci", "majority_mask", "weights_sha256",
                                 "package_preprocessing", "trainable_parameters",
                                 "daughters", "frame_links", "prediction",
                                 "voxel_anisotropy"])


@pytest.mark.parametrize(("answer", "before", "after", "ok"), [
    ("lower", 0.5, 0.2, True), ("higher", 0.5, 0.2, False), ("same", 0.5, 0.5, True),
    ("Higher ", 1.0, 2.0, True), ("same", 1.0, 1.05, False)])
def test_prediction_checks_the_direction(answer, before, after, ok, capsys):
    assert bool(check.prediction(answer, before=before, after=after, quantity="x")) is ok
    assert ("Correct" if ok else "Not yet") in capsys.readouterr().out


def test_prediction_rejects_other_words(capsys):
    assert not check.prediction("up", before=1, after=2, quantity="x")
    assert "answer one of" in capsys.readouterr().out


def test_unknown_exercise():
    with pytest.raises(AttributeError, match=r"No exercise called 'nope'.*gradient_step"):
        check.nope  # noqa: B018 (the attribute access itself must raise)
    assert not hasattr(check, "also_missing")


def test_register_adds_a_checker():
    from dlbio_teach.exercises import _Checks

    checks = _Checks()

    @checks.register
    def always(answer):
        return answer

    assert checks.always is always and dir(checks) == ["always"]


# --- percentile_normalisation -----------------------------------------------------------

def test_percentile_normalisation_correct(capsys):
    answer = normalize_percentile(IMAGE, 1, 99.8)
    verdict(capsys, check.percentile_normalisation(answer, IMAGE), True)


def test_percentile_normalisation_wrong_range(capsys):
    out = verdict(capsys, check.percentile_normalisation(normalize_minmax(IMAGE), IMAGE),
                  False)
    assert "percentiles are" in out


def test_percentile_normalisation_wrong_shape(capsys):
    out = verdict(capsys, check.percentile_normalisation(IMAGE[:10], IMAGE), False)
    assert "shape" in out and "(10, 32)" in out


# --- gradient_step ------------------------------------------------------------------------

def test_gradient_step(capsys):
    w, grad = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -4.0])
    verdict(capsys, check.gradient_step(w - 0.1 * grad, w=w, grad=grad, lr=0.1), True)
    verdict(capsys, check.gradient_step(w + 0.1 * grad, w=w, grad=grad, lr=0.1), False)
    verdict(capsys, check.gradient_step((w - 0.1 * grad)[:2], w=w, grad=grad, lr=0.1), False)
    verdict(capsys, check.gradient_step(w - 0.2 * grad, w=w, grad=grad, lr=0.1), False)


def test_gradient_step_scalar(capsys):
    verdict(capsys, check.gradient_step(2.0 - 0.5 * 3.0, w=2.0, grad=3.0, lr=0.5), True)


# --- leakage_split ------------------------------------------------------------------------

def test_leakage_split(capsys):
    image_of_patch = np.repeat(np.arange(5), 4)          # 5 images, 4 patches each
    train = np.flatnonzero(image_of_patch < 3)
    test = np.flatnonzero(image_of_patch >= 3)
    verdict(capsys, check.leakage_split(train, test, image_of_patch), True)


def test_leakage_split_patch_level_split_leaks(capsys):
    image_of_patch = np.repeat(np.arange(5), 4)
    order = np.random.default_rng(0).permutation(20)
    out = verdict(capsys, check.leakage_split(order[:15], order[15:], image_of_patch), False)
    assert "give patches to both sets" in out


def test_leakage_split_same_patch_in_both(capsys):
    image_of_patch = np.arange(6)                        # one patch per image
    verdict(capsys, check.leakage_split([0, 1, 2], [2, 3], image_of_patch), False)


# --- photon_snr -----------------------------------------------------------------------------

@pytest.mark.parametrize("photons", [1.0, 25.0, 400.0])
def test_photon_snr(capsys, photons):
    verdict(capsys, check.photon_snr(np.sqrt(photons), photons=photons), True)
    verdict(capsys, check.photon_snr(np.sqrt(photons) * 1.005, photons=photons), True)
    verdict(capsys, check.photon_snr(2 * np.sqrt(photons), photons=photons), False)
    verdict(capsys, check.photon_snr(0.98 * np.sqrt(photons), photons=photons), False)
    verdict(capsys, check.photon_snr(photons / 2 + 1, photons=photons), False)


# --- n2v_mask -------------------------------------------------------------------------------

def test_n2v_mask_checker(capsys):
    original = np.arange(256, dtype=np.float32).reshape(16, 16)
    masked, mask = n2v_mask(original, fraction=0.1, seed=0)
    verdict(capsys, check.n2v_mask(masked, original, mask), True)


def test_n2v_mask_checker_nothing_replaced(capsys):
    original = np.arange(256, dtype=np.float32).reshape(16, 16)
    _, mask = n2v_mask(original, fraction=0.1, seed=0)
    out = verdict(capsys, check.n2v_mask(original.copy(), original, mask), False)
    assert "replace the pixels where mask is 1" in out


def test_n2v_mask_checker_other_pixels_changed(capsys):
    original = np.arange(256, dtype=np.float32).reshape(16, 16)
    masked, mask = n2v_mask(original, fraction=0.1, seed=0)
    masked = masked.copy()
    masked[mask == 0] += 1
    out = verdict(capsys, check.n2v_mask(masked, original, mask), False)
    assert "outside the mask were changed" in out


def test_n2v_mask_checker_empty_mask(capsys):
    original = np.ones((8, 8))
    verdict(capsys, check.n2v_mask(original, original, np.zeros((8, 8))), False)


# --- best_sigma -----------------------------------------------------------------------------

def test_best_sigma(capsys):
    candidates, scores = [0.5, 1.0, 2.0, 4.0], [25.1, 27.3, 26.0, 22.4]
    out = verdict(capsys, check.best_sigma(1.0, candidates=candidates, scores=scores), True)
    assert "sigma = 1.0" in out
    verdict(capsys, check.best_sigma(2.0, candidates=candidates, scores=scores), False)
    verdict(capsys, check.best_sigma(np.float64(1.0), candidates=candidates, scores=scores),
            True)


def test_checkers_never_print_the_solution(capsys):
    candidates, scores = [0.5, 1.0, 2.0], [20.0, 21.0, 30.0]
    out = verdict(capsys, check.best_sigma(0.5, candidates=candidates, scores=scores), False)
    assert "2.0" not in out
    out = verdict(capsys, check.photon_snr(3.0, photons=49.0), False)
    assert "7.0" not in out


def test_unanswered_exercise_says_so(capsys):
    assert not check.gradient_step(..., w=[1.0], grad=[1.0], lr=0.1)
    assert "Not answered yet" in capsys.readouterr().out


def test_verdict_is_a_truth_value_that_notebooks_do_not_echo():
    from dlbio_teach.exercises import Verdict
    assert bool(Verdict(True)) and not Verdict(False)
    assert Verdict(True)._ipython_display_() is None   # IPython shows nothing for it


def test_f1_from_counts(capsys):
    verdict(capsys, check.f1_from_counts(2 * 8 / (16 + 2 + 4), tp=8, fp=2, fn=4), True)
    # The arithmetic mean of precision (0.8) and recall (2/3) is a classic mistake.
    out = verdict(capsys, check.f1_from_counts((0.8 + 8 / 12) / 2, tp=8, fp=2, fn=4), False)
    assert "harmonic" in out
    verdict(capsys, check.f1_from_counts(8 / 14, tp=8, fp=2, fn=4), False)   # DSB accuracy


def test_threshold_split(capsys):
    verdict(capsys, check.threshold_split(" Validation"), True)
    out = verdict(capsys, check.threshold_split("test"), False)
    assert "optimistic" in out
    out = verdict(capsys, check.threshold_split("the best one"), False)
    assert "answer one of" in out


def test_weights_sha256(capsys, tmp_path):
    import hashlib
    path = tmp_path / "weights.pt"
    path.write_bytes(b"not really weights")
    digest = hashlib.sha256(b"not really weights").hexdigest()
    out = verdict(capsys, check.weights_sha256(digest.upper(), path=path, recorded=digest), True)
    assert "these are the weights" in out
    out = verdict(capsys, check.weights_sha256(digest, path=path, recorded="0" * 64), True)
    assert "not the file" in out
    out = verdict(capsys, check.weights_sha256(digest[:12], path=path), False)
    assert "64 hexadecimal" in out and digest not in out
    verdict(capsys, check.weights_sha256("0" * 64, path=path), False)


def test_package_preprocessing(capsys):
    steps = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
             {"id": "scale_range", "kwargs": {"min_percentile": 1.0, "max_percentile": 99.8}}]
    verdict(capsys, check.package_preprocessing((1, 99.8), preprocessing=steps), True)
    out = verdict(capsys, check.package_preprocessing((0, 1), preprocessing=steps), False)
    assert "scale_range" in out and "99.8" not in out
    out = verdict(capsys, check.package_preprocessing(99.8, preprocessing=steps), False)
    assert "pair" in out
    verdict(capsys, check.package_preprocessing((1, 99.8), preprocessing=steps[:1]), False)


def test_trainable_parameters(capsys):
    import torch
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    for p in net[0].parameters():
        p.requires_grad_(False)
    out = verdict(capsys, check.trainable_parameters(3, model=net), True)
    assert "3 of 11" in out
    out = verdict(capsys, check.trainable_parameters(11, model=net), False)
    assert "frozen encoder too" in out
    out = verdict(capsys, check.trainable_parameters(8, model=net), False)
    assert "frozen part" in out


def test_hygiene_steps(capsys):
    verdict(capsys, check.hygiene_steps({"e", "a"}), True)
    verdict(capsys, check.hygiene_steps(["A", " e"]), True)
    out = verdict(capsys, check.hygiene_steps({"a", "b", "e"}), False)
    assert "optimistic" in out and "b" in out
    out = verdict(capsys, check.hygiene_steps({"e"}), False)
    assert "a never changes" in out
    verdict(capsys, check.hygiene_steps(3), False)


def test_images_to_halve_ci(capsys):
    verdict(capsys, check.images_to_halve_ci(20, n_images=5), True)
    out = verdict(capsys, check.images_to_halve_ci(10, n_images=5), False)
    assert "sqrt(2)" in out and "20" not in out
    verdict(capsys, check.images_to_halve_ci(7, n_images=5), False)


def test_majority_mask(capsys):
    masks = np.array([[[1, 1, 0, 1]], [[1, 0, 0, 1]], [[1, 1, 0, 0]], [[0, 0, 1, 0]]], bool)
    verdict(capsys, check.majority_mask(masks.sum(0) > 2, masks=masks), True)
    out = verdict(capsys, check.majority_mask(masks.sum(0) >= 2, masks=masks), False)
    assert "ties" in out
    out = verdict(capsys, check.majority_mask(masks.any(0), masks=masks), False)
    assert "more than half" in out
    out = verdict(capsys, check.majority_mask(masks, masks=masks), False)
    assert "shape" in out


# --- voxel_anisotropy -------------------------------------------------------------------------

def _stretched_balls(factor: int):
    """Two balls of radius 6 pixels, sampled every ``factor`` pixels along z."""
    zz, yy, xx = np.mgrid[:48, :32, :48]
    labels = np.zeros((48, 32, 48), np.int32)
    for value, centre in ((1, (24, 16, 12)), (2, (24, 16, 34))):
        inside = sum((a - c) ** 2 for a, c in zip((zz, yy, xx), centre)) <= 36
        labels[inside] = value
    return labels[::factor]


def test_voxel_anisotropy(capsys):
    labels = _stretched_balls(3)   # each ball: 13 pixels along y, planes 18, 21, .., 30 along z
    verdict(capsys, check.voxel_anisotropy(13 / 5, labels=labels), True)
    out = verdict(capsys, check.voxel_anisotropy(5 / 13, labels=labels), False)
    assert "other way round" in out
    verdict(capsys, check.voxel_anisotropy(1.0, labels=labels), False)
    verdict(capsys, check.voxel_anisotropy(1.0, labels=_stretched_balls(1)), True)
