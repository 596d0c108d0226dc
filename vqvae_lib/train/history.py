"""Per-epoch rows of a training run: ``history.json`` (a list of dicts) and ``history.csv``.

Both files are written atomically (:func:`vqvae_lib.common.atomic_write`): a reader, or a run
killed mid-write, sees the previous complete file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..common import atomic_write, atomic_write_text
from ..errors import CheckpointError

__all__ = ["History", "load_history", "epoch_row", "format_row"]


class History:
    """Per-epoch rows, written as ``history.json`` and ``history.csv`` in the run folder.

    Args:
        rows: earlier rows (e.g. from a checkpoint being resumed).
    """

    def __init__(self, rows=None):
        self.rows: list[dict] = [dict(r) for r in (rows or [])]

    def append(self, row: dict) -> None:
        self.rows.append({k: (float(v) if isinstance(v, float) else v) for k, v in row.items()})

    def write(self, run_dir) -> None:
        """Write both files into ``run_dir`` (atomically, mode 0644)."""
        run_dir = Path(run_dir)
        atomic_write_text(run_dir / "history.json", json.dumps(self.rows, indent=1))
        if self.rows:
            def write_csv(f):
                w = csv.DictWriter(f, fieldnames=list(self.rows[0]), extrasaction="ignore")
                w.writeheader()
                w.writerows(self.rows)

            atomic_write(run_dir / "history.csv", write_csv, mode="w")


def load_history(run_dir) -> list[dict]:
    """The rows of ``<run_dir>/history.json`` written by the trainer.

    Args:
        run_dir: the run folder.
    """
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise CheckpointError(f"No training history at {path}; run notebooks/03_training.ipynb first.")
    return json.loads(path.read_text())


def epoch_row(*, epoch: int, step: int, accum: dict, metrics: dict, lr: float, elapsed: float,
              epoch_seconds: float, train_seconds: float, images_per_s: float,
              precision: str = "fp32") -> dict:
    """One history row: mean training loss terms of the epoch, validation metrics, timings.

    Args:
        epoch: epochs done (1-based after the first).
        step: optimizer steps done.
        accum: summed loss terms over the epoch's steps and their count ``n``.
        metrics: from :func:`vqvae_lib.train.validate.validate`.
        lr: the learning rate of the last step.
        elapsed: seconds of the run so far (training and validation).
        epoch_seconds: this epoch's seconds.
        train_seconds: training seconds of the run so far.
        images_per_s: training throughput of this epoch (all processes).
        precision: what the training steps ran in (``"bf16"``, ``"fp16"`` or ``"fp32"``).
    """
    n = max(accum.get("n", 0), 1)
    return {
        "epoch": epoch, "step": step, "seconds": round(elapsed, 3),
        "epoch_seconds": round(epoch_seconds, 3), "train_seconds": round(train_seconds, 3),
        "lr": lr,
        "train_loss": accum.get("loss", 0.0) / n, "train_recon": accum.get("recon", 0.0) / n,
        "train_codebook": accum.get("codebook", 0.0) / n,
        "train_commitment": accum.get("commitment", 0.0) / n,
        "train_ssim_loss": accum.get("ssim", 0.0) / n,   # 1 - SSIM on training batches (0 if unused)
        **metrics,
        "images_per_s": images_per_s, "precision": precision,
    }


def format_row(row: dict, codebook_size: int) -> str:
    """The one line printed per epoch."""
    return (f"epoch {row['epoch']:3d} | {row['seconds']:7.1f}s | loss {row['train_loss']:.4f} "
            f"(recon {row['train_recon']:.4f}, commit {row['train_commitment']:.4f}) | val SSIM "
            f"{row['val_ssim']:.4f} PSNR {row['val_psnr']:.2f} | perplexity {row['perplexity']:.0f}, "
            f"{row['used_codes']}/{codebook_size} codes used | {row['images_per_s']:.0f} img/s ({row.get('precision', 'fp32')})")
