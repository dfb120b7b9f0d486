"""dlbio_teach.reporting: run record, model card, checklist, BioImage Model Zoo export."""
from __future__ import annotations

import contextlib
import io
import json
import math
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbio_teach import models as models_module
from dlbio_teach.data import REGISTRY
from dlbio_teach.models import UNet
from dlbio_teach.preprocessing import normalize_percentile
from dlbio_teach.reporting import (CHECKLIST, RECORD_FILE, WEIGHTS_FILE, RunRecord,
                                   UntrustedCodeError, _apply_ops, checklist_markdown,
                                   compare_metrics, export_bioimageio, file_sha256,
                                   fill_checklist, load_bioimageio, model_card,
                                   rebuild_model, reproduce_test_outputs, state_sha256)
from dlbio_teach.runtime import get_profile
from dlbio_teach.training import History

NAME = "Tiny test U-Net"
AUTHORS = ["A. Student"]


def tiny_unet(seed=0, depth=2):
    """A small U-Net with non-trivial weights and batch-norm statistics."""
    torch.manual_seed(seed)
    net = UNet(1, 1, depth=depth, base_channels=4)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return net.eval()


def history():
    return History(train_loss=[0.9, 0.5, 0.4], val_loss=[1.0, 0.6, 0.7], best_epoch=1,
                   best_val_loss=0.6, stopped_early=True, seconds=1.5)


def make_record(net, **overrides):
    kwargs = dict(model=net, history=history(), seed=3, profile=get_profile("smoke"),
                  hyperparameters={"lr": np.float32(1e-3), "batch_size": np.int64(16),
                                   "loss": "mse", "optimizer": "Adam",
                                   "normalisation": "percentile (1, 99.8)"},
                  datasets=["stardist_nuclei", "blobs"],
                  splits={"train": np.arange(3), "val": [3], "test": (4, 5)},
                  metrics={"F1@0.5": {"estimate": np.float64(0.8125), "low": 0.75,
                                      "high": 0.87, "level": 0.95, "n": np.int32(40)},
                           "psnr": np.float32(27.5)})
    kwargs.update(overrides)
    return RunRecord.create(**kwargs)


@contextlib.contextmanager
def network_blocked():
    """Name lookups and outgoing connections fail and are recorded (yielded list).

    Both are needed: without DNS, an HTTP client fails at the lookup and never connects.
    """
    attempts = []

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise OSError(f"network disabled in this test (looked up {host})")

    def refuse_connect(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network disabled in this test (tried {address})")

    saved = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex
    socket.getaddrinfo = refuse_lookup
    socket.socket.connect = socket.socket.connect_ex = refuse_connect
    try:
        yield attempts
    finally:
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = saved


@pytest.fixture
def no_network():
    """Every network attempt fails and is recorded: the test asserts there was none."""
    with network_blocked() as attempts:
        yield attempts


# ------------------------------------------------------------------ run record

def test_record_round_trip_weights_and_rebuilt_outputs(tmp_path):
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
    rebuilt = rebuild_model(tmp_path)
    x = torch.rand(2, 1, 24, 40)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


def test_record_json_is_plain_sorted_and_strict(tmp_path):
    net = tiny_unet()
    h = History(train_loss=[np.float32(0.5)], val_loss=[], best_val_loss=float("inf"),
                seconds=1.5)
    rec = make_record(net, history=h)
    rec.save(tmp_path)
    text = (tmp_path / RECORD_FILE).read_text()

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=no_constants)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert data["history"]["best_val_loss"] is None          # infinity is not JSON
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


def test_record_datasets_come_from_the_registry():
    rec = make_record(tiny_unet())
    for name in ("stardist_nuclei", "blobs"):
        entry, registered = rec.datasets[name], REGISTRY[name]
        assert entry["licence"] == registered.licence
        assert entry["citation"] == registered.citation
        assert {f["key"]: (f["url"], f["sha256"]) for f in entry["files"]} == {
            k: (f.url, f.sha256) for k, f in registered.files.items()}
    with pytest.raises(KeyError, match="Known datasets"):
        make_record(tiny_unet(), datasets=["no_such_dataset"])


def test_record_clear_errors(tmp_path):
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


