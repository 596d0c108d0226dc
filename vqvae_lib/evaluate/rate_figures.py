"""The rate-quality figure of notebook 05: every codec's curve and the VQ-VAE at its three rates."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_rate_quality"]

CODEC_STYLE = {"JPEG": "C1", "WebP": "C2", "JPEG 2000": "C4", "AVIF": "C5",
               "downsample + bicubic": "C7"}
RATE_MARKERS = {"log2 K": "*", "training histogram": "P", "prior NLL": "X"}


def plot_rate_quality(curves: dict, rates: dict, model: dict, note: str = "") -> Figure:
    """Mean SSIM (left) and PSNR (right) against bits per pixel, log scale.

    Every curve is one codec swept over its setting; the VQ-VAE is one reconstruction, so its
    quality is one value, drawn at each of its rates (joined by a line: the same images, coded
    with less and less waste).

    Args:
        curves: ``{name: {"bpp", "ssim", "psnr"}}`` (``codecs.codec_sweep`` + bicubic).
        rates: ``rates.vqvae_rates(...)``.
        model: ``{"ssim", "psnr"}`` means of the VQ-VAE.
        note: a line under the title (e.g. why a rate is missing).
    """
    rates = {n: r for n, r in rates.items() if r["bpp"] > 0}          # a log axis: 0 bpp is off it
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "ssim", "mean SSIM (Gaussian)"),
                              (axes[1], "psnr", "mean PSNR (dB)")):
        for name, c in curves.items():
            ax.plot(c["bpp"], c[metric], marker="o", ms=4, color=CODEC_STYLE.get(name, "C3"),
                    ls="--" if "bicubic" in name else "-", label=name)
        bpps = [r["bpp"] for r in rates.values()]
        ax.plot(bpps, [model[metric]] * len(bpps), "-", color="C0", lw=1, alpha=0.6)
        for name, r in rates.items():
            ax.plot(r["bpp"], model[metric], RATE_MARKERS.get(name, "D"), color="C0", ms=13,
                    mec="white", label=f"VQ-VAE, {name}: {r['bpp']:.3f} bpp")
        ax.set_xscale("log")
        lowest = min([float(np.min(c["bpp"])) for c in curves.values()] + bpps)
        ax.set_xlim(0.7 * lowest, None)
        ax.set(xlabel="bits per pixel (log scale; the raw slice is 8)", ylabel=label)
        ax.grid(alpha=0.3, which="both")
        lo = min(np.min(c[metric]) for c in curves.values())
        ax.set_ylim(max(lo, model[metric] - (0.25 if metric == "ssim" else 12)), None)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("rate vs quality on the test split: the VQ-VAE against the codecs a user would pick"
                 + (f"\n{note}" if note else ""), fontsize=10)
    return fig
