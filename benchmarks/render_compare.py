"""The render rules of one trained patch-word prior, side by side: same prior, same seeds.

For every rule of ``vqvae_lib.prior.words.RENDER_RULES`` and every seed, draw the same word grids
(the words are drawn before the rendering, so a seed fixes them), render them by that rule, decode
and score them against the real test slices (``vqvae_lib.prior.generation``). The head check is
off: a redraw would give each rule different words. Writes
``benchmarks/render_rules.json``.

    python benchmarks/render_compare.py --run-dir runs/cpu [--seeds 0 1 2] [-n 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vqvae_lib.checkpoint import load_model
from vqvae_lib.prior.sample import generate
from vqvae_lib.prior.scoring import load_real, score_images
from vqvae_lib.prior.store import load_prior
from vqvae_lib.prior.words import RENDER_RULES

TISSUES = ("background", "CSF", "grey matter", "white matter")


def row(scores: dict) -> dict:
    """The headline numbers of one scored set (tissue W1 as a multiple of its floor)."""
    out = {k: round(scores[k]["generated"], 3) for k in
           ("one_nn_shape", "one_nn_intensity", "precision", "recall")}
    out["tissue_w1_over_floor"] = {t: round(scores["tissue_w1"][t]["generated"]
                                            / scores["tissue_w1"][t]["floor"], 2) for t in TISSUES}
    out["memorisation_share"] = round(scores["memorisation"]["share_closer_than_any_test"], 3)
    return out


def mean_of(rows: list[dict]) -> dict:
    """The mean of :func:`row` results (e.g. over seeds)."""
    out = {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in
           ("one_nn_shape", "one_nn_intensity", "precision", "recall")}
    out["tissue_w1_over_floor"] = {
        t: round(sum(r["tissue_w1_over_floor"][t] for r in rows) / len(rows), 2) for t in TISSUES}
    return out


def machine() -> dict:
    """Where a benchmark ran."""
    return {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def arguments(doc: str, out_name: str, seeds: bool = True, extra=None) -> argparse.Namespace:
    """The command line the prior benchmarks share: ``--run-dir``, ``--data-dir``, ``--seeds``
    (when ``seeds``), ``-n`` and ``--out`` (default ``benchmarks/<out_name>``); ``extra``, a
    function of the parser, adds a script's own options."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--run-dir", default="runs/cpu")
    p.add_argument("--data-dir", default=None)
    if seeds:
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("-n", type=int, default=64, help="samples per seed (and real slices)")
    p.add_argument("--out", default=str(Path(__file__).with_name(out_name)))
    if extra is not None:
        extra(p)
    return p.parse_args()


def trained_run(run_dir) -> tuple[Path, Path, torch.nn.Module, object]:
    """``(run folder, VQ-VAE checkpoint, VQ-VAE, its config)`` of a finished ``make run-all``."""
    run = Path(run_dir)
    checkpoint = run / "checkpoints" / "best.pt"
    vqvae, cfg, _ = load_model(checkpoint)
    return run, checkpoint, vqvae, cfg


def write_report(args, doc: str, run: Path, rows: list[dict], means: dict | None = None,
                 **context) -> None:
    """Write a benchmark's JSON to ``args.out`` (what, where, when, ``context``, the rows and
    their means over seeds) and print the means (or the rows)."""
    report = {"what": doc.splitlines()[0], "run_dir": str(run), **context, "machine": machine(),
              "date": time.strftime("%Y-%m-%d"), "n": args.n,
              **({"seeds": args.seeds, "mean_over_seeds": means} if means is not None else {}),
              "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(means if means is not None else rows, indent=1))


def main() -> None:
    args = arguments(__doc__, "render_rules.json")
    run, _, vqvae, cfg = trained_run(args.run_dir)
    prior, _ = load_prior(run / "prior" / "best.pt")
    if not hasattr(prior, "render"):
        raise SystemExit(f"{run}/prior/best.pt is not a patch-word prior (prior_kind='words')")
    real = load_real(args.data_dir, cfg.image_size, run, verbose=False)
    rows = []
    for rule in tqdm(RENDER_RULES, desc="render rules"):
        prior.render = rule
        for seed in args.seeds:
            t0 = time.perf_counter()
            out = generate(prior, vqvae, args.n, 1.0, seed=seed, head_check=False)
            rows.append({"render": rule, "seed": seed, "sample_seconds": round(out["seconds"], 2),
                         **row(score_images(out["images"], real, n=args.n)),
                         "seconds": round(time.perf_counter() - t0, 1)})
    means = {rule: mean_of([r for r in rows if r["render"] == rule]) for rule in RENDER_RULES}
    metrics = run / "prior" / "metrics.json"
    write_report(args, __doc__, run, rows, means,
                 prior_test_bits=json.loads(metrics.read_text()).get("test_bits")
                 if metrics.is_file() else None)


if __name__ == "__main__":
    main()
