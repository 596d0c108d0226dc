"""What a run writes, and how a rerun keeps the previous good model until it has its own.

A new run (not ``--resume``) deletes nothing when it starts. When it writes its *first*
checkpoint, the previous run's files are handed over to ``checkpoints/previous/``: ``best.pt`` is
hard-linked there (copied where links are impossible) and stays in place; ``last.pt``,
``history.json`` and ``history.csv`` move there together, so the top-level history never
describes another run than ``last.pt`` (until the new run's first epoch ends there is none; a
resume reads the history from ``last.pt`` itself). So until the new run has saved a valid,
finite ``best.pt`` (at the end of its first epoch), ``checkpoints/best.pt`` is still the
previous model, whatever happens to the new run (NaN, Ctrl-C, ``kill -9``, a full disk);
afterwards ``previous/`` still holds it.
Notebooks and CLIs keep finding "the trained model" at ``checkpoints/best.pt``. Every file is
written atomically (temp file + fsync + rename + folder fsync, mode 0644).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ..checkpoint import load_checkpoint, save_checkpoint
from ..common import remove_stale_temporaries
from ..errors import CheckpointError

__all__ = ["PREVIOUS", "keep_previous", "save_run_checkpoint", "load_run_checkpoint"]

PREVIOUS = "previous"


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes the same content as ``src``, atomically (no half file at ``dst``)."""
    tmp = dst.with_name(f".{dst.name}.handover.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:                       # no hard links here (some network or FAT folders)
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def keep_previous(ckdir: str | os.PathLike) -> Path | None:
    """Hand the previous run's checkpoints over to ``<ckdir>/previous/``.

    Called once, before a new run writes its first checkpoint. Does nothing when there is no
    ``best.pt``, or when ``previous/best.pt`` already is this very file (a run that was stopped
    before its first epoch ended already handed it over). Returns the ``previous`` folder, or
    None when nothing was handed over.

    Args:
        ckdir: the run's ``checkpoints`` folder.
    """
    ckdir = Path(ckdir)
    best, prev = ckdir / "best.pt", ckdir / PREVIOUS
    if not best.is_file():
        return None
    if (prev / "best.pt").is_file() and os.path.samefile(best, prev / "best.pt"):
        return None
    prev.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(prev, "best.pt")
    _link_or_copy(best, prev / "best.pt")
    for name in ("history.json", "history.csv"):       # stale copies of an older hand-over
        with contextlib.suppress(FileNotFoundError):
            (prev / name).unlink()
    if (ckdir / "last.pt").is_file():
        os.replace(ckdir / "last.pt", prev / "last.pt")
    for name in ("history.json", "history.csv"):        # with last.pt: the history of that run
        if (ckdir.parent / name).is_file():
            os.replace(ckdir.parent / name, prev / name)
    return prev


def save_run_checkpoint(path: Path, *, model, cfg, optimizer, history: list[dict], epoch: int,
                        step: int, best_metric: float, trainer_state: dict, source: str) -> Path:
    """Write a training checkpoint (refused, file untouched, if any tensor is not finite).

    Args:
        path: ``<run_dir>/checkpoints/{best,last}.pt``.
        model: the VQ-VAE.
        cfg: its config.
        optimizer: the optimizer (its state is needed to resume).
        history: the history rows so far.
        epoch: epochs completed.
        step: optimizer steps taken.
        best_metric: the best validation SSIM so far.
        trainer_state: from :func:`vqvae_lib.train.state.state_dict`.
        source: the data source ("oasis", "demo", "custom").
    """
    return save_checkpoint(path, model=model, cfg=cfg, optimizer=optimizer, history=history,
                           epoch=epoch, step=step, best_metric=best_metric,
                           extra={"trainer": trainer_state, "source": source})


def load_run_checkpoint(path: Path) -> dict:
    """Load ``last.pt`` to resume (a CheckpointError says how to proceed when it is missing).

    Args:
        path: ``<run_dir>/checkpoints/last.pt``.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"--resume: no {path} to resume from; train without --resume first.")
    return load_checkpoint(path)
