"""The data-exploration figures of notebook 01: splits, intensities, tissue overlays, subjects.

Every function returns a matplotlib ``Figure`` and saves nothing (``viz.save_figure`` /
``viz.show`` do). Slices are shown as stored: the front of the head at the left.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from ..common import TISSUE_COLORS, TISSUE_NAMES, evenly_spaced
from ..viz import _grid, mask_to_rgba, tissue_legend, to_images
from .dataset import subject_overlap

SPLIT_COLORS = {"train": "#4c72b0", "validate": "#dd8452", "test": "#55a868"}


def overlay_masks(images, masks, titles=None, ncol: int = 3, alpha: float = 0.45,
                  suptitle: str | None = None, cell: float = 2.2) -> Figure:
    """For each slice: the image, and the image with its tissue mask painted over it."""
    imgs = to_images(images)
    masks = np.asarray(masks.cpu() if hasattr(masks, "cpu") else masks)
    if masks.ndim == 2:
        masks = masks[None]
    fig, axes = _grid(2 * len(imgs), 2 * ncol, cell)
    for i, (im, m) in enumerate(zip(imgs, masks, strict=True)):
        a, b = axes.flat[2 * i], axes.flat[2 * i + 1]
        a.imshow(im, cmap="gray", vmin=0, vmax=1)
        b.imshow(im, cmap="gray", vmin=0, vmax=1)
        b.imshow(mask_to_rgba(m, alpha), interpolation="nearest")
        a.set_title(titles[i] if titles is not None else "image", fontsize=8)
        b.set_title("+ tissue mask", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    tissue_legend(fig)
    return fig



def varied_slices(s, k: int) -> np.ndarray:
    """``k`` slices from evenly spread subjects, going from the lowest to the highest level."""
    ids = np.unique(s.subjects)
    picks = []
    for j, sid in enumerate(ids[evenly_spaced(len(ids), k)]):
        rows = np.nonzero(s.subjects == sid)[0]
        order = rows[np.argsort(s.slice_index[rows])]
        picks.append(order[int(round(j / max(k - 1, 1) * (len(order) - 1)))])
    return np.array(picks)


def _label(s, i) -> str:
    return f"subj {s.subjects[i]}, slice {s.slice_index[i]}"


def split_grid(sets: dict, per_split: int = 6, cell: float = 1.7) -> Figure:
    """One row per split: slices spread evenly over that split (different subjects, depths)."""
    fig, axes = plt.subplots(len(sets), per_split, figsize=(cell * per_split, (cell + 0.4) * len(sets)),
                             squeeze=False)
    for r, (name, s) in enumerate(sets.items()):
        idx = varied_slices(s, per_split)
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(idx):
                ax.imshow(s.images[idx[c]], cmap="gray", vmin=0, vmax=255)
                ax.set_title(_label(s, idx[c]), fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(f"{name}\n({len(s)} slices)", fontsize=9)
    fig.suptitle("Slices from each split (front of the head at the left)")
    fig.tight_layout()
    return fig


def intensity_histograms(sets: dict, max_images: int = 400) -> Figure:
    """Left: all pixel values per split (log counts). Right: brain pixels by tissue (train)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    bins = np.arange(257) - 0.5
    for name, s in sets.items():
        x = s.images[evenly_spaced(len(s), max_images)].ravel()
        a.hist(x, bins=bins, histtype="step", density=True, color=SPLIT_COLORS.get(name), label=name)
    a.set_yscale("log")
    a.set(xlabel="pixel value (0..255)", ylabel="fraction of pixels (log)",
          title="All pixels: mostly black background")
    a.legend()
    train = sets.get("train", next(iter(sets.values())))
    if train.masks is not None:
        idx = evenly_spaced(len(train), max_images)
        x, m = train.images[idx].ravel(), train.masks[idx].ravel()
        for label in (1, 2, 3):
            b.hist(x[m == label], bins=bins[::2], alpha=0.6, density=True,
                   color=TISSUE_COLORS[label], label=TISSUE_NAMES[label])
        b.legend()
        b.set_title("Inside the brain, by tissue mask (train)")
    else:
        b.hist(train.images.ravel()[train.images.ravel() > 0], bins=bins[::2], color="gray")
        b.set_title("Non-zero pixels (no masks loaded)")
    b.set(xlabel="pixel value (0..255)", ylabel="density")
    fig.tight_layout()
    return fig


