"""One dataclass configures data, model, training and the prior, with named presets.

Presets (``get_config(name, **overrides)``):

* ``reference`` -- the reference recipe, faithfully (256x256, width 256, K=512, D=256,
  codebook loss with commitment weight 1, Tanh output on [-1, 1] data, Adam 1e-3 with
  amsgrad, StepLR(10, 0.9), batch 32). Kept for side-by-side comparisons.
* ``gpu``   -- our best recipe at 256x256 for one GPU.
* ``cpu``   -- our best recipe for a 2-core CPU (128x128), a useful model in minutes.
* ``smoke`` -- tiny, for tests and CI (seconds).

Every field can be overridden: ``get_config("cpu", epochs=3, lr=5e-4)``.

The fields fall in two groups, kept apart on purpose (nanoGPT keeps ``GPTConfig`` apart from its
training settings for the same reason):

* **architecture** (``MODEL_FIELDS`` for the VQ-VAE, ``PRIOR_FIELDS`` for the prior): what a
  checkpoint must carry to rebuild its network. A loaded model is always rebuilt from the
  checkpoint's own values; the current preset never replaces them, and
  :meth:`Config.for_checkpoint` refuses an override of one (a trained network cannot change shape).
* **run settings** (everything else: data caps, optimisation, budget, hardware): how a run goes.
  They may differ between the run that trained a model and the one that uses it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .config_checks import check_ranges, coerce
from .errors import ConfigError


@dataclass
class Config:
    preset: str = "cpu"
    # ---- data -------------------------------------------------------------------------
    image_size: int = 128          # slices are resized to image_size x image_size   [architecture]
    data_range: str = "01"         # "01": model sees [0, 1]; "pm1": [-1, 1] (reference) [architecture]
    max_train_images: int = 0      # 0 = all; >0 caps the training split (smoke runs)
    max_eval_images: int = 0       # 0 = all; >0 caps validation/test splits (smoke runs)
    augment: bool = False          # random flips/shifts on tensors, on the device
    decode_every_epoch: bool = False  # reference behaviour: decode the PNGs again each epoch
    # ---- model: architecture (MODEL_FIELDS) --------------------------------------------
    in_channels: int = 1
    hidden_channels: int = 128     # width of the encoder/decoder trunk
    res_channels: int = 64         # bottleneck width inside a residual block
    n_res_blocks: int = 2
    downsample: int = 4            # 4 (two stride-2 convs, like the reference) or 8
    norm: str = "batch"            # "batch" | "group" | "none"
    out_activation: str = "none"   # "tanh" (reference) | "sigmoid" | "none"
    # ---- quantizer: codebook_size, code_dim, quantizer, cosine are architecture ---------
    codebook_size: int = 512       # K
    code_dim: int = 64             # D
    quantizer: str = "ema"         # "loss" (codebook + commitment loss) | "ema" | "fsq" | "rvq"
    beta: float = 0.25             # commitment weight
    ssim_weight: float = 0.0       # add ssim_weight * (1 - SSIM) to the MSE reconstruction loss
    ema_decay: float = 0.99
    ema_eps: float = 1e-5          # Laplace smoothing of EMA cluster sizes
    kmeans_init: bool = True       # initialise the codebook by k-means on the first batch(es)
    kmeans_iters: int = 10
    dead_code_steps: int = 100     # re-seed codes unused for this many steps (0 = never)
    cosine: bool = False           # l2-normalise codes and encoder outputs
    fsq_levels: tuple = ()         # quantizer="fsq": levels per dimension, e.g. (8, 8, 8); their
                                   # product must equal codebook_size; () = chosen from codebook_size
    rvq_stages: int = 3            # quantizer="rvq": stages of codebook_size ** (1 / rvq_stages) codes
    rvq_dropout: float = 0.0       # quantizer="rvq": share of training batches with fewer stages
    # ---- optimisation -----------------------------------------------------------------
    batch_size: int = 32
    lr: float = 1e-3
    amsgrad: bool = False
    weight_decay: float = 0.0
    scheduler: str = "cosine"      # "cosine" (with warm-up) | "step" (StepLR) | "constant"
    warmup_steps: int = 100
    step_size: int = 10            # StepLR period in epochs
    gamma: float = 0.9             # StepLR factor
    grad_clip: float = 1.0         # 0 = off
    epochs: int = 30
    max_minutes: float = 0.0       # wall-clock budget for training (0 = none)
    seed: int = 0
    # ---- hardware ---------------------------------------------------------------------
    device: str = "auto"           # "auto" (cuda -> mps -> cpu) | "cpu" | "cuda" | "mps"
    precision: str = "auto"        # "auto" (bf16 where native: CUDA, AVX512-BF16/AMX CPUs; else
                                   # fp16 + scaler on old GPUs, fp32 elsewhere) | "fp32" | "bf16" | "fp16"
    compile: bool = False          # torch.compile the model
    channels_last: bool = True     # on GPU only
    num_threads: int = 0           # torch CPU threads (0 = torch default)
    # ---- prior: prior_channels, prior_layers, prior_cond_bins are architecture ----------
    prior_channels: int = 64
    prior_layers: int = 8
    prior_epochs: int = 20
    prior_lr: float = 3e-4
    prior_batch_size: int = 32
    prior_max_minutes: float = 0.0
    prior_max_steps: int = 0       # >0: stop after this many optimiser steps (equal-budget comparisons)
    prior_cond_bins: int = 0       # >0: condition the prior on slice position (that many bins)
    prior_mirror: bool = False     # also train on every training slice mirrored across the midline
    prior_kind: str = "pixelcnn"   # "pixelcnn" (gated PixelCNN) | "transformer" (causal, raster order)
    prior_heads: int = 4           # attention heads (transformer prior)
    prior_warmup_steps: int = 20   # linear learning-rate warm-up of the prior (train/budget.warmup_cosine)
    prior_temperature: float = 1.0  # sampling temperature notebook 06 uses for this preset
    prior_precision: str = "auto"  # the prior's training steps: "auto" | "fp32" | "bf16" | "fp16" (as precision)
    prior_samples: int = 64        # slices notebook 06 generates for the generation metrics
    # free-form notes carried into checkpoints
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # "8,5,5,5" (a CLI) or [8, 5, 5, 5] (JSON) -> (8, 5, 5, 5), so configs compare equal
        levels = self.fsq_levels
        if isinstance(levels, str):
            levels = [v for v in levels.replace("x", ",").split(",") if v.strip()]
        self.fsq_levels = tuple(int(v) for v in levels)

    # ------------------------------------------------------------------------------------
    @property
    def latent_size(self) -> int:
        """Side of the latent grid, e.g. 128 / 4 = 32."""
        return self.image_size // self.downsample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        d = _upgrade(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"Unknown config field(s) {unknown}. Known fields: {sorted(known)}"
            )
        return cls(**d)

    def replace(self, **overrides: Any) -> Config:
        return check_ranges(dataclasses.replace(self, **coerce(self, overrides)))

    def architecture(self) -> dict[str, Any]:
        """The VQ-VAE architecture fields (``MODEL_FIELDS``): what rebuilds the network."""
        return {k: getattr(self, k) for k in MODEL_FIELDS}

    def prior_architecture(self) -> dict[str, Any]:
        """The prior's architecture fields (``PRIOR_FIELDS``)."""
        return {k: getattr(self, k) for k in PRIOR_FIELDS}

    def run_settings(self) -> dict[str, Any]:
        """Every field that is not architecture: how a run goes."""
        arch = set(MODEL_FIELDS) | set(PRIOR_FIELDS)
        return {k: v for k, v in self.to_dict().items() if k not in arch}

    @classmethod
    def for_checkpoint(cls, saved: dict[str, Any], **run_overrides: Any) -> Config:
        """The config of a saved model, with run settings (never architecture) overridden.

        Args:
            saved: the config dictionary stored in a checkpoint.
            **run_overrides: run settings to change, e.g. ``max_eval_images=0``.

        Raises:
            ValueError: an override names an architecture field.
        """
        frozen = sorted(set(run_overrides) & (set(MODEL_FIELDS) | set(PRIOR_FIELDS)))
        if frozen:
            raise ValueError(
                f"{frozen} describe the trained network and come from its checkpoint; they cannot "
                f"be overridden when loading it. Train a new model to change them.")
        cfg = cls.from_dict(saved)
        return cfg.replace(**run_overrides) if run_overrides else cfg


