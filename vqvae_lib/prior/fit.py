"""Fit a prior to the code grids of a trained VQ-VAE and measure its likelihood.

The VQ-VAE is frozen: every slice is encoded once (``codes``) and the prior trains on integer
grids only -- no images, no decoder -- which is what makes a two-stage model cheap. Its quality as
a density model is the test negative log-likelihood in **bits per latent cell**, beside
:func:`baseline_bits`; whether its *samples* look real is :mod:`vqvae_lib.realism`'s question.
Training steps run in bf16 autocast where the hardware has it (``prior_precision``); the reported
likelihoods are fp32, of the very model that is later sampled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import file_hash, load_model, save_checkpoint
from ..common import progress, write_json
from ..config import PRESETS, Config, get_config
from ..metrics import code_entropy, cross_entropy_bits
from ..runlock import run_lock
from ..runtime import autocast, autocast_dtype, pick_device, precision_name, seed_everything
from ..train.budget import warmup_cosine
from .codes import all_codes, condition_labels, split_codes
from .store import PRIOR_CHECKPOINT_KIND, build_prior, load_prior, vqvae_reference

__all__ = ["PriorRun", "prior_step", "train_prior", "baseline_bits", "evaluate_bits"]

RUN_FILES = ("best.pt", "last.pt", "metrics.json", "history.json")
"""The files of one prior in ``prior/`` (and in ``prior/candidate/``, ``prior/previous/``)."""


def baseline_bits(train_codes: torch.Tensor, test_codes: torch.Tensor, K: int) -> dict[str, float]:
    """Context-free baselines in bits per cell: uniform (log2 K), the training histogram's
    entropy, and the cross-entropy of the test codes under that histogram (add-one smoothed,
    :func:`vqvae_lib.metrics.cross_entropy_bits`).

    Args:
        train_codes: (N, h, w) training grids.
        test_codes: (M, h, w) test grids.
        K: codebook size.
    """
    return {"uniform": math.log2(K), "unigram_entropy": code_entropy(train_codes, K),
            "unigram_test": cross_entropy_bits(train_codes, test_codes, K)}


@torch.no_grad()
def evaluate_bits(prior, codes: torch.Tensor, labels=None, device="cpu") -> float:
    """Mean negative log-likelihood of ``codes`` (N, h, w) in bits per latent cell, in fp32.

    Args:
        prior: any prior with ``nll_bits``.
        codes: (N, h, w) grids.
        labels: (N,) conditioning classes or None.
        device: where to run.
    """
    prior.eval()
    total, bs = 0.0, 64                         # bs: grids per forward pass
    for i in range(0, len(codes), bs):
        y = None if labels is None else labels[i:i + bs].to(device)
        total += float(prior.nll_bits(codes[i:i + bs].to(device), y).sum())
    return total / max(len(codes), 1)


def prior_step(prior, opt, x: torch.Tensor, y, lr: float, amp=None) -> float:
    """One optimiser step of the prior on a batch of code grids ``x`` (B, h, w); returns the
    loss, the mean negative log-likelihood in bits per cell.

    Args:
        prior: the prior (training mode).
        opt: its optimiser.
        x: (B, h, w) code grids, on the prior's device.
        y: (B,) slice-position classes, or None.
        lr: this step's learning rate.
        amp: the autocast dtype (``torch.bfloat16`` where native) or None for fp32.
    """
    for g in opt.param_groups:
        g["lr"] = lr
    with autocast(x.device, amp):              # bf16 matrix work where the hardware has it
        loss = prior.nll_bits(x, y).mean()     # cross-entropy of every true code, in fp32
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
    opt.step()
    return loss.item()


@dataclass
class PriorRun:
    """What ``train_prior`` returns: the best prior, its settings, curves, scores and codes."""
    prior: torch.nn.Module
    cfg: Config
    history: dict
    metrics: dict
    codes: dict = field(repr=False, default_factory=dict)  # split -> {"codes", "slice_index"}


def train_prior(checkpoint, data_dir=None, run_dir=None, device=None, retrain: bool = True,
                verbose: bool = True, **overrides) -> PriorRun:
    """Train a new prior on the codes of ``checkpoint`` (a VQ-VAE best.pt), holding the run
    folder's lock, with the ``prior_*`` settings of the VQ-VAE's preset as it is defined *now*. It
    trains in ``prior/candidate/``; of it and the prior already in ``prior/`` (fitted to the same
    VQ-VAE), the lower validation NLL becomes ``prior/best.pt``, the other ``prior/previous/``.
    With ``retrain=False`` the prior in ``prior/`` is reused instead when it was fitted to this
    checkpoint's *content* (a VQ-VAE retrained at the same path has other codes).

    Args:
        checkpoint: the VQ-VAE checkpoint.
        data_dir: data folder.
        run_dir: run folder (default: the folder above ``checkpoints/``).
        device: where to train (default: the config's device).
        retrain: train a new prior even when ``prior/best.pt`` fits this VQ-VAE.
        verbose: print progress lines.
        **overrides: ``prior_*`` (and other) config fields of a new prior, e.g. ``prior_kind``,
            ``prior_max_minutes``, ``prior_max_steps``, ``prior_precision``.

    Returns:
        a :class:`PriorRun` for the prior that is ``prior/best.pt`` afterwards.
    """
    checkpoint = Path(checkpoint)
    run_dir = Path(run_dir) if run_dir else checkpoint.resolve().parent.parent
    best, metrics = run_dir / "prior" / "best.pt", run_dir / "prior" / "metrics.json"
    if not retrain and best.is_file() and metrics.is_file():
        if load_prior(best)[1]["extra"].get("vqvae_sha1") == file_hash(checkpoint):
            if verbose:
                print(f"loaded the prior {best}, fitted to this VQ-VAE (retrain=True, in notebook "
                      f"06 retrain_prior=True, trains a new one)")
            return _reload(run_dir, checkpoint, data_dir, device or "cpu")
        if verbose:
            print(f"{best} was fitted to another VQ-VAE (checkpoint content differs): training a "
                  f"new prior")
    with run_lock(run_dir, "prior training"):
        return _fit(checkpoint, data_dir, run_dir, device, verbose, overrides)


def _fit(checkpoint: Path, data_dir, run_dir: Path, device, verbose: bool,
         overrides: dict) -> PriorRun:
    vqvae, cfg, _ = load_model(checkpoint, device="cpu")
    preset = get_config(cfg.preset) if cfg.preset in PRESETS else cfg
    cfg = cfg.replace(**{**{f.name: getattr(preset, f.name) for f in fields(preset)
                            if f.name.startswith("prior_")}, **overrides})
    device = torch.device(device) if device else pick_device(cfg.device)
    seed_everything(cfg.seed)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    amp = autocast_dtype(cfg.prior_precision, device)
    codes = all_codes(vqvae.to(device), checkpoint, cfg, data_dir, run_dir, device)
    train_codes = codes["train"]["codes"]
    labels, cond = condition_labels(codes, cfg.prior_cond_bins)
    prior = build_prior(cfg, n_classes=cfg.prior_cond_bins)
    prior.prepare(train_codes)  # start at the unigram: the output bias = log code frequencies
    if cfg.prior_mirror:        # twice the training grids: every slice also mirrored
        mirrored = split_codes(vqvae, checkpoint, cfg, "train", data_dir, run_dir, device,
                               mirror=True)["codes"]
        train_codes = torch.cat([train_codes, mirrored])
        if labels["train"] is not None:
            labels["train"] = labels["train"].repeat(2)
    prior.to(device)
    opt = torch.optim.Adam(prior.parameters(), lr=cfg.prior_lr)
    n, bs = len(train_codes), cfg.prior_batch_size
    steps_per_epoch = max(1, math.ceil(n / bs))
    total_steps = min(cfg.prior_epochs * steps_per_epoch, cfg.prior_max_steps or math.inf)
    budget = cfg.prior_max_minutes * 60
    meta = {"vqvae_checkpoint": vqvae_reference(checkpoint, run_dir),
            "vqvae_sha1": file_hash(checkpoint), "latent_shape": list(train_codes.shape[1:]),
            "cond": cond, "precision": precision_name(amp)}
    cand = run_dir / "prior" / "candidate"
    history = {"train": [], "val": []}  # train: every few steps; val: every epoch
    best, step, t0, done = float("inf"), 0, time.perf_counter(), False
    if verbose:
        print(f"new {cfg.prior_kind} prior with the prior_* settings of preset {cfg.preset!r}"
              f"{' + ' + str(overrides) if overrides else ''}: "
              f"{sum(p.numel() for p in prior.parameters()) / 1e6:.2f} M parameters, "
              f"{n} training grids {tuple(train_codes.shape[1:])}, K={cfg.codebook_size}, "
              f"up to {total_steps} steps of {bs} on {device} in {meta['precision']}")
    for epoch in range(1, cfg.prior_epochs + 1):
        prior.train()
        order, running = torch.randperm(n), []
        bar = progress(range(steps_per_epoch), desc=f"prior epoch {epoch}", leave=False,
                       disable=not verbose)
        for b in bar:
            idx = order[b * bs:(b + 1) * bs]
            x = train_codes[idx].to(device)                             # (B, h, w) codes
            y = None if labels["train"] is None else labels["train"][idx].to(device)
            spent = max(step / total_steps, (time.perf_counter() - t0) / budget if budget else 0)
            lr = cfg.prior_lr * warmup_cosine(step, cfg.prior_warmup_steps, spent)
            running.append(prior_step(prior, opt, x, y, lr, amp))
            step += 1
            if step % 5 == 0 or b == steps_per_epoch - 1:
                history["train"].append({"step": step, "bits": float(np.mean(running[-5:]))})
                bar.set_postfix(bits=f"{history['train'][-1]['bits']:.3f}")
            if (budget and time.perf_counter() - t0 > budget) or step >= total_steps:
                done = True
                break
        val = evaluate_bits(prior, codes["validate"]["codes"], labels["validate"], device=device)
        history["val"].append({"epoch": epoch, "step": step,
                               "train_bits": float(np.mean(running)), "val_bits": val,
                               "seconds": time.perf_counter() - t0})
        if verbose:
            print(f"prior epoch {epoch}: train {np.mean(running):.3f} | validation {val:.3f} "
                  f"bits/cell | {time.perf_counter() - t0:.0f} s", flush=True)
        if val < best:
            best = val
            _save(cand / "best.pt", prior, cfg, None, history, epoch, step, best, meta)
        _save(cand / "last.pt", prior, cfg, opt, history, epoch, step, best, meta)
        if done:
            if verbose and step < total_steps:
                print(f"prior: stopped by the {cfg.prior_max_minutes} min budget "
                      f"(prior_max_minutes)")
            break

    prior, _ = load_prior(cand / "best.pt", device)
    test_bits = evaluate_bits(prior, codes["test"]["codes"], labels["test"], device=device)
    seconds = time.perf_counter() - t0
    metrics = {"test_bits": test_bits,
               **baseline_bits(train_codes, codes["test"]["codes"], cfg.codebook_size),
               "best_val_bits": best, "steps": step, "minutes": seconds / 60,
               "steps_per_second": step / max(seconds, 1e-9),
               "prior_kind": cfg.prior_kind, "precision": meta["precision"],
               "vqvae_sha1": meta["vqvae_sha1"]}
    write_json(cand / "history.json", history)
    write_json(cand / "metrics.json", metrics)
    if not _keep_the_better(run_dir / "prior", metrics, verbose):
        return _reload(run_dir, checkpoint, data_dir, device, codes)
    if verbose:
        print(f"prior test NLL {test_bits:.3f} bits/cell (uniform {metrics['uniform']:.2f}, "
              f"unigram {metrics['unigram_test']:.3f}); saved {run_dir / 'prior' / 'best.pt'}")
    return PriorRun(prior, cfg, history, metrics, codes)


def _save(path, prior, cfg, opt, history, epoch, step, best, meta):
    save_checkpoint(path, model=prior, cfg=cfg, optimizer=opt, history=history["val"],
                    epoch=epoch, step=step, best_metric=best,
                    extra={**meta, "kind": PRIOR_CHECKPOINT_KIND, "prior_kind": cfg.prior_kind,
                           "hparams": prior.hparams, "train_curve": history["train"]})


def _keep_the_better(folder: Path, new: dict, verbose: bool) -> bool:
    """Install ``candidate/`` as the prior of ``folder`` unless the prior already there was fitted
    to the same VQ-VAE and has the lower validation NLL; the loser goes to ``previous/``.
    Returns whether the new prior was installed."""
    cand, prev = folder / "candidate", folder / "previous"
    old_metrics = folder / "metrics.json"
    old = json.loads(old_metrics.read_text()) if (folder / "best.pt").is_file() and \
        old_metrics.is_file() else None
    comparable = old is not None and old.get("vqvae_sha1") == new["vqvae_sha1"]
    keep_old = comparable and old.get("best_val_bits", float("inf")) <= new["best_val_bits"]
    shutil.rmtree(prev, ignore_errors=True)
    if keep_old:
        os.replace(cand, prev)
        if verbose:
            print(f"kept the previous prior: validation NLL {old['best_val_bits']:.3f} <= the new "
                  f"one's {new['best_val_bits']:.3f} bits/cell (the new one is in {prev})")
        return False
    if (folder / "best.pt").is_file():
        prev.mkdir(parents=True)
        for name in RUN_FILES:                  # copies first: best.pt is never missing
            if (folder / name).is_file():
                shutil.copy2(folder / name, prev / name)
    for name in RUN_FILES:                      # the candidate has all four
        os.replace(cand / name, folder / name)
    shutil.rmtree(cand, ignore_errors=True)
    if verbose and old is not None:
        why = ("it predicts the validation codes better" if comparable
               else "the previous one was fitted to another VQ-VAE")
        print(f"the new prior is prior/best.pt ({why}); the previous one is in {prev}")
    return True


def _reload(run_dir: Path, checkpoint, data_dir, device, codes=None) -> PriorRun:
    """The prior of ``<run_dir>/prior/`` with its history and metrics, as a :class:`PriorRun`."""
    prior, ckpt = load_prior(run_dir / "prior" / "best.pt", device)
    cfg = Config.from_dict(ckpt["config"])
    if codes is None:
        vqvae, _, _ = load_model(checkpoint, device)
        codes = all_codes(vqvae, checkpoint, cfg, data_dir, run_dir, device)
    history = {"train": ckpt["extra"]["train_curve"], "val": ckpt["history"]}
    metrics = json.loads((run_dir / "prior" / "metrics.json").read_text())
    return PriorRun(prior, cfg, history, metrics, codes)
