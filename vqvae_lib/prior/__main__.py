"""``python -m vqvae_lib.prior train|sample``: fit a prior, write samples as files.

    python -m vqvae_lib.prior train  --checkpoint runs/cpu/checkpoints/best.pt
                                     [--prior_kind transformer ...]
    python -m vqvae_lib.prior sample --prior runs/cpu/prior/best.pt -n 64 --out-dir samples/
                                     [--seed 0] [--temperature 1.0]

``sample`` writes ``sample_000.png`` ... (8-bit grey), ``codes.npy`` (the code grids) and
``samples.json`` (what made them), replacing an earlier sampling in that folder as a whole; it
decodes with the VQ-VAE the prior was fitted to and refuses another one. How real the samples
are: ``python -m vqvae_lib.realism samples/``. Every option is checked before any work starts; a
bad value, a missing or damaged file is reported in one line (``error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config_checks import DEVICES, check_device
from ..errors import CheckpointError, ConfigError, DataError, cli
from ..runtime import pick_device
from .draw import sampling_temperatures
from .fit import train_prior
from .sample import check_labels, generate, write_samples
from .store import load_prior, vqvae_for_prior

__all__ = ["main", "parser"]

MAX_SAMPLES = 4096


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m vqvae_lib.prior``."""
    p = argparse.ArgumentParser(prog="python -m vqvae_lib.prior", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train",
                       help="fit a new prior; extra --field value pairs override the config")
    t.add_argument("--checkpoint", required=True,
                   help="VQ-VAE checkpoint, runs/<preset>/checkpoints/best.pt")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--run-dir", default=None, help="default: the folder above checkpoints/")
    t.add_argument("--device", default=None)
    s = sub.add_parser("sample", help="sample slices; write PNGs, codes.npy and samples.json")
    s.add_argument("--prior", required=True, help="runs/<preset>/prior/best.pt")
    s.add_argument("-n", type=int, default=16, help=f"slices to draw (1..{MAX_SAMPLES})")
    s.add_argument("--out-dir", required=True,
                   help="folder for sample_000.png ... (replaced whole)")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="finite, >= 0 (0: most likely code)")
    s.add_argument("--label", type=int, default=None,
                   help="slice-position class (conditioned priors; default: cycle through all)")
    s.add_argument("--checkpoint", default=None,
                   help="VQ-VAE to decode with (default: the one the prior was fitted to; "
                        "another is refused)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    return p


def check_arguments(args, p: argparse.ArgumentParser) -> None:
    """Refuse a bad option before any work, in one line naming the option, value and range."""
    if args.command == "sample":
        if not 1 <= args.n <= MAX_SAMPLES:
            p.error(f"-n {args.n}: the number of samples must be in 1..{MAX_SAMPLES}")
        try:
            sampling_temperatures(args.temperature, 1, "cpu")
        except ValueError as e:
            p.error(f"--temperature {args.temperature}: {e}")
    try:
        check_device(getattr(args, "device", None) or "auto")
    except ConfigError:
        p.error(f"--device {args.device}: must be {DEVICES}")


def _train(args, rest, p) -> None:
    if len(rest) % 2 or any(not k.startswith("--") for k in rest[::2]):
        p.error(f"expected --field value pairs after the options, got {rest}")
    overrides = {k[2:].replace("-", "_"): v for k, v in zip(rest[::2], rest[1::2], strict=True)}
    try:
        train_prior(args.checkpoint, args.data_dir, args.run_dir, args.device, **overrides)
    except (CheckpointError, DataError):
        raise                # reported by main in one line
    except ValueError as e:  # an unknown or malformed config field
        p.error(str(e))


def _sample(args, p) -> None:
    device = pick_device(args.device or "auto")
    prior, ckpt = load_prior(args.prior, device)
    try:
        check_labels(prior, args.label, args.n)
    except ValueError as e:
        p.error(f"--label {args.label}: {e}")
    vqvae, vq_path = vqvae_for_prior(args.prior, ckpt, args.checkpoint, device)
    out = generate(prior, vqvae, args.n, args.temperature, labels=args.label, seed=args.seed,
                   device=device)
    about = {"prior": str(Path(args.prior).resolve()), "vqvae": str(vq_path.resolve()),
             "vqvae_sha1": ckpt["extra"].get("vqvae_sha1"), "seed": args.seed,
             "temperature": args.temperature, "label": args.label}
    paths = write_samples(out["images"], out["codes"], args.out_dir, about)
    print(f"sampled {args.n} slices in {out['seconds']:.1f} s; wrote {len(paths)} PNGs, codes.npy "
          f"and samples.json to {args.out_dir}")


@cli
def main(argv=None) -> int:
    """Run the command line; returns the exit status (2: bad input or an OS error, reported in
    one line by the ``errors.cli`` boundary; ``--debug`` shows the traceback).

    Args:
        argv: arguments (default: ``sys.argv[1:]``).
    """
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command != "train":
        p.error(f"unrecognised arguments: {rest}")
    check_arguments(args, p)
    {"train": lambda: _train(args, rest, p), "sample": lambda: _sample(args, p)}[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
