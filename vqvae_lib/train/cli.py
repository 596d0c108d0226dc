"""``python -m vqvae_lib.train``: the command line of the trainer (also under ``torchrun``).

    python -m vqvae_lib.train --preset cpu --epochs 5 --lr 1e-3   # any Config field: --key value
    python -m vqvae_lib.train --preset cpu --resume               # continue from last.pt

Exit codes: 0 done (or stopped by the time budget), 130 interrupted (``last.pt`` saved; continue
with ``--resume``), 2 a mistake or an OS error (one line on stderr; ``--debug`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import os

from ..config import get_config
from ..errors import cli
from ..model.factory import check_quantizer
from .distributed import shutdown
from .run import train

__all__ = ["main", "parse_cli"]


def parse_cli(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    """Split the command line into the trainer's own options and ``--field value`` overrides.

    Args:
        argv: the arguments (without the program name).
    """
    p = argparse.ArgumentParser(
        prog="python -m vqvae_lib.train", description="Train the VQ-VAE (any Config field: --key value).",
        epilog="examples: --preset cpu --epochs 5 | --preset gpu --batch-size 128 --compile true | "
               "torchrun --nproc_per_node=2 -m vqvae_lib.train --preset gpu. --debug: full tracebacks.")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoints/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars, one line per epoch")
    args, rest = p.parse_known_args(argv)
    overrides, i = {}, 0
    while i < len(rest):
        tok = rest[i]
        if not tok.startswith("--"):
            p.error(f"unexpected argument {tok!r}; overrides look like --key value")
        if "=" in tok:
            k, v = tok[2:].split("=", 1)
            i += 1
        elif i + 1 < len(rest):
            k, v = tok[2:], rest[i + 1]
            i += 2
        else:
            p.error(f"{tok} needs a value")
        overrides[k.replace("-", "_")] = v
    return args, overrides


@cli
def main(argv: list[str]) -> int:
    """Train from the command line; see the module docstring for the exit codes.

    Args:
        argv: the arguments (``--debug`` is handled by :func:`vqvae_lib.errors.cli`).
    """
    args, overrides = parse_cli(argv)
    if args.quiet:
        os.environ["VQVAE_QUIET"] = "1"
    cfg = check_quantizer(get_config(args.preset, **overrides))   # a ConfigError names a bad field
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir)) if args.data_dir else None
    run_dir = os.path.abspath(os.path.expanduser(args.run_dir)) if args.run_dir else None
    try:
        result = train(cfg, data_dir=data_dir, run_dir=run_dir, resume=args.resume)
    finally:
        shutdown()
    return 0 if result.stopped != "interrupted" else 130
