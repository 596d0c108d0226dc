"""Where torch runs and how reproducibly: the device, the seeds, deterministic kernels.

Used by every stage that trains or samples (``train/``, ``prior/``, ``codebook/experiment``) and
by the notebook set-up in ``session.py``; it depends on nothing else in the package but
``errors``.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .config_checks import check_device
from .errors import ConfigError

__all__ = ["pick_device", "seed_everything"]


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
    """``auto`` picks CUDA, then Apple MPS, then CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps``
    are taken as given; anything else is a ConfigError ("device must be auto, cpu, ...").

    Args:
        requested: the device name.
    """
    check_device(requested or "auto")
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
