"""Checking config values: types (a CLI gives strings) and ranges, with a message that names the
field and what it expects. ``Config.replace`` (and so ``get_config``) runs both."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import Any

from .errors import ConfigError

__all__ = ["coerce", "check_ranges", "check_count", "check_device", "MAX_IMAGE_SIZE", "DEVICES"]

MAX_IMAGE_SIZE = 1024
"""The largest ``image_size`` (and ``slices --size``): 4x OASIS's 256; a split at 8192 px would
need tens of GB of cache and memory."""

DEVICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_RE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_count(option: str, value, low: int = 0, high: int | None = None):
    """A whole number ``low <= value <= high``, or a ConfigError naming the option, the value and
    the allowed range (for a CLI's counts and sizes, checked before any work starts).

    Args:
        option: its name as the user wrote it, e.g. ``"--subjects"``.
        value: the value given.
        low: the smallest allowed value.
        high: the largest allowed value (None: no limit).
    """
    allowed = f"a whole number >= {low}" if high is None else f"a whole number in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        raise ConfigError(f"{option} must be {allowed}, got {value!r}")
    return value


def check_device(value, option: str = "device") -> str:
    """``value`` if it names a device (auto, cpu, cuda, cuda:N, mps), else a ConfigError.

    Args:
        value: the device string.
        option: its name as the user wrote it (``"device"``, ``"--device"``).
    """
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        raise ConfigError(f"{option} must be {DEVICES}, got {value!r}")
    return value


def coerce(cfg, overrides: dict[str, Any]) -> dict[str, Any]:
    """Check names and types, and convert strings (from a CLI) to the field's type.

    A ConfigError names the field and what it expects: ``epochs`` refuses ``"abc"`` and ``1.7``
    (an integer field takes only whole numbers), a bool field only true/false.
    """
    out = {}
    types = {f.name: type(getattr(cfg, f.name)) for f in fields(cfg)}
    for k, v in overrides.items():
        if k == "amp":
            raise ConfigError("amp was renamed precision: precision=auto (bf16 where the device "
                              "has it natively), fp32, bf16 or fp16")
        if k not in types:
            raise ConfigError(f"Unknown config field {k!r}. Known fields: {sorted(types)}")
        out[k] = _convert(k, types[k], v)
    return out


def _convert(name: str, t: type, v: Any) -> Any:
    """``v`` as type ``t`` for field ``name``, or a ConfigError saying what the field expects."""
    if t is bool:
        if isinstance(v, str) and v.lower() in {"1", "0", "true", "false", "yes", "no"}:
            return v.lower() in {"1", "true", "yes"}
        if isinstance(v, bool):
            return v
        raise ConfigError(f"{name} expects true or false, got {v!r}")
    if t in (int, float):
        number = v
        if isinstance(v, str):
            try:
                number = float(v.strip())
            except ValueError:
                kind = "a whole number" if t is int else "a number"
                raise ConfigError(f"{name} expects {kind}, got {v!r}") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ConfigError(f"{name} expects a finite {'whole ' if t is int else ''}number, got {v!r}")
        if t is int:
            if number != int(number):
                raise ConfigError(f"{name} expects a whole number, got {v!r} (it would be cut to "
                                  f"{int(number)} silently)")
            return int(number)
        return float(number)
    if t is str and not isinstance(v, str):
        raise ConfigError(f"{name} expects a string, got {v!r}")
    if t is dict and not isinstance(v, dict):
        raise ConfigError(f"{name} expects a dict, got {v!r}")
    return v


_POSITIVE = ("image_size", "in_channels", "hidden_channels", "res_channels", "downsample",
             "codebook_size", "code_dim", "ema_eps", "kmeans_iters", "batch_size", "lr",
             "step_size", "gamma", "epochs", "prior_channels", "prior_layers", "prior_epochs",
             "prior_lr", "prior_batch_size", "rvq_stages", "prior_heads")
_NON_NEGATIVE = ("max_train_images", "max_eval_images", "n_res_blocks", "beta", "ssim_weight",
                 "dead_code_steps", "weight_decay", "warmup_steps", "grad_clip", "max_minutes",
                 "seed", "num_threads", "prior_max_minutes", "prior_cond_bins", "ema_decay",
                 "prior_max_steps", "prior_warmup_steps", "prior_temperature")
_CHOICES = {"data_range": ("01", "pm1"), "norm": ("batch", "group", "none"),
            "out_activation": ("tanh", "sigmoid", "none"), "quantizer": ("loss", "ema", "fsq", "rvq"),
            "scheduler": ("cosine", "step", "constant"),
            "precision": ("auto", "fp32", "bf16", "fp16"),
            "prior_precision": ("auto", "fp32", "bf16", "fp16"), "prior_kind": ("pixelcnn", "transformer")}


def check_ranges(cfg):
    """Check every value's range; a ConfigError names the field and what it expects.

    Args:
        cfg: the config to check (returned unchanged when it is fine).
    """
    for name in _POSITIVE:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)!r}")
    for name in _NON_NEGATIVE:
        if not getattr(cfg, name) >= 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)!r}")
    for name, allowed in _CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name} expects one of {list(allowed)}, got {getattr(cfg, name)!r}")
    if not 0 <= cfg.rvq_dropout <= 1:
        raise ConfigError(f"rvq_dropout is a probability in [0, 1], got {cfg.rvq_dropout!r}")
    if not cfg.ema_decay < 1:
        raise ConfigError(f"ema_decay must be < 1 (a moving average), got {cfg.ema_decay!r}")
    if cfg.prior_kind == "transformer" and cfg.prior_channels % cfg.prior_heads:
        raise ConfigError(f"prior_channels ({cfg.prior_channels}) must be a multiple of "
                          f"prior_heads ({cfg.prior_heads})")
    if cfg.image_size > MAX_IMAGE_SIZE:
        raise ConfigError(f"image_size must be <= {MAX_IMAGE_SIZE} (4x the 256 px of OASIS), got "
                          f"{cfg.image_size}")
    if cfg.quantizer == "fsq" and cfg.fsq_levels and math.prod(cfg.fsq_levels) != cfg.codebook_size:
        raise ConfigError(f"fsq_levels {','.join(map(str, cfg.fsq_levels))} give "
                          f"{math.prod(cfg.fsq_levels)} codes but codebook_size is "
                          f"{cfg.codebook_size}: their product must equal codebook_size (set "
                          f"codebook_size={math.prod(cfg.fsq_levels)}, or other levels)")
    if cfg.quantizer == "fsq" and any(v < 2 for v in cfg.fsq_levels):
        raise ConfigError(f"fsq_levels must each be >= 2, got {cfg.fsq_levels}")
    if cfg.image_size % cfg.downsample:
        raise ConfigError(f"image_size {cfg.image_size} must be a multiple of downsample "
                          f"{cfg.downsample}")
    check_device(cfg.device)
    return cfg
