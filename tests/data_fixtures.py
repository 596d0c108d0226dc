"""Tiny data sets in the OASIS course layout, written on the fly for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "validate", "test")


def image_for(subject: int, k: int, size: int = 32) -> np.ndarray:
    """A distinct, reproducible uint8 slice: a bright disc whose level encodes the slice."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    return (disc * (40 + 10 * subject + 3 * k)).astype(np.uint8)


def mask_for(subject: int, k: int, size: int = 32) -> np.ndarray:
    """A mask with all four values 0/85/170/255 in horizontal bands (shifted per slice)."""
    band = (np.arange(size)[:, None] * 4 // size + k) % 4
    return np.broadcast_to(band * 85, (size, size)).astype(np.uint8)


def make_oasis(root: Path, subjects=None, slices: int = 3, size: int = 32,
               wrapper: bool = True, masks: bool = True) -> Path:
    """Write ``root[/keras_png_slices_data]/keras_png_slices_{split}/case_<id>_slice_<n>.nii.png``.

    ``subjects`` maps split -> list of int ids (default: 4 train, 2 validate, 2 test).
    Returns the folder to pass as ``data_dir`` (``root``).
    """
    subjects = subjects or {"train": [1, 2, 3, 4], "validate": [5, 6], "test": [7, 8]}
    base = root / "keras_png_slices_data" if wrapper else root
    for split in SPLITS:
        img_dir = base / f"keras_png_slices_{split}"
        seg_dir = base / f"keras_png_slices_seg_{split}"
        img_dir.mkdir(parents=True, exist_ok=True)
        if masks:
            seg_dir.mkdir(parents=True, exist_ok=True)
        for s in subjects.get(split, []):
            for k in range(slices):
                Image.fromarray(image_for(s, k, size)).save(img_dir / f"case_{s:03d}_slice_{k}.nii.png")
                if masks:
                    Image.fromarray(mask_for(s, k, size)).save(seg_dir / f"seg_{s:03d}_slice_{k}.nii.png")
    return root


def split_dir(root: Path, split: str = "train", seg: bool = False) -> Path:
    return root / "keras_png_slices_data" / f"keras_png_slices_{'seg_' if seg else ''}{split}"
