"""OASIS brain slices (or the synthetic demo set): find, check, decode once, cache.

The course distributes OASIS-1 (Marcus et al., 2007) as 2-D axial slices::

    keras_png_slices_data/
      keras_png_slices_train/      case_<id>_slice_<n>.nii.png   9664 images (302 subjects)
      keras_png_slices_seg_train/  seg_<id>_slice_<n>.nii.png    tissue masks
      ..._validate/ (1120)   ..._test/ (544)                      32 slices per subject

Images are 256x256 8-bit grey ('L'); masks hold 0/85/170/255 = background/CSF/grey/white
matter, which we turn into labels 0..3. ``load_split`` returns a :class:`SliceSet`.

**Where the data comes from** (``resolve_data_dir``): the ``data_dir`` argument, else
``$VQVAE_DATA_DIR``, else ``data/oasis`` if it exists, else the synthetic ``data/demo``
(``make data``). A folder may be the split folders' parent or hold ``keras_png_slices_data/``.
A plain folder of PNGs without split folders is split 80/10/10 **by subject** (seeded), so no
subject's slices leak from training into evaluation.

**Decode once.** PNG decoding is slow next to a small CPU model. The first load writes the
split as uint8 ``.npy`` files under ``data/cache/``, keyed by a hash of the file list (names,
sizes, modification times) and the requested size: change, add or delete a PNG and the cache
is rebuilt. Writes go to a temporary name and are renamed, so a crash never leaves a
half-written cache.

**Imperfect files** (policy in ``files.py`` and ``docs/DATA.md``): RGB and 16-bit PNGs
are converted to 8-bit grey and odd-sized images resized, each with a ``DataWarning``; a file
that cannot be used (corrupt PNG, bad mask values, a mask without its image, an empty split
folder, a missing data folder) raises ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..common import SPLITS, evenly_spaced
from ..errors import DataError
from ..paths import data_root, default_cache_dir
from .cache import load_array
from .files import IMAGE_RE, DataWarning, as_size, find_pngs, list_split, parse_name

LAYOUT_DIR = "keras_png_slices_data"
DEMO_MANIFEST = "demo_manifest.json"


@dataclass
class SliceSet:
    """One split, decoded: every slice with its mask, subject and slice number."""

    images: np.ndarray          # (N, H, W) uint8, at the requested size
    masks: np.ndarray | None    # (N, H, W) uint8 labels 0..3, or None
    subjects: np.ndarray        # (N,) str subject ids, e.g. "001"
    slice_index: np.ndarray     # (N,) int slice number parsed from the file name
    paths: list[str]            # source PNG per image
    split: str                  # "train" | "validate" | "test"
    source: str                 # "oasis" | "demo" | "custom"
    root: Path
    cache_hit: bool = False     # True when the arrays came from data/cache
    n_in_split: int = 0         # slices in the whole split (more than len() when capped)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_subjects(self) -> int:
        return len(np.unique(self.subjects))

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:])

    def tensors(self, device=None):
        """All images as float in [0, 1], shape (N, 1, H, W) (moved as uint8, converted there)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.images))                # (N, H, W) uint8
        return x.to(device).unsqueeze(1).float().div_(255.0)                   # (N, 1, H, W)

    def mask_tensors(self, device=None):
        """Tissue labels 0..3 as ``torch.long``, shape (N, H, W)."""
        import torch

        if self.masks is None:
            raise DataError(f"The {self.split} split of {self.root} was loaded without masks "
                            f"(no keras_png_slices_seg_{self.split} folder, or masks=False).")
        return torch.from_numpy(np.ascontiguousarray(self.masks)).to(device).long()

    def subset(self, index) -> SliceSet:
        """A new SliceSet with the slices at ``index`` (int array, slice or boolean mask)."""
        idx = np.arange(len(self))[index]
        return replace(self, images=self.images[idx],
                       masks=None if self.masks is None else self.masks[idx],
                       subjects=self.subjects[idx], slice_index=self.slice_index[idx],
                       paths=[self.paths[i] for i in idx])


# ----------------------------------------------------------------------------------------
# Finding the data
# ----------------------------------------------------------------------------------------
def _normalise_root(root: Path) -> Path:
    """The folder that holds the split folders (or the PNGs), looking inside wrappers."""
    for cand in (root / LAYOUT_DIR, *sorted(root.glob(f"*/{LAYOUT_DIR}"))):
        if cand.is_dir():
            return cand
    return root


def _has_splits(root: Path) -> bool:
    return any((root / f"keras_png_slices_{s}").is_dir() for s in SPLITS)


