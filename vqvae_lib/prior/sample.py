"""Generating slices with a trained prior and the VQ-VAE's decoder; writing them as files;
checking that they are new.

``generate`` draws code grids (all samples in one batch), decodes them with
:func:`vqvae_lib.model.inference.decode` and returns both. A conditioned prior gets one
slice-position class per sample: by default the classes cycle through all bins, so a set of
samples covers the head from bottom to top as a set of real slices does. A prior trained with a
head check (:mod:`vqvae_lib.prior.head_check`) redraws the samples whose head outline is broken.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..common import atomic_write
from ..model.inference import decode, encode
from .generation import nearest_neighbours
from .head_check import passes_head_check, redraw_failures

__all__ = ["default_labels", "generate", "write_samples", "novelty"]


def default_labels(prior, n: int) -> torch.Tensor | None:
    """Slice-position classes cycling over all bins (None for an unconditional prior).

    Args:
        prior: a prior (``n_classes``).
        n: number of samples.
    """
    return torch.arange(n) % prior.n_classes if prior.n_classes else None


@torch.no_grad()
def generate(prior, vqvae, n: int, temperature=1.0, labels=None, seed: int = 0,
             device="cpu", progress: bool = False, head_check: bool = True, rounds: int = 4
             ) -> dict:
    """Sample ``n`` code grids and decode them; redraw broken heads when the prior has a check.

    Args:
        prior: a trained prior (any kind).
        vqvae: the VQ-VAE whose codes it models.
        n: number of slices.
        temperature: one number or one per sample.
        labels: slice-position classes (one or ``n``); default :func:`default_labels`.
        seed: seeds the sampler (same seed, same slices).
        device: where to run.
        progress: show a progress bar.
        head_check: apply the prior's head check (``prior.head_check``, set when a prior trained
            with one is loaded) and redraw the samples that fail it; False shows the prior's
            first draws as they are.
        rounds: redraws at most per sample (a sample failing them all is kept).

    Returns:
        ``{"images": (n, 1, H, W) float in [0, 1], "codes": (n, h, w) long, "labels": (n,) or
        None, "seconds": float, "head_check": None or {"first_failed", "redrawn",
        "still_failing"}}`` (see :func:`~vqvae_lib.prior.head_check.redraw_failures`).
    """
    if labels is None:
        labels = default_labels(prior, n)
    elif prior.n_classes == 0:
        raise ValueError("this prior is unconditional: it takes no slice-position label")
    else:
        labels = torch.as_tensor(labels).reshape(-1).expand(n)
        if int(labels.max()) >= prior.n_classes or int(labels.min()) < 0:
            raise ValueError(f"slice-position labels must be in 0..{prior.n_classes - 1}")
    gen = torch.Generator(device=device).manual_seed(int(seed))
    t0 = time.perf_counter()
    y = None if labels is None else labels.to(device)
    temps = torch.as_tensor(temperature, dtype=torch.float32).reshape(-1)  # one, or one per sample
    if len(temps) not in (1, n):
        raise ValueError(f"temperature has {len(temps)} values for {n} samples")
    prior.to(device)

    def draw(index: torch.Tensor) -> dict:
        t = temps[index] if len(temps) > 1 else float(temps[0])
        codes = prior.sample(len(index), prior.grid_size, t,
                             y=None if y is None else y[index.to(device)], generator=gen,
                             progress=progress and len(index) == n)
        return {"codes": codes.cpu(), "images": decode(vqvae, codes, device=device)}

    check = getattr(prior, "head_check", None) if head_check else None
    if check:
        out, report = redraw_failures(draw, n, lambda im: passes_head_check(im, check), rounds)
    else:
        out, report = draw(torch.arange(n)), None
    return {"images": out["images"], "codes": out["codes"], "labels": labels,
            "seconds": time.perf_counter() - t0, "head_check": report}


def write_samples(images: torch.Tensor, codes: torch.Tensor, out_dir) -> list[Path]:
    """Write ``sample_000.png`` ... (8-bit grey) and ``codes.npy`` (n, h, w) int16 to ``out_dir``.

    Args:
        images: (n, 1, H, W) float in [0, 1].
        codes: (n, h, w) code grids.
        out_dir: folder (created).

    Returns:
        the PNG paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pixels = (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()  # (n, H, W)
    paths = []
    for i, p in enumerate(pixels):
        path = out_dir / f"sample_{i:03d}.png"
        atomic_write(path, lambda f, p=p: Image.fromarray(p, mode="L").save(f, format="PNG"))
        paths.append(path)
    atomic_write(out_dir / "codes.npy", lambda f: np.save(f, codes.numpy().astype(np.int16)))
    return paths


def novelty(vqvae, images: torch.Tensor, codes: torch.Tensor, train_images: torch.Tensor,
            device="cpu") -> dict[str, torch.Tensor]:
    """How far each image (N, 1, H, W) with codes (N, h, w) is from the training split.

    ``index``/``mse``: its nearest training slice by pixel MSE; ``shared``: the fraction of
    latent cells whose code equals that neighbour's. Run it on real test slices too: they are new
    by construction, so their numbers say what "not a copy" looks like (background codes alone
    make any two slices share a good part of their grid).

    Args:
        vqvae: the VQ-VAE.
        images: (N, 1, H, W) slices.
        codes: (N, h, w) their codes.
        train_images: (M, 1, H, W) training slices.
        device: where to encode.
    """
    index, mse = nearest_neighbours(images, train_images)
    nn_codes = encode(vqvae, train_images[index], device=device)
    shared = (nn_codes == codes.cpu()).float().flatten(1).mean(1)
    return {"index": index, "mse": mse, "shared": shared}
