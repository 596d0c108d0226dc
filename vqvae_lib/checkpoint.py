"""Checkpoints that are safe to load, atomic to write, and explain themselves when wrong.

A checkpoint is one ``torch.save`` file holding only plain data -- tensors, numbers,
strings, lists and dicts -- so it loads with ``torch.load(path, weights_only=True)``, which
refuses to run arbitrary pickled code (a checkpoint downloaded from a stranger cannot
execute anything). The layout::

    {"format": "vqvae_lib/1", "config": {...Config fields...}, "model": state_dict,
     "optimizer": state_dict | None, "scheduler": state_dict | None, "history": [{...}, ...],
     "epoch": int, "step": int, "best_metric": float | None, "extra": {...}, "torch": "2.x"}

Writes go to a temporary file in the same folder followed by ``os.replace`` (an atomic
rename on POSIX and Windows), so a crash or Ctrl-C mid-write never leaves a half-written
``best.pt`` behind: the previous file stays intact until the new one is complete.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .common import atomic_write
from .config import MODEL_FIELDS, Config
from .errors import CheckpointError
from .model.vqvae import VQVAE, build_model

FORMAT = "vqvae_lib/1"
REQUIRED_KEYS = ("config", "model")



def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):            # DDP / DataParallel
            model = model.module
        elif hasattr(model, "_orig_mod"):       # torch.compile
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path, *, model, cfg: Config, optimizer=None, scheduler=None, history=None,
                    epoch: int = 0, step: int = 0, best_metric: float | None = None,
                    extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path.

    Refuses (CheckpointError naming the file and the tensors) to write a state holding NaN or
    inf: a non-finite model never reaches disk, and the file already there stays as it was.
    """
    path = Path(path)
    state = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": [dict(h) for h in (history or [])],
        "epoch": int(epoch),
        "step": int(step),
        "best_metric": None if best_metric is None else float(best_metric),
        "extra": dict(extra or {}),
        "torch": str(torch.__version__),
    }
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(
            f"Refusing to write {path}: {len(bad)} tensor(s) hold NaN or inf (e.g. "
            f"{', '.join(bad[:3])}). The file on disk was left as it was.")
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def nonfinite_tensors(obj, prefix: str = "") -> list[str]:
    """Names of floating-point tensors holding NaN or inf anywhere in a nested dict/list.

    Args:
        obj: a tensor, or a dict/list/tuple nesting them (a checkpoint state).
        prefix: the name of ``obj`` itself, e.g. ``"model"``.
    """
    if isinstance(obj, torch.Tensor):
        floating = obj.is_floating_point() or obj.is_complex()
        return [prefix or "tensor"] if floating and not bool(torch.isfinite(obj).all()) else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    return [n for k, v in items for n in nonfinite_tensors(v, f"{prefix}.{k}" if prefix else str(k))]


def load_checkpoint(path, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; CheckpointError says what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train one first: run notebooks/03_training.ipynb or "
            f"`python -m vqvae_lib.train --preset <preset>` (it writes runs/<preset>/checkpoints/best.pt)."
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle with code in it, ...
        if "weights_only" in str(e) or isinstance(e, pickle.UnpicklingError):
            raise CheckpointError(
                f"Checkpoint {path} holds Python objects beyond plain tensors and numbers, which a "
                f"safe load refuses (loading them could run code from the file). vqvae_lib never "
                f"writes such files: do not load it unsafely; delete it and train again, or use a "
                f"checkpoint from a source you trust that was written by vqvae_lib.") from None
        raise CheckpointError(
            f"Checkpoint {path} is damaged or not a vqvae_lib checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}). Delete it and train again "
            f"(or resume from the other file in {path.parent})."
        ) from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a vqvae_lib checkpoint (expected keys {list(REQUIRED_KEYS)}, found {keys}). "
            f"Checkpoints are written by vqvae_lib.checkpoint.save_checkpoint / the trainer."
        )
    return ckpt


