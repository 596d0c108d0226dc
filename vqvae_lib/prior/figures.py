"""Figures of notebook 06. Every function returns a matplotlib ``Figure`` and saves nothing;
the notebook calls ``viz.show(fig, run_dir, "06_name")``. Image grids come from
:func:`vqvae_lib.viz.image_grid` / :func:`vqvae_lib.viz.image_rows`.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..common import TISSUE_COLORS, TISSUE_NAMES
from ..viz import image_grid, show_image, to_images
from .model import GatedPixelCNN
from .receptive import plain_pixelcnn, receptive_field

__all__ = ["receptive_field_map", "receptive_fields", "prior_training", "nll_bars",
           "samples_and_neighbours", "generation_metrics", "tissue_fractions", "sampler_twin"]

_RF_COLOURS = ListedColormap(["#eeeeee", "#c7c7c7", "#f28e2b", "#4e79a7", "#d62728"])
_RF_LEGEND = [("later cells (must stay unseen)", 0), ("earlier, beyond this depth's reach", 1),
              ("earlier and within reach, yet unseen: BLIND SPOT", 2),
              ("seen by the network", 3), ("cell being predicted", 4)]


def receptive_field_map(model, shape, cell, reach: int, channels=None) -> np.ndarray:
    """Label each input cell, from gradients: 0 later, 1 earlier but farther than ``reach``
    rows/columns, 2 earlier and within reach but unseen (blind spot), 3 seen, 4 the cell. (h, w)

    Args:
        model: a prior or a stack of masked convolutions.
        shape: (h, w) of the probe grid.
        cell: the predicted cell.
        reach: rows/columns a network of this depth could reach.
        channels: input channels (default: the model's embedding size).
    """
    seen = receptive_field(model, shape, cell, channels).numpy() > 0
    h, w = shape
    rows, cols = np.mgrid[:h, :w]
    earlier = rows * w + cols < cell[0] * w + cell[1]
    near = (cell[0] - rows <= reach) & (np.abs(cols - cell[1]) <= reach)
    out = np.where(earlier, np.where(seen, 3, np.where(near, 2, 1)), 0)
    out[cell] = 4
    return out


def receptive_fields(shape=(9, 11), cell=(6, 5), n_layers: int = 4) -> Figure:
    """Which earlier cells can influence the prediction at ``cell``, measured with gradients:
    square masked convolutions (left, with a blind spot) vs the gated PixelCNN's two stacks.

    Args:
        shape: probe grid (h, w).
        cell: the predicted cell.
        n_layers: depth of both networks (3x3 kernels).
    """
    torch.manual_seed(0)
    maps = [("square masked convs (A, B, B, B)",
             receptive_field_map(plain_pixelcnn(8, n_layers), shape, cell, n_layers, 8)),
            ("gated PixelCNN: vertical + horizontal stacks",
             receptive_field_map(GatedPixelCNN(8, 8, n_layers, 3, 3), shape, cell, n_layers))]
    fig = Figure(figsize=(10, 5.2))
    axes = fig.subplots(1, 2)
    for ax, (title, m) in zip(axes, maps, strict=True):
        ax.imshow(m, cmap=_RF_COLOURS, vmin=0, vmax=4)
        ax.set_xticks(np.arange(-0.5, shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, shape[0]), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"{title}\n{n_layers} layers: {int((m == 2).sum())} blind-spot cells, "
                     f"{int((m == 3).sum())} seen", fontsize=10)
    fig.legend(handles=[Patch(color=_RF_COLOURS(v), label=lab) for lab, v in _RF_LEGEND],
               loc="lower center", ncol=2, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def prior_training(history: dict, metrics: dict | None = None) -> Figure:
    """Training NLL (every few steps) and validation NLL (every epoch) in bits per latent cell,
    the unigram baseline dashed, the best checkpoint's test NLL as a star.

    Args:
        history: ``{"train": [{"step", "bits"}], "val": [{"step", "val_bits"}]}``.
        metrics: the prior's ``metrics.json`` (optional).
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    tr, va = history["train"], history["val"]
    ax.plot([h["step"] for h in tr], [h["bits"] for h in tr], lw=1, label="train (running mean)")
    ax.plot([h["step"] for h in va], [h["val_bits"] for h in va], "o-", label="validation")
    if metrics:
        ax.axhline(metrics["unigram_test"], ls="--", c="tab:red", lw=1)
        ax.text(0.01, metrics["unigram_test"], "unigram baseline (code histogram), test",
                transform=ax.get_yaxis_transform(), va="bottom", fontsize=8, color="tab:red")
        best = min(va, key=lambda h: h["val_bits"])
        ax.plot([best["step"]], [metrics["test_bits"]], "*", ms=12, c="tab:green",
                label=f"test (best checkpoint): {metrics['test_bits']:.3f}")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("NLL (bits per latent cell)")
    ax.set_title("Prior: negative log-likelihood of code grids")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def nll_bars(metrics: dict) -> Figure:
    """Test NLL of the prior against the uniform and unigram baselines (bits per latent cell).

    Args:
        metrics: the prior's ``metrics.json``.
    """
    names = ["uniform\n(log2 K)", "unigram\n(train histogram)", f"{metrics.get('prior_kind', 'prior')}\nprior"]
    vals = [metrics["uniform"], metrics["unigram_test"], metrics["test_bits"]]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    bars = ax.bar(names, vals, color=["#bbbbbb", "#f28e2b", "#4e79a7"])
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_ylabel("test NLL (bits per latent cell)")
    ax.set_title("How many bits does each code cost? (lower is better)")
    ax.set_ylim(0, max(vals) * 1.15)
    fig.tight_layout()
    return fig


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


def generation_metrics(scores: dict) -> Figure:
    """The generation metrics beside their floors (real test vs real training slices).

    Left: 1-NN two-sample accuracies (0.5 = indistinguishable) and precision/recall. Right:
    Wasserstein-1 distance of each tissue's per-slice fraction.

    Args:
        scores: from :func:`vqvae_lib.prior.scoring.score_images` (``generation.json``).
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


def tissue_fractions(generated: np.ndarray, test: np.ndarray) -> Figure:
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


def sampler_twin(images, labels=None, temperature: float = 1.0, seed: int = 0,
                 label_names=None) -> Figure:
    """The static twin of the live sampler: what one press of "sample" draws.

    Args:
        images: (n, 1, H, W) generated slices.
        labels: (n,) slice-position classes, or None.
        temperature: the temperature used.
        seed: the seed used.
        label_names: a name per class (titles).
    """
    titles = None
    if labels is not None:
        titles = [label_names[int(y)] if label_names else f"position {int(y)}" for y in labels]
    return image_grid(images, ncol=min(len(images), 8), titles=titles,
                      suptitle=f"sampler: temperature {temperature:g}, seed {seed}")