def mean_std_images(s) -> Figure:
    """Pixel-wise mean and standard deviation over a split: where the anatomy varies."""
    x = s.images.astype(np.float32) / 255.0                               # (N, H, W)
    mean, std = x.mean(0), x.std(0)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.8))
    for ax, img, title, cmap in ((axes[0], mean, "mean", "gray"), (axes[1], std, "std", "magma")):
        h = ax.imshow(img, cmap=cmap)
        ax.set_title(f"{title} of {len(x)} {s.split} slices")
        ax.axis("off")
        fig.colorbar(h, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def slices_per_subject(sets: dict) -> Figure:
    """Left: slices per subject, coloured by split. Right: brain area against slice number."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1.6, 1]})
    x0 = 0
    for name, s in sets.items():
        ids, counts = np.unique(s.subjects, return_counts=True)
        a.bar(np.arange(x0, x0 + len(ids)), counts, width=1.0, color=SPLIT_COLORS.get(name),
              label=f"{name}: {len(ids)} subjects")
        x0 += len(ids)
    counts = np.concatenate([np.unique(s.subjects, return_counts=True)[1] for s in sets.values()])
    a.set(xlabel="subject (grouped by split)", ylabel="slices",
          title=f"Slices per subject: {counts.min()} to {counts.max()}" if counts.min() != counts.max()
          else f"Slices per subject: all {counts.min()}")
    a.legend(loc="lower right", fontsize=8)
    train = sets.get("train", next(iter(sets.values())))
    area = (train.masks > 0) if train.masks is not None else (train.images > 12)
    frac = area.mean(axis=(1, 2))
    levels = np.unique(train.slice_index)
    b.plot(levels, [frac[train.slice_index == k].mean() for k in levels], "o-", ms=3)
    b.set(xlabel="slice number in the file name", ylabel="brain fraction of the image",
          title="Which slice is where (train)")
    b.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def split_table(sets: dict) -> list[dict]:
    """Rows for printing: slices, subjects and subject overlap with the other splits."""
    overlap = subject_overlap(sets)
    rows = []
    for name, s in sets.items():
        shared = {b if a == name else a: len(v) for (a, b), v in overlap.items() if name in (a, b)}
        rows.append({"split": name, "slices": len(s), "subjects": s.n_subjects,
                     "slices/subject": round(len(s) / max(s.n_subjects, 1), 1),
                     **{f"shared with {k}": v for k, v in shared.items()}})
    return rows


def split_membership(sets: dict) -> Figure:
    """Subjects (columns) against splits (rows): each column is filled in exactly one row."""
    names = list(sets)
    ids = sorted(set().union(*(set(s.subjects.tolist()) for s in sets.values())))
    col = {sid: j for j, sid in enumerate(ids)}
    grid = np.zeros((len(names), len(ids)))
    for r, name in enumerate(names):
        for sid in np.unique(sets[name].subjects):
            grid[r, col[sid]] = r + 1
    colors = ["#f2f2f2"] + [SPLIT_COLORS.get(n, "gray") for n in names]
    fig, ax = plt.subplots(figsize=(11, 1.9))
    ax.imshow(grid, aspect="auto", cmap=ListedColormap(colors), vmin=0, vmax=len(names),
              interpolation="nearest")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"{len(ids)} subjects (sorted by id)")
    per_subject = (grid > 0).sum(0)
    ax.set_title(f"Split by subject: every subject in exactly one split "
                 f"({int((per_subject == 1).sum())}/{len(ids)}; in two or more: "
                 f"{int((per_subject > 1).sum())})")
    fig.tight_layout()
    return fig
