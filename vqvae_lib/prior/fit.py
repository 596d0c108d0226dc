"""Fit the PixelCNN prior to the code grids of a trained VQ-VAE, measure it, and sample from it.

    python -m vqvae_lib.prior train  --checkpoint runs/cpu/checkpoints/best.pt [--prior_epochs 5 ...]
    python -m vqvae_lib.prior sample --prior runs/cpu/prior/best.pt -n 16 --temperature 1.0

The VQ-VAE is frozen: every slice of a split is encoded once and the grids are cached in
``<run_dir>/prior/codes_<split>.pt`` (tied to the checkpoint's content hash, so a retrained
VQ-VAE invalidates them). The prior then trains on integer grids only -- no images, no decoder --
which is what makes a two-stage model cheap. Its quality is the test negative log-likelihood in
**bits per latent cell**, to compare with ``log2 K`` (every code equally likely) and with the
entropy of the code histogram (codes independent of their neighbours).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import find_checkpoint, load_checkpoint, load_model, save_checkpoint
from ..common import evenly_spaced, quiet
from ..config import PRESETS, Config, get_config
from ..errors import CheckpointError
from ..metrics import code_entropy
from ..model.inference import decode, encode
from ..runlock import run_lock
from ..runtime import pick_device, seed_everything
from .model import GatedPixelCNN, build_prior


def _file_hash(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def split_codes(vqvae, checkpoint: Path, cfg: Config, split: str, data_dir=None, run_dir=None,
                device="cpu", refresh: bool = False) -> dict:
    """``{"codes": (N, h, w) long, "slice_index": (N,) long}`` for one split, cached per checkpoint."""
    from ..data.slices import load_split, resolve_data_dir

    limit = cfg.max_train_images if split == "train" else cfg.max_eval_images
    cache = Path(run_dir) / "prior" / f"codes_{split}.pt" if run_dir else None
    key = f"{_file_hash(checkpoint)}:{resolve_data_dir(data_dir)[0]}:{limit}:{cfg.image_size}"
    if cache is not None and cache.is_file() and not refresh:
        blob = torch.load(cache, weights_only=True)
        if blob.get("key") == key:
            return {"codes": blob["codes"].long(), "slice_index": blob["slice_index"].long()}
    slices = load_split(split, data_dir, size=cfg.image_size, masks=False, verbose=False)
    keep = evenly_spaced(len(slices.images), limit)
    images = slices.tensors()[torch.as_tensor(keep)]  # (N, 1, H, W)
    codes = encode(vqvae, images, device=device)
    blob = {"key": key, "codes": codes.to(torch.int16),
            "slice_index": torch.as_tensor(np.asarray(slices.slice_index)[keep], dtype=torch.long)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, cache)
    return {"codes": codes, "slice_index": blob["slice_index"]}


@torch.no_grad()
def start_at_unigram(prior: GatedPixelCNN, train_codes: torch.Tensor) -> None:
    """Initialise the output layer so the untrained prior predicts the training code histogram.

    Zero weights and log-frequency biases: training starts at the unigram baseline (instead of
    several bits above it) and spends its steps on what only context can explain.
    """
    counts = torch.bincount(train_codes.reshape(-1), minlength=prior.num_codes).float() + 1.0
    last = prior.head[-1]
    last.weight.zero_()
    last.bias.copy_((counts / counts.sum()).log())


def slice_bins(slice_index: torch.Tensor, bins: int, lo: int, hi: int) -> torch.Tensor:
    """Position of each slice in the brain as one of ``bins`` classes (conditioning labels)."""
    frac = (slice_index.float() - lo) / max(hi - lo + 1, 1)
    return (frac * bins).long().clamp(0, bins - 1)


def baseline_bits(train_codes: torch.Tensor, test_codes: torch.Tensor, K: int) -> dict[str, float]:
    """Context-free baselines in bits per cell: uniform (log2 K), the training histogram's entropy,
    and the cross-entropy of the test codes under that histogram (add-one smoothed)."""
    counts = torch.bincount(train_codes.reshape(-1), minlength=K).double() + 1.0
    logp = (counts / counts.sum()).log2()
    return {"uniform": math.log2(K), "unigram_entropy": code_entropy(train_codes, K),
            "unigram_test": float(-logp[test_codes.reshape(-1)].mean())}


@torch.no_grad()
def evaluate_bits(prior: GatedPixelCNN, codes: torch.Tensor, labels=None, batch_size: int = 64,
                  device="cpu") -> float:
    """Mean negative log-likelihood of ``codes`` (N, h, w) in bits per latent cell."""
    prior.eval()
    total = 0.0
    for i in range(0, len(codes), batch_size):
        y = None if labels is None else labels[i:i + batch_size].to(device)
        total += float(prior.nll_bits(codes[i:i + batch_size].to(device), y).sum())
    return total / max(len(codes), 1)


@dataclass
class PriorRun:
    """What ``train_prior`` returns: the best prior, its curves and scores, and where they live."""
    prior: GatedPixelCNN
    cfg: Config
    history: dict
    metrics: dict
    best_path: Path
    codes: dict = field(repr=False, default_factory=dict)  # split -> {"codes", "slice_index"}


def _save(path, prior, cfg, opt, history, epoch, step, best, extra):
    save_checkpoint(path, model=prior, cfg=cfg, optimizer=opt, history=history["val"],
                    epoch=epoch, step=step, best_metric=best,
                    extra={**extra, "kind": "pixelcnn_prior", "hparams": prior.hparams,
                           "train_curve": history["train"]})


def prior_fields(preset: str) -> dict:
    """The ``prior_*`` fields of a preset as it is defined *now* (a VQ-VAE checkpoint stores the
    config it was trained with; the prior's settings should follow the current preset)."""
    if preset not in PRESETS:
        return {}
    cfg = get_config(preset)
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name.startswith("prior_")}


