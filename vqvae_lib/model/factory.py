"""Pick the quantizer a config names: ``loss`` | ``ema`` (a learned codebook, van den Oord et al.
2017), ``fsq`` (a fixed grid, Mentzer et al. 2023) or ``rvq`` (residual stages, Zeghidour et al.
2021). ``cfg.codebook_size`` is always the number of codes one latent cell can take, so the rate
``log2(codebook_size)`` bits per cell is comparable across all four."""

from __future__ import annotations

import math

from torch import nn

from ..errors import ConfigError
from .fsq import FSQ, fsq_levels_for
from .quantizers import VectorQuantizer, VectorQuantizerEMA
from .rvq import ResidualVQ, stage_size

__all__ = ["QUANTIZERS", "build_quantizer", "check_quantizer", "fsq_levels", "bits_per_cell"]

QUANTIZERS = ("loss", "ema", "fsq", "rvq")


def fsq_levels(cfg) -> tuple[int, ...]:
    """The FSQ levels of a config: ``cfg.fsq_levels``, or :func:`fsq_levels_for` its
    ``codebook_size``; their product must equal ``codebook_size``.

    Args:
        cfg: a :class:`~vqvae_lib.config.Config`.
    """
    levels = tuple(cfg.fsq_levels) or fsq_levels_for(cfg.codebook_size)
    if math.prod(levels) != cfg.codebook_size:
        raise ValueError(
            f"fsq_levels={levels} give {math.prod(levels)} codes but codebook_size is "
            f"{cfg.codebook_size}: set codebook_size={math.prod(levels)} (or other levels).")
    return levels


def check_quantizer(cfg):
    """``cfg`` if its quantizer can share ``codebook_size`` (FSQ levels, RVQ stages), else a
    ConfigError saying what to set: a CLI calls it before any data is read.

    Args:
        cfg: a :class:`~vqvae_lib.config.Config`.
    """
    try:
        if cfg.quantizer == "fsq":
            fsq_levels(cfg)
        elif cfg.quantizer == "rvq":
            stage_size(cfg.codebook_size, cfg.rvq_stages)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return cfg


def bits_per_cell(cfg) -> float:
    """Bits one latent cell costs without entropy coding: log2 of the codes it can take.

    Args:
        cfg: a config (any quantizer).
    """
    return math.log2(cfg.codebook_size)


def build_quantizer(cfg) -> nn.Module:
    """The quantizer named by ``cfg.quantizer`` with the config's options.

    Args:
        cfg: a :class:`~vqvae_lib.config.Config`; ``quantizer`` is one of :data:`QUANTIZERS`.

    Returns:
        A module with ``forward(z_e) -> QuantizerOutput``, ``codebook`` (K, D), ``lookup(codes)``,
        ``joint_codes(codes)`` and ``codebook_size``.
    """
    common = dict(beta=cfg.beta, kmeans_init=cfg.kmeans_init, kmeans_iters=cfg.kmeans_iters,
                  dead_code_steps=cfg.dead_code_steps, cosine=cfg.cosine)
    ema = dict(decay=cfg.ema_decay, eps=cfg.ema_eps)
    if cfg.quantizer == "loss":
        return VectorQuantizer(cfg.codebook_size, cfg.code_dim, **common)
    if cfg.quantizer == "ema":
        return VectorQuantizerEMA(cfg.codebook_size, cfg.code_dim, **ema, **common)
    if cfg.quantizer == "fsq":
        return FSQ(fsq_levels(cfg), cfg.code_dim)
    if cfg.quantizer == "rvq":
        return ResidualVQ(cfg.codebook_size, cfg.rvq_stages, cfg.code_dim,
                          dropout=cfg.rvq_dropout, **ema, **common)
    raise ValueError(f"Unknown quantizer {cfg.quantizer!r}; choose one of {', '.join(QUANTIZERS)}.")
