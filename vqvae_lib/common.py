"""Small things every stage shares: tissue names and colours, splits, even spacing, safe writes,
progress bars. (Replacing a whole output folder safely: :mod:`vqvae_lib.folders`.)

One definition each, so that a notebook, a figure and a metric never disagree on what label 2
means or what colour white matter has.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "SPLITS", "TISSUE_NAMES", "TISSUE_COLORS", "MASK_VALUES", "MASK_LEGEND", "evenly_spaced", "atomic_write",
    "atomic_write_text", "quiet", "progress", "remove_stale_temporaries",
]

SPLITS = ("train", "validate", "test")
"""The three splits, in the order the course uses them."""

TISSUE_NAMES = ("background", "CSF", "grey matter", "white matter")
"""Mask labels 0..3 (PNG values 0, 85, 170, 255 in the course layout)."""

TISSUE_COLORS = ("#222222", "#3b8bd4", "#e08a2c", "#f0d43a")
"""One colour per tissue label, used by every figure: dark grey background, blue CSF, orange grey
matter, yellow white matter (readable as bars and as an overlay on a grey slice)."""

MASK_VALUES = (0, 85, 170, 255)
"""The grey values of the tissue labels in the course's mask PNGs."""

MASK_LEGEND = {str(v): name for v, name in zip(MASK_VALUES, TISSUE_NAMES, strict=True)}
"""What each mask value means, as data sets' manifests write it: {"0": "background", ...}."""


def evenly_spaced(n_total: int, n: int | None) -> np.ndarray:
    """Indices of ``n`` items spread evenly over ``n_total`` (all of them if ``n`` is falsy or
    not smaller). Caps and previews use it so that a small subset still covers every subject and
    every depth of a split, which is ordered by subject.

    Args:
        n_total: the number of items to choose from.
        n: how many to keep; ``None`` or ``0`` keeps all.
    """
    if not n or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


def quiet() -> bool:
    """True when running headless (papermill, CI, ``VQVAE_QUIET=1``): progress bars give way
    to one line per epoch."""
    return bool(os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("VQVAE_QUIET"))


def progress(*args, **kwargs):
    """``tqdm.auto`` progress bar that stays silent when :func:`quiet` is true."""
    kwargs["disable"] = kwargs.get("disable", False) or quiet()
    return tqdm(*args, **kwargs)


progress.write = tqdm.write


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> None:
    """Delete ``.<name>.*.tmp`` files that a write killed mid-way left in ``folder``."""
    folder = Path(folder)
    if folder.is_dir():
        for tmp in folder.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write(path: str | os.PathLike, write, mode: str = "wb") -> Path:
    """Write a file so that readers see the old version or the complete new one, never half.

    ``write(f)`` fills a temporary file beside ``path``; it is flushed, fsynced and renamed over
    ``path`` (an atomic ``os.replace``), then the folder is fsynced so the rename survives a power
    cut. On any error the temporary file is removed and the old file stays untouched. Leftover
    temporaries of a killed earlier write are removed first. The file gets mode 0644.

    Args:
        path: the file to (re)write.
        write: a function taking the open temporary file.
        mode: ``"wb"`` or ``"w"`` (text, newline="" so CSV writers control line ends).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        kw = {"newline": ""} if "b" not in mode else {}
        with os.fdopen(fd, mode, **kw) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):           # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON (final newline) atomically; the one JSON writer of a run.

    Args:
        path: the file.
        obj: anything ``json.dumps`` takes.
    """
    return atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` for a string (UTF-8)."""
    return atomic_write(path, lambda f: f.write(text), mode="w")
