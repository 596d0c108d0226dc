"""Per-image scores of reconstructions and how to summarise them: SSIM in both conventions
(Wang et al. 2004; scikit-image's 7x7 window), PSNR, MSE; mean, spread, percentiles, and a
bootstrap of the mean of 32 images (Efron 1979, "Bootstrap methods: another look at the
jackknife")."""

from __future__ import annotations

import numpy as np
import torch

from .. import metrics as M

__all__ = ["score_images", "summary_stats", "bootstrap_mean_interval"]


@torch.no_grad()
def score_images(originals: torch.Tensor, recons: torch.Tensor,
                 batch_size: int = 256) -> dict[str, np.ndarray]:
    """Per-image SSIM (gaussian, uniform), PSNR (dB) and MSE on [0, 1] data; each (N,).

    Args:
        originals: (N, 1, H, W) in [0, 1].
        recons: (N, 1, H, W) in [0, 1].
        batch_size: images per batched metric call.
    """
    out: dict[str, list] = {"ssim_gaussian": [], "ssim_uniform": [], "psnr": [], "mse": []}
    for i in range(0, len(originals), batch_size):
        x, y = originals[i:i + batch_size], recons[i:i + batch_size]
        out["ssim_gaussian"].append(M.ssim(x, y, data_range=1.0, window="gaussian", reduction="none"))
        out["ssim_uniform"].append(M.ssim(x, y, data_range=1.0, window="uniform", reduction="none"))
        out["psnr"].append(M.psnr(x, y, data_range=1.0, reduction="none"))
        out["mse"].append(M.mse(x, y, reduction="none"))
    return {k: torch.cat(v).double().numpy() for k, v in out.items()}


def summary_stats(values: np.ndarray) -> dict[str, float]:
    """mean / std / median / 5th percentile / min / max of per-image values.

    Args:
        values: (N,) per-image scores.
    """
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "p5": float(np.percentile(v, 5)), "min": float(v.min()), "max": float(v.max())}


def bootstrap_mean_interval(values: np.ndarray, n: int = 32, draws: int = 2000,
                            seed: int = 0) -> list[float]:
    """Central 95% range of the mean of ``n`` images drawn at random (a bootstrap: with
    replacement, from the per-image scores we have).

    Shows how much a score computed on 32 test images (as in the reference) can move by luck.

    Args:
        values: (N,) per-image scores.
        n: images per drawn sample.
        draws: bootstrap samples.
        seed: random seed.
    """
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(draws, n))].mean(axis=1)           # (draws,)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
