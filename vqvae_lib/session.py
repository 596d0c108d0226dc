"""Notebook set-up: one call prints versions, device, data source and config, and seeds.

Every notebook starts with::

    S = setup_notebook(preset, data_dir, run_dir, seed)

and then uses ``S.cfg``, ``S.device``, ``S.run_dir``, ``S.data_dir`` and ``S.source``.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, get_config
from .errors import ConfigError, install_notebook_handler
from .paths import run_dir_for


def quiet() -> bool:
    """True when running headless (papermill, CI): progress bars give way to one line per epoch."""
    return bool(os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("VQVAE_QUIET"))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU), and ask torch for deterministic kernels.

    With ``deterministic`` (the default) this switches on
    ``torch.use_deterministic_algorithms(True, warn_only=True)``, ``cudnn.deterministic`` and
    sets ``CUBLAS_WORKSPACE_CONFIG`` (it must be set before CUDA starts; ``setup_notebook`` and
    the trainer call this first). What stays non-deterministic (docs/RELIABILITY.md): a GPU op
    with no deterministic kernel (torch then warns once, it does not fail), the order of NCCL
    all-reduces under ``torchrun``, and the schedule of a run with a wall-clock budget
    (``max_minutes`` > 0) or a different number of CPU threads.

    Args:
        seed: the seed for every generator.
        deterministic: ask for deterministic kernels (slower on some GPU convolutions).
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # before cuBLAS starts
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; anything else is taken as given."""
    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device='cuda' was requested but no CUDA GPU is visible; use "
                              "device='auto' or 'cpu'.")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Session:
    cfg: Config
    device: torch.device
    run_dir: Path
    data_dir: Path
    source: str
    seed: int


def setup_notebook(
    preset: str = "cpu",
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    seed: int = 0,
    verbose: bool = True,
    **overrides: Any,
) -> Session:
    """Seed, resolve the device, data folder and run folder, and print them with the versions."""
    from .data.slices import resolve_data_dir  # local import: data is heavier

    install_notebook_handler()      # OS and input errors: one line, not a traceback
    cfg = get_config(preset, seed=seed, **overrides)
    seed_everything(seed)
    device = pick_device(cfg.device)
    rdir = run_dir_for(preset, run_dir)
    droot, source = resolve_data_dir(data_dir)
    if verbose:
        import matplotlib
        import skimage

        print(f"python {platform.python_version()} | torch {torch.__version__} | numpy {np.__version__} "
              f"| matplotlib {matplotlib.__version__} | scikit-image {skimage.__version__}")
        gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
        print(f"device: {device}{gpu} | CPU threads: {torch.get_num_threads()}")
        print(f"data:   {droot} [{source}{' - synthetic demo subjects' if source == 'demo' else ''}]")
        print(f"runs:   {rdir}")
        print(f"preset: {preset} | seed {seed} | image {cfg.image_size}px -> latent "
              f"{cfg.latent_size}x{cfg.latent_size}, K={cfg.codebook_size}, D={cfg.code_dim}, "
              f"quantizer={cfg.quantizer}")
    return Session(cfg=cfg, device=device, run_dir=rdir, data_dir=droot, source=source, seed=seed)