def train_prior(checkpoint, data_dir=None, run_dir=None, device=None, verbose: bool = True,
                **overrides) -> PriorRun:
    """Train the prior on the codes of ``checkpoint`` (a VQ-VAE best.pt); writes ``prior/``.

    Holds the run folder's lock (:mod:`vqvae_lib.runlock`): one writer per run folder.
    Hyper-parameters: see :func:`_train_prior`.
    """
    lock_dir = Path(run_dir) if run_dir else Path(checkpoint).resolve().parent.parent
    with run_lock(lock_dir, "prior training"):
        return _train_prior(checkpoint, data_dir, run_dir, device, verbose, **overrides)


def _train_prior(checkpoint, data_dir=None, run_dir=None, device=None, verbose: bool = True,
                 **overrides) -> PriorRun:
    """Train the prior on the codes of ``checkpoint`` (a VQ-VAE best.pt); writes ``prior/``.

    Hyper-parameters: ``prior_channels``, ``prior_layers``, ``prior_epochs``, ``prior_lr``,
    ``prior_batch_size``, ``prior_max_minutes`` and ``prior_cond_bins`` (0 = unconditional),
    taken from the current definition of the checkpoint's preset unless given in ``overrides``
    (everything else, e.g. image size and caps, from the checkpoint). The learning rate follows a
    cosine from ``prior_lr`` to 0 over the run, whichever of epochs or minutes ends it first.
    """
    checkpoint = Path(checkpoint)
    vqvae, cfg, _ = load_model(checkpoint, device="cpu")
    cfg = cfg.replace(**{**prior_fields(cfg.preset), **overrides})
    device = torch.device(device) if device else pick_device(cfg.device)
    run_dir = Path(run_dir) if run_dir else checkpoint.resolve().parent.parent
    out = run_dir / "prior"
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    vqvae.to(device)
    codes = {s: split_codes(vqvae, checkpoint, cfg, s, data_dir, run_dir, device)
             for s in ("train", "validate", "test")}
    train_codes = codes["train"]["codes"]
    bins = cfg.prior_cond_bins
    lo, hi = int(codes["train"]["slice_index"].min()), int(codes["train"]["slice_index"].max())
    labels = {s: slice_bins(c["slice_index"], bins, lo, hi) if bins else None for s, c in codes.items()}
    cond = {"bins": bins, "lo": lo, "hi": hi}

    prior = build_prior(cfg, n_classes=bins)
    start_at_unigram(prior, train_codes)
    prior.to(device)
    opt = torch.optim.Adam(prior.parameters(), lr=cfg.prior_lr)
    n, bs = len(train_codes), cfg.prior_batch_size
    steps_per_epoch = max(1, math.ceil(n / bs))
    total_steps, budget = cfg.prior_epochs * steps_per_epoch, cfg.prior_max_minutes * 60
    amp = device.type == "cuda" and cfg.amp
    extra = {"vqvae_checkpoint": str(checkpoint), "latent_shape": list(train_codes.shape[1:]),
             "cond": cond}
    history = {"train": [], "val": []}  # train: every few steps; val: every epoch
    best, step, t0, done = float("inf"), 0, time.perf_counter(), False
    if verbose:
        print(f"prior: {sum(p.numel() for p in prior.parameters()) / 1e6:.2f} M parameters, "
              f"{n} training grids {tuple(train_codes.shape[1:])}, K={cfg.codebook_size}, "
              f"{cfg.prior_epochs} epochs x {steps_per_epoch} steps on {device}")
    from tqdm.auto import tqdm
    for epoch in range(1, cfg.prior_epochs + 1):
        prior.train()
        order = torch.randperm(n)
        running = []
        bar = tqdm(range(steps_per_epoch), desc=f"prior epoch {epoch}", leave=False,
                   disable=quiet() or not verbose)
        for b in bar:
            idx = order[b * bs:(b + 1) * bs]
            x = train_codes[idx].to(device, non_blocking=True)  # (B, h, w)
            y = None if labels["train"] is None else labels["train"][idx].to(device)
            progress = max(step / total_steps, (time.perf_counter() - t0) / budget if budget else 0)
            for g in opt.param_groups:
                g["lr"] = cfg.prior_lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = prior.nll_bits(x, y).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
            opt.step()
            step += 1
            running.append(loss.item())
            if step % 5 == 0 or b == steps_per_epoch - 1:
                history["train"].append({"step": step, "bits": float(np.mean(running[-5:]))})
                bar.set_postfix(bits=f"{history['train'][-1]['bits']:.3f}")
            if budget and time.perf_counter() - t0 > budget:
                done = True
                break
        val = evaluate_bits(prior, codes["validate"]["codes"], labels["validate"], device=device)
        history["val"].append({"epoch": epoch, "step": step, "train_bits": float(np.mean(running)),
                               "val_bits": val, "seconds": time.perf_counter() - t0})
        if verbose:
            print(f"prior epoch {epoch}: train {np.mean(running):.3f} | validation {val:.3f} "
                  f"bits/cell | {time.perf_counter() - t0:.0f} s", flush=True)
        if val < best:
            best = val
            _save(out / "best.pt", prior, cfg, None, history, epoch, step, best, extra)
        _save(out / "last.pt", prior, cfg, opt, history, epoch, step, best, extra)
        if done:
            if verbose:
                print(f"prior: stopped by the {cfg.prior_max_minutes} min budget (prior_max_minutes)")
            break

    prior, _ = load_prior(out / "best.pt", device)
    metrics = {"test_bits": evaluate_bits(prior, codes["test"]["codes"], labels["test"], device=device),
               **baseline_bits(train_codes, codes["test"]["codes"], cfg.codebook_size),
               "best_val_bits": best, "steps": step, "minutes": (time.perf_counter() - t0) / 60}
    (out / "history.json").write_text(json.dumps(history, indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if verbose:
        print(f"prior test NLL {metrics['test_bits']:.3f} bits/cell (uniform {metrics['uniform']:.2f}, "
              f"unigram {metrics['unigram_test']:.3f}); saved {out / 'best.pt'}")
    return PriorRun(prior, cfg, history, metrics, out / "best.pt", codes)


def load_prior(path, device="cpu") -> tuple[GatedPixelCNN, dict]:
    """Rebuild a prior from ``prior/best.pt`` -> (prior in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No prior checkpoint at {path}. Train one first: "
                              f"`python -m vqvae_lib.prior train --checkpoint runs/<preset>/checkpoints/best.pt` "
                              f"or run notebooks/06_prior_and_generation.ipynb.")
    ckpt = load_checkpoint(path)
    extra = ckpt.get("extra", {})
    if extra.get("kind") != "pixelcnn_prior":
        raise CheckpointError(f"{path} is not a prior checkpoint (it looks like a VQ-VAE one); "
                              f"pass the file in runs/<preset>/prior/, e.g. prior/best.pt.")
    prior = GatedPixelCNN(**extra["hparams"])
    prior.load_state_dict(ckpt["model"])
    return prior.to(device).eval(), ckpt


def find_vqvae_checkpoint(run_dir) -> Path:
    """``<run_dir>/checkpoints/best.pt``, or a CheckpointError saying how to make it."""
    return find_checkpoint(run_dir, "best.pt", needed_for="the prior is fitted to its codes")


def train_or_load_prior(checkpoint, data_dir=None, run_dir=None, device=None, retrain: bool = True,
                        verbose: bool = True, **overrides) -> PriorRun:
    """Train the prior, or (``retrain=False``) reload ``<run_dir>/prior/best.pt`` if it exists and
    was fitted to this same ``checkpoint``. Either way the result carries history and metrics."""
    checkpoint = Path(checkpoint)
    run_dir = Path(run_dir) if run_dir else checkpoint.resolve().parent.parent
    best = run_dir / "prior" / "best.pt"
    metrics_file = run_dir / "prior" / "metrics.json"
    if not retrain and best.is_file() and metrics_file.is_file():
        prior, ckpt = load_prior(best, device or "cpu")
        if Path(ckpt["extra"]["vqvae_checkpoint"]).resolve() == checkpoint.resolve():
            cfg = Config.from_dict(ckpt["config"])
            vqvae, _, _ = load_model(checkpoint, device or "cpu")
            codes = {s: split_codes(vqvae, checkpoint, cfg, s, data_dir, run_dir, device or "cpu")
                     for s in ("train", "validate", "test")}
            history = {"train": ckpt["extra"]["train_curve"], "val": ckpt["history"]}
            if verbose:
                print(f"loaded the prior from {best} (retrain_prior=True trains a new one)")
            return PriorRun(prior, cfg, history, json.loads(metrics_file.read_text()), best, codes)
        if verbose:
            print(f"{best} was fitted to another VQ-VAE checkpoint: training a new prior")
    return train_prior(checkpoint, data_dir, run_dir, device, verbose, **overrides)


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, chunk: int = 512):
    """For each query image (n, 1, H, W) the closest reference (N, 1, H, W) by pixel MSE.
    Returns (indices (n,), mse (n,))."""
    q = queries.flatten(1).float()  # (n, P)
    best_d = torch.full((len(q),), float("inf"))
    best_i = torch.zeros(len(q), dtype=torch.long)
    for s in range(0, len(references), chunk):
        r = references[s:s + chunk].flatten(1).float()  # (c, P)
        d = (q.pow(2).sum(1, keepdim=True) - 2 * q @ r.T + r.pow(2).sum(1)) / q.shape[1]  # (n, c)
        d_min, i_min = d.min(1)
        better = d_min < best_d
        best_d, best_i = torch.where(better, d_min, best_d), torch.where(better, i_min + s, best_i)
    return best_i, best_d.clamp_min(0)


def novelty(vqvae, images: torch.Tensor, codes: torch.Tensor, train_images: torch.Tensor,
            device="cpu") -> dict[str, torch.Tensor]:
    """How far each image (N, 1, H, W) with codes (N, h, w) is from the training split.

    ``index``/``mse``: its nearest training slice by pixel MSE; ``shared``: the fraction of latent
    cells whose code equals that neighbour's. Run it on real test slices too: they are new by
    construction, so their numbers say what "not a copy" looks like (background codes alone make
    any two slices share a good part of their grid).
    """
    index, mse = nearest_neighbours(images, train_images)
    nn_codes = encode(vqvae, train_images[index], device=device)
    shared = (nn_codes == codes.cpu()).float().flatten(1).mean(1)
    return {"index": index, "mse": mse, "shared": shared}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m vqvae_lib.prior", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit the prior; extra --field value pairs override the config")
    t.add_argument("--checkpoint", required=True, help="VQ-VAE checkpoint, runs/<preset>/checkpoints/best.pt")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--run-dir", default=None, help="default: the folder above checkpoints/")
    t.add_argument("--device", default=None)
    s = sub.add_parser("sample", help="sample code grids, decode them, save a PNG grid")
    s.add_argument("--prior", required=True, help="runs/<preset>/prior/best.pt")
    s.add_argument("-n", type=int, default=16)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--label", type=int, default=None, help="slice-position class (conditional priors)")
    s.add_argument("--checkpoint", default=None, help="VQ-VAE to decode with (default: the one it was trained on)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="PNG path (default runs/<preset>/figures/prior_samples_T<t>.png)")
    s.add_argument("--device", default=None)
    args, rest = p.parse_known_args(argv)
    if args.command == "train":
        if len(rest) % 2 or any(not k.startswith("--") for k in rest[::2]):
            p.error(f"expected --field value pairs after the options, got {rest}")
        overrides = {k[2:].replace("-", "_"): v for k, v in zip(rest[::2], rest[1::2], strict=True)}
        try:
            train_prior(args.checkpoint, args.data_dir, args.run_dir, args.device, **overrides)
        except ValueError as e:
            p.error(str(e))
        return
    if rest:
        p.error(f"unrecognised arguments: {rest}")
    from .figures import save_image_grid

    device = torch.device(args.device) if args.device else pick_device()
    prior, ckpt = load_prior(args.prior, device)
    vq_path = Path(args.checkpoint or ckpt["extra"]["vqvae_checkpoint"])
    vqvae, _, _ = load_model(vq_path, device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    t0 = time.perf_counter()
    codes = prior.sample(args.n, tuple(ckpt["extra"]["latent_shape"]), args.temperature,
                         y=args.label, generator=gen, progress=not quiet())
    images = decode(vqvae, codes, device=device)
    out = Path(args.out) if args.out else (Path(args.prior).resolve().parent.parent / "figures"
                                          / f"prior_samples_T{args.temperature:g}.png")
    save_image_grid(images, out, title=f"{args.n} samples from the prior, temperature {args.temperature:g}")
    print(f"sampled {args.n} grids in {time.perf_counter() - t0:.1f} s; wrote {out}")
