"""The prior's training data: every slice of a split encoded once by the frozen VQ-VAE, and
the slice positions as conditioning classes (:func:`slice_bins`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import file_hash
from ..common import SPLITS, atomic_write, evenly_spaced
from ..config import Config
from ..data.dataset import load_split, resolve_data_dir
from ..model.inference import encode

__all__ = ["split_codes", "all_codes", "slice_bins", "condition_labels"]


def split_codes(vqvae, checkpoint, cfg: Config, split: str, data_dir=None, run_dir=None,
                device="cpu", mirror: bool = False) -> dict:
    """The code grids of one split, cached atomically in ``<run_dir>/prior/codes_<split>.pt``
    under a key made of the VQ-VAE checkpoint's **content hash** (not its path: a VQ-VAE
    retrained at the same path gets new codes), the data folder, the image cap and size.

    Args:
        vqvae: the trained VQ-VAE (frozen).
        checkpoint: its file (hashed for the cache key).
        cfg: its config (``image_size``, ``max_train_images``, ``max_eval_images``).
        split: ``"train"``, ``"validate"`` or ``"test"``.
        data_dir: data folder (default: the usual resolution order).
        run_dir: the cache's run folder (None: no cache).
        device: where to encode.
        mirror: encode every slice mirrored across the midline (rows flipped: this swaps the
            hemispheres of these axial slices). A brain is nearly symmetric, so these are new,
            plausible training grids (``prior_mirror``); cached as ``codes_<split>_mirrored.pt``.

    Returns:
        ``{"codes": (N, h, w) long, "slice_index": (N,) long}``.
    """
    limit = cfg.max_train_images if split == "train" else cfg.max_eval_images
    name = f"codes_{split}{'_mirrored' if mirror else ''}.pt"
    cache = Path(run_dir) / "prior" / name if run_dir else None
    key = f"{file_hash(checkpoint)}:{resolve_data_dir(data_dir)[0]}:{limit}:{cfg.image_size}" \
        + (":mirrored" if mirror else "")
    if cache is not None and cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
        except Exception:  # a damaged cache is only a cache: rebuild it
            blob = {}
        if blob.get("key") == key:
            return {"codes": blob["codes"].long(), "slice_index": blob["slice_index"].long()}
    slices = load_split(split, data_dir, size=cfg.image_size, masks=False, verbose=False)
    keep = evenly_spaced(len(slices.images), limit)
    images = slices.tensors()[torch.as_tensor(keep)]                         # (N, 1, H, W)
    if mirror:
        images = images.flip(-2)                                             # swap hemispheres
    codes = encode(vqvae, images, device=device)                             # (N, h, w)
    index = torch.as_tensor(np.asarray(slices.slice_index)[keep], dtype=torch.long)
    if cache is not None:
        blob = {"key": key, "codes": codes.to(torch.int16), "slice_index": index}
        atomic_write(cache, lambda f: torch.save(blob, f))
    return {"codes": codes, "slice_index": index}


def all_codes(vqvae, checkpoint, cfg: Config, data_dir=None, run_dir=None, device="cpu") -> dict:
    """:func:`split_codes` for the three splits -> ``{split: {"codes", "slice_index"}}``.

    Args:
        vqvae: the trained VQ-VAE.
        checkpoint: its file.
        cfg: its config.
        data_dir: data folder.
        run_dir: cache folder's parent.
        device: where to encode.
    """
    return {s: split_codes(vqvae, checkpoint, cfg, s, data_dir, run_dir, device) for s in SPLITS}


def slice_bins(slice_index: torch.Tensor, bins: int, lo: int, hi: int) -> torch.Tensor:
    """Position of each slice in the brain as one of ``bins`` classes (conditioning labels).

    Args:
        slice_index: (N,) slice numbers.
        bins: number of classes.
        lo: the lowest slice number of the training split.
        hi: the highest.
    """
    frac = (slice_index.float() - lo) / max(hi - lo + 1, 1)
    return (frac * bins).long().clamp(0, bins - 1)


def condition_labels(codes: dict, bins: int) -> tuple[dict, dict]:
    """Conditioning labels per split and the spec a checkpoint stores (``{"bins", "lo", "hi"}``).

    Args:
        codes: ``{split: {"codes", "slice_index"}}`` with at least ``"train"``.
        bins: ``prior_cond_bins`` (0: every label is None).
    """
    index = codes["train"]["slice_index"]
    lo, hi = int(index.min()), int(index.max())
    labels = {s: slice_bins(c["slice_index"], bins, lo, hi) if bins else None
              for s, c in codes.items()}
    return labels, {"bins": bins, "lo": lo, "hi": hi}