def test_record_takes_ci_objects_as_validation_returns_them():
    """A validation.BootstrapCI is stored as a plain dict."""
    from dlbio_teach.validation import BootstrapCI

    rec = make_record(tiny_unet(), metrics={"F1@0.5": BootstrapCI(0.8, 0.7, 0.9, 0.95, 12)})
    assert rec.metrics["F1@0.5"] == {"estimate": 0.8, "low": 0.7, "high": 0.9,
                                     "confidence": 0.95, "n": 12, "method": "BCa"}
    card = model_card(rec, intended_use="x", limitations="y")
    assert "| F1@0.5 | 0.8 | 95% CI [0.7, 0.9] | method: BCa, n: 12 |" in card


def test_rebuild_model_refuses_other_or_missing_weights(tmp_path):
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


def test_compare_metrics_flags_a_changed_score():
    recorded = make_record(tiny_unet()).metrics
    rows = {r["metric"]: r for r in compare_metrics(recorded, {"F1@0.5": 0.8125,
                                                               "psnr": 27.0})}
    assert rows["F1@0.5"]["match"] and rows["F1@0.5"]["abs_diff"] == 0
    assert not rows["psnr"]["match"] and math.isclose(rows["psnr"]["abs_diff"], 0.5)
    with pytest.raises(ValueError, match="No metric in common"):
        compare_metrics(recorded, {"ssim": 0.9})


# ------------------------------------------------------------------ model card, checklist

def test_model_card_has_metrics_cis_and_dataset_licence():
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
    with pytest.raises(ValueError, match="intended_use"):
        model_card(rec, intended_use=" ", limitations="x")


def test_checklist_answers_what_the_record_knows():
    rec = make_record(tiny_unet())
    rows = {r["key"]: r for r in fill_checklist(rec)}
    assert set(rows) == {item.key for item in CHECKLIST}
    for key in ("seed", "training_budget", "software_versions", "architecture",
                "data_provenance", "data_splits", "split_independence", "metrics",
                "confidence", "hyperparameters", "model_selection", "training_curves"):
        assert rows[key]["status"] == "answered" and rows[key]["by"] == "run record", key
    assert "seed 3" in rows["seed"]["answer"]
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


