"""A two-level prior (``prior_kind="hierarchical"``): a small top grid draws the layout of the
slice, then the 32x32 grid is drawn given it -- the idea of VQ-VAE-2 (Razavi et al. 2019,
"Generating Diverse High-Fidelity Images with VQ-VAE-2").

Why: a gated PixelCNN on the 32x32 grid sees only a few cells back (``reach``). A brain's midline,
its ventricles and the ribbon of grey matter around the white matter are *global*: where the
left ventricle ends says where the right one must be. With 220 training steps on a CPU a
one-level prior learns texture, not layout. Two levels split the job:

1. **Top codes** (a fixed map, not learned end to end). Each ``factor x factor`` block of the
   bottom grid is summarised by the mean of its code *vectors* (the VQ-VAE's codebook), and that
   mean is replaced by the nearest of ``top_codes`` centroids found by k-means on the training
   grids. For 32x32 codes and ``factor=4`` this gives an 8x8 grid of, say, 64 "layout words"
   (background, skull, ventricle, white matter, ...). VQ-VAE-2 instead trains a second encoder;
   k-means on the first one's codes is cheaper and needs no second VQ-VAE.
2. **Top prior**: a gated PixelCNN over the 8x8 top grid. Its receptive field covers every
   earlier top cell, i.e. the whole slice above and to the left: global layout.
3. **Bottom prior**: a gated PixelCNN over the 32x32 grid whose every layer also receives the
   top grid (embedded, passed through two ordinary 3x3 convolutions, upsampled) as a *spatial*
   conditioning map (van den Oord et al. 2016, the ``h``-map). The top grid is fully known before
   the bottom one is drawn, so the bottom model may see all of it, "future" blocks included;
   among bottom codes it stays causal.

Likelihood: the top grid is a function of the bottom grid, so ``bits(top) + bits(bottom | top)``
is the length of a real two-part code for the bottom grid (send the top grid, then the bottom
grid given it). :meth:`HierarchicalPrior.nll_bits` reports that sum per bottom cell, comparable
with the one-level priors (it can only over-state, never under-state, the bottom grid's NLL).
Training minimises the mean bits per cell of each level, so the 64 top cells are not drowned out
by the 1024 bottom ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.quantizers import kmeans, nearest_codes
from .draw import CodePrior, nll_bits, start_at_unigram
from .model import GatedPixelCNN

__all__ = ["HierarchicalPrior", "code_vector_table", "decode_layout"]


@torch.no_grad()
def code_vector_table(vqvae) -> torch.Tensor:
    """The (K, D) vector the decoder receives for each code of a VQ-VAE (any quantizer).

    Args:
        vqvae: a trained VQ-VAE.
    """
    K = vqvae.quantizer.codebook_size
    index = torch.arange(K, device=next(vqvae.parameters()).device).view(1, 1, K)
    return vqvae.quantizer.lookup(index)[0, :, 0].T.float().cpu()  # (K, D)


class HierarchicalPrior(CodePrior):
    """Top-level layout prior plus a bottom prior conditioned on it; see the module docstring.

    Args:
        num_codes: K, codes of the VQ-VAE (bottom level).
        code_dim: D, length of a code vector.
        top_codes: centroids of the top level ("layout words").
        factor: each top cell summarises ``factor x factor`` bottom cells.
        channels: width of both PixelCNNs.
        n_layers: gated layers of each PixelCNN.
        n_classes: slice-position classes (0 = unconditional); both levels receive them.
        grid_size: (h, w) of the bottom grid; both must be divisible by ``factor``.
        seed: seed of the k-means that finds the top codes.
    """

    def __init__(self, num_codes: int, code_dim: int, top_codes: int = 64, factor: int = 4,
                 channels: int = 64, n_layers: int = 8, n_classes: int = 0,
                 grid_size: Sequence[int] = (32, 32), seed: int = 0):
        super().__init__()
        h, w = grid_size
        if h % factor or w % factor:
            raise ValueError(f"the code grid {h}x{w} is not divisible by the top factor {factor}")
        self.hparams = dict(num_codes=num_codes, code_dim=code_dim, top_codes=top_codes,
                            factor=factor, channels=channels, n_layers=n_layers,
                            n_classes=n_classes, grid_size=[h, w], seed=seed)
        self.num_codes, self.n_classes, self.factor, self.seed = num_codes, n_classes, factor, seed
        self.grid_size, self.top_size = (h, w), (h // factor, w // factor)
        self.register_buffer("code_vectors", torch.zeros(num_codes, code_dim))  # set by fit
        self.register_buffer("top_centroids", torch.zeros(top_codes, code_dim))  # set by prepare
        self.top = GatedPixelCNN(top_codes, channels, n_layers, n_classes=n_classes,
                                 grid_size=self.top_size)
        self.top_embed = nn.Embedding(top_codes, channels)
        self.top_context = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                                         nn.Conv2d(channels, channels, 3, padding=1))
        self.bottom = GatedPixelCNN(num_codes, channels, n_layers, n_classes=n_classes,
                                    grid_size=self.grid_size, map_channels=channels)

    # -- the top level: a fixed summary of the bottom grid ---------------------------------
    def block_means(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, h/f, w/f, D): the mean code vector of each block."""
        z = F.embedding(codes, self.code_vectors).permute(0, 3, 1, 2)  # (B, D, h, w)
        return F.avg_pool2d(z, self.factor).permute(0, 2, 3, 1)         # (B, h/f, w/f, D)

    def top_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) bottom codes -> (B, h/f, w/f) top codes (nearest centroid of block means).
        Always in float32, also under bf16 autocast: a top code must not depend on precision."""
        with torch.autocast(codes.device.type, enabled=False):
            m = self.block_means(codes)
            return nearest_codes(m.reshape(-1, m.shape[-1]), self.top_centroids).view(m.shape[:3])

    @torch.no_grad()
    def prepare(self, train_codes: torch.Tensor, batch: int = 256) -> None:
        """k-means the training grids' block means into the top codes, then start both levels
        at their unigram (the code vectors must be set first: :func:`code_vector_table`)."""
        if not self.code_vectors.abs().sum():
            raise RuntimeError("set prior.code_vectors (code_vector_table(vqvae)) before prepare()")
        dev = self.code_vectors.device
        means = torch.cat([self.block_means(train_codes[i:i + batch].to(dev)).flatten(0, 2)
                           for i in range(0, len(train_codes), batch)])  # (N * cells, D)
        g = torch.Generator().manual_seed(self.seed)
        self.top_centroids.copy_(kmeans(means, len(self.top_centroids), iters=20, generator=g))
        tops = torch.cat([self.top_codes(train_codes[i:i + batch].to(dev)).cpu()
                          for i in range(0, len(train_codes), batch)])
        start_at_unigram(self.top, tops)
        start_at_unigram(self.bottom, train_codes)

    def cond_map(self, top: torch.Tensor) -> torch.Tensor:
        """(B, h/f, w/f) top codes -> (B, C, h, w) conditioning map for the bottom prior."""
        e = self.top_embed(top).permute(0, 3, 1, 2)                        # (B, C, h/f, w/f)
        e = e + self.top_context(e)
        return F.interpolate(e, scale_factor=self.factor, mode="nearest")  # (B, C, h, w)

    def layout_vectors(self, top: torch.Tensor) -> torch.Tensor:
        """(B, h/f, w/f) top codes -> (B, D, h, w): every block filled with its centroid."""
        z = self.top_centroids[top].permute(0, 3, 1, 2)                    # (B, D, h/f, w/f)
        return F.interpolate(z, scale_factor=self.factor, mode="nearest")

    # -- likelihood --------------------------------------------------------------------------
    def level_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(top bits per top cell (B,), bottom bits per bottom cell given the top (B,))``."""
        top = self.top_codes(codes)
        top_bits = nll_bits(self.top(top, y), top)
        return top_bits, nll_bits(self.bottom(codes, y, self.cond_map(top)), codes)

    def nll_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Bits per bottom cell of the two-part code: (top bits + bottom bits) / (h w). (B,)"""
        top_bits, bottom_bits = self.level_bits(codes, y)
        return bottom_bits + top_bits / self.factor ** 2

    def training_loss(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean bits per cell of the top level plus the same of the bottom level."""
        top_bits, bottom_bits = self.level_bits(codes, y)
        return top_bits.mean() + bottom_bits.mean()

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Bottom logits (B, K, h, w) given the top grid of ``codes`` itself (teacher forcing)."""
        return self.bottom(codes, y, self.cond_map(self.top_codes(codes)))

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_levels(self, n: int, shape: tuple[int, int] | None = None,
                      temperature: float | Sequence[float] = 1.0, y: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, progress: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` top grids, then ``n`` bottom grids given them: ``(top, bottom)``."""
        self.check_shape(shape)
        top = self.top.sample(n, self.top_size, temperature, y, generator)
        was_training = self.training
        self.eval()
        cond = self.cond_map(top)
        self.train(was_training)
        bottom = self.bottom.sample(n, self.grid_size, temperature, y, generator, progress,
                                    cond_map=cond)
        return top, bottom

    def sample(self, n: int, shape: tuple[int, int] | None = None,
               temperature: float | Sequence[float] = 1.0, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Draw ``n`` bottom code grids (B, h, w), top level first; same API as the others."""
        return self.sample_levels(n, shape, temperature, y, generator, progress)[1]


@torch.no_grad()
def decode_layout(prior, vqvae, top: torch.Tensor) -> torch.Tensor:
    """Show what a top grid says: every block filled with its centroid's code vectors, decoded.
    (B, h/f, w/f) top codes -> (B, 1, H, W) images in [0, 1]. Works for any two-level prior with
    ``layout_vectors`` (hierarchical: blocky by construction; words: a blurred mean patch).

    Args:
        prior: the two-level prior whose top codes (or words) these are.
        vqvae: the VQ-VAE whose decoder draws them.
        top: top code grids, e.g. the first output of ``prior.sample_levels``.
    """
    device = next(vqvae.parameters()).device
    z = prior.layout_vectors(top.to(prior.code_vectors.device)).to(device)
    vqvae.eval()
    return vqvae.decode(z).float().cpu()  # decode() already returns [0, 1]
