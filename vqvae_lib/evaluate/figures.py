"""Figures for the evaluation notebook (05) and ``python -m vqvae_lib.predict``.

Each function takes plain arrays/tensors, returns a matplotlib ``Figure`` and draws nothing
else; ``save_figure`` writes it to ``<run_dir>/figures/<name>.png``. Images are (N, 1, H, W)
or (N, H, W) in [0, 1] and are always shown with ``vmin=0, vmax=1`` so that grey levels are
comparable across panels (matplotlib would otherwise stretch each panel's contrast).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

GREY = dict(cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
ERROR = dict(cmap="magma", vmin=0.0, interpolation="nearest")
SSIM_CMAP = dict(cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")


def _np(images) -> np.ndarray:
    """(N, 1, H, W) / (N, H, W) / (H, W) tensor or array -> float numpy without the channel."""
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    return images[:, 0] if images.ndim == 4 else images


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------------------------------
def plot_predictions(originals, recons, ssim_values, labels=None, title: str = ""):
    """Two rows: originals over reconstructions, each reconstruction titled with its SSIM."""
    x, y = _np(originals), _np(recons)
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(1.7 * n, 3.9), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(x[i], **GREY)
        axes[1, i].imshow(y[i], **GREY)
        axes[0, i].set_title(labels[i] if labels else f"#{i}", fontsize=8)
        axes[1, i].set_xlabel(f"SSIM {ssim_values[i]:.3f}", fontsize=9)
        _off(axes[0, i])
        _off(axes[1, i])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ssim_explained(original, recon, components: dict, title: str = ""):
    """Original, reconstruction, |error|; then SSIM's luminance, contrast, structure and map."""
    x, y = _np(original), _np(recon)
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.6))
    axes[0, 0].imshow(x, **GREY)
    axes[0, 0].set_title("original")
    axes[0, 1].imshow(y, **GREY)
    axes[0, 1].set_title("reconstruction")
    err = np.abs(x - y)
    im = axes[0, 2].imshow(err, vmax=max(err.max(), 1e-3), **ERROR)
    axes[0, 2].set_title(f"|error| (MSE {np.mean((x - y) ** 2):.4f})")
    fig.colorbar(im, ax=axes[0, 2], fraction=0.046)
    axes[0, 3].axis("off")
    axes[0, 3].text(0.0, 0.5,
                    "SSIM = l(x,y) * c(x,y) * s(x,y)\n\n"
                    "l: local means alike?\n    (brightness)\n"
                    "c: local std devs alike?\n    (contrast)\n"
                    "s: local correlation\n    (structure)\n\n"
                    "windows: Gaussian, sigma 1.5\n"
                    "[0, 1] images, data_range = 1",
                    va="center", family="monospace", fontsize=10)
    names = [("luminance", "l: luminance"), ("contrast", "c: contrast"),
             ("structure", "s: structure"), ("ssim", "SSIM map = l*c*s")]
    for ax, (key, label) in zip(axes[1], names, strict=True):
        m = components[key]
        im = ax.imshow(m, **SSIM_CMAP)
        ax.set_title(f"{label}\nmean {m.mean():.3f}")
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in axes.flat:
        _off(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_ssim_distribution(per_image: dict, target: float = 0.6, title: str = ""):
    """Histogram of per-image SSIM in both conventions, the target line and the means."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    g, u = per_image["ssim_gaussian"], per_image["ssim_uniform"]
    lo = min(g.min(), u.min(), target) - 0.02
    bins = np.linspace(lo, 1.0, 41)
    ax.hist(g, bins=bins, alpha=0.65, color="C0", label=f"Gaussian (headline): mean {g.mean():.3f}")
    ax.hist(u, bins=bins, histtype="step", lw=2, color="C1",
            label=f"uniform 7x7 (skimage default): mean {u.mean():.3f}")
    ax.axvline(target, color="crimson", ls="--", lw=2, label=f"course target {target}")
    ax.axvline(g.mean(), color="C0", lw=1.5)
    ax.axvline(np.percentile(g, 5), color="C0", lw=1, ls=":", label=f"5th percentile {np.percentile(g, 5):.3f}")
    ax.set_xlabel("SSIM per image")
    ax.set_ylabel("images")
    ax.set_title(title or f"per-image SSIM, {len(g)} images")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_best_worst(originals, recons, scores, labels=None, k: int = 6):
    """The ``k`` best and ``k`` worst reconstructions: original, reconstruction, |error| rows."""
    x, y = _np(originals), _np(recons)
    order = np.argsort(scores)
    picks = {"best": order[::-1][:k], "worst": order[:k]}
    err_max = max(float(np.abs(x - y)[np.concatenate(list(picks.values()))].max()), 1e-3)
    fig, axes = plt.subplots(6, k, figsize=(1.8 * k, 11.5), squeeze=False)
    for block, (name, idx) in enumerate(picks.items()):
        for j, i in enumerate(idx):
            r = 3 * block
            axes[r, j].imshow(x[i], **GREY)
            axes[r + 1, j].imshow(y[i], **GREY)
            axes[r + 2, j].imshow(np.abs(x[i] - y[i]), vmax=err_max, **ERROR)
            lab = f"{labels[i]}\n" if labels is not None else ""
            axes[r, j].set_title(f"{lab}SSIM {scores[i]:.3f}", fontsize=8)
        axes[3 * block, 0].set_ylabel(f"{name}: original")
        axes[3 * block + 1, 0].set_ylabel("reconstruction")
        axes[3 * block + 2, 0].set_ylabel(f"|error| (0..{err_max:.2f})")
    for ax in axes.flat:
        _off(ax)
    fig.suptitle(f"best {k} (top three rows) and worst {k} (bottom three rows) by Gaussian SSIM")
    fig.tight_layout()
    return fig


def plot_ssim_vs_position(slice_index, scores, foreground_fraction, target: float = 0.6):
    """SSIM against the slice's position in the head, and against how much head it shows."""
    slice_index = np.asarray(slice_index)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes[0].scatter(slice_index, scores, s=8, alpha=0.4, color="C0")
    pos = np.unique(slice_index)
    if len(pos) > 1:
        edges = np.linspace(pos.min(), pos.max() + 1, min(25, len(pos)) + 1)
        which = np.digitize(slice_index, edges) - 1
        centers, means = [], []
        for b in range(len(edges) - 1):
            sel = which == b
            if sel.any():
                centers.append(slice_index[sel].mean())
                means.append(np.median(scores[sel]))
        axes[0].plot(centers, means, color="k", lw=2, label="median per bin")
        axes[0].legend(fontsize=8)
    axes[0].set_xlabel("slice index (position along the scan axis)")
    axes[1].scatter(foreground_fraction, scores, s=8, alpha=0.4, color="C2")
    axes[1].set_xlabel("fraction of the slice that is head (non-background)")
    for ax in axes:
        ax.axhline(target, color="crimson", ls="--", lw=1.5)
        ax.set_ylabel("SSIM (Gaussian)")
    fig.suptitle("where in the head does the model struggle?")
    fig.tight_layout()
    return fig


def plot_matched_examples(originals, recons_by_method: dict, scores_by_method: dict, idx):
    """A few slices: the original and each method's reconstruction at the same rate."""
    x = _np(originals)
    names = list(recons_by_method)
    fig, axes = plt.subplots(len(idx), len(names) + 1, figsize=(2.4 * (len(names) + 1), 2.5 * len(idx)),
                             squeeze=False)
    for r, i in enumerate(idx):
        axes[r, 0].imshow(x[i], **GREY)
        axes[r, 0].set_title("original" if r == 0 else "", fontsize=9)
        for c, name in enumerate(names, start=1):
            axes[r, c].imshow(_np(recons_by_method[name])[i], **GREY)
            axes[r, c].set_title(f"{name}\nSSIM {scores_by_method[name][i]:.3f}", fontsize=8)
    for ax in axes.flat:
        _off(ax)
    fig.tight_layout()
    return fig


def plot_range_mistake(scores: dict, reported: float | None = None):
    """Per-image SSIM scored correctly vs on [-1, 1] data (right and wrong data_range)."""
    c = scores["correct"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.2, 1]})
    ax = axes[0]
    ax.scatter(c, scores["pm1_range1"], s=10, alpha=0.5, color="C3",
               label="[-1, 1] data, data_range=1 (the reference)")
    ax.scatter(c, scores["pm1_range2"], s=10, alpha=0.5, color="C7",
               label="[-1, 1] data, data_range=2")
    lo = min(min(v.min() for v in scores.values()), 0.5)
    ax.plot([lo, 1], [lo, 1], "k--", lw=1, label="same score")
    ax.set_xlabel("SSIM, [0, 1] data, data_range=1 (correct)")
    ax.set_ylabel("SSIM of the same reconstruction, scored otherwise")
    ax.legend(fontsize=8)
    ax = axes[1]
    names = ["correct\n[0,1], L=1", "[-1,1], L=2", "reference\n[-1,1], L=1"]
    vals = [c.mean(), scores["pm1_range2"].mean(), scores["pm1_range1"].mean()]
    bars = ax.bar(names, vals, color=["C0", "C7", "C3"])
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center")
    if reported is not None:
        ax.axhline(reported, color="k", ls=":", label=f"reference's reported {reported}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean SSIM over the split")
    fig.suptitle("one set of reconstructions, three SSIM numbers")
    fig.tight_layout()
    return fig


