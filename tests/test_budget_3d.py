"""benchmarks/budget_3d.py and the results chapter 6 draws from it."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "dlbio_teach" / "budget_3d_results.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("budget_3d",
                                                  REPO_ROOT / "benchmarks" / "budget_3d.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chapter_source() -> str:
    notebook = json.loads((REPO_ROOT / "notebooks" / "06_volumes.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")


def test_the_benchmark_trains_as_chapter_6_does():
    """The curve is chapter 6's only while its settings are the chapter's."""
    source = _chapter_source()
    benchmark = (REPO_ROOT / "benchmarks" / "budget_3d.py").read_text()
    assert '"standard": (8, (32, 64, 64), 8, 128)' in source
    assert "diverse_nuclei_volumes(10, (32, 64, 64), seed=0" in benchmark
    assert _benchmark().STEPS_PER_EPOCH == 128 // 4
    for setting in ("patch_size=(16, 32, 32)", "batch_size=4", "base_channels=8",
                    "n_val_patches=16", "min_distances=(2, 3, 4, 6, 8)"):
        assert setting in source and setting in benchmark, setting
    assert "anisotropy=(anisotropy[0],) * 2" in source
    assert "anisotropy=anisotropy_range or (anisotropy[0],) * 2" in benchmark


def test_held_out_blocks_are_the_chapters_six():
    blocks = _benchmark().held_out_blocks((31, 61, 37))
    assert len(blocks) == 6
    assert [(b[1].start, b[1].stop) for b in blocks[::2]] == [(0, 20), (20, 40), (40, 61)]
    assert [(b[2].start, b[2].stop) for b in blocks[:2]] == [(0, 18), (18, 37)]


def test_committed_results_hold_the_chapters_budget_for_both_networks():
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    runs = results["runs"]
    assert 0 <= results["baseline"]["held_out_f1"] <= 1
    assert set(_benchmark().NETWORKS) <= {r["network"] for r in runs}
    for network in _benchmark().NETWORKS:
        steps = sorted({r["steps"] for r in runs if r["network"] == network})
        assert 256 in steps and len(steps) >= 4, (network, steps)
    for r in runs:
        assert r["steps"] == r["epochs"] * results["steps_per_epoch"]
        assert 0 <= r["held_out_f1"] <= 1 and r["training_seconds"] > 0
        assert r["network"].split(",")[0] in _benchmark().NETWORKS
        if r["network"].startswith("StarDist 3D"):
            assert 0 <= r["own_probability_only"] <= 1 and 0 <= r["own_distances_only"] <= 1


def test_fine_tuning_rows_count_both_trainings_and_hold_the_chapters_run():
    """The fine-tuning curve starts after the chapter's 256 synthetic steps, and its point
    at 1024 steps of fine-tuning is the network chapter 6's committed run fine-tuned."""
    import re

    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    benchmark = _benchmark()
    pretrain = benchmark.PRETRAIN_EPOCHS * results["steps_per_epoch"]
    fine = [r for r in results["runs"] if "fine-tuned" in r["network"]]
    names = {"StarDist 3D" + suffix for suffix in benchmark.FINE_TUNED.values()}
    assert {r["network"] for r in fine} == names
    assert all(r["steps"] > pretrain and r["epochs"] > benchmark.PRETRAIN_EPOCHS for r in fine)
    notebook = json.loads((REPO_ROOT / "notebooks" / "06_volumes.ipynb").read_text())
    outputs = "".join("".join(o.get("text", "")) for c in notebook["cells"]
                      if c["cell_type"] == "code" for o in c.get("outputs", []))
    chapter = re.search(r"StarDist 3D fine-tuned for (\d+) steps .*held out (\d\.\d+) \[", outputs)
    steps, f1 = int(chapter.group(1)), chapter.group(2)
    row = [r for r in fine if r["network"] == "StarDist 3D" + benchmark.FINE_TUNED["synthetic"]
           and r["seed"] == 0 and r["steps"] == pretrain + steps]
    assert len(row) == 1 and f"{row[0]['held_out_f1']:.3f}" == f1


def test_fine_tuning_refuses_another_voxel_size():
    import pytest

    with pytest.raises(SystemExit):
        _benchmark().main(["--fine-tune", "--anisotropy-range", "1", "5"])


def test_annotated_only_refuses_fine_tuning_and_another_voxel_size():
    import pytest

    for extra in (["--fine-tune"], ["--anisotropy-range", "1", "5"]):
        with pytest.raises(SystemExit):
            _benchmark().main(["--annotated-only", *extra])


def test_annotated_only_trains_a_new_network_on_the_annotated_part_alone(monkeypatch):
    import numpy as np

    import dlbio_teach.segmentation as segmentation

    calls = []
    train = segmentation.train_segmentation

    def recorded(config, images, *rest, model=None, **options):
        calls.append((images.shape, model, config.lr))
        return train(config, images, *rest, model=model, **options)

    monkeypatch.setattr(segmentation, "train_segmentation", recorded)
    truth = np.zeros((16, 32, 16), np.int32)
    truth[4:10, 6:14, 4:10], truth[6:12, 18:26, 6:12] = 1, 2
    image = (truth > 0) + np.random.default_rng(0).normal(0, 0.1, truth.shape).astype(np.float32)
    stages = _benchmark()._fine_tuning_stages("distance", None, {"annotated": (image, truth)},
                                             (2.0, 1.0, 1.0), seed=0, epochs=[1],
                                             validate_on="annotated", pretrain=False)
    (epochs, steps, seconds, net), = list(stages)
    assert (epochs, steps) == (1, _benchmark().STEPS_PER_EPOCH) and seconds > 0
    assert calls == [((1, 16, 32, 16), None, 3e-3)], "one training, of a new network, on the part"
    assert net is not None
