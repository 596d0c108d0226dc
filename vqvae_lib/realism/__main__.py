"""``python -m vqvae_lib.realism FOLDER``: how real is a folder of PNG slices?

    python -m vqvae_lib.realism samples/ [--split test] [--data-dir DIR] [--size 128] [-n 64]
                                         [--run-dir runs/cpu] [--out scores.json]

Compares every PNG of ``FOLDER`` (for instance what ``python -m vqvae_lib.prior sample`` wrote, or
slices from any other generator) with the real slices of a held-out split: the realism metrics of
notebook 06, each beside its floor (:func:`vqvae_lib.realism.realism_scores`), printed as JSON.
Options are checked before any work; a bad value or an unreadable folder is reported in one line
(``error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..common import atomic_write_text
from ..config_checks import MAX_IMAGE_SIZE
from ..errors import DataError, cli
from .scoring import load_real, read_folder, realism_scores

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m vqvae_lib.realism``."""
    p = argparse.ArgumentParser(prog="python -m vqvae_lib.realism", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="folder of PNG slices (e.g. what `prior sample --out-dir` wrote)")
    p.add_argument("--split", default="test", choices=("test", "validate"),
                   help="real slices to compare with")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--size", type=int, default=128,
                   help=f"side the slices are compared at (16..{MAX_IMAGE_SIZE})")
    p.add_argument("-n", type=int, default=64, help="slices per side (>= 2)")
    p.add_argument("--run-dir", default=None,
                   help="caches the tissue segmenter under <run-dir>/prior/")
    p.add_argument("--out", default=None, help="also write the JSON here")
    return p


@cli
def main(argv=None) -> int:
    """Score a folder; returns the exit status (2: bad input or an OS error, reported in one line
    by the ``errors.cli`` boundary; ``--debug`` shows the traceback).

    Args:
        argv: arguments (default: ``sys.argv[1:]``).
    """
    p = _parser()
    args = p.parse_args(argv)
    if args.n < 2:
        p.error(f"-n {args.n}: at least 2 slices per side are needed for the two-sample tests")
    if not 16 <= args.size <= MAX_IMAGE_SIZE:
        p.error(f"--size {args.size}: must be in 16..{MAX_IMAGE_SIZE} pixels")
    images = read_folder(args.folder, args.size)
    if len(images) < 2:
        raise DataError(f"{args.folder} holds {len(images)} PNG slice; scoring needs at least 2.")
    real = load_real(args.data_dir, args.size, args.run_dir, verbose=False, split=args.split)
    text = json.dumps({"folder": str(args.folder), "split": args.split,
                       **realism_scores(images, real, n=min(args.n, len(images)))}, indent=1) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
