"""Synthetic OASIS-like brain slices, so the whole tutorial runs with no download.

``python -m vqvae_lib.demo [--out data/demo] [--subjects 100] [--slices 24] [--seed 0]``

The OASIS course data are 2-D axial slices (256x256, 8-bit) of T1-weighted MRI with
tissue masks. We cannot ship them, so we *simulate subjects* from the MNI152 2009 template
that ships inside nilearn: the average T1 image of 152 adult brains and its grey-matter /
white-matter probability maps (Fonov et al., 2011, NeuroImage). No network is needed.

Every synthetic subject is the template seen through a random "anatomy + scanner":

1. **Pose and size** -- a small random affine (rotation of a few degrees, +-8 % scale,
   a few mm of shift), like heads positioned differently in the scanner.
2. **Anatomy** -- a random smooth *elastic* deformation at two scales (coarse: head shape;
   fine: gyri and sulci wiggle), as in elastic data augmentation (Simard et al., 2003).
3. **Ageing** -- one "age" number enlarges the ventricles (a radial warp around them) and
   thins the tissue at every tissue/CSF boundary (wider sulci), i.e. atrophy.
4. **Scanner** -- per-subject tissue contrast, a smooth multiplicative bias field
   (Sled et al., 1998), a gamma curve and mild noise.

The warped tissue maps give the masks (background, CSF, grey, white matter = 0, 85, 170,
255), so image and mask always agree. A synthetic scalp rim, patchy like OASIS's partly
removed skull, surrounds the brain. Slices are cut axially at OASIS-like levels (through
the ventricles and above) and oriented like OASIS: **the front of the head is at the left**.

Output, in exactly the course layout (``data.py`` reads it like real OASIS)::

    data/demo/
      demo_manifest.json                 # how it was made; marks the folder as synthetic
      keras_png_slices_data/
        keras_png_slices_train/case_001_slice_0.nii.png ...
        keras_png_slices_seg_train/seg_001_slice_0.nii.png ...
        (same for validate and test; subjects split 80/10/10)

Same seed -> same bytes (every subject draws from its own seeded RNG, so the number of
worker processes does not matter). The folder is written under a temporary name and swapped in
when complete (``vqvae_lib.folders.replace_folder``), so an interrupted run never leaves a
half-written data set, and ``--force`` never deletes a folder that is not a demo set.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..common import MASK_LEGEND, SPLITS, progress, quiet
from ..config_checks import check_count
from ..errors import cli
from ..folders import check_replaceable, replace_folder
from ..paths import data_root
from .anatomy import IMAGE_SIZE, Z_RANGE_MM, load_template, make_subject
from .files import split_subjects

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MANIFEST = "demo_manifest.json"
GENERATOR_VERSION = 2                # bump when the images change: older sets are rebuilt
_NAMES = dict(command="vqvae_lib.demo", option="--out", what="a demo data set")


def default_out_dir() -> Path:
    return data_root() / "demo"


def subject_ids(n_subjects: int) -> list[str]:
    """``"001"``, ``"002"``, ... (zero-padded like the OASIS file names)."""
    width = max(3, len(str(n_subjects)))
    return [f"{i:0{width}d}" for i in range(1, n_subjects + 1)]


def assign_splits(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Shuffle subjects with ``seed`` and cut 80/10/10: every subject is in exactly one split."""
    return split_subjects(ids, seed, SPLIT_FRACTIONS)


def _write_subject(job) -> str:
    """Worker: simulate one subject and write its image and mask PNGs."""
    from PIL import Image

    seed, index, sid, split, n_slices, root = job
    images, masks = make_subject(seed, index, n_slices)
    img_dir = Path(root) / f"keras_png_slices_{split}"
    seg_dir = Path(root) / f"keras_png_slices_seg_{split}"
    for k in range(n_slices):
        Image.fromarray(images[k], mode="L").save(img_dir / f"case_{sid}_slice_{k}.nii.png",
                                                  compress_level=6)
        Image.fromarray(masks[k], mode="L").save(seg_dir / f"seg_{sid}_slice_{k}.nii.png",
                                                 compress_level=6)
    return sid


def _init_worker():
    import torch

    torch.set_num_threads(1)
    load_template()


def check_options(subjects: int, slices: int, seed: int, workers: int | None) -> None:
    """Every option of :func:`build_demo` in range, before any work (a ConfigError names it).

    Args:
        subjects: ``--subjects`` (at least 3: one per split).
        slices: ``--slices``.
        seed: ``--seed``.
        workers: ``--workers`` (None: the default).
    """
    check_count("--subjects", subjects, 3, 100_000)
    check_count("--slices", slices, 1, 1000)
    check_count("--seed", seed, 0)
    if workers is not None:
        check_count("--workers", workers, 1, 256)


