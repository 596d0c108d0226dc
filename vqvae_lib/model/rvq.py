"""Residual vector quantisation (RVQ): several small codebooks, each coding what the last missed.

Zeghidour, Luebs, Omran, Skoglund and Tagliasacchi, "SoundStream: An End-to-End Neural Audio
Codec", IEEE/ACM TASLP 2021, arXiv:2107.03312 (Algorithm 1); the same scheme tokenises images
in Lee et al. 2022, "Autoregressive Image Generation using Residual Quantization" (RQ-VAE).

Stage 1 quantises the encoder output ``z``; stage 2 quantises the residual ``z - q_1``; stage
``s`` the residual ``z - q_1 - ... - q_{s-1}``. The decoder receives ``q_1 + ... + q_N``.
``N`` stages of ``K_s`` codes spend ``N log2 K_s`` bits per cell, like one codebook of
``K_s ** N`` codes, but only ``N * K_s`` vectors have to be stored and searched, and every
stage is a small codebook that is easy to keep alive. Each stage here is a
:class:`~vqvae_lib.model.quantizers.VectorQuantizerEMA` with its own k-means start and
dead-code restarts (as in SoundStream, which restarts codes unused for several batches).

**Quantizer dropout** (SoundStream, section 3.3): with probability ``dropout`` a training batch
uses only the first ``n ~ U{1..N}`` stages, so that the first stages learn to carry a usable
coarse code on their own (one model, several bit rates). Skipped stages report code 0.

Codes: the quantizer returns (B, N, h, w) stage codes. :meth:`ResidualVQ.joint_codes` folds them
into one index per cell, ``sum_s c_s K_s^(N-1-s)`` in ``[0, K_s^N)`` (stage 1 most significant),
which is what the VQ-VAE hands to evaluation, analysis and the prior: ``cfg.codebook_size`` is
that joint count, so every place that counts codes works unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .quantizers import QuantizerOutput, VectorQuantizerEMA

__all__ = ["ResidualVQ", "stage_size"]


def stage_size(codebook_size: int, n_stages: int) -> int:
    """Codes per stage so that ``n_stages`` stages hold exactly ``codebook_size`` joint codes.

    Args:
        codebook_size: joint codes per cell (the config's ``codebook_size``), e.g. 512.
        n_stages: number of residual stages, e.g. 3.

    Returns:
        ``K_s`` with ``K_s ** n_stages == codebook_size`` (e.g. 8).
    """
    if n_stages < 1:
        raise ValueError(f"rvq_stages must be >= 1, got {n_stages}")
    k = int(round(codebook_size ** (1.0 / n_stages)))
    if k < 2 or k ** n_stages != codebook_size:
        options = [n for n in range(1, 17) if round(codebook_size ** (1 / n)) ** n == codebook_size
                   and round(codebook_size ** (1 / n)) >= 2]
        raise ValueError(
            f"codebook_size={codebook_size} is not a {n_stages}-th power, so {n_stages} residual "
            f"stages cannot share it equally. Use rvq_stages in {options} or a codebook_size "
            f"such as {max(2, k) ** n_stages}.")
    return k


class ResidualVQ(nn.Module):
    """``n_stages`` EMA vector quantisers in a residual chain, with the :class:`QuantizerOutput`
    interface (codes (B, N, h, w)).

    Args:
        codebook_size: joint codes per cell, ``K_s ** n_stages``.
        n_stages: number of stages ``N``.
        code_dim: ``D``.
        beta: commitment weight of each stage.
        dropout: probability that a training batch uses a random prefix of the stages.
        **stage_kwargs: passed to every :class:`VectorQuantizerEMA` (decay, eps, kmeans_init,
            kmeans_iters, dead_code_steps, cosine).
    """

    uses_ema = True

    def __init__(self, codebook_size: int, n_stages: int, code_dim: int, beta: float = 0.25,
                 dropout: float = 0.0, **stage_kwargs):
        super().__init__()
        self.stage_codes = stage_size(codebook_size, n_stages)
        self.codebook_size, self.n_stages, self.code_dim = codebook_size, n_stages, code_dim
        self.dropout = dropout
        self.stages = nn.ModuleList(VectorQuantizerEMA(self.stage_codes, code_dim, beta, **stage_kwargs)
                                    for _ in range(n_stages))
        place = [self.stage_codes ** (n_stages - 1 - s) for s in range(n_stages)]
        self.register_buffer("_place", torch.tensor(place), persistent=False)

    # -- codes -----------------------------------------------------------------------------------
    def joint_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Stage codes (B, N, h, w) -> one index per cell (B, h, w) in [0, codebook_size)."""
        return (codes.long() * self._place.to(codes.device)[None, :, None, None]).sum(1)

    def split_codes(self, joint: torch.Tensor) -> torch.Tensor:
        """Joint codes (B, h, w) -> stage codes (B, N, h, w); inverse of :meth:`joint_codes`."""
        place = self._place.to(joint.device)[None, :, None, None]
        return (joint.long()[:, None] // place) % self.stage_codes

    def lookup(self, codes: torch.Tensor, n_stages: int | None = None) -> torch.Tensor:
        """Stage codes (B, N, h, w) or joint codes (B, h, w) -> ``sum_s e_s[c_s]`` (B, D, h, w),
        over the first ``n_stages`` stages (default all)."""
        if codes.dim() == 3:
            codes = self.split_codes(codes)
        n = self.n_stages if n_stages is None else n_stages
        return sum(stage.lookup(codes[:, s]) for s, stage in enumerate(self.stages[:n]))

    @property
    def codebook(self) -> torch.Tensor:
        """The (K_s^N, D) joint codebook: every sum of one vector per stage, in joint-code order."""
        if self.codebook_size > 2 ** 20:
            raise ValueError(f"the joint codebook has {self.codebook_size} entries, too many to "
                             f"list; use stage_codebooks")
        digits = self.split_codes(torch.arange(self.codebook_size, device=self._place.device)[:, None, None])
        return sum(stage.codebook[digits[:, s, 0, 0]] for s, stage in enumerate(self.stages))

    @property
    def stage_codebooks(self) -> list[torch.Tensor]:
        """Each stage's own (K_s, D) codebook."""
        return [stage.codebook for stage in self.stages]

    @torch.no_grad()
    def stage_errors(self, z_e: torch.Tensor) -> list[float]:
        """Mean squared error ``||z - (q_1 + ... + q_s)||^2`` after each stage s = 1..N (eval mode:
        no codebook update). Should fall stage by stage: each stage removes part of the residual."""
        was = self.training
        self.eval()
        codes = self(z_e).codes
        self.train(was)
        return [float((z_e.float() - self.lookup(codes, s)).pow(2).mean())
                for s in range(1, self.n_stages + 1)]

    # -- the forward pass ------------------------------------------------------------------------
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        b, _, h, w = z_e.shape                                      # (B, D, h, w)
        n = self.n_stages
        if self.training and self.dropout > 0 and float(torch.rand(())) < self.dropout:
            n = int(torch.randint(1, self.n_stages + 1, ()))        # quantizer dropout
        z = z_e.float()
        residual, total = z, torch.zeros_like(z)
        codes = torch.zeros(b, self.n_stages, h, w, dtype=torch.long, device=z.device)
        loss, commitment, dead = z.new_zeros(()), z.new_zeros(()), z.new_zeros(())
        for s, stage in enumerate(self.stages[:n]):
            out = stage(residual)                                   # codes the current residual
            q = out.quantized.detach()                              # (B, D, h, w) = e_s[c_s]
            codes[:, s] = out.codes
            total = total + q
            residual = residual - q
            loss = loss + out.loss                                  # beta * commitment per stage
            commitment = commitment + out.losses["commitment"]
            dead = dead + out.stats["dead_codes"]
        quantized = z + (total - z).detach()                        # one straight-through step
        joint = self.joint_codes(codes)
        counts = torch.bincount(joint.reshape(-1), minlength=self.codebook_size).float()
        probs = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        stats = {"perplexity": perplexity.detach(),
                 "used_fraction": (counts > 0).float().mean().detach(),
                 "dead_codes": dead.detach(),                       # summed over the stages
                 "stages_used": torch.tensor(float(n))}
        return QuantizerOutput(quantized=quantized, codes=codes, loss=loss,
                               losses={"codebook": z.new_zeros(()), "commitment": commitment},
                               stats=stats)

    def extra_repr(self) -> str:
        return (f"stages={self.n_stages} x K_s={self.stage_codes} (joint K={self.codebook_size}), "
                f"D={self.code_dim}, dropout={self.dropout}, "
                f"bits/cell={self.n_stages * math.log2(self.stage_codes):g}")
