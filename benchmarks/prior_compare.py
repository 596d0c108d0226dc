"""The main-line priors side by side, and what more prior minutes buy (notebook 06's tables).

    # the gated PixelCNN and the causal transformer at the cpu preset's budget, three seeds:
    python benchmarks/prior_compare.py --run-dir runs/cpu --options pixelcnn transformer \
        --minutes 2 --seeds 0 1 2 --out benchmarks/prior_compare.json
    # realism against prior minutes for the default prior (one contact sheet per budget):
    python benchmarks/prior_compare.py --run-dir runs/cpu --options pixelcnn \
        --minutes 2 4 8 16 32 --out benchmarks/prior_minutes.json --sheet benchmarks/prior_minutes.png

Every prior trains on the codes of the same VQ-VAE (``<run-dir>/checkpoints/best.pt``) in a
scratch folder (``--scratch``), so the run's own prior is never touched. **Equal minutes** means
equal optimiser steps at this machine's *measured* speed: each option first times a few steps
(``--calib-steps``, after ten warm-up steps), then trains ``minutes x 60 x steps per second``
steps. A busy machine then takes longer but trains the same model a quiet one would in those
minutes. The rate is that of the bare optimiser step: inside the training loop (batches,
validation) the notebook's prior runs about a quarter fewer steps in the same minutes. Each prior draws
``-n`` slices at temperature 1 (its own distribution: no top-k, no top-p, nothing redrawn) and is
scored against the test split with :mod:`vqvae_lib.realism` (every metric beside its floor).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from vqvae_lib.checkpoint import load_model
from vqvae_lib.common import write_json
from vqvae_lib.config import get_config
from vqvae_lib.prior.fit import train_prior
from vqvae_lib.prior.sample import generate
from vqvae_lib.prior.store import build_prior
from vqvae_lib.realism.scoring import load_real, realism_scores
from vqvae_lib.runtime import autocast, autocast_dtype, precision_name

OPTIONS = {
    "pixelcnn": dict(prior_kind="pixelcnn", prior_channels=64, prior_layers=8, prior_batch_size=4),
    "transformer": dict(prior_kind="transformer", prior_channels=128, prior_layers=4,
                        prior_heads=4, prior_batch_size=4),
}
"""The main-line options, as the ``cpu`` preset sizes them (both conditioned on slice position,
both trained on mirrored slices too: the preset's ``prior_cond_bins`` and ``prior_mirror``)."""


def steps_per_second(overrides: dict, cfg, steps: int) -> float:
    """Optimiser steps per second of a fresh prior on random codes, this machine, as trained."""
    cfg = cfg.replace(**overrides)
    prior = build_prior(cfg, cfg.prior_cond_bins)
    opt = torch.optim.Adam(prior.parameters(), 1e-3)
    g = cfg.latent_size
    x = torch.randint(0, cfg.codebook_size, (cfg.prior_batch_size, g, g))
    y = torch.randint(0, max(cfg.prior_cond_bins, 1), (len(x),)) if cfg.prior_cond_bins else None
    amp = autocast_dtype(cfg.prior_precision, "cpu")
    for i in range(steps + 10):
        if i == 10:                       # after a warm-up (the first bf16 steps are slow)
            t0 = time.perf_counter()
        with autocast("cpu", amp):
            loss = prior.nll_bits(x, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def summary(scores: dict) -> dict:
    """The numbers of one row: each metric and its floor, tissue W1 as multiples of the floor."""
    row = {k: {"generated": scores[k]["generated"], "floor": scores[k]["floor"]}
           for k in ("one_nn_shape", "one_nn_intensity", "precision", "recall")}
    row["tissue_w1_over_floor"] = {t: v["generated"] / max(v["floor"], 1e-12)
                                   for t, v in scores.get("tissue_w1", {}).items()}
    p = scores["patch_memorisation"]
    row["patch_memorisation"] = {k: p[k] for k in ("share_near_copies", "test_share_near_copies",
                                                   "median_ratio")}
    row["slice_memorisation"] = scores["memorisation"]["share_closer_than_any_test"]
    return row


def contact_sheet(rows: list[tuple[str, torch.Tensor]], real: torch.Tensor) -> Figure:
    """One row of samples per budget (and a row of real test slices): what the minutes buy."""
    rows = rows + [("real test", real)]
    n = max(len(x) for _, x in rows)
    fig = Figure(figsize=(1.3 * n + 1.2, 1.35 * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].text(-0.1, 0.5, label, transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.99, bottom=0.01, wspace=0.03, hspace=0.05)
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", default="runs/cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--options", nargs="+", default=["pixelcnn", "transformer"], choices=sorted(OPTIONS))
    p.add_argument("--minutes", nargs="+", type=float, default=[2.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("-n", type=int, default=64, help="samples per prior")
    p.add_argument("--calib-steps", type=int, default=40)
    p.add_argument("--steps-per-second", nargs="*", default=[], metavar="OPTION=RATE",
                   help="use these rates instead of measuring (e.g. the ones of an earlier run, "
                        "so that its minutes and these are the same steps)")
    p.add_argument("--scratch", default="/tmp/prior_compare")
    p.add_argument("--out", required=True)
    p.add_argument("--sheet", default=None, help="PNG contact sheet (first seed of each row)")
    args = p.parse_args()

    run_dir = Path(args.run_dir)
    checkpoint = run_dir / "checkpoints" / "best.pt"
    vqvae, cfg, _ = load_model(checkpoint)
    real = load_real(args.data_dir, cfg.image_size, run_dir, verbose=False)
    base = get_config(cfg.preset)
    given = {k: float(v) for k, v in (a.split("=") for a in args.steps_per_second)}
    rates = {o: given.get(o) or steps_per_second(OPTIONS[o], base, args.calib_steps)
             for o in args.options}
    print("steps per second:", {o: round(r, 2) for o, r in rates.items()}, flush=True)
    results, sheet = [], []
    for option in args.options:
        for minutes in args.minutes:
            for seed in args.seeds:
                scratch = Path(args.scratch) / f"{option}_{minutes:g}_{seed}"
                shutil.rmtree(scratch, ignore_errors=True)
                (scratch / "prior").mkdir(parents=True)
                for cache in (run_dir / "prior").glob("codes_*.pt"):   # the same encoded splits
                    shutil.copy2(cache, scratch / "prior" / cache.name)
                steps = max(1, int(minutes * 60 * rates[option]))
                t0 = time.perf_counter()
                run = train_prior(checkpoint, args.data_dir, scratch, "cpu", verbose=False, seed=seed,
                                  prior_max_minutes=0, prior_max_steps=steps, **OPTIONS[option])
                wall = time.perf_counter() - t0
                out = generate(run.prior, vqvae, args.n, 1.0, seed=seed)
                scores = realism_scores(out["images"], real, n=args.n)
                row = {"option": option, "minutes": minutes, "seed": seed, "steps": run.metrics["steps"],
                       "train_wall_seconds": wall, "sample_seconds": out["seconds"],
                       "test_bits": run.metrics["test_bits"], "best_val_bits": run.metrics["best_val_bits"],
                       "precision": run.metrics["precision"], **summary(scores)}
                results.append(row)
                print(f"{option} {minutes:g} min seed {seed}: {row['steps']} steps, NLL "
                      f"{row['test_bits']:.3f}, 1-NN {row['one_nn_shape']['generated']:.2f} / "
                      f"{row['one_nn_intensity']['generated']:.2f}, CSF W1 "
                      f"{row['tissue_w1_over_floor'].get('CSF', float('nan')):.2f}x", flush=True)
                if seed == args.seeds[0]:
                    sheet.append((f"{option}\n{minutes:g} min", out["images"][:10]))
                shutil.rmtree(scratch, ignore_errors=True)
    write_json(args.out, {
        "what": "main-line priors at equal minutes (steps at this machine's measured speed); "
                "64 samples each at temperature 1, scored against the test split",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "precision": precision_name(autocast_dtype(base.prior_precision, "cpu"))},
        "preset": cfg.preset, "steps_per_second": rates, "n_samples": args.n,
        "options": {o: OPTIONS[o] for o in args.options}, "results": results})
    if args.sheet:
        pick = torch.as_tensor(np.linspace(0, len(real.test) - 1, 10).round().astype(int))
        contact_sheet(sheet, real.test[pick]).savefig(args.sheet, dpi=80)
    print(f"wrote {args.out}" + (f" and {args.sheet}" if args.sheet else ""))


if __name__ == "__main__":
    main()
