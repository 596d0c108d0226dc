"""``python -m vqvae_lib.prior train|sample|score``: fit a prior, write samples as files, score a
folder of slices.

    python -m vqvae_lib.prior train  --checkpoint runs/cpu/checkpoints/best.pt [--prior_kind transformer ...]
    python -m vqvae_lib.prior sample --prior runs/cpu/prior/best.pt -n 64 --out-dir samples/ [--seed 0] [--temperature 1.0]
    python -m vqvae_lib.prior score  samples/ [--split test] [--data-dir DIR] [--size 128] [--out scores.json]

``sample`` writes ``sample_000.png`` ... (8-bit grey) and ``codes.npy`` (the code grids); it
redraws broken heads when the prior carries a head check (``--no-head-check``: keep them).
``score`` compares every PNG of a folder with the real slices (generation metrics with their
floors, see :mod:`vqvae_lib.prior.generation`) and prints JSON. A missing or damaged checkpoint
or data folder is reported in one line (``error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..checkpoint import load_model
from ..common import atomic_write_text
from ..data.slices import load_split
from ..errors import CheckpointError, DataError, cli
from ..runtime import pick_device
from .fit import json_dumps, train_prior
from .sample import generate, write_samples
from .scoring import load_real, read_folder, score_images
from .store import load_prior

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m vqvae_lib.prior``."""
    p = argparse.ArgumentParser(prog="python -m vqvae_lib.prior", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit a new prior; extra --field value pairs override the config")
    t.add_argument("--checkpoint", required=True, help="VQ-VAE checkpoint, runs/<preset>/checkpoints/best.pt")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--run-dir", default=None, help="default: the folder above checkpoints/")
    t.add_argument("--device", default=None)
    s = sub.add_parser("sample", help="sample slices; write PNGs and codes.npy")
    s.add_argument("--prior", required=True, help="runs/<preset>/prior/best.pt")
    s.add_argument("-n", type=int, default=16)
    s.add_argument("--out-dir", required=True, help="folder for sample_000.png ... and codes.npy")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--label", type=int, default=None,
                   help="slice-position class (conditioned priors; default: cycle through all)")
    s.add_argument("--checkpoint", default=None, help="VQ-VAE to decode with (default: the one it was trained on)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--no-head-check", action="store_true",
                   help="keep every first draw, also broken heads (default: redraw them)")
    c = sub.add_parser("score", help="generation metrics of a folder of PNG slices against a split")
    c.add_argument("folder", help="folder of PNG slices (e.g. what `sample --out-dir` wrote)")
    c.add_argument("--split", default="test", choices=("test", "validate"),
                   help="real slices to compare with")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--size", type=int, default=128, help="side the slices are compared at")
    c.add_argument("-n", type=int, default=64, help="slices per side")
    c.add_argument("--run-dir", default=None, help="caches the tissue segmenter under <run-dir>/prior/")
    c.add_argument("--out", default=None, help="also write the JSON here")
    return p


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


def _sample(args) -> None:
    device = torch.device(args.device) if args.device else pick_device()
    prior, ckpt = load_prior(args.prior, device)
    vq_path = Path(args.checkpoint or ckpt["extra"]["vqvae_checkpoint"])
    vqvae, _, _ = load_model(vq_path, device)
    out = generate(prior, vqvae, args.n, args.temperature, labels=args.label, seed=args.seed,
                   device=device, head_check=not args.no_head_check)
    paths = write_samples(out["images"], out["codes"], args.out_dir)
    check = out["head_check"]
    redrawn = (f" ({check['first_failed']:.0%} of the first draws failed the head check and "
               f"were redrawn)" if check else "")
    print(f"sampled {args.n} slices in {out['seconds']:.1f} s{redrawn}; wrote {len(paths)} PNGs "
          f"and codes.npy to {args.out_dir}")


def _score(args) -> None:
    images = read_folder(args.folder, args.size)
    real = load_real(args.data_dir, args.size, args.run_dir, verbose=False)
    if args.split != "test":
        real.test = load_split(args.split, args.data_dir, size=args.size, masks=False,
                               verbose=False).tensors()
    text = json_dumps({"folder": str(args.folder), "split": args.split,
                       **score_images(images, real, n=min(args.n, len(images)))})
    if args.out:
        atomic_write_text(args.out, text)
    print(text, end="")


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
    {"train": lambda: _train(args, rest, p), "sample": lambda: _sample(args),
     "score": lambda: _score(args)}[args.command]()
    return 0
