"""Where torch runs, in which precision, and how reproducibly: the device, mixed precision
(bf16 autocast where the hardware has it), the seeds, deterministic kernels.

Used by every stage that trains or samples (``train/``, ``prior/``, ``codebook/experiment``) and
by the notebook set-up in ``session.py``; it depends on nothing else in the package but
``errors``.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from .config_checks import check_device
from .errors import ConfigError

__all__ = ["PRECISIONS", "pick_device", "seed_everything", "cpu_has_bf16", "autocast_dtype",
           "autocast", "precision_name"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""``Config.precision``: ``auto`` = bf16 where the device computes it natively (CUDA with bf16,
CPUs with AVX512-BF16 or AMX), fp16 with a gradient scaler on older GPUs, fp32 elsewhere."""


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU), and ask torch for deterministic kernels.

    With ``deterministic`` (the default) this switches on
    ``torch.use_deterministic_algorithms(True, warn_only=True)``, ``cudnn.deterministic`` and
    sets ``CUBLAS_WORKSPACE_CONFIG`` (it must be set before CUDA starts; ``setup_notebook`` and
    the trainer call this first). What stays non-deterministic (docs/RELIABILITY.md): a GPU op
    with no deterministic kernel (torch then warns once, it does not fail), the order of NCCL
    all-reduces under ``torchrun``, and the schedule of a run with a wall-clock budget
    (``max_minutes`` > 0) or a different number of CPU threads.

    Args:
        seed: the seed for every generator.
        deterministic: ask for deterministic kernels (slower on some GPU convolutions).
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # before cuBLAS starts
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps``
    are taken as given; anything else is a ConfigError ("device must be auto, cpu, ...").

    Args:
        requested: the device name.
    """
    check_device(requested or "auto")
    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device='cuda' was requested but no CUDA GPU is visible; use "
                              "device='auto' or 'cpu'.")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when this CPU multiplies bf16 matrices natively: the ``avx512_bf16`` or ``amx_bf16``
    flag (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later). Elsewhere (older
    x86, Apple silicon, no ``/proc/cpuinfo``) bf16 would be emulated and slower than fp32.

    Args:
        cpuinfo: the file listing the CPU flags (Linux).
    """
    try:
        flags = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(precision: str, device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    Only the matrix work (convolutions, linear layers, attention) runs in the lower precision;
    torch's autocast keeps reductions, softmax and losses in fp32, and the library keeps the
    quantizer's distances and EMA statistics, validation and every reported metric in fp32.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: the training device.

    Raises:
        ConfigError: bf16 or fp16 asked for where the device cannot run it natively.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision expects one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not bf16:
            raise ConfigError("precision='bf16' was asked for, but this GPU has no bf16; use "
                              "precision='fp16' (with a gradient scaler) or 'fp32'.")
        if precision == "fp16":
            return torch.float16
        return torch.bfloat16 if bf16 else torch.float16
    if precision == "fp16":
        raise ConfigError(f"precision='fp16' needs a CUDA GPU (device is {device.type}); use "
                          f"precision='auto', 'bf16' or 'fp32'.")
    if device.type == "cpu":
        if precision == "bf16" and not cpu_has_bf16():
            raise ConfigError("precision='bf16' was asked for, but this CPU has no native bf16 "
                              "(no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo), so it would be "
                              "slower than fp32; use precision='auto' or 'fp32'.")
        return torch.bfloat16 if cpu_has_bf16() else None
    if precision == "bf16":
        raise ConfigError(f"precision='bf16' is not supported on {device.type}; use 'fp32'.")
    return None


def autocast(device, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` with ``dtype``, or a no-op context for None (fp32).

    Args:
        device: the device the forward pass runs on.
        dtype: from :func:`autocast_dtype`.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` for an autocast dtype (None = fp32)."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
