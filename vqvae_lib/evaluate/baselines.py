"""Simple compression baselines to put a VQ-VAE's quality in context.

A VQ-VAE is a lossy *compressor*: every image becomes an ``h x w`` grid of code indices, each
worth ``log2(K)`` bits, so its rate is ``h * w * log2(K) / (H * W)`` bits per pixel (bpp).
An SSIM of 0.8 means little on its own; it means a lot if a ten-line baseline spending the
same number of bits gets 0.6, and nothing if the baseline gets 0.9. Two baselines:

* **downsample + bicubic upsample** -- keep an ``n x n`` thumbnail at 8 bits a pixel, blow it
  back up with bicubic interpolation. With ``n`` = the latent side this spends
  ``8 / downsample**2`` bpp (0.5 for a 4x model), next to the VQ-VAE's ``log2(K) / 16``.
* **JPEG** (Pillow, grey scale, optimised Huffman tables) at the quality whose size matches a
  target bpp. We count the bits of the entropy-coded scan only, not the ~300-600 bytes of
  header (quantisation and Huffman tables) that a real codec would share across a data set:
  on a 64x64 slice the header alone would be more than 0.5 bpp, and the VQ-VAE's rate does not
  count its codebook either. This favours JPEG slightly; see ``jpeg_payload_bytes``.

All functions take and return float arrays in [0, 1] of shape ``(N, H, W)`` (or ``(N, 1, H, W)``
tensors, which are squeezed).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import metrics as M

__all__ = ["downsample_bits_per_pixel", "downsample_size_for_rate", "downsample_upsample",
           "jpeg_payload_bytes", "jpeg_roundtrip", "jpeg_at_quality", "jpeg_at_rate",
           "bicubic_curve", "matched_rate"]


def _as_numpy(images) -> np.ndarray:
    """(N, 1, H, W) tensor / (N, H, W) array in [0, 1] -> (N, H, W) float32 array."""
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {images.shape}")
    return images


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------
# downsample + bicubic upsample
# ------------------------------------------------------------------------------------------
def downsample_bits_per_pixel(image_size: int, size: int, bits: int = 8) -> float:
    """Rate of storing a ``size x size`` thumbnail at ``bits`` bits a pixel, per original pixel."""
    return size * size * bits / (image_size * image_size)


def downsample_size_for_rate(image_size: int, bpp: float, bits: int = 8) -> int:
    """The thumbnail side whose 8-bit pixels spend closest to ``bpp`` bits per original pixel."""
    return max(1, round(image_size * math.sqrt(bpp / bits)))


def downsample_upsample(images, size: int) -> np.ndarray:
    """Shrink to ``size x size`` (antialiased, quantised to 8 bits), then bicubic back up.

    Returns ``(N, H, W)`` float32 in [0, 1].
    """
    x = torch.from_numpy(_as_numpy(images))[:, None]                        # (N, 1, H, W)
    H, W = x.shape[-2:]
    small = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)                  # (N, 1, n, n)
    small = torch.round(small * 255) / 255                                  # what we'd store
    big = F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False)  # (N, 1, H, W)
    return big.clamp(0, 1)[:, 0].numpy()


# ------------------------------------------------------------------------------------------
# JPEG
# ------------------------------------------------------------------------------------------
def jpeg_payload_bytes(data: bytes) -> int:
    """Bytes of the entropy-coded scan of a baseline JPEG file: everything after the SOS
    header up to (not including) the EOI marker. Headers (tables) are excluded."""
    sos = data.find(b"\xff\xda")
    if sos < 0:
        raise ValueError("not a baseline JPEG: no start-of-scan marker")
    header_len = int.from_bytes(data[sos + 2:sos + 4], "big")
    start = sos + 2 + header_len
    end = len(data) - 2 if data.endswith(b"\xff\xd9") else len(data)
    return end - start


def jpeg_roundtrip(image: np.ndarray, quality: int) -> tuple[np.ndarray, int, int]:
    """Encode one ``(H, W)`` image in [0, 1] as a grey-scale JPEG and decode it.

    Returns ``(decoded (H, W) float32 in [0, 1], payload_bytes, file_bytes)``.
    """
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(image), mode="L").save(buf, format="JPEG", quality=int(quality),
                                                     optimize=True)
    data = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255.0
    return decoded, jpeg_payload_bytes(data), len(data)


def jpeg_at_quality(images, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """JPEG every image at one quality. Returns ``(decoded (N, H, W), payload bpp (N,))``."""
    imgs = _as_numpy(images)
    out = np.empty_like(imgs)
    bpp = np.empty(len(imgs))
    for i, img in enumerate(imgs):
        out[i], payload, _ = jpeg_roundtrip(img, quality)
        bpp[i] = payload * 8 / img.size
    return out, bpp


def jpeg_at_rate(images, target_bpp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each image, the highest JPEG quality whose scan spends at most ``target_bpp``.

    Binary search over quality 1..95 per image (payload size grows with quality). Where even
    quality 1 overshoots, quality 1 is used and its (higher) rate is reported honestly.
    Returns ``(decoded (N, H, W), bpp (N,), quality (N,))``.
    """
    imgs = _as_numpy(images)
    out = np.empty_like(imgs)
    bpp = np.empty(len(imgs))
    qual = np.empty(len(imgs), dtype=int)
    for i, img in enumerate(imgs):
        lo, hi, best = 1, 95, None
        while lo <= hi:
            q = (lo + hi) // 2
            dec, payload, _ = jpeg_roundtrip(img, q)
            rate = payload * 8 / img.size
            if rate <= target_bpp:
                best, lo = (q, dec, rate), q + 1
            else:
                hi = q - 1
        if best is None:
            dec, payload, _ = jpeg_roundtrip(img, 1)
            best = (1, dec, payload * 8 / img.size)
        qual[i], out[i], bpp[i] = best
    return out, bpp, qual


