"""Training data in memory and the batches drawn from it.

The split is decoded once into a uint8 array (:mod:`vqvae_lib.data` caches it), kept on the
device (16 KiB per 128x128 slice), and each batch is an index into it, converted to float there:
no PNG is decoded during training. The ``reference`` preset sets ``decode_every_epoch`` to
reproduce the reference's per-epoch PNG decoding for the benchmark.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..common import evenly_spaced
from ..data import DataWarning, load_split, read_image, subject_overlap
from ..errors import TrainingError
from .validate import pick_preview_indices

__all__ = ["TrainData", "load_train_data", "steps_per_epoch", "epoch_images", "make_batch",
           "augment_batch", "decode_pngs"]


@dataclass
class TrainData:
    """The uint8 slices a run trains and validates on (N, 1, H, W), with where they came from."""

    train_u8: torch.Tensor
    val_u8: torch.Tensor
    train_paths: list[str]
    source: str
    root: Path
    preview_idx: torch.Tensor          # 8 validation slices shown in the reconstruction figures


def load_train_data(cfg, data_dir=None, device: torch.device | str = "cpu",
                    verbose: bool = True) -> TrainData:
    """Load (or read the cache of) the train and validate splits at ``cfg.image_size``.

    Caps (``max_train_images``, ``max_eval_images``) keep evenly spaced slices so that a small
    subset still covers every subject. A subject found in both splits is warned about (the
    validation score would be optimistic).

    Args:
        cfg: the run's config.
        data_dir: the data folder (default: ``$VQVAE_DATA_DIR``, data/oasis, data/demo).
        device: where the uint8 arrays live (MPS keeps them on the CPU).
        verbose: print one line per split.
    """
    train = load_split("train", data_dir, size=cfg.image_size, masks=False, verbose=verbose,
                       limit=cfg.max_train_images)          # capped before decoding
    val = load_split("validate", data_dir, size=cfg.image_size, masks=False, verbose=verbose,
                     limit=cfg.max_eval_images)
    shared = subject_overlap({"train": train, "validate": val})[("train", "validate")]
    if shared:
        warnings.warn(f"data: {len(shared)} subject(s) are in both train and validate (e.g. "
                      f"{sorted(shared)[0]}) in {train.root}: validation SSIM will be optimistic. "
                      "Split by subject (docs/DATA.md).", DataWarning, stacklevel=2)
    train_idx = evenly_spaced(len(train.images), cfg.max_train_images)
    val_idx = evenly_spaced(len(val.images), cfg.max_eval_images)
    store = torch.device(device)
    store = torch.device("cpu") if store.type == "mps" else store
    val_u8 = torch.from_numpy(np.ascontiguousarray(val.images[val_idx]))[:, None].to(store)
    # all images: use the (memory-mapped) cache array as it is, no second copy of the split
    train_images = train.images if len(train_idx) == len(train.images) else train.images[train_idx]
    return TrainData(
        train_u8=torch.from_numpy(np.ascontiguousarray(train_images))[:, None].to(store),
        val_u8=val_u8, train_paths=[train.paths[i] for i in train_idx], source=train.source,
        root=Path(train.root), preview_idx=pick_preview_indices(val_u8, 8))


def steps_per_epoch(data: TrainData, cfg, world: int = 1) -> int:
    """Full batches per epoch per process; a TrainingError when not even one fits.

    Args:
        data: the loaded slices.
        cfg: uses ``batch_size`` (per process).
        world: the number of processes.
    """
    steps = len(data.train_u8) // world // cfg.batch_size
    if steps < 1:
        raise TrainingError(
            f"The training split of {data.root} has {len(data.train_u8)} images, fewer than one "
            f"batch of {cfg.batch_size} per process; lower batch_size or add data.")
    return steps


def epoch_images(data: TrainData, cfg) -> torch.Tensor:
    """The uint8 training slices of this epoch (decoded again from PNG for the reference)."""
    if not cfg.decode_every_epoch:
        return data.train_u8
    return torch.from_numpy(decode_pngs(data.train_paths, cfg.image_size))[:, None].to(data.train_u8.device)


def make_batch(images: torch.Tensor, idx: torch.Tensor, device, cfg,
               aug_gen: torch.Generator | None) -> torch.Tensor:
    """Float batch (B, 1, H, W) in [0, 1] on ``device``: index, convert, augment, lay out.

    Args:
        images: (N, 1, H, W) uint8 slices.
        idx: (B,) indices into ``images``.
        device: the training device.
        cfg: uses ``augment`` and ``channels_last``.
        aug_gen: the generator of the augmentation (its own, so resume is exact).
    """
    x = images[idx.to(images.device)].to(device, non_blocking=True).float().div_(255)
    if cfg.augment:
        x = augment_batch(x, aug_gen)
    if x.device.type == "cuda" and cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def augment_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """Random left-right flips and small shifts, on the device, per image (B, 1, H, W).

    Axial brain slices are roughly left-right symmetric, so a flip gives a plausible new
    slice; a shift of a few pixels teaches translation robustness. The borders are background,
    so wrapping (``roll``) is harmless.

    Args:
        x: the batch.
        gen: the random generator (on the batch's device, or the CPU).
        max_shift: the largest shift in pixels.
    """
    b = x.shape[0]
    flip = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if max_shift > 0:
        dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen,
                                                device=gen.device))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    return x


def decode_pngs(paths: list[str], size: int) -> np.ndarray:
    """Decode PNGs to (N, size, size) uint8 -- what the reference's Dataset does every epoch.

    Uses :func:`vqvae_lib.data.read_image`, so the pixels equal those of the cache.

    Args:
        paths: the PNG files.
        size: the side to resize to.
    """
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = read_image(p, size)
    return out
