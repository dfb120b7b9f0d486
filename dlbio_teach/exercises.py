"""Automatic feedback for the exercise cells: ``check.<exercise>(answer)``.

Each checker prints what is right or what to look at again, and returns ``True`` or
``False``; it never prints the solution (the book keeps solutions in hidden dropdowns).

The learners' copies of the chapters, without the solution cells, are made by
:mod:`dlbio_teach.student_copies`, whose command line also runs as
``python -m dlbio_teach.exercises``::

    python -m dlbio_teach.exercises mark-chapters           # tag solutions, point badges
    python -m dlbio_teach.exercises student-copies          # (re)write notebooks/student/
    python -m dlbio_teach.exercises student-copies --check  # exit 1 if a copy is stale
"""
from __future__ import annotations

import functools
import sys

import numpy as np

__all__ = ["check"]


class _Checks:
    """The namespace of checkers; ``check.register`` adds one."""

    def __init__(self):
        self._checkers = {}

    def register(self, function):
        @functools.wraps(function)
        def checker(*args, **kwargs):
            # The exercise cells start as ``answer = ...``: say so instead of failing.
            if any(a is Ellipsis for a in args):
                print("Not answered yet: replace the ... in the cell with your answer.")
                return Verdict(False)
            return function(*args, **kwargs)

        self._checkers[function.__name__] = checker
        return checker

    def __getattr__(self, name):
        try:
            return self._checkers[name]
        except KeyError:
            raise AttributeError(f"No exercise called {name!r}; available: "
                                 f"{sorted(self._checkers)}.") from None

    def __dir__(self):
        return sorted(self._checkers)


#: The exercise checkers; ``check.<exercise>(answer)`` prints feedback and returns whether
#: the answer is right.
check = _Checks()


class Verdict:
    """The result of a checker: true or false, and silent as the last line of a cell.

    The feedback is printed already; a notebook should not add ``Out: True`` below it.
    """

    def __init__(self, ok: bool):
        self.ok = bool(ok)

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return f"Verdict({self.ok})"

    def _ipython_display_(self):
        pass


def _report(ok: bool, right: str, wrong: str) -> Verdict:
    print(("Correct: " + right) if ok else ("Not yet: " + wrong))
    return Verdict(ok)


@check.register
def percentile_normalisation(answer, image) -> bool:
    """Chapter 1: normalise ``image`` so its 1st and 99.8th percentiles map to 0 and 1."""
    answer = np.asarray(answer, np.float64)
    if answer.shape != np.shape(image):
        return _report(False, "", f"the result has shape {answer.shape}, the image "
                                  f"{np.shape(image)}; normalisation keeps the shape.")
    lo, hi = np.percentile(answer, [1, 99.8])
    return _report(abs(lo) < 1e-3 and abs(hi - 1) < 1e-3,
                   "the 1st percentile is now 0 and the 99.8th is 1.",
                   f"the 1st and 99.8th percentiles are {lo:.3f} and {hi:.3f}; subtract the "
                   "low percentile and divide by (high - low).")


@check.register
def gradient_step(answer, *, w, grad, lr) -> bool:
    """Chapter 1: one step of gradient descent, ``w - lr * grad``."""
    expected = np.asarray(w, np.float64) - lr * np.asarray(grad, np.float64)
    ok = np.shape(answer) == expected.shape and np.allclose(answer, expected, atol=1e-6)
    return _report(ok, "the weights moved against the gradient by lr times its size.",
                   "a step goes against the gradient: new = old - learning_rate * gradient.")


@check.register
def leakage_split(train_ids, test_ids, image_of_patch) -> bool:
    """Chapter 1: no tile (or image) may give patches to both the training and the test set.

    ``image_of_patch`` gives, for each patch, the tile or image it was cut from.
    """
    image_of_patch = np.asarray(image_of_patch)
    shared = set(image_of_patch[np.asarray(train_ids)]) & set(
        image_of_patch[np.asarray(test_ids)])
    overlap = set(np.asarray(train_ids).tolist()) & set(np.asarray(test_ids).tolist())
    return _report(not shared and not overlap,
                   "training and test patches come from different tiles.",
                   f"tiles {sorted(shared)[:5]} give patches to both sets; split the tile "
                   "ids first, then collect the patches of each set.")


