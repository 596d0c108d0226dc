"""Quantizers and codecs, side by side: the numbers behind notebooks 04 and 05.

    .venv/bin/python benchmarks/bench_codecs.py [--what quantizers|codecs|both] [--minutes 2]
                                                [--run-dir runs/cpu] [--data-dir D]

* ``quantizers``: notebook 04's same-budget experiment (loss / EMA / EMA + k-means + restart /
  FSQ / residual VQ) with the ``cpu`` preset's model at 64 px, all five interleaved for
  ``--minutes`` of wall clock -> ``benchmarks/quantizers.json``.
* ``codecs``: JPEG, WebP, JPEG 2000 and AVIF (Pillow) swept over quality on the **whole** test
  split at the ``cpu`` preset's 128 px, plus downsample + bicubic -> ``benchmarks/codecs.json``.
  If ``<run-dir>/checkpoints/best.pt`` exists, the trained VQ-VAE is scored on the same slices at
  its three rates (log2 K, training histogram, prior NLL if ``<run-dir>/prior`` fits it) and
  every codec is read off at those rates.

Both record the machine and the seconds each part took. ``benchmarks/README.md`` holds the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import machine  # noqa: E402

from vqvae_lib.checkpoint import load_model  # noqa: E402
from vqvae_lib.codebook import experiment as X  # noqa: E402
from vqvae_lib.codebook.experiment_report import experiment_rows, experiment_table  # noqa: E402
from vqvae_lib.config import get_config  # noqa: E402
from vqvae_lib.data import load_split  # noqa: E402
from vqvae_lib.evaluate import baselines as B  # noqa: E402
from vqvae_lib.evaluate import codecs as CX  # noqa: E402
from vqvae_lib.evaluate import rate_quality as RQ  # noqa: E402
from vqvae_lib.evaluate import rates as R  # noqa: E402
from vqvae_lib.evaluate import score as E  # noqa: E402


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return round(float(x), 4)
    if isinstance(x, np.integer):
        return int(x)
    return x


def bench_quantizers(minutes: float, data_dir) -> dict:
    t0 = time.perf_counter()
    ecfg = X.experiment_config(get_config("cpu", device="cpu"))
    x_train, x_val = X.experiment_data(ecfg, data_dir)
    runs = X.run_experiment(ecfg, x_train, x_val, minutes=minutes)
    print(experiment_table(runs, ecfg.codebook_size))
    return {"what": "notebook 04 same-budget experiment, cpu preset model at 64 px, interleaved",
            "minutes_budget": minutes, "codebook_size": ecfg.codebook_size,
            "train_slices": len(x_train), "validation_slices": len(x_val),
            "variants": experiment_rows(runs), "seconds_total": time.perf_counter() - t0}


def bench_codecs(run_dir: Path, data_dir) -> dict:
    t0 = time.perf_counter()
    cfg = get_config("cpu")
    test = load_split("test", data_dir, size=cfg.image_size, masks=False, verbose=False)
    images = torch.from_numpy(test.images).float().div(255)[:, None]
    curves = {**CX.codec_sweep(images), "downsample + bicubic": B.bicubic_curve(images)}
    out = {"what": f"codec sweep on all {len(images)} test slices at {cfg.image_size} px, rate "
                   "from the whole encoded file", "curves": curves,
           "seconds_codecs": time.perf_counter() - t0}
    ckpt = run_dir / "checkpoints" / "best.pt"
    if ckpt.is_file():
        model, mcfg, _ = load_model(ckpt)
        ev = E.evaluate_model(model, mcfg, test, train_codes=E.training_codes(model, mcfg, data_dir))
        m = ev.metrics
        prior_bits, note = R.prior_test_bits(run_dir, ckpt)
        rates = R.vqvae_rates(m["codebook_size"], m["latent_size"] ** 2, m["image_size"] ** 2,
                              ev.train_codes, ev.codes, prior_bits)
        model_q = {"ssim": m["ssim_gaussian"]["mean"], "psnr": m["psnr_db"]["mean"]}
        rows = RQ.comparison_rows(rates, model_q, curves)
        print(RQ.format_comparison(rows))
        out.update(vqvae={"checkpoint": str(ckpt), "quality": model_q, "rates": rates,
                          "prior_note": note}, comparison=rows,
                   verdict=RQ.verdict(rows) + RQ.verdict(rows, "psnr"))
    else:
        out["vqvae"] = "no trained model in the run folder: run `make run-all` first for the VQ-VAE rows"
    out["seconds_total"] = time.perf_counter() - t0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--what", choices=("quantizers", "codecs", "both"), default="both")
    ap.add_argument("--minutes", type=float, default=2.0, help="quantizer experiment budget")
    ap.add_argument("--run-dir", default=str(ROOT / "runs" / "cpu"))
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    info = machine()
    if args.what in ("quantizers", "both"):
        res = bench_quantizers(args.minutes, args.data_dir) | {"machine": info}
        (ROOT / "benchmarks" / "quantizers.json").write_text(json.dumps(_plain(res), indent=1) + "\n")
    if args.what in ("codecs", "both"):
        res = bench_codecs(Path(args.run_dir), args.data_dir) | {"machine": info}
        (ROOT / "benchmarks" / "codecs.json").write_text(json.dumps(_plain(res), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
