"""dlbio_teach.runtime: profiles, device choice, seeding and the one-line course setup."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import dlbio_teach
from dlbio_teach.runtime import (
    PROFILES,
    Course,
    Profile,
    get_profile,
    pick_device,
    seed_everything,
    setup_course,
)


@pytest.mark.parametrize("name", ["smoke", "standard", "full"])
def test_get_profile_by_name(name):
    profile = get_profile(name)
    assert isinstance(profile, Profile)
    assert profile.name == name
    assert profile is PROFILES[name]


def test_get_profile_name_is_case_and_space_insensitive():
    assert get_profile("  Smoke ").name == "smoke"


def test_profiles_grow_from_smoke_to_full():
    smoke, standard, full = (PROFILES[n] for n in ("smoke", "standard", "full"))
    for field in ("epochs", "n_patches", "patch_size", "base_channels", "image_size"):
        assert getattr(smoke, field) < getattr(standard, field) < getattr(full, field), field
    # Every patch fits a U-Net of depth 3 and an image of the same profile.
    for p in PROFILES.values():
        assert p.patch_size % 8 == 0 and p.patch_size <= p.image_size
        assert set(p.to_dict()) >= {"name", "epochs", "n_patches", "patch_size"}


@pytest.mark.parametrize("name", ["smoke", "standard", "full"])
def test_get_profile_from_environment(monkeypatch, name):
    monkeypatch.setenv("DLBIO_PROFILE", name)
    assert get_profile().name == name
    # The environment decides even when a GPU is (or is not) there.
    assert get_profile(cuda_available=True).name == name
    assert get_profile(cuda_available=False).name == name


def test_explicit_name_beats_environment(monkeypatch):
    monkeypatch.setenv("DLBIO_PROFILE", "full")
    assert get_profile("smoke").name == "smoke"


@pytest.mark.parametrize("cuda", [True, False])
def test_default_profile_is_standard_on_every_device(monkeypatch, cuda):
    """`full` is unverified end to end: it is never the automatic choice, even on CUDA."""
    monkeypatch.delenv("DLBIO_PROFILE", raising=False)
    assert get_profile(cuda_available=cuda).name == "standard"


def test_default_profile_is_standard_when_cuda_is_available(monkeypatch):
    monkeypatch.delenv("DLBIO_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "standard"
    assert get_profile(cuda_available=True).name == "standard"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "standard"


def test_full_profile_only_on_request(monkeypatch):
    monkeypatch.delenv("DLBIO_PROFILE", raising=False)
    assert get_profile("full", cuda_available=False).name == "full"
    monkeypatch.setenv("DLBIO_PROFILE", "full")
    assert get_profile(cuda_available=True).name == "full"
    assert "unverified" in get_profile.__doc__ and "unverified" in Profile.__doc__


def test_unknown_profile_name():
    with pytest.raises(ValueError, match=r"Unknown profile 'huge'.*smoke.*DLBIO_PROFILE"):
        get_profile("huge")


def test_unknown_profile_from_environment(monkeypatch):
    monkeypatch.setenv("DLBIO_PROFILE", "tiny")
    with pytest.raises(ValueError, match="Unknown profile 'tiny'"):
        get_profile()


def test_pick_device_cpu(monkeypatch):
    monkeypatch.delenv("DLBIO_DEVICE", raising=False)
    device = pick_device("cpu")
    assert isinstance(device, torch.device) and device.type == "cpu"


def test_pick_device_from_environment(monkeypatch):
    monkeypatch.setenv("DLBIO_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cpu"


def test_pick_device_without_preference(monkeypatch):
    monkeypatch.delenv("DLBIO_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert pick_device().type == "cpu"


def test_pick_device_cuda_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA device was asked for.*DLBIO_DEVICE"):
        pick_device("cuda")


def test_seed_everything_repeats_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(5), torch.rand(5)

    seed_everything(3)
    a = draw()
    seed_everything(3)
    b = draw()
    seed_everything(4)
    c = draw()
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert a[0] != c[0] and not np.array_equal(a[1], c[1]) and not torch.equal(a[2], c[2])


def test_seed_everything_makes_torch_deterministic():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    net1 = torch.nn.Conv2d(1, 4, 3)
    seed_everything(0)
    net2 = torch.nn.Conv2d(1, 4, 3)
    assert torch.equal(net1.weight, net2.weight)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(seed)


def test_setup_course_prints_one_line(capsys, monkeypatch):
    monkeypatch.delenv("DLBIO_DEVICE", raising=False)
    course = setup_course(seed=5, profile="smoke", device="cpu")
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert "device: cpu" in line
    assert "profile: smoke" in line
    assert "torch" in line and torch.__version__ in line
    assert "seed: 5" in line and dlbio_teach.__version__ in line
    assert isinstance(course, Course)
    assert course.device.type == "cpu" and course.profile.name == "smoke"
    assert course.seed == 5


def test_setup_course_quiet_and_seeded(capsys):
    setup_course(seed=11, profile="standard", device="cpu", verbose=False)
    assert capsys.readouterr().out == ""
    a = torch.rand(3), np.random.rand(3)
    setup_course(seed=11, profile="standard", device="cpu", verbose=False)
    b = torch.rand(3), np.random.rand(3)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_setup_course_profile_follows_device(monkeypatch):
    monkeypatch.delenv("DLBIO_PROFILE", raising=False)
    assert setup_course(device="cpu", verbose=False).profile.name == "standard"
    monkeypatch.setenv("DLBIO_PROFILE", "smoke")
    assert setup_course(device="cpu", verbose=False).profile.name == "smoke"


def test_setup_course_is_exported():
    assert dlbio_teach.setup_course is setup_course


def test_course_seed_comes_from_the_argument_then_the_environment(monkeypatch):
    from dlbio_teach.runtime import course_seed, setup_course
    monkeypatch.delenv("DLBIO_SEED", raising=False)
    assert course_seed() == 0
    monkeypatch.setenv("DLBIO_SEED", "3")
    assert course_seed() == 3 and course_seed(5) == 5
    assert setup_course(profile="smoke", device="cpu", verbose=False).seed == 3
    monkeypatch.setenv("DLBIO_SEED", "three")
    with pytest.raises(ValueError, match="DLBIO_SEED='three' is not an integer"):
        course_seed()