RENAMED_FIELDS: dict[str, str] = {"amp": "precision"}
"""Fields of older versions and their new names: a saved config is upgraded on load; an old name
given as an override is refused with the new one (``config_checks.coerce``)."""


RETIRED_FIELDS = ("prior_top_factor", "prior_top_codes", "prior_steps", "prior_top_p")
"""Fields of generators that left the package (docs/GENERATORS.md); dropped from saved configs."""


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """A config dictionary saved by an older version, in today's fields (``amp`` -> ``precision``,
    retired prior fields dropped), so old checkpoints still load."""
    d = {k: v for k, v in d.items() if k not in RETIRED_FIELDS}
    if d.get("prior_kind", "pixelcnn") not in ("pixelcnn", "transformer"):
        d["prior_kind"] = "pixelcnn"   # a VQ-VAE saved when a retired prior was the preset's
    if "amp" in d:
        amp = d.pop("amp")
        d.setdefault("precision", "auto" if amp else "fp32")
    return d


MODEL_FIELDS: tuple[str, ...] = (
    "image_size", "data_range", "in_channels", "hidden_channels", "res_channels", "n_res_blocks",
    "downsample", "norm", "out_activation", "codebook_size", "code_dim", "quantizer", "cosine",
    "fsq_levels", "rvq_stages",
)
"""Fields that change the shape or meaning of the VQ-VAE's weights."""

