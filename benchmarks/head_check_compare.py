"""The head check on and off, side by side: same prior, same seeds, same first draws.

With the check off, ``generate`` keeps every first draw; with it on, the draws whose head outline
fails the check (``vqvae_lib.prior.head_check``) are redrawn. A seed fixes the first draws, so the
two sets differ only in the redrawn slices. Both are scored against the real test slices. A prior
saved before the check existed gets one fitted here, the way ``prior train`` fits it. Writes
``benchmarks/head_check.json``.

    python benchmarks/head_check_compare.py --run-dir runs/cpu [--seeds 0 1 2] [-n 64]
"""

from __future__ import annotations

from render_compare import arguments, mean_of, row, trained_run, write_report
from tqdm.auto import tqdm

from vqvae_lib.prior.codes import split_codes
from vqvae_lib.prior.fit import head_check_of
from vqvae_lib.prior.sample import generate
from vqvae_lib.prior.scoring import load_real, score_images
from vqvae_lib.prior.store import load_prior


def main() -> None:
    args = arguments(__doc__, "head_check.json")
    run, checkpoint, vqvae, cfg = trained_run(args.run_dir)
    prior, _ = load_prior(run / "prior" / "best.pt")
    fitted_here = prior.head_check is None
    if fitted_here:
        train = split_codes(vqvae, checkpoint, cfg, "train", args.data_dir, run, "cpu")["codes"]
        prior.head_check = head_check_of(vqvae, train, "cpu")
    real = load_real(args.data_dir, cfg.image_size, run, verbose=False)
    rows = []
    for seed in tqdm(args.seeds, desc="seeds"):
        for on in (False, True):
            out = generate(prior, vqvae, args.n, 1.0, seed=seed, head_check=on)
            rows.append({"head_check": on, "seed": seed, "sample_seconds": round(out["seconds"], 2),
                         **({"first_failed": round(out["head_check"]["first_failed"], 3),
                             "still_failing": out["head_check"]["still_failing"]} if on else {}),
                         **row(score_images(out["images"], real, n=args.n))})
    means = {("on" if on else "off"): mean_of([r for r in rows if r["head_check"] == on])
             for on in (False, True)}
    means["on"]["first_failed"] = round(
        sum(r["first_failed"] for r in rows if r["head_check"]) / len(args.seeds), 3)
    write_report(args, __doc__, run, rows, means, check=prior.head_check,
                 check_fitted_by_this_script=fitted_here)


if __name__ == "__main__":
    main()