def build_demo(out: str | os.PathLike | None = None, subjects: int = 100, slices: int = 24,
             seed: int = 0, workers: int | None = None, force: bool = False,
             verbose: bool = True) -> Path:
    """Write the synthetic data set to ``out`` (default ``data/demo``); return its path.

    If ``out`` already holds a finished demo set it is kept (pass ``force=True`` to rebuild; an
    older generator's set is rebuilt). The new set is built beside ``out`` and swapped in when
    complete (:func:`vqvae_lib.folders.replace_folder`): a folder that is not a demo set, or
    holds files the generator did not make, is never deleted, with or without ``force``.

    Args:
        out: the output folder.
        subjects: simulated subjects (>= 3: one per split).
        slices: axial slices per subject.
        seed: the random seed (same seed, same bytes).
        workers: processes (default ``min(2, CPUs)``).
        force: rebuild an existing demo set.
        verbose: print progress.
    """
    check_options(subjects, slices, seed, workers)
    out = Path(out) if out else default_out_dir()
    if (out / MANIFEST).is_file() and not force:
        made = json.loads((out / MANIFEST).read_text())
        if made.get("version") == GENERATOR_VERSION:
            if verbose:
                print(f"demo data already present in {out}: {made.get('subjects')} subjects x "
                      f"{made.get('slices_per_subject')} slices, seed {made.get('seed')} "
                      "(use --force to rebuild)")
            return out
        if verbose:
            print(f"demo data in {out} was made by an older generator "
                  f"(v{made.get('version')} < v{GENERATOR_VERSION}); rebuilding")
        force = True
    check_replaceable(out, MANIFEST, force=force, **_NAMES)

    t0 = time.perf_counter()
    ids = subject_ids(subjects)
    splits = assign_splits(ids, seed)
    split_of = {sid: split for split, members in splits.items() for sid in members}
    workers = workers or min(2, os.cpu_count() or 1)

    def build(tmp: Path) -> dict:
        root = tmp / "keras_png_slices_data"
        for split in SPLITS:
            (root / f"keras_png_slices_{split}").mkdir(parents=True)
            (root / f"keras_png_slices_seg_{split}").mkdir(parents=True)
        jobs = [(seed, i, sid, split_of[sid], slices, str(root)) for i, sid in enumerate(ids)]
        if verbose:
            print(f"demo: simulating {subjects} subjects x {slices} slices from the MNI152 "
                  f"template (seed {seed}, {workers} worker(s)) -> {out}")
        bar = dict(total=len(jobs), desc="subjects", disable=quiet() or not verbose)
        load_template()  # once in the parent: forked workers share it
        if workers > 1:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method),
                                     initializer=_init_worker) as pool:
                for _ in progress(pool.map(_write_subject, jobs, chunksize=4), **bar):
                    pass
        else:
            for job in progress(jobs, **bar):
                _write_subject(job)
        return {
            "what": "SYNTHETIC OASIS-like brain MRI slices (not real subjects)",
            "made_from": "MNI152 2009 T1 template + grey/white-matter probability maps "
                         "shipped with nilearn (Fonov et al., 2011), per-subject random "
                         "affine, elastic deformation, ventricle/atrophy change, contrast, "
                         "bias field and noise",
            "generator": "vqvae_lib.demo", "version": GENERATOR_VERSION, "seed": seed,
            "subjects": subjects, "slices_per_subject": slices, "image_size": IMAGE_SIZE,
            "z_range_mm": list(Z_RANGE_MM), "mask_values": MASK_LEGEND,
            "splits": splits,
        }

    replace_folder(out, build, MANIFEST, force=force, **_NAMES)
    if verbose:
        per_split = "/".join(str(len(splits[name])) for name in SPLITS)
        print(f"demo: wrote {subjects * slices} slices ({per_split} subjects train/validate/test) "
              f"in {time.perf_counter() - t0:.0f} s")
    return out


def ensure_demo(out: str | os.PathLike | None = None, **kwargs) -> Path:
    """Build the demo data set if it is missing (what ``make data`` does); return its path."""
    return build_demo(out, **kwargs)                 # keeps a current set, rebuilds an old one


@cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vqvae_lib.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="output folder (default: data/demo)")
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--slices", type=int, default=24, help="axial slices per subject")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    ap.add_argument("--force", action="store_true",
                    help="rebuild an existing demo set (a folder of other files is never deleted)")
    ap.add_argument("--if-missing", action="store_true", help=argparse.SUPPRESS)  # the default
    a = ap.parse_args(argv)
    build_demo(a.out, a.subjects, a.slices, a.seed, a.workers, a.force)
    return 0
