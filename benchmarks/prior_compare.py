"""Compare generators (priors over codes) at an equal CPU budget; write benchmarks/prior_compare.json.

    # one option (run several in parallel, one thread each):
    python benchmarks/prior_compare.py run --checkpoint RUN/checkpoints/best.pt --option pixelcnn \
        --cpu-seconds 330 --out /tmp/cmp
    # or a wall-clock budget on idle cores (all threads), as notebook 06 trains:
    python benchmarks/prior_compare.py run --checkpoint RUN/checkpoints/best.pt \
        --option hierarchical_cond4 --minutes 3 --out /tmp/cmp
    # merge the per-option files into benchmarks/prior_compare.json and print the README table:
    python benchmarks/prior_compare.py merge --out /tmp/cmp

Equal budget = equal **CPU seconds** (``time.process_time`` of the training process, one torch
thread): each option's step count is the budget divided by its per-step CPU cost, measured at the
start of its own run (``--calib-steps`` steps of batch ``prior_batch_size``). CPU time, unlike wall
time, is not inflated by other jobs on shared cores (cache sharing still inflates it a little, the
same for every option run side by side). Every option then samples ``-n`` slices at each
temperature and is scored against the test split with :mod:`vqvae_lib.prior.generation`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from vqvae_lib.checkpoint import load_model
from vqvae_lib.config import get_config
from vqvae_lib.prior.build import build_prior
from vqvae_lib.prior.fit import train_prior
from vqvae_lib.prior.sample import generate
from vqvae_lib.prior.scoring import generator_table, load_real, score_images
from vqvae_lib.prior.words import RENDER_RULES

OPTIONS = {
    "pixelcnn": dict(prior_kind="pixelcnn", prior_channels=64, prior_layers=8, prior_cond_bins=0),
    "pixelcnn_cond4": dict(prior_kind="pixelcnn", prior_channels=64, prior_layers=8, prior_cond_bins=4),
    "transformer_cond4": dict(prior_kind="transformer", prior_channels=96, prior_layers=4,
                              prior_heads=4, prior_cond_bins=4),
    "transformer": dict(prior_kind="transformer", prior_channels=96, prior_layers=4,
                        prior_heads=4, prior_cond_bins=0),
    "hierarchical_cond4": dict(prior_kind="hierarchical", prior_channels=64, prior_layers=8,
                               prior_top_factor=4, prior_top_codes=64, prior_cond_bins=4),
    "hierarchical16_cond4": dict(prior_kind="hierarchical", prior_channels=64, prior_layers=8,
                                 prior_top_factor=2, prior_top_codes=256, prior_cond_bins=4),
    "hierarchical_c32_cond4": dict(prior_kind="hierarchical", prior_channels=32, prior_layers=8,
                                   prior_top_factor=4, prior_top_codes=64, prior_cond_bins=4),
    "masked_cond4": dict(prior_kind="masked", prior_channels=64, prior_layers=8, prior_steps=12,
                         prior_cond_bins=4),
    "clustered_cond4": dict(prior_kind="clustered", prior_channels=64, prior_layers=8,
                            prior_top_codes=64, prior_cond_bins=4),
    "words_cond4_mirror": dict(prior_kind="words", prior_channels=128, prior_layers=4,
                               prior_heads=4, prior_top_factor=4, prior_top_codes=1024,
                               prior_cond_bins=4, prior_mirror=True),
    "words_cond4": dict(prior_kind="words", prior_channels=128, prior_layers=4, prior_heads=4,
                        prior_top_factor=4, prior_top_codes=1024, prior_cond_bins=4,
                        prior_mirror=False),
}
"""Options a run can train. A ``words`` prior is sampled once per render rule (RENDER_RULES): the
rule changes only how drawn words become codes, so one trained prior gives a row per rule."""


def step_cpu_seconds(overrides: dict, latent: int, K: int, batch: int, steps: int) -> float:
    """Median CPU seconds of one optimiser step of a fresh prior on random codes."""
    cfg = get_config("cpu", **overrides)
    prior = build_prior(cfg.replace(image_size=latent * cfg.downsample, codebook_size=K),
                        cfg.prior_cond_bins, code_vectors=torch.randn(K, cfg.code_dim))
    opt = torch.optim.Adam(prior.parameters(), 1e-3)
    x = torch.randint(0, K, (batch, latent, latent))
    prior.prepare(x)
    y = torch.randint(0, max(cfg.prior_cond_bins, 1), (batch,)) if cfg.prior_cond_bins else None
    times = []
    for _ in range(steps):
        t0 = time.process_time()
        loss = prior.training_loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.process_time() - t0)
    return float(sorted(times[1:])[len(times[1:]) // 2])


def run(args) -> None:
    name, overrides = args.option, OPTIONS[args.option]
    _, vcfg, _ = load_model(args.checkpoint)
    if args.minutes:   # wall clock, every core: what notebook 06 does
        per_step, steps, budget = None, 10 ** 9, dict(prior_max_minutes=args.minutes)
    else:
        torch.set_num_threads(1)
        per_step = step_cpu_seconds(overrides, vcfg.latent_size, vcfg.codebook_size, 16,
                                    args.calib_steps)
        steps = max(1, int(args.cpu_seconds / per_step))
        budget = dict(prior_max_minutes=0.0, num_threads=1)
    run_dir = Path(args.out) / name
    (run_dir / "prior").mkdir(parents=True, exist_ok=True)
    for f in Path(args.codes_from).glob("codes_*.pt") if args.codes_from else []:
        shutil.copy(f, run_dir / "prior" / f.name)   # same key: no re-encoding
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_prior(args.checkpoint, args.data_dir, run_dir, "cpu", verbose=True,
                      prior_epochs=1000, prior_max_steps=steps, prior_batch_size=16,
                      **budget, **overrides)
    train_cpu, train_wall = time.process_time() - c0, time.perf_counter() - t0
    vqvae, _, _ = load_model(args.checkpoint)
    real = load_real(args.data_dir, vcfg.image_size, args.out)
    renders = RENDER_RULES if overrides["prior_kind"] == "words" else (None,)
    for rule in renders:
        row = name if rule is None else f"{name} ({rule} render)"
        if rule is not None:
            res.prior.render = rule
        result = {"option": row, "overrides": overrides, "steps": res.metrics["steps"],
                  "budget": f"{args.minutes} min wall" if args.minutes else f"{args.cpu_seconds} CPU-s",
                  "step_cpu_seconds": per_step, "train_cpu_seconds": train_cpu,
                  "train_wall_seconds": train_wall, "test_bits": res.metrics["test_bits"],
                  "unigram_test_bits": res.metrics["unigram_test"], "by_temperature": {}}
        for T in args.temperatures:
            c1 = time.process_time()
            out = generate(res.prior, vqvae, args.n, T, seed=0)
            sample_cpu = time.process_time() - c1
            s = score_images(out["images"], real, n=args.n)  # 1-NN: leave one subject out
            torch.save(out["images"][:16], run_dir / f"samples_{rule or 'codes'}_T{T:g}.pt")
            result["by_temperature"][f"{T:g}"] = {"sample_cpu_seconds": sample_cpu, **s}
            print(row, T, json.dumps({k: s[k] for k in ("one_nn_shape", "one_nn_intensity")}),
                  flush=True)
        stem = name if rule is None else f"{name}_{rule}"
        (Path(args.out) / f"{stem}.json").write_text(json.dumps(result, indent=1))


def merge(args) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(Path(args.out).glob("*.json"))]
    dest = Path(__file__).with_name("prior_compare.json")
    dest.write_text(json.dumps({"budget_note": args.note, "results": rows}, indent=1) + "\n")
    print(generator_table(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--option", choices=sorted(OPTIONS), required=True)
    r.add_argument("--cpu-seconds", type=float, default=300.0,
                   help="equal CPU time, one thread (ignored with --minutes)")
    r.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget, every core")
    r.add_argument("--calib-steps", type=int, default=6)
    r.add_argument("--data-dir", default=None)
    r.add_argument("--codes-from", default=None, help="a prior/ folder holding codes_<split>.pt")
    r.add_argument("-n", type=int, default=64)
    r.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    r.add_argument("--out", required=True)
    m = sub.add_parser("merge")
    m.add_argument("--out", required=True)
    m.add_argument("--note", default="")
    args = p.parse_args()
    run(args) if args.cmd == "run" else merge(args)


if __name__ == "__main__":
    main()
