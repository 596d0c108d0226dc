"""Slice files on disk: list and pair them, decode and check one PNG, resize.

``data.py`` builds on these; they are public for notebooks and tests (``read_image``,
``read_mask``, ``list_split``, ``split_subjects``).

**Policy for imperfect files** (a student wants the data to load, and to be told):

* RGB / palette / grey+alpha PNGs are converted to 8-bit grey (luma), with a warning.
* 16-bit (or 32-bit) PNGs are scaled to 0..255 by each image's own maximum, with a warning.
* Images whose size differs from the split's usual size are resized (area averaging when
  shrinking, bilinear when enlarging; masks nearest-neighbour), with a warning.
* Non-PNG files are skipped with a warning (hidden files such as ``.DS_Store`` silently).

Refused with a :class:`~vqvae_lib.errors.DataError` naming the file and the fix: a PNG that
does not decode, a mask with values other than 0/85/170/255 (or labels 0..3), a mask without
its image or an image without its mask, a mask whose size differs from its image's, an empty
or missing split folder. (Table: ``docs/DATA.md``.)
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..common import MASK_VALUES, SPLITS, progress
from ..errors import DataError

IMAGE_RE = re.compile(r"^case_(?P<subject>.+?)_slice_(?P<slice>\d+)(?:\.nii)?\.png$", re.I)
MASK_RE = re.compile(r"^seg_(?P<subject>.+?)_slice_(?P<slice>\d+)(?:\.nii)?\.png$", re.I)


class DataWarning(UserWarning):
    """Something in the data was fixed up on the fly (converted, resized, skipped)."""


# ----------------------------------------------------------------------------------------
# Listing and pairing files
# ----------------------------------------------------------------------------------------
def find_pngs(folder: Path) -> tuple[list[Path], list[Path]]:
    """(PNG files, other visible files) in ``folder``, sorted by name.

    A folder that cannot be listed, a symbolic link loop or a link to a missing file is a
    DataError naming it (not a raw ``OSError``).
    """
    pngs, stray = [], []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise os_data_error(Path(folder), e, "data folder") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                continue
            if entry.is_symlink() and not os.path.exists(entry.path):
                raise FileNotFoundError(2, "No such file or directory", entry.path)
        except OSError as e:
            raise os_data_error(Path(entry.path), e) from None
        (pngs if entry.name.lower().endswith(".png") else stray).append(Path(entry.path))
    return pngs, stray


def os_data_error(path: Path, err: OSError, what: str = "file") -> DataError:
    """A DataError for an OS error on a data file or folder: what is wrong and the fix."""
    link = ""
    try:
        if path.is_symlink():
            link = f" (a symbolic link to {os.readlink(path)})"
    except OSError:
        pass
    if err.errno == errno.ELOOP:
        why = "is a symbolic link loop: point the link at the real file, or delete it"
    elif err.errno == errno.ENOENT and link:
        why = "is a dangling symbolic link (its target is missing): fix the link, or delete it"
    elif err.errno == errno.ENOENT:
        why = "vanished while it was being read: check the folder and run again"
    elif err.errno in (errno.EACCES, errno.EPERM):
        why = ("cannot be read (permission denied): make it readable (chmod a+r; folders also "
               "a+x) or copy the data somewhere you can read")
    else:
        why = f"cannot be read ({err.strerror or err}): check the disk and the path"
    return DataError(f"The {what} {path}{link} {why}.")


def split_subjects(subjects, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[str]]:
    """Deterministic train/validate/test split **by subject** (no subject in two splits)."""
    ids = sorted(set(map(str, subjects)))
    order = np.random.default_rng([seed, 10_000]).permutation(len(ids))
    n_val = max(1, round(len(ids) * fractions[1])) if len(ids) >= 3 else 0
    n_test = max(1, round(len(ids) * fractions[2])) if len(ids) >= 3 else 0
    n_train = len(ids) - n_val - n_test
    parts = (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
    return {s: sorted(ids[i] for i in p) for s, p in zip(SPLITS, parts, strict=True)}


def parse_name(path: Path, pattern: re.Pattern, unparsed: list) -> tuple[str, int]:
    m = pattern.match(path.name)
    if m:
        return m["subject"], int(m["slice"])
    unparsed.append(path)
    return path.stem, 0


def list_split(root: Path, split: str, source: str,
               masks: bool = True) -> tuple[list[Path], list[Path] | None]:
    """Image paths of ``split`` and their mask paths (or None), checked pairwise, in order."""
    stray, unparsed = [], []
    if source != "custom":
        img_dir, seg_dir = root / f"keras_png_slices_{split}", root / f"keras_png_slices_seg_{split}"
        if not img_dir.is_dir() and img_dir.is_symlink():
            raise os_data_error(img_dir, FileNotFoundError(2, "missing"), "split folder")
        if not img_dir.is_dir():
            raise DataError(f"Split folder {img_dir} is missing. The course layout has "
                            "keras_png_slices_{train,validate,test}; restore it from the zip.")
        images, s1 = find_pngs(img_dir)
        masks, s2 = find_pngs(seg_dir) if masks and seg_dir.is_dir() else (None, [])
        stray += s1 + s2
        if not images:
            raise DataError(f"Split folder {img_dir} contains no PNG images. Copy its "
                            "case_<id>_slice_<n>.nii.png files there (or re-unpack the zip).")
    else:                                    # plain folder: split by subject, deterministically
        everything, stray = find_pngs(root)
        images = [p for p in everything if not MASK_RE.match(p.name)]
        masks = [p for p in everything if MASK_RE.match(p.name)] if masks else None
        seg_dir = root
        keep = set(split_subjects([parse_name(p, IMAGE_RE, [])[0] for p in images])[split])
        images = [p for p in images if parse_name(p, IMAGE_RE, [])[0] in keep]
        if not images:
            raise DataError(f"{root} has too few subjects for a '{split}' split (need >= 3 "
                            "subjects, named case_<id>_slice_<n>.png).")
        if masks:
            masks = [p for p in masks if parse_name(p, MASK_RE, [])[0] in keep]
    if stray:
        warnings.warn(f"data: skipped {len(stray)} non-PNG file(s), e.g. {stray[0]}",
                      DataWarning, stacklevel=3)
    keyed = {}
    for p in images:
        keyed[parse_name(p, IMAGE_RE, unparsed)] = p
    if unparsed:
        warnings.warn(f"data: {len(unparsed)} image name(s) do not match case_<id>_slice_<n>.nii.png,"
                      f" e.g. {unparsed[0]}; each such file counts as its own subject.",
                      DataWarning, stacklevel=3)
    keys = sorted(keyed, key=lambda k: (k[0], k[1]))
    if not masks:                            # no seg folder, an empty one, or masks=False
        return [keyed[k] for k in keys], None
    mask_of = {parse_name(p, MASK_RE, []): p for p in masks}
    for k, p in mask_of.items():
        if k not in keyed:
            raise DataError(f"Mask {p} has no image (expected case_{k[0]}_slice_{k[1]}.nii.png in "
                            f"{images[0].parent}). Restore the image, or delete the mask.")
    for k in keys:
        if k not in mask_of:
            raise DataError(f"Image {keyed[k]} has no mask (expected seg_{k[0]}_slice_{k[1]}.nii.png "
                            f"in {seg_dir}). Restore the mask, delete the image, or load with masks=False.")
    return [keyed[k] for k in keys], [mask_of[k] for k in keys]


# ----------------------------------------------------------------------------------------
# Decoding one file
# ----------------------------------------------------------------------------------------
def _open(path: Path):
    from PIL import Image

    try:
        im = Image.open(path)
        im.load()
        return im
    except OSError as e:
        if e.errno is not None:          # the OS refused (permission, loop, vanished), not PIL
            raise os_data_error(path, e) from None
        raise DataError(f"Cannot decode {path} ({type(e).__name__}: {e}). The file is damaged "
                        "or not a PNG: copy it again from the original zip, or delete it "
                        "(and its mask).") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
        raise DataError(f"Cannot decode {path} ({type(e).__name__}: {e}). The file is damaged "
                        "or not a PNG: copy it again from the original zip, or delete it "
                        "(and its mask).") from None


def _gray8(im, path: Path) -> tuple[np.ndarray, str | None]:
    """8-bit grey pixels and a note when a conversion was needed (see module policy)."""
    if im.mode == "L":
        return np.asarray(im), None
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        peak = a.max()
        if a.min() >= 0 and peak <= 255 and np.all(a == np.round(a)):
            return a.astype(np.uint8), f"{im.mode} -> 8-bit (values already 0..255)"
        a = np.clip(a, 0, None) * (255.0 / peak if peak > 0 else 0.0)
        return np.round(a).astype(np.uint8), f"{im.mode} -> 8-bit grey (scaled by its maximum)"
    return np.asarray(im.convert("L")), f"{im.mode} -> 8-bit grey"


def resize_image(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (H, W) to ``size``: area average when shrinking (antialiased), else bilinear."""
    from PIL import Image

    if a.shape == tuple(size):
        return a
    shrink = size[0] <= a.shape[0] and size[1] <= a.shape[1]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(a).resize((size[1], size[0]), method))


