"""T1 volumes -> OASIS-like axial slices: read, reorient to RAS, window, cut, map labels.

The course slices were cut from OASIS-1 volumes (Marcus et al., 2007). This module does the
same for any T1 volume that nibabel (Brett et al., https://nipy.org/nibabel) reads: NIfTI
(``.nii``, ``.nii.gz``), Analyze (``.img`` + ``.hdr``) and FreeSurfer (``.mgz``, ``.mgh``).
The steps, each a documented rule (``docs/DATA.md``):

1. **Reorient to RAS.** Scanners store voxels in many orders (FreeSurfer's conformed LIA,
   radiological LAS, ...). ``nibabel.as_closest_canonical`` permutes and flips the voxel axes
   so that they increase towards the subject's Right, Anterior and Superior; after that one
   rule cuts every volume the same way. (An oblique acquisition is snapped to the nearest
   axes, not resampled.)
2. **Brain extent.** The brain is the label volume's non-zero voxels when there is one, else
   the head: voxels above 15 % of the 99th intensity percentile, the largest connected part,
   holes filled. ``n_slices`` axial slices are spaced evenly from ``z_range[0]`` to
   ``z_range[1]`` of that extent, measured from its bottom (default 0.40-0.80: from just below
   the lateral ventricles to above them, like the OASIS slices and the demo set).
3. **In-plane grid.** ``size`` x ``size`` pixels covering ``fov_mm`` (256 mm: 1 px = 1 mm at
   size 256, like OASIS), centred on the brain's bounding box; rows run from the subject's left
   to right, columns from the **front of the head (column 0, at the left)** to the back, as in
   OASIS and :mod:`vqvae_lib.data.demo`. Images are sampled linearly, masks nearest-neighbour.
4. **Intensities.** ``v -> 255 (v - lo) / (hi - lo)``, clipped, with ``hi`` the 99.5th
   percentile of the head's voxels (one value per volume, so slices of a subject agree) and
   ``lo`` = 0 (the MRI background), or the 0.5th percentile when the volume has negative values.
5. **Masks** from :func:`vqvae_lib.data.volume_labels.labels_to_tissue`: 0/85/170/255. FreeSurfer
   maps leave the sulcal CSF unlabelled; :func:`~vqvae_lib.data.volume_labels.add_sulcal_csf` labels it (a closing of the
   brain by a 3-voxel ball), so the masks look like OASIS's FAST masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .volume_labels import add_sulcal_csf, labels_to_tissue

__all__ = ["VOLUME_SUFFIXES", "Volume", "volume_stem", "is_volume_file", "read_volume",
           "head_mask", "intensity_window", "slice_grid", "cut_slices", "Z_RANGE", "N_SLICES",
           "FOV_MM"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".img", ".mgz", ".mgh", ".img.gz")
Z_RANGE = (0.40, 0.80)      # fraction of the brain's inferior-superior extent, from the bottom
N_SLICES = 32               # OASIS: 32 axial slices per subject
FOV_MM = 256.0              # in-plane field of view: 256 mm -> 1 mm pixels at 256 x 256
HEAD_THRESHOLD = 0.15       # head = voxels above this fraction of the 99th percentile
HI_PERCENTILE = 99.5


@dataclass
class Volume:
    """One volume in RAS voxel order: ``data[x, y, z]`` with x -> Right, y -> Anterior, z -> Superior."""

    data: np.ndarray            # (X, Y, Z) float32 (image) or uint8 tissue classes (labels)
    affine: np.ndarray          # (4, 4) RAS voxel -> world mm of ``data``
    zooms: tuple[float, float, float]
    path: Path
    orientation: str            # axis codes of the file as stored, e.g. "LIA"
    meta: dict = field(default_factory=dict)


def volume_stem(path) -> str:
    """File name without its volume suffix: ``sub-01_T1w.nii.gz`` -> ``sub-01_T1w``.

    Args:
        path: a file path.
    """
    name = Path(path).name
    for suf in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(name).stem


def is_volume_file(path) -> bool:
    """True for names ending in a volume suffix (``.hdr`` counts via its ``.img``).

    Args:
        path: a file path.
    """
    return Path(path).name.lower().endswith(VOLUME_SUFFIXES)


def read_volume(path, labels: bool = False, table: str = "auto") -> Volume:
    """Load a volume with nibabel, check it, and return it in RAS voxel order.

    Args:
        path: ``.nii``, ``.nii.gz``, ``.img`` (with its ``.hdr``), ``.mgz`` or ``.mgh``.
        labels: read a label volume: values are mapped to tissue classes 0..3.
        table: label table for ``labels=True`` (see ``volume_labels.labels_to_tissue``).

    Raises:
        DataError: not a readable volume, 2-D or 4-D data, an empty (constant) volume,
            unknown label values.
    """
    import nibabel as nib

    path = Path(path)
    if path.name.lower().endswith((".img", ".img.gz")) and not _hdr_of(path).is_file():
        raise DataError(f"Analyze image {path} has no header {_hdr_of(path).name} beside it. "
                        "Copy the .hdr file too (an Analyze volume is the .img/.hdr pair).")
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, ValueError ...
        raise DataError(f"{path} is not a volume nibabel can read ({type(e).__name__}: {e}). "
                        "Give T1 volumes as .nii, .nii.gz, .img/.hdr or .mgz, or move the file "
                        "out of the source folder.") from None
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
    elif len(shape) != 3:
        what = "2-D" if len(shape) < 3 else f"{len(shape)}-D {tuple(shape)}"
        fix = ("a single slice cannot be resliced; give the whole 3-D volume" if len(shape) < 3 else
               "it holds several volumes (a time series, echoes or a probability map per class); "
               "keep one, e.g. `fslroi in out 0 1` or nibabel's img.slicer[..., 0]")
        raise DataError(f"{path} is {what} data, not a 3-D volume: {fix}.")
    if min(img.shape) < 2:
        raise DataError(f"{path} has shape {tuple(img.shape)}: that is a 2-D slice, not a 3-D "
                        "volume. Give the whole volume.")
    orientation = "".join(nib.aff2axcodes(img.affine))
    canon = nib.as_closest_canonical(img)
    if labels:
        raw = np.asanyarray(canon.dataobj)
        data, kind = labels_to_tissue(np.asarray(raw), path, table)
        if not data.any():
            raise DataError(f"Label volume {path} is all background (0): nothing to make masks "
                            "from. Check that it is the segmentation of its image.")
        if kind == "freesurfer":
            data = add_sulcal_csf(data)
        meta = {"label_kind": kind}
    else:
        data = canon.get_fdata(dtype=np.float32)
        finite = np.isfinite(data)
        if not finite.all():
            data = np.where(finite, data, 0).astype(np.float32)
        if not finite.any() or float(data.max()) == float(data.min()):
            raise DataError(f"{path} is empty: every voxel holds the same value "
                            f"({float(data.flat[0]) if data.size else 'none'}). Check the export; "
                            "this file has no image in it.")
        meta = {}
    zooms = tuple(float(z) for z in canon.header.get_zooms()[:3])
    return Volume(data=data, affine=canon.affine.copy(), zooms=zooms, path=path,
                  orientation=orientation, meta=meta)


def _hdr_of(path: Path) -> Path:
    name = path.name[: -len(".img.gz")] if path.name.lower().endswith(".img.gz") else path.stem
    return path.with_name(name + ".hdr")


def head_mask(image: np.ndarray) -> np.ndarray:
    """Boolean head mask: above 15 % of the 99th percentile, largest part, holes filled.

    Args:
        image: (X, Y, Z) float volume.
    """
    from scipy import ndimage as ndi

    ref = np.percentile(image, 99)
    lo = min(0.0, float(image.min()))
    mask = image > lo + HEAD_THRESHOLD * (ref - lo)
    parts, n = ndi.label(mask)
    if n > 1:
        sizes = np.bincount(parts.ravel())
        sizes[0] = 0
        mask = parts == sizes.argmax()
    return ndi.binary_fill_holes(mask)


def intensity_window(image: np.ndarray, head: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)``: 0 (or the 0.5th percentile if negative values) and the head's 99.5th percentile.

    Args:
        image: (X, Y, Z) float volume.
        head: boolean head mask of the same shape.
    """
    lo = 0.0 if float(image.min()) >= 0 else float(np.percentile(image, 0.5))
    hi = float(np.percentile(image[head], HI_PERCENTILE)) if head.any() else float(image.max())
    if hi <= lo:
        hi = float(image.max())
    return lo, hi


