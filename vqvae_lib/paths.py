"""Where things live: the repository root, data folders and run folders.

Notebooks run with their own folder as the working directory (JupyterLab) or the
repository root (papermill from make); these helpers make paths independent of that.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The folder holding ``pyproject.toml`` above this package (or the cwd as a fallback)."""
    here = Path(__file__).resolve().parent
    for cand in (here, *here.parents):
        if (cand / "pyproject.toml").is_file() and (cand / "vqvae_lib").is_dir():
            return cand
    return Path.cwd()


def data_root() -> Path:
    return repo_root() / "data"


def default_cache_dir() -> Path:
    return data_root() / "cache"


def run_dir_for(preset: str, run_dir: str | os.PathLike | None = None) -> Path:
    """``runs/<preset>`` under the repository unless ``run_dir`` is given; created."""
    path = Path(run_dir) if run_dir else repo_root() / "runs" / preset
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir) / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def figure_dir(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir_of_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """``runs/<preset>/checkpoints/best.pt`` -> ``runs/<preset>``; else the file's folder."""
    parent = Path(checkpoint).resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent
