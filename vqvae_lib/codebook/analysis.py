"""What the discrete codes learn: usage, geometry, anatomy and appearance of a VQ-VAE codebook.

A VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning") replaces every
cell of the encoder's ``h x w`` output grid by the nearest of ``K`` learned vectors, so an image
becomes a small map of integers, its *code map*. This module answers four questions about those
integers, each with a plain function over tensors/arrays (no plotting here, see
``codebook_plots``):

1. **Usage** -- how often is each code chosen? ``usage_counts``, ``perplexity`` and
   ``dead_codes``. Perplexity ``exp(H(code))`` is the "effective number of codes": K if all codes
   were used equally, 1 if one code did everything (codebook collapse).
2. **Geometry** -- where do the K vectors sit in R^D? ``pairwise_distances``, ``pca_2d``.
3. **Anatomy** -- does a code mean a tissue? Downsample the segmentation masks to the latent
   grid (``tissue_fractions``), cross-tabulate codes against tissues (``code_tissue``), and
   measure the mutual information I(code; tissue) in bits, bounded above by H(tissue).
4. **Appearance** -- what does a code look like? ``decode_constant_codes`` decodes a map filled
   with one code; ``code_patches`` cuts out the image patches where the code is used;
   ``swap_code`` replaces code A by code B in a map so the decoder shows the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..common import evenly_spaced
from ..model.inference import decode, reconstruct


# ---------------------------------------------------------------------------------------------
# 1. Usage
# ---------------------------------------------------------------------------------------------
def usage_counts(codes, codebook_size: int) -> np.ndarray:
    """How many latent cells chose each code: (K,) int64. ``codes`` is any shape of ints."""
    flat = torch.as_tensor(codes).reshape(-1).long().cpu().numpy()
    if flat.size and (flat.min() < 0 or flat.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}); got {flat.min()}..{flat.max()}")
    return np.bincount(flat, minlength=codebook_size).astype(np.int64)


def entropy_bits(counts) -> float:
    """Shannon entropy in bits of the distribution proportional to ``counts`` (zeros ignored)."""
    p = np.asarray(counts, dtype=np.float64).ravel()
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def perplexity(counts) -> float:
    """``2 ** H`` = the effective number of codes in use (1 .. number of used codes)."""
    return float(2.0 ** entropy_bits(counts))


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
    return Usage(counts=counts, order=order, perplexity=perplexity(counts),
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
# 3. Codes vs tissue
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 4. Appearance
# ---------------------------------------------------------------------------------------------
def decode_constant_codes(model, codes, latent_size: int, batch_size: int = 64) -> torch.Tensor:
    """Decode a latent map filled with one code, for each code in ``codes``: (n, 1, H, W)."""
    ids = torch.as_tensor(codes, dtype=torch.long).reshape(-1)
    maps = ids[:, None, None].expand(-1, latent_size, latent_size)          # (n, h, w)
    return decode(model, maps, batch_size)


def code_locations(codes, code: int) -> np.ndarray:
    """Where ``code`` occurs: (M, 3) rows of (slice, row, col) on the latent grid."""
    return np.argwhere(torch.as_tensor(codes).cpu().numpy() == code)


def code_patches(images, codes, code: int, downsample: int, patch: int | None = None,
                 max_patches: int = 16, seed: int = 0):
    """Image patches centred on the latent cells that chose ``code``.

    ``images`` (N, 1, H, W) or (N, H, W), ``codes`` (N, h, w). A patch of ``patch`` pixels
    (default 3 cells wide) shows the cell and some context. Returns ``(patches, locations)``:
    (M, patch, patch) float arrays (zero padded at the border) and their (slice, row, col).
    """
    img = torch.as_tensor(images).float().cpu().numpy()
    img = img[:, 0] if img.ndim == 4 else img                        # (N, H, W)
    patch = patch or 3 * downsample
    locs = code_locations(codes, code)
    if len(locs) > max_patches:
        pick = np.random.default_rng(seed).choice(len(locs), max_patches, replace=False)
        locs = locs[np.sort(pick)]
    pad = patch
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((len(locs), patch, patch), dtype=np.float32)
    for i, (n, r, c) in enumerate(locs):
        cy = pad + int((r + 0.5) * downsample)                       # cell centre in padded image
        cx = pad + int((c + 0.5) * downsample)
        y0, x0 = cy - patch // 2, cx - patch // 2
        out[i] = padded[n, y0:y0 + patch, x0:x0 + patch]
    return out, locs


def swap_code(code_map, code_a: int, code_b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace ``code_a`` by ``code_b`` in a (h, w) or (B, h, w) map: ``(new_map, changed)``."""
    m = torch.as_tensor(code_map).long()
    changed = m == code_a
    return torch.where(changed, torch.full_like(m, code_b), m), changed


@torch.no_grad()
def swap_effect(model, code_map, code_a: int, code_b: int):
    """Decode a (h, w) map before and after swapping A -> B.

    Returns ``(before, after, changed)``: two (H, W) images in [0, 1] and the (h, w) bool map
    of swapped cells. The decoder's receptive field spreads each change over nearby pixels.
    """
    model.eval()
    device = next(model.parameters()).device
    m = torch.as_tensor(code_map).long()
    new, changed = swap_code(m, code_a, code_b)
    both = torch.stack([m, new]).to(device)                          # (2, h, w)
    imgs = model.decode_codes(both).clamp(0, 1).float().cpu()[:, 0]  # (2, H, W)
    return imgs[0].numpy(), imgs[1].numpy(), changed.numpy()


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
