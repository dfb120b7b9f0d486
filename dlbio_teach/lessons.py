"""Lessons over seeds: a chapter's comparisons, repeated with other trainings.

A chapter shows one run: each network trained once, with one seed. On data this small, a
second training (another seed, another machine's rounding) can change a score by more than
the gap between two methods, so a lesson such as "CARE beats the filter" needs more than
one run. ``benchmarks/lessons.py`` runs every chapter with several seeds (``DLBIO_SEED``);
each chapter's check cell hands its comparisons to :func:`record_lessons`, which writes
them only during that benchmark; the benchmark gathers them, with the machine they ran on,
into ``lessons_results.json`` beside this module (installed with the package, so that a
chapter opened on Colab reads the same file). :func:`load_lessons` reads it back and
:func:`lessons_table` shows a chapter's lessons beside the chapter's own run.

A lesson's value is a number, a named interval (``{"estimate", "low", "high"}``, such as a
paired difference with its bootstrap interval) or a name (such as the model a procedure
chose).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LESSONS_DIR", "RESULTS", "SeedTable", "cpu_kernels", "record_lessons",
           "load_lessons", "lessons_table"]

#: The environment variable naming the folder where :func:`record_lessons` writes.
LESSONS_DIR = "DLBIO_LESSONS_DIR"
#: The committed results of ``benchmarks/lessons.py``.
RESULTS = Path(__file__).with_name("lessons_results.json")


def _plain(value):
    """A lesson value as JSON can hold it (intervals from the intervals module included)."""
    if isinstance(value, str):
        return value
    if all(hasattr(value, k) for k in ("estimate", "low", "high")):
        value = {"estimate": value.estimate, "low": value.low, "high": value.high}
    if isinstance(value, dict):
        return {k: float(value[k]) for k in ("estimate", "low", "high")}
    return float(value)


def cpu_kernels() -> str:
    """The family of CPU kernels PyTorch runs (``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``...).

    ``ATEN_CPU_CAPABILITY`` (set before PyTorch starts) picks a lower one than the CPU
    offers. Kernels of two families round sums in another order, so a seeded training
    gives other weights: the lessons of :func:`record_lessons` note the family.

    Examples
    --------
    >>> isinstance(cpu_kernels(), str)
    True
    """
    import torch
    return str(torch.backends.cpu.get_cpu_capability())


def record_lessons(chapter: str, values: dict, *, seed: int) -> Path | None:
    """Write one run's lessons when ``$DLBIO_LESSONS_DIR`` is set; otherwise do nothing.

    The file is named after the chapter, the seed and :func:`cpu_kernels`, so that runs
    of one seed on two families of CPU kernels are kept apart.

    Parameters
    ----------
    chapter : str
        The chapter's notebook name without extension, e.g. ``"02_restoration"``.
    values : dict
        Lesson name to value: a number, an interval (an object or dict with ``estimate``,
        ``low`` and ``high``) or a string.
    seed : int
        The run's seed (``course.seed``).

    Returns
    -------
    Path or None
        The file written, or None outside the benchmark.

    Examples
    --------
    >>> import os
    >>> LESSONS_DIR in os.environ or record_lessons("09_x", {"gain": 1.5}, seed=0) is None
    True
    """
    folder = os.environ.get(LESSONS_DIR)
    if not folder:
        return None
    kernels = cpu_kernels()
    path = Path(folder) / f"{chapter}_seed{int(seed)}_{kernels}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"chapter": chapter, "seed": int(seed), "kernels": kernels,
                       "values": {k: _plain(v) for k, v in values.items()}}, indent=1)
    partial = path.with_suffix(".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)   # a half-written file never carries the final name
    return path


@dataclass
class SeedTable:
    """One chapter's lessons over runs: ``values[name][i]`` is the value of the run with
    seed ``seeds[i]`` on the CPU kernels ``kernels[i]`` (``None``: not noted)."""

    chapter: str
    seeds: list
    values: dict
    machine: str
    kernels: list | None = None

    def runs(self) -> str:
        """Which runs the table holds, in words.

        Examples
        --------
        >>> SeedTable("09_x", [0, 1, 0, 1], {}, "m", ["AVX2", "AVX2", "DEFAULT", "DEFAULT"]).runs()
        'seeds [0, 1] on CPU kernels AVX2 and DEFAULT (4 runs)'
        >>> SeedTable("09_x", [0, 1], {}, "m").runs()
        'seeds [0, 1]'
        """
        seeds = sorted(set(self.seeds))
        families = list(dict.fromkeys(k for k in (self.kernels or []) if k))
        if not families:
            return f"seeds {seeds}"
        return (f"seeds {seeds} on CPU kernels {' and '.join(families)} "
                f"({len(self.seeds)} runs)")

    def estimates(self, name: str) -> np.ndarray:
        """The lesson's estimate at each seed (numbers or intervals' estimates)."""
        return np.array([v["estimate"] if isinstance(v, dict) else v
                         for v in self.values[name]], float)

    def count(self, name: str, holds) -> int:
        """In how many seeds ``holds(value)`` is true."""
        return sum(bool(holds(v)) for v in self.values[name])

    def above_zero(self, name: str) -> int:
        """In how many seeds the lesson's interval lies above 0 (shown better)."""
        return self.count(name, lambda v: v["low"] > 0)

    def below_zero(self, name: str) -> int:
        """In how many seeds the lesson's interval lies below 0 (shown worse)."""
        return self.count(name, lambda v: v["high"] < 0)


