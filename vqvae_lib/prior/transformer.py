"""A small decoder-only transformer over the raster sequence of codes (the ``transformer`` kind).

The gated PixelCNN sees a few cells back; a brain's midline and ventricles are *global*. A causal
transformer (Vaswani et al. 2017, in the GPT form of Radford et al. 2018; MONAI's generative
tutorials use one as the VQ-VAE prior) lets every cell attend to **every** earlier cell, at a cost
quadratic in the sequence length (1024 for 32x32 codes: fine on a CPU with fused attention).

The grid is read in raster order, ``c_1 .. c_T`` with ``T = h w``. The input at position t is the
embedding of ``c_{t-1}`` (a learned start vector at t = 1, which also carries the slice-position
class when the prior is conditioned) plus a learned position embedding, so the output at t depends
only on cells before t: the causal mask does the rest.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .draw import CodePrior

__all__ = ["CodeTransformer", "Block"]


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)); causal attention."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D). With ``cache`` (a list, filled on the first call) ``x`` holds
        only the newest positions and keys/values of earlier ones are reused (sampling)."""
        B, T, D = x.shape
        qkv = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)        # each (B, heads, T, D / heads)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        causal = cache is None or k.shape[2] == T   # a new position may see every cached one
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal and T > 1)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.ln2(x))


class CodeTransformer(CodePrior):
    """Causal transformer prior over ``(B, h, w)`` code grids with ``num_codes`` classes per cell.

    Args:
        num_codes: K, the codebook size.
        channels: the model width (embedding size).
        n_layers: transformer blocks.
        heads: attention heads per block.
        n_classes: slice-position classes for conditioning (0 = unconditional).
        grid_size: (h, w) of the code grids (the position embedding has h * w entries).
    """

    def __init__(self, num_codes: int, channels: int = 128, n_layers: int = 4, heads: int = 4,
                 n_classes: int = 0, grid_size: tuple[int, int] = (32, 32)):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.hparams = dict(num_codes=num_codes, channels=channels, n_layers=n_layers, heads=heads,
                            n_classes=n_classes, grid_size=list(grid_size))
        self.num_codes, self.n_classes = num_codes, n_classes
        self.grid_size = tuple(grid_size)
        T = self.grid_size[0] * self.grid_size[1]
        self.embed = nn.Embedding(num_codes, channels)
        self.start = nn.Embedding(max(n_classes, 1), channels)  # position 0's input, per class
        self.position = nn.Parameter(torch.randn(T, channels) * 0.02)
        self.blocks = nn.ModuleList(Block(channels, heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, num_codes)

    def output_layer(self) -> nn.Module:
        """The last layer (its bias is set to the code histogram before training)."""
        return self.head

    def _start(self, B: int, y, device) -> torch.Tensor:
        idx = torch.zeros(B, dtype=torch.long, device=device) if y is None or not self.n_classes \
            else torch.as_tensor(y, device=device).reshape(-1).expand(B)
        return self.start(idx)[:, None]  # (B, 1, C)

    def forward_embedded(self, e: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, h, w) from an embedded grid ``e`` (B, C, h, w) (receptive-field probes)."""
        B, C, h, w = e.shape
        seq = e.flatten(2).transpose(1, 2)                                  # (B, T, C)
        x = torch.cat([self._start(B, y, e.device), seq[:, :-1]], 1)        # shift right by one
        x = x + self.position[: h * w]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x)).transpose(1, 2).reshape(B, -1, h, w)  # (B, K, h, w)

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.check_shape(codes.shape[1:])
        return self.forward_embedded(self.embed(codes).permute(0, 3, 1, 2), y)

    def _sample_row(self, codes, i, y, draw, cache: list) -> None:
        """Fill row ``i`` of ``codes`` (n, h, w) in place, one cell at a time, each code drawn by
        ``draw`` (logits (n, K) -> codes (n,)). ``cache`` keeps the keys and values of earlier
        cells (a KV cache per block), so each step costs one position per block."""
        n, _, w = codes.shape
        if i == 0:
            cache[:] = [[] for _ in self.blocks]    # a new grid: an empty KV cache per block
        for j in range(w):
            t = i * w + j
            x = (self._start(n, y, codes.device) if t == 0            # (n, 1, C)
                 else self.embed(codes.flatten(1)[:, t - 1])[:, None])  # the previous code
            z = x + self.position[t]
            for block, block_cache in zip(self.blocks, cache, strict=True):
                z = block(z, block_cache)
            codes[:, i, j] = draw(self.head(self.ln(z))[:, -1])       # (n, K) -> (n,)
