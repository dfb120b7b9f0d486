"""benchmarks/transfer_seeds.py: chapter 3's section 12 protocol, run for several seeds."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from dlbio_teach.models import UNet

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "transfer_seeds.py"
spec = importlib.util.spec_from_file_location("transfer_seeds", SCRIPT)
transfer_seeds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(transfer_seeds)


def _tiny(n_outputs, seed):
    torch.manual_seed(seed)
    return UNet(1, n_outputs, depth=1, base_channels=4).eval()


def test_blob_tiles_are_the_chapters_split(data_home):
    from dlbio_teach.data import load

    labels = load("stardist_nuclei")["labels"].astype(np.int32)
    tiles, truth, target, held = transfer_seeds.blob_tiles(labels)
    assert tiles.shape == truth.shape and len(tiles) == 9
    # The chapter's draw: default_rng(course seed 0).permutation(9), first 3 are the target.
    assert target.tolist() == [2, 4, 5] and held.tolist() == [0, 1, 3, 6, 7, 8]
    assert not set(target) & set(held)
    # rescaled to the nuclei's median object area (440 px): blobs 254 x 256 shrink by 0.892
    assert tiles.shape[1:] == (75, 76)


def test_held_out_scores_chooses_on_the_target_tiles_only():
    """Untrained tiny networks: the protocol runs, and what it reports is consistent."""
    rng = np.random.default_rng(0)
    truth = np.zeros((9, 32, 32), np.int32)
    for k in range(9):
        truth[k, 4:12, 4:12], truth[k, 18:28, 16:26] = 1, 2
    images = (truth > 0) + 0.05 * rng.standard_normal(truth.shape)
    outputs = {"three classes": 3, "distance": 1, "StarDist": 33}
    networks = {(training, name): _tiny(n, seed)
                for seed, training in enumerate(("one image", "with diversity"))
                for name, n in outputs.items()}
    result = transfer_seeds.held_out_scores(
        networks, (images[:3], truth[:3], np.array([0, 1, 2])),
        (images, truth, np.array([0, 1, 2]), np.array([3, 4, 5, 6, 7, 8])))
    rows = result["rows"]
    assert result["recommended"] in outputs and result["section9"] in outputs
    assert rows["recommended"] is rows[f"{result['recommended']}, with diversity"]
    assert rows["Otsu + watershed"].estimate == 1.0   # two clean squares: Otsu finds both
    assert all(0 <= r.low <= r.estimate <= r.high <= 1 for r in rows.values())
    assert len(rows) == 1 + 6 + 1 + 1
