"""Automatic feedback for the exercise cells: ``check.<exercise>(answer)``.

Each checker prints what is right or what to look at again, and returns ``True`` or
``False``; it never prints the solution (the book keeps solutions in hidden dropdowns).
"""
from __future__ import annotations

import functools

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
    """Chapter 1: no image may give patches to both the training and the test set."""
    image_of_patch = np.asarray(image_of_patch)
    shared = set(image_of_patch[np.asarray(train_ids)]) & set(
        image_of_patch[np.asarray(test_ids)])
    overlap = set(np.asarray(train_ids).tolist()) & set(np.asarray(test_ids).tolist())
    return _report(not shared and not overlap,
                   "training and test patches come from different images.",
                   f"images {sorted(shared)[:5]} give patches to both sets; split the image "
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
