"""Notebook set-up: one call prints versions, device, data source and config, and seeds.

Every notebook starts with::

    S = setup_notebook(preset, data_dir, run_dir, seed)

and then uses ``S.cfg``, ``S.device``, ``S.run_dir``, ``S.data_dir`` and ``S.source``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, get_config
from ..data.dataset import resolve_data_dir
from ..errors import install_notebook_handler
from ..paths import run_dir_for
from ..runtime import pick_device, seed_everything


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
