"""Train a prior, or reuse the one on disk when it was fitted to this very VQ-VAE.

"This very VQ-VAE" means the same checkpoint *content* (its SHA-1), not the same path: a VQ-VAE
retrained at ``runs/<preset>/checkpoints/best.pt`` has other codes, so the old prior and its
metrics would be wrong for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import file_hash, load_model
from ..config import Config
from .codes import all_codes
from .fit import PriorRun, train_prior
from .store import load_prior

__all__ = ["train_or_load_prior", "reusable_prior"]


def reusable_prior(checkpoint, run_dir) -> Path | None:
    """``<run_dir>/prior/best.pt`` if it and its metrics exist and it was fitted to the checkpoint
    with this content, else None.

    Args:
        checkpoint: the VQ-VAE checkpoint.
        run_dir: the run folder.
    """
    best, metrics = Path(run_dir) / "prior" / "best.pt", Path(run_dir) / "prior" / "metrics.json"
    if not (best.is_file() and metrics.is_file()):
        return None
    _, ckpt = load_prior(best)
    return best if ckpt["extra"].get("vqvae_sha1") == file_hash(checkpoint) else None


def train_or_load_prior(checkpoint, data_dir=None, run_dir=None, device=None, retrain: bool = True,
                        verbose: bool = True, **overrides) -> PriorRun:
    """Train the prior, or (``retrain=False``) reload ``<run_dir>/prior/best.pt`` if it was fitted
    to this checkpoint's content. Either way the result carries history and metrics.

    Args:
        checkpoint: the VQ-VAE checkpoint.
        data_dir: data folder.
        run_dir: run folder (default: the folder above ``checkpoints/``).
        device: where to run.
        retrain: always train a new prior.
        verbose: print what happens.
        **overrides: config fields for a new prior (ignored when one is reused).
    """
    checkpoint = Path(checkpoint)
    run_dir = Path(run_dir) if run_dir else checkpoint.resolve().parent.parent
    best = None if retrain else reusable_prior(checkpoint, run_dir)
    if best is not None:
        device = device or "cpu"
        prior, ckpt = load_prior(best, device)
        cfg = Config.from_dict(ckpt["config"])
        vqvae, _, _ = load_model(checkpoint, device)
        codes = all_codes(vqvae, checkpoint, cfg, data_dir, run_dir, device)
        history = {"train": ckpt["extra"]["train_curve"], "val": ckpt["history"]}
        metrics = json.loads((run_dir / "prior" / "metrics.json").read_text())
        if verbose:
            print(f"loaded the {ckpt['extra'].get('prior_kind', 'pixelcnn')} prior from {best}, "
                  f"fitted to this VQ-VAE (retrain_prior=True trains a new one)")
        return PriorRun(prior, cfg, history, metrics, best, codes)
    if not retrain and verbose and (run_dir / "prior" / "best.pt").is_file():
        print(f"{run_dir / 'prior' / 'best.pt'} was fitted to another VQ-VAE (checkpoint content "
              f"differs): training a new prior")
    return train_prior(checkpoint, data_dir, run_dir, device, verbose, **overrides)