def resolve_data_dir(data_dir=None) -> tuple[Path, str]:
    """``(root, source)``: the ``data_dir`` argument > ``$VQVAE_DATA_DIR`` > data/oasis > data/demo.

    ``source`` is ``"demo"`` for the synthetic set, ``"oasis"`` for a folder in the course
    layout and ``"custom"`` for a plain folder of PNGs.
    """
    origin = "data_dir argument"
    if data_dir is None and os.environ.get("VQVAE_DATA_DIR"):
        data_dir, origin = os.environ["VQVAE_DATA_DIR"], "$VQVAE_DATA_DIR"
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        if not given.is_dir():
            raise DataError(f"Data folder {given} (from the {origin}) does not exist. Point it at "
                            f"the folder holding {LAYOUT_DIR}/ (OASIS), or leave it unset to use "
                            "data/oasis or the synthetic demo set (make data).")
    else:
        oasis, demo = data_root() / "oasis", data_root() / "demo"
        if oasis.is_dir():
            given = oasis
        elif (demo / DEMO_MANIFEST).is_file():
            given = demo
        else:
            raise DataError(f"No data found: neither {oasis} nor {demo} exists. Run `make data` "
                            "(or `python -m vqvae_lib.demo`) to build the synthetic demo set, or "
                            f"unpack the OASIS course data into {oasis}.")
    root = _normalise_root(given)
    marks = [given / DEMO_MANIFEST, root / DEMO_MANIFEST]
    if root.name == LAYOUT_DIR:                       # given the inner folder of the demo set
        marks.append(root.parent / DEMO_MANIFEST)
    if any(m.is_file() for m in marks):
        return root, "demo"
    if _has_splits(root):
        return root, "oasis"
    if not find_pngs(root)[0]:
        raise DataError(f"{given} holds neither the OASIS split folders "
                        f"({LAYOUT_DIR}/keras_png_slices_train, ...) nor PNG images. Unpack the "
                        "course zip there, or point data_dir / $VQVAE_DATA_DIR elsewhere.")
    return root, "custom"


def split_exists(split: str, data_dir=None) -> bool:
    """True when the data folder has ``split`` (always for a plain folder of PNGs, which is
    split by subject); a folder may hold only the split that is asked for.

    Args:
        split: ``"train"``, ``"validate"`` or ``"test"``.
        data_dir: the data folder (see :func:`resolve_data_dir`).
    """
    root, source = resolve_data_dir(data_dir)
    return source == "custom" or (root / f"keras_png_slices_{split}").exists()


