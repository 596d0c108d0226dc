"""Non-finite values never reach disk: checks at every place a NaN or inf could slip in.

1. Before the quantizer (and so before its EMA codebook update): its input must be finite, or
   the step stops before any buffer moves (a forward pre-hook).
2. Before the optimizer step: the loss terms and the gradient norm (one device-to-host copy).
3. After validation: SSIM and PSNR.
4. At save time: every tensor of the checkpoint (:func:`vqvae_lib.checkpoint.save_checkpoint`).

Each stop is a :class:`~vqvae_lib.errors.TrainingError` naming the epoch and step, what this
run has on disk (truthfully: which file holds which epoch, or that it has saved nothing yet) and
the likely fix, a lower learning rate.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import unwrap
from ..errors import TrainingError

__all__ = ["NonFiniteInput", "guard_quantizer", "nonfinite_message"]


class NonFiniteInput(TrainingError):
    """The quantizer's input held NaN or inf; raised before the codebook was touched."""


def guard_quantizer(model: torch.nn.Module):
    """Check the quantizer's input for NaN/inf before every training forward.

    Costs one device-to-host synchronisation per step. Returns the hook handle
    (``handle.remove()`` undoes it).

    Args:
        model: the VQ-VAE (or its DDP/compile wrapper).
    """
    quantizer = unwrap(model).quantizer

    def check(module, args):
        if module.training and not bool(torch.isfinite(args[0]).all()):
            raise NonFiniteInput("Non-finite encoder output (the quantizer's input)")

    return quantizer.register_forward_pre_hook(check)


def _on_disk(saved: dict, ckdir: Path) -> str:
    """What this run has written, in words."""
    if not saved:
        return (f"This run saved no checkpoint yet: {ckdir} holds what was there before it "
                f"(a previous run's model, if any, untouched).")
    parts = [f"{name} = epoch {e} (step {s})" for name, (e, s) in sorted(saved.items())]
    return f"The checkpoints in {ckdir} are from before the problem: {', '.join(parts)}."


def nonfinite_message(what: str, *, epoch: int, step: int, saved: dict, ckdir, cfg) -> str:
    """The message of a non-finite stop.

    Args:
        what: what was found, e.g. ``"Non-finite loss ({...})"``.
        epoch: the epoch in which it happened (1-based).
        step: the optimizer step at which it happened (1-based; the last step taken for a
            validation failure).
        saved: ``{file name: (epoch, step)}`` of this run's checkpoints on disk.
        ckdir: the checkpoint folder.
        cfg: the run's config (for the suggested fix).
    """
    fixes = [f"lower the learning rate (now lr={cfg.lr:g}; try {cfg.lr / 10:g})"]
    if cfg.grad_clip <= 0:
        fixes.append("set grad_clip=1")
    if cfg.precision != "fp32":
        fixes.append("try precision=fp32")
    return (f"{what} at epoch {epoch}, step {step}. Training stopped before anything non-finite "
            f"was written. {_on_disk(saved, Path(ckdir))} Likely fix: {'; '.join(fixes)}.")
