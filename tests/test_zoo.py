"""dlbio_teach.zoo, zoo_import, zoo_export: BioImage Model Zoo packages, offline."""
from __future__ import annotations

import contextlib
import io
import json
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbio_teach import models as models_module
from dlbio_teach.data import file_sha256
from dlbio_teach.models import UNet
from dlbio_teach.preprocessing import normalize_percentile
from dlbio_teach.records import RECORD_FILE, WEIGHTS_FILE, state_sha256
from dlbio_teach.zoo import (
    PackageTensors,
    _apply_ops,
    _tolerances,
    build_description,
    run_core_tests,
    validate_package,
)
from dlbio_teach.zoo_export import (
    TORCHSCRIPT_FILE,
    describe_tensors,
    export_bioimageio,
    stage_files,
)
from dlbio_teach.zoo_import import UntrustedCodeError, load_bioimageio, reproduce_test_outputs

NAME = "Tiny test U-Net"
AUTHORS = ["A. Student"]








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


@pytest.fixture(scope="module")
def exported(make_record, tiny_unet, tmp_path_factory):
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


def test_altered_package_is_refused(tiny_unet, exported, tmp_path):
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


def test_export_clear_errors(tiny_unet, tmp_path):
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


def test_export_refuses_a_model_that_fails_or_is_not_self_contained(tiny_unet, tmp_path):
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


def test_export_refuses_a_model_other_than_the_record(make_record, tiny_unet, tmp_path):
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


# ------------------------------------------------------------------ the named steps

def small_tensors(net, step=4, **kwargs):
    x = np.random.default_rng(0).gamma(2.0, 100.0, (1, 1, 16, 16)).astype(np.float32)
    return describe_tensors(net, x, step=step, **kwargs)


def staged(tmp_path, net, tensors, record=None):
    root = tmp_path / "stage"
    root.mkdir()
    files = stage_files(root, net, tensors, architecture=models_module.__file__,
                        documentation="# Tiny\n", record=record)
    return root, files


def describe(root, files, tensors, net, **kwargs):
    args = dict(name=NAME, description="d", authors=AUTHORS, callable_name="UNet",
                model_kwargs=net.config, n_parameters=sum(p.numel() for p in net.parameters()))
    args.update(kwargs)
    return build_description(root, files, tensors, **args)


def test_describe_tensors_is_the_course_pipeline(tiny_unet):
    net = tiny_unet()
    t = small_tensors(net, channel_names=["DAPI"])
    np.testing.assert_allclose(t.model_input[0, 0], normalize_percentile(t.test_input[0, 0]),
                               atol=1e-5)
    with torch.no_grad():
        expected = net(torch.from_numpy(t.model_input)).numpy()
    np.testing.assert_array_equal(t.test_output, expected)
    assert t.test_output.dtype == np.float32 and t.step == 4
    assert t.channel_names == ["DAPI"] and t.output_channel_names == ["channel0"]
    raw = small_tensors(net, normalize=None)
    assert [op["id"] for op in raw.preprocessing] == ["ensure_dtype", "ensure_dtype"]
    np.testing.assert_array_equal(raw.model_input, raw.test_input)
    with pytest.raises(ValueError, match="normalize must be percentiles"):
        small_tensors(net, normalize=(99.0, 1.0))
    with pytest.raises(ValueError, match="2 input / 1 output channel names"):
        small_tensors(net, channel_names=["a", "b"])
    with pytest.raises(ValueError, match="multiples of 32"):
        small_tensors(net, step=32)


def test_stage_files_writes_every_file_of_the_package(make_record, tiny_unet, tmp_path):
    net = tiny_unet()
    rec = make_record(net)
    root, files = staged(tmp_path, net, small_tensors(net), record=rec)
    assert files["attachments"] == [RECORD_FILE]
    named = {v for k, v in files.items() if k != "attachments"} | {RECORD_FILE}
    assert {p.name for p in root.iterdir()} == named
    assert (root / "README.md").read_text() == "# Tiny\n"
    assert json.loads((root / RECORD_FILE).read_text())["seed"] == 3
    assert (root / "models.py").read_bytes() == Path(models_module.__file__).read_bytes()
    state = torch.load(root / WEIGHTS_FILE, weights_only=True)
    assert state.keys() == net.state_dict().keys()
    np.testing.assert_array_equal(np.load(root / "test_output.npy"),
                                  small_tensors(net).test_output)


