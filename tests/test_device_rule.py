"""One rule for devices: a function that trains or predicts, called without ``device=``,
runs on the course's device, :func:`dlbio_teach.runtime.pick_device` (``DLBIO_DEVICE``
when it is set); loading a checkpoint or a zoo package puts the network there too.

No GPU is needed to check it: ``DLBIO_DEVICE=meta`` names a device every PyTorch has
(tensors with shapes and no values). A hook on the network, or a spy in place of the
training step, records the device the network and its input are on, and stops the call
there. With ``DLBIO_DEVICE=cpu`` the same calls run to the end and give, byte for byte,
what an explicit ``device="cpu"`` gives.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import dlbio_teach
from dlbio_teach import training
from dlbio_teach.chunked import open_volume, predict_chunked
from dlbio_teach.ensembles import combine_ensemble, mc_dropout_maps
from dlbio_teach.models import TinyCNN, UNet
from dlbio_teach.prediction import predict, predict_classes
from dlbio_teach.records import RunRecord, load_weights, rebuild_model, save_weights, state_sha256
from dlbio_teach.restoration import RestorationConfig, train_restoration
from dlbio_teach.segmentation import SegmentationConfig, predict_maps, segment, train_segmentation
from dlbio_teach.synthetic import nuclei
from dlbio_teach.training import fit

META = torch.device("meta")


class Stopped(Exception):
    """Raised by the spies once they have seen the device: the call goes no further."""


@pytest.fixture
def on_meta(monkeypatch):
    monkeypatch.setenv("DLBIO_DEVICE", "meta")


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setenv("DLBIO_DEVICE", "cpu")


def _param_device(model):
    return next(model.parameters()).device


def watch(model) -> list:
    """Hook ``model``: each forward pass appends (input device, weights device), then stops.

    A copy of the model (``copy.deepcopy``) keeps the hook.
    """
    seen = []

    def hook(module, args):
        seen.append((args[0].device, _param_device(module)))
        raise Stopped

    model.register_forward_pre_hook(hook)
    return seen


@pytest.fixture
def step_spy(monkeypatch) -> list:
    """The training step replaced: records (batch device, weights device), then stops."""
    seen = []

    def spy(model, batch, loss_fn, **kwargs):
        seen.append((batch[0].device, _param_device(model)))
        raise Stopped

    monkeypatch.setattr(training, "train_step", spy)
    return seen


def tiny_unet(seed: int = 0, **kwargs) -> UNet:
    torch.manual_seed(seed)
    return UNet(1, kwargs.pop("out", 1), depth=1, base_channels=4, **kwargs).eval()


@pytest.fixture(scope="module")
def nuclei_stack():
    pairs = [nuclei((48, 48), 5, seed=s) for s in range(3)]
    return (np.stack([p[0] for p in pairs]).astype(np.float32),
            np.stack([p[1] for p in pairs]))


SEG = dict(epochs=1, n_patches=8, patch_size=32, base_channels=4, batch_size=4,
           n_val_patches=4)


def _conv_data():
    x = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    return (x, x), (x, x)


# --- the helper that holds the rule ------------------------------------------------------

def test_resolve_device_is_the_course_device_unless_told(monkeypatch):
    from dlbio_teach.runtime import pick_device, resolve_device
    monkeypatch.setenv("DLBIO_DEVICE", "meta")
    assert resolve_device() == pick_device() == META
    assert resolve_device(None) == META
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_says_what_was_wrong(monkeypatch):
    from dlbio_teach.runtime import resolve_device
    with pytest.raises(ValueError, match=r"device='gpu'.*'cuda'.*leave device out"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA device was asked for"):
        resolve_device("cuda")


# --- training ----------------------------------------------------------------------------

def test_fit_without_device_trains_on_the_course_device(on_meta):
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    seen = watch(net)
    train, val = _conv_data()
    with pytest.raises(Stopped):
        fit(net, train, val, loss_fn=torch.nn.functional.mse_loss, epochs=1, progress=False)
    assert seen == [(META, META)]
    assert _param_device(net) == META        # fit moves the network and leaves it there


def test_train_segmentation_without_device(on_meta, step_spy, nuclei_stack):
    x, y = nuclei_stack
    with pytest.raises(Stopped):
        train_segmentation(SegmentationConfig("three_class", **SEG), x[:2], y[:2], x[2:],
                           y[2:], progress=False)
    assert step_spy == [(META, META)]


def test_train_restoration_without_device(on_meta, step_spy, nuclei_stack):
    x, _ = nuclei_stack
    config = RestorationConfig("n2v", epochs=1, n_patches=8, patch_size=32, base_channels=4,
                               batch_size=4)
    with pytest.raises(Stopped):
        train_restoration(config, {"noisy": x[:2]}, {"noisy": x[2:]}, progress=False)
    assert step_spy == [(META, META)]


def test_fine_tuning_without_device(on_meta, nuclei_stack):
    x, y = nuclei_stack
    start = tiny_unet(out=3)
    seen = watch(start)
    with pytest.raises(Stopped):
        train_segmentation(SegmentationConfig("three_class", depth=1, **SEG), x[:2], y[:2],
                           x[2:], y[2:], model=start, progress=False)
    assert seen == [(META, META)]


def test_a_reused_run_is_loaded_onto_the_course_device(monkeypatch, tmp_path, nuclei_stack):
    x, y = nuclei_stack
    config = SegmentationConfig("distance", **SEG)
    monkeypatch.setenv("DLBIO_DEVICE", "cpu")
    trained, _ = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                                    run_dir=tmp_path)
    monkeypatch.setenv("DLBIO_DEVICE", "meta")
    reused, _ = train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                                   reuse=tmp_path)
    assert _param_device(reused) == META and _param_device(trained).type == "cpu"


# --- prediction --------------------------------------------------------------------------

PREDICTIONS = {
    "predict": lambda net, image: predict(net, image),
    "predict, tiled": lambda net, image: predict(net, image, tile_size=16),
    "predict_maps": lambda net, image: predict_maps(net, image, formulation="distance"),
    "segment": lambda net, image: segment(net, image, formulation="distance",
                                          thresholds={"seed_threshold": 0.5}),
    "ensemble": lambda net, image: combine_ensemble(
        [predict_maps(net, image, formulation="distance") for _ in range(2)]),
}


@pytest.mark.parametrize("name", PREDICTIONS)
def test_prediction_without_device_runs_on_the_course_device(on_meta, name):
    net = tiny_unet()
    before = state_sha256(net)
    seen = watch(net)
    with pytest.raises(Stopped):
        PREDICTIONS[name](net, np.zeros((32, 32), np.float32))
    assert seen == [(META, META)]
    # the learner's network stays where it was, with its weights: a copy ran on meta
    assert _param_device(net).type == "cpu" and state_sha256(net) == before


def test_monte_carlo_dropout_without_device_runs_on_the_course_device(on_meta):
    torch.manual_seed(0)
    net = UNet(1, 1, depth=1, base_channels=4, dropout=0.2)
    seen = watch(net)
    with pytest.raises(Stopped):
        mc_dropout_maps(net, np.zeros((32, 32), np.float32), formulation="distance",
                        n_samples=2)
    assert seen == [(META, META)] and _param_device(net).type == "cpu"


def test_predict_classes_without_device(on_meta):
    torch.manual_seed(0)
    cnn = TinyCNN(n_classes=2, channels=4)
    seen = watch(cnn)
    with pytest.raises(Stopped):
        predict_classes(cnn, np.zeros((3, 16, 16)))
    assert seen == [(META, META)]


def test_chunked_prediction_without_device(on_meta):
    net = tiny_unet(ndim=3)
    seen = watch(net)
    volume = open_volume(np.zeros((4, 32, 32), np.float32), chunks=(4, 16, 16))
    with pytest.raises(Stopped):
        predict_chunked(volume, lambda block: predict(net, block), halo=4).compute(
            scheduler="synchronous")
    assert seen and set(seen) == {(META, META)}


def test_an_explicit_device_wins(on_meta):
    net = tiny_unet()
    train, val = _conv_data()
    fit(net, train, val, loss_fn=torch.nn.functional.mse_loss, epochs=1, progress=False,
        device="cpu")
    assert _param_device(net).type == "cpu"
    assert predict(net, np.zeros((16, 16)), device="cpu").shape == (16, 16)


# --- loading -----------------------------------------------------------------------------

def test_load_weights_and_rebuild_model_without_device(on_meta, tmp_path):
    net = tiny_unet()
    path = save_weights(net, tmp_path / "w.pt")
    assert _param_device(load_weights(tiny_unet(1), path)) == META
    RunRecord.create(model=net, history={"train_loss": [1.0]}, seed=0, profile="smoke",
                     hyperparameters={}).save(tmp_path / "run", net)
    assert _param_device(rebuild_model(tmp_path / "run")) == META
    assert _param_device(rebuild_model(tmp_path / "run", device="cpu")).type == "cpu"


@pytest.fixture(scope="module")
def zoo_package(tmp_path_factory):
    from dlbio_teach.zoo_export import export_bioimageio
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    folder = tmp_path_factory.mktemp("zoo")
    return export_bioimageio(tiny_unet(), folder / "m.zip", test_input=x, name="Tiny U-Net",
                             description="A test.", authors=["A. Student"]).path, x


@pytest.mark.parametrize("weight_format", ["pytorch_state_dict", "torchscript"])
def test_a_zoo_package_loads_onto_the_course_device(monkeypatch, zoo_package, weight_format):
    from dlbio_teach.zoo_import import load_bioimageio
    path, _ = zoo_package
    monkeypatch.setenv("DLBIO_DEVICE", "meta")
    assert _param_device(load_bioimageio(path, weight_format=weight_format).model) == META
    loaded = load_bioimageio(path, weight_format=weight_format, device="cpu")
    assert _param_device(loaded.model).type == "cpu"


def test_a_loaded_zoo_package_predicts_on_the_course_device(monkeypatch, zoo_package):
    from dlbio_teach.zoo_import import load_bioimageio
    path, x = zoo_package
    loaded = load_bioimageio(path, device="cpu")
    seen = watch(loaded.model)
    monkeypatch.setenv("DLBIO_DEVICE", "meta")
    with pytest.raises(Stopped):
        loaded.predict(x)
    assert seen == [(META, META)] and _param_device(loaded.model).type == "cpu"


# --- on the CPU: the same results as before ----------------------------------------------

def test_on_the_cpu_a_training_without_device_is_the_explicit_cpu_one(on_cpu, nuclei_stack):
    x, y = nuclei_stack
    config = SegmentationConfig("three_class", **SEG)
    runs = [train_segmentation(config, x[:2], y[:2], x[2:], y[2:], progress=False,
                               seed=3, **device)[0] for device in ({}, {"device": "cpu"})]
    assert state_sha256(runs[0]) == state_sha256(runs[1])
    n2v = RestorationConfig("n2v", epochs=1, n_patches=8, patch_size=32, base_channels=4,
                            batch_size=4)
    runs = [train_restoration(n2v, {"noisy": x[:2]}, {"noisy": x[2:]}, progress=False,
                              **device)[0] for device in ({}, {"device": "cpu"})]
    assert state_sha256(runs[0]) == state_sha256(runs[1])
    image = x[2]
    default, explicit = (predict_maps(runs[0], image, formulation="distance", tile_size=32,
                                      **device) for device in ({}, {"device": "cpu"}))
    assert default.tobytes() == explicit.tobytes()


def test_on_the_cpu_loading_and_zoo_prediction_stay_as_they_were(on_cpu, zoo_package,
                                                                tmp_path):
    from dlbio_teach.zoo_import import load_bioimageio, reproduce_test_outputs
    path, x = zoo_package
    loaded = load_bioimageio(path)
    assert _param_device(loaded.model).type == "cpu"
    assert reproduce_test_outputs(loaded) == 0.0
    net = tiny_unet()
    other = load_weights(tiny_unet(1), save_weights(net, tmp_path / "w.pt"))
    assert state_sha256(other) == state_sha256(net) and _param_device(other).type == "cpu"


# --- every function that takes a device follows the rule ---------------------------------

def _public_callables():
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(dlbio_teach.__path__):
        if info.name == "runtime":            # where the rule is defined
            continue
        module = importlib.import_module(f"dlbio_teach.{info.name}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith("_"):
                        yield f"{info.name}.{name}.{attr}", member


def test_every_device_argument_defaults_to_the_course_device():
    found, wrong = [], []
    for name, function in _public_callables():
        parameter = inspect.signature(function).parameters.get("device")
        if parameter is None or parameter.default is inspect.Parameter.empty:
            continue                         # no device, or one the caller must give
        found.append(name)
        doc = inspect.getdoc(function) or ""
        if parameter.default is not None or "course's device" not in " ".join(doc.split()):
            wrong.append(f"{name} (default {parameter.default!r})")
    assert len(found) >= 10, found
    assert not wrong, ("these functions take a device but do not default to the course's "
                       f"device, or do not say so in their docstring: {wrong}")