PRIOR_FIELDS: tuple[str, ...] = (
    "prior_kind", "prior_channels", "prior_layers", "prior_heads", "prior_cond_bins",
)
"""Fields that change the shape or meaning of the prior's weights."""


PRESETS: dict[str, dict[str, Any]] = {
    # The reference implementation, as published (see README "Reference").
    "reference": dict(
        image_size=256, data_range="pm1", decode_every_epoch=True,
        hidden_channels=256, res_channels=256, n_res_blocks=2, downsample=4,
        norm="batch", out_activation="tanh",
        codebook_size=512, code_dim=256, quantizer="loss", beta=1.0,
        kmeans_init=False, dead_code_steps=0,
        batch_size=32, lr=1e-3, amsgrad=True, scheduler="step", step_size=10, gamma=0.9,
        warmup_steps=0, grad_clip=0.0, epochs=345, precision="fp32", channels_last=False,
    ),
    # Our recipe on one GPU at full resolution.
    "gpu": dict(
        image_size=256, hidden_channels=128, res_channels=64, n_res_blocks=2, downsample=4,
        codebook_size=512, code_dim=64, quantizer="ema", kmeans_init=True,
        dead_code_steps=100, ssim_weight=0.5, batch_size=64, lr=2e-3, epochs=40, warmup_steps=200,
        prior_kind="pixelcnn", prior_channels=128, prior_layers=12, prior_epochs=30,
        prior_lr=1e-3, prior_cond_bins=4, prior_mirror=True, prior_batch_size=32,
        prior_samples=128,
    ),
    # Our recipe on a 2-core laptop CPU. Batch 4: the most learning per CPU minute of batch 16, 8
    # and 4 at the same 4.5 minutes (benchmarks/cpu_preset.json, `bench_cpu_preset.py`). The prior
    # gets 3 minutes: every realism number improved from 2 to 4 prior minutes
    # (benchmarks/prior_minutes.json), and 3 keep the six notebooks within 15 minutes.
    "cpu": dict(
        image_size=128, hidden_channels=64, res_channels=32, n_res_blocks=2, downsample=4,
        codebook_size=512, code_dim=64, quantizer="ema", kmeans_init=True,
        dead_code_steps=100, ssim_weight=0.5, batch_size=4, lr=1.5e-3, epochs=30, max_minutes=4.5,
        warmup_steps=100, prior_kind="pixelcnn", prior_channels=64, prior_layers=8,
        prior_epochs=1000, prior_max_minutes=3.0, prior_lr=1e-3, prior_batch_size=4,
        prior_cond_bins=4, prior_mirror=True, prior_temperature=1.0, prior_samples=64,
    ),
    # Seconds: tests and CI.
    "smoke": dict(
        image_size=64, hidden_channels=16, res_channels=8, n_res_blocks=1, downsample=4,
        codebook_size=32, code_dim=8, quantizer="ema", kmeans_init=True,
        dead_code_steps=20, ssim_weight=0.5, batch_size=16, lr=2e-3, epochs=3, warmup_steps=5,
        max_train_images=256, max_eval_images=64,
        prior_kind="pixelcnn",
        prior_channels=16, prior_layers=2, prior_epochs=2, prior_batch_size=32, prior_lr=3e-3,
    ),
}


def get_config(preset: str = "cpu", **overrides: Any) -> Config:
    """Return the named preset with ``overrides`` applied field by field."""
    if preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = Config(preset=preset, **PRESETS[preset])
    return cfg.replace(**overrides) if overrides else cfg