def test_checklist_flags_leaky_splits_and_renders_markdown(tmp_path):
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

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export (with a run record) shared by the zoo tests; no network allowed."""
    with network_blocked() as attempts:
        folder = tmp_path_factory.mktemp("zoo")
        net = tiny_unet()
        rec = make_record(net)
        rec.save(folder / "run")
        x = np.random.default_rng(0).gamma(2.0, 100.0, (1, 1, 32, 48)).astype(np.float32)
        out = export_bioimageio(net, folder / "tiny.zip", test_input=x, name=NAME,
                                description="A tiny U-Net for the tests.", authors=AUTHORS,
                                record=rec, folder=folder / "unpacked",
                                intended_use="Tests only.", limitations="Untrained.")
    return {"net": net, "record": rec, "x": x, "out": out, "folder": folder,
            "attempts": attempts}


def test_export_validates_offline(exported):
    out = exported["out"]
    assert exported["attempts"] == []                       # nothing went to the network
    assert out.status in ("passed", "valid-format"), out.summary
    assert "valid-format" in out.summary or "passed" in out.summary
    names = set(zipfile.ZipFile(out.path).namelist())
    assert {"rdf.yaml", WEIGHTS_FILE, "models.py", "test_input.npy", "test_output.npy",
            "cover.png", "README.md", RECORD_FILE} <= names
    unpacked = exported["folder"] / "unpacked"
    rdf = (unpacked / "rdf.yaml").read_text()
    assert "format_version: 0.5." in rdf and "pytorch_state_dict" in rdf
    assert "scale_range" in rdf and "max_percentile: 99.8" in rdf
    assert "step: 4" in rdf and "min: 4" in rdf               # 2**depth for depth 2
    assert "license: MIT" in rdf
    # The architecture file is this package's models.py, which imports only torch.
    assert (unpacked / "models.py").read_bytes() == Path(models_module.__file__).read_bytes()
    # The zip's weights file is the one the run record names (same bytes).
    assert file_sha256(unpacked / WEIGHTS_FILE) == exported["record"].weights_sha256
    readme = (unpacked / "README.md").read_text()
    assert "## Validation" in readme and "95% CI [0.75, 0.87]" in readme
    assert json.loads((unpacked / RECORD_FILE).read_text())["seed"] == 3


def test_export_is_reproduced_after_loading_the_zip(exported, no_network):
    out, net, x = exported["out"], exported["net"], exported["x"]
    assert out.max_abs_diff < 1e-5
    assert reproduce_test_outputs(out.path) < 1e-5
    assert reproduce_test_outputs(exported["folder"] / "unpacked") < 1e-5   # unpacked too
    loaded = load_bioimageio(out.path)
    assert state_sha256(loaded.model) == state_sha256(net)
    np.testing.assert_array_equal(loaded.test_inputs[0], x)
    # The packaged pipeline is the course's: percentile normalisation, then the network.
    with torch.no_grad():
        expected = net(torch.from_numpy(normalize_percentile(x[0, 0])[None, None])).numpy()
    np.testing.assert_allclose(loaded.predict(x), expected, atol=1e-4)
    assert no_network == []


def test_spec_reads_the_package_back(exported, no_network):
    from bioimageio.spec import ValidationContext, load_description

    with ValidationContext(perform_io_checks=False, log_warnings=False):
        descr = load_description(exported["out"].path, perform_io_checks=False)
    assert descr.validation_summary.status == "valid-format"
    assert str(descr.format_version).startswith("0.5")
    assert descr.weights.pytorch_state_dict.architecture.kwargs == exported["net"].config
    assert no_network == []


def test_the_network_guard_sees_what_online_validation_would_do(exported, no_network):
    """The offline assertions above mean something: with perform_io_checks on and the
    URLs not declared known, bioimageio.spec does try to reach them."""
    from bioimageio.spec import ValidationContext, load_description

    with ValidationContext(perform_io_checks=False, log_warnings=False, progressbar=False):
        load_description(exported["out"].path, perform_io_checks=True, known_files={})
    assert "github.com" in no_network


def test_altered_package_is_refused(exported, tmp_path):
    src = exported["out"].path
    bad = tmp_path / "altered.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == WEIGHTS_FILE:
                buffer = io.BytesIO()
                torch.save(tiny_unet(seed=5).state_dict(), buffer)
                data = buffer.getvalue()
            zout.writestr(item, data)
    with pytest.raises(ValueError, match="sha256"):
        load_bioimageio(bad)


FOREIGN_ARCHITECTURE = '''
import torch


class Doubler(torch.nn.Module):
    def __init__(self, channels=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return 2 * self.conv(x)
'''


def load_file_module(path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("foreign_arch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_foreign_architecture_needs_trust(tmp_path, no_network):
    arch = tmp_path / "doubler.py"
    arch.write_text(FOREIGN_ARCHITECTURE)
    torch.manual_seed(0)
    net = load_file_module(arch).Doubler(channels=1).eval()
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    out = export_bioimageio(net, tmp_path / "doubler.zip", test_input=x, name="Doubler net",
                            description="Two times a convolution.", authors=AUTHORS,
                            architecture=arch, model_kwargs={"channels": 1}, normalize=None)
    assert out.status == "valid-format" and out.max_abs_diff < 1e-6
    with pytest.raises(UntrustedCodeError, match="trust_code=True"):
        load_bioimageio(out.path)
    assert reproduce_test_outputs(out.path, trust_code=True) < 1e-6
    assert no_network == []


def test_export_clear_errors(tmp_path):
    net = tiny_unet()
    good = np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)
    kw = dict(name=NAME, description="d", authors=AUTHORS)
    with pytest.raises(ValueError, match=r"4 dimensions \(N, C, Y, X\).*image\[None, None\]"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=good[0, 0], **kw)
    with pytest.raises(ValueError, match=r"multiples of 4.*test_input\[\.\.\., :28, :32\]"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=good[..., :30, :], **kw)
    with pytest.raises(ValueError, match="1 channel.*takes 2"):
        export_bioimageio(UNet(2, 1, depth=1, base_channels=2), tmp_path / "a.zip",
                          test_input=good, **kw)
    with pytest.raises(ValueError, match="not a valid zoo name"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=good, name="U/Net!",
                          description="d", authors=AUTHORS)
    with pytest.raises(ValueError, match="SPDX"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=good, license="MIT-ish", **kw)
    with pytest.raises(ValueError, match="must end with .zip"):
        export_bioimageio(net, tmp_path / "a.tar", test_input=good, **kw)
    with pytest.raises(ValueError, match="GitHub"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=good, name=NAME,
                          description="d", authors=[{"name": "A", "github_user": "a"}])
    (tmp_path / "exists.zip").write_bytes(b"")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_bioimageio(net, tmp_path / "exists.zip", test_input=good, **kw)
    assert not (tmp_path / "a.zip").exists()


def test_export_refuses_a_model_that_fails_or_is_not_self_contained(tmp_path):
    class NeedsMultipleOf8(torch.nn.Module):
        """Fails on sides that are not multiples of 8 (no padding), like a plain U-Net."""

        config = {}

        def forward(self, x):
            if x.shape[-1] % 8 or x.shape[-2] % 8:
                raise RuntimeError(f"sides must be multiples of 8, got {tuple(x.shape)}")
            return x

    x = np.zeros((1, 1, 12, 12), np.float32)
    arch = tmp_path / "arch.py"
    arch.write_text("import torch\n\nclass NeedsMultipleOf8(torch.nn.Module):\n    pass\n")
    with pytest.raises(ValueError, match="model failed on the test input of shape"):
        export_bioimageio(NeedsMultipleOf8(), tmp_path / "a.zip", test_input=x, name=NAME,
                          description="d", authors=AUTHORS, architecture=arch)
    leaky = tmp_path / "leaky.py"
    leaky.write_text("from dlbio_teach.models import UNet\n\n\ndef build():\n"
                     "    return UNet()\n")
    with pytest.raises(ValueError, match="imports other modules of its package"):
        export_bioimageio(tiny_unet(), tmp_path / "a.zip", test_input=x[..., :8, :8],
                          name=NAME, description="d", authors=AUTHORS, architecture=leaky,
                          callable_name="build")
    with pytest.raises(ValueError, match="no top-level class or function 'Missing'"):
        export_bioimageio(tiny_unet(), tmp_path / "a.zip", test_input=x[..., :8, :8],
                          name=NAME, description="d", authors=AUTHORS,
                          callable_name="Missing")


def test_export_refuses_a_model_other_than_the_record(tmp_path):
    rec = make_record(tiny_unet(seed=0))
    x = np.zeros((1, 1, 16, 16), np.float32)
    with pytest.raises(ValueError, match="weights differ from those of the run record"):
        export_bioimageio(tiny_unet(seed=1), tmp_path / "a.zip", test_input=x, name=NAME,
                          description="d", authors=AUTHORS, record=rec)
    with pytest.raises(ValueError, match="not the one the run record describes"):
        export_bioimageio(tiny_unet(depth=1), tmp_path / "a.zip", test_input=x, name=NAME,
                          description="d", authors=AUTHORS, record=rec)


def test_load_bioimageio_missing_or_wrong_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No zoo package"):
        load_bioimageio(tmp_path / "none.zip")
    (tmp_path / "rdf.yaml").write_text("type: model\nformat_version: 0.5.4\nname: x\n")
    with pytest.raises(ValueError, match="not a valid zoo model package"):
        load_bioimageio(tmp_path)


def test_scale_range_matches_the_course_normalisation():
    image = np.random.default_rng(1).gamma(2.0, 50.0, (40, 30)).astype(np.float32)
    ops = [{"id": "scale_range", "kwargs": {"axes": ["channel", "y", "x"],
                                            "min_percentile": 1.0, "max_percentile": 99.8}}]
    ours = _apply_ops(image[None, None], ops, ["batch", "channel", "y", "x"])[0, 0]
    np.testing.assert_allclose(ours, normalize_percentile(image, 1.0, 99.8), atol=1e-5)
    with pytest.raises(NotImplementedError, match="bioimageio.core"):
        _apply_ops(image, [{"id": "stardist_postprocessing", "kwargs": {}}], ["y", "x"])