def slice_grid(brain: np.ndarray, zooms, size: int = 256, n_slices: int = N_SLICES,
               z_range=Z_RANGE, fov_mm: float = FOV_MM) -> np.ndarray:
    """Voxel coordinates to sample, (3, n_slices, size, size), from a RAS brain mask.

    Row ``i`` runs left -> right (x grows), column ``j`` front -> back (y falls), slice ``s``
    bottom -> top over ``z_range`` of the brain's extent.

    Args:
        brain: (X, Y, Z) boolean brain (or head) mask in RAS voxel order.
        zooms: voxel size in mm along x, y, z.
        size: output pixels per side.
        n_slices: number of axial slices.
        z_range: (low, high) fractions of the brain's inferior-superior extent.
        fov_mm: in-plane field of view in mm.
    """
    if not brain.any():
        raise DataError("the brain mask is empty")
    zx, zy, zz = (float(z) for z in zooms)
    idx = [np.nonzero(brain.any(axis=tuple(a for a in range(3) if a != k)))[0] for k in range(3)]
    cx, cy = ((i[0] + i[-1]) / 2 for i in idx[:2])                   # bounding-box centre (voxels)
    z0, z1 = idx[2][0], idx[2][-1]
    zs = z0 + (z1 - z0) * np.linspace(z_range[0], z_range[1], n_slices)  # (S,) voxel z
    px = fov_mm / size                                                   # mm per pixel
    offs = (np.arange(size) - (size - 1) / 2) * px                       # mm from the centre
    vx = cx + offs / zx                                                  # rows: x grows
    vy = cy - offs / zy                                                  # cols: front first
    S, X, Y = np.meshgrid(zs, vx, vy, indexing="ij")                     # (S, size, size)
    return np.stack([X, Y, S]).astype(np.float32)