def test_build_description_from_staged_files(make_record, tiny_unet, tmp_path):
    net = tiny_unet()
    rec = make_record(net)
    tensors = small_tensors(net)
    root, files = staged(tmp_path, net, tensors, record=rec)
    descr = describe(root, files, tensors, net, record=rec, tags=["nuclei"],
                     cite=[{"text": "A paper", "doi": "10.1000/xyz"}])
    assert descr.name == NAME and descr.tags == ["pytorch", "2d", "dlbio-teach", "nuclei"]
    assert [str(c.doi) for c in descr.cite][:2] == ["10.1007/978-3-319-24574-4_28",
                                                    "10.1000/xyz"]
    assert [str(p.id) for p in descr.inputs[0].preprocessing] == [
        "ensure_dtype", "scale_range", "ensure_dtype"]
    config = descr.config.bioimageio
    training = config.training.model_dump(exclude_none=True)
    assert {k: training.get(k) for k in ("training_epochs", "training_batch_size",
                                         "loss_function", "optimizer",
                                         "training_duration")} == {
        "training_epochs": 3, "training_batch_size": 16, "loss_function": "mse",
        "optimizer": "Adam", "training_duration": 1.5}
    assert training["initial_learning_rate"] == pytest.approx(1e-3)
    tol = config.reproducibility_tolerance[0].absolute_tolerance
    assert 0 < tol < 0.01 * float(tensors.test_output.max())
    assert descr.weights.pytorch_state_dict.architecture.kwargs == net.config
    with pytest.raises(ValueError, match="SPDX"):
        describe(root, files, tensors, net, license="MIT-ish")
    with pytest.raises(ValueError, match="bioimageio.spec rejected"):
        describe(root, files, tensors, net, description="x" * 2000)   # over 1024


def test_validate_package_keeps_only_a_valid_zip(tiny_unet, tmp_path):
    net = tiny_unet()
    tensors = small_tensors(net)
    root, files = staged(tmp_path, net, tensors)
    descr = describe(root, files, tensors, net)
    path = tmp_path / "out" / "tiny.zip"
    summary = validate_package(descr, root, path)
    assert summary.status == "valid-format" and path.is_file()
    assert {"rdf.yaml", WEIGHTS_FILE, "README.md"} <= set(zipfile.ZipFile(path).namelist())
    (root / "cover.png").unlink()                   # a file of the description is gone
    with pytest.raises(ValueError, match="FileDescr"):
        validate_package(descr, root, path)
    assert not path.exists()                          # never an invalid package left behind


@pytest.mark.parametrize("top", [0.054030363, 0.0034038743, 0.07679714, 0.05, 1e-4])
def test_tolerance_is_strictly_inside_the_spec_bound(top):
    """bioimageio.spec checks absolute_tolerance <= 0.01 * y.max() in float32; 0.01 * top
    in float64 (the old rule) was above that bound for about one small maximum in seven."""
    y = np.zeros((1, 1, 8, 8), np.float32)
    y[0, 0, 0, 0] = top
    tol = _tolerances(y)[0]["absolute_tolerance"]
    assert tol < y.max() * 0.01 and tol <= 1e-3
    assert tol >= 0.004 * float(y.max())             # not needlessly strict


def test_a_small_output_maximum_still_validates(tiny_unet, tmp_path):
    """End to end: a test output whose maximum made the old tolerance fail the spec."""
    net = tiny_unet()
    t = small_tensors(net)
    y = np.linspace(0, 1, t.test_output.size, dtype=np.float32).reshape(t.test_output.shape)
    y *= np.float32(0.054030363)
    # The old rule's failure: its tolerance, in float64, exceeds the spec's float32 bound.
    assert min(1e-3, 0.01 * float(y.max())) > float(np.float32(y.max()) * np.float32(0.01))
    t = PackageTensors(**{**vars(t), "test_output": y})
    root, files = staged(tmp_path, net, t)
    summary = validate_package(describe(root, files, t, net), root, tmp_path / "small.zip")
    assert summary.status == "valid-format", summary.format()


# ------------------------------------------------------------------ TorchScript weights

def unpacked_torchscript(folder):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit's deprecation
        return torch.jit.load(folder / TORCHSCRIPT_FILE, map_location="cpu")


