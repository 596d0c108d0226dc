"""Saved priors: loading one exactly as it was trained, and finding the VQ-VAE it belongs to."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import find_checkpoint, load_checkpoint
from ..errors import CheckpointError
from .build import rebuild_prior

__all__ = ["PRIOR_CHECKPOINT_KIND", "load_prior", "find_vqvae_checkpoint"]

PRIOR_CHECKPOINT_KIND = "prior"
"""``extra["kind"]`` of a prior checkpoint (files of older versions say ``"pixelcnn_prior"``)."""


def load_prior(path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a prior from its checkpoint, with the architecture stored in it (never a preset's).

    Args:
        path: ``runs/<preset>/prior/best.pt`` (or ``last.pt``).
        device: where to put it.

    Returns:
        ``(prior in eval mode, checkpoint dict)``; CheckpointError names the file and the fix.
        ``prior.head_check`` holds the head check it was trained with (None for priors saved
        before it existed; see :mod:`vqvae_lib.prior.head_check`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No prior checkpoint at {path}. Train one first: "
                              f"`python -m vqvae_lib.prior train --checkpoint runs/<preset>/checkpoints/best.pt` "
                              f"or run notebooks/06_prior_and_generation.ipynb.")
    ckpt = load_checkpoint(path)
    extra = ckpt.get("extra", {})
    if extra.get("kind") not in (PRIOR_CHECKPOINT_KIND, "pixelcnn_prior"):
        raise CheckpointError(f"{path} is not a prior checkpoint (it looks like a VQ-VAE one); "
                              f"pass the file in runs/<preset>/prior/, e.g. prior/best.pt.")
    try:
        prior = rebuild_prior(extra.get("prior_kind", "pixelcnn"), extra["hparams"])
        prior.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"The prior in {path} cannot be rebuilt ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160]}). It was edited or written by "
                              f"another version; train a new prior.") from e
    prior.head_check = extra.get("head_check")
    return prior.to(device).eval(), ckpt


def find_vqvae_checkpoint(run_dir) -> Path:
    """``<run_dir>/checkpoints/best.pt``, or a CheckpointError saying how to make it.

    Args:
        run_dir: the run folder.
    """
    return find_checkpoint(run_dir, "best.pt", needed_for="the prior is fitted to its codes")
