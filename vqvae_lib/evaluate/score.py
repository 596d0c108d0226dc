"""Score a trained VQ-VAE on a whole split: SSIM (two conventions), PSNR, MSE, bit rate.

    python -m vqvae_lib.evaluate --checkpoint runs/cpu/checkpoints/best.pt --split test [--data-dir DIR]

writes ``metrics.json`` (the headline numbers) and ``metrics_per_image.csv`` (one row per slice)
into the checkpoint's run folder (``runs/<preset>/``), atomically, and prints the summary.

What is measured, and how (see ``metrics.py`` for the formulas):

* **Every image of the split, at the model's resolution**, on [0, 1] images with
  ``data_range=1``. (The reference scored 32 images on [-1, 1] data with ``data_range=1``;
  ``range_mistake`` shows what that does.) Smoke configs cap the split with
  ``max_eval_images``; ``metrics.json`` then says ``"subset": true``.
* **SSIM, Gaussian window** (sigma 1.5, Wang et al. 2004) -- our headline, and **SSIM, 7x7
  uniform window** (scikit-image's default) to compare with course reports that used it.
  Mean, std, median and 5th percentile: the mean hides the bad slices, the 5th percentile
  shows them.
* **Rate**: a code grid costs ``h * w * log2(K)`` bits; divided by ``H * W`` pixels that is the
  bits per pixel (bpp) the model *spends*. ``achievable_bits_per_pixel`` is what an entropy
  coder whose table is the **training split's** code histogram spends on this split (see
  ``rates.py``); the entropy of this split's own histogram (``code_entropy_bits_per_cell``) is
  reported too, as a description of the codes, not as a rate: no coder knows it in advance.

The SSIM walk-through and the reference's range mistake are in ``ssim_explained.py``; errors by
tissue and by position in ``breakdown.py``; JPEG/WebP/JPEG 2000/AVIF in ``codecs.py``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics as M
from ..checkpoint import load_model
from ..common import atomic_write_text
from ..config_checks import check_count, check_device
from ..data.dataset import load_split, split_exists
from ..errors import cli
from ..model.inference import encode, reconstruct
from ..paths import run_dir_of_checkpoint
from ..runlock import run_folder_lock
from ..runtime import pick_device
from .per_image import bootstrap_mean_interval, score_images, summary_stats
from .rates import RATE_LABELS, histogram_bits

__all__ = ["SSIM_TARGET", "Evaluation", "score_images", "summary_stats", "bootstrap_mean_interval",
           "evaluate_model", "training_codes", "write_results", "evaluate_checkpoint", "evaluate",
           "format_summary", "main"]

MAX_TRAIN_SLICES_FOR_RATE = 2048   # training slices encoded for the code histogram

SSIM_TARGET = 0.6


# ------------------------------------------------------------------------------------------
# reconstruction and scoring
# ------------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------------
# one evaluation
# ------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """Everything an evaluation produced; ``metrics`` is what ``metrics.json`` holds."""
    metrics: dict[str, Any]
    per_image: dict[str, np.ndarray]      # ssim_gaussian, ssim_uniform, psnr, mse: each (N,)
    originals: torch.Tensor               # (N, 1, H, W) in [0, 1], CPU
    recons: torch.Tensor                  # (N, 1, H, W) in [0, 1], CPU
    codes: torch.Tensor                   # (N, h, w) long, CPU
    slices: Any                           # data.SliceSet (subset actually scored)
    cfg: Any                              # config.Config of the checkpoint
    model: Any = None
    train_codes: torch.Tensor | None = None   # training-split codes behind the achievable rate
    files: dict[str, Path] = field(default_factory=dict)


def training_codes(model, cfg, data_dir=None, batch_size: int = 64, device="cpu",
                   cache_dir=None, max_slices: int = MAX_TRAIN_SLICES_FOR_RATE) -> torch.Tensor | None:
    """Codes of (up to ``max_slices`` evenly spaced) training slices: the code table an entropy
    coder may know in advance; None when the data folder has no training split (scoring a model
    on new data needs only the split that is scored: the achievable rate is then left out).

    Args:
        model: the VQ-VAE.
        cfg: its config (image size; ``max_train_images`` caps smoke runs).
        data_dir: the data folder.
        batch_size: images per forward pass.
        device: where to run.
        cache_dir: the loader's cache folder.
        max_slices: at most this many training slices.
    """
    if not split_exists("train", data_dir):
        return None
    cap = min(cfg.max_train_images or max_slices, max_slices)
    train = load_split("train", data_dir, size=cfg.image_size, masks=False, cache_dir=cache_dir,
                       verbose=False, limit=cap)                 # capped before decoding
    return encode(model, torch.from_numpy(train.images)[:, None], batch_size, device)


def evaluate_model(model, cfg, slices, batch_size: int = 64,
                   device: str | torch.device = "cpu",
                   train_codes: torch.Tensor | None = None) -> Evaluation:
    """Reconstruct and score every slice of ``slices``; no files written.

    Args:
        model: the VQ-VAE (anything with ``encode`` and ``decode_codes``).
        cfg: its config.
        slices: a ``data.SliceSet``.
        batch_size: images per forward pass.
        device: where to run.
        train_codes: codes of the training split (:func:`training_codes`); without them the
            achievable rate is left out (None), never taken from this split's own histogram.
    """
    originals = slices.tensors()                                             # (N, 1, H, W)
    recons, codes = reconstruct(model, originals, batch_size, device)
    per_image = score_images(originals, recons)
    N, _, H, W = originals.shape
    h, w = codes.shape[-2:]
    K = cfg.codebook_size
    entropy = M.code_entropy(codes, K)
    coded = None if train_codes is None else histogram_bits(train_codes, codes, K)
    g, u = per_image["ssim_gaussian"], per_image["ssim_uniform"]
    metrics = {
        "n_images": int(N),
        "split": slices.split,
        "source": slices.source,
        "data_dir": str(slices.root),
        "preset": cfg.preset,
        "image_size": int(H),
        "latent_size": int(h),
        "codebook_size": int(K),
        "data_range": "[0, 1] images, data_range=1",
        "ssim_gaussian": summary_stats(g) | {"mean_of_32_images_95pct": bootstrap_mean_interval(g)},
        "ssim_uniform": summary_stats(u),
        "psnr_db": summary_stats(per_image["psnr"]),
        "mse": summary_stats(per_image["mse"]),
        "bits_per_pixel": M.bits_per_pixel(h, w, K, H, W),
        "code_entropy_bits_per_cell": entropy,
        "code_perplexity": 2.0 ** entropy,
        "codes_used": int(torch.unique(codes).numel()),
        "train_histogram_bits_per_cell": coded,
        "achievable_bits_per_pixel": None if coded is None else coded * h * w / (H * W),
        "achievable_rate": RATE_LABELS["training histogram"] + " (add-one smoothed, at most log2 K)",
        "ssim_target": SSIM_TARGET,
        "passed": bool(g.mean() > SSIM_TARGET),
        "passed_uniform": bool(u.mean() > SSIM_TARGET),
    }
    return Evaluation(metrics=metrics, per_image=per_image, originals=originals, recons=recons,
                      codes=codes, slices=slices, cfg=cfg, model=model, train_codes=train_codes)


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------
def write_results(ev: Evaluation, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``metrics.json`` and ``metrics_per_image.csv`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "metrics.json", out_dir / "metrics_per_image.csv"
    atomic_write_text(json_path, json.dumps(ev.metrics, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = ("ssim_gaussian", "ssim_uniform", "psnr", "mse")
    writer.writerow(("path", "subject", "slice_index", *cols))
    for i, p in enumerate(ev.slices.paths):
        writer.writerow((p, ev.slices.subjects[i], int(ev.slices.slice_index[i]),
                         *(f"{ev.per_image[c][i]:.6f}" for c in cols)))
    atomic_write_text(csv_path, buf.getvalue())
    return {"metrics_json": json_path, "per_image_csv": csv_path}


def evaluate_checkpoint(checkpoint: str | os.PathLike, split: str = "test",
                        data_dir: str | os.PathLike | None = None,
                        out_dir: str | os.PathLike | None = None, batch_size: int = 64,
                        device: str = "auto", max_images: int | None = None,
                        write: bool = True, verbose: bool = True,
                        cache_dir: str | os.PathLike | None = None) -> Evaluation:
    """Load ``checkpoint``, score ``split`` at the model's resolution, write the metrics files.

    ``max_images=None`` follows the checkpoint config's ``max_eval_images`` (0 = all images);
    the cap is applied to the file list before decoding. Files go to ``out_dir`` or the
    checkpoint's run folder; ``cache_dir`` is passed to ``data.load_split`` (default
    ``data/cache``). The data folder needs only ``split`` (without a training split the
    achievable rate is left out). This library function takes no lock: the CLI (:func:`main`)
    holds the run folder's lock; a notebook runs under ``make run-all``'s.

    Args:
        checkpoint: the ``.pt`` file.
        split: the split to score.
        data_dir: the data folder.
        out_dir: where to write the metrics files (default the checkpoint's run folder).
        batch_size: images per forward pass.
        device: auto, cpu, cuda, cuda:N or mps.
        max_images: cap the split (None: the config's ``max_eval_images``; 0: all).
        write: write the metrics files.
        verbose: print the summary.
        cache_dir: the loader's cache folder.
    """
    t0 = time.time()
    dev = pick_device(device)
    model, cfg, ckpt = load_model(checkpoint, device=dev)   # fail fast, before the data

    cap = cfg.max_eval_images if max_images is None else max_images
    slices = load_split(split, data_dir, size=cfg.image_size, masks=True, cache_dir=cache_dir,
                        verbose=verbose, limit=cap)
    train_codes = training_codes(model, cfg, data_dir, batch_size, dev, cache_dir)
    ev = evaluate_model(model, cfg, slices, batch_size=batch_size, device=dev,
                        train_codes=train_codes)
    ev.metrics.update({
        "n_images_in_split": int(slices.n_in_split),
        "subset": len(slices.images) < slices.n_in_split,
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_epoch": ckpt.get("epoch") if isinstance(ckpt, dict) else None,
        "checkpoint_step": ckpt.get("step") if isinstance(ckpt, dict) else None,
        "device": str(dev),
        "torch": torch.__version__,
        "seconds": round(time.time() - t0, 2),
    })
    if write:
        ev.files = write_results(ev, out_dir or run_dir_of_checkpoint(checkpoint))
    if verbose:
        print(format_summary(ev.metrics))
        for p in ev.files.values():
            print(f"wrote {p}")
    return ev


def evaluate(checkpoint: str | os.PathLike, split: str = "test",
             data_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
             batch_size: int = 64, **kwargs: Any) -> dict[str, Any]:
    """Score ``checkpoint`` on ``split``; write and return the ``metrics.json`` dictionary."""
    return evaluate_checkpoint(checkpoint, split, data_dir, out_dir, batch_size, **kwargs).metrics


def format_summary(m: dict[str, Any]) -> str:
    """A few human lines from a metrics dictionary."""
    g, u, p = m["ssim_gaussian"], m["ssim_uniform"], m["psnr_db"]
    verdict = "PASS" if m["passed"] else "FAIL"
    n = f"{m['n_images']}" + (f" of {m['n_images_in_split']}" if m.get("subset") else "")
    return "\n".join([
        f"{m['split']} split [{m['source']}], {n} images at {m['image_size']}px "
        f"(latent {m['latent_size']}x{m['latent_size']}, K={m['codebook_size']})",
        f"SSIM gaussian  mean {g['mean']:.4f}  std {g['std']:.4f}  median {g['median']:.4f}  "
        f"p5 {g['p5']:.4f}   -> {verdict} against target {m['ssim_target']}",
        f"SSIM uniform7  mean {u['mean']:.4f}  std {u['std']:.4f}  median {u['median']:.4f}  "
        f"p5 {u['p5']:.4f}",
        f"PSNR {p['mean']:.2f} +- {p['std']:.2f} dB | MSE {m['mse']['mean']:.5f}",
        f"rate {m['bits_per_pixel']:.4f} bpp spent ({math.log2(m['codebook_size']):.2f} bits/cell); "
        + ("no training codes: achievable rate not computed" if m["achievable_bits_per_pixel"] is None
           else f"{m['train_histogram_bits_per_cell']:.2f} bits/cell with the training histogram "
                f"-> {m['achievable_bits_per_pixel']:.4f} bpp achievable"),
    ])


@cli
def main(argv: list[str] | None = None) -> int:
    """``python -m vqvae_lib.evaluate``: options checked first, then scored under the run lock.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
    """
    ap = argparse.ArgumentParser(prog="python -m vqvae_lib.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="e.g. runs/cpu/checkpoints/best.pt")
    ap.add_argument("--split", default="test", choices=("train", "validate", "test"))
    ap.add_argument("--data-dir", default=None, help="default: $VQVAE_DATA_DIR, data/oasis, data/demo")
    ap.add_argument("--out-dir", default=None, help="default: the checkpoint's run folder")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-images", type=int, default=None,
                    help="cap the split (default: the checkpoint config's max_eval_images; 0 = all)")
    args = ap.parse_args(argv)
    check_count("--batch-size", args.batch_size, 1, 4096)
    if args.max_images is not None:
        check_count("--max-images", args.max_images, 0)
    check_device(args.device, "--device")
    with run_folder_lock(args.checkpoint, "evaluation", args.out_dir):
        evaluate_checkpoint(args.checkpoint, args.split, args.data_dir, args.out_dir,
                            args.batch_size, device=args.device, max_images=args.max_images)
    return 0