def resize_mask(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize labels (H, W) to ``size`` with nearest neighbour (labels must stay labels)."""
    from PIL import Image

    if m.shape == tuple(size):
        return m
    return np.asarray(Image.fromarray(m).resize((size[1], size[0]), Image.Resampling.NEAREST))


def read_image(path, size=None) -> np.ndarray:
    """One slice as (H, W) uint8 (converted to 8-bit grey; resized if ``size`` is given)."""
    with _open(Path(path)) as im:
        a, _ = _gray8(im, Path(path))
    return resize_image(a, as_size(size)) if size else a


def read_mask(path, size=None) -> np.ndarray:
    """One mask as (H, W) uint8 labels 0..3; DataError if it holds other values."""
    path = Path(path)
    with _open(path) as im:
        m = np.asarray(im.convert("L") if im.mode in ("RGB", "RGBA", "P", "LA") else im)
    values = np.unique(m)
    if set(values.tolist()) <= set(MASK_VALUES):
        labels = (m // 85).astype(np.uint8)
    elif set(values.tolist()) <= {0, 1, 2, 3}:
        labels = m.astype(np.uint8)
    else:
        bad = [int(v) for v in values if v not in MASK_VALUES][:6]
        raise DataError(f"Mask {path} has values {bad} besides 0/85/170/255 (background, CSF, grey, "
                        "white matter). Was it resized with interpolation or saved as JPEG? Export "
                        "it again with nearest-neighbour resampling, or delete it and its image.")
    return resize_mask(labels, as_size(size)) if size else labels


def as_size(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)


def decode_all(paths, size, kind: str, desc: str, verbose: bool):
    """Decode ``paths`` with threads (PIL releases the GIL) -> (N, H, W) uint8, shapes, notes.

    With a requested ``size`` every slice is written straight into one preallocated array
    (no second copy of the split in memory); otherwise slices of an unusual size are resized
    to the most common one.
    """
    out = np.empty((len(paths), *size), np.uint8) if size else [None] * len(paths)

    def one(i):
        p = paths[i]
        if kind == "mask":
            a, note = read_mask(p), None
        else:
            with _open(p) as im:
                a, note = _gray8(im, p)
        out[i] = resize_mask(a, size) if kind == "mask" and size else (
            resize_image(a, size) if size else a)
        return a.shape, note

    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        res = list(progress(pool.map(one, range(len(paths))), total=len(paths), desc=desc,
                            leave=False, disable=not verbose, mininterval=1.0))
    shapes, notes = [r[0] for r in res], [r[1] for r in res]
    usual = Counter(shapes).most_common(1)[0][0]
    odd = [p for p, s in zip(paths, shapes, strict=True) if s != usual]
    if odd and kind == "image":
        warnings.warn(f"data: {len(odd)} image(s) are not {usual[0]}x{usual[1]} like the rest, "
                      f"e.g. {odd[0]}; resized them.", DataWarning, stacklevel=4)
    if not size:
        resize = resize_mask if kind == "mask" else resize_image
        out = np.stack([a if a.shape == usual else resize(a, usual) for a in out])
    return out, shapes, notes
