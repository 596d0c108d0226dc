"""What a code looks like: decode a map of one code, cut out the patches where it is used, swap
one code for another and decode the difference (van den Oord et al. 2017 edit codes the same way).
"""

from __future__ import annotations

import numpy as np
import torch

from ..model.inference import decode

__all__ = ["decode_constant_codes", "code_locations", "code_patches", "swap_code", "swap_effect"]


def decode_constant_codes(model, codes, latent_size: int, batch_size: int = 64) -> torch.Tensor:
    """Decode a latent map filled with one code, for each code in ``codes``: (n, 1, H, W)."""
    ids = torch.as_tensor(codes, dtype=torch.long).reshape(-1)
    maps = ids[:, None, None].expand(-1, latent_size, latent_size)          # (n, h, w)
    return decode(model, maps, batch_size)


def code_locations(codes, code: int) -> np.ndarray:
    """Where ``code`` occurs: (M, 3) rows of (slice, row, col) on the latent grid."""
    return np.argwhere(torch.as_tensor(codes).cpu().numpy() == code)


def code_patches(images, codes, code: int, downsample: int, patch: int | None = None,
                 max_patches: int = 16, seed: int = 0):
    """Image patches centred on the latent cells that chose ``code``.

    ``images`` (N, 1, H, W) or (N, H, W), ``codes`` (N, h, w). A patch of ``patch`` pixels
    (default 3 cells wide) shows the cell and some context. Returns ``(patches, locations)``:
    (M, patch, patch) float arrays (zero padded at the border) and their (slice, row, col).
    """
    img = torch.as_tensor(images).float().cpu().numpy()
    img = img[:, 0] if img.ndim == 4 else img                        # (N, H, W)
    patch = patch or 3 * downsample
    locs = code_locations(codes, code)
    if len(locs) > max_patches:
        pick = np.random.default_rng(seed).choice(len(locs), max_patches, replace=False)
        locs = locs[np.sort(pick)]
    pad = patch
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((len(locs), patch, patch), dtype=np.float32)
    for i, (n, r, c) in enumerate(locs):
        cy = pad + int((r + 0.5) * downsample)                       # cell centre in padded image
        cx = pad + int((c + 0.5) * downsample)
        y0, x0 = cy - patch // 2, cx - patch // 2
        out[i] = padded[n, y0:y0 + patch, x0:x0 + patch]
    return out, locs


def swap_code(code_map, code_a: int, code_b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace ``code_a`` by ``code_b`` in a (h, w) or (B, h, w) map: ``(new_map, changed)``."""
    m = torch.as_tensor(code_map).long()
    changed = m == code_a
    return torch.where(changed, torch.full_like(m, code_b), m), changed


@torch.no_grad()
def swap_effect(model, code_map, code_a: int, code_b: int):
    """Decode a (h, w) map before and after swapping A -> B.

    Returns ``(before, after, changed)``: two (H, W) images in [0, 1] and the (h, w) bool map
    of swapped cells. The decoder's receptive field spreads each change over nearby pixels.
    """
    model.eval()
    device = next(model.parameters()).device
    m = torch.as_tensor(code_map).long()
    new, changed = swap_code(m, code_a, code_b)
    both = torch.stack([m, new]).to(device)                          # (2, h, w)
    imgs = model.decode_codes(both).clamp(0, 1).float().cpu()[:, 0]  # (2, H, W)
    return imgs[0].numpy(), imgs[1].numpy(), changed.numpy()
