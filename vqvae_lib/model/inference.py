"""Batched inference with a trained VQ-VAE: images -> codes -> images, on any device.

Every stage after training needs the same three moves, in batches so that a whole split fits in
memory: encode slices to code grids (the prior's training data, the codebook analysis),
decode code grids to slices (samples, code swaps), and both (evaluation). They live here once.
All functions put the model in eval mode (BatchNorm running statistics, no codebook updates),
run without gradients and return CPU tensors.
"""

from __future__ import annotations

import torch

from ..common import progress

__all__ = ["encode", "decode", "reconstruct", "model_device"]


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device


@torch.no_grad()
def encode(model, images: torch.Tensor, batch_size: int = 64, device=None,
           show_progress: bool = False) -> torch.Tensor:
    """Code grids of ``images``.

    Args:
        model: a :class:`~vqvae_lib.model.vqvae.VQVAE`.
        images: (N, 1, H, W) float in [0, 1] (or uint8 0..255, converted per batch).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
        show_progress: draw a progress bar.

    Returns:
        (N, h, w) long codes on the CPU.
    """
    model.eval()
    device = device or model_device(model)
    out = []
    for i in progress(range(0, len(images), batch_size), desc="encode", leave=False,
                      disable=not show_progress):
        x = _as_float(images[i:i + batch_size]).to(device, non_blocking=True)   # (B, 1, H, W)
        out.append(model.encode(x).cpu())                                          # (B, h, w)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def decode(model, codes: torch.Tensor, batch_size: int = 64, device=None) -> torch.Tensor:
    """Images of code grids.

    Args:
        model: a VQ-VAE.
        codes: (N, h, w) integer codes.
        batch_size: grids per forward pass.
        device: where to run (default: the model's device).

    Returns:
        (N, 1, H, W) float in [0, 1] on the CPU (clamped: the image one would store or show).
    """
    model.eval()
    device = device or model_device(model)
    out = [model.decode_codes(codes[i:i + batch_size].long().to(device)).float().clamp(0, 1).cpu()
           for i in range(0, len(codes), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def reconstruct(model, images: torch.Tensor, batch_size: int = 64,
                device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode -> quantise -> decode, batch by batch.

    Args:
        model: a VQ-VAE.
        images: (N, 1, H, W) float in [0, 1] (or uint8).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).

    Returns:
        ``(recons, codes)``: (N, 1, H, W) float in [0, 1] and (N, h, w) long, on the CPU.
    """
    model.eval()
    device = device or model_device(model)
    recons, codes = [], []
    for i in range(0, len(images), batch_size):
        x = _as_float(images[i:i + batch_size]).to(device, non_blocking=True)   # (B, 1, H, W)
        c = model.encode(x)                                                        # (B, h, w)
        recons.append(model.decode_codes(c).float().clamp(0, 1).cpu())            # (B, 1, H, W)
        codes.append(c.cpu())
    return torch.cat(recons), torch.cat(codes)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255) if x.dtype == torch.uint8 else x
