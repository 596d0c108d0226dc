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
    from .. import metrics as M

    x = torch.from_numpy(originals)[:, None]                               # (N, 1, H, W)
    y = torch.from_numpy(np.ascontiguousarray(recons, dtype=np.float32))[:, None]
    return {"ssim": M.ssim(x, y, 1.0, "gaussian", "none").double().numpy(),
            "psnr": M.psnr(x, y, 1.0, "none").double().numpy()}


def rate_distortion_curves(images, factors=(16, 12, 8, 6, 5, 4, 3, 2),
                           qualities=(1, 3, 5, 10, 20, 35, 50, 75, 90)) -> dict[str, dict]:
    """Mean Gaussian SSIM and PSNR against bits per pixel for both baselines.

    ``factors``: thumbnails of side ``H / factor``; ``qualities``: JPEG quality settings.
    Returns ``{"downsample + bicubic": {"bpp", "ssim", "psnr", "setting"}, "JPEG": {...}}``,
    each an array over settings (sorted by rate).
    """
    x = _as_numpy(images)
    H = x.shape[-1]
    curves = {"downsample + bicubic": [], "JPEG": []}
    for size in sorted({max(2, round(H / f)) for f in factors}):
        s = _score(x, downsample_upsample(x, size))
        curves["downsample + bicubic"].append(
            (downsample_bits_per_pixel(H, size), s["ssim"].mean(), s["psnr"].mean(), size))
    for q in qualities:
        dec, bpp = jpeg_at_quality(x, q)
        s = _score(x, dec)
        curves["JPEG"].append((bpp.mean(), s["ssim"].mean(), s["psnr"].mean(), q))
    out = {}
    for name, rows in curves.items():
        a = np.array(sorted(rows), dtype=np.float64)
        out[name] = {"bpp": a[:, 0], "ssim": a[:, 1], "psnr": a[:, 2], "setting": a[:, 3].astype(int)}
    return out


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


def rate_table(model_bpp: float, model_scores: dict, matched: dict,
               achievable_bpp: float | None = None) -> str:
    """A text table: bpp, mean/5th-percentile SSIM and PSNR of the VQ-VAE and the baselines.

    ``model_scores`` holds per-image ``ssim_gaussian`` and ``psnr``; ``matched`` comes from
    :func:`matched_rate`.
    """
    rows = [("VQ-VAE", model_bpp, model_scores["ssim_gaussian"], model_scores["psnr"])]
    rows += [(name, m["bpp"].mean(), m["ssim"], m["psnr"]) for name, m in matched.items()]
    lines = [f"{'method':<22}{'bpp':>8}{'SSIM mean':>11}{'SSIM p5':>9}{'PSNR dB':>9}"]
    for name, bpp, s, p in rows:
        lines.append(f"{name:<22}{bpp:>8.3f}{np.mean(s):>11.3f}{np.percentile(s, 5):>9.3f}"
                     f"{np.mean(p):>9.2f}")
    if achievable_bpp is not None:
        lines.append(f"(the VQ-VAE's codes have an entropy worth {achievable_bpp:.3f} bpp: "
                     f"what an entropy coder over its code histogram would spend)")
    return "\n".join(lines)