@check.register
def photon_snr(answer, *, photons: float) -> bool:
    """Chapter 2: SNR of a pixel of intensity 1 under pure Poisson noise at ``photons``."""
    expected = float(np.sqrt(photons))
    return _report(abs(float(answer) - expected) < 0.01 * expected,
                   f"SNR = sqrt(photons) = {expected:.2f}: four times the light doubles it.",
                   "with Poisson noise the variance equals the mean count; SNR = mean / std.")


@check.register
def n2v_mask(masked, original, mask) -> bool:
    """Chapter 2: masked pixels must differ from the original, the others stay the same."""
    masked, original, mask = map(np.asarray, (masked, original, mask))
    kept = np.allclose(masked[mask == 0], original[mask == 0])
    changed = np.mean(masked[mask > 0] != original[mask > 0]) > 0.5 if mask.any() else False
    return _report(bool(kept and changed),
                   "only the blind-spot pixels were replaced.",
                   "replace the pixels where mask is 1 (by a neighbour's value) and leave all "
                   "others untouched." if kept else
                   "pixels outside the mask were changed; copy the image before replacing.")


@check.register
def best_sigma(answer, *, candidates, scores) -> bool:
    """Chapter 2: choose the Gaussian sigma with the highest validation PSNR."""
    best = candidates[int(np.argmax(scores))]
    return _report(float(answer) == float(best),
                   f"sigma = {best}: chosen on validation images, never on the test images.",
                   "pick the candidate whose validation PSNR is highest (np.argmax).")


@check.register
def f1_from_counts(answer, *, tp: int, fp: int, fn: int) -> bool:
    """Chapter 3: F1 of instance matching from the pooled counts."""
    expected = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    ok = abs(float(answer) - expected) < 1e-6
    precision_recall_mean = ((tp / (tp + fp) if tp + fp else 0)
                             + (tp / (tp + fn) if tp + fn else 0)) / 2
    hint = ("that is the arithmetic mean of precision and recall; F1 is their harmonic mean."
            if abs(float(answer) - precision_recall_mean) < 1e-6 else
            "F1 = 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall.")
    return _report(ok, f"F1 = {expected:.3f}; DSB accuracy TP / (TP + FP + FN) would be "
                       f"{tp / max(tp + fp + fn, 1):.3f}.", hint)


@check.register
def threshold_split(answer) -> bool:
    """Chapter 3: post-processing thresholds are chosen on the validation split."""
    answer = str(answer).strip().lower()
    return _report(answer == "validation",
                   "choices are made on validation images; the test split is looked at once, "
                   "after everything is fixed.",
                   "the test split must not influence any choice, or its score is optimistic; "
                   "the training split is what the network has already fit." if answer in
                   ("test", "train", "training") else
                   'answer one of "train", "validation" or "test".')


@check.register
def weights_sha256(answer, *, path, recorded: str | None = None) -> bool:
    """Chapter 5: the sha256 of a weights file, compared with the run record's."""
    from .data import file_sha256

    actual = file_sha256(path)
    answer = str(answer).strip().lower()
    if answer == actual:
        same = ("it equals the record's weights_sha256: these are the weights the recorded "
                "scores came from." if recorded == actual else
                "but the record gives another sha256: this is not the file that was scored.")
        return _report(True, f"that is the file's sha256; {same}", "")
    hint = ("a sha256 is 64 hexadecimal characters; " if len(answer) != 64 else
            "that is a sha256, but not of this file's bytes; ")
    return _report(False, "", hint + "hash the bytes of the weights file: "
                              "hashlib.sha256(path.read_bytes()).hexdigest().")


