"""Model card, written from a run record.

:func:`model_card` -- a Markdown model card (after Mitchell et al., 2019): what the
:class:`~dlbio_teach.records.RunRecord` knows is filled in, what only the authors know
(intended use, limitations) must be given. The reporting checklist is
:mod:`dlbio_teach.checklist`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .records import RunRecord, _dumps, _estimate

__all__ = ["model_card"]

# Citations of the architectures this package defines, for model cards and the zoo.
_ARCHITECTURE_CITATIONS = {
    "UNet": ("Ronneberger, Fischer, Brox (2015) U-Net: convolutional networks for "
             "biomedical image segmentation. MICCAI, LNCS 9351:234-241.",
             "10.1007/978-3-319-24574-4_28"),
}
_COURSE_CITATION = ("Deep learning for bioimage analysis, done right: course and companion "
                    "package dlbio_teach {version} (MIT licence).")


# --------------------------------------------------------------------------------------
# Markdown helpers
# --------------------------------------------------------------------------------------

_CI_KEYS = (("low", "high"), ("ci_low", "ci_high"), ("lower", "upper"))


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10_000 else str(x)
    return f"{x:.{digits}g}"


def _epoch_number(index) -> str:
    """An epoch as people count it (from 1), from ``History.best_epoch`` (an index from 0).

    Training printouts say "best epoch 18" for index 17; the card and checklist say the same.

    Examples
    --------
    >>> _epoch_number(17), _epoch_number(None)
    ('18', '-')
    """
    return "-" if index is None else str(int(index) + 1)


def _ci(value) -> tuple | None:
    if not isinstance(value, Mapping):
        return None
    for lo, hi in _CI_KEYS:
        if lo in value and hi in value:
            return value[lo], value[hi], value.get("level", value.get("confidence"))
    return None


def _metric_rows(metrics: Mapping, prefix: str = "") -> list[tuple]:
    rows = []
    for name, value in metrics.items():
        label = f"{prefix}{name}"
        if isinstance(value, Mapping) and _estimate(value) is None and _ci(value) is None:
            rows.extend(_metric_rows(value, prefix=f"{label} / "))
            continue
        ci = _ci(value)
        extra = ""
        if isinstance(value, Mapping):
            shown = {"estimate", "value", "mean", "point", "level", "confidence",
                     *(k for pair in _CI_KEYS for k in pair)}
            rest = {k: v for k, v in value.items() if k not in shown}
            extra = ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(rest.items()))
        if ci:
            level = f"{ci[2]:.0%} " if isinstance(ci[2], (int, float)) else ""
            ci_text = f"{level}CI [{_fmt(ci[0])}, {_fmt(ci[1])}]"
        else:
            ci_text = "not computed"
        rows.append((label, _fmt(_estimate(value)), ci_text, extra))
    return rows


def _metrics_table(metrics: Mapping) -> str:
    if not metrics:
        return "No metrics were recorded."
    lines = ["| Metric | Estimate | Confidence interval | Details |", "|---|---|---|---|"]
    lines += [f"| {m} | {e} | {c} | {d} |" for m, e, c, d in _metric_rows(metrics)]
    return "\n".join(lines)


def _kv_table(mapping: Mapping, header=("Setting", "Value")) -> str:
    if not mapping:
        return "None recorded."
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for k, v in sorted(mapping.items()):
        text = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else _fmt(v)
        lines.append(f"| {k} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def _citations(record: RunRecord) -> list[str]:
    cites = [_COURSE_CITATION.format(version=record.versions.get("dlbio_teach", "?"))]
    arch = _ARCHITECTURE_CITATIONS.get(record.model.get("class_name", ""))
    if arch:
        cites.append(f"{arch[0]} doi:{arch[1]}")
    cites += [f"Dataset `{name}`: {d['citation']}" for name, d in record.datasets.items()]
    return cites




# --------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------

def _details_section(record: RunRecord) -> list[str]:
    m = record.model
    weights = f"`{record.weights_file or 'not saved yet'}`" + (
        f", sha256 `{record.weights_sha256}`" if record.weights_sha256 else "")
    return ["## Model details", "",
            f"- **Architecture:** `{m.get('class_name')}` from `{m.get('module')}`, "
            f"{_fmt(m.get('n_parameters'))} parameters "
            f"({_fmt(m.get('n_trainable_parameters'))} trainable)",
            f"- **Constructor arguments:** `{json.dumps(m.get('kwargs', {}), sort_keys=True)}`",
            f"- **Weights:** {weights}",
            f"- **Recorded:** {record.created}, trained with dlbio_teach "
            f"{record.versions.get('dlbio_teach', '?')}", *_volume_lines(record), ""]


# --------------------------------------------------------------------------------------
# Volumes: axes, voxel size, patch size
# --------------------------------------------------------------------------------------

def _is_volume_record(record: RunRecord) -> bool:
    """A run on volumes: its settings say ``axes="ZYX"`` (the 3D trainings of
    ``segmentation`` and ``restoration``) or its network was built with ``ndim=3``."""
    axes = record.hyperparameters.get("axes")
    kwargs = record.model.get("kwargs") or {}
    return (isinstance(axes, str) and axes.upper() == "ZYX") or kwargs.get("ndim") == 3


def _zyx(values, unit: str = "") -> str:
    """Three sides as ``16 x 32 x 32`` (one value: the same along each axis)."""
    values = list(values) if isinstance(values, (list, tuple)) else [values] * 3
    return " x ".join(_fmt(v) for v in values) + (f" {unit}" if unit else "")


def _recorded(record: RunRecord, key: str):
    """A setting of the run: in its hyper-parameters, else in its synthetic data's
    description."""
    if key in record.hyperparameters:
        return record.hyperparameters[key]
    return record.synthetic_data.get(key)


def _volume_lines(record: RunRecord) -> list[str]:
    """The lines of the model details that only a run on volumes has (none for images,
    whose cards stay as they were): the axes, the voxel size (``voxel_size``, with
    ``voxel_unit``, in the hyper-parameters or the synthetic data's description), the
    anisotropy the training used, the patch size and the U-Net's downsampling per axis.

    Examples
    --------
    >>> rec = RunRecord(created="", versions={}, hardware={}, seed=0, profile={},
    ...     hyperparameters={"axes": "ZYX", "anisotropy": [2, 1, 1],
    ...                      "patch_size": [16, 32, 32], "voxel_size": [1.0, 0.5, 0.5],
    ...                      "voxel_unit": "micrometer"}, datasets={}, splits={},
    ...     history={}, metrics={},
    ...     model={"class_name": "UNet", "kwargs": {"depth": 2, "ndim": 3, "pool_z": False}})
    >>> for line in _volume_lines(rec):
    ...     print(line)
    - **Axes:** ZYX: the network takes volumes, a batch (N, C, Z, Y, X)
    - **Voxel size (z, y, x):** 1 x 0.5 x 0.5 micrometer
    - **Anisotropy (z, y, x):** 2 x 1 x 1 (relative voxel size used in training)
    - **Patch size (z, y, x):** 16 x 32 x 32 voxels
    - **Downsampling (z, y, x):** 1 x 4 x 4 (2 pooling steps; Z never halved: pool_z=False)
    """
    if not _is_volume_record(record):
        return []
    lines = ["- **Axes:** ZYX: the network takes volumes, a batch (N, C, Z, Y, X)"]
    voxel_size, unit = _recorded(record, "voxel_size"), _recorded(record, "voxel_unit")
    anisotropy = record.hyperparameters.get("anisotropy")
    if voxel_size is not None:
        lines.append("- **Voxel size (z, y, x):** "
                     + _zyx(voxel_size, str(unit) if unit else "(unit not recorded)"))
    if anisotropy is not None:
        lines.append(f"- **Anisotropy (z, y, x):** {_zyx(anisotropy)} (relative voxel "
                     "size used in training)")
    elif "anisotropy" in record.hyperparameters:
        lines.append("- **Anisotropy (z, y, x):** none given: trained as if the voxels "
                     "were cubic")
    if voxel_size is None and anisotropy is None:
        lines.append("- **Voxel size (z, y, x):** not recorded: ask the authors before "
                     "using the model on volumes of another sampling")
    patch = record.hyperparameters.get("patch_size")
    if patch is not None:
        lines.append(f"- **Patch size (z, y, x):** {_zyx(patch)} voxels")
    kwargs = record.model.get("kwargs") or {}
    if record.model.get("class_name") == "UNet" and isinstance(kwargs.get("depth"), int):
        depth, pool_z = kwargs["depth"], kwargs.get("pool_z", True)
        factors = [2 ** depth if pool_z else 1, 2 ** depth, 2 ** depth]
        lines.append(f"- **Downsampling (z, y, x):** {_zyx(factors)} ({depth} pooling "
                     "steps; " + ("Z halved with Y and X" if pool_z
                                  else "Z never halved: pool_z=False") + ")")
    return lines


def _data_section(record: RunRecord) -> list[str]:
    out = ["## Training data", ""]
    if not record.datasets and not record.synthetic_data:
        out += ["No dataset was recorded.", ""]
    for name, d in record.datasets.items():
        out += [f"### `{name}`", "", d["description"], "",
                f"- **Licence:** {d['licence']}", f"- **Cite:** {d['citation']}",
                f"- **Source:** <{d['source']}>", "- **Files:**"]
        out += [f"  - `{f['key']}`: <{f['url']}>, sha256 `{f['sha256']}`"
                for f in d["files"]]
        out.append("")
    if record.synthetic_data:
        out += ["### Synthetic data", "", "```json", _dumps(record.synthetic_data).strip(),
                "```", ""]
    return out + _splits_section(record)


def _splits_section(record: RunRecord) -> list[str]:
    if not record.splits:
        return []
    out = ["### Splits", "", "| Split | Images | Ids |", "|---|---|---|"]
    for name, ids in record.splits.items():
        shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
        out.append(f"| {name} | {len(ids)} | {shown} |")
    overlap = record.split_overlap()
    return out + ["", ("**Warning: splits overlap** " + "; ".join(
        f"{k}: {v}" for k, v in overlap.items())) if overlap
        else "The splits are disjoint (no id in two splits).", ""]


def _best_loss(history: Mapping) -> tuple:
    """``(loss, "validation" or "training")`` that model selection watched.

    Histories say ``best_loss`` and ``monitored``; records written before that change say
    ``best_val_loss``.

    Examples
    --------
    >>> _best_loss({"best_loss": 0.2, "monitored": "training"})
    (0.2, 'training')
    >>> _best_loss({"best_val_loss": 0.3})
    (0.3, 'validation')
    """
    if "best_loss" not in history:
        return history.get("best_val_loss"), "validation"
    monitored = history.get("monitored") or ("validation" if history.get("val_loss")
                                             else "training")
    return history.get("best_loss"), monitored


def _training_section(record: RunRecord) -> list[str]:
    h = record.history
    best, monitored = _best_loss(h)
    profile = ", ".join(f"{k}={v}" for k, v in sorted(record.profile.items()) if k != "name")
    return ["## Training", "",
            f"- **Seed:** {record.seed}",
            f"- **Run profile:** `{record.profile.get('name')}` ({profile})",
            f"- **Epochs run:** {len(h.get('train_loss', []))}; best epoch "
            f"{_epoch_number(h.get('best_epoch'))} ({monitored} loss {_fmt(best)}); "
            f"stopped early: {'yes' if h.get('stopped_early') else 'no'}",
            f"- **Training time:** {_fmt(h.get('seconds'), 3)} s; wall time "
            f"{_fmt(record.wall_time_s, 3)} s", "", "### Hyper-parameters", "",
            _kv_table(record.hyperparameters), ""]


def model_card(record: RunRecord, *, intended_use: str, limitations: str,
               title: str | None = None, out_of_scope: str | None = None,
               authors: Sequence[str] = (), how_to_cite: str | None = None,
               extra_sections: Mapping[str, str] | None = None) -> str:
    """Write a Markdown model card (after Mitchell et al., 2019) from a run record.

    What the record knows (architecture, data with licences and checksums, splits,
    metrics with confidence intervals, hyper-parameters, environment) is filled in; what
    only the authors know (intended use, limitations) must be given.

    The record of a training on volumes (``axes="ZYX"`` in its settings, or a network
    built with ``ndim=3``) adds to the model details the axes (ZYX), the voxel size
    (``voxel_size`` and ``voxel_unit`` in the hyper-parameters or the synthetic data's
    description, when recorded), the anisotropy, the patch size and the U-Net's
    downsampling along Z, Y and X.

    Parameters
    ----------
    record : RunRecord
    intended_use : str
        For which images and question the model is meant.
    limitations : str
        Known failure modes, and the images it was not tested on.
    title : str, optional
        Default: ``"Model card: <class name>"``.
    out_of_scope : str, optional
        Uses it must not be put to.
    authors : sequence of str
        Who trained and documented the model.
    how_to_cite : str, optional
        Preferred citation; the course, the architecture and the datasets are added.
    extra_sections : dict, optional
        Heading -> Markdown text, appended.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(1, 1, 3)
    >>> rec = RunRecord.create(model=net, model_kwargs={"in_channels": 1,
    ...     "out_channels": 1, "kernel_size": 3}, history={"train_loss": [1.0]},
    ...     seed=0, profile="smoke", hyperparameters={"lr": 0.001}, datasets=["blobs"],
    ...     metrics={"F1@0.5": {"estimate": 0.81, "low": 0.75, "high": 0.86}})
    >>> card = model_card(rec, intended_use="Demo.", limitations="Trained on one image.")
    >>> "| F1@0.5 | 0.81 | CI [0.75, 0.86] |" in card, "CC-BY-4.0" in card
    (True, True)
    """
    for label, text in (("intended_use", intended_use), ("limitations", limitations)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{label} must be a non-empty text: only the authors can say "
                             "it, and a model card without it invites misuse. Write one or "
                             "two sentences.")
    title = title or f"Model card: {record.model.get('class_name', 'model')}"
    out = [f"# {title}", ""]
    if authors:
        out += [f"Authors: {', '.join(authors)}", ""]
    out += _details_section(record) + ["## Intended use", "", intended_use.strip(), ""]
    if out_of_scope:
        out += ["### Out of scope", "", out_of_scope.strip(), ""]
    out += _data_section(record)
    out += ["## Validation", "",
            "Scores on held-out data, with the confidence intervals that were computed.",
            "", _metrics_table(record.metrics), ""]
    out += _training_section(record)
    out += ["## Environment", "", _kv_table(record.versions, ("Software", "Version")), "",
            _kv_table(record.hardware, ("Hardware", "Value")), ""]
    out += ["## Limitations", "", limitations.strip(), ""]
    if record.notes:
        out += ["## Notes", "", record.notes.strip(), ""]
    for heading, text in (extra_sections or {}).items():
        out += [f"## {heading}", "", text.strip(), ""]
    out += ["## How to cite", ""]
    if how_to_cite:
        out += [how_to_cite.strip(), ""]
    out += [f"- {c}" for c in _citations(record)]
    return "\n".join(out).rstrip() + "\n"