def test_torchscript_weights_load_and_reproduce_the_test_output(exported, no_network):
    out, unpacked = exported["out"], exported["folder"] / "unpacked"
    rdf = (unpacked / "rdf.yaml").read_text()
    assert "torchscript:" in rdf and "parent: pytorch_state_dict" in rdf
    assert TORCHSCRIPT_FILE in zipfile.ZipFile(out.path).namelist()
    assert set(out.diffs) == {"pytorch_state_dict", "torchscript"}
    assert max(out.diffs.values()) == out.max_abs_diff < 1e-5
    # As a tool without Python runs it: torch.jit.load, the package's normalisation, run.
    scripted = unpacked_torchscript(unpacked)
    x = np.load(unpacked / "test_input.npy")
    with torch.no_grad():
        y = scripted(torch.from_numpy(normalize_percentile(x[0, 0])[None, None])).numpy()
    np.testing.assert_allclose(y, np.load(unpacked / "test_output.npy"), atol=1e-4)
    # Other sizes and batches than the traced one (sides: multiples of the step, 4).
    other = torch.rand(2, 1, 40, 24)
    with torch.no_grad():
        np.testing.assert_allclose(scripted(other).numpy(), exported["net"](other).numpy(),
                                   atol=1e-5)
    assert reproduce_test_outputs(out.path, weight_format="torchscript") < 1e-5
    assert no_network == []


def test_export_refuses_a_network_whose_trace_differs(tmp_path):
    class SizeDependent(torch.nn.Module):
        """Adds its input's width, a Python number that a trace fixes."""

        config = {}

        def forward(self, x):
            return x + float(x.shape[-1])

    arch = tmp_path / "arch.py"
    arch.write_text("import torch\n\nclass SizeDependent(torch.nn.Module):\n    pass\n")
    x = np.zeros((1, 1, 8, 8), np.float32)
    kw = dict(test_input=x, name=NAME, description="d", authors=AUTHORS, architecture=arch,
              normalize=None)
    with pytest.raises(RuntimeError, match="cannot be written as TorchScript"):
        export_bioimageio(SizeDependent(), tmp_path / "a.zip", **kw)
    assert not (tmp_path / "a.zip").exists()


# ------------------------------------------------------------------ three classes

CLASSES = ["background", "interior", "boundary"]


def tiny_three_class_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(1, 3, depth=2, base_channels=4).eval()


@pytest.fixture(scope="module")
def three_class(tmp_path_factory):
    """The three-class U-Net exported as chapter 5 does: probabilities, class names."""
    with network_blocked() as attempts:
        folder = tmp_path_factory.mktemp("zoo3")
        net = tiny_three_class_unet()
        x = np.random.default_rng(2).gamma(2.0, 100.0, (1, 1, 32, 32)).astype(np.float32)
        out = export_bioimageio(net, folder / "three.zip", test_input=x, name=NAME,
                                description="A tiny three-class U-Net.", authors=AUTHORS,
                                channel_names=["nuclei"], output_channel_names=CLASSES,
                                output_activation="softmax", folder=folder / "unpacked")
    return {"net": net, "x": x, "out": out, "folder": folder, "attempts": attempts}


def test_three_class_package_outputs_probabilities(three_class, no_network):
    out, unpacked = three_class["out"], three_class["folder"] / "unpacked"
    assert three_class["attempts"] == [] and out.status == "valid-format", out.summary
    y = np.load(unpacked / "test_output.npy")
    assert y.shape == (1, 3, 32, 32) and y.min() >= 0 and y.max() <= 1
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)    # a distribution per pixel
    rdf = (unpacked / "rdf.yaml").read_text()
    assert "id: softmax" in rdf and "axis: channel" in rdf
    assert all(name in rdf for name in CLASSES)
    # The package's pipeline is the network's softmax; the network itself (what a
    # fine-tuning user trains) still gives the logits, as trained.
    loaded = load_bioimageio(out.path)
    assert isinstance(loaded.model, UNet)
    x = three_class["x"]
    with torch.no_grad():
        logits = three_class["net"](torch.from_numpy(normalize_percentile(x[0, 0])[None, None]))
    np.testing.assert_allclose(loaded.predict(x), torch.softmax(logits, dim=1).numpy(),
                               atol=1e-5)
    assert out.max_abs_diff < 1e-5
    assert reproduce_test_outputs(out.path, weight_format="torchscript") < 1e-5
    assert no_network == []


