"""Generating slices: draw code grids from the prior, decode them with the VQ-VAE, write them.

Every code of a sample is drawn by the prior; nothing is copied from training data and no sample
is thrown away: what the prior draws is what is shown and scored.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..common import atomic_write
from ..folders import replace_folder
from ..model.inference import decode

__all__ = ["default_labels", "check_labels", "generate", "write_samples", "SAMPLE_MANIFEST"]

SAMPLE_MANIFEST = "samples.json"
"""The file that marks a folder as written by :func:`write_samples` (and says what made it)."""


def default_labels(prior, n: int) -> torch.Tensor | None:
    """Slice-position classes cycling over all bins, so that a set of samples covers the head
    from bottom to top as a set of real slices does (None for an unconditional prior).

    Args:
        prior: a prior (``n_classes``).
        n: number of samples.
    """
    return torch.arange(n) % prior.n_classes if prior.n_classes else None


def check_labels(prior, labels, n: int) -> torch.Tensor | None:
    """``labels`` as (n,) classes the prior knows, :func:`default_labels` for None; a
    ValueError names the allowed range.

    Args:
        prior: a prior (``n_classes``).
        labels: None, one class, or ``n`` classes.
        n: number of samples.
    """
    if labels is None:
        return default_labels(prior, n)
    if prior.n_classes == 0:
        raise ValueError("this prior is unconditional: it takes no slice-position label")
    labels = torch.as_tensor(labels).reshape(-1)
    if len(labels) not in (1, n):
        raise ValueError(f"{len(labels)} slice-position labels for {n} samples")
    if int(labels.max()) >= prior.n_classes or int(labels.min()) < 0:
        raise ValueError(f"slice-position label must be in 0..{prior.n_classes - 1}, got "
                         f"{labels.unique().tolist()}")
    return labels.expand(n)


@torch.no_grad()
def generate(prior, vqvae, n: int, temperature=1.0, labels=None, seed: int = 0,
             device="cpu", progress: bool = False) -> dict:
    """Sample ``n`` code grids from the prior and decode them.

    Args:
        prior: a trained prior (``GatedPixelCNN`` or ``CodeTransformer``).
        vqvae: the VQ-VAE whose codes it models.
        n: number of slices (>= 1).
        temperature: one number or one per sample (finite, >= 0; 0 = most likely code).
        labels: slice-position classes (one or ``n``); default :func:`default_labels`.
        seed: seeds the sampler (same seed, same slices).
        device: where to run.
        progress: show a progress bar.

    Returns:
        ``{"images": (n, 1, H, W) float in [0, 1], "codes": (n, h, w) long, "labels": (n,) or
        None, "seconds": float}``.
    """
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    labels = check_labels(prior, labels, n)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    t0 = time.perf_counter()
    prior.to(device)
    codes = prior.sample(n, prior.grid_size, temperature, y=labels, generator=gen,
                         progress=progress)                                  # (n, h, w)
    images = decode(vqvae, codes, device=device)                             # (n, 1, H, W)
    return {"images": images, "codes": codes.cpu(), "labels": labels,
            "seconds": time.perf_counter() - t0}


def write_samples(images: torch.Tensor, codes: torch.Tensor, out_dir, about: dict | None = None
                  ) -> list[Path]:
    """Write one sampling as a folder: ``sample_000.png`` ... (8-bit grey), ``codes.npy``
    (n, h, w) int16 and ``samples.json`` (what made them), swapped in whole
    (:func:`vqvae_lib.folders.replace_folder`), so it never mixes two samplings; a folder holding
    files that sampling did not write is refused before any is written, naming one.

    Args:
        images: (n, 1, H, W) float in [0, 1].
        codes: (n, h, w) code grids.
        out_dir: the folder (created or replaced).
        about: what to record in ``samples.json`` (prior, seed, temperature, ...).

    Returns:
        the PNG paths.
    """
    pixels = (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()  # (n, H, W)

    def build(tmp: Path) -> dict:
        for i, p in enumerate(pixels):
            atomic_write(tmp / f"sample_{i:03d}.png",
                         lambda f, p=p: Image.fromarray(p, mode="L").save(f, format="PNG"))
        atomic_write(tmp / "codes.npy", lambda f: np.save(f, codes.numpy().astype(np.int16)))
        return {"n": len(pixels), **(about or {})}

    out = replace_folder(out_dir, build, SAMPLE_MANIFEST, force=True, command="prior sample",
                         option="--out-dir", what="a folder of samples")
    return [out / f"sample_{i:03d}.png" for i in range(len(pixels))]

