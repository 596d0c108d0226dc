"""The training loop, top to bottom: one step, one epoch, the run.

    python -m vqvae_lib.train --preset cpu                      # 2-core laptop, minutes
    python -m vqvae_lib.train --preset gpu --batch-size 128     # any Config field as --key value
    python -m vqvae_lib.train --preset cpu --resume             # continue from last.pt
    torchrun --nproc_per_node=4 -m vqvae_lib.train --preset gpu # DistributedDataParallel

:func:`train_step` and :func:`fit` are the whole algorithm; the rest lives in small modules:
the data in memory (``batches``), the schedule and time budget (``budget``), the resume state
(``state``), the NaN guards (``guard``), the files of a run (``runfiles``), ``torchrun``
(``distributed``), validation (``validate``), the bookkeeping object (``trainer``), and
``train(cfg, ...)``, which builds the model and the data for notebooks and the CLI (``run``).
Mixed precision (``precision``: bf16 on GPUs and on CPUs with native bf16, fp16 with a gradient
scaler on older GPUs, fp32 elsewhere; ``runtime.autocast_dtype``) covers the forward pass; the loss is the
VQ-VAE loss of van den Oord et al. 2017 (``model/vqvae.py``).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..common import progress
from ..config import Config
from ..errors import TrainingError
from ..runlock import run_lock
from .batches import epoch_images, make_batch
from .budget import Clock, lr_factor, plan_epochs
from .distributed import barrier, broadcast_int, sync_flags
from .guard import NonFiniteInput, guard_quantizer, nonfinite_message
from .history import epoch_row, format_row
from .trainer import Trainer
from .validate import nonfinite_metrics, validate

__all__ = ["TrainResult", "train_step", "guarded_forward", "check_step", "run_epoch", "fit"]


@dataclass
class TrainResult:
    history: list[dict]
    best_path: Path
    last_path: Path
    model: torch.nn.Module
    cfg: Config
    run_dir: Path
    device: torch.device
    stopped: str = "completed"     # "completed" | "time budget" | "interrupted"
    val_log: list[dict] = field(default_factory=list)   # (bench) SSIM at eval_every_s points

    @property
    def best(self) -> dict:
        return max(self.history, key=lambda h: h["val_ssim"]) if self.history else {}


def _stop(tr: Trainer, what: str, epoch: int, step: int) -> TrainingError:
    return TrainingError(nonfinite_message(what, epoch=epoch, step=step, saved=tr.state.saved,
                                           ckdir=tr.ckdir, cfg=tr.cfg))


# ---------------------------------------------------------------------------------------------
# One step: forward, backward, check, update
# ---------------------------------------------------------------------------------------------
def train_step(tr: Trainer, x: torch.Tensor, lr: float) -> dict[str, float]:
    """One optimizer step on the batch ``x`` (B, 1, H, W) in [0, 1]; returns the loss terms.

    This is the learning; the engineering around it (mixed precision, the finite checks) lives in
    :func:`guarded_forward` and :func:`check_step`, so that nothing moves when a value is not finite.

    Args:
        tr: the trainer (model, optimizer, scaler).
        x: the batch, on the training device.
        lr: the learning rate of this step.
    """
    for g in tr.optimizer.param_groups:
        g["lr"] = lr
    out = guarded_forward(tr, x)                  # encoder -> nearest code (EMA update) -> decoder
    tr.optimizer.zero_grad(set_to_none=True)
    tr.scaler.scale(out.loss.float()).backward()  # gradients of the VQ-VAE loss (fp16: scaled)
    terms = check_step(tr, out)                   # stops if a loss or the gradient is not finite
    tr.scaler.step(tr.optimizer)                  # optimizer.step() (fp16: unscaled, or skipped)
    tr.scaler.update()
    return terms


def guarded_forward(tr: Trainer, x: torch.Tensor):
    """The model's forward pass under the run's autocast; a non-finite quantizer input stops the
    run before the EMA codebook update could spread it (``guard``)."""
    try:
        with tr.autocast():
            return tr.net(x)
    except NonFiniteInput as e:
        raise _stop(tr, str(e), tr.state.epoch + 1, tr.state.step + 1) from None


def check_step(tr: Trainer, out) -> dict[str, float]:
    """Unscale (fp16), clip, and check the loss terms and the gradient norm before the optimizer
    moves anything; returns the loss terms for the log.

    One device->host copy per step carries the loss terms and the gradient norm; under
    ``torchrun`` all processes agree to stop.
    """
    tr.scaler.unscale_(tr.optimizer)                # true gradients (a no-op without fp16)
    if tr.cfg.grad_clip > 0:
        gnorm = torch.nn.utils.clip_grad_norm_(tr.params, tr.cfg.grad_clip)
    else:
        gnorm = torch.nn.utils.get_total_norm([p.grad for p in tr.params if p.grad is not None])
    values = torch.stack([out.loss.detach().float(), *(v.detach().float() for v in out.losses.values()),
                          gnorm.float()]).tolist()
    terms = dict(zip(("loss", *out.losses), values[:-1], strict=True))
    bad_grad = not math.isfinite(values[-1]) and not tr.scaler.is_enabled()   # fp16: scaler skips
    (bad,) = sync_flags(tr.dist, tr.device, bad_grad or not all(map(math.isfinite, terms.values())))
    if bad:
        raise _stop(tr, f"Non-finite loss or gradient (loss terms {terms}, gradient norm "
                        f"{values[-1]})", tr.state.epoch + 1, tr.state.step + 1)
    return terms


# ---------------------------------------------------------------------------------------------
# One epoch (or the rest of one, after a resume)
# ---------------------------------------------------------------------------------------------
def run_epoch(tr: Trainer, clock: Clock) -> str | None:
    """Train the rest of the current epoch; returns a stop reason or None.

    Args:
        tr: the trainer.
        clock: the run's clock (for the time budget).
    """
    cfg, st = tr.cfg, tr.state
    if st.epoch_perm is None:                       # a new epoch: a new permutation
        st.epoch_perm = torch.randperm(len(tr.data.train_u8), generator=tr.shuffle_gen)
        st.batch_in_epoch, st.accum = 0, {}
    images = epoch_images(tr.data, cfg)
    mine = st.epoch_perm[tr.dist.rank::tr.dist.world]   # every N-th image under torchrun
    total_steps = st.planned_epochs * tr.steps_per_epoch
    tr.net.train()
    bar = progress(range(st.batch_in_epoch, tr.steps_per_epoch), leave=False,
                   desc=f"epoch {st.epoch + 1}", disable=not tr.verbose)
    t_train, tr.eval_overhead, reason = time.perf_counter(), 0.0, None
    for b in bar:
        x = make_batch(images, mine[b * cfg.batch_size:(b + 1) * cfg.batch_size], tr.device,
                       cfg, tr.aug_gen)
        share = clock.elapsed() / (cfg.max_minutes * 60) if cfg.max_minutes > 0 else None
        lr = cfg.lr * lr_factor(cfg, st.step, st.epoch, total_steps, share)
        terms = train_step(tr, x, lr)
        st.step, st.batch_in_epoch = st.step + 1, b + 1
        for k, v in terms.items():
            st.accum[k] = st.accum.get(k, 0.0) + v
        st.accum["n"] = st.accum.get("n", 0) + 1
        bar.set_postfix(loss=f"{st.accum['loss'] / st.accum['n']:.4f}", lr=f"{lr:.2e}")
        if tr.on_step is not None:
            tr.on_step(tr)
        if tr.eval_every_s and tr.dist.is_main:
            tr.eval_point(t_train)
        interrupt, time_up = sync_flags(tr.dist, tr.device, tr.stop_signal is not None,
                                        tr.dist.is_main and clock.over(cfg.max_minutes))
        if interrupt or time_up:
            reason = "interrupted" if interrupt else "time budget"
            break
    st.train_seconds += time.perf_counter() - t_train - tr.eval_overhead
    return reason


# ---------------------------------------------------------------------------------------------
# The run: epochs, validation, checkpoints
# ---------------------------------------------------------------------------------------------
def fit(tr: Trainer, resume: bool = False, lock: bool = True) -> TrainResult:
    """Train until the planned epochs, the time budget or a signal end it.

    Args:
        tr: the trainer.
        resume: continue from ``<run_dir>/checkpoints/last.pt``.
        lock: hold the run folder's lock (False when the caller holds it already).
    """
    cfg = tr.cfg
    held = run_lock(tr.run_dir, "training") if lock and tr.dist.is_main else contextlib.nullcontext()
    with held, tr.signals():
        tr.start(resume)
        st, guard, stopped, clock = tr.state, guard_quantizer(tr.model), "completed", Clock(tr.state.elapsed)
        ebar = progress(total=st.planned_epochs, initial=st.epoch, desc="epochs", disable=not tr.verbose)
        try:
            while st.epoch < cfg.epochs:       # or until time is up (run_epoch says so)
                t_epoch, n_before, train_before = time.perf_counter(), st.accum.get("n", 0), st.train_seconds
                reason = run_epoch(tr, clock)
                if reason == "interrupted" and st.batch_in_epoch < tr.steps_per_epoch:
                    tr.save_interrupted(clock.elapsed())          # mid-epoch: last.pt to resume from
                    stopped = reason
                    break
                # ---- end of (possibly shortened) epoch: validate, check, log, save
                st.epoch += 1
                row = _end_epoch(tr, clock, t_epoch, n_before, train_before)
                if tr.dist.is_main:
                    _save_epoch(tr, row)
                ebar.update(1)
                recent = [r["epoch_seconds"] for r in tr.history.rows[-3:]]
                st.planned_epochs = broadcast_int(tr.dist, tr.device, plan_epochs(
                    cfg, st.epoch, st.planned_epochs, clock.elapsed(), recent))
                ebar.total = st.planned_epochs                   # an estimate, for the bar
                if reason is None and tr.stop_signal is not None:
                    reason = "interrupted"                        # the signal came during validation
                if reason is not None:
                    stopped = reason
                    break
        finally:
            ebar.close()
            guard.remove()
        tr.finish(stopped)
    barrier(tr.dist)
    return TrainResult(history=tr.history.rows, best_path=tr.ckdir / "best.pt",
                       last_path=tr.ckdir / "last.pt", model=tr.model, cfg=cfg, run_dir=tr.run_dir,
                       device=tr.device, stopped=stopped, val_log=tr.val_log)


def _end_epoch(tr: Trainer, clock: Clock, t_epoch: float, n_before: int, train_before: float) -> dict:
    """Validate (rank 0), stop if a metric is not finite, and build the epoch's history row."""
    cfg, st = tr.cfg, tr.state
    metrics = validate(tr.model, tr.data.val_u8, tr.device, cfg) if tr.dist.is_main else {}
    st.elapsed = clock.elapsed()
    (bad,) = sync_flags(tr.dist, tr.device, bool(nonfinite_metrics(metrics)))
    if bad:
        raise _stop(tr, f"Non-finite validation metrics {nonfinite_metrics(metrics)} after the "
                        f"last step", st.epoch, st.step)
    images = (st.accum.get("n", 0) - n_before) * cfg.batch_size * tr.dist.world
    row = epoch_row(epoch=st.epoch, step=st.step, accum=st.accum, metrics=metrics,
                    lr=tr.optimizer.param_groups[0]["lr"], elapsed=st.elapsed,
                    epoch_seconds=time.perf_counter() - t_epoch, train_seconds=st.train_seconds,
                    images_per_s=images / max(st.train_seconds - train_before, 1e-9),
                    precision=tr.precision)
    st.epoch_perm, st.batch_in_epoch, st.accum = None, 0, {}
    return row


def _save_epoch(tr: Trainer, row: dict) -> None:
    """Rank 0 at the end of an epoch: best.pt if SSIM improved, last.pt, history, figures."""
    st = tr.state
    tr.history.append(row)
    tr.log(format_row(row, tr.cfg.codebook_size))
    if row["val_ssim"] > st.best_ssim:
        st.best_ssim = row["val_ssim"]
        tr.save("best.pt")
        tr.recon_figure("recon_best", f"best so far: epoch {st.epoch}, val SSIM {row['val_ssim']:.3f}")
    if st.epoch == 1:
        tr.recon_figure("recon_epoch001", f"after epoch 1, val SSIM {row['val_ssim']:.3f}")
    tr.save("last.pt")
    tr.history.write(tr.run_dir)
