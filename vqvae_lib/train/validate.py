"""Per-epoch validation: SSIM, PSNR and codebook use of the model on the validation slices.

SSIM is the Gaussian SSIM of Wang et al. 2004 (sigma 1.5, data range 1) from
:mod:`vqvae_lib.metrics`, computed for the whole batch in one call on the device.
"""

from __future__ import annotations

import math

import torch

from ..metrics import code_entropy, psnr, ssim

__all__ = ["validate", "nonfinite_metrics", "pick_preview_indices"]


@torch.no_grad()
def validate(model, images_u8: torch.Tensor, device, cfg, batch_size: int | None = None) -> dict:
    """Validation metrics of ``model`` on uint8 images (N, 1, H, W) -> dict of floats.

    ``val_ssim`` is the Gaussian SSIM averaged over images, ``val_psnr`` the mean PSNR in dB;
    ``perplexity``, ``used_codes`` and ``dead_codes`` describe codebook use over the whole set
    (a dead code is one no image selects). Runs in fp32 (no autocast), so the numbers do not
    depend on the device's precision; the model's train/eval mode is restored afterwards.

    Args:
        model: the VQ-VAE (unwrapped, not DDP).
        images_u8: (N, 1, H, W) uint8 slices on any device.
        device: where to run.
        cfg: uses ``batch_size``, ``channels_last`` and ``codebook_size``.
        batch_size: images per forward pass (default ``max(cfg.batch_size, 16)``).
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    bs = batch_size or max(cfg.batch_size, 16)
    ssims, psnrs, codes = [], [], []
    for i in range(0, len(images_u8), bs):
        x = images_u8[i:i + bs].to(device).float().div_(255)             # (B, 1, H, W)
        if device.type == "cuda" and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=False):                  # fp32, whatever the caller
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


def nonfinite_metrics(metrics: dict) -> dict:
    """The metrics that are NaN or inf (empty when all are finite).

    Args:
        metrics: from :func:`validate`.
    """
    return {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}


def pick_preview_indices(images_u8: torch.Tensor, n: int = 8) -> torch.Tensor:
    """``n`` validation images with plenty of brain in them, spread over the set, for figures.

    Args:
        images_u8: (N, 1, H, W) uint8 validation slices.
        n: how many to pick.
    """
    N = len(images_u8)
    cand = torch.linspace(0, N - 1, min(N, 4 * n)).round().long().unique()
    fill = images_u8[cand.to(images_u8.device)].float().mean(dim=(1, 2, 3)).cpu()  # ~ brain area
    keep = cand[fill.argsort(descending=True)[:n]]
    return keep.sort().values
