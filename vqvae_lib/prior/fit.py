"""Fit a prior to the code grids of a trained VQ-VAE and measure its likelihood.

The VQ-VAE is frozen: every slice is encoded once (``codes``), and the prior then trains on
integer grids only -- no images, no decoder -- which is what makes a two-stage model cheap. Its
quality as a density model is the test negative log-likelihood in **bits per latent cell**, to
compare with ``log2 K`` (every code equally likely) and with the entropy of the code histogram
(codes independent of their neighbours). Whether its *samples* look real is another question,
answered by :mod:`vqvae_lib.prior.generation`.

A **new** prior takes its settings (``prior_*`` fields) from the current definition of the
VQ-VAE's preset, overridden by keyword arguments, and says so. A saved prior carries its own
architecture (see :mod:`vqvae_lib.prior.build`); loading never consults the preset.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import file_hash, load_model, save_checkpoint
from ..common import atomic_write_text, progress
from ..config import PRESETS, Config, get_config
from ..metrics import code_entropy
from ..model.inference import decode
from ..runlock import run_lock
from ..runtime import pick_device, seed_everything
from .build import build_prior, prior_kind_of
from .codes import all_codes, condition_labels, split_codes
from .draw import start_at_unigram
from .head_check import fit_head_check
from .hierarchy import code_vector_table
from .store import PRIOR_CHECKPOINT_KIND, load_prior

__all__ = ["PriorRun", "train_prior", "prior_fields", "start_at_unigram", "baseline_bits",
           "evaluate_bits", "head_check_of", "json_dumps"]


def baseline_bits(train_codes: torch.Tensor, test_codes: torch.Tensor, K: int) -> dict[str, float]:
    """Context-free baselines in bits per cell: uniform (log2 K), the training histogram's
    entropy, and the cross-entropy of the test codes under that histogram (add-one smoothed).

    Args:
        train_codes: (N, h, w) training grids.
        test_codes: (M, h, w) test grids.
        K: codebook size.
    """
    counts = torch.bincount(train_codes.reshape(-1), minlength=K).double() + 1.0
    logp = (counts / counts.sum()).log2()
    return {"uniform": math.log2(K), "unigram_entropy": code_entropy(train_codes, K),
            "unigram_test": float(-logp[test_codes.reshape(-1)].mean())}


@torch.no_grad()
def evaluate_bits(prior, codes: torch.Tensor, labels=None, batch_size: int = 64,
                  device="cpu") -> float:
    """Mean negative log-likelihood of ``codes`` (N, h, w) in bits per latent cell.

    Args:
        prior: any prior with ``nll_bits``.
        codes: (N, h, w) grids.
        labels: (N,) conditioning classes or None.
        batch_size: grids per forward pass.
        device: where to run.
    """
    prior.eval()
    total = 0.0
    for i in range(0, len(codes), batch_size):
        y = None if labels is None else labels[i:i + batch_size].to(device)
        total += float(prior.nll_bits(codes[i:i + batch_size].to(device), y).sum())
    return total / max(len(codes), 1)


@dataclass
class PriorRun:
    """What ``train_prior`` returns: the best prior, its curves and scores, and where they live."""
    prior: torch.nn.Module
    cfg: Config
    history: dict
    metrics: dict
    best_path: Path
    codes: dict = field(repr=False, default_factory=dict)  # split -> {"codes", "slice_index"}


def prior_fields(preset: str) -> dict:
    """The ``prior_*`` fields of a preset as it is defined *now*, for training a NEW prior.

    Args:
        preset: a preset name (unknown names give ``{}``).
    """
    if preset not in PRESETS:
        return {}
    cfg = get_config(preset)
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name.startswith("prior_")}


def _save(path, prior, cfg, opt, history, epoch, step, best, extra):
    save_checkpoint(path, model=prior, cfg=cfg, optimizer=opt, history=history["val"],
                    epoch=epoch, step=step, best_metric=best,
                    extra={**extra, "kind": PRIOR_CHECKPOINT_KIND, "prior_kind": prior_kind_of(prior),
                           "hparams": prior.hparams, "train_curve": history["train"]})


@torch.no_grad()
def head_check_of(vqvae, train_codes: torch.Tensor, device, grids: int = 512, seed: int = 0
                  ) -> dict:
    """The head check (:mod:`vqvae_lib.prior.head_check`) fitted on the VQ-VAE's reconstructions
    of up to ``grids`` random training grids: real heads as the decoder draws them.

    Args:
        vqvae: the VQ-VAE.
        train_codes: (N, h, w) training grids (not mirrored).
        device: where to decode.
        grids: how many grids to decode.
        seed: which ones.
    """
    pick = torch.randperm(len(train_codes), generator=torch.Generator().manual_seed(seed))[:grids]
    return fit_head_check(decode(vqvae, train_codes[pick], device=device))


def _learning_rate(cfg: Config, step: int, total_steps: int, elapsed: float) -> float:
    """Linear warm-up over 20 steps, then a cosine to 0 over whichever of steps or minutes ends
    the run first."""
    budget = cfg.prior_max_minutes * 60
    done = max(step / total_steps, elapsed / budget if budget else 0.0)
    return cfg.prior_lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def train_prior(checkpoint, data_dir=None, run_dir=None, device=None, verbose: bool = True,
                **overrides) -> PriorRun:
    """Train a new prior, holding the run folder's lock (one writer at a time, ``runlock.py``).

    Arguments and result: see :func:`fit_prior`.
    """
    lock_dir = Path(run_dir) if run_dir else Path(checkpoint).resolve().parent.parent
    with run_lock(lock_dir, "prior training"):
        return fit_prior(checkpoint, data_dir, run_dir, device, verbose, **overrides)


def fit_prior(checkpoint, data_dir=None, run_dir=None, device=None, verbose: bool = True,
              **overrides) -> PriorRun:
    """Train a new prior on the codes of ``checkpoint`` (a VQ-VAE best.pt); writes ``prior/``.

    Args:
        checkpoint: the VQ-VAE checkpoint.
        data_dir: data folder.
        run_dir: run folder (default: the folder above ``checkpoints/``).
        device: where to train (default: the config's device).
        verbose: print progress lines.
        **overrides: ``prior_*`` (and other) config fields; ``prior_kind``, ``prior_channels``,
            ``prior_layers``, ``prior_heads``, ``prior_cond_bins``, ``prior_epochs``,
            ``prior_max_steps``, ``prior_max_minutes``, ``prior_lr``, ``prior_batch_size``.

    Returns:
        a :class:`PriorRun`; ``prior/{best,last}.pt``, ``history.json``, ``metrics.json`` and
        the code caches are written (atomically) under ``run_dir``.
    """
    checkpoint = Path(checkpoint)
    vqvae, cfg, _ = load_model(checkpoint, device="cpu")
    cfg = cfg.replace(**{**prior_fields(cfg.preset), **overrides})
    device = torch.device(device) if device else pick_device(cfg.device)
    run_dir = Path(run_dir) if run_dir else checkpoint.resolve().parent.parent
    out = run_dir / "prior"
    seed_everything(cfg.seed)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    codes = all_codes(vqvae.to(device), checkpoint, cfg, data_dir, run_dir, device)
    train_codes = codes["train"]["codes"]
    labels, cond = condition_labels(codes, cfg.prior_cond_bins)
    prior = build_prior(cfg, n_classes=cfg.prior_cond_bins, code_vectors=code_vector_table(vqvae))
    prior.prepare(train_codes)  # unigram start (and the top-level codebook of a hierarchy)
    if cfg.prior_mirror:        # twice the training grids: every slice also mirrored (a copy)
        mirrored = split_codes(vqvae, checkpoint, cfg, "train", data_dir, run_dir, device,
                               mirror=True)["codes"]
        train_codes = torch.cat([train_codes, mirrored])
        if labels["train"] is not None:
            labels = {**labels, "train": torch.cat([labels["train"], labels["train"]])}
    prior.to(device)
    opt = torch.optim.Adam(prior.parameters(), lr=cfg.prior_lr)
    n, bs = len(train_codes), cfg.prior_batch_size
    steps_per_epoch = max(1, math.ceil(n / bs))
    total_steps = cfg.prior_epochs * steps_per_epoch
    if cfg.prior_max_steps:
        total_steps = min(total_steps, cfg.prior_max_steps)
    budget = cfg.prior_max_minutes * 60
    amp = device.type == "cuda" and cfg.amp
    extra = {"vqvae_checkpoint": str(checkpoint), "vqvae_sha1": file_hash(checkpoint),
             "latent_shape": list(train_codes.shape[1:]), "cond": cond,
             "head_check": head_check_of(vqvae, train_codes, device)}
    history = {"train": [], "val": []}  # train: every few steps; val: every epoch
    best, step, t0, done = float("inf"), 0, time.perf_counter(), False
    if verbose:
        print(f"new {cfg.prior_kind} prior with the prior_* settings of preset {cfg.preset!r}"
              f"{' + ' + str(overrides) if overrides else ''}: "
              f"{sum(p.numel() for p in prior.parameters()) / 1e6:.2f} M parameters, "
              f"{n} training grids {tuple(train_codes.shape[1:])}, K={cfg.codebook_size}, "
              f"up to {total_steps} steps of {bs} on {device}")
    for epoch in range(1, cfg.prior_epochs + 1):
        prior.train()
        order = torch.randperm(n)
        running = []
        bar = progress(range(steps_per_epoch), desc=f"prior epoch {epoch}", leave=False,
                       disable=not verbose)
        for b in bar:
            idx = order[b * bs:(b + 1) * bs]
            x = train_codes[idx].to(device, non_blocking=True)  # (B, h, w)
            y = None if labels["train"] is None else labels["train"][idx].to(device)
            for g in opt.param_groups:
                g["lr"] = _learning_rate(cfg, step, total_steps, time.perf_counter() - t0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = prior.training_loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
            opt.step()
            step += 1
            running.append(loss.item())
            if step % 5 == 0 or b == steps_per_epoch - 1:
                history["train"].append({"step": step, "bits": float(np.mean(running[-5:]))})
                bar.set_postfix(bits=f"{history['train'][-1]['bits']:.3f}")
            if (budget and time.perf_counter() - t0 > budget) or step >= total_steps:
                done = True
                break
        val = evaluate_bits(prior, codes["validate"]["codes"], labels["validate"], device=device)
        history["val"].append({"epoch": epoch, "step": step, "train_bits": float(np.mean(running)),
                               "val_bits": val, "seconds": time.perf_counter() - t0})
        if verbose:
            print(f"prior epoch {epoch}: train {np.mean(running):.3f} | validation {val:.3f} "
                  f"bits/cell | {time.perf_counter() - t0:.0f} s", flush=True)
        if val < best:
            best = val
            _save(out / "best.pt", prior, cfg, None, history, epoch, step, best, extra)
        _save(out / "last.pt", prior, cfg, opt, history, epoch, step, best, extra)
        if done:
            if verbose and step < total_steps:
                print(f"prior: stopped by the {cfg.prior_max_minutes} min budget (prior_max_minutes)")
            break

    prior, _ = load_prior(out / "best.pt", device)
    metrics = {"test_bits": evaluate_bits(prior, codes["test"]["codes"], labels["test"], device=device),
               **baseline_bits(train_codes, codes["test"]["codes"], cfg.codebook_size),
               "best_val_bits": best, "steps": step, "minutes": (time.perf_counter() - t0) / 60,
               "prior_kind": cfg.prior_kind, "vqvae_sha1": extra["vqvae_sha1"]}
    atomic_write_text(out / "history.json", json_dumps(history))
    atomic_write_text(out / "metrics.json", json_dumps(metrics))
    if verbose:
        print(f"prior test NLL {metrics['test_bits']:.3f} bits/cell (uniform {metrics['uniform']:.2f}, "
              f"unigram {metrics['unigram_test']:.3f}); saved {out / 'best.pt'}")
    return PriorRun(prior, cfg, history, metrics, out / "best.pt", codes)


def json_dumps(obj) -> str:
    """Indented JSON text with a final newline.

    Args:
        obj: anything ``json.dumps`` takes.
    """
    return json.dumps(obj, indent=1) + "\n"