def plot_tissue_errors(tissue: dict, example_mask=None, example_error=None):
    """Per-tissue mean absolute error and mean SSIM-map value (+ one slice's mask and error)."""
    names = list(tissue)
    extra = example_mask is not None and example_error is not None
    fig, axes = plt.subplots(1, 4 if extra else 2, figsize=(16 if extra else 9.5, 3.9))
    palette = {"background": "0.6", "CSF": "C0", "grey matter": "C1", "white matter": "C2"}
    colors = [palette.get(n, "C3") for n in names]
    for ax, key, label in ((axes[0], "mae", "mean |error|"), (axes[1], "ssim", "mean SSIM map")):
        vals = [tissue[n][key] for n in names]
        bars = ax.bar(names, vals, color=colors)
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(label)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    if extra:
        from matplotlib.colors import ListedColormap

        tissue_cmap = ListedColormap(["0.1", "C0", "C1", "C2"])   # the bars' colours
        axes[2].imshow(np.asarray(example_mask), cmap=tissue_cmap, vmin=-0.5, vmax=3.5,
                       interpolation="nearest")
        axes[2].set_title("tissue labels (0 bg, 1 CSF, 2 GM, 3 WM)", fontsize=9)
        im = axes[3].imshow(_np(example_error), **ERROR)
        axes[3].set_title("|error| of the same slice", fontsize=9)
        fig.colorbar(im, ax=axes[3], fraction=0.046)
        _off(axes[2])
        _off(axes[3])
    fig.suptitle("reconstruction error by tissue class")
    fig.tight_layout()
    return fig
