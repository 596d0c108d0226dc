"""Bring your own brains: a folder of T1 volumes -> the course's PNG slice layout.

    python -m vqvae_lib.slices SRC OUT [--size 256] [--slices 32] [--z-range 0.4 0.8]
                                       [--split-seed 0] [--labels auto] [--workers 2] [--force]
    make slices SRC=/path/to/volumes OUT=data/mine && make run-all DATA_DIR=data/mine

``SRC`` holds T1 volumes (``.nii``, ``.nii.gz``, Analyze ``.img/.hdr``, FreeSurfer ``.mgz``),
optionally with label volumes beside them (FreeSurfer ``aseg`` / ``aparc+aseg`` /
``aparc.a2009s+aseg``, FSL FAST ``*_seg``, OASIS-1 ``*_fseg``, or any 0..3 tissue map); the
pairing rule is in :mod:`vqvae_lib.data.volume_pairs`, the slicing and intensity rules in
:mod:`vqvae_lib.data.volumes`, the label table in :mod:`vqvae_lib.data.volume_labels`. ``OUT`` receives::

    OUT/slices_manifest.json                 # what was made from what, with which rules
    OUT/keras_png_slices_data/keras_png_slices_{train,validate,test}/case_<id>_slice_<n>.nii.png
    OUT/keras_png_slices_data/keras_png_slices_seg_{train,validate,test}/seg_<id>_slice_<n>.nii.png

Subjects are split 80/10/10 with the loader's own :func:`~vqvae_lib.data.files.split_subjects`,
so no subject is in two splits. The folder is written under a temporary name and swapped in
when complete (:func:`vqvae_lib.folders.replace_folder`): ``OUT`` may never be ``SRC``, hold it
or lie inside it, and ``--force`` replaces only an earlier output of this command. A bad input
stops with one line naming the file or option and the fix (exit code 2).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..common import MASK_LEGEND, SPLITS, progress, quiet
from ..config_checks import MAX_IMAGE_SIZE, check_count
from ..errors import ConfigError, DataError, cli
from ..folders import check_replaceable, replace_folder
from ..paths import repo_root
from .anatomy import load_template
from .files import split_subjects
from .volume_pairs import Subject, find_subjects
from .volumes import FOV_MM, N_SLICES, Z_RANGE, cut_slices, read_volume

__all__ = ["MANIFEST", "convert", "convert_subject", "example_volumes", "main"]

MANIFEST = "slices_manifest.json"
COMMAND = "vqvae_lib.slices"
WHAT = "a slice folder made by vqvae_lib.slices"
LAYOUT = "keras_png_slices_data"


def convert_subject(job: dict) -> dict:
    """Read, cut and write one subject's PNGs; returns its manifest entry.

    Args:
        job: ``{"subject": Subject, "split": str, "root": layout folder, "size", "n_slices",
            "z_range", "fov_mm", "table", "masks": bool}``.
    """
    from PIL import Image

    s: Subject = job["subject"]
    image = read_volume(s.image)
    labels = read_volume(s.labels, labels=True, table=job["table"]) \
        if s.labels is not None and job["masks"] else None
    images, masks, info = cut_slices(image, labels, job["size"], job["n_slices"],
                                     job["z_range"], job["fov_mm"])
    root, split = Path(job["root"]), job["split"]
    for k in range(len(images)):
        Image.fromarray(images[k], mode="L").save(
            root / f"keras_png_slices_{split}" / f"case_{s.id}_slice_{k}.nii.png", compress_level=6)
        if masks is not None:
            Image.fromarray(masks[k], mode="L").save(
                root / f"keras_png_slices_seg_{split}" / f"seg_{s.id}_slice_{k}.nii.png",
                compress_level=6)
    tissue = {}
    if masks is not None:
        tissue = {name: round(float((masks == 85 * c).mean()), 4)
                  for c, name in enumerate(("background", "CSF", "grey", "white"))}
    return {"id": s.id, "split": split, "image": str(s.image),
            "labels": str(s.labels) if labels is not None else None,
            "label_kind": labels.meta["label_kind"] if labels is not None else None,
            "ignored": [str(p) for p in s.ignored], "slices": int(len(images)),
            "tissue_fractions": tissue, **info}


def check_conversion(size: int, n_slices: int, z_range, fov_mm: float, workers) -> None:
    """Every option of :func:`convert` in range, before any work (a ConfigError names it).

    Args:
        size: ``--size``.
        n_slices: ``--slices``.
        z_range: ``--z-range``.
        fov_mm: ``--fov-mm``.
        workers: ``--workers`` (None: the default).
    """
    check_count("--size", size, 8, MAX_IMAGE_SIZE)
    check_count("--slices", n_slices, 1, 1000)
    if workers is not None:
        check_count("--workers", workers, 1, 256)
    if not 0 <= z_range[0] < z_range[1] <= 1:
        raise ConfigError(f"--z-range {tuple(z_range)} must be two fractions 0 <= LOW < HIGH <= 1")
    if not 0 < fov_mm <= 1000:
        raise ConfigError(f"--fov-mm must be a length in mm in (0, 1000], got {fov_mm!r}")


def _init_worker():
    import torch

    torch.set_num_threads(1)


def convert(src, out, size: int = 256, n_slices: int = N_SLICES, z_range=Z_RANGE,
            fov_mm: float = FOV_MM, split_seed: int = 0, table: str = "auto",
            masks: bool = True, workers: int | None = None, force: bool = False,
            verbose: bool = True) -> dict:
    """Convert every subject under ``src`` into the course layout at ``out``; returns the manifest.

    Args:
        src: folder of T1 volumes (and label volumes), searched recursively.
        out: output folder: absent, empty, or (with ``force``) an earlier output of this
            command holding only the files it made; never the source, a folder holding it or
            inside it, a run folder, the repository, the home folder or a filesystem root.
        size: output pixels per side (256: 1 mm pixels over ``fov_mm`` = 256 mm, like OASIS).
        n_slices: axial slices per subject.
        z_range: (low, high) fractions of the brain's inferior-superior extent.
        fov_mm: in-plane field of view in mm.
        split_seed: seed of the 80/10/10 split by subject (the loader's rule).
        table: label table, ``"auto"``, ``"freesurfer"`` or ``"tissue"``.
        masks: write masks (False: images only, label volumes ignored).
        workers: processes (default ``min(2, CPUs)``).
        force: replace an earlier output of this command (swapped in when complete).
        verbose: print a progress bar and a summary line.

    Raises:
        DataError: bad input (named in the message).
        OutputFolderError: ``out`` may not be replaced (see :mod:`vqvae_lib.folders`).
        ConfigError: an option out of range.
    """
    t0 = time.perf_counter()
    check_conversion(size, n_slices, z_range, fov_mm, workers)
    check_replaceable(out, MANIFEST, inputs=[src], force=force, command=COMMAND, what=WHAT)
    subjects = find_subjects(src)
    if masks:
        missing = [s for s in subjects if s.labels is None]
        if missing and len(missing) < len(subjects):
            raise DataError(
                f"{len(missing)} of {len(subjects)} subjects have no label volume, e.g. "
                f"{missing[0].image}: the loader needs a mask for every image or none. Add "
                "their segmentations (see the pairing rule in docs/DATA.md), or pass --no-masks.")
        masks = not missing
    splits = split_subjects([s.id for s in subjects], split_seed)
    split_of = {sid: k for k, ids in splits.items() for sid in ids}

    manifest: dict = {}

    def build(tmp: Path) -> dict:
        root = tmp / LAYOUT
        for split in SPLITS:
            (root / f"keras_png_slices_{split}").mkdir(parents=True)
            if masks:
                (root / f"keras_png_slices_seg_{split}").mkdir(parents=True)
        jobs = [dict(subject=s, split=split_of[s.id], root=str(root), size=size, n_slices=n_slices,
                     z_range=tuple(z_range), fov_mm=fov_mm, table=table, masks=masks)
                for s in subjects]
        n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(jobs)))
        bar = dict(total=len(jobs), desc="subjects", disable=quiet() or not verbose)
        if n_workers > 1:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with ProcessPoolExecutor(n_workers, mp_context=mp.get_context(method),
                                     initializer=_init_worker) as pool:
                entries = list(progress(pool.map(convert_subject, jobs), **bar))
        else:
            entries = [convert_subject(j) for j in progress(jobs, **bar)]
        manifest.update({
            "what": "axial slices cut from T1 volumes by vqvae_lib.slices",
            "source": str(Path(src).resolve()), "image_size": size, "slices_per_subject": n_slices,
            "z_range_of_brain_extent": list(z_range), "fov_mm": fov_mm,
            "orientation": "RAS voxel order; rows left->right, columns front->back (front of the "
                           "head at the left, as in OASIS)",
            "intensity_rule": "255 * (v - lo) / (hi - lo), clipped; hi = 99.5th percentile inside "
                              "the head, lo = 0 (0.5th percentile if negative values)",
            "mask_values": MASK_LEGEND if masks else None,
            "split_seed": split_seed, "splits": splits, "subjects": entries,
            "seconds": round(time.perf_counter() - t0, 1),
        })
        return manifest

    replace_folder(out, build, MANIFEST, inputs=[src], force=force, command=COMMAND, what=WHAT)
    if verbose:
        n = {k: len(v) for k, v in splits.items()}
        print(f"slices: wrote {len(subjects) * n_slices} slices of {len(subjects)} subjects "
              f"({n['train']}/{n['validate']}/{n['test']} train/validate/test) "
              f"{'with' if masks else 'without'} masks to {out} in {time.perf_counter() - t0:.0f} s")
        if len(subjects) < 3:
            print("slices: fewer than 3 subjects, so the validate and test splits are empty; the "
                  "course needs at least 3 subjects (10 or more is better).")
    return manifest


def example_volumes(folder) -> Path:
    """A folder with one T1 volume and its labels, for `notebooks/appendix_own_volumes.ipynb`.

    The real FreeSurfer subject in ``../shared/volumes`` (or ``$VQVAE_SHARED_DIR/volumes``)
    when it exists; else the demo's MNI152 template (Fonov et al., 2011) written to ``folder``
    as ``mni152_T1.nii.gz`` with its tissue map ``mni152_T1_seg.nii.gz`` (0..3).

    Args:
        folder: where to write the template volumes if the shared subject is absent.
    """
    import nibabel as nib
    import numpy as np

    shared = Path(os.environ.get("VQVAE_SHARED_DIR") or repo_root().parent / "shared") / "volumes"
    if (shared / "norm.mgz").is_file():
        return shared
    vol, origin, _ = load_template()                          # (1, 5, Z, Y, X) at 1 mm
    t1, gm, wm, brain = (vol[0, c].numpy().transpose(2, 1, 0) for c in range(4))
    brain = brain > 0.5
    csf = np.clip(brain - gm - wm, 0, 1)
    tissue = ((np.argmax(np.stack([csf, gm, wm]), 0) + 1) * brain).astype(np.uint8)
    affine = np.eye(4)
    affine[:3, 3] = origin
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(t1, np.float32), affine),
             folder / "mni152_T1.nii.gz")
    nib.save(nib.Nifti1Image(tissue, affine), folder / "mni152_T1_seg.nii.gz")
    return folder


@cli
def main(argv=None) -> int:
    """``python -m vqvae_lib.slices SRC OUT``: see the module docstring; 2 on bad input.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    ap = argparse.ArgumentParser(prog="python -m vqvae_lib.slices",
                                 description="T1 volumes -> the course's PNG slice layout.")
    ap.add_argument("src", help="folder of T1 volumes (+ optional label volumes)")
    ap.add_argument("out", help="output folder (new or empty), e.g. data/mine")
    ap.add_argument("--size", type=int, default=256, help="pixels per side (default 256)")
    ap.add_argument("--slices", type=int, default=N_SLICES, help="axial slices per subject")
    ap.add_argument("--z-range", type=float, nargs=2, default=Z_RANGE, metavar=("LOW", "HIGH"),
                    help="fractions of the brain's inferior-superior extent (default 0.4 0.8)")
    ap.add_argument("--fov-mm", type=float, default=FOV_MM, help="in-plane field of view, mm")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--labels", choices=("auto", "freesurfer", "tissue"), default="auto",
                    help="label table (default: decide by the values)")
    ap.add_argument("--no-masks", action="store_true", help="write images only")
    ap.add_argument("--workers", type=int, default=None, help="processes (default min(2, CPUs))")
    ap.add_argument("--force", action="store_true",
                    help="replace an earlier output of this command (only the files it made)")
    a = ap.parse_args(argv)
    convert(a.src, a.out, a.size, a.slices, tuple(a.z_range), a.fov_mm, a.split_seed,
            a.labels, not a.no_masks, a.workers, a.force)
    return 0
