"""Figures for the prior (notebook 06). Every function returns the figure and, given ``path``,
also writes it there as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from .model import GatedPixelCNN, plain_pixelcnn, receptive_field


def _save(fig, path):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _img(t) -> np.ndarray:
    return t.detach().cpu().float().squeeze().numpy() if torch.is_tensor(t) else np.squeeze(t)


def plot_image_grid(images, title: str | None = None, ncol: int = 8, labels=None, path=None):
    """Images (N, 1, H, W) in [0, 1] in a grid of ``ncol`` columns."""
    n = len(images)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.5 * ncol, 1.5 * nrow + (0.4 if title else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_img(images[k]), cmap="gray", vmin=0, vmax=1)
            if labels is not None:
                ax.set_title(labels[k], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_image_rows(rows, title: str | None = None, path=None):
    """One row of images per ``(label, images (n, 1, H, W))`` pair, the label on the left."""
    n = max(len(imgs) for _, imgs in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.5 * n + 1.2, 1.55 * len(rows) + 0.4),
                             squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                ax.imshow(_img(imgs[j]), cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def save_image_grid(images, path, title: str | None = None, ncol: int = 8):
    """Write a grid of images to ``path`` (PNG) and close the figure."""
    fig = plot_image_grid(images, title, ncol=min(ncol, len(images)), path=path)
    plt.close(fig)
    return Path(path)


_RF_COLOURS = ListedColormap(["#eeeeee", "#c7c7c7", "#f28e2b", "#4e79a7", "#d62728"])
_RF_LEGEND = [("later cells (must stay unseen)", 0), ("earlier, beyond this depth's reach", 1),
              ("earlier and within reach, yet unseen: BLIND SPOT", 2),
              ("seen by the network", 3), ("cell being predicted", 4)]


def receptive_field_map(model, shape, cell, reach: int, channels=None) -> np.ndarray:
    """Label each input cell, from gradients: 0 later, 1 earlier but farther than ``reach``
    rows/columns, 2 earlier and within reach but unseen (blind spot), 3 seen, 4 the cell. (h, w)"""
    seen = receptive_field(model, shape, cell, channels).numpy() > 0
    h, w = shape
    rows, cols = np.mgrid[:h, :w]
    earlier = rows * w + cols < cell[0] * w + cell[1]
    near = (cell[0] - rows <= reach) & (np.abs(cols - cell[1]) <= reach)
    out = np.where(earlier, np.where(seen, 3, np.where(near, 2, 1)), 0)
    out[cell] = 4
    return out


def plot_receptive_fields(shape=(9, 11), cell=(6, 5), n_layers: int = 4, path=None):
    """Which earlier cells can influence the prediction at ``cell``, measured with gradients.

    Left: square 3x3 masked convolutions (type A then B) can in principle reach ``n_layers``
    cells in every direction, but leave a blind spot up and to the right. Right: the gated
    PixelCNN's vertical + horizontal stacks (same depth, 3x3) see every earlier cell within
    reach -- and, like the left one, nothing at or after the cell itself.
    """
    torch.manual_seed(0)
    maps = [("square masked convs (A, B, B, B)",
             receptive_field_map(plain_pixelcnn(8, n_layers), shape, cell, n_layers, 8)),
            ("gated PixelCNN: vertical + horizontal stacks",
             receptive_field_map(GatedPixelCNN(8, 8, n_layers, 3, 3), shape, cell, n_layers))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
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
    return _save(fig, path)


def plot_prior_training(history: dict, metrics: dict | None = None, path=None):
    """Training NLL (every few steps) and validation NLL (every epoch), in bits per latent cell,
    with the unigram baseline dashed and the best checkpoint's test NLL as a star."""
    fig, ax = plt.subplots(figsize=(7, 4))
    tr = history["train"]
    ax.plot([h["step"] for h in tr], [h["bits"] for h in tr], lw=1, label="train (running mean)")
    va = history["val"]
    ax.plot([h["step"] for h in va], [h["val_bits"] for h in va], "o-", label="validation")
    if metrics:
        where = ax.get_yaxis_transform()  # x in axes fraction, y in data units
        for key, label, colour in (("unigram_test", "unigram baseline (code histogram), test", "tab:red"),):
            ax.axhline(metrics[key], ls="--", c=colour, lw=1)
            ax.text(0.01, metrics[key], label, transform=where, va="bottom", fontsize=8, color=colour)
        best = min(va, key=lambda h: h["val_bits"])
        ax.plot([best["step"]], [metrics["test_bits"]], "*", ms=12, c="tab:green",
                label=f"test (best checkpoint): {metrics['test_bits']:.3f}")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("NLL (bits per latent cell)")
    ax.set_title("PixelCNN prior: negative log-likelihood of code grids")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_nll_bars(metrics: dict, path=None):
    """Test NLL of the prior against the uniform and unigram baselines (bits per latent cell)."""
    names = ["uniform\n(log2 K)", "unigram\n(train histogram)", "PixelCNN prior"]
    vals = [metrics["uniform"], metrics["unigram_test"], metrics["test_bits"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar(names, vals, color=["#bbbbbb", "#f28e2b", "#4e79a7"])
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_ylabel("test NLL (bits per latent cell)")
    ax.set_title("How many bits does each code cost? (lower is better)")
    ax.set_ylim(0, max(vals) * 1.15)
    fig.tight_layout()
    return _save(fig, path)


def plot_samples_and_neighbours(samples, neighbours, mse, path=None, ncol_pairs: int = 4):
    """Each generated slice beside its nearest training slice (pixel MSE), to show it is new."""
    n = len(samples)
    nrow = int(np.ceil(n / ncol_pairs))
    fig, axes = plt.subplots(nrow, 2 * ncol_pairs, figsize=(2.6 * ncol_pairs, 1.55 * nrow + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        r, c = divmod(k, ncol_pairs)
        a, b = axes[r, 2 * c], axes[r, 2 * c + 1]
        a.imshow(_img(samples[k]), cmap="gray", vmin=0, vmax=1)
        b.imshow(_img(neighbours[k]), cmap="gray", vmin=0, vmax=1)
        a.set_title(f"sample {k}", fontsize=8)
        b.set_title(f"nearest, MSE {float(mse[k]):.3f}", fontsize=8)
    fig.suptitle("Generated slices (left of each pair) and their nearest training slice (right)")
    fig.tight_layout()
    return _save(fig, path)


def plot_temperature_grid(images, temperatures, path=None):
    """Rows: temperatures; columns: samples. ``images`` is (T * n, 1, H, W), row-major."""
    T = len(temperatures)
    n = len(images) // T
    fig, axes = plt.subplots(T, n, figsize=(1.5 * n + 0.8, 1.5 * T + 0.4), squeeze=False)
    for t in range(T):
        for j in range(n):
            ax = axes[t, j]
            ax.imshow(_img(images[t * n + j]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[t, 0].set_ylabel(f"T = {temperatures[t]:g}")
    fig.suptitle("Sampling temperature: logits / T before the softmax")
    fig.tight_layout()
    return _save(fig, path)