# ------------------------------------------------------------------------------------------
# rate-distortion curves and a matched-rate comparison
# ------------------------------------------------------------------------------------------
def _score(originals: np.ndarray, recons: np.ndarray) -> dict[str, np.ndarray]:
    x = torch.from_numpy(originals)[:, None]                               # (N, 1, H, W)
    y = torch.from_numpy(np.ascontiguousarray(recons, dtype=np.float32))[:, None]
    return {"ssim": M.ssim(x, y, 1.0, "gaussian", "none").double().numpy(),
            "psnr": M.psnr(x, y, 1.0, "none").double().numpy()}


def bicubic_curve(images, factors=(16, 12, 8, 6, 5, 4, 3, 2)) -> dict[str, np.ndarray]:
    """Mean Gaussian SSIM and PSNR against bits per pixel of downsample + bicubic.

    Args:
        images: (N, H, W) or (N, 1, H, W) in [0, 1].
        factors: thumbnails of side ``H / factor``.

    Returns:
        ``{"bpp", "ssim", "psnr", "setting"}``, arrays over thumbnail sizes (by rate);
        ``setting`` is the thumbnail side. (JPEG and the other codecs: ``codecs.codec_sweep``.)
    """
    x = _as_numpy(images)
    H = x.shape[-1]
    rows = []
    for size in sorted({max(2, round(H / f)) for f in factors}):
        s = _score(x, downsample_upsample(x, size))
        rows.append((downsample_bits_per_pixel(H, size), s["ssim"].mean(), s["psnr"].mean(), size))
    a = np.array(rows, dtype=np.float64)
    return {"bpp": a[:, 0], "ssim": a[:, 1], "psnr": a[:, 2], "setting": a[:, 3].astype(int)}


def matched_rate(images, bpp: float) -> dict[str, dict]:
    """Both baselines at (about) ``bpp`` bits per pixel, scored image by image.

    Returns ``{name: {"recons" (N, H, W), "bpp" (N,), "ssim" (N,), "psnr" (N,), "setting"}}``;
    ``setting`` is the thumbnail side or the per-image JPEG qualities.
    """
    x = _as_numpy(images)
    H = x.shape[-1]
    size = downsample_size_for_rate(H, bpp)
    down = downsample_upsample(x, size)
    jpeg, jpeg_bpp, quality = jpeg_at_rate(x, bpp)
    return {
        "downsample + bicubic": {"recons": down, "bpp": np.full(len(x), downsample_bits_per_pixel(H, size)),
                                 "setting": size, **_score(x, down)},
        "JPEG": {"recons": jpeg, "bpp": jpeg_bpp, "setting": quality, **_score(x, jpeg)},
    }
