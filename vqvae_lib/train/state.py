"""Everything a checkpoint carries besides weights, so that a resumed run continues *exactly*.

The position in the epoch (its permutation and the batch reached), the summed loss terms of the
epoch so far, the clocks, the epoch plan, the best SSIM, and every random generator: the
shuffling and augmentation generators, torch's CPU generator and the CUDA generator of the
training device (dead-code restarts draw from it on a GPU). A resumed CPU run reaches the same
numbers, bit for bit, as an uninterrupted one (tested).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import torch

from ..checkpoint import config_from_checkpoint
from ..errors import CheckpointError

__all__ = ["TrainState", "state_dict", "load_state", "check_resumable", "RESUMABLE_CHANGES"]

RESUMABLE_CHANGES = ("epochs", "max_minutes", "extra")   # config fields a resume may change


@dataclass
class TrainState:
    """Counters and bookkeeping of one run (its ``run_id`` survives a resume)."""

    epoch: int = 0                       # epochs completed
    step: int = 0                        # optimizer steps taken
    batch_in_epoch: int = 0              # batches of the current epoch already trained
    epoch_perm: torch.Tensor | None = None
    accum: dict = field(default_factory=dict)    # summed loss terms of this epoch, and "n"
    elapsed: float = 0.0                 # training + validation seconds over all sessions
    train_seconds: float = 0.0           # training seconds only
    planned_epochs: int = 0
    best_ssim: float = -1.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    saved: dict = field(default_factory=dict)    # name -> [epoch, step] of this run's files


def _cuda_state(device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_rng_state(device)
    return torch.zeros(0, dtype=torch.uint8)


def state_dict(st: TrainState, shuffle_gen: torch.Generator, aug_gen: torch.Generator,
               scaler, device: torch.device) -> dict:
    """The ``extra["trainer"]`` entry of a checkpoint (plain data: loads with weights_only).

    Args:
        st: the run's counters.
        shuffle_gen: the generator of the epoch permutations.
        aug_gen: the generator of the augmentation.
        scaler: the AMP gradient scaler.
        device: the training device (its CUDA generator is saved).
    """
    empty = torch.zeros(0, dtype=torch.long)
    return {
        "epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch,
        "epoch_perm": st.epoch_perm if st.epoch_perm is not None else empty,
        "accum": dict(st.accum), "elapsed": st.elapsed, "train_seconds": st.train_seconds,
        "planned_epochs": st.planned_epochs, "best_ssim": st.best_ssim, "run_id": st.run_id,
        "saved": {k: list(v) for k, v in st.saved.items()},
        "shuffle_rng": shuffle_gen.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": _cuda_state(device), "aug_rng": aug_gen.get_state().cpu(),
        "scaler": scaler.state_dict(),
    }


def load_state(ckpt: dict, cfg, shuffle_gen: torch.Generator, aug_gen: torch.Generator,
               scaler, device: torch.device) -> TrainState:
    """Restore the counters and every generator from a checkpoint written by the trainer.

    Args:
        ckpt: the loaded checkpoint.
        cfg: the config of the resumed run (a new ``epochs`` limit is honoured).
        shuffle_gen: restored in place.
        aug_gen: restored in place.
        scaler: restored in place.
        device: the training device (its CUDA generator is restored).
    """
    d = ckpt["extra"]["trainer"]
    planned = min(cfg.epochs, d["planned_epochs"]) if cfg.max_minutes > 0 else cfg.epochs
    st = TrainState(epoch=ckpt["epoch"], step=ckpt["step"], batch_in_epoch=d["batch_in_epoch"],
                    epoch_perm=d["epoch_perm"] if d["epoch_perm"].numel() else None,
                    accum=dict(d["accum"]), elapsed=d["elapsed"], train_seconds=d["train_seconds"],
                    planned_epochs=planned, best_ssim=d["best_ssim"],
                    run_id=d.get("run_id", "resumed"), saved=dict(d.get("saved", {})))
    shuffle_gen.set_state(d["shuffle_rng"])
    torch.set_rng_state(d["torch_rng"])
    cuda = d.get("cuda_rng")
    if cuda is not None and cuda.numel() and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)
    aug_gen.set_state(d["aug_rng"].to(aug_gen.device))
    scaler.load_state_dict(d["scaler"])
    return st


def check_resumable(ckpt: dict, cfg, path) -> None:
    """CheckpointError unless ``ckpt`` was trained with ``cfg`` (up to RESUMABLE_CHANGES).

    Args:
        ckpt: the loaded ``last.pt``.
        cfg: the config of the run that wants to resume.
        path: the checkpoint's path (for the message).
    """
    if "trainer" not in ckpt.get("extra", {}):
        raise CheckpointError(f"Cannot resume from {path}: it has no training state (it was not "
                              "written by vqvae_lib.train). Train without --resume.")
    saved = {k: v for k, v in config_from_checkpoint(ckpt, path).to_dict().items()
             if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES}
    if saved != now:
        diff = {k: (saved.get(k), now[k]) for k in now if saved.get(k) != now[k]}
        raise CheckpointError(
            f"Cannot resume from {path}: it was trained with a different config {diff} "
            f"(saved vs requested). Resume with the same settings (only epochs and "
            f"max_minutes may change) or start a new run_dir.")
