"""Finite scalar quantisation (FSQ): a fixed grid instead of a learned codebook.

Mentzer, Minnen, Agustsson and Tschannen, "Finite Scalar Quantization: VQ-VAE Made Simple",
ICLR 2024, arXiv:2309.15505. Project the encoder output to ``d`` dimensions (a 1x1
convolution), squash each dimension into a bounded interval with ``tanh``, and round
dimension ``i`` to one of ``L_i`` evenly spaced levels. The codes are the points of a
``L_1 x ... x L_d`` grid: an *implicit* codebook of ``prod(L_i)`` entries that nothing has to
learn. A 1x1 convolution projects the grid point back to the decoder's ``D`` channels.

What disappears: codebook loss, commitment loss, EMA statistics, k-means initialisation and
dead-code restarts. There is no codebook to collapse; the encoder learns to spread its outputs
over the grid because rounding is the only bottleneck. Rounding has no gradient, so the
straight-through estimator passes it as the identity (``round_ste``).

Bounding (paper, appendix A.1): ``f(z) = tanh(z + s) * h - o`` with ``h = (L - 1)(1 + eps) / 2``,
``o = 0.5`` for even ``L`` (else 0) and ``s = atanh(o / h)``. Rounding ``f(z)`` gives the ``L``
integers ``-floor(L/2) .. ceil(L/2) - 1``; dividing by ``floor(L/2)`` scales them into [-1, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .quantizers import QuantizerOutput

__all__ = ["FSQ", "PAPER_LEVELS", "fsq_levels_for", "round_ste"]

# Levels the paper recommends per target codebook size (Mentzer et al. 2023, Table 1).
# Their products are close to, not exactly, the powers of two (e.g. 8*5*5*5 = 1000 ~ 2^10).
PAPER_LEVELS: dict[int, tuple[int, ...]] = {
    2 ** 8: (8, 6, 5),
    2 ** 10: (8, 5, 5, 5),
    2 ** 12: (7, 5, 5, 5, 5),
    2 ** 14: (8, 8, 8, 6, 5),
    2 ** 16: (8, 8, 8, 5, 5, 5),
}


def fsq_levels_for(codebook_size: int) -> tuple[int, ...]:
    """Levels whose product is exactly ``codebook_size``, for comparisons at an equal code count.

    A size that is the product of one of the paper's level sets (240, 1000, 4375, 15360, 64000)
    gets that set. A power of two ``2^n`` is split into ``ceil(n / 3)`` dimensions of 8, 4 or 2
    levels, as even as possible (512 -> (8, 8, 8); 1024 -> (8, 8, 4, 4); 32 -> (8, 4)), keeping
    the paper's advice of few levels (<= 8) per dimension.

    Args:
        codebook_size: the number of codes wanted.

    Returns:
        The levels per dimension, largest first.
    """
    for levels in PAPER_LEVELS.values():
        if math.prod(levels) == codebook_size:
            return levels
    n = int(round(math.log2(codebook_size))) if codebook_size > 1 else 0
    if codebook_size < 2 or 2 ** n != codebook_size:
        raise ValueError(
            f"No FSQ levels known for codebook_size={codebook_size}: set fsq_levels explicitly "
            f"(their product must equal codebook_size), or use a power of two or one of "
            f"{sorted(math.prod(v) for v in PAPER_LEVELS.values())}.")
    dims = math.ceil(n / 3)
    bits = [n // dims + (1 if i < n % dims else 0) for i in range(dims)]
    return tuple(2 ** b for b in bits)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in the forward pass, the identity in the backward pass (straight-through)."""
    return x + (x.round() - x).detach()


class FSQ(nn.Module):
    """Finite scalar quantiser with the :class:`QuantizerOutput` interface of the VQ quantisers.

    Args:
        levels: levels per grid dimension, e.g. ``(8, 5, 5, 5)``; ``prod(levels)`` codes.
        code_dim: channels ``D`` of the encoder output and of the decoder input.
        eps: keeps the even-level bound just above the outermost rounding boundary.
    """

    uses_ema = False

    def __init__(self, levels, code_dim: int, eps: float = 1e-3):
        super().__init__()
        self.levels = tuple(int(v) for v in levels)
        if not self.levels or min(self.levels) < 2:
            raise ValueError(f"FSQ levels must be integers >= 2, got {levels!r}")
        self.code_dim, self.eps = code_dim, eps
        self.codebook_size = math.prod(self.levels)
        d = len(self.levels)
        self.project_in = nn.Conv2d(code_dim, d, kernel_size=1)     # D -> d
        self.project_out = nn.Conv2d(d, code_dim, kernel_size=1)    # d -> D
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1]), 0)
        self.register_buffer("_levels", torch.tensor(self.levels), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)     # mixed-radix place values

    # -- the grid ------------------------------------------------------------------------------
    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash (..., d) values so that rounding yields exactly ``L_i`` integers per dimension."""
        L = self._levels.to(z.dtype)
        half = (L - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) real values -> (..., d) grid points scaled into [-1, 1] (straight-through)."""
        return round_ste(self.bound(z)) / (self._levels // 2).to(z.dtype)

    def codes_to_indices(self, zhat: torch.Tensor) -> torch.Tensor:
        """(..., d) grid points (as returned by :meth:`quantize`) -> (...) long indices."""
        half = self._levels // 2
        digits = (zhat * half + half).round().long()               # 0 .. L_i - 1
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(...) long indices -> (..., d) grid points in [-1, 1]; inverse of :meth:`codes_to_indices`."""
        digits = (indices.long()[..., None] // self._basis) % self._levels
        half = self._levels // 2
        return (digits - half).float() / half

    def implicit_codebook(self) -> torch.Tensor:
        """All ``prod(L)`` grid points, (K, d), in index order."""
        return self.indices_to_codes(torch.arange(self.codebook_size, device=self._basis.device))

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) vectors the decoder receives for each code: the grid, projected out."""
        grid = self.implicit_codebook()                             # (K, d)
        w, b = self.project_out.weight[:, :, 0, 0], self.project_out.bias
        return grid @ w.t() + b                                     # (K, D)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) long -> decoder inputs (B, D, h, w)."""
        grid = self.indices_to_codes(codes).permute(0, 3, 1, 2)     # (B, d, h, w)
        return self.project_out(grid.to(self.project_out.weight.dtype))

    def joint_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """One index per cell already: the identity."""
        return codes

    # -- the forward pass ------------------------------------------------------------------------
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        b, _, h, w = z_e.shape                                      # (B, D, h, w)
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            z = self.project_in(z_e.float()).permute(0, 2, 3, 1)    # (B, h, w, d)
            zhat = self.quantize(z)                                 # (B, h, w, d) on the grid
            codes = self.codes_to_indices(zhat.detach())            # (B, h, w)
            quantized = self.project_out(zhat.permute(0, 3, 1, 2))  # (B, D, h, w)
        counts = torch.bincount(codes.reshape(-1), minlength=self.codebook_size).float()
        probs = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        zero = z_e.new_zeros((), dtype=torch.float32)
        stats = {"perplexity": perplexity.detach(),
                 "used_fraction": (counts > 0).float().mean().detach(),
                 "dead_codes": zero.detach()}       # nothing is tracked or restarted
        return QuantizerOutput(quantized=quantized, codes=codes, loss=zero,
                               losses={"codebook": zero, "commitment": zero},
                               stats=stats)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, K={self.codebook_size}, D={self.code_dim}"
