"""dlbio_teach.records: the run record, weights, rebuilding a model, comparing scores."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import torch

from dlbio_teach.data import REGISTRY, file_sha256
from dlbio_teach.model_card import model_card
from dlbio_teach.records import (
    RECORD_FILE,
    WEIGHTS_FILE,
    RunRecord,
    compare_metrics,
    load_weights,
    rebuild_model,
    save_weights,
    state_sha256,
)
from dlbio_teach.runtime import get_profile
from dlbio_teach.training import History


def test_record_round_trip_weights_and_rebuilt_outputs(make_record, tiny_unet, tmp_path):
    net = tiny_unet()
    rec = make_record(net)
    path = rec.save(tmp_path)
    assert path == tmp_path / RECORD_FILE and (tmp_path / WEIGHTS_FILE).is_file()
    again = RunRecord.load(tmp_path)
    assert again == rec
    for field in ("versions", "hardware", "seed", "profile", "hyperparameters", "datasets",
                  "splits", "history", "metrics", "model", "weights_sha256", "created"):
        assert getattr(again, field) == getattr(rec, field), field
    assert again.weights_file == WEIGHTS_FILE
    assert again.weights_sha256 == file_sha256(tmp_path / WEIGHTS_FILE)
    assert again.model["state_sha256"] == state_sha256(net)
    # Rebuilt from the folder alone, on the CPU: the same numbers.
    rebuilt = rebuild_model(tmp_path, device="cpu")
    x = torch.rand(2, 1, 24, 40)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


def test_record_json_is_plain_sorted_and_strict(make_record, tiny_unet, tmp_path):
    net = tiny_unet()
    h = History(train_loss=[np.float32(0.5)], val_loss=[], best_loss=float("inf"),
                seconds=1.5)
    rec = make_record(net, history=h)
    rec.save(tmp_path)
    text = (tmp_path / RECORD_FILE).read_text()

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=no_constants)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert data["history"]["best_loss"] is None          # infinity is not JSON
    assert data["hyperparameters"]["batch_size"] == 16
    assert isinstance(rec.hyperparameters["lr"], float)
    assert rec.splits == {"train": [0, 1, 2], "val": [3], "test": [4, 5]}
    assert rec.metrics["F1@0.5"]["n"] == 40 and type(rec.metrics["F1@0.5"]["n"]) is int
    assert rec.profile == get_profile("smoke").to_dict()
    assert rec.seed == 3 and rec.versions["torch"] == torch.__version__
    assert rec.versions["dlbio_teach"] and rec.versions["python"]
    assert rec.hardware["device"] == "cpu" and rec.hardware["cpu_count"] >= 1
    assert rec.model["kwargs"] == net.config and rec.model["class_name"] == "UNet"
    assert rec.model["n_parameters"] == sum(p.numel() for p in net.parameters())
    assert rec.wall_time_s == 1.5                              # from the history


def test_record_datasets_come_from_the_registry(make_record, tiny_unet):
    rec = make_record(tiny_unet())
    for name in ("stardist_nuclei", "blobs"):
        entry, registered = rec.datasets[name], REGISTRY[name]
        assert entry["licence"] == registered.licence
        assert entry["citation"] == registered.citation
        assert {f["key"]: (f["url"], f["sha256"]) for f in entry["files"]} == {
            k: (f.url, f.sha256) for k, f in registered.files.items()}
    with pytest.raises(KeyError, match="Known datasets"):
        make_record(tiny_unet(), datasets=["no_such_dataset"])


def test_record_clear_errors(make_record, tiny_unet, tmp_path):
    net = tiny_unet()
    with pytest.raises(ValueError, match="non-negative integer"):
        make_record(net, seed=-1)
    with pytest.raises(ValueError, match="model_kwargs"):
        make_record(torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(TypeError, match="profile"):
        make_record(net, profile=3)
    with pytest.raises(TypeError, match="splits"):
        make_record(net, splits={"train": "abc"})
    with pytest.raises(TypeError, match="cannot be written to JSON"):
        make_record(net, hyperparameters={"loss": torch.nn.MSELoss()})
    rec = make_record(net)
    rec.save(tmp_path)
    loaded = RunRecord.load(tmp_path)
    with pytest.raises(ValueError, match="Pass the trained network"):
        loaded.save(tmp_path / "copy")
    with pytest.raises(ValueError, match="describes a UNet"):
        loaded.save(tmp_path / "copy", model=torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(FileNotFoundError, match="run_record.json"):
        RunRecord.load(tmp_path / "nothing")


def test_record_takes_ci_objects_as_validation_returns_them(make_record, tiny_unet):
    """An intervals.BootstrapCI is stored as a plain dict."""
    from dlbio_teach.intervals import BootstrapCI

    rec = make_record(tiny_unet(), metrics={"F1@0.5": BootstrapCI(0.8, 0.7, 0.9, 0.95, 12)})
    assert rec.metrics["F1@0.5"] == {"estimate": 0.8, "low": 0.7, "high": 0.9,
                                     "confidence": 0.95, "n": 12, "method": "BCa"}
    card = model_card(rec, intended_use="x", limitations="y")
    assert "| F1@0.5 | 0.8 | 95% CI [0.7, 0.9] | method: BCa, n: 12 |" in card


def test_rebuild_model_refuses_other_or_missing_weights(make_record, tiny_unet, tmp_path):
    rec = make_record(tiny_unet(seed=0))
    rec.save(tmp_path)
    torch.save(tiny_unet(seed=1).state_dict(), tmp_path / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="not the file the record describes"):
        rebuild_model(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="weights file .* is missing"):
        rebuild_model(tmp_path)
    unsaved = make_record(tiny_unet())
    with pytest.raises(ValueError, match="never saved"):
        rebuild_model(unsaved, folder=tmp_path)


def test_compare_metrics_flags_a_changed_score(make_record, tiny_unet):
    recorded = make_record(tiny_unet()).metrics
    rows = {r["metric"]: r for r in compare_metrics(recorded, {"F1@0.5": 0.8125,
                                                               "psnr": 27.0})}
    assert rows["F1@0.5"]["match"] and rows["F1@0.5"]["abs_diff"] == 0
    assert not rows["psnr"]["match"] and math.isclose(rows["psnr"]["abs_diff"], 0.5)
    with pytest.raises(ValueError, match="No metric in common"):
        compare_metrics(recorded, {"ssim": 0.9})


# ------------------------------------------------------------------ model card, checklist


# ------------------------------------------------------------------ added with the split

def test_records_does_not_import_training():
    """Training writes a run record at the end of fit: records must stand before it."""
    code = ("import sys, dlbio_teach.records; "
            "print('dlbio_teach.training' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_record_takes_any_history_with_to_dict(make_record, tiny_unet):
    """Records stands before training: History is known by its to_dict() only."""

    class LoggedHistory:
        def to_dict(self):
            return {"train_loss": [0.9, 0.5], "val_loss": [1.0, 0.6], "seconds": 2.0}

    a = make_record(tiny_unet(), history=LoggedHistory())
    b = make_record(tiny_unet(), history=LoggedHistory().to_dict())
    c = make_record(tiny_unet(), history=History(**LoggedHistory().to_dict()))
    assert a.history == b.history == LoggedHistory().to_dict()
    assert c.history["train_loss"] == [0.9, 0.5] and c.history["best_loss"] is None  # inf
    assert a.wall_time_s == 2.0
    with pytest.raises(TypeError, match="history must be"):
        make_record(tiny_unet(), history=[0.9, 0.5])
    with pytest.raises(TypeError, match="history must be"):
        make_record(tiny_unet(), history={"loss": [0.9]})


def test_record_versions_name_the_torch_build(make_record, tiny_unet):
    """torch.__version__ names the build (e.g. 2.13.0+cu130); the package version may not."""
    versions = make_record(tiny_unet()).versions
    assert versions["torch"] == torch.__version__
    assert versions["torch_distribution"] == metadata.version("torch")
    assert versions["cuda"] == torch.version.cuda
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    assert versions["cudnn"] == cudnn


def test_record_without_a_profile(history, make_record, tiny_unet, tmp_path):
    """A plain fit (no course profile) can still write a record."""
    net = tiny_unet()
    rec = RunRecord.create(model=net, history=history(), seed=0, hyperparameters={})
    assert rec.profile == {}
    rec.save(tmp_path)
    assert RunRecord.load(tmp_path) == rec
    card = model_card(rec, intended_use="x", limitations="y")
    assert "- **Run profile:** `None` ()" in card
    assert make_record(net, profile=None).profile == {}


def test_save_and_load_weights(tiny_unet, tmp_path):
    a, b = tiny_unet(seed=0), tiny_unet(seed=1)
    path = save_weights(a, tmp_path / "sub" / "w.pt")
    assert path == tmp_path / "sub" / "w.pt" and not list(tmp_path.rglob("*.tmp"))
    assert load_weights(b, path) is b and state_sha256(b) == state_sha256(a)
    torch.save({"not": "a state dict", "obj": object()}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_weights(b, tmp_path / "bad.pt")
