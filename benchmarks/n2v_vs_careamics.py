"""Our Noise2Void against CAREamics' Noise2Void: same image, same budget, same metric.

    python benchmarks/n2v_vs_careamics.py [--photons 10] [--epochs 20] [--seed 0]

Both train a depth-2 U-Net with 16 channels at full resolution on the same noisy image
(the ImageJ HeLa sample's second channel, 448 x 672, cropped above its scale bar, with
Poisson-Gaussian noise at a known photon count, so the clean image is the ground truth),
with the same patch size, batch size and number of optimisation steps, on the CPU. Each
uses its own N2V masking defaults (ours: 2 % of pixels, neighbour within radius 2;
CAREamics: 0.2 %, neighbourhood 11 x 11) and its own optimiser schedule. Both
predictions are scored with the course's definition: PSNR against the clean image after
affine rescaling, data range 1.

CAREamics pins an older PyTorch than the course's README, so run this in its own
environment, where both libraries share one PyTorch (the timing comparison needs that):

    python -m venv .venv-bench && . .venv-bench/bin/activate
    pip install -e ".[bench]"
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def noisy_hela(photons: float, read_noise: float, seed: int):
    from dlbio_teach.data import load
    from dlbio_teach.preprocessing import normalize_percentile
    from dlbio_teach.synthetic import add_poisson_gaussian_noise

    clean = normalize_percentile(load("hela_cells")["image"][:448, :, 1], 0.1, 99.9, clip=True)
    noisy = add_poisson_gaussian_noise(clean, photons=photons, read_noise=read_noise, seed=seed)
    return clean, noisy


def ours(noisy, *, patch, batch, steps_per_epoch, epochs, channels, seed):
    from dlbio_teach.prediction import predict
    from dlbio_teach.restoration import RestorationConfig, train_restoration

    # Validation on 8 patches, CAREamics' default (n_val_patches), so that neither spends
    # more time scoring than the other.
    config = RestorationConfig("n2v", epochs=epochs, n_patches=steps_per_epoch * batch,
                               patch_size=patch, batch_size=batch, depth=2,
                               base_channels=channels, n_val_patches=8)
    start = time.perf_counter()
    model, _ = train_restoration(config, {"noisy": noisy[None]}, {"noisy": noisy[None]},
                                 device=torch.device("cpu"), seed=seed, progress=False)
    restored = predict(model, noisy)
    return restored, time.perf_counter() - start


def careamics_n2v(noisy, *, patch, batch, steps_per_epoch, epochs, channels, seed):
    from careamics import CAREamist
    from careamics.config.factories.n2v_factory import create_advanced_n2v_config

    # A CAREamics epoch is one pass over its own patches of the image (fewer than our
    # epoch's), so the budget is fixed in optimisation steps: Lightning's max_steps.
    config = create_advanced_n2v_config(
        experiment_name="benchmark", data_type="array", axes="YX",
        patch_size=[patch, patch], batch_size=batch, num_epochs=100_000,
        model_params={"depth": 2, "num_channels_init": channels},
        trainer_params={"accelerator": "cpu", "enable_model_summary": False,
                        "max_steps": steps_per_epoch * epochs},
        num_workers=0, seed=seed + 1, logger="none")   # CAREamics needs seed > 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        careamist = CAREamist(config, work_dir=work_dir, enable_progress_bar=False)
        careamist.train(train_data=noisy)
        steps = careamist.trainer.global_step
        prediction = careamist.predict(noisy)
    if steps != steps_per_epoch * epochs:
        raise RuntimeError(f"CAREamics took {steps} steps, not {steps_per_epoch * epochs}.")
    restored = np.asarray(prediction[0] if isinstance(prediction, tuple) else prediction)
    restored = np.squeeze(restored[0] if restored.dtype == object else restored)
    return restored.astype(np.float32), time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photons", type=float, default=10.0)
    parser.add_argument("--read-noise", type=float, default=1.0)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps-per-epoch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from dlbio_teach.metrics import restoration_scores

    torch.set_num_threads(os.cpu_count() or 1)
    clean, noisy = noisy_hela(args.photons, args.read_noise, args.seed)
    budget = dict(patch=args.patch, batch=args.batch, steps_per_epoch=args.steps_per_epoch,
                  epochs=args.epochs, channels=args.channels, seed=args.seed)
    rows = {"noisy input": (noisy, 0.0)}
    rows["dlbio_teach N2V"] = ours(noisy, **budget)
    rows["CAREamics N2V"] = careamics_n2v(noisy, **budget)

    import careamics
    print(f"image {noisy.shape}, {args.photons:g} photons, read noise {args.read_noise:g}; "
          f"patch {args.patch}, batch {args.batch}, {args.steps_per_epoch * args.epochs} "
          f"steps, depth 2, {args.channels} channels; torch {torch.__version__}, "
          f"careamics {careamics.__version__}, {os.cpu_count()} CPU cores")
    print("\n| method | PSNR (dB) | SSIM | wall time (s) |\n|---|---|---|---|")
    scores = {}
    for name, (restored, seconds) in rows.items():
        scores[name] = restoration_scores(clean, restored)
        print(f"| {name} | {scores[name]['psnr']:.2f} | {scores[name]['ssim']:.3f} | "
              f"{seconds:.0f} |")
    d_psnr = scores["dlbio_teach N2V"]["psnr"] - scores["CAREamics N2V"]["psnr"]
    ratio = rows["dlbio_teach N2V"][1] / rows["CAREamics N2V"][1]
    print(f"\nPSNR difference (ours - CAREamics): {d_psnr:+.2f} dB; "
          f"wall time ratio (ours / CAREamics): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
