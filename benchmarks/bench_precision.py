"""fp32 vs bf16 autocast on this CPU, side by side in one run, at equal wall-clock minutes.

    .venv/bin/python benchmarks/bench_precision.py [--minutes 4.5] [--prior-minutes 2]

1. The ``cpu`` preset's VQ-VAE trains twice for the same budget, ``precision=fp32`` then
   ``precision=bf16`` (same seed, same data): images per second, validation SSIM over training
   time (a fixed subset every ``--eval-every`` seconds), test SSIM (Gaussian, every test slice,
   computed in fp32) and codes used.
2. The preset's prior trains twice on the codes of the bf16 VQ-VAE for ``--prior-minutes``:
   steps per second and test NLL (computed in fp32).

The CPU's bf16 flags are recorded (``avx512_bf16``, ``amx_bf16``): on a CPU without them
``precision=auto`` is fp32 and this benchmark refuses the bf16 half. Writes
``benchmarks/precision.json``; ``benchmarks/README.md`` holds the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import machine, time_to  # noqa: E402

from vqvae_lib.common import write_json  # noqa: E402
from vqvae_lib.config import get_config  # noqa: E402
from vqvae_lib.evaluate.score import evaluate_checkpoint  # noqa: E402
from vqvae_lib.prior.fit import train_prior  # noqa: E402
from vqvae_lib.runtime import cpu_has_bf16  # noqa: E402
from vqvae_lib.train import fit, make_trainer  # noqa: E402


def cpu_flags() -> list[str]:
    """The CPU flags that decide bf16 (and AMX), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512f"})


def vqvae_run(precision: str, args) -> dict:
    cfg = get_config("cpu", precision=precision, max_minutes=args.minutes, seed=args.seed,
                     device="cpu")
    print(f"\n=== VQ-VAE, {precision}: {args.minutes:g} min ===", flush=True)
    run_dir = Path(args.scratch) / precision
    trainer = make_trainer(cfg, data_dir=args.data_dir, run_dir=run_dir,
                           eval_every_s=args.eval_every, eval_subset=args.eval_images)
    res = fit(trainer)
    test = evaluate_checkpoint(res.best_path, "test", args.data_dir, device="cpu", write=False,
                               verbose=False).metrics
    images = trainer.step * cfg.batch_size
    return {"precision": precision, "what": f"cpu preset VQ-VAE, {args.minutes:g} min",
            "images_per_s": round(images / max(trainer.train_seconds, 1e-9), 1),
            "epochs": trainer.epoch, "steps": trainer.step,
            f"seconds_to_ssim_{args.threshold}": time_to(res.val_log, args.threshold),
            "best_val_ssim": round(max(h["val_ssim"] for h in res.history), 4),
            "test_ssim": round(test["ssim_gaussian"]["mean"], 4),
            "codes_used": test.get("codes_used"),
            "ssim_over_time": [{k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()}
                               for p in res.val_log],
            "checkpoint": res.best_path}


def prior_run(precision: str, checkpoint: Path, args) -> dict:
    print(f"\n=== prior, {precision}: {args.prior_minutes:g} min ===", flush=True)
    run = train_prior(checkpoint, args.data_dir, Path(args.scratch) / f"prior_{precision}", "cpu",
                      verbose=False, prior_precision=precision, prior_max_minutes=args.prior_minutes,
                      seed=args.seed)
    m = run.metrics
    return {"precision": precision, "what": f"cpu preset prior ({m['prior_kind']}), "
                                            f"{args.prior_minutes:g} min",
            "steps": m["steps"], "steps_per_s": round(m["steps_per_second"], 2),
            "test_nll_bits": round(m["test_bits"], 4), "best_val_bits": round(m["best_val_bits"], 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=get_config("cpu").max_minutes)
    p.add_argument("--prior-minutes", type=float, default=get_config("cpu").prior_max_minutes)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--eval-every", type=float, default=20.0)
    p.add_argument("--eval-images", type=int, default=120)
    p.add_argument("--scratch", default=str(ROOT / "runs" / "bench_precision"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "precision.json"))
    args = p.parse_args(argv)
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no native bf16 (avx512_bf16 / amx_bf16): nothing to compare; "
                         "precision=auto trains in fp32 here")
    os.environ.setdefault("VQVAE_QUIET", "1")
    info = machine()
    vq = [vqvae_run(pr, args) for pr in ("fp32", "bf16")]
    checkpoint = vq[1].pop("checkpoint")
    vq[0].pop("checkpoint")
    priors = [prior_run(pr, checkpoint, args) for pr in ("fp32", "bf16")]
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = os.getloadavg()
    summary = {"vqvae_images_per_s_ratio": round(vq[1]["images_per_s"] / vq[0]["images_per_s"], 2),
               "vqvae_test_ssim_fp32_bf16": [vq[0]["test_ssim"], vq[1]["test_ssim"]],
               "prior_steps_per_s_ratio": round(priors[1]["steps_per_s"] / priors[0]["steps_per_s"], 2),
               "prior_test_nll_fp32_bf16": [priors[0]["test_nll_bits"], priors[1]["test_nll_bits"]]}
    write_json(args.out, {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": info,
                          "cpu_bf16_flags": cpu_flags(), "torch": torch.__version__,
                          "settings": {k: getattr(args, k) for k in ("minutes", "prior_minutes", "seed",
                                                                     "threshold", "eval_every")},
                          "summary": summary, "results": vq + priors})
    print(summary)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