@check.register
def package_preprocessing(answer, *, preprocessing) -> bool:
    """Chapter 5: read the normalisation percentiles a shared model expects."""
    steps = [s for s in preprocessing if s.get("id") == "scale_range"]
    if not steps:
        return _report(False, "", "this package has no scale_range step; read its "
                                  "preprocessing list again.")
    kw = steps[0].get("kwargs") or {}
    expected = (float(kw.get("min_percentile", 0.0)), float(kw.get("max_percentile", 100.0)))
    try:
        low, high = (float(v) for v in answer)
    except (TypeError, ValueError):
        return _report(False, "", "answer a pair (low, high) of percentiles.")
    ok = abs(low - expected[0]) < 1e-9 and abs(high - expected[1]) < 1e-9
    return _report(ok, "each image is scaled so that these percentiles map to 0 and 1 "
                       "before the network sees it; prepare your images the same way.",
                   "look for the step whose id is 'scale_range' and read its "
                   "min_percentile and max_percentile (percentiles, not intensities).")


@check.register
def trainable_parameters(answer, *, model) -> bool:
    """Chapter 5: count the parameters that fine-tuning updates (encoder frozen)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    answer = int(answer)
    if answer == trainable:
        return _report(True, f"{trainable} of {total} parameters "
                             f"({trainable / total:.0%}) learn; the frozen encoder keeps "
                             "what it learnt on the original data.", "")
    hint = ("that counts every parameter, the frozen encoder too; count only those with "
            "requires_grad." if answer == total else
            "that is the frozen part; count the parameters that still learn." if
            answer == total - trainable else
            "sum p.numel() over model.parameters() with p.requires_grad.")
    return _report(False, "", hint)


@check.register
def hygiene_steps(answer) -> bool:
    """Chapter 4: of the steps a-f, only a (per-image normalisation) and e (the final score)
    may use the test images."""
    allowed = {"a", "e"}
    try:
        given = {str(a).strip().lower() for a in ([answer] if isinstance(answer, str) else answer)}
    except TypeError:
        return _report(False, "", 'answer with a set of letters, e.g. {"a", "c"}.')
    if given == allowed:
        return _report(True, "a uses nothing but the image itself, the same on any new image, "
                             "and the final score is what the test split is for.", "")
    extra, missing = sorted(given - allowed), sorted(allowed - given)
    hints = []
    if extra:
        hints.append(f"{', '.join(extra)} would let the test images decide something (a choice, "
                     "or statistics of a dataset), and the test score would become optimistic")
    if missing:
        hints.append(f"{', '.join(missing)} never changes the method: look again")
    return _report(False, "", "; ".join(hints) + ".")


@check.register
def images_to_halve_ci(answer, *, n_images: int) -> bool:
    """Chapter 4: a bootstrap interval narrows as 1 / sqrt(n); halving it takes 4 n images."""
    expected = 4 * n_images
    value = float(answer)
    ok = abs(value - expected) <= 0.1 * expected
    hint = ("twice the images narrows the interval by sqrt(2) only, not by 2."
            if abs(value - 2 * n_images) <= 0.1 * 2 * n_images else
            "the width of the interval falls as 1 / sqrt(number of images).")
    return _report(ok, f"about {expected} images: the width falls as 1 / sqrt(n), so half the "
                       "width takes four times the images.", hint)


@check.register
def majority_mask(answer, *, masks) -> bool:
    """Chapter 4: pixel-wise majority vote, foreground where more than half of the masks are."""
    masks = np.asarray(masks) > 0
    answer = np.asarray(answer)
    if answer.shape != masks.shape[1:]:
        return _report(False, "", f"the answer has shape {answer.shape}; the vote is one mask "
                                  f"of shape {masks.shape[1:]} (sum over the annotator axis 0).")
    expected = 2 * masks.sum(axis=0) > len(masks)
    ties = 2 * masks.sum(axis=0) == len(masks)
    answer = answer > 0
    if np.array_equal(answer, expected):
        return _report(True, f"{int(ties.sum())} tied pixels (half and half) stay background.", "")
    if ties.any() and np.array_equal(answer, expected | ties):
        return _report(False, "", "ties (two of four) count as foreground in your mask; a "
                                  "majority needs more than half.")
    return _report(False, "", "count the annotators marking each pixel (sum over axis 0) and "
                              "keep the pixels where more than half do.")


@check.register
def voxel_anisotropy(answer, *, labels) -> bool:
    """Chapter 6: how many times longer a voxel is along z than along y, read from the
    nuclei of an instance mask ``(Z, Y, X)`` (nuclei are about round in the sample)."""
    from .planes import anisotropy_from_labels

    z, y, _ = anisotropy_from_labels(labels)
    expected = z / y
    ok = abs(float(answer) - expected) <= 0.1 * expected
    hint = ("that is the ratio the other way round: a nucleus spans fewer planes than "
            "pixels, so each plane is thicker than a pixel is wide."
            if abs(float(answer) * expected - 1) <= 0.1 else
            "compare how far a nucleus extends along y (pixels) with how far along z "
            "(planes): take the median over the nuclei of each extent, then their ratio.")
    return _report(ok, f"a voxel is about {expected:.1f} times longer along z than along y.",
                   hint)


@check.register
def daughters(answer, *, tracks, mother: int) -> bool:
    """Chapter 7: the daughters of track ``mother`` in a CTC track table (rows ``L B E P``)."""
    table = np.asarray(tracks).reshape(-1, 4)
    expected = sorted(int(r[0]) for r in table if r[3] == mother)
    try:
        given = sorted(int(a) for a in np.ravel(answer))
    except (TypeError, ValueError):
        return _report(False, "", "answer with the labels of the daughter tracks, e.g. [12, 13].")
    if given == expected:
        return _report(True, f"tracks {expected} have P = {mother}: they begin in frame "
                             f"{int(table[table[:, 0] == expected[0]][0, 1])}, the frame after "
                             "their mother ends.", "")
    return _report(False, "", f"{given} is not it; the daughters are the rows whose last "
                              f"column P is {mother}: tracks[tracks[:, 3] == {mother}, 0].")


@check.register
def frame_links(answer, *, before, after, max_distance: float) -> bool:
    """Chapter 7: links ``(i, j)`` of the one-to-one assignment of least total distance
    between the centroids of two frames, pairs further than ``max_distance`` left out."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    distance = cdist(np.asarray(before, float), np.asarray(after, float))
    rows, cols = linear_sum_assignment(np.where(distance <= max_distance, distance, 1e9))
    expected = {(int(i), int(j)) for i, j in zip(rows, cols) if distance[i, j] <= max_distance}
    try:
        given = {(int(i), int(j)) for i, j in answer}
    except (TypeError, ValueError):
        return _report(False, "", "answer with a list of pairs (i, j): row i of `before` "
                                  "linked to row j of `after`.")
    if given == expected:
        return _report(True, f"{len(expected)} links; the nuclei left over start or end tracks.",
                       "")
    too_far = [p for p in given if distance[p] > max_distance]
    hint = (f"{len(too_far)} of your links are longer than max_distance: drop them."
            if too_far else "use linear_sum_assignment on the distance matrix (cdist), then "
            "keep the pairs within max_distance.")
    return _report(False, "", f"{len(given & expected)} of your {len(given)} links are right, "
                              f"{len(expected)} expected; {hint}")


_DIRECTIONS = ("higher", "lower", "same")


@check.register
def prediction(answer, *, before: float, after: float, quantity: str,
               tolerance: float = 0.0) -> bool:
    """Open exercises: was the predicted direction of ``quantity`` (``"higher"``,
    ``"lower"`` or ``"same"``) what the run measured, from ``before`` to ``after``?

    Examples
    --------
    >>> bool(check.prediction("lower", before=0.5, after=0.2, quantity="the loss"))
    Correct: the loss went lower (0.5 -> 0.2). Now say why.
    True
    """
    answer = str(answer).strip().lower()
    if answer not in _DIRECTIONS:
        return _report(False, "", f"answer one of {_DIRECTIONS}, got {answer!r}.")
    change = after - before
    observed = "same" if abs(change) <= tolerance else ("higher" if change > 0 else "lower")
    seen = f"{quantity} went {observed} ({before:.4g} -> {after:.4g})"
    return _report(answer == observed, f"{seen}. Now say why.",
                   f"you predicted {answer!r}, but {seen}. What did the prediction miss?")


if __name__ == "__main__":   # the command line of dlbio_teach.student_copies, by its first name
    from dlbio_teach.student_copies import _main

    sys.exit(_main())
