"""What the discrete codes learn: usage, geometry, anatomy and appearance of a VQ-VAE codebook.

A VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning") replaces every
cell of the encoder's ``h x w`` output grid by the nearest of ``K`` learned vectors, so an image
becomes a small map of integers, its *code map*. This module answers four questions about those
integers, each with a plain function over tensors/arrays (no plotting here, see
``codebook_plots``):

1. **Usage** -- how often is each code chosen? ``usage_counts``, ``Usage.perplexity`` and
   ``dead_codes``. Perplexity ``2 ** H(code)`` is the "effective number of codes": K if all codes
   were used equally, 1 if one code did everything (codebook collapse).
2. **Geometry** -- where do the K vectors sit in R^D? ``pairwise_distances``, ``pca_2d``.
3. **Anatomy** -- does a code mean a tissue? (``codebook.tissue``)
4. **Appearance** -- what does a code look like? (``codebook.appearance``)

and gathers everything for the notebook's views in :class:`CodebookAnalysis`.

FSQ and residual VQ (``quantizer="fsq" | "rvq"``) are analysed the same way: codes are one
index per cell in ``[0, codebook_size)`` (residual VQ: the joint index of its stages, see
``model.rvq``), and ``model.quantizer.codebook`` lists the vector each index decodes from (the
projected FSQ grid; the sums of one vector per residual stage). What does *not* carry over:
an unused FSQ code is not "dead" (nothing learns it, nothing restarts it: it is a grid point the
encoder never reaches), and a residual VQ's joint codes are sums, so their geometry is a
lattice of its stages; :func:`stage_usage` gives the usage of each stage's own small codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..common import evenly_spaced
from ..metrics import entropy_bits
from ..model.inference import reconstruct
from .appearance import code_locations, code_patches, decode_constant_codes, swap_code, swap_effect
from .tissue import CodeTissue, code_tissue, mutual_information_bits, tissue_fractions

__all__ = ["usage_counts", "dead_codes", "Usage", "codebook_usage", "coverage_curve",
           "codebook_vectors", "pairwise_distances", "pca_2d", "CodebookAnalysis",
           "analyse_codebook", "analyse_slices", "example_codes", "suggest_swap", "stage_usage",
           # re-exported from metrics / tissue / appearance (one implementation each):
           "entropy_bits", "CodeTissue", "code_tissue", "mutual_information_bits",
           "tissue_fractions", "decode_constant_codes", "code_locations", "code_patches",
           "swap_code", "swap_effect"]


# ---------------------------------------------------------------------------------------------
# 1. Usage
# ---------------------------------------------------------------------------------------------
def usage_counts(codes, codebook_size: int) -> np.ndarray:
    """How many latent cells chose each code: (K,) int64. ``codes`` is any shape of ints."""
    flat = torch.as_tensor(codes).reshape(-1).long().cpu().numpy()
    if flat.size and (flat.min() < 0 or flat.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}); got {flat.min()}..{flat.max()}")
    return np.bincount(flat, minlength=codebook_size).astype(np.int64)


def dead_codes(counts) -> np.ndarray:
    """Indices of codes never chosen."""
    return np.flatnonzero(np.asarray(counts) == 0)


@dataclass
class Usage:
    counts: np.ndarray        # (K,) cells per code
    order: np.ndarray         # (K,) code ids, most used first
    perplexity: float         # effective number of codes
    used: int                 # codes chosen at least once
    dead: np.ndarray          # ids of codes never chosen

    @property
    def codebook_size(self) -> int:
        return len(self.counts)

    def summary(self) -> str:
        K = self.codebook_size
        return (f"K={K}: {self.used} codes used ({100 * self.used / K:.0f}%), "
                f"{len(self.dead)} dead, perplexity {self.perplexity:.1f} "
                f"(= {100 * self.perplexity / K:.0f}% of K)")


def codebook_usage(codes, codebook_size: int) -> Usage:
    """All usage statistics at once."""
    counts = usage_counts(codes, codebook_size)
    order = np.argsort(-counts, kind="stable")
    return Usage(counts=counts, order=order, perplexity=2.0 ** entropy_bits(counts),
                 used=int((counts > 0).sum()), dead=dead_codes(counts))


def coverage_curve(counts) -> np.ndarray:
    """Fraction of latent cells covered by the ``k`` most used codes, for k = 1..K."""
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    return np.cumsum(c) / max(c.sum(), 1.0)


# ---------------------------------------------------------------------------------------------
# 2. Geometry
# ---------------------------------------------------------------------------------------------
def codebook_vectors(model) -> torch.Tensor:
    """The (K, D) codebook as a detached float CPU tensor."""
    return model.quantizer.codebook.detach().float().cpu()


def pairwise_distances(codebook: torch.Tensor) -> np.ndarray:
    """Euclidean distances between all pairs of codes: (K, K), zeros on the diagonal."""
    cb = torch.as_tensor(codebook, dtype=torch.float64)
    return torch.cdist(cb, cb).numpy()


def pca_2d(codebook: torch.Tensor):
    """Project the (K, D) codebook on its two main axes.

    Returns ``(coords, explained)``: (K, 2) coordinates and the fraction of the codebook's
    variance along each axis (2,). PCA via the SVD of the centred matrix.
    """
    cb = torch.as_tensor(codebook, dtype=torch.float64)
    centred = cb - cb.mean(0, keepdim=True)                          # (K, D)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    coords = centred @ vh[:2].T                                      # (K, 2)
    var = s ** 2
    explained = (var[:2] / var.sum().clamp_min(1e-12)).numpy()
    if coords.shape[1] < 2:                                          # D == 1
        coords = torch.cat([coords, torch.zeros_like(coords)], 1)
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords.numpy(), explained


# ---------------------------------------------------------------------------------------------
# Everything at once, for the notebook's figures and widgets
# ---------------------------------------------------------------------------------------------
@dataclass
class CodebookAnalysis:
    """One model's codes on one set of slices, with every statistic the views need."""

    model: torch.nn.Module
    images: torch.Tensor          # (N, 1, H, W) in [0, 1]
    recons: torch.Tensor          # (N, 1, H, W) in [0, 1]
    codes: torch.Tensor           # (N, h, w) long
    masks: np.ndarray | None      # (N, H, W) labels 0..3, or None
    usage: Usage
    tissue: CodeTissue | None
    codebook: torch.Tensor        # (K, D)
    downsample: int
    slice_ids: np.ndarray | None = None   # positions of these slices in their split
    slice_names: list[str] | None = None  # e.g. "subject 012, slice 7"

    @property
    def codebook_size(self) -> int:
        return self.usage.codebook_size

    @property
    def latent_size(self) -> int:
        return self.codes.shape[-1]

    def title(self, index: int) -> str:
        """How figures name slice ``index``: its position here, and its subject and slice."""
        return f"#{index}" + (f" ({self.slice_names[index]})" if self.slice_names else "")

    def decoded(self, code: int) -> np.ndarray:
        """(H, W) decoding of a latent map filled with ``code`` (cached)."""
        cache = self.__dict__.setdefault("_decoded", {})
        if code not in cache:
            cache[code] = decode_constant_codes(self.model, [code], self.latent_size)[0, 0].numpy()
        return cache[code]


