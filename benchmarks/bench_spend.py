"""Where the ``cpu`` preset's minutes go: the codebook's size, and the VQ-VAE / prior split.

    .venv/bin/python benchmarks/bench_spend.py [--only K512,K256,K128,split] [-n 64]

Each row trains a VQ-VAE from scratch (the ``cpu`` preset with ``codebook_size`` K, for its
minutes of wall clock), scores it on the test split (SSIM, codes used, its own achievable rate:
the training histogram's bits per pixel), then trains the preset's prior on its codes for the
row's prior minutes (as optimiser steps at this machine's measured speed for that K, like
``prior_compare.py``), draws ``-n`` slices at temperature 1 and scores them against the test
split (every metric beside its floor, patch memorisation included).

* ``K512``, ``K256``, ``K128``: a smaller book is an easier sequence for a prior (fewer choices
  per cell, fewer near-synonyms of background); what does it cost in SSIM?
* ``split``: the same 6.5 minutes in all, moved from the VQ-VAE to the prior.

Writes ``benchmarks/spend.json`` (and ``--sheet``, samples per row); ``benchmarks/README.md``
holds the table. Nothing else may run on the machine meanwhile: budgets are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import chosen, machine  # noqa: E402
from prior_compare import OPTIONS, contact_sheet, steps_per_second, summary  # noqa: E402

from vqvae_lib.checkpoint import load_model  # noqa: E402
from vqvae_lib.common import write_json  # noqa: E402
from vqvae_lib.config import get_config  # noqa: E402
from vqvae_lib.evaluate.rates import vqvae_rates  # noqa: E402
from vqvae_lib.evaluate.score import evaluate_checkpoint  # noqa: E402
from vqvae_lib.prior.fit import train_prior  # noqa: E402
from vqvae_lib.prior.sample import generate  # noqa: E402
from vqvae_lib.realism.scoring import load_real, realism_scores  # noqa: E402
from vqvae_lib.train import fit, make_trainer  # noqa: E402

PRESET = get_config("cpu")
# name -> (codebook size K, VQ-VAE minutes, prior minutes)
ROWS = {
    "K512": (512, PRESET.max_minutes, PRESET.prior_max_minutes),
    "K256": (256, PRESET.max_minutes, PRESET.prior_max_minutes),
    "K128": (128, PRESET.max_minutes, PRESET.prior_max_minutes),
    "split": (512, PRESET.max_minutes - 1.5, PRESET.prior_max_minutes + 1.5),
}


def run_row(name: str, real, args) -> tuple[dict, torch.Tensor]:
    K, vq_minutes, prior_minutes = ROWS[name]
    print(f"\n=== {name}: K={K}, VQ-VAE {vq_minutes:g} min, prior {prior_minutes:g} min ===", flush=True)
    run_dir = Path(args.scratch) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = get_config("cpu", codebook_size=K, max_minutes=vq_minutes, seed=args.seed, device="cpu")
    trainer = make_trainer(cfg, data_dir=args.data_dir, run_dir=run_dir)
    res = fit(trainer)
    ev = evaluate_checkpoint(res.best_path, "test", args.data_dir, device="cpu", write=False,
                             verbose=False)
    m = ev.metrics
    lat, side = m["latent_size"], m["image_size"]
    bpp = vqvae_rates(K, lat * lat, side * side, ev.train_codes, ev.codes)["training histogram"]["bpp"]
    option = dict(OPTIONS["pixelcnn"])
    rate = steps_per_second({**option, "codebook_size": K}, PRESET, args.calib_steps)
    steps = max(1, int(prior_minutes * 60 * rate))
    prior = train_prior(res.best_path, args.data_dir, run_dir, "cpu", verbose=False, seed=args.seed,
                        prior_max_minutes=0, prior_max_steps=steps, **option)
    vqvae, _, _ = load_model(res.best_path)
    out = generate(prior.prior, vqvae, args.n, 1.0, seed=args.seed)
    scores = realism_scores(out["images"], real, n=args.n)
    row = {"row": name, "codebook_size": K, "vqvae_minutes": vq_minutes, "prior_minutes": prior_minutes,
           "vqvae_epochs": trainer.epoch, "vqvae_steps": trainer.step,
           "test_ssim": round(m["ssim_gaussian"]["mean"], 4), "codes_used": m.get("codes_used"),
           "rate_bpp": round(bpp, 4), "prior_steps_per_s": round(rate, 2), "prior_steps": steps,
           "prior_test_bits": round(prior.metrics["test_bits"], 4),
           "prior_test_bpp": round(prior.metrics["test_bits"] * lat * lat / (side * side), 4),
           **summary(scores)}
    print(f"{name}: SSIM {row['test_ssim']}, {row['codes_used']} codes, {row['rate_bpp']} bpp; prior "
          f"{steps} steps, NLL {row['prior_test_bits']} bits/cell; 1-NN "
          f"{row['one_nn_shape']['generated']:.2f} / {row['one_nn_intensity']['generated']:.2f}", flush=True)
    return row, out["images"][:10]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(ROWS), help="comma-separated row names")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", type=int, default=64, help="samples per row")
    p.add_argument("--calib-steps", type=int, default=40)
    p.add_argument("--scratch", default=str(ROOT / "runs" / "bench_spend"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "spend.json"))
    p.add_argument("--sheet", default=str(ROOT / "benchmarks" / "spend.png"))
    args = p.parse_args(argv)
    names = chosen(args.only, ROWS)
    os.environ.setdefault("VQVAE_QUIET", "1")
    info = machine()
    real = load_real(args.data_dir, PRESET.image_size, None, verbose=False)
    results, sheet = [], []
    for name in names:
        row, images = run_row(name, real, args)
        results.append(row)
        sheet.append((f"{name}\nSSIM {row['test_ssim']:.3f}", images))
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = os.getloadavg()
    write_json(args.out, {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": info,
                          "torch": torch.__version__, "rows": {n: ROWS[n] for n in names},
                          "settings": {"seed": args.seed, "n_samples": args.n},
                          "results": results})
    if args.sheet:
        pick = torch.as_tensor(np.linspace(0, len(real.test) - 1, 10).round().astype(int))
        contact_sheet(sheet, real.test[pick]).savefig(args.sheet, dpi=80)
    print(f"wrote {args.out}" + (f" and {args.sheet}" if args.sheet else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
