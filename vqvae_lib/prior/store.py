"""Which prior a config asks for, saved priors rebuilt exactly as they were trained, and the one
VQ-VAE whose codes a prior models.

A prior checkpoint stores its kind and every architecture number (``hparams``), so loading it
never consults a preset: a prior trained with 8 layers stays an 8-layer prior after the preset
changes. It also stores the VQ-VAE's content fingerprint (``vqvae_sha1``) and where that VQ-VAE
was (relative to the run folder when inside it, so a run folder can move): decoded with another
codebook its samples are noise, so :func:`vqvae_for_prior` finds that VQ-VAE from any working
directory and refuses another one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..checkpoint import file_hash, load_checkpoint, load_model
from ..errors import CheckpointError
from .pixelcnn import GatedPixelCNN
from .transformer import CodeTransformer

__all__ = ["PRIOR_KINDS", "PRIOR_CHECKPOINT_KIND", "build_prior", "rebuild_prior",
           "load_prior", "vqvae_reference", "vqvae_for_prior"]

PRIOR_KINDS = {"pixelcnn": GatedPixelCNN, "transformer": CodeTransformer}
"""``prior_kind`` -> class; both are a :class:`~vqvae_lib.prior.draw.CodePrior` with ``hparams``."""

PRIOR_CHECKPOINT_KIND = "prior"
"""``extra["kind"]`` of a prior checkpoint (files of older versions say ``"pixelcnn_prior"``)."""


def build_prior(cfg, n_classes: int = 0) -> torch.nn.Module:
    """A new, untrained prior as ``cfg`` describes it.

    Args:
        cfg: a :class:`~vqvae_lib.config.Config` (``prior_kind``, ``prior_channels``,
            ``prior_layers``, ``prior_heads``, ``codebook_size``, ``latent_size``).
        n_classes: slice-position classes (``prior_cond_bins``; 0 = unconditional).
    """
    hparams = dict(num_codes=cfg.codebook_size, channels=cfg.prior_channels,
                   n_layers=cfg.prior_layers, n_classes=n_classes,
                   grid_size=(cfg.latent_size, cfg.latent_size))
    if cfg.prior_kind == "transformer":
        hparams["heads"] = cfg.prior_heads
    return rebuild_prior(cfg.prior_kind, hparams)


def rebuild_prior(kind: str, hparams: dict) -> torch.nn.Module:
    """The prior a checkpoint describes (``extra["prior_kind"]``, ``extra["hparams"]``).

    Args:
        kind: a key of :data:`PRIOR_KINDS`.
        hparams: the constructor arguments saved with the weights.
    """
    if kind not in PRIOR_KINDS:
        raise ValueError(f"prior kind {kind!r} is not part of this version (it knows "
                         f"{sorted(PRIOR_KINDS)}; docs/GENERATORS.md lists the retired ones)")
    return PRIOR_KINDS[kind](**hparams)


def load_prior(path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a prior from its checkpoint, with the architecture stored in it (never a preset's).

    Args:
        path: ``runs/<preset>/prior/best.pt`` (or ``last.pt``).
        device: where to put it.

    Returns:
        ``(prior in eval mode, checkpoint dict)``; CheckpointError names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No prior checkpoint at {path}. Train one first: `python -m "
                              f"vqvae_lib.prior train --checkpoint runs/<preset>/checkpoints/"
                              f"best.pt` or run notebooks/06_prior_and_generation.ipynb.")
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
                              f"{str(e).splitlines()[0][:200]}). It was edited or written by "
                              f"another version; train a new prior.") from e
    return prior.to(device).eval(), ckpt


def vqvae_reference(checkpoint, run_dir) -> str:
    """How a prior checkpoint names its VQ-VAE: relative to ``run_dir`` when inside it (so the
    run folder can move), else the absolute path.

    Args:
        checkpoint: the VQ-VAE checkpoint.
        run_dir: the run folder the prior is written to.
    """
    path, run_dir = Path(checkpoint).resolve(), Path(run_dir).resolve()
    return str(path.relative_to(run_dir) if path.is_relative_to(run_dir) else path)


def vqvae_for_prior(prior_path, ckpt: dict, vqvae_path=None, device="cpu"):
    """The VQ-VAE a prior was fitted to, checked by content; ``(vqvae, path)``.

    Args:
        prior_path: the prior checkpoint (its run folder is two levels up).
        ckpt: the prior checkpoint's dictionary (:func:`load_prior`).
        vqvae_path: a VQ-VAE to decode with instead of the stored one (of the same content).
        device: where to load it.

    Raises:
        CheckpointError: the VQ-VAE is missing or of other content (another run, or retrained
            since), naming both files and what to do.
    """
    extra = ckpt.get("extra", {})
    run_dir = Path(prior_path).resolve().parent.parent
    if vqvae_path is not None:
        path = Path(vqvae_path)
    else:
        stored = Path(extra.get("vqvae_checkpoint", "checkpoints/best.pt"))
        candidates = [stored] if stored.is_absolute() else [run_dir / stored, Path.cwd() / stored]
        candidates.append(run_dir / "checkpoints" / "best.pt")
        path = next((p for p in candidates if p.is_file()), candidates[0])
    if not path.is_file():
        raise CheckpointError(f"The VQ-VAE of the prior {prior_path} is not at {path}. Pass it "
                              f"with --checkpoint (the checkpoints/best.pt the prior was trained "
                              f"on).")
    want, have = extra.get("vqvae_sha1"), file_hash(path)
    if want and want != have:
        previous = path.parent / "previous" / "best.pt"
        hint = (f" {previous} matches it: pass --checkpoint {previous}." if previous.is_file()
                and file_hash(previous) == want else "")
        raise CheckpointError(
            f"The prior {prior_path} was fitted to another VQ-VAE than {path} (content "
            f"{want[:10]}..., this file {have[:10]}...): its codes would decode to noise. Retrain "
            f"the prior on this VQ-VAE (`python -m vqvae_lib.prior train --checkpoint {path}`) "
            f"or decode with the VQ-VAE it was trained on.{hint}")
    vqvae, _, _ = load_model(path, device)
    return vqvae, Path(os.path.normpath(path))