def grid_affine(grid: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """4x4 map from pixel ``(row, col, slice, 1)`` to world mm (RAS), for the manifest."""
    v0 = grid[:, 0, 0, 0]
    d_row = grid[:, 0, 1, 0] - v0 if grid.shape[2] > 1 else np.zeros(3)
    d_col = grid[:, 0, 0, 1] - v0 if grid.shape[3] > 1 else np.zeros(3)
    d_sl = grid[:, 1, 0, 0] - v0 if grid.shape[1] > 1 else np.zeros(3)
    m = np.eye(4)
    m[:3, :3] = np.stack([d_row, d_col, d_sl], 1)
    m[:3, 3] = v0
    return affine @ m


def cut_slices(image: Volume, labels: Volume | None = None, size: int = 256,
               n_slices: int = N_SLICES, z_range=Z_RANGE, fov_mm: float = FOV_MM):
    """Cut one subject into OASIS-like slices.

    Args:
        image: the T1 volume from :func:`read_volume`.
        labels: its tissue volume (``read_volume(..., labels=True)``) or None.
        size, n_slices, z_range, fov_mm: see :func:`slice_grid`.

    Returns:
        ``(images, masks, info)``: (S, size, size) uint8 images, masks in 0/85/170/255 (or
        None), and a dict with the intensity window, the brain extent used and the
        pixel -> world affine.

    Raises:
        DataError: the label volume's shape or orientation differs from the image's.
    """
    from scipy import ndimage as ndi

    if labels is not None:
        if labels.data.shape != image.data.shape or not np.allclose(labels.affine, image.affine,
                                                                    atol=1e-3):
            raise DataError(
                f"Label volume {labels.path} does not match its image {image.path}: shape "
                f"{labels.data.shape} vs {image.data.shape}, orientation {labels.orientation} vs "
                f"{image.orientation}. A mask must be in the image's voxel grid (same shape and "
                "affine); resample it onto the image (e.g. mri_convert -rl, flirt -applyxfm) or "
                "pair the right files.")
    head = head_mask(image.data)
    lo, hi = intensity_window(image.data, head)
    brain = labels.data > 0 if labels is not None else head
    grid = slice_grid(brain, image.zooms, size, n_slices, z_range, fov_mm)
    flat = grid.reshape(3, -1)
    vals = ndi.map_coordinates(image.data, flat, order=1, mode="constant", cval=lo)
    scaled = np.clip((vals - lo) / (hi - lo), 0, 1) * 255
    images = np.round(scaled).astype(np.uint8).reshape(grid.shape[1:])
    masks = None
    if labels is not None:
        lab = ndi.map_coordinates(labels.data, flat, order=0, mode="constant", cval=0)
        masks = (lab.astype(np.uint8) * 85).reshape(grid.shape[1:])
    info = {"intensity_window": [lo, hi],
            "brain_from": "labels > 0" if labels is not None else "head mask",
            "z_range": list(z_range), "pixel_to_world": grid_affine(grid, image.affine).tolist(),
            "orientation_in_file": image.orientation, "voxel_mm": list(image.zooms)}
    return images, masks, info
