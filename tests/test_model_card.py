"""dlbio_teach.model_card and dlbio_teach.checklist: the model card and the reporting checklist."""
from __future__ import annotations

import pytest
import torch

from dlbio_teach import checklist as checklist_module
from dlbio_teach.checklist import (
    AUTO_ANSWERS,
    CHECKLIST,
    _check_answer_table,
    checklist_markdown,
    fill_checklist,
)
from dlbio_teach.data import REGISTRY
from dlbio_teach.model_card import model_card
from dlbio_teach.records import RunRecord


def test_model_card_has_metrics_cis_and_dataset_licence(make_record, tiny_unet):
    rec = make_record(tiny_unet())
    card = model_card(rec, intended_use="Nuclei in DSB-like images.",
                      limitations="Not tested on tissue.", authors=["A. Student"])
    assert "| F1@0.5 | 0.8125 | 95% CI [0.75, 0.87] | n: 40 |" in card
    assert "| psnr | 27.5 | not computed |" in card
    assert REGISTRY["stardist_nuclei"].licence in card
    assert REGISTRY["blobs"].licence in card
    assert REGISTRY["stardist_nuclei"].files["image"].sha256 in card
    for heading in ("## Model details", "## Intended use", "## Training data",
                    "## Validation", "## Training", "## Environment", "## Limitations",
                    "## How to cite"):
        assert heading in card, heading
    assert "Not tested on tissue." in card and "10.1007/978-3-319-24574-4_28" in card
    assert "| lr | 0.001 |" in card
    # History.best_epoch is an index (1 here); the card counts epochs as the printouts do.
    assert "best epoch 2 (validation loss 0.6)" in card
    with pytest.raises(ValueError, match="intended_use"):
        model_card(rec, intended_use=" ", limitations="x")


def test_checklist_answers_what_the_record_knows(make_record, tiny_unet):
    rec = make_record(tiny_unet())
    rows = {r["key"]: r for r in fill_checklist(rec)}
    assert set(rows) == {item.key for item in CHECKLIST}
    for key in ("seed", "training_budget", "software_versions", "architecture",
                "data_provenance", "data_splits", "split_independence", "metrics",
                "confidence", "hyperparameters", "model_selection", "training_curves"):
        assert rows[key]["status"] == "answered" and rows[key]["by"] == "run record", key
    assert "seed 3" in rows["seed"]["answer"]
    assert "(epoch 2, loss 0.6)" in rows["model_selection"]["answer"]
    assert "'smoke'" in rows["training_budget"]["answer"]
    assert f"torch {torch.__version__}" in rows["software_versions"]["answer"]
    for key in ("ground_truth", "baselines", "generalisation", "limitations",
                "quality_control", "weights_shared"):   # weights: not saved yet
        assert rows[key]["status"] == "to fill in" and rows[key]["answer"] == "", key
    # Without a record everything is to fill in; the authors' answers count.
    blank = fill_checklist(answers={"baselines": "Otsu + watershed"})
    assert {r["status"] for r in blank if r["key"] != "baselines"} == {"to fill in"}
    assert [r["by"] for r in blank if r["key"] == "baselines"] == ["authors"]
    with pytest.raises(KeyError, match="Unknown checklist keys"):
        fill_checklist(rec, answers={"sed": "0"})


def test_checklist_flags_leaky_splits_and_renders_markdown(make_record, tiny_unet, tmp_path):
    rec = make_record(tiny_unet(), splits={"train": [0, 1, 2], "test": [2, 3]},
                      metrics={"psnr": 27.0})
    rows = {r["key"]: r for r in fill_checklist(rec)}
    assert rows["split_independence"]["status"] == "attention"
    assert "[2]" in rows["split_independence"]["answer"]
    assert rows["confidence"]["status"] == "attention"
    rec.save(tmp_path)
    text = checklist_markdown(rec, answers={"baselines": "Otsu + watershed"})
    assert "- [!] **Are the splits independent" in text
    assert "- [x] **Is the random seed reported" in text
    assert "- [x] **Are the trained weights shared" in text and rec.weights_sha256 in text
    assert "- [x] **Is the model compared" in text and "Otsu + watershed *(authors)*" in text
    assert "- [ ] **Who made the ground truth" in text
    assert "doi:10.1038/s41592-021-01205-4" in text and "## Evaluation" in text


# ------------------------------------------------------------------ BioImage Model Zoo


# ------------------------------------------------------------------ the answer table

def test_every_auto_answer_is_a_checklist_item():
    keys = {item.key for item in CHECKLIST}
    assert set(AUTO_ANSWERS) <= keys
    assert len(keys) == len(CHECKLIST)                       # keys are unique
    # What only the authors know has no automatic answer.
    for key in ("ground_truth", "baselines", "generalisation", "limitations",
                "quality_control", "data_availability"):
        assert key not in AUTO_ANSWERS, key


def test_an_unknown_key_in_the_answer_table_fails():
    with pytest.raises(KeyError, match=r"not checklist items: \['seeed'\]"):
        _check_answer_table({"seeed": lambda r: None})
    with pytest.raises(TypeError, match="not functions"):
        _check_answer_table({"seed": "seed 0"})
    _check_answer_table(AUTO_ANSWERS)                         # the real table passes


def test_each_auto_answer_gives_answer_and_status_or_none(make_record, tiny_unet):
    rec = make_record(tiny_unet())
    empty = RunRecord(created="", versions={}, hardware={}, seed=None, profile={},
                      hyperparameters={}, datasets={}, splits={}, history={}, metrics={},
                      model={})
    for key, answer in AUTO_ANSWERS.items():
        assert answer(empty) is None, key                   # nothing recorded: no answer
        got = answer(rec)
        if got is not None:
            text, status = got
            assert isinstance(text, str) and text, key
            assert status in ("answered", "attention"), key


def test_a_bad_status_in_the_table_is_reported(make_record, tiny_unet, monkeypatch):
    monkeypatch.setitem(AUTO_ANSWERS, "seed", lambda r: ("attention", "seed 0"))
    with pytest.raises(ValueError, match="status 'seed 0'"):
        fill_checklist(make_record(tiny_unet()))
    assert checklist_module.AUTO_ANSWERS is AUTO_ANSWERS
