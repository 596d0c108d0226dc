"""The same-budget quantizer experiment (``codebook.experiment``) as one figure and one table."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .experiment import VariantRun

__all__ = ["smooth", "experiment_figure", "experiment_table", "experiment_rows"]

COLORS = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b"]


def smooth(values, window: int = 5) -> np.ndarray:
    """Moving average (same length) to read noisy per-batch curves.

    Args:
        values: a 1-D sequence.
        window: width of the average (1 = unchanged).
    """
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    kernel = np.ones(window) / window
    padded = np.pad(v, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def experiment_figure(runs: list[VariantRun], codebook_size: int) -> Figure:
    """Four panels: distinct codes and perplexity per step; final validation usage sorted by
    frequency; validation SSIM and each variant's compute time.

    Args:
        runs: the output of :func:`~vqvae_lib.codebook.experiment.run_experiment`.
        codebook_size: K (the same for every variant: codes per cell).
    """
    fig = Figure(figsize=(13, 8), layout="constrained")
    (ax1, ax2), (ax3, ax4) = fig.subplots(2, 2)
    w = max(1, len(runs[0].steps) // 40)
    for run, c in zip(runs, COLORS, strict=False):
        ax1.plot(run.steps, smooth(run.used_codes, w), color=c, label=f"{run.name} ({run.description})")
        ax2.plot(run.steps, smooth(run.perplexity, w), color=c, label=run.name)
        counts = np.sort(run.val_counts)[::-1]
        ax3.step(np.arange(1, codebook_size + 1), np.maximum(counts, 0.5), where="mid", color=c,
                 label=f"{run.name}: {run.val_used} used")
    ax1.axhline(codebook_size, color="#555555", ls=":", lw=1)
    ax1.set(xlabel="training step", ylabel="distinct codes in the batch", ylim=(0, None),
            title=f"Codes used (K = {codebook_size} codes per cell for every variant)")
    ax2.set(xlabel="training step", ylabel="batch perplexity", ylim=(0, None),
            title="Perplexity (effective codes)")
    ax3.set(xscale="log", yscale="log", ylim=(0.5, None), xlabel="code rank",
            ylabel="validation cells", title="Final usage on validation slices, sorted")
    ax1.legend(fontsize=7)
    ax3.legend(fontsize=7, loc="lower left")
    names = [r.name.replace(" + ", "\n+ ") for r in runs]
    x = np.arange(len(runs))
    bars = ax4.bar(x - 0.2, [r.val_ssim for r in runs], 0.4, color=COLORS[:len(runs)])
    for b, r in zip(bars, runs, strict=True):
        ax4.text(b.get_x() + b.get_width() / 2, r.val_ssim, f"{r.val_ssim:.3f}", ha="center",
                 va="bottom", fontsize=7)
    lo = min(r.val_ssim for r in runs)
    ax4.set(ylim=(max(0.0, lo - 0.1), 1.0), ylabel="validation SSIM (bars)",
            title="Final SSIM (bars) and compute time (dots)")
    ax4.set_xticks(x, names, fontsize=7)
    ax5 = ax4.twinx()
    ax5.plot(x + 0.2, [r.seconds for r in runs], "ko")
    ax5.set(ylim=(0, 1.15 * max(r.seconds for r in runs)), ylabel="seconds of compute")
    return fig


def experiment_rows(runs: list[VariantRun]) -> list[dict]:
    """One dict per variant: steps, quantizer, codes used and perplexity (validation), SSIM,
    seconds. The JSON form of :func:`experiment_table` (``benchmarks/quantizers.json``).

    Args:
        runs: the output of ``run_experiment``.
    """
    return [dict(variant=r.name, quantizer=r.description, steps=len(r.steps),
                 val_codes_used=int(r.val_used), val_perplexity=round(float(r.val_perplexity), 1),
                 val_ssim=round(float(r.val_ssim), 4), seconds=round(float(r.seconds), 1))
            for r in runs]


def experiment_table(runs: list[VariantRun], codebook_size: int) -> str:
    """A text table of :func:`experiment_rows`.

    Args:
        runs: the output of ``run_experiment``.
        codebook_size: K, for the "used" column.
    """
    lines = [f"{'variant':<25}{'quantizer':<24}{'steps':>6}{'codes used':>12}{'perplexity':>11}"
             f"{'SSIM':>7}{'seconds':>9}"]
    for r in experiment_rows(runs):
        lines.append(f"{r['variant']:<25}{r['quantizer']:<24}{r['steps']:>6}"
                     f"{r['val_codes_used']:>7}/{codebook_size:<4}{r['val_perplexity']:>11.1f}"
                     f"{r['val_ssim']:>7.3f}{r['seconds']:>9.1f}")
    return "\n".join(lines)
