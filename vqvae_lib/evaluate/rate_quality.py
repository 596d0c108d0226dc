"""Rate against quality: the VQ-VAE at its three rates (``rates.py``) next to codec curves
(``codecs.codec_sweep``, ``baselines.bicubic_curve``), read off at equal rate and equal quality.

A codec curve is known at a handful of settings; between them quality is interpolated linearly in
``log(bpp)`` (rate-distortion curves are smooth there), never extrapolated: outside a curve's
range the answer is ``None``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..common import atomic_write_text

__all__ = ["quality_at", "rate_for", "comparison_rows", "format_comparison", "verdict",
           "save_rate_quality", "load_rate_quality"]


def quality_at(curve: dict, bpp: float, metric: str = "ssim") -> float | None:
    """A curve's ``metric`` at ``bpp`` bits per pixel (None outside the swept rates).

    Args:
        curve: ``{"bpp": (S,), metric: (S,)}`` sorted by rate.
        bpp: the rate to read at.
        metric: "ssim" or "psnr".
    """
    r = np.asarray(curve["bpp"], dtype=float)
    if not (r.min() <= bpp <= r.max()):
        return None
    return float(np.interp(np.log(bpp), np.log(r), np.asarray(curve[metric], dtype=float)))


def rate_for(curve: dict, value: float, metric: str = "ssim") -> float | None:
    """The bits per pixel a curve needs to reach ``value`` of ``metric`` (None if it never does
    within the sweep). Uses the upper envelope, so a non-monotonic curve still gives its first
    crossing.

    Args:
        curve: ``{"bpp", metric}`` sorted by rate.
        value: the quality to reach.
        metric: "ssim" or "psnr".
    """
    r = np.asarray(curve["bpp"], dtype=float)
    q = np.maximum.accumulate(np.asarray(curve[metric], dtype=float))
    if value < q.min() or value > q.max():
        return None
    i = int(np.searchsorted(q, value))
    if i == 0 or q[i] == q[i - 1]:
        return float(r[i])
    t = (value - q[i - 1]) / (q[i] - q[i - 1])
    return float(np.exp(np.log(r[i - 1]) + t * (np.log(r[i]) - np.log(r[i - 1]))))


def comparison_rows(rates: dict, model: dict, curves: dict) -> list[dict]:
    """One row per VQ-VAE rate: the VQ-VAE's SSIM/PSNR and every curve's at the same rate.

    Args:
        rates: ``rates.vqvae_rates(...)``: ``{name: {"bpp", "bits_per_cell", "label"}}``.
        model: ``{"ssim": mean SSIM, "psnr": mean PSNR}`` of the VQ-VAE on the split.
        curves: ``{codec name: curve}``.

    Returns:
        ``[{"rate", "bpp", "bits_per_cell", "ssim", "psnr", "codecs": {name: {"ssim", "psnr",
        "bpp_for_same_ssim"}}}]``.
    """
    rows = []
    for name, r in rates.items():
        codecs = {c: {"ssim": quality_at(curve, r["bpp"], "ssim"),
                      "psnr": quality_at(curve, r["bpp"], "psnr"),
                      "bpp_for_same_ssim": rate_for(curve, model["ssim"], "ssim")}
                  for c, curve in curves.items()}
        rows.append({"rate": name, "bpp": r["bpp"], "bits_per_cell": r["bits_per_cell"],
                     "ssim": float(model["ssim"]), "psnr": float(model["psnr"]), "codecs": codecs})
    return rows


def _f(v, fmt: str) -> str:
    return "  --  " if v is None else format(v, fmt)


def format_comparison(rows: list[dict]) -> str:
    """SSIM (and PSNR) of the VQ-VAE and of every codec at each VQ-VAE rate, as a text table.

    Args:
        rows: :func:`comparison_rows`.
    """
    names = list(rows[0]["codecs"])
    head = f"{'VQ-VAE rate':<20}{'bpp':>7}{'VQ-VAE':>8}" + "".join(f"{n[:11]:>12}" for n in names)
    lines = ["SSIM at the same rate (-- : outside the codec's sweep)", head]
    for r in rows:
        lines.append(f"{r['rate']:<20}{r['bpp']:>7.3f}{r['ssim']:>8.3f}"
                     + "".join(f"{_f(r['codecs'][n]['ssim'], '.3f'):>12}" for n in names))
    lines += ["", "PSNR (dB) at the same rate", head]
    for r in rows:
        lines.append(f"{r['rate']:<20}{r['bpp']:>7.3f}{r['psnr']:>8.2f}"
                     + "".join(f"{_f(r['codecs'][n]['psnr'], '.2f'):>12}" for n in names))
    lines += ["", f"bpp each codec needs for the VQ-VAE's SSIM {rows[0]['ssim']:.3f}: "
              + ", ".join(f"{n} {_f(rows[0]['codecs'][n]['bpp_for_same_ssim'], '.3f')}" for n in names)]
    return "\n".join(lines)


def verdict(rows: list[dict], metric: str = "ssim") -> list[str]:
    """Plain sentences: at each VQ-VAE rate, which codecs it beats and which beat it.

    Args:
        rows: :func:`comparison_rows`.
        metric: "ssim" or "psnr".
    """
    out = []
    for r in rows:
        wins = [n for n, c in r["codecs"].items() if c[metric] is not None and r[metric] > c[metric]]
        loses = [n for n, c in r["codecs"].items() if c[metric] is not None and r[metric] <= c[metric]]
        unknown = [n for n, c in r["codecs"].items() if c[metric] is None]
        out.append(f"at {r['bpp']:.3f} bpp ({r['rate']}): {metric.upper()} {r[metric]:.3f} beats "
                   f"{', '.join(wins) or 'none'}; loses to {', '.join(loses) or 'none'}"
                   + (f"; outside the sweep of {', '.join(unknown)}" if unknown else ""))
    return out


def save_rate_quality(path: str | os.PathLike, curves: dict, rates: dict, model: dict,
                      cells: int, pixels: int) -> Path:
    """Keep notebook 05's codec curves and the VQ-VAE's rates, so that notebook 06 can add the
    third rate (the prior's NLL) once the prior exists, without sweeping the codecs again.

    Args:
        path: the JSON file (by convention ``runs/<preset>/rate_quality.json``).
        curves: ``{codec name: curve}`` (numpy arrays are stored as lists).
        rates: ``rates.vqvae_rates(...)``.
        model: ``{"ssim", "psnr"}`` of the VQ-VAE on the split.
        cells: latent cells per image; pixels: pixels per image (to turn bits per cell into bpp).
    """
    def plain(v):
        return v.tolist() if isinstance(v, np.ndarray) else v

    blob = {"curves": {n: {k: plain(v) for k, v in c.items()} for n, c in curves.items()},
            "rates": rates, "model": model, "cells": int(cells), "pixels": int(pixels)}
    return atomic_write_text(path, json.dumps(blob, indent=1))


def load_rate_quality(path: str | os.PathLike) -> dict:
    """What :func:`save_rate_quality` wrote, with the curves as numpy arrays again.

    Args:
        path: the JSON file.
    """
    blob = json.loads(Path(path).read_text())
    blob["curves"] = {n: {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in c.items()}
                      for n, c in blob["curves"].items()}
    return blob
