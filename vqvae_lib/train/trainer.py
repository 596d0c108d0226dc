"""The :class:`Trainer`: a model, its data, and the bookkeeping around the training loop.

In the style of minGPT, the trainer takes a model and data and builds neither
(:func:`vqvae_lib.train.loop.train` builds both from a config). It owns the optimizer, mixed
precision, the DDP wrapper, the random generators, the run's counters (:mod:`.state`), the
signals (Ctrl-C / SIGTERM finish the step, save ``last.pt`` and return) and the files of the run
(:mod:`.runfiles`). The loop itself is :func:`vqvae_lib.train.loop.fit`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .. import viz
from ..common import progress
from ..errors import CheckpointError, TrainingError
from ..paths import checkpoint_dir
from ..runtime import autocast, autocast_dtype, precision_name
from . import figures
from .batches import TrainData, steps_per_epoch
from .distributed import DistInfo, dist_env, init_distributed
from .guard import guard_quantizer, nonfinite_message
from .history import History
from .runfiles import keep_previous, load_run_checkpoint, save_run_checkpoint
from .state import TrainState, check_resumable, load_state, state_dict
from .validate import validate

__all__ = ["Trainer"]


class Trainer:
    """Holds the model, optimizer, data and bookkeeping of one training run.

    Args:
        cfg: the run's config.
        model: the VQ-VAE, already on ``device``.
        data: the uint8 slices (:func:`vqvae_lib.train.batches.load_train_data`).
        run_dir: where checkpoints, history and figures go (only rank 0 writes).
        device: the training device.
        dist: this process's place in a ``torchrun`` job (default: from the environment).
        verbose: print a line per epoch (rank 0 only).
        on_step: ``on_step(trainer)`` after every optimizer step (tests use it to send a signal
            or poison a weight).
        eval_every_s: extra validation points on ``eval_subset`` slices every so many training
            seconds (the benchmark times "seconds to SSIM 0.85" with it).
        eval_subset: slices per extra validation point.
    """

    def __init__(self, cfg, model: torch.nn.Module, data: TrainData, run_dir, device,
                 dist: DistInfo | None = None, verbose: bool = True, on_step=None,
                 eval_every_s: float = 0.0, eval_subset: int = 128):
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.dist = dist or dist_env()
        self.device = init_distributed(self.dist, torch.device(device))
        self.verbose = verbose and self.dist.is_main
        self.on_step, self.eval_every_s, self.eval_subset = on_step, eval_every_s, eval_subset
        self.steps_per_epoch = steps_per_epoch(data, cfg, self.dist.world)
        self.use_cuda = self.device.type == "cuda"
        self.model = model.to(self.device)
        if self.use_cuda and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)   # None: fp32
        self.precision = precision_name(self.amp_dtype)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if cfg.weight_decay > 0 else torch.optim.Adam
        self.optimizer = opt_cls(self.params, lr=cfg.lr, amsgrad=cfg.amsgrad,
                                 weight_decay=cfg.weight_decay)
        self.net = self.model
        if self.dist.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.use_cuda else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self._guard = guard_quantizer(self.model)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator(device=self.device if self.use_cuda else "cpu")
        self.aug_gen.manual_seed(cfg.seed + 7919 * (self.dist.rank + 1))
        self.history = History()
        self.state = TrainState(planned_epochs=cfg.epochs)
        self.stop_signal: str | None = None
        self.val_log: list[dict] = []
        self.eval_overhead = 0.0

    # ---- counters the callbacks and the benchmark read -------------------------------------
    @property
    def step(self) -> int:
        return self.state.step

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def train_seconds(self) -> float:
        return self.state.train_seconds

    @property
    def ckdir(self) -> Path:
        return self.run_dir / "checkpoints"

    def log(self, msg: str) -> None:
        if self.verbose:
            progress.write(msg)

    def autocast(self):
        """Mixed precision for the forward pass: bf16 on a GPU or a CPU that has it natively, fp16
        with the gradient scaler on older GPUs, nothing (fp32) elsewhere (``runtime.autocast_dtype``)."""
        return autocast(self.device, self.amp_dtype)

    # ---- start: resume, or a fresh run ------------------------------------------------------
    def start(self, resume: bool) -> None:
        """Restore ``last.pt`` (``resume``), or start fresh (deleting nothing); print the plan."""
        if resume:
            self._resume(self.ckdir / "last.pt")
        cfg = self.cfg
        self.log(f"training {cfg.preset} on {self.device}: {len(self.data.train_u8)} train / "
                 f"{len(self.data.val_u8)} val images at {cfg.image_size}px, "
                 f"{sum(p.numel() for p in self.params) / 1e6:.2f}M params, {self.steps_per_epoch} "
                 f"steps/epoch of {cfg.batch_size} x{self.dist.world} processes, up to {cfg.epochs} "
                 f"epochs{f', budget {cfg.max_minutes:g} min' if cfg.max_minutes else ''}"
                 f", precision {self.precision}")

    def _resume(self, path: Path) -> None:
        ckpt = load_run_checkpoint(path)
        check_resumable(ckpt, self.cfg, path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.history = History(ckpt["history"])
        self.state = load_state(ckpt, self.cfg, self.shuffle_gen, self.aug_gen, self.scaler,
                                self.device)
        st = self.state
        self.log(f"resumed from {path}: epoch {st.epoch}, step {st.step}, "
                 f"batch {st.batch_in_epoch}/{self.steps_per_epoch} of the next epoch")

    # ---- files --------------------------------------------------------------------------------
    def save(self, name: str) -> Path:
        """Write ``best.pt`` or ``last.pt`` (rank 0); the first save of a fresh run first hands
        the previous run's files over to ``checkpoints/previous/``."""
        st = self.state
        if not st.saved:
            keep_previous(checkpoint_dir(self.run_dir))
        before = dict(st.saved)
        st.saved[name] = [st.epoch, st.step]
        try:
            return save_run_checkpoint(
                self.ckdir / name, model=self.model, cfg=self.cfg, optimizer=self.optimizer,
                history=self.history.rows, epoch=st.epoch, step=st.step, best_metric=st.best_ssim,
                trainer_state=state_dict(st, self.shuffle_gen, self.aug_gen, self.scaler,
                                         self.device), source=self.data.source)
        except CheckpointError as e:          # a non-finite tensor: refused, file untouched
            st.saved = before
            raise TrainingError(nonfinite_message(
                f"Non-finite values in the model ({e})", epoch=st.epoch, step=st.step,
                saved=st.saved, ckdir=self.ckdir, cfg=self.cfg)) from None
        except BaseException:
            st.saved = before
            raise

    def save_interrupted(self, elapsed: float) -> None:
        """Stopped mid-epoch by a signal: save ``last.pt`` (rank 0) to resume from."""
        self.state.elapsed = elapsed
        if self.dist.is_main:
            self.save("last.pt")
        self.log(f"interrupted at epoch {self.state.epoch + 1}, step {self.state.step}: saved "
                 f"{self.ckdir / 'last.pt'}; continue with resume=True (--resume)")

    def finish(self, stopped: str) -> None:
        """Rank 0 at the end of a run: the training figures and a summary line."""
        if not (self.dist.is_main and self.history.rows):
            return
        for name, fig in figures.training_figures(self.history.rows, self.cfg).items():
            self.save_figure(fig, name)
        b = max(self.history.rows, key=lambda h: h["val_ssim"])
        self.log(f"done ({stopped}) after {self.state.epoch} epochs, {self.state.elapsed / 60:.1f} "
                 f"min: best val SSIM {b['val_ssim']:.4f} at epoch {b['epoch']} -> {self.ckdir / 'best.pt'}")

    def save_figure(self, fig, name: str) -> None:
        viz.save_figure(fig, self.run_dir, name)
        plt.close(fig)

    def recon_figure(self, name: str, title: str) -> None:
        self.save_figure(figures.recon_grid(self.model, self.data.val_u8[self.data.preview_idx],
                                            title), name)

    # ---- signals ------------------------------------------------------------------------------
    def _handle_signal(self, signum, frame) -> None:
        if self.stop_signal is not None:                        # second Ctrl-C: give up now
            raise KeyboardInterrupt
        self.stop_signal = signal.Signals(signum).name
        self.log(f"{self.stop_signal}: finishing this step, saving last.pt, then stopping "
                 "(press again to abort without saving)")

    @contextlib.contextmanager
    def signals(self):
        """Ctrl-C and SIGTERM set :attr:`stop_signal` for the loop (main thread, POSIX)."""
        old = {}
        if os.name != "nt":
            with contextlib.suppress(ValueError):               # not the main thread
                old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ---- the benchmark's extra validation points ----------------------------------------------
    def eval_point(self, t_train: float) -> None:
        """SSIM on a fixed subset every ``eval_every_s`` training seconds (not counted as training)."""
        now = self.state.train_seconds + time.perf_counter() - t_train - self.eval_overhead
        if self.val_log and now - self.val_log[-1]["train_seconds"] < self.eval_every_s:
            return
        t0 = time.perf_counter()
        m = validate(self.model, self.data.val_u8[: self.eval_subset], self.device, self.cfg)
        self.net.train()
        self.val_log.append({"train_seconds": now, "step": self.state.step, "val_ssim": m["val_ssim"],
                             "images": self.state.step * self.cfg.batch_size})
        self.log(f"  [t={now:7.1f}s step {self.state.step}] subset SSIM {m['val_ssim']:.4f}")
        self.eval_overhead += time.perf_counter() - t0
