"""The image codecs a user would pick to make small files: JPEG, WebP, JPEG 2000 and AVIF.

Each is run through Pillow on 8-bit grey slices, swept over its quality setting; the rate is
measured from the **whole encoded file** (headers and container included: that is what a user
stores), in bits per pixel, and SSIM / PSNR are computed on the decoded slices exactly as for the
VQ-VAE (``metrics.ssim``, Gaussian window, [0, 1], data range 1).

* JPEG (ITU-T T.81, 1992): 8x8 DCT, Huffman coding; ``optimize=True`` (optimal Huffman tables).
* WebP (Google 2010): VP8 intra prediction + 4x4 transform, arithmetic coding.
* JPEG 2000 (ISO/IEC 15444-1, 2000; OpenJPEG): wavelets + EBCOT; raw codestream (``no_jp2``),
  rate set as a compression ratio.
* AVIF (AOMedia 2019; AV1 intra frames in HEIF): the newest of the four; ``speed`` trades
  encoding time for size.

Fixed per-file overhead matters on small slices: :func:`header_bytes` measures it for each codec
(the file of an all-black slice at the lowest setting) so that tables can say how much of the
rate it is. The VQ-VAE's rate does not count its decoder or codebook either: both are shared by
every image, as a codec's tables would be if they were not in each file.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, features

from .. import metrics as M
from ..common import progress

__all__ = ["Codec", "CODECS", "available_codecs", "roundtrip", "codec_at_setting", "header_bytes",
           "codec_sweep"]


@dataclass(frozen=True)
class Codec:
    """One Pillow codec: its format name, feature flag, settings to sweep and save options."""
    name: str
    format: str
    feature: str | None
    settings: tuple
    setting_name: str

    def options(self, setting) -> dict:
        """Pillow ``save`` keyword arguments for one setting.

        Args:
            setting: a quality (JPEG, WebP, AVIF) or a compression ratio (JPEG 2000).
        """
        if self.format == "JPEG":
            return dict(quality=int(setting), optimize=True)
        if self.format == "WEBP":
            return dict(quality=int(setting), method=4)
        if self.format == "JPEG2000":
            return dict(quality_mode="rates", quality_layers=[float(setting)], irreversible=True,
                        no_jp2=True)
        if self.format == "AVIF":
            return dict(quality=int(setting), speed=8)
        raise ValueError(f"unknown codec format {self.format!r}")


CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("JPEG", "JPEG", None, (5, 10, 20, 35, 50, 75, 90), "quality"),
    Codec("WebP", "WEBP", "webp", (1, 10, 25, 50, 75, 90), "quality"),
    Codec("JPEG 2000", "JPEG2000", "jpg_2000", (100, 50, 30, 20, 14, 8), "compression ratio"),
    Codec("AVIF", "AVIF", "avif", (1, 15, 30, 50, 70, 85), "quality"),
)}


def available_codecs() -> dict[str, Codec]:
    """The codecs of :data:`CODECS` that this Pillow build can encode (others are left out)."""
    return {n: c for n, c in CODECS.items() if c.feature is None or features.check(c.feature)}


def roundtrip(image: np.ndarray, codec: Codec, setting) -> tuple[np.ndarray, int]:
    """Encode one (H, W) uint8 slice and decode it again.

    Args:
        image: (H, W) uint8.
        codec: one of :data:`CODECS`.
        setting: one of its settings.

    Returns:
        ``(decoded (H, W) uint8, file size in bytes)``.
    """
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format=codec.format, **codec.options(setting))
    data = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    return decoded, len(data)


def _as_uint8(images) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    a = np.asarray(images)
    a = a[:, 0] if a.ndim == 4 else a
    if a.dtype != np.uint8:
        a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    return a


def codec_at_setting(images, codec: Codec, setting, workers: int = 2) -> dict[str, np.ndarray]:
    """One codec at one setting on every slice, scored slice by slice.

    Args:
        images: (N, H, W) or (N, 1, H, W), uint8 or float in [0, 1].
        codec: the codec.
        setting: its setting.
        workers: threads (Pillow's encoders release the GIL).

    Returns:
        ``{"decoded" (N, H, W) float32, "bpp" (N,), "ssim" (N,), "psnr" (N,)}``.
    """
    x = _as_uint8(images)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda im: roundtrip(im, codec, setting), x))
    decoded = np.stack([r[0] for r in results]).astype(np.float32) / 255.0
    bpp = np.array([r[1] * 8.0 / x[0].size for r in results])
    xt = torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    yt = torch.from_numpy(decoded)[:, None]
    return {"decoded": decoded, "bpp": bpp,
            "ssim": M.ssim(xt, yt, 1.0, "gaussian", "none").double().numpy(),
            "psnr": M.psnr(xt, yt, 1.0, "none").double().numpy()}


def header_bytes(codec: Codec, size: int) -> int:
    """Bytes of an all-black ``size x size`` slice at the codec's lowest setting: about what the
    codec spends per file before it codes any content (headers, tables, container).

    Args:
        codec: the codec.
        size: image side in pixels.
    """
    return roundtrip(np.zeros((size, size), np.uint8), codec, codec.settings[0])[1]


def codec_sweep(images, codecs: dict[str, Codec] | None = None, workers: int = 2) -> dict[str, dict]:
    """Every codec at every setting on every slice: mean rate and quality per setting.

    Args:
        images: (N, H, W) or (N, 1, H, W), uint8 or float in [0, 1].
        codecs: which codecs (default: :func:`available_codecs`).
        workers: threads per setting.

    Returns:
        ``{name: {"setting", "bpp", "ssim", "psnr", "ssim_p5" (arrays over settings, by rate),
        "setting_name", "header_bytes"}}``.
    """
    x = _as_uint8(images)
    codecs = codecs or available_codecs()
    out = {}
    jobs = [(n, c, s) for n, c in codecs.items() for s in c.settings]
    rows: dict[str, list] = {n: [] for n in codecs}
    for name, codec, setting in progress(jobs, desc="codec sweep", leave=False):
        r = codec_at_setting(x, codec, setting, workers)
        rows[name].append((r["bpp"].mean(), r["ssim"].mean(), r["psnr"].mean(),
                           np.percentile(r["ssim"], 5), setting))
    for name, codec in codecs.items():
        a = sorted(rows[name])
        out[name] = {"bpp": np.array([r[0] for r in a]), "ssim": np.array([r[1] for r in a]),
                     "psnr": np.array([r[2] for r in a]), "ssim_p5": np.array([r[3] for r in a]),
                     "setting": np.array([r[4] for r in a]), "setting_name": codec.setting_name,
                     "header_bytes": header_bytes(codec, x.shape[-1])}
    return out