def test_output_activation_clear_errors(tiny_unet, tmp_path):
    x = np.zeros((1, 1, 16, 16), np.float32)
    kw = dict(test_input=x, name=NAME, description="d", authors=AUTHORS)
    with pytest.raises(ValueError, match="output_activation must be one of"):
        export_bioimageio(tiny_three_class_unet(), tmp_path / "a.zip",
                          output_activation="argmax", **kw)
    with pytest.raises(ValueError, match="needs at least 2 output channels.*'sigmoid'"):
        export_bioimageio(tiny_unet(), tmp_path / "a.zip", output_activation="softmax", **kw)
    assert not (tmp_path / "a.zip").exists()


def test_softmax_step_is_the_probabilities_over_channels():
    logits = np.random.default_rng(0).normal(0, 30, (2, 3, 4, 5)).astype(np.float32)
    ops = [{"id": "softmax", "kwargs": {"axis": "channel"}}]
    p = _apply_ops(logits, ops, ["batch", "channel", "y", "x"])
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(logits), 1).numpy(),
                               atol=1e-6)
    assert np.isfinite(p).all()                       # large logits do not overflow


# ------------------------------------------------------------------ input checks

def test_export_explains_a_wrong_test_input_shape(tiny_unet, tmp_path):
    """Issue 13 item 9: the course's explanations (shape got, shape expected, the fix)."""
    net = tiny_unet()
    rgb = np.zeros((32, 32, 3), np.float32)
    kw = dict(name=NAME, description="d", authors=AUTHORS)
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*takes 1 channel.*channels last"
                                         r".*image\[\.\.\., 0\]"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=rgb, **kw)
    with pytest.raises(ValueError, match=r"test_input\[0\] has shape \(32, 32, 3\).*"
                                         r"channels last"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=rgb[None], **kw)
    with pytest.raises(ValueError, match=r"4 channel\(s\) \(axis 0 of \(4, 32, 32\)\).*"
                                         r"takes 1.*stack\[:, None\]"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=np.zeros((4, 32, 32)), **kw)
    with pytest.raises(ValueError, match=r"For one image \(C, Y, X\) use image\[None\]"):
        export_bioimageio(net, tmp_path / "a.zip", test_input=np.zeros((1, 32, 32)), **kw)
    with pytest.raises(ValueError, match="numeric"):
        export_bioimageio(net, tmp_path / "a.zip",
                          test_input=np.full((1, 1, 32, 32), "a", dtype=object), **kw)
    assert not (tmp_path / "a.zip").exists()


def test_tolerance_is_inside_the_spec_bound_for_many_maxima():
    """The spec's check, as bioimageio.spec computes it (float32 maximum times 0.01)."""
    tops = np.random.default_rng(0).uniform(1e-5, 2.0, 5000).astype(np.float32)
    for top in tops:
        tol = _tolerances(np.array([0.0, top], np.float32))[0]["absolute_tolerance"]
        assert not tol > np.float32(top) * 0.01, top


# ------------------------------------------------------------------ bioimageio.core

CORE_MISSING = "bioimageio.core is not installed (pip install -e '.[zoo]')"


def core_or_skip():
    return pytest.importorskip("bioimageio.core", reason=CORE_MISSING)


@pytest.mark.parametrize("package", ["exported", "three_class"])
def test_bioimageio_core_test_model_passes(package, request, no_network):
    """What the zoo runs before accepting a model: each weight format reproduces the test
    output, and the network runs on other sizes and batch sizes. Offline."""
    core_or_skip()
    summary = run_core_tests(request.getfixturevalue(package)["out"].path)
    assert summary.status == "passed", summary.format()
    tested = {d.loc[1] for d in summary.details if len(getattr(d, "loc", ())) > 1}
    assert {"pytorch_state_dict", "torchscript"} <= tested
    assert no_network == []


def test_an_old_spec_under_a_new_pydantic_is_named(monkeypatch):
    """bioimageio.spec 0.5.12 (pinned by bioimageio.core 0.11) fails under pydantic 2.14
    with a message about 'index_key'; the export says what to install instead."""
    import dlbio_teach.zoo as zoo

    versions = {"bioimageio.spec": (0, 5, 12), "pydantic": (2, 14, 4)}
    monkeypatch.setattr(zoo, "_version", versions.__getitem__)
    zoo._check_spec_works.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"pydantic<2\.14.*dlbio-teach\[zoo\]"):
            zoo._spec_context()
        versions["pydantic"] = (2, 13, 5)
        zoo._spec_context()
    finally:
        zoo._check_spec_works.cache_clear()


