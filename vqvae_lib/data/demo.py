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
worker processes does not matter). The folder is written under a temporary name and renamed
when complete, so an interrupted run never leaves a half-written data set.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..common import SPLITS
from ..errors import cli

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
IMAGE_SIZE = 256                    # pixels; 1 pixel ~ 1 mm, like the OASIS slices
Z_RANGE_MM = (-6.0, 44.0)           # axial levels in MNI space: ventricles -> upper brain
MANIFEST = "demo_manifest.json"
ATROPHY_MAX = 0.35                  # tissue thinned at CSF borders for the oldest "age"
CSF_WEIGHT = 3.0                    # CSF wins a pixel at a third of the probability of a tissue
SHARPEN = 2.0                       # tissue fractions ** SHARPEN: crisper boundaries
GENERATOR_VERSION = 2                # bump when the images change: older sets are rebuilt


def default_out_dir() -> Path:
    from ..paths import data_root

    return data_root() / "demo"


# ----------------------------------------------------------------------------------------
# The template, prepared once per process
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_template():
    """MNI152 (1 mm) as one tensor (1, 5, Z, Y, X): T1, GM, WM, brain mask, mm outside brain.

    Returns ``(volume, origin_mm, t1_levels)`` where ``t1_levels`` are the template's
    typical T1 values in CSF, GM and WM (used to remap its contrast per subject).
    """
    import torch
    from nilearn import datasets
    from scipy import ndimage as ndi

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = t1_img.get_fdata(dtype=np.float32)                                  # (X, Y, Z)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    brain = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32)
    csf = np.clip(brain - gm - wm, 0, 1)
    levels = [float(np.median(t1[(p > 0.8) & (brain > 0.5)])) for p in (csf, gm, wm)]

    # crop to the brain + 24 mm (room for the scalp rim), keep voxel -> mm bookkeeping
    idx = np.argwhere(brain > 0.5)
    lo = np.maximum(idx.min(0) - 24, 0)
    hi = np.minimum(idx.max(0) + 25, brain.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    outside_mm = ndi.distance_transform_edt(brain[crop] < 0.5).astype(np.float32)
    vol = np.stack([t1[crop], gm[crop], wm[crop], brain[crop], outside_mm])  # (5, X, Y, Z)
    vol = np.ascontiguousarray(vol.transpose(0, 3, 2, 1))                    # (5, Z, Y, X)
    origin = t1_img.affine[:3, 3] + lo                                        # mm of voxel lo
    return torch.from_numpy(vol)[None], origin.astype(np.float64), levels


def _smooth_noise(rng, shape, sigma):
    """Gaussian-smoothed white noise with unit standard deviation, shape ``shape``."""
    from scipy import ndimage as ndi

    n = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return n / (n.std() + 1e-8)


def _rotation(rng, max_deg):
    """A random 3-D rotation with each Euler angle uniform in +-max_deg (x, y, z) degrees."""
    ax, ay, az = np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(max_deg))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


