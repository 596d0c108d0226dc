"""A check on the *outline* of a generated head, and redrawing the samples that fail it.

Why: a prior that draws a slice piece by piece sometimes puts a background piece inside the head
or a head piece outside it. The decoded slice then has a black hole, a straight cut or a bulge at
its edge -- a broken head that no real slice looks like (notebook 06 showed 2-4 of every 16).
Such a slice is easy to recognise from its outline alone: a real head is nearly convex, so the
**solidity** of its mask (area / area of its convex hull; 1 for a convex shape) is high, and a
hole, a cut or a bulge lowers it.

The check learns its threshold from the training split only: the solidity of the VQ-VAE's own
reconstructions of training grids (the decoder's idea of a real head, drawn by the same decoder
as the samples), at a low quantile (default the 1st percentile). A sample below it is
**redrawn** -- rejection sampling with a fixed acceptance test, as in discriminator rejection
sampling (Azadi et al. 2019) with a hand-made discriminator. It changes which samples you see,
not the prior: the prior's likelihood (NLL) is untouched, and notebook 06 reports how many first
draws failed. The test sees only the outline, so it cannot make the texture inside look real.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.measure import label, regionprops

from .generation import HEAD_THRESHOLD

__all__ = ["head_solidity", "fit_head_check", "passes_head_check", "redraw_failures"]


def head_solidity(images: torch.Tensor, level: float = HEAD_THRESHOLD) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W) slices in [0, 1] -> (N,) solidity of each head's outline.

    The head is the largest connected region of the pixels above ``level`` after a one-pixel
    binary opening (which removes specks of noise); its solidity is its area over the area of
    its convex hull. A slice with no head gets 0.

    Args:
        images: slices in [0, 1].
        level: intensity above which a pixel belongs to the head (the same threshold as the
            in-head intensity histogram of :mod:`vqvae_lib.prior.generation`).
    """
    x = torch.as_tensor(images).detach().float().cpu().numpy()
    x = x[:, 0] if x.ndim == 4 else x
    out = np.zeros(len(x))
    for i, im in enumerate(x):
        regions = regionprops(label(ndi.binary_opening(im > level)))
        if regions:
            out[i] = max(regions, key=lambda r: r.area).solidity
    return out


def fit_head_check(images: torch.Tensor, quantile: float = 0.01, level: float = HEAD_THRESHOLD
                   ) -> dict:
    """The check's threshold from real heads: the ``quantile`` of their solidity.

    Args:
        images: (N, 1, H, W) reconstructions of training slices (decoded training grids).
        quantile: share of these real heads that would fail the check (0.01: one in a hundred).
        level: head threshold (see :func:`head_solidity`).

    Returns:
        ``{"min_solidity", "quantile", "level", "n"}`` (a plain dict, stored in the prior's
        checkpoint).
    """
    if not 0 <= quantile < 1:
        raise ValueError(f"quantile={quantile} must be in [0, 1)")
    if len(images) == 0:
        raise ValueError("fit_head_check needs at least one real slice")
    s = head_solidity(images, level)
    return {"min_solidity": float(np.quantile(s, quantile)), "quantile": quantile,
            "level": level, "n": len(s)}


def passes_head_check(images: torch.Tensor, check: dict) -> np.ndarray:
    """(N,) bool: does each slice's head outline pass ``check`` (from :func:`fit_head_check`)?

    Args:
        images: (N, 1, H, W) slices in [0, 1].
        check: ``{"min_solidity", "level", ...}``.
    """
    return head_solidity(images, check["level"]) >= check["min_solidity"]


def redraw_failures(draw: Callable[[torch.Tensor], dict], n: int, passes: Callable, rounds: int
                    ) -> tuple[dict, dict]:
    """Draw ``n`` samples, then redraw the ones that fail ``passes``, up to ``rounds`` times.

    Args:
        draw: ``draw(index)`` -> ``{"images": (len(index), 1, H, W), "codes": ...}`` new samples
            for the sample slots in ``index`` (a 1-D long tensor), e.g. with their labels and
            temperatures.
        n: number of samples.
        passes: ``passes(images)`` -> (len(images),) bool array.
        rounds: redraws at most; a slot still failing after them keeps its last draw.

    Returns:
        ``(samples, report)``: the samples (every tensor of ``draw`` filled slot by slot) and
        ``{"first_failed": share of first draws that failed, "redrawn": redraws in all,
        "still_failing": slots that failed every round}``.
    """
    out = draw(torch.arange(n))
    todo = torch.from_numpy(~passes(out["images"])).nonzero()[:, 0]
    report = {"first_failed": len(todo) / max(n, 1), "redrawn": 0, "still_failing": 0}
    for _ in range(rounds):
        if not len(todo):
            break
        new = draw(todo)
        report["redrawn"] += len(todo)
        for key, value in new.items():
            out[key][todo] = value
        todo = todo[torch.from_numpy(~passes(new["images"]))]
    report["still_failing"] = len(todo)
    return out, report
