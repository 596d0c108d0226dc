"""Show what a trained VQ-VAE does to test slices (the reference's ``predict.py``, done right).

    python -m vqvae_lib.predict --checkpoint runs/cpu/checkpoints/best.pt [--split test] [--n 8]

Loads the checkpoint, reconstructs the split (capped by the config's ``max_eval_images`` like
``evaluate``), and saves a grid of originals over reconstructions -- each titled with its own
SSIM, the figure titled with the mean SSIM over the whole scored split -- to
``runs/<preset>/figures/predict_<split>.png``. The slices shown are evenly spaced through the
split, so they span subjects and depths instead of being the first few of one subject.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from ..config_checks import check_count, check_device
from ..errors import cli
from ..paths import figure_dir, run_dir_of_checkpoint
from ..runlock import run_folder_lock
from .figures import plot_predictions
from .score import evaluate_checkpoint

MAX_SHOWN = 64
"""The most slices one predict figure shows."""


def choose_examples(n_total: int, n: int) -> np.ndarray:
    """``n`` evenly spaced indices into ``range(n_total)``."""
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int))


def predict(checkpoint: str | os.PathLike, split: str = "test", n: int = 8,
            data_dir: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
            device: str = "auto", max_images: int | None = None, batch_size: int = 64,
            cache_dir: str | os.PathLike | None = None) -> Path:
    """Save originals vs reconstructions for ``n`` slices of ``split``; return the PNG's path.

    Takes no lock (the CLI does, see :func:`~vqvae_lib.runlock.run_folder_lock`).

    Args:
        checkpoint: the ``.pt`` file.
        split: the split shown.
        n: how many slices (1..``MAX_SHOWN``).
        data_dir: the data folder.
        out: the PNG (default ``<run>/figures/predict_<split>.png``).
        device: auto, cpu, cuda, cuda:N or mps.
        max_images: cap the scored split (None: the config's ``max_eval_images``).
        batch_size: images per forward pass.
        cache_dir: the loader's cache folder.
    """
    check_count("n", n, 1, MAX_SHOWN)
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = evaluate_checkpoint(checkpoint, split, data_dir, batch_size=batch_size, device=device,
                             max_images=max_images, write=False, verbose=False,
                             cache_dir=cache_dir)
    idx = choose_examples(len(ev.originals), n)
    s = ev.per_image["ssim_gaussian"]
    labels = [f"{ev.slices.subjects[i]} / slice {int(ev.slices.slice_index[i])}" for i in idx]
    title = (f"{Path(checkpoint).name} ({ev.cfg.preset}) on the {split} split [{ev.slices.source}]: "
             f"mean SSIM {s.mean():.3f} over {len(s)} images (Gaussian window, [0, 1] data)")
    fig = plot_predictions(ev.originals[idx], ev.recons[idx], s[idx], labels=labels, title=title)
    path = Path(out) if out else figure_dir(run_dir_of_checkpoint(checkpoint)) / f"predict_{split}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


@cli
def main(argv: list[str] | None = None) -> int:
    """``python -m vqvae_lib.predict``: options checked first, then drawn under the run lock
    (when the figure goes into the run folder).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
    """
    ap = argparse.ArgumentParser(prog="python -m vqvae_lib.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="e.g. runs/cpu/checkpoints/best.pt")
    ap.add_argument("--split", default="test", choices=("train", "validate", "test"))
    ap.add_argument("--n", type=int, default=8, help=f"how many slices to show (1..{MAX_SHOWN})")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="PNG path (default: <run>/figures/predict_<split>.png)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-images", type=int, default=None)
    args = ap.parse_args(argv)
    check_count("--n", args.n, 1, MAX_SHOWN)
    if args.max_images is not None:
        check_count("--max-images", args.max_images, 0)
    check_device(args.device, "--device")
    lock = run_folder_lock(args.checkpoint, "predict") if args.out is None else contextlib.nullcontext()
    with lock:
        path = predict(args.checkpoint, args.split, args.n, args.data_dir, args.out,
                       device=args.device, max_images=args.max_images)
    print(f"wrote {path}")
    return 0
