"""The training engine: one loop for a laptop CPU, one GPU, or many GPUs under torchrun.

    python -m vqvae_lib.train --preset cpu                      # 2-core laptop, minutes
    python -m vqvae_lib.train --preset gpu --batch-size 128     # any Config field as --key value
    python -m vqvae_lib.train --preset cpu --resume             # continue from last.pt
    torchrun --nproc_per_node=4 -m vqvae_lib.train --preset gpu # DistributedDataParallel

What makes it fast and dependable (each point is a line or two below):

* **No PNG decoding per epoch.** The split is decoded once into a uint8 array (``data.py``
  caches it), moved to the device, and each batch is an index into it, converted to float
  there. The ``reference`` preset sets ``decode_every_epoch`` to reproduce the reference's
  per-epoch decoding for the benchmark.
* **Warm-up then cosine learning rate** (Goyal et al. 2017; Loshchilov & Hutter 2017), gradient
  clipping, Adam. With ``max_minutes`` the cosine is fitted to the epochs that the budget
  allows (re-estimated after every epoch), so a slow machine still anneals instead of being cut
  off at a high learning rate; training stops at the epoch boundary that would cross the budget
  (or, if an epoch runs over, at the next step, and then validates once more).
* **Mixed precision** on CUDA (bf16 where supported, else fp16 with a gradient scaler) and
  channels-last memory; optional ``torch.compile``.
* **Validation every epoch** with the batched Gaussian SSIM of :mod:`vqvae_lib.metrics`, PSNR,
  codebook perplexity and dead codes; ``best.pt`` (by SSIM) and ``last.pt`` are written
  atomically with everything needed to resume *exactly* (optimizer, RNG states, position in
  the epoch).
* **Ctrl-C / SIGTERM** finishes the current step, saves ``last.pt`` and returns; ``resume=True``
  continues and reaches the same numbers as an uninterrupted run on CPU (tested).
* **A NaN/inf loss** stops with :class:`~vqvae_lib.errors.TrainingError`; checkpoints on disk
  are the last good ones.
* **Determinism**: the same seed on CPU gives the same history (shuffling uses its own
  generator; with ``max_minutes`` the schedule depends on the clock, so set it to 0 for
  bit-for-bit repeatability).
* **Multi-GPU**: under ``torchrun`` each process takes every N-th image of the shared epoch
  permutation (``batch_size`` is per process), gradients are averaged by DDP and codebook
  statistics by the quantizer; only rank 0 validates, logs and writes files.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import config_from_checkpoint, load_checkpoint, save_checkpoint
from .config import Config, get_config
from .errors import CheckpointError, TrainingError
from .model import build_model
from .paths import checkpoint_dir, run_dir_for
from .session import pick_device, quiet, seed_everything
from .train_utils import (
    History,
    augment_batch,
    decode_pngs,
    evaluate_model,
    pick_preview_indices,
    progress,
)

MIN_LR_RATIO = 0.01          # the cosine ends at 1% of the peak learning rate


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


def lr_factor(cfg: Config, step: int, epoch: int, total_steps: int) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` (0-based) in epoch ``epoch`` (0-based)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.scheduler == "cosine":
        t = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)))
        return warm * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * t)))
    if cfg.scheduler == "step":                       # the reference: StepLR(step_size, gamma)
        return warm * cfg.gamma ** (epoch // cfg.step_size)
    if cfg.scheduler == "constant":
        return warm
    raise ValueError(f"Unknown scheduler {cfg.scheduler!r}; choose 'cosine', 'step' or 'constant'.")


def _dist_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """Holds the model, optimizer, data and bookkeeping of one training run.

    ``on_step(trainer)`` is called after every optimizer step (tests use it to send a signal or
    poison a weight); ``eval_every_s`` adds extra validation points on a small subset every so
    many seconds of training (the benchmark uses it to time "seconds to SSIM 0.85").
    """

    def __init__(self, cfg: Config, data_dir=None, run_dir=None, device=None, verbose=True,
                 on_step=None, eval_every_s: float = 0.0, eval_subset: int = 128):
        self.cfg = cfg
        self.rank, self.world, self.local_rank = _dist_env()
        self.distributed = self.world > 1
        if device is None:
            device = pick_device(cfg.device)
            if self.distributed and device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
        self.device = torch.device(device)
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend)
        self.is_main = self.rank == 0
        self.verbose = verbose and self.is_main
        self.quiet = quiet()
        self.data_dir = data_dir
        self.run_dir = run_dir_for(cfg.preset, run_dir) if self.is_main else Path(run_dir or ".")
        self.on_step = on_step
        self.eval_every_s, self.eval_subset = eval_every_s, eval_subset
        self._stop_signal: str | None = None

    # ---- set-up -----------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.verbose:
            progress.write(msg)

    def _load_data(self) -> None:
        from .data import load_split  # local import: data pulls in PIL and the cache machinery

        cfg = self.cfg
        if self.distributed and not self.is_main:
            dist.barrier()                       # rank 0 builds the cache first
        train = load_split("train", self.data_dir, size=cfg.image_size, masks=False,
                           verbose=self.verbose)
        val = load_split("validate", self.data_dir, size=cfg.image_size, masks=False,
                         verbose=self.verbose)
        if self.distributed and self.is_main:
            dist.barrier()
        n_train = len(train.images) if cfg.max_train_images <= 0 else min(cfg.max_train_images, len(train.images))
        n_val = len(val.images) if cfg.max_eval_images <= 0 else min(cfg.max_eval_images, len(val.images))
        # Caps take evenly spaced slices so a small subset still covers every subject.
        train_idx = np.linspace(0, len(train.images) - 1, n_train).round().astype(int)
        val_idx = np.linspace(0, len(val.images) - 1, n_val).round().astype(int)
        self.train_paths = [train.paths[i] for i in train_idx]
        self.source = train.source
        store = self.device if self.device.type != "mps" else torch.device("cpu")
        # (N, 1, H, W) uint8 on the device: 16 KiB per 128x128 image; float only per batch.
        # all images: use the (memory-mapped) cache array as it is, no second copy of the split
        train_images = train.images if n_train == len(train.images) else train.images[train_idx]
        self.train_u8 = torch.from_numpy(np.ascontiguousarray(train_images))[:, None].to(store)
        self.val_u8 = torch.from_numpy(np.ascontiguousarray(val.images[val_idx]))[:, None].to(store)
        self.preview_idx = pick_preview_indices(self.val_u8, 8)
        local = len(self.train_u8) // self.world
        self.steps_per_epoch = local // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise TrainingError(
                f"The training split of {train.root} has {len(self.train_u8)} images, fewer than one "
                f"batch of {cfg.batch_size} per process; lower batch_size or add data.")

    def _build(self) -> None:
        cfg, dev = self.cfg, self.device
        seed_everything(cfg.seed)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        self.model = build_model(cfg).to(dev)
        self.use_cuda = dev.type == "cuda"
        if self.use_cuda and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = None
        if self.use_cuda and cfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if cfg.weight_decay > 0 else torch.optim.Adam
        self.optimizer = opt_cls(params, lr=cfg.lr, amsgrad=cfg.amsgrad, weight_decay=cfg.weight_decay)
        self.net = self.model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            self.net = DDP(self.model, device_ids=[dev.index] if self.use_cuda else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator(device=dev if dev.type == "cuda" else "cpu")
        self.aug_gen.manual_seed(cfg.seed + 7919 * (self.rank + 1))
        # bookkeeping that a checkpoint carries
        self.history = History()
        self.epoch, self.step, self.batch_in_epoch = 0, 0, 0
        self.epoch_perm: torch.Tensor | None = None
        self.accum: dict[str, float] = {}
        self.elapsed = 0.0                   # training + validation seconds over all sessions
        self.train_seconds = 0.0
        self.planned_epochs = cfg.epochs
        self.best_ssim = -1.0
        self.val_log: list[dict] = []

    # ---- checkpoints ------------------------------------------------------------------------
    def _trainer_state(self) -> dict:
        return {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "epoch_perm": self.epoch_perm if self.epoch_perm is not None else torch.zeros(0, dtype=torch.long),
            "accum": dict(self.accum), "elapsed": self.elapsed, "train_seconds": self.train_seconds,
            "planned_epochs": self.planned_epochs, "best_ssim": self.best_ssim,
            "shuffle_rng": self.shuffle_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "aug_rng": self.aug_gen.get_state().cpu(), "scaler": self.scaler.state_dict(),
        }

    def _save(self, name: str) -> Path:
        path = checkpoint_dir(self.run_dir) / name
        save_checkpoint(path, model=self.model, cfg=self.cfg, optimizer=self.optimizer,
                        history=self.history.rows, epoch=self.epoch, step=self.step,
                        best_metric=self.best_ssim, extra={"trainer": self._trainer_state(),
                                                           "source": self.source})
        return path

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        saved = config_from_checkpoint(ckpt, path)
        same = {k: v for k, v in saved.to_dict().items() if k not in ("epochs", "max_minutes", "extra")}
        now = {k: v for k, v in self.cfg.to_dict().items() if k not in ("epochs", "max_minutes", "extra")}
        if same != now:
            diff = {k: (same[k], now[k]) for k in now if same.get(k) != now[k]}
            raise CheckpointError(
                f"Cannot resume from {path}: it was trained with a different config {diff} "
                f"(saved vs requested). Resume with the same settings (only epochs and "
                f"max_minutes may change) or start a new run_dir.")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        st = ckpt["extra"]["trainer"]
        self.history = History(ckpt["history"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.batch_in_epoch = st["batch_in_epoch"]
        self.epoch_perm = st["epoch_perm"] if st["epoch_perm"].numel() else None
        self.accum = dict(st["accum"])
        self.elapsed, self.train_seconds = st["elapsed"], st["train_seconds"]
        self.planned_epochs = min(self.cfg.epochs, st["planned_epochs"]) if self.cfg.max_minutes > 0 \
            else self.cfg.epochs
        self.best_ssim = st["best_ssim"]
        self.shuffle_gen.set_state(st["shuffle_rng"])
        torch.set_rng_state(st["torch_rng"])
        self.aug_gen.set_state(st["aug_rng"].to(self.aug_gen.device))
        self.scaler.load_state_dict(st["scaler"])
        self._log(f"resumed from {path}: epoch {self.epoch}, step {self.step}, "
                  f"batch {self.batch_in_epoch}/{self.steps_per_epoch} of the next epoch")

    # ---- signals ------------------------------------------------------------------------------
    def _handle_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:                       # second Ctrl-C: give up now
            raise KeyboardInterrupt
        self._stop_signal = signal.Signals(signum).name
        self._log(f"{self._stop_signal}: finishing this step, saving last.pt, then stopping "
                  "(press again to abort without saving)")

    def _install_signals(self):
        if os.name == "nt" or not hasattr(signal, "SIGTERM"):
            return {}
        try:
            return {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:                                      # not the main thread
            return {}

    # ---- one epoch ----------------------------------------------------------------------------
    def _epoch_images(self) -> torch.Tensor:
        if not self.cfg.decode_every_epoch:
            return self.train_u8
        # The reference's data pipeline: decode every PNG again, every epoch.
        return torch.from_numpy(decode_pngs(self.train_paths, self.cfg.image_size))[:, None].to(self.train_u8.device)

    def _sync_flags(self, interrupt: bool, bad: bool, time_up: bool) -> tuple[bool, bool, bool]:
        if not self.distributed:
            return interrupt, bad, time_up
        t = torch.tensor([interrupt, bad, time_up], dtype=torch.float32,
                         device=self.device if self.use_cuda else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t[0]), bool(t[1]), bool(t[2])

    def _train_epoch(self, t_session: float, elapsed0: float) -> str | None:
        """Run (the rest of) one epoch; returns a stop reason or None."""
        cfg, dev = self.cfg, self.device
        if self.epoch_perm is None:
            self.epoch_perm = torch.randperm(len(self.train_u8), generator=self.shuffle_gen)
            self.batch_in_epoch, self.accum = 0, {}
        images = self._epoch_images()
        mine = self.epoch_perm[self.rank::self.world]
        total_steps = self.planned_epochs * self.steps_per_epoch
        self.net.train()
        bar = progress(range(self.batch_in_epoch, self.steps_per_epoch), leave=False,
                       desc=f"epoch {self.epoch + 1}", disable=not self.verbose or self.quiet)
        t_train = time.perf_counter()
        self._eval_overhead = 0.0
        reason = None
        for b in bar:
            idx = mine[b * cfg.batch_size:(b + 1) * cfg.batch_size].to(images.device)
            x = images[idx].to(dev, non_blocking=True).float().div_(255)        # (B, 1, H, W)
            if cfg.augment:
                x = augment_batch(x, self.aug_gen)
            if self.use_cuda and cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            lr = cfg.lr * lr_factor(cfg, self.step, self.epoch, total_steps)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            autocast = torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
            with autocast:
                out = self.net(x)
            loss = out.loss.float()
            # one device->host sync per step: the loss terms for the log and the NaN check
            terms = dict(zip(("loss", *out.losses), torch.stack(
                [loss.detach(), *(v.detach().float() for v in out.losses.values())]).tolist(), strict=True))
            bad = not all(math.isfinite(v) for v in terms.values())
            time_up = cfg.max_minutes > 0 and self.is_main and \
                elapsed0 + time.perf_counter() - t_session > cfg.max_minutes * 60
            interrupt, bad, time_up = self._sync_flags(self._stop_signal is not None, bad, time_up)
            if bad:
                raise TrainingError(
                    f"Non-finite loss ({terms}) at epoch {self.epoch + 1}, step {self.step}. "
                    f"Training stopped; the checkpoints in {checkpoint_dir(self.run_dir)} are from the "
                    f"last good epoch. Try a lower lr (now {cfg.lr}), grad_clip > 0, or amp=False.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            self.batch_in_epoch = b + 1
            for k, v in terms.items():
                self.accum[k] = self.accum.get(k, 0.0) + v
            self.accum["n"] = self.accum.get("n", 0) + 1
            if self.verbose and not self.quiet:
                bar.set_postfix(loss=f"{self.accum['loss'] / self.accum['n']:.4f}", lr=f"{lr:.2e}")
            if self.on_step is not None:
                self.on_step(self)
            if self.eval_every_s and self.is_main:
                self._maybe_eval_point(t_session, elapsed0, t_train)
            if interrupt or self._stop_signal is not None:
                reason = "interrupted"
                break
            if time_up:
                reason = "time budget"
                break
        self.train_seconds += time.perf_counter() - t_train - self._eval_overhead
        return reason

    def _maybe_eval_point(self, t_session, elapsed0, t_train) -> None:
        """Benchmark timeline: SSIM on a fixed subset every ``eval_every_s`` training seconds."""
        now = self.train_seconds + time.perf_counter() - t_train - self._eval_overhead
        if self.val_log and now - self.val_log[-1]["train_seconds"] < self.eval_every_s:
            return
        t0 = time.perf_counter()
        m = evaluate_model(self.model, self.val_u8[: self.eval_subset], self.device, self.cfg)
        self.net.train()
        self.val_log.append({"train_seconds": now, "step": self.step, "val_ssim": m["val_ssim"],
                             "images": self.step * self.cfg.batch_size})
        self._log(f"  [t={now:7.1f}s step {self.step}] subset SSIM {m['val_ssim']:.4f}")
        self._eval_overhead += time.perf_counter() - t0     # not counted as training time

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        from .training_plots import save_recon_grid, save_training_figures

        cfg = self.cfg
        self._load_data()
        self._build()
        ckdir = checkpoint_dir(self.run_dir) if self.is_main else None
        last = Path(self.run_dir) / "checkpoints" / "last.pt"
        if resume:
            if not last.is_file():
                raise CheckpointError(f"--resume: no {last} to resume from; train without --resume first.")
            self._restore(last)
        elif self.is_main:
            for stale in ("best.pt", "last.pt"):
                (ckdir / stale).unlink(missing_ok=True)
        old = self._install_signals()
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self._log(f"training {cfg.preset} on {self.device}"
                  f"{f' x{self.world} processes' if self.distributed else ''}: {len(self.train_u8)} train / "
                  f"{len(self.val_u8)} val images at {cfg.image_size}px, {n_params / 1e6:.2f}M params, "
                  f"{self.steps_per_epoch} steps/epoch of {cfg.batch_size}, up to {cfg.epochs} epochs"
                  f"{f', budget {cfg.max_minutes:g} min' if cfg.max_minutes else ''}"
                  f"{f', amp {self.amp_dtype}' if self.amp_dtype else ''}")
        t_session, elapsed0 = time.perf_counter(), self.elapsed
        stopped = "completed"
        ebar = progress(total=self.planned_epochs, initial=self.epoch, desc="epochs",
                        disable=not self.verbose or self.quiet)
        try:
            while self.epoch < self.planned_epochs:
                t_epoch = time.perf_counter()
                images_before = self.accum.get("n", 0) * cfg.batch_size
                train_before = self.train_seconds
                reason = self._train_epoch(t_session, elapsed0)
                if reason == "interrupted" and self.batch_in_epoch < self.steps_per_epoch:
                    self.elapsed = elapsed0 + time.perf_counter() - t_session
                    if self.is_main:
                        self._save("last.pt")
                    stopped = reason
                    self._log(f"interrupted at epoch {self.epoch + 1}, step {self.step}: saved {last}; "
                              "continue with resume=True (--resume)")
                    break
                # ---- end of (possibly shortened) epoch: validate, log, save
                self.epoch += 1
                row = self._end_epoch(t_session, elapsed0, t_epoch, images_before, train_before)
                self.epoch_perm, self.batch_in_epoch = None, 0
                self.accum = {}
                if self.is_main:
                    if row["val_ssim"] > self.best_ssim:
                        self.best_ssim = row["val_ssim"]
                        self._save("best.pt")
                        save_recon_grid(self.model, self.val_u8[self.preview_idx], self.device,
                                        self.run_dir, "recon_best.png", title=f"best so far: epoch {self.epoch}, val SSIM {row['val_ssim']:.3f}")
                    if self.epoch == 1:
                        save_recon_grid(self.model, self.val_u8[self.preview_idx], self.device,
                                        self.run_dir, "recon_epoch001.png",
                                        title=f"after epoch 1, val SSIM {row['val_ssim']:.3f}")
                    self._save("last.pt")
                    self.history.write(self.run_dir)
                ebar.update(1)
                self._plan_budget(t_session, elapsed0)
                if reason is None and self._stop_signal is not None:
                    reason = "interrupted"              # the signal came during validation
                if reason is not None:
                    stopped = reason
                    break
                if self.epoch >= self.planned_epochs and self.planned_epochs < cfg.epochs:
                    stopped = "time budget"
        finally:
            ebar.close()
            for s, h in old.items():
                signal.signal(s, h)
        if self.is_main and self.history.rows:
            save_training_figures(self.history.rows, cfg, self.run_dir)
            b = max(self.history.rows, key=lambda h: h["val_ssim"])
            self._log(f"done ({stopped}) after {self.epoch} epochs, {self.elapsed / 60:.1f} min: "
                      f"best val SSIM {b['val_ssim']:.4f} at epoch {b['epoch']} -> {ckdir / 'best.pt'}")
        if self.distributed:
            dist.barrier()
        return TrainResult(history=self.history.rows, best_path=Path(self.run_dir) / "checkpoints" / "best.pt",
                           last_path=last, model=self.model, cfg=cfg, run_dir=Path(self.run_dir),
                           device=self.device, stopped=stopped, val_log=self.val_log)

    def _end_epoch(self, t_session, elapsed0, t_epoch, images_before, train_before) -> dict:
        a = self.accum
        n = max(a.get("n", 0), 1)
        metrics = evaluate_model(self.model, self.val_u8, self.device, self.cfg) if self.is_main else \
            {"val_ssim": 0.0, "val_psnr": 0.0, "perplexity": 0.0, "used_codes": 0, "dead_codes": 0}
        self.elapsed = elapsed0 + time.perf_counter() - t_session
        epoch_seconds = time.perf_counter() - t_epoch
        images = (a.get("n", 0) * self.cfg.batch_size - images_before) * self.world
        row = {
            "epoch": self.epoch, "step": self.step, "seconds": round(self.elapsed, 3),
            "epoch_seconds": round(epoch_seconds, 3), "train_seconds": round(self.train_seconds, 3),
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": a.get("loss", 0.0) / n, "train_recon": a.get("recon", 0.0) / n,
            "train_codebook": a.get("codebook", 0.0) / n, "train_commitment": a.get("commitment", 0.0) / n,
            "train_ssim_loss": a.get("ssim", 0.0) / n,     # 1 - SSIM on training batches (0 if unused)
            **metrics,
            "images_per_s": images / max(self.train_seconds - train_before, 1e-9),   # training only
        }
        self.history.append(row)
        if self.verbose:
            progress.write(
                f"epoch {row['epoch']:3d} | {row['seconds']:7.1f}s | loss {row['train_loss']:.4f} "
                f"(recon {row['train_recon']:.4f}, commit {row['train_commitment']:.4f}) | val SSIM "
                f"{row['val_ssim']:.4f} PSNR {row['val_psnr']:.2f} | perplexity {row['perplexity']:.0f}, "
                f"{row['used_codes']}/{self.cfg.codebook_size} codes used | {row['images_per_s']:.0f} img/s")
        return row

    def _plan_budget(self, t_session, elapsed0) -> None:
        """Fit the remaining epochs into ``max_minutes``: the cosine then ends when time does."""
        cfg = self.cfg
        if cfg.max_minutes > 0:
            elapsed = elapsed0 + time.perf_counter() - t_session
            per_epoch = max(r["epoch_seconds"] for r in self.history.rows[-3:])   # cautious
            fit = self.epoch + int((cfg.max_minutes * 60 - elapsed) // max(per_epoch, 1e-9))
            self.planned_epochs = max(self.epoch, min(self.planned_epochs, fit))
        if self.distributed:
            t = torch.tensor([self.planned_epochs], device=self.device if self.use_cuda else "cpu")
            dist.broadcast(t, src=0)
            self.planned_epochs = int(t.item())


def describe(cfg: Config, device=None) -> str:
    """A few lines on what a run of ``cfg`` will do and how long it may take."""
    device = torch.device(device) if device is not None else pick_device(cfg.device)
    amp = "off"
    if device.type == "cuda" and cfg.amp:
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16 + gradient scaler"
    budget = f"at most {cfg.max_minutes:g} min (cosine fitted to it)" if cfg.max_minutes > 0 else "none"
    return "\n".join([
        f"preset {cfg.preset!r} on {device}: {cfg.image_size}x{cfg.image_size} images, batch {cfg.batch_size}, "
        f"up to {cfg.epochs} epochs",
        f"time budget: {budget}",
        f"optimiser: {'AdamW' if cfg.weight_decay > 0 else 'Adam'}{' (amsgrad)' if cfg.amsgrad else ''} "
        f"lr {cfg.lr:g}, {cfg.scheduler} schedule, warm-up {cfg.warmup_steps} steps, "
        f"grad clip {cfg.grad_clip or 'off'}",
        f"model: width {cfg.hidden_channels}, {cfg.n_res_blocks} res blocks, downsample {cfg.downsample}, "
        f"K={cfg.codebook_size}, D={cfg.code_dim}, {cfg.quantizer} quantizer"
        f"{', k-means init' if cfg.kmeans_init else ''}"
        f"{f', dead-code restart after {cfg.dead_code_steps} steps' if cfg.dead_code_steps else ''}",
        f"mixed precision: {amp} | channels_last: {cfg.channels_last and device.type == 'cuda'} | "
        f"torch.compile: {cfg.compile} | CPU threads: {torch.get_num_threads()}",
    ])


def train(cfg: Config, data_dir=None, run_dir=None, resume: bool = False, device=None,
          verbose: bool = True, **trainer_kwargs) -> TrainResult:
    """Train a VQ-VAE as configured; see the module docstring. Returns a :class:`TrainResult`."""
    return Trainer(cfg, data_dir=data_dir, run_dir=run_dir, device=device, verbose=verbose,
                   **trainer_kwargs).fit(resume=resume)


def _parse_cli(argv: list[str]):
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m vqvae_lib.train", description="Train the VQ-VAE (any Config field: --key value).",
        epilog="examples: --preset cpu --epochs 5 | --preset gpu --batch-size 128 --compile true | "
               "torchrun --nproc_per_node=2 -m vqvae_lib.train --preset gpu")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoints/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars, one line per epoch")
    args, rest = p.parse_known_args(argv)
    overrides, i = {}, 0
    while i < len(rest):
        tok = rest[i]
        if not tok.startswith("--"):
            p.error(f"unexpected argument {tok!r}; overrides look like --key value")
        if "=" in tok:
            k, v = tok[2:].split("=", 1)
            i += 1
        elif i + 1 < len(rest):
            k, v = tok[2:], rest[i + 1]
            i += 2
        else:
            p.error(f"{tok} needs a value")
        overrides[k.replace("-", "_")] = v
    return args, overrides


def main(argv: list[str] | None = None) -> int:
    args, overrides = _parse_cli(sys.argv[1:] if argv is None else argv)
    if args.quiet:
        os.environ["VQVAE_QUIET"] = "1"
    try:
        cfg = get_config(args.preset, **overrides)
        result = train(cfg, data_dir=args.data_dir, run_dir=args.run_dir, resume=args.resume)
    except (TrainingError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0 if result.stopped != "interrupted" else 130


if __name__ == "__main__":
    sys.exit(main())