def test_run_core_tests_says_how_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "bioimageio.core", None)    # as if not installed
    with pytest.raises(ImportError, match=r"dlbio-teach\[zoo\]"):
        run_core_tests(tmp_path / "none.zip")


def test_our_processing_matches_bioimageio_core(three_class, no_network):
    """load_bioimageio's own pre- and post-processing (scale_range, softmax; taught in
    chapter 5) gives what bioimageio.core gives on the same package and image."""
    core = core_or_skip()
    from bioimageio.core.digest_spec import create_sample_for_model

    from dlbio_teach.zoo import _load_checked

    descr = _load_checked(three_class["out"].path)
    ours = load_bioimageio(three_class["out"].path)
    x = np.random.default_rng(7).gamma(1.5, 300.0, (1, 1, 48, 64)).astype(np.float32)
    pipeline = core.create_prediction_pipeline(descr, weight_format="pytorch_state_dict",
                                               devices=["cpu"])
    sample = create_sample_for_model(descr, inputs=x)
    pipeline.apply_preprocessing(sample)
    core_input = np.asarray(sample.members["input"].data)
    np.testing.assert_allclose(core_input, _apply_ops(x, ours.preprocessing,
                                                      ours.input_axes), atol=1e-5)
    core_output = np.asarray(core.predict(model=pipeline, inputs=x).members["output"].data)
    ours_output = ours.predict(x)
    assert core_output.shape == ours_output.shape == (1, 3, 48, 64)
    np.testing.assert_allclose(core_output, ours_output, atol=1e-5)
    np.testing.assert_allclose(core_output.sum(axis=1), 1.0, atol=1e-5)
    assert no_network == []


# ------------------------------------------------------------------ volumes (3D U-Nets)

def volume_record(make_record, net):
    """A run record as train_segmentation writes it for volumes (its hyper-parameters are
    the configuration's to_dict()), with the voxel size added."""
    from dlbio_teach.segmentation import SegmentationConfig

    config = SegmentationConfig("distance", axes="ZYX", anisotropy=(2, 1, 1),
                                patch_size=(8, 32, 32), depth=net.depth, base_channels=4,
                                pool_z=net.config["pool_z"])
    return make_record(net, hyperparameters={**config.to_dict(), "loss": "mse",
                                             "voxel_size": (0.8, 0.4, 0.4),
                                             "voxel_unit": "micrometer"},
                       datasets=[])


@pytest.fixture(scope="module", params=[True, False], ids=["pool_z", "no_pool_z"])
def exported_3d(request, make_record, tiny_unet, tmp_path_factory):
    """A tiny 3D U-Net exported with a run record, Z halved (pool_z) or not; offline."""
    pool_z = request.param
    with network_blocked() as attempts:
        folder = tmp_path_factory.mktemp("zoo3d")
        net = tiny_unet(ndim=3, pool_z=pool_z)
        rec = volume_record(make_record, net)
        x = np.random.default_rng(3).gamma(2.0, 100.0, (1, 1, 8, 32, 32)).astype(np.float32)
        out = export_bioimageio(net, folder / "tiny3d.zip", test_input=x,
                                name="Tiny 3D test U-Net", description="A tiny 3D U-Net.",
                                authors=AUTHORS, record=rec, folder=folder / "unpacked",
                                intended_use="Tests only.", limitations="Untrained.")
    return {"net": net, "x": x, "out": out, "folder": folder, "attempts": attempts,
            "pool_z": pool_z}


