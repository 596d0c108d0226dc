"""Data at OASIS scale: generation, cache, load times, memory, data wait, evaluation time.

    .venv/bin/python benchmarks/bench_data.py [--data /tmp/oasis_sized] [--subjects 400]
                                              [--slices 28] [--steps 20]      # or: make bench-data

OASIS in the course layout is 9,664 / 1,120 / 544 slices at 256x256; the demo set is 2,400.
This builds an OASIS-sized synthetic set (``python -m vqvae_lib.demo --subjects 400 --slices
28`` = 11,200 slices) unless ``--data`` already holds one, then measures, each phase in a
fresh process so that its memory peak is its own:

* the time to generate the set, and its size on disk;
* per split, the first load (PNG decoding + writing the uint8 cache) and a cached load, at
  256x256 (``gpu`` / ``reference``) and 128x128 (``cpu``), and the cache's size on disk;
* the resident memory peak (``ru_maxrss``) while the ``cpu`` and ``gpu`` presets load the
  data and run ``--steps`` training steps;
* the share of a training step spent waiting for data: the batch gather and uint8 -> float
  conversion the trainer does, timed alone on the same batches, over the median step time
  (goal <= 5 %);
* the time to evaluate 544 test slices (OASIS's test split) at 256x256 with the ``gpu``
  architecture (``evaluate.evaluate_model``: reconstruction + every metric).

Results: ``benchmarks/data_scale.json``; the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux: KiB


def _use_cache(cache_dir: str) -> None:
    import vqvae_lib.data.dataset as slices

    slices.default_cache_dir = lambda: Path(cache_dir)                   # the trainer's loads


def phase_load(args) -> dict:
    """First and cached load of every split at 256 and 128; cache size on disk."""
    from vqvae_lib.common import SPLITS
    from vqvae_lib.data import load_split

    out = {}
    for size in (256, 128):
        cache = Path(args.cache) / f"load{size}"
        shutil.rmtree(cache, ignore_errors=True)
        for split in SPLITS:
            t0 = time.perf_counter()
            s = load_split(split, args.data, size=size, masks=True, cache_dir=cache, verbose=False)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            s2 = load_split(split, args.data, size=size, masks=True, cache_dir=cache, verbose=False)
            _ = int(s2.images[-1].sum())                       # touch the data (memory maps)
            cached = time.perf_counter() - t0
            assert s2.cache_hit and len(s2) == len(s)
            out[f"{split}@{size}"] = {"slices": len(s), "first_load_s": round(first, 2),
                                      "cached_load_s": round(cached, 3)}
        out[f"cache_mb@{size}"] = round(sum(f.stat().st_size for f in cache.glob("*.npy")) / 2**20, 1)
    out["rss_peak_mb"] = round(_rss_mb(), 1)
    return out


def phase_train(args) -> dict:
    """RSS peak and data-wait share over ``--steps`` training steps of one preset."""
    import numpy as np
    import torch

    from vqvae_lib.config import get_config
    from vqvae_lib.train import fit, make_trainer

    torch.set_num_threads(args.threads)
    cfg = get_config(args.preset, device="cpu", epochs=1, max_minutes=0.0,
                     num_threads=args.threads)
    _use_cache(str(Path(args.cache) / f"load{cfg.image_size}"))      # built by phase_load
    stamps = []

    def on_step(tr):
        stamps.append(time.perf_counter())
        if tr.step >= (args.steps if args.preset == "cpu" else args.gpu_steps):
            tr.stop_signal = "bench"                  # finish this step, save, stop

    t0 = time.perf_counter()
    trainer = make_trainer(cfg, data_dir=args.data, run_dir=Path(args.cache) / f"run-{args.preset}",
                           verbose=False, on_step=on_step)          # loads the data, builds the model
    load_s = time.perf_counter() - t0
    rss_after_load = _rss_mb()
    fit(trainer, lock=False)
    steps = np.diff(stamps)[1:]                       # drop the first (k-means init, warm-up)
    # the trainer's data path for those batches, alone: gather uint8 rows, convert to float
    perm = torch.randperm(len(trainer.data.train_u8))
    waits = []
    for b in range(len(steps)):
        idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        t = time.perf_counter()
        x = trainer.data.train_u8[idx].to(trainer.device).float().div_(255)
        waits.append(time.perf_counter() - t)
        del x
    step_s, wait_s = float(np.median(steps)), float(np.median(waits))
    return {"preset": args.preset, "image_size": cfg.image_size, "batch_size": cfg.batch_size,
            "train_images": len(trainer.data.train_u8), "load_s": round(load_s, 2),
            "rss_after_load_mb": round(rss_after_load, 1), "rss_peak_mb": round(_rss_mb(), 1),
            "steps_timed": len(steps), "median_step_s": round(step_s, 3),
            "median_data_s": round(wait_s, 5), "data_share": round(wait_s / step_s, 4),
            "torch_threads": torch.get_num_threads()}


def phase_eval(args) -> dict:
    """Evaluate 544 test slices at 256x256 with the gpu architecture (weights as initialised)."""
    import torch

    from vqvae_lib.config import get_config
    from vqvae_lib.data import load_split
    from vqvae_lib.evaluate.score import evaluate_model
    from vqvae_lib.model import build_model

    torch.set_num_threads(args.threads)
    cfg = get_config("gpu", device="cpu")
    test = load_split("test", args.data, size=256, cache_dir=Path(args.cache) / "load256",
                      verbose=False).subset(slice(0, 544))
    model = build_model(cfg).eval()
    t0 = time.perf_counter()
    ev = evaluate_model(model, cfg, test, batch_size=32, device="cpu")
    sec = time.perf_counter() - t0
    return {"n_images": ev.metrics["n_images"], "image_size": ev.metrics["image_size"],
            "seconds": round(sec, 1), "images_per_s": round(len(test) / sec, 2),
            "rss_peak_mb": round(_rss_mb(), 1), "torch_threads": torch.get_num_threads()}


def _child(phase: str, args, **extra) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--data", str(args.data), "--cache",
           str(args.cache), "--steps", str(args.steps), "--gpu-steps", str(args.gpu_steps), "--threads", str(args.threads)]
    for k, v in extra.items():
        cmd += [f"--{k}", str(v)]
    env = {**os.environ, "VQVAE_QUIET": "1", "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"phase {phase} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{phase} {extra or ''}: {result}", flush=True)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/tmp/vqvae_oasis_sized")
    ap.add_argument("--cache", default="/tmp/vqvae_bench_cache")
    ap.add_argument("--subjects", type=int, default=400)
    ap.add_argument("--slices", type=int, default=28)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--gpu-steps", type=int, default=6, help="steps of the gpu preset (slow on CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gen-seconds", type=float, default=None,
                    help="generation time measured earlier (when --data already exists)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "data_scale.json"))
    ap.add_argument("--phase", choices=("load", "train", "eval"), help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="cpu", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        fn = {"load": phase_load, "train": phase_train, "eval": phase_eval}[args.phase]
        print(json.dumps(fn(args)))
        return 0

    from bench import machine  # noqa: E402  (benchmarks/bench.py)

    data = Path(args.data)
    gen = {"seconds": args.gen_seconds, "generated_now": False}
    if not (data / "demo_manifest.json").is_file():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vqvae_lib.demo", "--out", str(data), "--subjects",
                        str(args.subjects), "--slices", str(args.slices)], check=True, cwd=ROOT)
        gen = {"seconds": round(time.perf_counter() - t0, 1), "generated_now": True}
    made = json.loads((data / "demo_manifest.json").read_text())
    gen.update(subjects=made["subjects"], slices=made["subjects"] * made["slices_per_subject"],
               png_mb=round(sum(f.stat().st_size for f in data.rglob("*.png")) / 2**20, 1))
    info = machine()
    results = {"machine": info, "data": f"an OASIS-sized synthetic set ({args.subjects} subjects x {args.slices} slices) in a scratch folder", "generate": gen,
               "load": _child("load", args),
               "train": [_child("train", args, preset=p) for p in ("cpu", "gpu")],
               "evaluate_544_at_256": _child("eval", args)}
    info["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