# ----------------------------------------------------------------------------------------
# One subject
# ----------------------------------------------------------------------------------------
def make_subject(seed: int, subject: int, n_slices: int = 24, size: int = IMAGE_SIZE):
    """Simulate one subject: returns ``(images, masks)``, both (S, size, size) uint8.

    ``images`` are T1-like slices (front of the head at the left); ``masks`` hold the PNG
    values 0/85/170/255 for background/CSF/grey/white matter.
    """
    import torch
    import torch.nn.functional as F

    vol, origin, t1_levels = load_template()
    rng = np.random.default_rng([seed, subject])
    S, H = n_slices, size

    # ---- output grid in "subject mm": x = left-right (rows), y = front-back (cols), z ----
    z_lo, z_hi = Z_RANGE_MM
    z = np.linspace(z_lo, z_hi, S) + rng.uniform(-3, 3)                          # (S,)
    r = (np.arange(H) - (H - 1) / 2) * 1.0
    y = -(np.arange(H) - (H - 1) / 2) * 1.0 - 17.0   # column 0 = front (MNI brain centre y=-17)
    Z, X, Y = np.meshgrid(z, r, y, indexing="ij")                                 # (S, H, H)
    pts = np.stack([X, Y, Z], -1).reshape(-1, 3).astype(np.float32)              # (P, 3) mm

    # ---- 1. pose and size: template point = A @ subject point + t ------------------------
    scale = rng.uniform(0.93, 1.07) * rng.uniform(0.97, 1.03, 3)
    A = _rotation(rng, (3, 3, 7)) @ np.diag(1 / scale)
    t = np.array([rng.uniform(-3, 3), rng.uniform(-3, 3), 0.0])
    p = pts @ A.T.astype(np.float32) + t.astype(np.float32)                      # (P, 3)

    # ---- 3. ageing: pull sample points towards the ventricles -> they look bigger ------
    age = rng.uniform(0, 1)
    centre = np.array([0.0, -8.0, 14.0], np.float32)
    width = np.array([16.0, 30.0, 14.0], np.float32)
    g = np.exp(-0.5 * (((p - centre) / width) ** 2).sum(-1, keepdims=True))     # (P, 1)
    p = centre + (p - centre) * (1 - np.float32(0.35 * age) * g)

    # ---- 2. elastic deformation at two scales (noise volumes at 4 mm, smoothed) ---------
    grid_shape = tuple(int(np.ceil(s / 4)) + 1 for s in vol.shape[:1:-1])[::-1]  # (z, y, x)
    coarse = _smooth_noise(rng, (3, *grid_shape), (0, 6, 6, 6)) * 3.0            # mm
    fine = _smooth_noise(rng, (3, *grid_shape), (0, 1.2, 1.2, 1.2)) * 1.2        # mm
    vol_ext = np.array(vol.shape[:1:-1], dtype=np.float32)                       # (X, Y, Z)
    org = origin.astype(np.float32)

    def to_grid(q):  # mm -> grid_sample's [-1, 1] coordinates of the cropped volume
        return torch.from_numpy((q - org) / (vol_ext - 1) * 2 - 1)

    grid = to_grid(p).view(1, S, H, H, 3)
    disp = torch.from_numpy((coarse + fine).astype(np.float32))[None]            # (1, 3, z, y, x)
    d = F.grid_sample(disp, grid, mode="bilinear", padding_mode="border", align_corners=True)
    p = p + d[0].reshape(3, -1).T.numpy()                                        # (P, 3)

    # ---- sample all template channels at once (border = empty space, > 24 mm outside) --
    grid = to_grid(p).view(1, S, H, H, 3)
    s = F.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True)
    t1, gm, wm, brain, outside = s[0].numpy()                                    # each (S, H, H)

    # atrophy: thin the tissue where it meets CSF (partial-volume voxels), widening sulci
    tissue = gm + wm
    a = ATROPHY_MAX * age
    keep = np.clip((tissue - a) / (1 - a), 0, 1) / np.maximum(tissue, 1e-6)
    gm_a, wm_a = gm * keep, wm * keep
    csf_a = np.clip(brain - gm_a - wm_a, 0, 1)

    # ---- masks: background outside the brain, else the most likely tissue --------------
    # The template is an average of 152 brains, so its sulci are blurred into partial CSF;
    # weighting CSF (and sharpening the fractions below) brings the thin sulci back, as in an
    # individual's segmentation.
    p3 = np.stack([CSF_WEIGHT * csf_a, gm_a, wm_a]) ** SHARPEN                  # (3, S, H, H)
    frac = p3 / np.maximum(p3.sum(0), 1e-6)
    label = np.argmax(p3, 0) + 1                                                 # (S, H, H) 1..3
    label[brain < 0.5] = 0
    masks = (label * 85).astype(np.uint8)

    # ---- 4. scanner: contrast from the tissue maps + the template's own texture ---------
    # tissue levels (CSF, GM, WM) on a 0..1 scale, near OASIS's typical 35/77/115 of 255
    lv = (np.array([0.14, 0.30, 0.45]) + rng.normal(0, [0.025, 0.02, 0.02])).astype(np.float32)
    mix = lambda c, g_, w_: c * lv[0] + g_ * lv[1] + w_ * lv[2]  # noqa: E731
    tmpl = np.interp(t1, [0.0, *t1_levels, 1.0], [0.0, *lv, lv[2] * 1.15]).astype(np.float32)
    texture = tmpl - mix(np.clip(brain - tissue, 0, 1), gm, wm)  # what tissue maps miss
    inside = (brain > 0.02) * mix(*frac) + 0.7 * texture

    # scalp rim outside the brain: thin dark CSF/bone gap, bright fat, fading; patchy like
    # the partly removed skull of OASIS
    rim_depth, rim_width = rng.uniform(5.5, 8.0), rng.uniform(1.5, 2.8)
    patch = _smooth_noise(rng, (S // 4 + 2, 12, 12), 1.5)
    patch = F.interpolate(torch.from_numpy(patch)[None, None], size=(S, H, H),
                          mode="trilinear", align_corners=True)[0, 0].numpy()
    strength = np.clip(rng.uniform(0.25, 0.8) + 0.6 * patch, 0, 1)
    rim = strength * 0.6 * np.exp(-0.5 * ((outside - rim_depth) / rim_width) ** 2)
    soft = 0.06 * np.clip((15 - outside) / 5, 0, 1) * (outside > 1.5)
    gap = lv[0] * np.clip(1 - outside / 2.5, 0, 1)
    b = np.clip(brain, 0, 1)
    img = b * inside + (1 - b) * (rim + soft + gap)

    # bias field (smooth, multiplicative) and gamma
    bz, bx, by = (np.linspace(-1, 1, n, dtype=np.float32) for n in (S, H, H))
    BZ, BX, BY = np.meshgrid(bz * 0.3, bx, by, indexing="ij")
    c = rng.normal(0, 0.08, 4).astype(np.float32)
    img = img * np.exp(c[0] * BX + c[1] * BY + c[2] * BZ + c[3] * (BX**2 + BY**2 - 0.6))
    img = np.clip(img, 0, None) ** rng.uniform(0.85, 1.15) * rng.uniform(0.9, 1.15)

    # mild Rician-like noise inside the head, exact zeros in the far background
    sigma = rng.uniform(0.006, 0.018)
    noise = rng.standard_normal((2, *img.shape), dtype=np.float32) * np.float32(sigma)
    noisy = np.hypot(img + noise[0], noise[1])
    img = np.where(outside < 18, noisy, np.float32(0))
    images = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return images, masks


# ----------------------------------------------------------------------------------------
# The data set: subjects -> splits -> PNG files
# ----------------------------------------------------------------------------------------
def subject_ids(n_subjects: int) -> list[str]:
    """``"001"``, ``"002"``, ... (zero-padded like the OASIS file names)."""
    width = max(3, len(str(n_subjects)))
    return [f"{i:0{width}d}" for i in range(1, n_subjects + 1)]


def assign_splits(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Shuffle subjects with ``seed`` and cut 80/10/10: every subject is in exactly one split."""
    from .files import split_subjects

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


def generate(out: str | os.PathLike | None = None, subjects: int = 100, slices: int = 24,
             seed: int = 0, workers: int | None = None, force: bool = False,
             verbose: bool = True) -> Path:
    """Write the synthetic data set to ``out`` (default ``data/demo``); return its path.

    If ``out`` already holds a finished demo set it is kept (pass ``force=True`` to rebuild).
    """
    from tqdm.auto import tqdm

    from ..common import quiet

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
    if out.exists() and not force and any(out.iterdir()):
        from ..errors import DataError

        raise DataError(f"{out} exists and is not a demo data set (no {MANIFEST}). Choose "
                        "another --out, or delete the folder first.")
    if subjects < 3 or slices < 1:
        raise ValueError("need at least 3 subjects (one per split) and 1 slice")

    t0 = time.perf_counter()
    ids = subject_ids(subjects)
    splits = assign_splits(ids, seed)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    root = tmp / "keras_png_slices_data"
    for split in SPLITS:
        (root / f"keras_png_slices_{split}").mkdir(parents=True)
        (root / f"keras_png_slices_seg_{split}").mkdir(parents=True)
    split_of = {sid: split for split, members in splits.items() for sid in members}
    jobs = [(seed, i, sid, split_of[sid], slices, str(root)) for i, sid in enumerate(ids)]

    workers = workers or min(2, os.cpu_count() or 1)
    if verbose:
        print(f"demo: simulating {subjects} subjects x {slices} slices from the MNI152 "
              f"template (seed {seed}, {workers} worker(s)) -> {out}")
    bar = dict(total=len(jobs), desc="subjects", disable=quiet() or not verbose)
    try:
        load_template()  # once in the parent: forked workers share it
        if workers > 1:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method),
                                     initializer=_init_worker) as pool:
                for _ in tqdm(pool.map(_write_subject, jobs, chunksize=4), **bar):
                    pass
        else:
            for job in tqdm(jobs, **bar):
                _write_subject(job)
        manifest = {
            "what": "SYNTHETIC OASIS-like brain MRI slices (not real subjects)",
            "made_from": "MNI152 2009 T1 template + grey/white-matter probability maps "
                         "shipped with nilearn (Fonov et al., 2011), per-subject random "
                         "affine, elastic deformation, ventricle/atrophy change, contrast, "
                         "bias field and noise",
            "generator": "vqvae_lib.demo", "version": GENERATOR_VERSION, "seed": seed,
            "subjects": subjects, "slices_per_subject": slices, "image_size": IMAGE_SIZE,
            "z_range_mm": list(Z_RANGE_MM), "mask_values": {"0": "background", "85": "CSF",
                                                             "170": "grey matter",
                                                             "255": "white matter"},
            "splits": splits,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        n = {k: len(v) for k, v in splits.items()}
        print(f"demo: wrote {subjects * slices} slices ({n['train']}/{n['validate']}/{n['test']} "
              f"subjects train/validate/test) in {time.perf_counter() - t0:.0f} s")
    return out


def ensure_demo(out: str | os.PathLike | None = None, **kwargs) -> Path:
    """Build the demo data set if it is missing (what ``make data`` does); return its path."""
    return generate(out, **kwargs)                 # keeps a current set, rebuilds an old one


@cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vqvae_lib.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="output folder (default: data/demo)")
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--slices", type=int, default=24, help="axial slices per subject")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder exists")
    ap.add_argument("--if-missing", action="store_true", help=argparse.SUPPRESS)  # the default
    a = ap.parse_args(argv)
    generate(a.out, a.subjects, a.slices, a.seed, a.workers, a.force)
    return 0
