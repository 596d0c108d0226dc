"""Codes vs anatomy: does a VQ-VAE code mean a tissue?

Downsample the segmentation masks to the latent grid (``tissue_fractions``), cross-tabulate codes
against tissues (``code_tissue``) and measure the mutual information I(code; tissue) in bits,
bounded above by H(tissue) (Cover & Thomas, "Elements of Information Theory", 2006, ch. 2).
The codes are those of any quantizer (VQ, FSQ, residual VQ's joint codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import entropy_bits

__all__ = ["tissue_fractions", "CodeTissue", "mutual_information_bits", "code_tissue"]


def tissue_fractions(masks, downsample: int, n_tissues: int = 4) -> np.ndarray:
    """Share of each tissue inside every latent cell.

    ``masks`` (N, H, W) labels 0..n_tissues-1 -> (N, h, w, n_tissues) fractions summing to 1,
    where a cell covers a ``downsample x downsample`` block of pixels.
    """
    m = torch.as_tensor(np.asarray(masks)).long()
    N, H, W = m.shape
    f = downsample
    if H % f or W % f:
        raise ValueError(f"mask size {H}x{W} is not a multiple of the downsampling factor {f}")
    onehot = torch.nn.functional.one_hot(m, n_tissues).double()       # (N, H, W, T)
    blocks = onehot.reshape(N, H // f, f, W // f, f, n_tissues)
    return blocks.mean(dim=(2, 4)).numpy()                           # (N, h, w, T)


@dataclass
class CodeTissue:
    table: np.ndarray          # (K, T) pixels (in cell units) of tissue t in cells coded k
    distribution: np.ndarray   # (K, T) rows sum to 1 for used codes, 0 for dead ones
    purity: np.ndarray         # (K,) share of the dominant tissue, nan for dead codes
    dominant: np.ndarray       # (K,) index of the dominant tissue, -1 for dead codes
    mean_purity: float         # usage-weighted purity = accuracy of "code -> its main tissue"
    mi_bits: float             # I(code; tissue)
    tissue_entropy_bits: float # H(tissue), the upper bound of the MI

    @property
    def baseline_purity(self) -> float:
        """Purity without looking at codes: always guess the most common tissue."""
        totals = self.table.sum(0)
        return float(totals.max() / totals.sum())

    def summary(self) -> str:
        return (f"I(code; tissue) = {self.mi_bits:.3f} bits of H(tissue) = "
                f"{self.tissue_entropy_bits:.3f} bits "
                f"({100 * self.mi_bits / max(self.tissue_entropy_bits, 1e-12):.0f}%); "
                f"usage-weighted purity {self.mean_purity:.3f} "
                f"(always guessing the most common tissue: {self.baseline_purity:.3f})")


def mutual_information_bits(table) -> float:
    """I(A; B) in bits from a joint count table (rows A, columns B)."""
    p = np.asarray(table, dtype=np.float64)
    p = p / p.sum()
    pa = p.sum(1, keepdims=True)
    pb = p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (pa @ pb)[nz])).sum())


def code_tissue(codes, masks, codebook_size: int, downsample: int,
                n_tissues: int = 4) -> CodeTissue:
    """Cross-tabulate codes against tissues.

    Pick a random pixel: its tissue is read from the mask, its code from the latent cell it falls
    in. ``table[k, t]`` counts such (code, tissue) pairs, so a cell half grey, half white matter
    adds 0.5 to each. The mutual information of that joint distribution says how many bits
    about tissue the code carries; purity says how often the code's main tissue is right.
    """
    frac = tissue_fractions(masks, downsample, n_tissues)            # (N, h, w, T)
    c = torch.as_tensor(codes).long().cpu().numpy().ravel()
    if frac.shape[:3] != torch.as_tensor(codes).shape:
        raise ValueError(f"codes {tuple(torch.as_tensor(codes).shape)} and masks downsampled "
                         f"to {frac.shape[:3]} do not line up")
    frac = frac.reshape(-1, n_tissues)
    table = np.stack([np.bincount(c, weights=frac[:, t], minlength=codebook_size)
                      for t in range(n_tissues)], axis=1)            # (K, T)
    per_code = table.sum(1, keepdims=True)
    used = per_code[:, 0] > 0
    distribution = np.divide(table, per_code, out=np.zeros_like(table), where=per_code > 0)
    purity = np.where(used, distribution.max(1), np.nan)
    dominant = np.where(used, distribution.argmax(1), -1)
    return CodeTissue(
        table=table, distribution=distribution, purity=purity, dominant=dominant,
        mean_purity=float(table.max(1).sum() / table.sum()),
        mi_bits=mutual_information_bits(table),
        tissue_entropy_bits=entropy_bits(table.sum(0)))
