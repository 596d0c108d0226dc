"""Side-by-side benchmark: the reference recipe vs the ``cpu`` preset, same machine, same data.

    .venv/bin/python benchmarks/bench.py [--minutes 10] [--size 128] [--data-dir D]

Both recipes train at the same input size for the same wall-clock budget, one after the other
in this process. The reference keeps everything that makes it what it is: its network (width
256, K=512, D=256, Tanh on [-1, 1]), its codebook loss, Adam(amsgrad) with StepLR, batch 32,
and its data pipeline that decodes every PNG again every epoch. Ours is the ``cpu`` preset.

Every ``--eval-every`` seconds of *training* time (evaluation time is not counted) both are
scored on the same fixed subset of validation slices with the Gaussian SSIM, which gives an
SSIM-over-time curve. We report images/s, the training seconds until validation SSIM first
reaches ``--threshold`` (0.85), the best SSIM, and the ratio of the two times. Results go to
``benchmarks/results.json``; ``benchmarks/README.md`` describes the latest run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqvae_lib.config import get_config  # noqa: E402
from vqvae_lib.train import fit, make_trainer  # noqa: E402


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "processor": platform.processor() or None}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu_model"] = names[0] if names else None
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = os.getloadavg()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def chosen(only: str, table: dict) -> list[str]:
    """The comma-separated names of ``only`` (an ``--only`` option), each one a key of ``table``."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown name(s) {unknown}; choose from {list(table)}")
    return names


def time_to(points: list[dict], threshold: float) -> float | None:
    for p in points:
        if p["val_ssim"] >= threshold:
            return p["train_seconds"]
    return None


def run_recipe(name: str, args) -> dict:
    # The reference's StepLR does not depend on the run length: let the budget alone stop it.
    # Ours keeps its preset's epochs, and fits its cosine schedule to the budget as usual.
    extra = {"epochs": 100000} if name == "reference" else {}
    cfg = get_config(name, image_size=args.size, max_minutes=args.minutes, device=args.device,
                     seed=args.seed, **extra)
    print(f"\n=== {name}: {args.minutes:g} min budget at {args.size}px ===", flush=True)
    t0 = time.perf_counter()
    trainer = make_trainer(cfg, data_dir=args.data_dir, run_dir=ROOT / "runs" / "bench" / name,
                           eval_every_s=args.eval_every, eval_subset=args.eval_images)
    res = fit(trainer)
    wall = time.perf_counter() - t0
    points = res.val_log
    images = trainer.step * cfg.batch_size
    t85 = time_to(points, args.threshold)
    return {
        "recipe": name, "image_size": args.size, "batch_size": cfg.batch_size,
        "params": sum(p.numel() for p in res.model.parameters() if p.requires_grad),
        "decode_every_epoch": cfg.decode_every_epoch, "epochs_completed": trainer.epoch,
        "steps": trainer.step, "train_seconds": round(trainer.train_seconds, 1),
        "wall_seconds": round(wall, 1), "images_per_s": round(images / max(trainer.train_seconds, 1e-9), 2),
        f"seconds_to_ssim_{args.threshold}": round(t85, 1) if t85 is not None else "not reached",
        "best_subset_ssim": round(max((p["val_ssim"] for p in points), default=float("nan")), 4),
        "best_epoch_val_ssim": round(max((h["val_ssim"] for h in res.history), default=float("nan")), 4),
        "ssim_over_time": [{k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()}
                           for p in points],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per recipe")
    p.add_argument("--size", type=int, default=128, help="input size for both recipes")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.85)
    p.add_argument("--eval-every", type=float, default=20.0, help="training seconds between SSIM points")
    p.add_argument("--eval-images", type=int, default=120, help="validation slices per SSIM point")
    p.add_argument("--recipes", default="reference,cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("VQVAE_QUIET", "1")

    info = machine()
    results = {r: run_recipe(r, args) for r in args.recipes.split(",")}
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = os.getloadavg()
    key = f"seconds_to_ssim_{args.threshold}"
    summary = {}
    if {"reference", "cpu"} <= set(results):
        ref, ours = results["reference"][key], results["cpu"][key]
        if isinstance(ours, float) and isinstance(ref, float):
            summary["speedup_to_threshold"] = round(ref / ours, 2)
        elif isinstance(ours, float):
            # the reference never got there in the training time it had: the ratio is at least
            # (its training seconds) / ours
            ref_trained = results["reference"]["train_seconds"]
            summary["speedup_to_threshold"] = (f">= {round(ref_trained / ours, 2)} (reference not "
                                               f"reached in {ref_trained:.0f} s of training)")
        else:
            summary["speedup_to_threshold"] = "ours did not reach the threshold"
        summary["images_per_s_ratio"] = round(results["cpu"]["images_per_s"] /
                                              max(results["reference"]["images_per_s"], 1e-9), 2)
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": info,
           "settings": {k: getattr(args, k) for k in ("minutes", "size", "device", "seed", "threshold",
                                                      "eval_every", "eval_images")},
           "summary": summary, "results": results}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({"summary": summary, **{k: {kk: v[kk] for kk in ("images_per_s", key, "best_subset_ssim")}
                                              for k, v in results.items()}}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
