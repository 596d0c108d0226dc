"""Small pieces of the training loop: validation, history files, augmentation, PNG decoding.

Kept apart from :mod:`vqvae_lib.train` so that the loop itself reads top to bottom.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm as progress  # noqa: F401  (re-exported: one progress bar everywhere)

from ..metrics import code_entropy, psnr, ssim


@torch.no_grad()
def evaluate_model(model, images_u8: torch.Tensor, device, cfg, batch_size: int | None = None) -> dict:
    """Validation metrics of ``model`` on uint8 images (N, 1, H, W) -> dict of floats.

    ``val_ssim`` is the Gaussian SSIM (sigma 1.5, data range 1) averaged over images,
    ``val_psnr`` the mean PSNR in dB; ``perplexity``, ``used_codes`` and ``dead_codes``
    describe codebook use over the whole set (a dead code is one no image selects).
    Runs in fp32 (no autocast) so that the numbers do not depend on the device's precision.
    """
    was_training = model.training
    model.eval()
    bs = batch_size or max(cfg.batch_size, 16)
    ssims, psnrs, codes = [], [], []
    for i in range(0, len(images_u8), bs):
        x = images_u8[i:i + bs].to(device).float().div_(255)             # (B, 1, H, W)
        if device.type == "cuda" and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        ssims.append(ssim(out.recon, x, reduction="none").cpu())
        psnrs.append(psnr(out.recon, x, reduction="none").cpu())
        codes.append(out.codes.cpu())                                     # (B, h, w)
    model.train(was_training)
    codes_all = torch.cat(codes)
    K = cfg.codebook_size
    used = int((torch.bincount(codes_all.reshape(-1), minlength=K) > 0).sum())
    return {
        "val_ssim": float(torch.cat(ssims).mean()),
        "val_psnr": float(torch.cat(psnrs).mean()),
        "perplexity": 2.0 ** code_entropy(codes_all, K),
        "used_codes": used,
        "dead_codes": K - used,
    }


class History:
    """Per-epoch rows, written as ``history.json`` (a list of dicts) and ``history.csv``."""

    def __init__(self, rows=None):
        self.rows: list[dict] = [dict(r) for r in (rows or [])]

    def append(self, row: dict) -> None:
        self.rows.append({k: (float(v) if isinstance(v, float) else v) for k, v in row.items()})

    def write(self, run_dir) -> None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "history.json.tmp"
        tmp.write_text(json.dumps(self.rows, indent=1))
        tmp.replace(run_dir / "history.json")
        if self.rows:
            keys = list(self.rows[0])
            with open(run_dir / "history.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
                w.writeheader()
                w.writerows(self.rows)


def load_history(run_dir) -> list[dict]:
    """The rows of ``<run_dir>/history.json`` written by the trainer."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        from ..errors import CheckpointError
        raise CheckpointError(f"No training history at {path}; run notebooks/03_training.ipynb first.")
    return json.loads(path.read_text())


def augment_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """Random left-right flips and small shifts, on the device, per image (B, 1, H, W).

    Axial brain slices are roughly left-right symmetric, so a flip gives a plausible new
    slice; a shift of a few pixels teaches translation robustness. The borders are background,
    so wrapping (``roll``) is harmless.
    """
    b = x.shape[0]
    flip = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if max_shift > 0:
        dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen,
                                                device=gen.device))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    return x


def decode_pngs(paths: list[str], size: int) -> np.ndarray:
    """Decode PNGs to (N, size, size) uint8 -- what the reference's Dataset does every epoch.

    Uses :func:`vqvae_lib.data.read_image`, so the pixels equal those of the cache.
    """
    from ..data.files import read_image

    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = read_image(p, size)
    return out


def pick_preview_indices(images_u8: torch.Tensor, n: int = 8) -> torch.Tensor:
    """``n`` validation images with plenty of brain in them, spread over the set, for figures."""
    N = len(images_u8)
    cand = torch.linspace(0, N - 1, min(N, 4 * n)).round().long().unique()
    fill = images_u8[cand].float().mean(dim=(1, 2, 3))                    # brightness ~ brain area
    keep = cand[fill.argsort(descending=True)[:n]]
    return keep.sort().values
