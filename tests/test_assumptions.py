"""dlbio_teach.assumptions: the noise's autocorrelation, Noise2Self's loss, pair shifts;
and the structured masking and striped noise they are used with."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from dlbio_teach.assumptions import noise_autocorrelation, pair_shifts, self_supervised_loss
from dlbio_teach.restoration import RestorationConfig, gaussian_poisson, n2v_mask_batch
from dlbio_teach.synthetic import add_poisson_gaussian_noise, add_row_noise, nuclei


def test_autocorrelation_tells_white_noise_from_stripes():
    flat = np.zeros((128, 128), np.float32)
    white = noise_autocorrelation(add_poisson_gaussian_noise(flat + 0.5, photons=20, seed=0))
    striped = noise_autocorrelation(add_row_noise(flat, strength=0.2, length=2.0, seed=0))
    assert white.shape == (9, 9) and white[4, 4] == pytest.approx(1.0)
    assert abs(white[4, 5]) < 0.15 and abs(white[5, 4]) < 0.15
    assert striped[4, 5] > 0.5 and striped[5, 4] < 0.1     # along X only
    assert noise_autocorrelation(flat + np.eye(128), size=2).shape == (5, 5)
    with pytest.raises(ValueError, match="size"):
        noise_autocorrelation(flat, size=0)


def test_row_noise_strength_and_direction():
    stripes = add_row_noise(np.zeros((64, 256)), strength=0.1, length=3.0, seed=1)
    assert stripes.std() == pytest.approx(0.1, rel=1e-3)
    along_x = np.corrcoef(stripes[:, :-1].ravel(), stripes[:, 1:].ravel())[0, 1]
    along_y = np.corrcoef(stripes[:-1].ravel(), stripes[1:].ravel())[0, 1]
    assert along_x > 0.9 and abs(along_y) < 0.05
    with pytest.raises(ValueError, match="strength"):
        add_row_noise(np.zeros((8, 8)), strength=-1.0)


def test_j_invariant_filter_ignores_the_centre_pixel():
    image = np.full((32, 32), 0.5, np.float32)
    spiked = image.copy()
    spiked[16, 16] = 5.0
    settings = dict(sigma=1.0, photons=10, read_noise=0.0)
    blind = gaussian_poisson(spiked, j_invariant=True, **settings)
    plain = gaussian_poisson(spiked, **settings)
    # The spike moves its neighbours in both filters, itself only in the plain one.
    assert blind[16, 16] == pytest.approx(gaussian_poisson(image, j_invariant=True,
                                                           **settings)[16, 16], abs=1e-6)
    assert plain[16, 16] > blind[16, 16] + 0.1
    assert blind[16, 17] > blind[10, 10]


def test_self_supervised_loss_picks_the_clean_choice():
    clean, _ = nuclei((128, 128), 15, seed=2)
    noisy = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=0)
    widths = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
    settings = dict(photons=10, read_noise=1.0)
    loss = [self_supervised_loss(noisy, gaussian_poisson(noisy, sigma=s, j_invariant=True,
                                                         **settings)) for s in widths]
    error = [np.mean((gaussian_poisson(noisy, sigma=s, j_invariant=True, **settings)
                      - clean) ** 2) for s in widths]
    assert abs(int(np.argmin(loss)) - int(np.argmin(error))) <= 1
    # Loss = error against the clean image + the noise variance (about, for one image).
    variance = np.mean((noisy - clean) ** 2)
    assert np.allclose(np.array(loss) - np.array(error), variance, rtol=0.15)
    with pytest.raises(ValueError, match="same shape"):
        self_supervised_loss(noisy, noisy[:10])


def test_pair_shifts_measure_subpixel_shifts_from_noisy_inputs():
    clean = np.stack([nuclei((128, 128), 20, seed=s)[0] for s in range(3)])
    shifts = np.array([[1.5, -2.0], [0.0, 2.7], [-2.3, 0.4]])
    targets = np.stack([ndi.shift(c, d, mode="reflect") for c, d in zip(clean, shifts)])
    noisy = add_poisson_gaussian_noise(clean, photons=10, read_noise=1.0, seed=0)
    measured = pair_shifts(noisy, targets)
    assert measured.shape == (3, 2)
    assert np.abs(measured + shifts).max() < 0.3       # the shift that moves target to input
    registered = pair_shifts(noisy, clean)
    assert np.abs(registered).max() < 0.3
    with pytest.raises(ValueError, match="same shape"):
        pair_shifts(noisy, targets[:2])


def test_structured_mask_hides_the_row_neighbours():
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32) + 1
    generator = torch.Generator().manual_seed(0)
    masked, mask = n2v_mask_batch(x, fraction=0.02, radius=2, struct=3, generator=generator)
    plain, plain_mask = n2v_mask_batch(x, fraction=0.02, radius=2,
                                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, plain_mask)                # the loss sees the same blind spots
    ys, xs = torch.nonzero(mask[0, 0], as_tuple=True)
    changed = masked[0, 0] != x[0, 0]
    for y, x0 in zip(ys.tolist(), xs.tolist()):
        for dx in (-3, -2, -1, 1, 2, 3):
            if 0 <= x0 + dx < 32 and mask[0, 0, y, x0 + dx] == 0:
                assert changed[y, x0 + dx]              # hidden too (a random pixel's value)
    # Pixels away from the rows of blind spots are untouched, as in plain masking.
    rows = set(ys.tolist())
    other = [r for r in range(32) if r not in rows]
    assert torch.equal(masked[0, 0, other], x[0, 0, other])
    assert changed.sum() > (plain[0, 0] != x[0, 0]).sum()
    with pytest.raises(ValueError, match="struct"):
        n2v_mask_batch(x, fraction=0.02, radius=2, struct=-1)


def test_structured_config_and_its_record():
    plain = RestorationConfig("n2v")
    structured = RestorationConfig("n2v", n2v_struct=5)
    assert "n2v_struct" not in plain.to_dict()          # earlier records stay comparable
    assert structured.to_dict()["n2v_struct"] == 5
    assert RestorationConfig(**structured.to_dict()) == structured
    with pytest.raises(ValueError, match="n2v_struct"):
        RestorationConfig("n2v", n2v_struct=-2)