def config_from_checkpoint(ckpt: dict, path="<checkpoint>") -> Config:
    try:
        return Config.from_dict(ckpt["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"The config stored in {path} does not fit this version of vqvae_lib ({e}). "
            f"Retrain with the current code."
        ) from e


def config_mismatches(a: Config, b: Config, fields=MODEL_FIELDS) -> dict[str, tuple]:
    """{field: (a_value, b_value)} for architecture fields on which two configs disagree."""
    return {f: (getattr(a, f), getattr(b, f)) for f in fields if getattr(a, f) != getattr(b, f)}


def load_model(path, device="cpu", expected_cfg: Config | None = None) -> tuple[VQVAE, Config, dict]:
    """Rebuild the model a checkpoint was trained with -> (model in eval mode, cfg, ckpt).

    ``expected_cfg`` (e.g. the notebook's preset) is compared field by field on the
    architecture; a mismatch is a CheckpointError listing the differences rather than a
    wall of size-mismatch messages from ``load_state_dict``.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    cfg = config_from_checkpoint(ckpt, path)
    if expected_cfg is not None:
        diff = config_mismatches(cfg, expected_cfg)
        if diff:
            lines = ", ".join(f"{k}: checkpoint {v[0]!r} vs expected {v[1]!r}" for k, v in diff.items())
            raise CheckpointError(
                f"Checkpoint {path} was trained with a different architecture ({lines}). "
                f"Use the matching preset (checkpoint preset: {cfg.preset!r}) or retrain."
            )
    if ckpt.get("extra", {}).get("kind", "vqvae") != "vqvae":
        raise CheckpointError(
            f"{path} is a {ckpt['extra']['kind']} checkpoint, not a VQ-VAE one. Pass the file "
            f"written by vqvae_lib.train (runs/<preset>/checkpoints/best.pt).")
    model = build_model(cfg)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except (RuntimeError, KeyError, TypeError) as e:
        msg = str(e).splitlines()
        raise CheckpointError(
            f"The weights in {path} do not fit the model its config describes "
            f"({'; '.join(m.strip() for m in msg[:3])}). The file was edited or written by "
            f"another version; retrain."
        ) from e
    model.to(device).eval()
    return model, cfg, ckpt


def find_checkpoint(run_dir: str | os.PathLike, name: str = "best.pt", needed_for: str = "") -> Path:
    """The checkpoint ``<run_dir>/checkpoints/<name>``, or a CheckpointError saying how to make it.

    ``needed_for`` completes the message, e.g. "the prior is fitted to its codes".
    """
    path = Path(run_dir) / "checkpoints" / name
    if not path.is_file():
        why = f" ({needed_for})" if needed_for else ""
        raise CheckpointError(
            f"No trained VQ-VAE at {path}{why}. Train one first: run notebooks/03_training.ipynb "
            f"with the same preset and run_dir (or `python -m vqvae_lib.train --preset "
            f"{Path(run_dir).name}`), then try again."
        )
    return path


def trained_model(run_dir: str | os.PathLike, device="cpu", name: str = "best.pt",
                  needed_for: str = "") -> tuple[VQVAE, Config, Path]:
    """The one way a notebook or CLI gets "the trained VQ-VAE of this run".

    Args:
        run_dir: the run folder (``runs/<preset>``) that notebook 03 / ``vqvae_lib.train`` wrote.
        device: where to put the model.
        name: ``best.pt`` (best validation SSIM) or ``last.pt``.
        needed_for: completes the error message when there is no model yet.

    Returns:
        ``(model in eval mode, its config, the checkpoint path)``.
    """
    path = find_checkpoint(run_dir, name, needed_for)
    model, cfg, _ = load_model(path, device)
    return model, cfg, path


def file_hash(path) -> str:
    """SHA-1 of a file's bytes (first 16 hex digits): what a checkpoint *is*, not where it is.

    Args:
        path: the file.
    """
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