def analyse_codebook(model, images: torch.Tensor, masks=None, batch_size: int = 64,
                     device=None) -> CodebookAnalysis:
    """Encode and reconstruct ``images`` (N, 1, H, W) and compute usage and codes-vs-tissue."""
    recons, codes = reconstruct(model, images, batch_size, device)
    book = codebook_vectors(model)
    K = book.shape[0]
    downsample = images.shape[-1] // codes.shape[-1]
    masks = None if masks is None else np.asarray(masks)
    tissue = None if masks is None else code_tissue(codes, masks, K, downsample)
    return CodebookAnalysis(model=model, images=images.detach().float().cpu(), recons=recons,
                            codes=codes, masks=masks, usage=codebook_usage(codes, K),
                            tissue=tissue, codebook=book, downsample=downsample)


def analyse_slices(model, slices, max_slices: int = 0, batch_size: int = 64) -> CodebookAnalysis:
    """``analyse_codebook`` on up to ``max_slices`` slices of a ``data.SliceSet``, evenly spaced
    across the split so that every subject contributes (0 = all). ``.slice_ids`` holds the
    chosen positions in the split."""
    n = len(slices.images)
    ids = evenly_spaced(n, max_slices)
    sub = slices.subset(ids)
    A = analyse_codebook(model, sub.tensors(), sub.masks, batch_size)
    A.slice_ids = ids
    A.slice_names = [f"subject {s}, slice {z}" for s, z in zip(sub.subjects, sub.slice_index,
                                                                strict=True)]
    return A


def stage_usage(A: CodebookAnalysis) -> list[Usage] | None:
    """Usage of each residual-VQ stage's own codebook (None for a single-index quantizer).

    Args:
        A: an analysis of a model whose quantizer has ``split_codes`` (residual VQ).
    """
    q = A.model.quantizer
    if not hasattr(q, "split_codes"):
        return None
    stages = q.split_codes(A.codes)                                  # (N, S, h, w)
    return [codebook_usage(stages[:, s], q.stage_codes) for s in range(q.n_stages)]


def example_codes(A: CodebookAnalysis) -> list[int]:
    """Three codes worth a look: the most used, a median one and the rarest used one."""
    used = A.usage.order[:A.usage.used]
    return [int(used[0]), int(used[len(used) // 2]), int(used[-1])]


def suggest_swap(A: CodebookAnalysis, index: int, from_tissue: int = 3,
                 to_tissue: int = 1) -> tuple[int, int]:
    """A telling swap for slice ``index``: A = the code covering most ``from_tissue`` (white
    matter) pixels of the slice; B = among codes that are not rare (>= 10% of the mean usage), the
    one with the largest share of ``to_tissue`` (CSF). Without masks: the slice's most frequent
    code -> the most used other code."""
    ids, counts = np.unique(A.codes[index].numpy(), return_counts=True)
    if A.tissue is not None:
        dist = A.tissue.distribution
        a = int(ids[np.argmax(counts * dist[ids, from_tissue])])
        used = A.usage.order[:A.usage.used]
        common = used[A.usage.counts[used] >= 0.1 * A.usage.counts[used].mean()]
        common = common[common != a]
        if len(common):
            return a, int(common[np.argmax(dist[common, to_tissue])])
    a = int(ids[np.argmax(counts)])
    return a, int(next(c for c in A.usage.order if c != a))
