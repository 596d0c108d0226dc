"""Codebook collapse and its cures, old and new, in one short same-budget experiment.

Train the same small VQ-VAE five times, changing only the quantizer:

* ``loss``: codebook moved by the codebook loss, random init in [-1/K, 1/K] (van den Oord et al.
  2017, the reference). Codes that start far from the encoder outputs are never chosen, never
  receive gradient, and stay dead: **codebook collapse**.
* ``ema``: codebook as moving averages of the assigned encoder outputs (van den Oord et al.
  2017, app. A.1; Razavi et al. 2019). Faster, steadier codes, but a code nobody picks still
  never moves.
* ``ema + k-means + restart``: start the codebook on k-means centroids of the first batch and
  re-seed codes unused for ``restart_after`` steps on random encoder outputs (Dhariwal et al.
  2020, Jukebox; Zeghidour et al. 2021, SoundStream). The 2017-2019 cure.
* ``FSQ``: no codebook at all, a fixed grid of ``prod(L_i) = K`` points (Mentzer et al. 2023);
  nothing to collapse, no commitment loss, no EMA, no restarts.
* ``residual VQ``: ``N`` EMA codebooks of ``K^(1/N)`` codes each, each coding the residual of
  the previous ones (Zeghidour et al. 2021), with k-means starts and restarts per stage: the same
  ``log2 K`` bits per cell from ``N K^(1/N)`` vectors instead of ``K``.

Every variant sees the same batches for the same number of steps (they train interleaved, one
step each in turn); each step logs the loss, the distinct codes of the batch and the batch
perplexity (for residual VQ: of its joint codes, out of the same K). At the end the validation
slices are encoded and reconstructed: codes used, perplexity and SSIM; ``seconds`` is each
variant's own compute time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..common import evenly_spaced, progress
from ..config import Config
from ..data.dataset import load_split
from ..metrics import ssim
from ..model.inference import reconstruct
from ..model.vqvae import build_model
from .analysis import codebook_usage

__all__ = ["VARIANTS", "EXPERIMENT_MINUTES", "VariantRun", "rvq_stages_for", "variants_for",
           "experiment_config", "run_experiment", "experiment_data"]

VARIANTS: dict[str, dict] = {
    "loss": dict(quantizer="loss", kmeans_init=False, dead_code_steps=0),
    "ema": dict(quantizer="ema", kmeans_init=False, dead_code_steps=0),
    "ema + k-means + restart": dict(quantizer="ema", kmeans_init=True),
    "FSQ": dict(quantizer="fsq"),
    "residual VQ": dict(quantizer="rvq", kmeans_init=True),
}

# Total wall-clock budget (minutes) of the experiment's training, per preset.
EXPERIMENT_MINUTES = {"smoke": 0.15, "cpu": 2.0, "gpu": 2.0, "reference": 3.0}


@dataclass
class VariantRun:
    name: str
    overrides: dict
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    used_codes: list[int] = field(default_factory=list)     # distinct codes in the batch
    perplexity: list[float] = field(default_factory=list)   # of the batch's codes
    seconds: float = 0.0                                    # this variant's own compute
    val_ssim: float = float("nan")
    val_used: int = 0
    val_perplexity: float = float("nan")
    val_counts: np.ndarray | None = None                    # (K,) usage on validation
    description: str = ""                                   # the quantizer, e.g. "3 x 8 codes"


def rvq_stages_for(codebook_size: int, prefer: int = 3) -> int:
    """Residual stages for the same bits per cell as ``codebook_size`` codes: the divisor of
    ``log2 K`` closest to ``prefer`` (9 bits -> 3 stages of 8 codes).

    Args:
        codebook_size: a power of two.
        prefer: the stage count to aim for.
    """
    bits = int(round(math.log2(codebook_size)))
    divisors = [d for d in range(2, bits + 1) if bits % d == 0] or [1]
    return min(divisors, key=lambda d: (abs(d - prefer), -d))


def variants_for(cfg: Config, restart_after: int = 20,
                 variants: dict[str, dict] | None = None) -> dict[str, dict]:
    """The overrides of every variant for this config: ``restart_after`` as ``dead_code_steps``
    where a variant does not set it, and the residual VQ's stage count.

    Args:
        cfg: the experiment's config.
        restart_after: patience of dead-code restarts in steps (short runs need a short one).
        variants: name -> overrides (default :data:`VARIANTS`).
    """
    out = {}
    for name, v in (variants or VARIANTS).items():
        v = {"dead_code_steps": restart_after, **v}
        if v.get("quantizer") == "rvq" and "rvq_stages" not in v:
            v["rvq_stages"] = rvq_stages_for(v.get("codebook_size", cfg.codebook_size))
        out[name] = v
    return out


@torch.no_grad()
def _batch_usage(codes: torch.Tensor, K: int) -> tuple[int, float]:
    counts = torch.bincount(codes.reshape(-1), minlength=K).double()
    p = counts[counts > 0] / counts.sum()
    return int((counts > 0).sum()), float(torch.exp(-(p * p.log()).sum()))


def _describe(model) -> str:
    q = model.quantizer
    if hasattr(q, "levels"):
        return f"grid {' x '.join(map(str, q.levels))}"
    if hasattr(q, "stage_codes"):
        return f"{q.n_stages} stages x {q.stage_codes} codes"
    return f"{q.codebook_size} codes x {q.code_dim}"


def experiment_config(cfg: Config) -> Config:
    """The preset's model, at most 64 px: collapse is about the codebook, not the resolution,
    and 4x fewer pixels buys 4x more steps on a CPU.

    Args:
        cfg: the notebook's config.
    """
    return cfg.replace(image_size=min(cfg.image_size, 64), epochs=1, max_minutes=0.0)


def run_experiment(cfg: Config, train_images: torch.Tensor, val_images: torch.Tensor,
                   minutes: float, max_steps: int = 2000, restart_after: int = 20,
                   variants: dict[str, dict] | None = None, device="cpu") -> list[VariantRun]:
    """Train every variant on the same batches, **interleaved step by step**, until ``minutes``
    of wall clock (or ``max_steps``) are spent; return their logs.

    Interleaving gives every variant exactly the same number of steps and the same share of a
    busy machine, so the budget is fair even when the CPU is shared. Adam at ``cfg.lr``, no
    schedule, no augmentation.

    Args:
        cfg: the experiment's config (see :func:`experiment_config`).
        train_images: (N, 1, H, W) in [0, 1].
        val_images: (M, 1, H, W) in [0, 1], scored at the end.
        minutes: wall-clock budget of the training loop.
        max_steps: at most this many steps per variant.
        restart_after: ``dead_code_steps`` for variants that do not set it.
        variants: name -> config overrides (default :data:`VARIANTS`).
        device: where to train.
    """
    runs, models, opts = [], [], []
    for name, overrides in variants_for(cfg, restart_after, variants).items():
        torch.manual_seed(cfg.seed)                         # same initial weights everywhere
        vcfg = cfg.replace(**overrides)
        model = build_model(vcfg, device).train()
        models.append(model)
        opts.append(torch.optim.Adam(model.parameters(), lr=vcfg.lr))
        runs.append(VariantRun(name=name, overrides=overrides, description=_describe(model)))
    g = torch.Generator().manual_seed(cfg.seed)
    B = min(cfg.batch_size, len(train_images))
    start = time.perf_counter()
    bar = progress(range(max_steps), desc="codebook experiment")
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
            used, ppl = _batch_usage(out.codes, cfg.codebook_size)   # joint codes, K of them
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
    Validation slices are taken evenly spaced across the split (all subjects).

    Args:
        cfg: the experiment's config (its ``image_size``, ``max_train_images``, ``max_eval_images``).
        data_dir: the data folder (default: the usual search).
        max_train: at most this many training slices.
        max_val: at most this many validation slices.
    """
    cap = cfg.max_train_images or max_train
    train = load_split("train", data_dir, size=cfg.image_size, masks=False, verbose=False)
    val = load_split("validate", data_dir, size=cfg.image_size, masks=False, verbose=False)
    x_train = train.tensors()[evenly_spaced(len(train.images), min(cap, max_train))]
    x_val = val.tensors()[evenly_spaced(len(val.images), cfg.max_eval_images or max_val)]
    return x_train, x_val
