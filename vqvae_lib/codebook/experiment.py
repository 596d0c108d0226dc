"""Codebook collapse and its cure, in one short same-budget experiment.

Train the same small VQ-VAE three times, changing only how the codebook learns:

* ``loss``: codebook moved by the codebook loss, random init in [-1/K, 1/K] (the original
  recipe and the reference). Codes that start far from the encoder outputs are never chosen,
  never receive gradient, and stay dead: **codebook collapse**.
* ``ema``: codebook as moving averages of the assigned encoder outputs (van den Oord et al.
  2017, app. A.1; Razavi et al. 2019). Faster, steadier codes, but a code nobody picks still
  never moves.
* ``ema + k-means + restart``: start the codebook on k-means centroids of the first batch and
  re-seed codes unused for ``restart_after`` steps on random encoder outputs (Dhariwal et al.
  2020, Jukebox; Zeghidour et al. 2021, SoundStream). The cure.

Every variant sees the same batches for the same number of steps (they train interleaved, one
step each in turn); each step logs the loss, the codes used by the batch and the batch
perplexity. At the end the validation slices are encoded
and reconstructed: codes used, perplexity and SSIM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..common import quiet
from ..config import Config
from ..model.inference import reconstruct
from .analysis import codebook_usage

VARIANTS: dict[str, dict] = {
    "loss": dict(quantizer="loss", kmeans_init=False, dead_code_steps=0),
    "ema": dict(quantizer="ema", kmeans_init=False, dead_code_steps=0),
    "ema + k-means + restart": dict(quantizer="ema", kmeans_init=True),
}

# Total wall-clock budget (minutes) of the experiment, per preset.
EXPERIMENT_MINUTES = {"smoke": 0.15, "cpu": 2.0, "gpu": 2.0, "reference": 3.0}


@dataclass
class VariantRun:
    name: str
    overrides: dict
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    used_codes: list[int] = field(default_factory=list)     # distinct codes in the batch
    perplexity: list[float] = field(default_factory=list)   # of the batch's codes
    seconds: float = 0.0
    val_ssim: float = float("nan")
    val_used: int = 0
    val_perplexity: float = float("nan")
    val_counts: np.ndarray | None = None                    # (K,) usage on validation


@torch.no_grad()
def _batch_usage(codes: torch.Tensor, K: int) -> tuple[int, float]:
    counts = torch.bincount(codes.reshape(-1), minlength=K).double()
    p = counts[counts > 0] / counts.sum()
    return int((counts > 0).sum()), float(torch.exp(-(p * p.log()).sum()))


def experiment_config(cfg: Config) -> Config:
    """The preset's model, at most 64 px: collapse is about the codebook, not the resolution,
    and 4x fewer pixels buys 4x more steps on a CPU."""
    return cfg.replace(image_size=min(cfg.image_size, 64), epochs=1, max_minutes=0.0)


def run_experiment(cfg: Config, train_images: torch.Tensor, val_images: torch.Tensor,
                   minutes: float, max_steps: int = 2000, restart_after: int = 20,
                   variants: dict[str, dict] | None = None, device="cpu") -> list[VariantRun]:
    """Train every variant on the same batches, **interleaved step by step**, until ``minutes``
    of wall clock (or ``max_steps``) are spent; return their logs.

    Interleaving gives every variant exactly the same number of steps and the same share of a
    busy machine, so the budget is fair even when the CPU is shared. Adam at ``cfg.lr``, no
    schedule, no augmentation; ``restart_after`` replaces ``cfg.dead_code_steps`` for variants
    that do not set it (short runs need a short patience).
    """
    from ..metrics import ssim
    from ..model.vqvae import build_model

    variants = {name: {"dead_code_steps": restart_after, **v}
                for name, v in (variants or VARIANTS).items()}
    runs, models, opts = [], [], []
    for name, overrides in variants.items():
        torch.manual_seed(cfg.seed)                         # same initial weights everywhere
        vcfg = cfg.replace(**overrides)
        model = build_model(vcfg, device).train()
        models.append(model)
        opts.append(torch.optim.Adam(model.parameters(), lr=vcfg.lr))
        runs.append(VariantRun(name=name, overrides=overrides))
    g = torch.Generator().manual_seed(cfg.seed)
    B = min(cfg.batch_size, len(train_images))
    start = time.perf_counter()
    bar = tqdm(range(max_steps), desc="codebook experiment", disable=quiet())
    for step in bar:
        idx = torch.randperm(len(train_images), generator=g)[:B]
        x = train_images[idx].to(device, non_blocking=True)    # (B, 1, H, W) same for all
        for run, model, opt in zip(runs, models, opts, strict=True):
            t0 = time.perf_counter()
            out = model(x)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            used, ppl = _batch_usage(out.codes, cfg.codebook_size)
            run.steps.append(step + 1)
            run.loss.append(out.loss.item())
            run.used_codes.append(used)
            run.perplexity.append(ppl)
            run.seconds += time.perf_counter() - t0
        bar.set_postfix({r.name[:4]: r.used_codes[-1] for r in runs})
        if time.perf_counter() - start > 60.0 * minutes:
            break
    for run, model in zip(runs, models, strict=True):
        recons, codes = reconstruct(model, val_images, device=device)
        usage = codebook_usage(codes, cfg.codebook_size)
        run.val_ssim = float(ssim(recons, val_images.cpu()).mean())
        run.val_used, run.val_perplexity = usage.used, usage.perplexity
        run.val_counts = usage.counts
        print(f"{run.name:>24}: {len(run.steps)} steps ({run.seconds:.0f}s) | validation: "
              f"{usage.used}/{cfg.codebook_size} codes used, perplexity "
              f"{usage.perplexity:.1f}, SSIM {run.val_ssim:.3f}")
    return runs


def experiment_data(cfg: Config, data_dir=None, max_train: int = 4096, max_val: int = 256):
    """Training and validation slices at the experiment's resolution, as (N, 1, H, W) tensors.
    Validation slices are taken evenly spaced across the split (all subjects)."""
    from ..data.slices import load_split

    cap = cfg.max_train_images or max_train
    train = load_split("train", data_dir, size=cfg.image_size, masks=False, verbose=False)
    val = load_split("validate", data_dir, size=cfg.image_size, masks=False, verbose=False)
    x_train = train.tensors()[evenly_spaced(len(train.images), min(cap, max_train))]
    x_val = val.tensors()[evenly_spaced(len(val.images), cfg.max_eval_images or max_val)]
    return x_train, x_val


def evenly_spaced(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (all of them if n >= n_total)."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    return np.linspace(0, n_total - 1, n).round().astype(int)


def smooth(values, window: int = 5) -> np.ndarray:
    """Moving average (same length) to read noisy per-batch curves."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    kernel = np.ones(window) / window
    padded = np.pad(v, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def experiment_figure(runs: list[VariantRun], codebook_size: int):
    """Codes used and perplexity per step, and the final validation usage sorted by frequency."""
    from matplotlib.figure import Figure

    colors = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"]
    fig = Figure(figsize=(13, 3.9), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    w = max(1, len(runs[0].steps) // 40)
    for run, c in zip(runs, colors, strict=False):
        ax1.plot(run.steps, smooth(run.used_codes, w), color=c, label=run.name)
        ax2.plot(run.steps, smooth(run.perplexity, w), color=c, label=run.name)
        counts = np.sort(run.val_counts)[::-1]
        ax3.step(np.arange(1, codebook_size + 1), np.maximum(counts, 0.5), where="mid", color=c,
                 label=f"{run.name}: SSIM {run.val_ssim:.3f}, {run.val_used} used")
    ax1.axhline(codebook_size, color="#555555", ls=":", lw=1)
    ax1.set(xlabel="training step", ylabel="distinct codes in the batch", ylim=(0, None),
            title=f"Codes used (K = {codebook_size})")
    ax2.set(xlabel="training step", ylabel="batch perplexity", ylim=(0, None),
            title="Perplexity (effective codes)")
    ax3.set(xscale="log", yscale="log", ylim=(0.5, None), xlabel="code rank",
            ylabel="validation cells", title="Final usage, sorted")
    ax1.legend(fontsize=8)
    ax3.legend(fontsize=7, loc="lower left")
    return fig
