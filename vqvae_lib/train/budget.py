"""The learning-rate schedule, the wall-clock budget, and a plain-words plan of a run.

Warm-up then cosine decay (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; Loshchilov &
Hutter 2017, "SGDR"). With ``max_minutes`` the cosine runs on the clock: its progress is the share
of the budget used, so the learning rate reaches its floor exactly when time is up, on a fast
machine or a slow one, and no minute of the budget is left unused.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from ..config import Config
from ..runtime import autocast_dtype, pick_device, precision_name

__all__ = ["MIN_LR_RATIO", "warmup_cosine", "lr_factor", "plan_epochs", "Clock", "describe"]

MIN_LR_RATIO = 0.01          # the cosine ends at 1% of the peak learning rate


def warmup_cosine(step: int, warmup_steps: int, done: float) -> float:
    """The one learning-rate schedule of the package (the VQ-VAE's and the prior's training):
    a linear warm-up over ``warmup_steps``, then a cosine from 1 down to ``MIN_LR_RATIO`` as
    ``done`` goes from 0 to 1.

    Args:
        step: the optimizer step about to be taken (0-based).
        warmup_steps: steps of the linear warm-up (0: none).
        done: the share of the run behind us after the warm-up, in [0, 1] (steps, or minutes of
            a time budget, whichever ends the run first).
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    t = min(1.0, max(0.0, done))
    return warm * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * t)))


def lr_factor(cfg: Config, step: int, epoch: int, total_steps: int,
              time_share: float | None = None) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` in epoch ``epoch`` (both 0-based).

    Args:
        cfg: uses ``warmup_steps``, ``scheduler`` and (StepLR) ``step_size``, ``gamma``.
        step: the optimizer step about to be taken.
        epoch: the current epoch.
        total_steps: the steps the cosine spans without a time budget (epochs x steps per epoch).
        time_share: with a time budget, the share of it used so far: the cosine's progress.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.scheduler == "cosine":
        done = (time_share if time_share is not None
                else (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return warmup_cosine(step, cfg.warmup_steps, done)
    if cfg.scheduler == "step":                       # the reference: StepLR(step_size, gamma)
        return warm * cfg.gamma ** (epoch // cfg.step_size)
    if cfg.scheduler == "constant":
        return warm
    raise ValueError(f"Unknown scheduler {cfg.scheduler!r}; choose 'cosine', 'step' or 'constant'.")


def plan_epochs(cfg: Config, epoch: int, planned: int, elapsed: float,
                recent_epoch_seconds: list[float]) -> int:
    """About how many epochs ``max_minutes`` holds: the progress bar's total, re-estimated after
    every epoch. It ends nothing: a budgeted run trains until time is up (the last epoch may be
    cut short), and its cosine follows the clock (:func:`lr_factor`).

    The typical recent epoch (the median of the last few, so one slow epoch, such as the first
    with its k-means start, does not skew it) sets the pace.

    Args:
        cfg: uses ``max_minutes`` (0 = no budget: ``planned`` is returned) and ``epochs``.
        epoch: epochs done so far.
        planned: the current estimate.
        elapsed: seconds used so far (training and validation, over all sessions).
        recent_epoch_seconds: durations of the last epochs (validation included).
    """
    if cfg.max_minutes <= 0 or not recent_epoch_seconds:
        return planned
    per_epoch = max(statistics.median(recent_epoch_seconds), 1e-9)
    left = max(0.0, cfg.max_minutes * 60 - elapsed)
    return max(epoch, min(cfg.epochs, epoch + math.ceil(left / per_epoch)))


class Clock:
    """Seconds used by a run over all its sessions (a resumed run starts at ``elapsed0``)."""

    def __init__(self, elapsed0: float = 0.0):
        self.elapsed0, self.t0 = elapsed0, time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def over(self, minutes: float) -> bool:
        """True when a budget of ``minutes`` (> 0) is used up."""
        return minutes > 0 and self.elapsed() > minutes * 60


def describe(cfg: Config, device=None) -> str:
    """A few lines on what a run of ``cfg`` will do and how long it may take.

    Args:
        cfg: the run's config.
        device: where it will run (default: what ``cfg.device`` picks).
    """
    device = torch.device(device) if device is not None else pick_device(cfg.device)
    amp = precision_name(autocast_dtype(cfg.precision, device))
    amp += " + gradient scaler" if amp == "fp16" else ""
    budget = f"at most {cfg.max_minutes:g} min (cosine fitted to it)" if cfg.max_minutes > 0 else "none"
    return "\n".join([
        f"preset {cfg.preset!r} on {device}: {cfg.image_size}x{cfg.image_size} images, batch "
        f"{cfg.batch_size}, up to {cfg.epochs} epochs",
        f"time budget: {budget}",
        f"optimiser: {'AdamW' if cfg.weight_decay > 0 else 'Adam'}{' (amsgrad)' if cfg.amsgrad else ''} "
        f"lr {cfg.lr:g}, {cfg.scheduler} schedule, warm-up {cfg.warmup_steps} steps, "
        f"grad clip {cfg.grad_clip or 'off'}",
        f"model: width {cfg.hidden_channels}, {cfg.n_res_blocks} res blocks, downsample "
        f"{cfg.downsample}, K={cfg.codebook_size}, D={cfg.code_dim}, {cfg.quantizer} quantizer"
        f"{', k-means init' if cfg.kmeans_init else ''}"
        f"{f', dead-code restart after {cfg.dead_code_steps} steps' if cfg.dead_code_steps else ''}",
        f"precision: {amp} ({cfg.precision}) | channels_last: {cfg.channels_last and device.type == 'cuda'} | "
        f"torch.compile: {cfg.compile} | CPU threads: {torch.get_num_threads()}",
    ])
