"""Which prior a config asks for, and rebuilding a saved prior from its own architecture.

A prior checkpoint stores its kind and every architecture number (``hparams``), so loading it
never consults a preset: a prior trained with 8 layers stays an 8-layer prior even after the preset
changes. Only a **new** prior takes its settings from the config (``prior_kind``,
``prior_channels``, ``prior_layers``, ``prior_heads``, ``prior_cond_bins``).
"""

from __future__ import annotations

import torch.nn as nn

from .clustered import ClusteredCodePrior
from .hierarchy import HierarchicalPrior
from .masked import MaskedCodePrior
from .model import GatedPixelCNN
from .transformer import CodeTransformer
from .words import PatchWordPrior

__all__ = ["PRIOR_KINDS", "build_prior", "rebuild_prior", "prior_kind_of"]

PRIOR_KINDS = {"pixelcnn": GatedPixelCNN, "transformer": CodeTransformer,
               "hierarchical": HierarchicalPrior, "masked": MaskedCodePrior,
               "clustered": ClusteredCodePrior, "words": PatchWordPrior}
"""``prior_kind`` -> class. All share ``forward(codes, y)``, ``nll_bits``, ``training_loss``,
``prepare``, ``sample`` and ``hparams``."""


def build_prior(cfg, n_classes: int = 0, code_vectors=None) -> nn.Module:
    """A new, untrained prior as ``cfg`` describes it.

    Args:
        cfg: a :class:`~vqvae_lib.config.Config` (``prior_kind``, ``prior_channels``,
            ``prior_layers``, ``prior_heads``, ``prior_top_factor``, ``prior_top_codes``,
            ``codebook_size``, ``code_dim``, ``latent_size``).
        n_classes: slice-position classes (``prior_cond_bins``; 0 = unconditional).
        code_vectors: (K, D) the VQ-VAE's code vectors (``hierarchy.code_vector_table``);
            needed by the hierarchical, clustered and words priors, ignored by the others.
    """
    grid = (cfg.latent_size, cfg.latent_size)
    if cfg.prior_kind in ("hierarchical", "clustered", "words"):   # built on the code vectors
        if code_vectors is None:
            raise ValueError(f"the {cfg.prior_kind} prior needs the VQ-VAE's code vectors "
                             "(code_vector_table(vqvae))")
        K, D = cfg.codebook_size, code_vectors.shape[1]
        common = dict(channels=cfg.prior_channels, n_layers=cfg.prior_layers, n_classes=n_classes,
                      grid_size=grid, seed=cfg.seed)
        if cfg.prior_kind == "clustered":
            prior = ClusteredCodePrior(K, D, groups=cfg.prior_top_codes, **common)
        elif cfg.prior_kind == "hierarchical":
            prior = HierarchicalPrior(K, D, top_codes=cfg.prior_top_codes,
                                      factor=cfg.prior_top_factor, **common)
        else:
            prior = PatchWordPrior(K, D, words=cfg.prior_top_codes, patch=cfg.prior_top_factor,
                                   heads=cfg.prior_heads, top_p=cfg.prior_top_p, **common)
        prior.code_vectors.copy_(code_vectors)
        return prior
    if cfg.prior_kind == "masked":
        return MaskedCodePrior(cfg.codebook_size, channels=cfg.prior_channels,
                               n_layers=cfg.prior_layers, n_classes=n_classes, grid_size=grid,
                               steps=cfg.prior_steps, seed=cfg.seed)
    if cfg.prior_kind == "pixelcnn":
        return GatedPixelCNN(cfg.codebook_size, channels=cfg.prior_channels,
                             n_layers=cfg.prior_layers, n_classes=n_classes, grid_size=grid)
    if cfg.prior_kind == "transformer":
        return CodeTransformer(cfg.codebook_size, channels=cfg.prior_channels,
                               n_layers=cfg.prior_layers, heads=cfg.prior_heads,
                               n_classes=n_classes, grid_size=grid)
    raise ValueError(f"Unknown prior_kind {cfg.prior_kind!r}; choose one of {sorted(PRIOR_KINDS)}")


def rebuild_prior(kind: str, hparams: dict) -> nn.Module:
    """The prior a checkpoint describes (``extra["prior_kind"]``, ``extra["hparams"]``).

    Args:
        kind: a key of :data:`PRIOR_KINDS`.
        hparams: the constructor arguments saved with the weights.
    """
    if kind not in PRIOR_KINDS:
        raise ValueError(f"Unknown prior kind {kind!r}; this version knows {sorted(PRIOR_KINDS)}")
    return PRIOR_KINDS[kind](**hparams)


def prior_kind_of(prior: nn.Module) -> str:
    """The :data:`PRIOR_KINDS` key of a prior instance."""
    for kind, cls in PRIOR_KINDS.items():
        if isinstance(prior, cls):
            return kind
    raise TypeError(f"{type(prior).__name__} is not a known prior")