# ----------------------------------------------------------------------------------------
# Public loaders
# ----------------------------------------------------------------------------------------
def load_split(split: str, data_dir=None, size=None, masks: bool = True, cache_dir=None,
               verbose: bool = True, use_cache: bool = True, limit: int = 0) -> SliceSet:
    """Load one split as a :class:`SliceSet` (decoding PNGs only when the cache is stale).

    Prints one line ``data: <split> ...`` saying what was loaded, from where, and the source.

    Args:
        split: ``"train"``, ``"validate"`` or ``"test"``.
        data_dir: the data folder (see :func:`resolve_data_dir`).
        size: an int (square) or (H, W) to resize to, e.g. 128 on CPU; None keeps 256x256.
        masks: also load the tissue masks (None in the result if the split has none).
        cache_dir: the cache folder (default ``data/cache``).
        verbose: print the summary line.
        use_cache: read and write the cache.
        limit: keep only ``limit`` evenly spaced slices (every subject, every depth), chosen
            from the file list **before** any PNG is decoded or resized (``max_train_images``,
            ``max_eval_images``); 0 keeps all. ``n_in_split`` still counts the whole split.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    t0 = time.perf_counter()
    root, source = resolve_data_dir(data_dir)
    size = as_size(size) if size else None
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    image_paths, mask_paths = list_split(root, split, source, masks=masks)
    n_in_split = len(image_paths)
    if limit and limit < n_in_split:
        keep = evenly_spaced(n_in_split, limit)
        image_paths = [image_paths[i] for i in keep]
        mask_paths = None if mask_paths is None else [mask_paths[i] for i in keep]
    images, hit, img_shapes = load_array("images", split, root, image_paths, size, cache_dir,
                                          use_cache, verbose)
    labels = None
    if mask_paths:
        labels, mhit, mask_shapes = load_array("masks", split, root, mask_paths,
                                                size or images.shape[1:], cache_dir, use_cache,
                                                verbose)
        hit = hit and mhit
        if img_shapes and mask_shapes:
            for ip, mp, a, b in zip(image_paths, mask_paths, img_shapes, mask_shapes, strict=True):
                if a != b:
                    raise DataError(f"Mask {mp} is {b[0]}x{b[1]} but its image {ip} is "
                                    f"{a[0]}x{a[1]}: they do not belong together. Replace one.")
    subjects, slices = zip(*(parse_name(p, IMAGE_RE, []) for p in image_paths), strict=True)
    out = SliceSet(images=images, masks=labels, subjects=np.array(subjects),
                   slice_index=np.array(slices, dtype=np.int64),
                   paths=[str(p) for p in image_paths], split=split, source=source, root=root,
                   cache_hit=hit, n_in_split=n_in_split)
    if verbose:
        what = {"demo": "synthetic demo subjects", "oasis": "OASIS layout",
                "custom": "plain PNG folder, split by subject"}[source]
        how = "cache" if hit else f"decoded in {time.perf_counter() - t0:.1f} s, cached"
        cap = f" (capped, of {n_in_split})" if len(out) < n_in_split else ""
        print(f"data: {split}: {len(out)} slices{cap} of {out.n_subjects} subjects, "
              f"{out.size[0]}x{out.size[1]}{' + masks' if labels is not None else ''} "
              f"from {root} ({source}: {what}) [{how}]")
    return out


def load_splits(data_dir=None, size=None, masks: bool = True, **kwargs) -> dict[str, SliceSet]:
    """``{"train": SliceSet, "validate": ..., "test": ...}``; warns if a subject is in two."""
    sets = {s: load_split(s, data_dir, size=size, masks=masks, **kwargs) for s in SPLITS}
    leaks = subject_overlap(sets)
    if any(leaks.values()):
        pair, shared = next((k, v) for k, v in leaks.items() if v)
        warnings.warn(f"data: subject(s) {sorted(shared)[:5]} appear in both {pair[0]} and "
                      f"{pair[1]}: evaluation would be optimistic. Move each subject's slices "
                      "into one split.", DataWarning, stacklevel=2)
    return sets


def subject_overlap(sets: dict[str, SliceSet]) -> dict[tuple[str, str], set[str]]:
    """Subjects shared by each pair of splits -- all empty when the split is by subject."""
    names = list(sets)
    ids = {k: set(np.unique(v.subjects).tolist()) for k, v in sets.items()}
    return {(a, b): ids[a] & ids[b] for i, a in enumerate(names) for b in names[i + 1:]}


def folder_tree(root=None, files_per_folder: int = 2) -> str:
    """A printable tree of the data folder: each folder, its first files and its file count."""
    root = Path(root) if root else resolve_data_dir()[0]
    lines = [f"{root}/"]
    def order(d):  # images before masks, train -> validate -> test
        split = next((i for i, s in enumerate(SPLITS) if d.name.endswith(s)), len(SPLITS))
        return "_seg_" in d.name, split, d.name

    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=order):
        names = sorted(os.listdir(d))
        lines.append(f"  {d.name}/   ({len(names)} files)")
        lines += [f"    {n}" for n in names[:files_per_folder]] + (["    ..."] if names else [])
    files = sorted(p.name for p in root.iterdir() if p.is_file())
    lines += [f"  {n}" for n in files[:files_per_folder + 2]]
    return "\n".join(lines)


def describe_source(root=None, source=None) -> str:
    """A few plain sentences on where the slices come from (printed by notebook 01)."""
    if root is None or source is None:
        root, source = resolve_data_dir(root)
    root = Path(root)
    if source == "demo":
        import json

        manifest = next((json.loads(p.read_text()) for p in (root / DEMO_MANIFEST,
                         root.parent / DEMO_MANIFEST) if p.is_file()), {})
        return (f"SYNTHETIC demo data in {root}: {manifest.get('subjects', '?')} made-up subjects x "
                f"{manifest.get('slices_per_subject', '?')} axial slices, not real people.\n"
                f"Made from: {manifest.get('made_from', 'the MNI152 template in nilearn')}.\n"
                f"Generator: python -m vqvae_lib.demo (seed {manifest.get('seed', '?')}). Put the "
                "OASIS course data in data/oasis to use real brains.")
    if source == "oasis":
        return (f"OASIS-1 slices in the course layout, from {root}: T1-weighted MRI of adults aged "
                "18-96 (Marcus et al., 2007, https://www.oasis-brains.org), preprocessed and cut "
                "into 256x256 axial PNG slices with FAST-style tissue masks. Use under the OASIS "
                "data use terms.")
    return (f"A plain folder of PNG slices ({root}), split 80/10/10 by subject (seed 0).")
