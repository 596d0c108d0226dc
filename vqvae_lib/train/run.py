"""``train(cfg, ...)``: build the model and the data from a config, and run the loop.

The trainer itself builds neither (minGPT style); these two functions do it for notebooks and
the CLI. ``train`` holds the run folder's lock (:mod:`vqvae_lib.runlock`) from the start, so a
second training into the same folder is refused before it loads anything.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..config import Config
from ..model.vqvae import build_model
from ..paths import run_dir_for
from ..runlock import run_lock
from ..runtime import pick_device, seed_everything
from .batches import load_train_data
from .distributed import barrier, dist_env, init_distributed
from .loop import TrainResult, fit
from .trainer import Trainer

__all__ = ["make_trainer", "train"]


def make_trainer(cfg: Config, data_dir=None, run_dir=None, device=None, verbose: bool = True,
                 **trainer_kwargs) -> Trainer:
    """Seed, load the data, build the model for ``cfg`` and return a :class:`Trainer`.

    Args:
        cfg: the run's config.
        data_dir: the data folder (default: ``$VQVAE_DATA_DIR``, data/oasis, data/demo).
        run_dir: the run folder (default ``runs/<preset>``).
        device: the device (default: what ``cfg.device`` picks; ``cuda:<local_rank>`` under torchrun).
        verbose: print progress (rank 0 only).
        **trainer_kwargs: ``on_step``, ``eval_every_s``, ``eval_subset`` (see :class:`Trainer`).
    """
    info = dist_env()
    device = init_distributed(info, pick_device(cfg.device) if device is None else torch.device(device))
    seed_everything(cfg.seed)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    run_dir = run_dir_for(cfg.preset, run_dir) if info.is_main else Path(run_dir or ".")
    if not info.is_main:
        barrier(info)                               # rank 0 builds the data cache first
    data = load_train_data(cfg, data_dir, device, verbose=verbose and info.is_main)
    if info.is_main:
        barrier(info)
    return Trainer(cfg, build_model(cfg), data, run_dir, device, dist=info, verbose=verbose,
                   **trainer_kwargs)


def train(cfg: Config, data_dir=None, run_dir=None, resume: bool = False, device=None,
          verbose: bool = True, **trainer_kwargs) -> TrainResult:
    """Train a VQ-VAE as configured (holding the run folder's lock); see the module docstring.

    Args:
        cfg: the run's config.
        data_dir: the data folder.
        run_dir: the run folder (default ``runs/<preset>``).
        resume: continue from ``<run_dir>/checkpoints/last.pt``.
        device: the device (default: what ``cfg.device`` picks).
        verbose: print progress.
        **trainer_kwargs: see :class:`Trainer`.
    """
    info = dist_env()
    rdir = run_dir_for(cfg.preset, run_dir) if info.is_main else None
    with run_lock(rdir, "training") if info.is_main else contextlib.nullcontext():
        tr = make_trainer(cfg, data_dir, rdir, device, verbose, **trainer_kwargs)
        return fit(tr, resume=resume, lock=False)
