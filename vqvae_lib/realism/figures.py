"""Figures of how real generated slices are (notebook 06). Every function returns a matplotlib
``Figure`` and saves nothing; the notebook calls ``viz.show(fig, run_dir, "06_name")``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..common import TISSUE_COLORS, TISSUE_NAMES
from ..viz import show_image, to_images

__all__ = ["samples_and_neighbours", "realism_bars", "tissue_histograms", "patch_distances"]


def samples_and_neighbours(samples, neighbours, mse, ncol_pairs: int = 4) -> Figure:
    """Each generated slice beside its nearest training slice (pixel MSE).

    Args:
        samples: (n, 1, H, W) generated slices.
        neighbours: (n, 1, H, W) their nearest training slices.
        mse: (n,) the distances.
        ncol_pairs: pairs per row.
    """
    a, b = to_images(samples), to_images(neighbours)
    n = len(a)
    nrow = int(np.ceil(n / ncol_pairs))
    fig = Figure(figsize=(2.6 * ncol_pairs, 1.55 * nrow + 0.5))
    axes = fig.subplots(nrow, 2 * ncol_pairs, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        r, c = divmod(k, ncol_pairs)
        show_image(axes[r, 2 * c], a[k], f"sample {k}")
        show_image(axes[r, 2 * c + 1], b[k], f"nearest, MSE {float(mse[k]):.3f}")
    fig.suptitle("Generated slices (left of each pair) and their nearest training slice (right)")
    fig.tight_layout()
    return fig


def realism_bars(scores: dict) -> Figure:
    """The realism metrics beside their floors (real test vs real training slices).

    Left: 1-NN two-sample accuracies (0.5 = indistinguishable) and precision/recall. Right:
    Wasserstein-1 distance of each tissue's per-slice fraction.

    Args:
        scores: from :func:`vqvae_lib.realism.scoring.realism_scores` (``generation.json``).
    """
    fig = Figure(figsize=(11, 3.8))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    keys = [("one_nn_shape", "1-NN acc.\nshape 32x32"), ("one_nn_intensity", "1-NN acc.\nintensity hist."),
            ("precision", "precision\n(k = 3)"), ("recall", "recall\n(k = 3)")]
    x = np.arange(len(keys))
    left.bar(x - 0.2, [scores[k]["generated"] for k, _ in keys], 0.4, label="generated vs test",
             color="#4e79a7")
    left.bar(x + 0.2, [scores[k]["floor"] for k, _ in keys], 0.4, label="floor: train vs test",
             color="#bbbbbb")
    left.axhline(0.5, ls=":", c="k", lw=1)
    left.set_xticks(x, [lab for _, lab in keys], fontsize=8)
    left.set_ylim(0, 1.05)
    left.legend(fontsize=8, loc="lower right")
    left.set_title("two-sample tests (1-NN: 0.5 is ideal) and precision/recall (1 is ideal)",
                   fontsize=9)
    if "tissue_w1" in scores:
        names = list(scores["tissue_w1"])
        x = np.arange(len(names))
        right.bar(x - 0.2, [scores["tissue_w1"][k]["generated"] for k in names], 0.4,
                  color=[TISSUE_COLORS[TISSUE_NAMES.index(k)] for k in names], edgecolor="k",
                  label="generated vs test")
        right.bar(x + 0.2, [scores["tissue_w1"][k]["floor"] for k in names], 0.4, color="#bbbbbb",
                  label="floor: train vs test")
        right.set_xticks(x, names, fontsize=8)
        right.legend(fontsize=8)
        right.set_title("tissue fractions per slice: Wasserstein-1 (0 is ideal)", fontsize=9)
    else:
        right.axis("off")
    fig.tight_layout()
    return fig


def tissue_histograms(generated: np.ndarray, test: np.ndarray) -> Figure:
    """Distributions of per-slice tissue fractions, generated vs test (one panel per tissue).

    Args:
        generated: (n, 4) fractions of generated slices.
        test: (m, 4) fractions of test slices.
    """
    fig = Figure(figsize=(12, 2.8))
    axes = fig.subplots(1, 4)
    for t, ax in enumerate(axes):
        bins = np.linspace(0, max(generated[:, t].max(), test[:, t].max()) + 1e-6, 20)
        ax.hist(test[:, t], bins, alpha=0.5, color="#888888", label="test")
        ax.hist(generated[:, t], bins, histtype="step", lw=2, color=TISSUE_COLORS[t],
                label="generated")
        ax.set_title(TISSUE_NAMES[t], fontsize=9)
        ax.set_xlabel("fraction of the slice", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def patch_distances(scores: dict) -> Figure:
    """Patch memorisation: how far each 16x16 patch of the samples, and of real test slices, lies
    from its nearest training patch (histograms of the two sets of distances).

    Args:
        scores: ``realism_scores(...)["patch_memorisation"]`` with its ``"distances"``.
    """
    d_gen = np.asarray(scores["distances"]["generated"])
    d_test = np.asarray(scores["distances"]["test"])
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    bins = np.linspace(0, max(d_gen.max(), d_test.max()) + 1e-6, 40)
    ax.hist(d_test, bins, alpha=0.5, color="#888888", label="real test slices", density=True)
    ax.hist(d_gen, bins, histtype="step", lw=2, color="#4e79a7", label="generated", density=True)
    ax.axvline(scores["copy_threshold"], ls=":", c="k", lw=1,
               label="near-copy threshold (1st percentile of test)")
    ax.set_xlabel("RMSE of a 16x16 patch to its nearest training patch")
    ax.set_ylabel("density")
    ax.set_title("Patch memorisation: samples should not sit closer to training patches than "
                 "real slices do", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
