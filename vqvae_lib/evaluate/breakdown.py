"""Where the error sits: by tissue class of the segmentation masks, and how much of each slice is
head (slices at the top of the head show little of it)."""

from __future__ import annotations

import numpy as np
import torch

from .. import metrics as M
from ..common import TISSUE_NAMES

__all__ = ["per_tissue_errors", "foreground_fraction"]


@torch.no_grad()
def per_tissue_errors(originals: torch.Tensor, recons: torch.Tensor,
                      masks: torch.Tensor) -> dict[str, dict[str, float]]:
    """Error inside each tissue class of the segmentation masks (0..3, see ``common.TISSUE_NAMES``).

    For each class: pixel share, mean absolute error, RMSE, and the mean of the full-size
    Gaussian SSIM map over that class's pixels ("where do the bad windows sit?").
    """
    err = (recons - originals)[:, 0].double()                               # (N, H, W)
    smap = torch.cat([M.ssim_map(originals[i:i + 256], recons[i:i + 256])[:, 0]
                      for i in range(0, len(originals), 256)]).double()     # (N, H, W)
    masks = masks.long()
    out = {}
    for label, name in enumerate(TISSUE_NAMES):
        sel = masks == label
        n = int(sel.sum())
        if n == 0:
            continue
        e = err[sel]
        out[name] = {"pixel_share": n / masks.numel(), "mae": float(e.abs().mean()),
                     "rmse": float(e.pow(2).mean().sqrt()), "ssim": float(smap[sel].mean())}
    return out


def foreground_fraction(slices) -> np.ndarray:
    """(N,) share of each slice that is head: non-background mask pixels, or pixels above
    5% grey where there are no masks. Slices at the top of the head show little of it."""
    if slices.masks is not None:
        return (np.asarray(slices.masks) > 0).mean(axis=(1, 2))
    return (np.asarray(slices.images) > 12).mean(axis=(1, 2))
