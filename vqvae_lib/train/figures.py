"""Figures of a training run: loss curves, validation quality, codebook use, reconstructions.

Each function returns a matplotlib Figure and saves nothing. The trainer saves
:func:`recon_grid` after epoch 1 and whenever validation SSIM improves, and
:func:`training_figures` at the end (``vqvae_lib.viz.save_figure``), so ``runs/<preset>/figures/``
always shows how the run went; notebook 03 draws the same figures from ``history.json``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from ..metrics import ssim
from ..model.inference import reconstruct

__all__ = ["plot_losses", "plot_validation", "plot_codebook_usage", "plot_lr", "recon_figure",
           "recon_grid", "training_dashboard", "training_figures", "SSIM_TARGETS"]

SSIM_TARGETS = {"cpu": 0.95, "gpu": 0.95}      # the README's target (test SSIM)


def _epochs(history):
    return [h["epoch"] for h in history]


def _style(ax, title):
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def plot_losses(history: list[dict], axes=None):
    """Panels per epoch (log scale): reconstruction MSE, codebook loss, commitment loss, and the
    (1 - SSIM) structure term when the preset uses one.

    With the EMA quantizer the codebook moves by moving averages, not by a loss, so its
    panel reads 0 (and says so).
    """
    keys = ["train_recon", "train_codebook", "train_commitment"]
    titles = ["reconstruction (MSE)", "codebook loss", "commitment loss"]
    if any(h.get("train_ssim_loss", 0.0) > 0 for h in history):   # presets with ssim_weight > 0
        keys.append("train_ssim_loss")
        titles.append("structure term (1 - SSIM)")
    if axes is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), constrained_layout=True)
    ep = _epochs(history)
    for ax, key, title in zip(axes, keys, titles, strict=True):
        vals = [h.get(key, 0.0) for h in history]
        ax.plot(ep, vals, "o-", ms=3)
        if all(v > 0 for v in vals):
            ax.set_yscale("log")
        elif not any(vals):
            ax.text(0.5, 0.75, "0: EMA codebook\n(updated by moving averages)", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")
        _style(ax, title)
    return axes[0].figure


def plot_validation(history: list[dict], axes=None, target: float | None = None):
    """Validation SSIM (Gaussian) and PSNR per epoch, with the best epoch marked."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    ep = _epochs(history)
    s = [h["val_ssim"] for h in history]
    best = max(range(len(s)), key=s.__getitem__)
    axes[0].plot(ep, s, "o-", ms=3, label="val SSIM")
    axes[0].plot(ep[best], s[best], "r*", ms=12, label=f"best {s[best]:.3f} (epoch {ep[best]})")
    if target:
        axes[0].axhline(target, color="0.5", ls="--", lw=1, label=f"target {target}")
    _style(axes[0], "validation SSIM (Gaussian, $\\sigma$=1.5)")
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].plot(ep, [h["val_psnr"] for h in history], "o-", ms=3, color="C2")
    _style(axes[1], "validation PSNR (dB)")
    return axes[0].figure


def plot_codebook_usage(history: list[dict], K: int, axes=None):
    """Perplexity (effective number of codes) and codes used on the validation set."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    ep = _epochs(history)
    axes[0].plot(ep, [h["perplexity"] for h in history], "o-", ms=3, color="C1")
    _style(axes[0], "codebook perplexity (validation)")
    axes[1].plot(ep, [h["used_codes"] for h in history], "o-", ms=3, color="C3")
    axes[1].axhline(K, color="0.5", ls="--", lw=1, label=f"K = {K}")
    axes[1].set_ylim(0, K * 1.05)
    _style(axes[1], "codes used (validation)")
    axes[1].legend(loc="lower right", fontsize=8)
    return axes[0].figure


def plot_lr(history: list[dict], ax=None):
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3), constrained_layout=True)
    ax.plot(_epochs(history), [h["lr"] for h in history], "o-", ms=3, color="C4")
    _style(ax, "learning rate at the end of each epoch")
    return ax.figure


@torch.no_grad()
def recon_figure(originals: torch.Tensor, recons: torch.Tensor, title: str = ""):
    """Rows: original, reconstruction, |error| (brighter = worse); per-image SSIM above each."""
    n = len(originals)
    s = ssim(recons, originals, reduction="none")
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for i in range(n):
        o, r = originals[i, 0].float().cpu().numpy(), recons[i, 0].float().cpu().numpy()
        for row, (img, kw) in enumerate(((o, dict(vmin=0, vmax=1)), (r, dict(vmin=0, vmax=1)),
                                         (np.abs(o - r), dict(vmin=0, vmax=0.25, cmap="magma")))):
            ax = axes[row, i]
            ax.imshow(img, cmap=kw.pop("cmap", "gray"), **kw)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, i].set_title(f"SSIM {s[i]:.3f}", fontsize=8)
    for row, name in enumerate(("original", "reconstruction", "|error| (0-0.25)")):
        axes[row, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def recon_grid(model, images_u8: torch.Tensor, title: str = ""):
    """Reconstruct uint8 slices (n, 1, H, W) with ``model`` and draw :func:`recon_figure`.

    The model's train/eval mode is restored afterwards, so the trainer can call it mid-run.

    Args:
        model: the VQ-VAE.
        images_u8: the slices to show.
        title: the figure's title.
    """
    was_training = model.training
    recons, _ = reconstruct(model, images_u8)
    model.train(was_training)
    return recon_figure(images_u8.float().div(255).cpu(), recons, title)


def training_dashboard(history: list[dict], K: int, target: float | None = None):
    """One figure with everything: the losses, learning rate, SSIM, PSNR, perplexity and codes used."""
    n_loss = 4 if any(h.get("train_ssim_loss", 0.0) > 0 for h in history) else 3
    fig, axes = plt.subplots(2, n_loss + 1, figsize=(4 * (n_loss + 1), 6.4), constrained_layout=True)
    plot_losses(history, axes[0, :n_loss])
    plot_lr(history, axes[0, n_loss])
    plot_validation(history, axes[1, :2], target=target)
    plot_codebook_usage(history, K, axes[1, 2:4])
    for ax in axes[1, 4:]:
        ax.axis("off")
    return fig


def training_figures(history: list[dict], cfg) -> dict[str, plt.Figure]:
    """The figures the trainer saves at the end of a run: ``{file name: Figure}`` for
    losses, validation, codebook_usage and training_dashboard.

    Args:
        history: the rows of ``history.json``.
        cfg: the run's config (preset and codebook size).
    """
    target = SSIM_TARGETS.get(cfg.preset)
    return {"losses": plot_losses(history),
            "validation": plot_validation(history, target=target),
            "codebook_usage": plot_codebook_usage(history, cfg.codebook_size),
            "training_dashboard": training_dashboard(history, cfg.codebook_size, target)}