def load_lessons(chapter: str, path: str | Path | None = None) -> SeedTable:
    """Read a chapter's lessons from the committed results of ``benchmarks/lessons.py``.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lessons_results.json"
    >>> _ = path.write_text(json.dumps({"machine": "a laptop", "chapters": {"09_x": {
    ...     "seeds": [0, 1], "values": {"gain": [1.5, 0.5]}}}}))
    >>> load_lessons("09_x", path).estimates("gain").tolist()
    [1.5, 0.5]
    """
    path = Path(path) if path is not None else RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it is written by benchmarks/lessons.py "
                                "(python benchmarks/lessons.py --seeds 0 1 2 3 4).")
    results = json.loads(path.read_text(encoding="utf-8"))
    if chapter not in results["chapters"]:
        raise KeyError(f"{path.name} holds no lessons of {chapter!r}; it has "
                       f"{sorted(results['chapters'])}. Run benchmarks/lessons.py again.")
    entry = results["chapters"][chapter]
    return SeedTable(chapter=chapter, seeds=list(entry["seeds"]), values=entry["values"],
                     machine=entry.get("machine", results["machine"]),
                     kernels=entry.get("kernels"))


def _format(value, unit: str, sign: str, digits: int | None = None) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        d = 2 if digits is None else digits
        return f"{value['estimate']:+.{d}f}{unit} [{value['low']:+.{d}f}, {value['high']:+.{d}f}]"
    return f"{value:{sign}.{3 if digits is None else digits}f}{unit}"


def lessons_table(table: SeedTable, rows: dict, *, this_run: dict | None = None) -> str:
    """A Markdown table of lessons: this run's value beside the spread over seeds.

    Parameters
    ----------
    table : SeedTable
        From :func:`load_lessons`.
    rows : dict
        Lesson name to (label, unit), e.g. ``{"care_vs_filter": ("CARE - filter", " dB")}``,
        or to (label, unit, digits) for a lesson whose differences are small: its values
        are shown with that many decimals (otherwise intervals and spreads with 2, numbers
        with 3). Numbers are shown with their sign when the label is a difference (``" - "``).
    this_run : dict, optional
        The values of the run at hand, under the same names.

    Examples
    --------
    >>> t = SeedTable("09_x", [0, 1], {"gain": [{"estimate": 1.0, "low": 0.5, "high": 1.5},
    ...                                         {"estimate": 0.2, "low": -0.3, "high": 0.7}]},
    ...               machine="a laptop")
    >>> print(lessons_table(t, {"gain": ("A - B", " dB")}).splitlines()[2])
    | A - B |  | +0.60 dB (+0.20 to +1.00) | 1 of 2 | 0 of 2 |
    >>> print(lessons_table(t, {"gain": ("A - B", " dB", 3)}).splitlines()[2])
    | A - B |  | +0.600 dB (+0.200 to +1.000) | 1 of 2 | 0 of 2 |
    """
    this_run = this_run or {}
    lines = ["| lesson | this run | over seeds: mean (range) | interval above 0 | "
             "interval below 0 |", "|---|---|---|---|---|"]
    for name, (label, unit, *digits) in rows.items():
        digits = digits[0] if digits else None
        sign = "+" if " - " in label else ""
        mine = _format(_plain(this_run[name]), unit, sign, digits) if name in this_run else ""
        if name not in table.values:   # a lesson added since benchmarks/lessons.py last ran
            lines.append(f"| {label} | {mine} | not run over seeds | | |")
            continue
        values, n = table.values[name], len(table.seeds)
        if all(isinstance(v, str) for v in values):
            counts = {v: values.count(v) for v in dict.fromkeys(values)}
            spread = ", ".join(f"{k} in {c} of {n}" for k, c in counts.items())
            lines.append(f"| {label} | {mine} | {spread} | | |")
            continue
        est = table.estimates(name)
        if all(isinstance(v, dict) for v in values):
            sign = "+"
        form = f"{sign}.{2 if digits is None else digits}f"
        spread = f"{est.mean():{form}}{unit} ({est.min():{form}} to {est.max():{form}})"
        if all(isinstance(v, dict) for v in values):
            above, below = f"{table.above_zero(name)} of {n}", f"{table.below_zero(name)} of {n}"
        else:
            above = below = ""
        lines.append(f"| {label} | {mine} | {spread} | {above} | {below} |")
    return "\n".join(lines)