def test_3d_export_declares_z_with_its_own_step(exported_3d):
    import yaml

    out, unpacked = exported_3d["out"], exported_3d["folder"] / "unpacked"
    assert exported_3d["attempts"] == [] and out.status == "valid-format", out.summary
    rdf = yaml.safe_load((unpacked / "rdf.yaml").read_text())
    assert "3d" in rdf["tags"] and "2d" not in rdf["tags"]
    inp, outp = rdf["inputs"][0], rdf["outputs"][0]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "channel", "z", "y",
                                                              "x"]
    steps = {a["id"]: a["size"] for a in inp["axes"] if a["type"] == "space"}
    # Z's step is what the pooling implies: 2**depth when Z is halved, else 1.
    z_step = 4 if exported_3d["pool_z"] else 1
    assert steps == {"z": {"min": z_step, "step": z_step}, "y": {"min": 4, "step": 4},
                     "x": {"min": 4, "step": 4}}
    assert [a["size"] for a in outp["axes"] if a["type"] == "space"] == [
        {"tensor_id": "input", "axis_id": a} for a in ("z", "y", "x")]
    assert "(N, C, Z, Y, X)" in inp["description"] and "(N, C, Z, Y, X)" in outp["description"]
    scale = [op for op in inp["preprocessing"] if op["id"] == "scale_range"][0]
    assert scale["kwargs"]["axes"] == ["channel", "z", "y", "x"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"] == \
        exported_3d["net"].config
    assert np.load(unpacked / "test_input.npy").shape == (1, 1, 8, 32, 32)
    assert np.load(unpacked / "test_output.npy").shape == (1, 1, 8, 32, 32)


def test_3d_export_is_reproduced_with_both_weight_formats(exported_3d, no_network):
    out, x, net = exported_3d["out"], exported_3d["x"], exported_3d["net"]
    assert set(out.diffs) == {"pytorch_state_dict", "torchscript"}
    assert out.max_abs_diff < 1e-5
    for weight_format in ("pytorch_state_dict", "torchscript"):
        assert reproduce_test_outputs(out.path, weight_format=weight_format) < 1e-5
    # The packaged pipeline is the course's: one percentile range per volume, the network.
    loaded = load_bioimageio(out.path)
    assert loaded.input_axes == ["batch", "channel", "z", "y", "x"]
    with torch.no_grad():
        expected = net(torch.from_numpy(normalize_percentile(x[0, 0])[None, None])).numpy()
    np.testing.assert_allclose(loaded.predict(x), expected, atol=1e-4)
    # The TorchScript runs on other sizes and batches (multiples of each axis' step).
    scripted = unpacked_torchscript(exported_3d["folder"] / "unpacked")
    other = torch.rand(2, 1, 12 if exported_3d["pool_z"] else 5, 24, 16)
    with torch.no_grad():
        np.testing.assert_allclose(scripted(other).numpy(), net(other).numpy(), atol=1e-5)
    assert no_network == []


def test_3d_package_files_and_model_card(exported_3d):
    import tifffile

    unpacked = exported_3d["folder"] / "unpacked"
    assert tifffile.imread(unpacked / "sample_input.tif").shape == (8, 32, 32)   # the planes
    assert tifffile.imread(unpacked / "sample_output.tif").shape == (8, 32, 32)
    assert (unpacked / "cover.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (unpacked / "README.md").read_text()
    assert "- **Axes:** ZYX" in readme
    assert "- **Voxel size (z, y, x):** 0.8 x 0.4 x 0.4 micrometer" in readme


def test_3d_bioimageio_core_test_model_passes(exported_3d, no_network):
    """bioimageio.core runs the 3D package with each weight format, and on other sizes
    (each axis in steps of its own) and batch sizes."""
    core_or_skip()
    summary = run_core_tests(exported_3d["out"].path)
    assert summary.status == "passed", summary.format()
    tested = {d.loc[1] for d in summary.details if len(getattr(d, "loc", ())) > 1}
    assert {"pytorch_state_dict", "torchscript"} <= tested
    assert no_network == []


def test_z_step_is_derived_from_the_network(tiny_unet):
    from dlbio_teach.zoo_checks import _default_step

    for depth in (1, 2, 3):
        step = 2 ** depth
        assert _default_step(UNet(depth=depth, ndim=3), None, 3) == (step, step, step)
        assert _default_step(UNet(depth=depth, ndim=3, pool_z=False), None, 3) == \
            (1, step, step)
    net = tiny_unet(depth=1, ndim=3, pool_z=False)
    assert _default_step(net, 2, 3) == (2, 2, 2)                # given: as given
    assert _default_step(net, (1, 2, 4), 3) == (1, 2, 4)
    assert _default_step(torch.nn.Conv3d(1, 1, 3), None, 3) == (1, 1, 1)
    # A network of images takes one step, the same for Y and X.
    with pytest.raises(ValueError, match="one positive integer for a network of images"):
        describe_tensors(tiny_unet(), np.ones((1, 1, 8, 8), np.float32), step=(1, 4, 4))
    # The derived steps are what describe_tensors and the package declare.
    x = np.random.default_rng(0).random((1, 1, 3, 8, 8), dtype=np.float32)
    t = describe_tensors(net, x, step=(1, 2, 2))
    assert t.steps == (1, 2, 2) and t.axes == ["batch", "channel", "z", "y", "x"]
    assert t.test_output.shape == (1, 1, 3, 8, 8)
    # A network that never halves Z runs on any number of planes: step 1 is right.
    with torch.no_grad():
        for planes in (1, 3, 5):
            assert net(torch.zeros(1, 1, planes, 8, 8)).shape[2] == planes


def test_3d_export_explains_sides_to_crop(tiny_unet, tmp_path):
    kw = dict(name=NAME, description="d", authors=AUTHORS)
    volume = np.random.default_rng(0).random((1, 1, 8, 32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match=r"6x32x30 voxels \(Z, Y, X\).*multiples of "
                                         r"\(4, 4, 4\).*test_input\[\.\.\., :4, :32, :28\]"):
        export_bioimageio(tiny_unet(ndim=3), tmp_path / "a.zip",
                          test_input=volume[..., :6, :, :30], **kw)
    with pytest.raises(ValueError, match=r"multiples of \(1, 4, 4\).*"
                                         r"test_input\[\.\.\., :7, :28, :32\]"):
        export_bioimageio(tiny_unet(ndim=3, pool_z=False), tmp_path / "a.zip",
                          test_input=volume[..., :7, :30, :], **kw)
    with pytest.raises(ValueError, match=r"Z needs at least 4.*larger volume"):
        export_bioimageio(tiny_unet(ndim=3), tmp_path / "a.zip", test_input=volume[:, :, :2],
                          **kw)
    with pytest.raises(ValueError, match=r"one per spatial axis \(z, y, x\)"):
        export_bioimageio(tiny_unet(ndim=3), tmp_path / "a.zip", test_input=volume,
                          step=(4, 4), **kw)
    assert not (tmp_path / "a.zip").exists()


def test_2d_and_3d_networks_explain_the_wrong_kind_of_input(tiny_unet, tmp_path):
    kw = dict(name=NAME, description="d", authors=AUTHORS)
    volume = np.random.default_rng(0).random((8, 32, 32), dtype=np.float32)
    net_3d = tiny_unet(ndim=3)
    with pytest.raises(ValueError, match=r"\(1, 1, 8, 32, 32\), 5 dimensions: a batch of "
                                         r"volumes.*takes 2D images.*UNet\(ndim=3\).*"
                                         r"test_input\[:, :, z\]"):
        export_bioimageio(tiny_unet(), tmp_path / "a.zip", test_input=volume[None, None],
                          **kw)
    with pytest.raises(ValueError, match=r"\(1, 8, 32, 32\), 4 dimension\(s\), but the "
                                         r"network takes volumes.*\(N, C, Z, Y, X\).*"
                                         r"volume\[None\].*volume\[None, None\].*"
                                         r"volumes\[:, None\]"):
        export_bioimageio(net_3d, tmp_path / "a.zip", test_input=volume[None], **kw)
    with pytest.raises(ValueError, match=r"For one volume \(Z, Y, X\) use "
                                         r"volume\[None, None\]"):
        export_bioimageio(net_3d, tmp_path / "a.zip", test_input=volume, **kw)
    with pytest.raises(ValueError, match=r"2D image \(Y, X\) needs a network of images"):
        export_bioimageio(net_3d, tmp_path / "a.zip", test_input=volume[0], **kw)
    with pytest.raises(ValueError, match=r"2 channel\(s\) \(axis 1 of \(1, 2, 8, 32, 32\)\)"
                                         r".*takes 1.*\(N, C, Z, Y, X\) with C = 1"):
        export_bioimageio(net_3d, tmp_path / "a.zip",
                          test_input=np.stack([volume, volume])[None], **kw)
    bad = volume[None, None].copy()
    bad[0, 0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        export_bioimageio(net_3d, tmp_path / "a.zip", test_input=bad, **kw)
    # describe_tensors, the step on its own, says the same.
    with pytest.raises(ValueError, match="volume\\[None, None\\]"):
        describe_tensors(net_3d, volume, step=(4, 4, 4))
    assert not (tmp_path / "a.zip").exists()
