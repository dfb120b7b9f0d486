"""Reporting checklist, answered from a run record as far as it can be.

:data:`CHECKLIST`, :func:`fill_checklist`, :func:`checklist_markdown` -- reporting items
after Laine et al. (2021), DOME (Walsh et al., 2021) and the community checklists of
Schmied et al. (2024). The run record answers what it can: :data:`AUTO_ANSWERS` maps an
item's key to a small function of the record; the rest is left to the authors.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .model_card import _best_loss, _epoch_number, _fmt, _metric_rows
from .records import RunRecord

__all__ = ["ChecklistItem", "CHECKLIST", "CHECKLIST_SOURCES", "AUTO_ANSWERS",
           "fill_checklist", "checklist_markdown"]

LAINE = "Laine et al. 2021"
DOME = "DOME (Walsh et al. 2021)"
SCHMIED = "Schmied et al. 2024"
#: The checklists the items come from, by the short name an item cites, with the full
#: reference.
CHECKLIST_SOURCES = {
    LAINE: "Laine, Arganda-Carreras, Henriques, Jacquemet (2021) Avoiding a replication "
           "crisis in deep-learning-based bioimage analysis. Nat Methods 18:1136. "
           "doi:10.1038/s41592-021-01284-3",
    DOME: "Walsh, Fishman, Garcia-Gasulla et al. (2021) DOME: recommendations for "
          "supervised machine learning validation in biology. Nat Methods 18:1122. "
          "doi:10.1038/s41592-021-01205-4",
    SCHMIED: "Schmied, Nelson, Avilov et al. (2024) Community-developed checklists for "
             "publishing images and image analyses. Nat Methods 21:170. "
             "doi:10.1038/s41592-023-01987-9",
}


@dataclass(frozen=True)
class ChecklistItem:
    """One reporting question, the section it belongs to and where it comes from.

    The questions paraphrase the recommendations of the cited papers (see
    ``CHECKLIST_SOURCES``); the sections are DOME's: Data, Optimisation, Model,
    Evaluation.
    """

    key: str
    section: str
    question: str
    sources: tuple


#: The reporting items, in the order the checklist lists them.
CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem("data_provenance", "Data",
                  "Where do the images come from, under which licence, and how can others "
                  "get exactly the same files (URL and checksum)?", (DOME, LAINE, SCHMIED)),
    ChecklistItem("ground_truth", "Data",
                  "Who made the ground truth, how, with which tool, and how consistent are "
                  "annotators with each other?", (LAINE, SCHMIED)),
    ChecklistItem("data_splits", "Data",
                  "How were the images split into training, validation and test sets, and "
                  "how many images are in each?", (DOME, LAINE)),
    ChecklistItem("split_independence", "Data",
                  "Are the splits independent: no image (nor patch of one image) in two "
                  "sets?", (DOME, LAINE)),
    ChecklistItem("data_availability", "Data",
                  "Are new training and test images deposited in a public archive with an "
                  "identifier (e.g. BioImage Archive, Zenodo)?", (DOME, SCHMIED)),
    ChecklistItem("preprocessing", "Optimisation",
                  "How were the images pre-processed (normalisation) and augmented?",
                  (DOME, LAINE)),
    ChecklistItem("hyperparameters", "Optimisation",
                  "Which loss, optimiser, learning rate, batch size and number of epochs "
                  "were used?", (DOME, LAINE)),
    ChecklistItem("training_budget", "Optimisation",
                  "How large was the training (run profile: epochs, number and size of "
                  "patches)?", (DOME,)),
    ChecklistItem("model_selection", "Optimisation",
                  "How was over-fitting controlled: validation loss, early stopping, which "
                  "epoch's weights were kept?", (DOME, LAINE)),
    ChecklistItem("training_curves", "Optimisation",
                  "Are the training and validation loss curves shown?", (LAINE,)),
    ChecklistItem("seed", "Optimisation",
                  "Is the random seed reported, and how much do results vary between "
                  "seeds?", (LAINE, DOME)),
    ChecklistItem("architecture", "Model",
                  "Which architecture, with which settings and how many parameters?",
                  (DOME, LAINE, SCHMIED)),
    ChecklistItem("software_versions", "Model",
                  "Which software and versions were used (framework, libraries, this "
                  "package and its commit)?", (LAINE, SCHMIED)),
    ChecklistItem("hardware_time", "Model",
                  "On which hardware, and how long did training take?", (LAINE, DOME)),
    ChecklistItem("weights_shared", "Model",
                  "Are the trained weights shared, with a checksum, in a standard format "
                  "(e.g. the BioImage Model Zoo)?", (LAINE, SCHMIED, DOME)),
    ChecklistItem("code_available", "Model",
                  "Is the code to train and apply the model public, at a fixed version?",
                  (DOME, LAINE, SCHMIED)),
    ChecklistItem("metrics", "Evaluation",
                  "Which metrics were computed, on which images, with which settings "
                  "(e.g. IoU threshold)?", (DOME, LAINE, SCHMIED)),
    ChecklistItem("confidence", "Evaluation",
                  "Do the scores carry confidence intervals or a spread over images and "
                  "seeds?", (DOME,)),
    ChecklistItem("baselines", "Evaluation",
                  "Is the model compared with a simple baseline (a classical method) and "
                  "with published methods on the same images?", (DOME, LAINE)),
    ChecklistItem("generalisation", "Evaluation",
                  "Was the model tested on images from another microscope, lab or sample "
                  "preparation than the training images?", (LAINE,)),
    ChecklistItem("quality_control", "Evaluation",
                  "How is the output checked when the model is applied to new images "
                  "(e.g. against a few manual annotations)?", (LAINE, SCHMIED)),
    ChecklistItem("limitations", "Evaluation",
                  "Are failure cases shown, and is it said for which images the model "
                  "should not be used?", (LAINE, SCHMIED)),
)


# --------------------------------------------------------------------------------------
# Automatic answers: item key -> function(record) -> (answer, status) or None
# --------------------------------------------------------------------------------------

_HP_PREPROCESS = ("normalization", "normalisation", "normalize", "normalise",
                  "preprocessing", "augment", "augmentation", "percentiles")
_HP_TRAINING = ("loss", "optimizer", "optimiser", "lr", "learning_rate", "batch_size",
                "epochs", "weight_decay", "patience")

_Answer = tuple[str, str] | None


def _hp_matching(r: RunRecord, words: tuple) -> _Answer:
    found = {k: v for k, v in r.hyperparameters.items()
             if any(word in k.lower() for word in words)}
    return (json.dumps(found, sort_keys=True), "answered") if found else None


def _data_provenance(r: RunRecord) -> _Answer:
    if r.datasets:
        parts = [f"{n} ({d['licence']}; {len(d['files'])} file(s) with sha256)"
                 for n, d in r.datasets.items()]
        if r.synthetic_data:
            parts.append("synthetic data (generator settings recorded)")
        return "; ".join(parts), "answered"
    if r.synthetic_data:
        return "synthetic data: " + json.dumps(r.synthetic_data, sort_keys=True), "answered"
    return None


def _data_splits(r: RunRecord) -> _Answer:
    if not r.splits:
        return None
    sizes = ", ".join(f"{k}: {len(v)} image(s)" for k, v in r.splits.items())
    return sizes + " (ids in the run record)", "answered"


def _split_independence(r: RunRecord) -> _Answer:
    if not r.splits:
        return None
    overlap = r.split_overlap()
    if overlap:
        return "NO, ids in two splits: " + "; ".join(
            f"{k} {v}" for k, v in overlap.items()), "attention"
    return "yes: no id is in two splits", "answered"


def _training_budget(r: RunRecord) -> _Answer:
    if not r.profile:
        return None
    sizes = ", ".join(f"{k}={v}" for k, v in sorted(r.profile.items()) if k != "name")
    return f"profile {r.profile.get('name')!r}: " + sizes, "answered"


def _model_selection(r: RunRecord) -> _Answer:
    h = r.history
    if not h.get("train_loss"):
        return None
    best, monitored = _best_loss(h)
    if not h.get("val_loss") or monitored != "validation":
        answer = "no validation loss was recorded: the weights were chosen on the training loss"
        return answer, "attention"
    answer = (f"weights of the epoch with the lowest validation loss (epoch "
              f"{_epoch_number(h.get('best_epoch'))}, loss {_fmt(best)}); stopped early: "
              f"{'yes' if h.get('stopped_early') else 'no'}")
    return answer, "answered"


def _training_curves(r: RunRecord) -> _Answer:
    if not r.history.get("train_loss"):
        return None
    answer = (f"{len(r.history['train_loss'])} training and "
              f"{len(r.history.get('val_loss', []))} validation losses per epoch, in the run "
              "record")
    return answer, "answered"


def _seed(r: RunRecord) -> _Answer:
    return None if r.seed is None else (f"seed {r.seed} (spread over seeds: to report)",
                                        "answered")


def _architecture(r: RunRecord) -> _Answer:
    if not r.model:
        return None
    m = r.model
    kwargs = json.dumps(m.get("kwargs", {}), sort_keys=True)
    return f"{m.get('class_name')}({kwargs}), {_fmt(m.get('n_parameters'))} parameters", \
        "answered"


def _software_versions(r: RunRecord) -> _Answer:
    if not r.versions:
        return None
    return ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items())
                     if v is not None), "answered"


def _hardware_time(r: RunRecord) -> _Answer:
    if not r.hardware:
        return None
    hw = r.hardware
    answer = (f"{hw.get('device')} ({hw.get('device_name')}), {hw.get('cpu_count')} CPU "
              f"cores; training {_fmt(r.history.get('seconds'), 3)} s")
    return answer, "answered"


def _weights_shared(r: RunRecord) -> _Answer:
    if not r.weights_sha256:
        return None
    answer = f"{r.weights_file}, sha256 {r.weights_sha256} (zoo package: export_bioimageio)"
    return answer, "answered"


def _code_available(r: RunRecord) -> _Answer:
    commit = r.versions.get("dlbio_teach_git_commit")
    if not commit:
        return None
    answer = (f"dlbio_teach {r.versions.get('dlbio_teach')}, commit {commit} (say where it "
              "is public)")
    return answer, "answered"


def _metrics(r: RunRecord) -> _Answer:
    if not r.metrics:
        return None
    return ", ".join(row[0] for row in _metric_rows(r.metrics)), "answered"


def _confidence(r: RunRecord) -> _Answer:
    if not r.metrics:
        return None
    with_ci = [row[0] for row in _metric_rows(r.metrics) if row[2] != "not computed"]
    if not with_ci:
        return "the recorded metrics have no confidence interval", "attention"
    return f"confidence intervals for {', '.join(with_ci)}", "answered"


AUTO_ANSWERS: dict[str, Callable[[RunRecord], _Answer]] = {
    "data_provenance": _data_provenance,
    "data_splits": _data_splits,
    "split_independence": _split_independence,
    "preprocessing": lambda r: _hp_matching(r, _HP_PREPROCESS),
    "hyperparameters": lambda r: _hp_matching(r, _HP_TRAINING),
    "training_budget": _training_budget,
    "model_selection": _model_selection,
    "training_curves": _training_curves,
    "seed": _seed,
    "architecture": _architecture,
    "software_versions": _software_versions,
    "hardware_time": _hardware_time,
    "weights_shared": _weights_shared,
    "code_available": _code_available,
    "metrics": _metrics,
    "confidence": _confidence,
}
"""Checklist item key -> function of a :class:`~dlbio_teach.records.RunRecord` that returns
``(answer, status)`` (status ``"answered"``, or ``"attention"`` when the answer shows a
problem), or None when the record cannot answer. Items without an entry are left to the
authors."""

_STATUSES = ("answered", "attention")


def _check_answer_table(table: Mapping, checklist=None) -> None:
    """Every key of an answer table must be a checklist item, every value a callable.

    Examples
    --------
    >>> _check_answer_table({"seeed": lambda r: None})
    Traceback (most recent call last):
    ...
    KeyError: "The answer table has keys that are not checklist items: ['seeed']. ..."
    """
    keys = [item.key for item in (CHECKLIST if checklist is None else checklist)]
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise KeyError(f"The answer table has keys that are not checklist items: {unknown}. "
                       f"Use one of {keys}, or add the item to CHECKLIST first.")
    not_callable = sorted(k for k, f in table.items() if not callable(f))
    if not_callable:
        raise TypeError(f"The answers for {not_callable} are not functions; give a function "
                        "record -> (answer, status) or None for each key.")


_check_answer_table(AUTO_ANSWERS)


def _auto_answer(key: str, record: RunRecord) -> _Answer:
    """``(answer, status)`` from :data:`AUTO_ANSWERS` for ``key``, or None."""
    answer = AUTO_ANSWERS[key](record) if key in AUTO_ANSWERS else None
    if answer is not None and answer[1] not in _STATUSES:
        raise ValueError(f"The automatic answer for {key!r} has status {answer[1]!r}; "
                         f"expected one of {_STATUSES}. Fix AUTO_ANSWERS[{key!r}].")
    return answer


def fill_checklist(record: RunRecord | None = None, *,
                   answers: Mapping[str, str] | None = None) -> list[dict]:
    """_Answer the :data:`CHECKLIST` from a run record and the authors' own answers.

    Parameters
    ----------
    record : RunRecord, optional
        Answers the items it can (seed, versions, profile, data, splits, metrics...).
    answers : dict, optional
        Item key -> the authors' answer; overrides the record's.

    Returns
    -------
    list of dict
        One row per item: ``key``, ``section``, ``question``, ``sources``, ``status``
        (``"answered"``, ``"attention"`` when the answer shows a problem, or
        ``"to fill in"``), ``answer`` and ``by`` (``"run record"`` or ``"authors"``).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(1, 1, 3)
    >>> rec = RunRecord.create(model=net, model_kwargs={"in_channels": 1,
    ...     "out_channels": 1, "kernel_size": 3}, history={"train_loss": [1.0]},
    ...     seed=7, profile="smoke", hyperparameters={})
    >>> rows = {r["key"]: r for r in fill_checklist(rec)}
    >>> rows["seed"]["status"], rows["seed"]["answer"][:6], rows["baselines"]["status"]
    ('answered', 'seed 7', 'to fill in')
    """
    answers = dict(answers or {})
    unknown = sorted(set(answers) - {item.key for item in CHECKLIST})
    if unknown:
        raise KeyError(f"Unknown checklist keys {unknown}; the keys are "
                       f"{[item.key for item in CHECKLIST]}.")
    rows = []
    for item in CHECKLIST:
        row = {"key": item.key, "section": item.section, "question": item.question,
               "sources": list(item.sources), "status": "to fill in", "answer": "",
               "by": ""}
        auto = _auto_answer(item.key, record) if record is not None else None
        if item.key in answers and str(answers[item.key]).strip():
            row.update(status="answered", answer=str(answers[item.key]).strip(),
                       by="authors")
        elif auto is not None:
            row.update(answer=auto[0], status=auto[1], by="run record")
        rows.append(row)
    return rows


def checklist_markdown(record: RunRecord | None = None, *,
                       answers: Mapping[str, str] | None = None,
                       title: str = "Reporting checklist") -> str:
    """Render :func:`fill_checklist` as Markdown: ``[x]`` answered, ``[!]`` answered
    with a problem, ``[ ]`` to fill in; the sources are listed at the end.

    Examples
    --------
    >>> text = checklist_markdown(answers={"baselines": "Otsu + watershed, Table 2."})
    >>> "- [x] **Is the model compared" in text, "- [ ] **Is the random seed" in text
    (True, True)
    """
    rows = fill_checklist(record, answers=answers)
    done = sum(r["status"] != "to fill in" for r in rows)
    out = [f"# {title}", "",
           f"{done} of {len(rows)} items answered ({sum(r['by'] == 'run record' for r in rows)}"
           " from the run record); `[!]` marks an answer that shows a problem.", ""]
    mark = {"answered": "[x]", "attention": "[!]", "to fill in": "[ ]"}
    for section in dict.fromkeys(r["section"] for r in rows):
        out += [f"## {section}", ""]
        for r in (r for r in rows if r["section"] == section):
            answer = r["answer"] or "*to fill in*"
            by = f" *({r['by']})*" if r["by"] else ""
            out.append(f"- {mark[r['status']]} **{r['question']}** {answer}{by} "
                       f"[{'; '.join(r['sources'])}]")
        out.append("")
    out += ["## Sources", ""] + [f"- {k}: {v}" for k, v in CHECKLIST_SOURCES.items()]
    return "\n".join(out) + "\n"

