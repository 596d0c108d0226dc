"""Three honest rates for a VQ-VAE's code grids, in bits per cell and bits per pixel.

1. **log2 K** -- every cell written with a fixed-length code: what the grid *spends*.
2. **training histogram** -- an entropy coder (e.g. arithmetic coding) whose code table is the
   training split's code histogram, smoothed by one count per code; its rate on new slices is the
   cross-entropy of their codes under that table (``metrics.cross_entropy_bits``), capped at
   ``log2 K`` (a coder falls back to fixed length when the table is worse). The entropy of the
   evaluated split's *own* histogram is lower still, but no coder knows that histogram in advance.
3. **prior NLL** -- the PixelCNN prior of notebook 06 predicts each code from the codes above and
   to the left; an arithmetic coder driven by it spends its negative log-likelihood, within a few
   bits per image (Witten, Neal and Cleary 1987, "Arithmetic coding for data compression";
   van den Oord et al. 2016 report PixelCNN NLLs as such rates). Its test NLL is read from
   ``<run_dir>/prior/metrics.json`` when that prior was fitted to this very checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..checkpoint import file_hash, load_checkpoint
from ..metrics import cross_entropy_bits

__all__ = ["RATE_LABELS", "histogram_bits", "prior_test_bits", "vqvae_rates"]

RATE_LABELS = {
    "log2 K": "fixed length, log2 K bits per cell",
    "training histogram": "entropy coder with the training split's code histogram",
    "prior NLL": "arithmetic coder driven by the PixelCNN prior (test NLL)",
}


def histogram_bits(train_codes: torch.Tensor, codes: torch.Tensor, K: int) -> float:
    """Bits per cell for ``codes`` with the training split's histogram as code table, capped at
    ``log2 K``.

    Args:
        train_codes: codes of the training split.
        codes: the codes to be stored (e.g. the test split's).
        K: the number of codes.
    """
    return min(cross_entropy_bits(train_codes, codes, K), math.log2(K))


def prior_test_bits(run_dir: str | os.PathLike, checkpoint: str | os.PathLike) -> tuple[float | None, str]:
    """The prior's test NLL in bits per cell, if ``<run_dir>/prior`` holds a prior fitted to
    ``checkpoint`` (the same file content: a VQ-VAE retrained at the same path does not count).

    Args:
        run_dir: the run folder (``runs/<preset>``).
        checkpoint: the VQ-VAE checkpoint whose codes are to be coded.

    Returns:
        ``(bits or None, a sentence saying where the number comes from or why it is missing)``.
    """
    best, metrics = Path(run_dir) / "prior" / "best.pt", Path(run_dir) / "prior" / "metrics.json"
    checkpoint = Path(checkpoint)
    if not (best.is_file() and metrics.is_file()):
        return None, (f"no prior in {best.parent} yet: run notebook 06 (or `python -m "
                      f"vqvae_lib.prior train --checkpoint {checkpoint}`), then rerun this cell")
    fitted_to = load_checkpoint(best).get("extra", {}).get("vqvae_sha1")
    if fitted_to != file_hash(checkpoint):
        return None, (f"the prior in {best.parent} was fitted to another VQ-VAE checkpoint (its "
                      f"content differs): run notebook 06 again, then rerun this cell")
    bits = float(json.loads(metrics.read_text())["test_bits"])
    return bits, f"test NLL of the prior in {best}"


def vqvae_rates(K: int, cells: int, pixels: int, train_codes: torch.Tensor | None,
                codes: torch.Tensor, prior_bits: float | None = None) -> dict[str, dict]:
    """The three rates of :data:`RATE_LABELS` for one split's codes.

    Args:
        K: codes per cell (``cfg.codebook_size``).
        cells: latent cells per image (``h * w``).
        pixels: pixels per image (``H * W``).
        train_codes: the training split's codes (None: the histogram rate is left out).
        codes: the evaluated split's codes.
        prior_bits: the prior's NLL on the evaluated split, bits per cell (None: left out).

    Returns:
        ``{name: {"bits_per_cell", "bpp", "label"}}`` for the rates that could be computed.
    """
    bits = {"log2 K": math.log2(K)}
    if train_codes is not None:
        bits["training histogram"] = histogram_bits(train_codes, codes, K)
    if prior_bits is not None:
        bits["prior NLL"] = float(prior_bits)
    return {name: {"bits_per_cell": b, "bpp": b * cells / pixels, "label": RATE_LABELS[name]}
            for name, b in bits.items()}
