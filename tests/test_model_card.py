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


# ------------------------------------------------------------------ volumes

def test_model_card_of_a_3d_run_states_axes_voxel_size_and_patch(make_record, tiny_unet):
    from dlbio_teach.models import UNet
    from dlbio_teach.segmentation import SegmentationConfig

    torch.manual_seed(0)
    net = UNet(1, 1, depth=2, base_channels=4, ndim=3).eval()
    config = SegmentationConfig("distance", axes="ZYX", anisotropy=(2, 1, 1),
                                patch_size=(16, 32, 32), depth=2, base_channels=4)
    rec = make_record(net, hyperparameters={**config.to_dict(), "loss": "mse",
                                            "voxel_size": (0.8, 0.4, 0.4),
                                            "voxel_unit": "micrometer"})
    card = model_card(rec, intended_use="Nuclei in 3D.", limitations="Synthetic only.")
    details = card.split("## Model details")[1].split("## Intended use")[0]
    assert "- **Axes:** ZYX: the network takes volumes, a batch (N, C, Z, Y, X)" in details
    assert "- **Voxel size (z, y, x):** 0.8 x 0.4 x 0.4 micrometer" in details
    assert "- **Anisotropy (z, y, x):** 2 x 1 x 1 (relative voxel size" in details
    assert "- **Patch size (z, y, x):** 16 x 32 x 32 voxels" in details
    assert "- **Downsampling (z, y, x):** 4 x 4 x 4 (2 pooling steps; Z halved" in details
    assert details.endswith("\n\n")                        # the section still ends blank
    # A Noise2Void 3D record (restoration's hyper-parameters): no voxel size is recorded,
    # Z is never halved, the patch is given per axis.
    from dlbio_teach.restoration import RestorationConfig

    n2v = UNet(1, 1, depth=2, base_channels=4, ndim=3, pool_z=False, residual_output=True)
    n2v_config = RestorationConfig("n2v", patch_size=(6, 32, 32), axes="ZYX", pool_z=False)
    card = model_card(make_record(n2v, hyperparameters=n2v_config.to_dict()),
                      intended_use="Denoising.", limitations="One microscope.")
    assert "- **Axes:** ZYX" in card and "- **Patch size (z, y, x):** 6 x 32 x 32" in card
    assert "- **Voxel size (z, y, x):** not recorded" in card
    assert "- **Downsampling (z, y, x):** 1 x 4 x 4 (2 pooling steps; Z never halved" in card
    # Images: none of it (their cards are as before).
    card_2d = model_card(make_record(tiny_unet()), intended_use="x", limitations="y")
    assert "**Axes:**" not in card_2d and "Voxel size" not in card_2d


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
