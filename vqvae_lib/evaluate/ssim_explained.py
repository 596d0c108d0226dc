"""SSIM taken apart: its luminance, contrast and structure maps (Wang, Bovik, Sheikh and
Simoncelli 2004, "Image quality assessment: from error visibility to structural similarity"),
and the reference's data-range mistake (scoring [-1, 1] images with ``data_range=1``)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from .. import metrics as M

__all__ = ["range_mistake", "ssim_components"]


def range_mistake(originals: torch.Tensor, recons: torch.Tensor,
                  window: str = "gaussian") -> dict[str, np.ndarray]:
    """The same reconstructions scored three ways (per-image SSIM, each (N,)):

    * ``correct``      -- [0, 1] images, ``data_range=1`` (what we report);
    * ``pm1_range2``   -- [-1, 1] images, ``data_range=2``: the right range, but SSIM is *not*
      shift-invariant (the luminance term uses the raw means), so it still differs;
    * ``pm1_range1``   -- [-1, 1] images, ``data_range=1``: the reference's mistake. C1 and C2
      are 4x too small for the data, and the black background now sits at -1 instead of 0.
    """
    x2, y2 = originals * 2 - 1, recons * 2 - 1
    return {
        "correct": M.ssim(originals, recons, 1.0, window, "none").double().numpy(),
        "pm1_range2": M.ssim(x2, y2, 2.0, window, "none").double().numpy(),
        "pm1_range1": M.ssim(x2, y2, 1.0, window, "none").double().numpy(),
    }


def ssim_components(x: np.ndarray, y: np.ndarray, data_range: float = 1.0,
                    sigma: float = M.GAUSSIAN_SIGMA) -> dict[str, np.ndarray]:
    """Luminance, contrast and structure maps of SSIM for one pair of (H, W) images.

    Wang et al. (2004), eqs. 6, 9, 10 with C3 = C2 / 2, so that l * c * s is exactly the SSIM
    map (eq. 13)::

        l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)          -- are the local means alike?
        c = (2 s_x s_y + C2) / (s_x^2 + s_y^2 + C2)              -- are the local contrasts alike?
        s = (s_xy + C3) / (s_x s_y + C3)                          -- do the patterns correlate?

    Local statistics use the same Gaussian window (sigma 1.5, truncated at 3.5 sigma, mirrored
    borders) as ``metrics.ssim_map``. Returns maps ``l, c, s, ssim`` of shape (H, W).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def blur(a):
        return gaussian_filter(a, sigma=sigma, truncate=M.GAUSSIAN_TRUNCATE, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    var_x = np.maximum(blur(x * x) - mu_x**2, 0)
    var_y = np.maximum(blur(y * y) - mu_y**2, 0)
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (M.K1 * data_range) ** 2, (M.K2 * data_range) ** 2
    c3 = c2 / 2
    sx, sy = np.sqrt(var_x), np.sqrt(var_y)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    con = (2 * sx * sy + c2) / (var_x + var_y + c2)
    struct = (cov + c3) / (sx * sy + c3)
    return {"luminance": lum, "contrast": con, "structure": struct, "ssim": lum * con * struct}
