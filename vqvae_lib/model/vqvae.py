"""The VQ-VAE: a convolutional encoder, a quantizer (VQ, FSQ or residual VQ) and a mirrored decoder.

    x (B,1,H,W) --Encoder--> z_e (B,D,h,w) --quantizer--> z_q (B,D,h,w), codes (B,h,w)
                 --Decoder--> x_hat (B,1,H,W)          with h = H / downsample

(van den Oord, Vinyals and Kavukcuoglu, "Neural Discrete Representation Learning", 2017.)

The layout follows the reference implementation layer by layer, so that the ``reference``
preset *is* that network:

* encoder: ``[Conv 4x4/2 -> Norm -> ReLU] x (n_down - 1) -> Conv 4x4/2 -> ResidualStack``
* residual block: ``x + [ReLU -> Conv 3x3 -> Norm -> ReLU -> Conv 1x1 -> Norm](x)``
* decoder: ``ResidualStack -> ReLU -> [ConvT 4x4/2 -> Norm -> ReLU] x (n_down - 1)
  -> ConvT 4x4/2 -> out activation``

with ``n_down = log2(downsample)`` (2 for a 4x smaller grid, 3 for 8x). When the code dimension
``D`` differs from the trunk width, a 1x1 convolution projects into (and out of) the codebook
space; the reference has ``D == width`` and therefore none.

Images enter and leave in [0, 1]. A ``data_range="pm1"`` model (the reference, Tanh output)
rescales to [-1, 1] inside; the reconstruction loss is the MSE in the model's own range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..metrics import ssim
from .factory import build_quantizer

__all__ = ["VQVAE", "VQVAEOutput", "Encoder", "Decoder", "ResidualBlock", "ResidualStack",
           "build_model", "make_norm", "n_downsamplings", "receptive_field"]


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch`` (reference) | ``group`` (batch-size independent) | ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = math.gcd(channels, 32)       # 32 groups when possible, always a divisor
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; choose 'batch', 'group' or 'none'.")


def n_downsamplings(downsample: int) -> int:
    n = int(round(math.log2(downsample)))
    if downsample < 2 or 2 ** n != downsample:
        raise ValueError(f"downsample must be a power of two >= 2 (4 or 8), got {downsample}")
    return n


class ResidualBlock(nn.Module):
    """``x + F(x)`` with ``F = ReLU, Conv3x3 (C->R), Norm, ReLU, Conv1x1 (R->C), Norm``
    (He et al. 2016; the exact block of the reference). ``R`` is a bottleneck width."""

    def __init__(self, channels: int, res_channels: int, norm: str = "batch"):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_channels, kernel_size=3, stride=1, padding=1),
            make_norm(norm, res_channels),
            nn.ReLU(),
            nn.Conv2d(res_channels, channels, kernel_size=1),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)                                 # (B, C, h, w)


class ResidualStack(nn.Sequential):
    """``n_blocks`` residual blocks at constant resolution and width."""

    def __init__(self, channels: int, res_channels: int, n_blocks: int, norm: str = "batch"):
        super().__init__(*[ResidualBlock(channels, res_channels, norm) for _ in range(n_blocks)])


class Encoder(nn.Sequential):
    """Image (B, C_in, H, W) -> continuous latents z_e (B, D, H/f, W/f), f = ``downsample``."""

    def __init__(self, cfg: Config):
        c, n_down = cfg.hidden_channels, n_downsamplings(cfg.downsample)
        layers: list[nn.Module] = []
        for i in range(n_down):
            layers.append(nn.Conv2d(cfg.in_channels if i == 0 else c, c, 4, stride=2, padding=1))
            if i < n_down - 1:                                   # halves H and W each time
                layers += [make_norm(cfg.norm, c), nn.ReLU()]
        layers.append(ResidualStack(c, cfg.res_channels, cfg.n_res_blocks, cfg.norm))
        if cfg.code_dim != c:                                    # project into codebook space
            layers += [nn.ReLU(), nn.Conv2d(c, cfg.code_dim, kernel_size=1)]
        super().__init__(*layers)


class Decoder(nn.Sequential):
    """Code vectors z_q (B, D, h, w) -> image (B, C_in, h*f, w*f), mirroring the encoder."""

    def __init__(self, cfg: Config):
        c, n_down = cfg.hidden_channels, n_downsamplings(cfg.downsample)
        layers: list[nn.Module] = []
        if cfg.code_dim != c:                                    # back out of codebook space
            layers.append(nn.Conv2d(cfg.code_dim, c, kernel_size=1))
        layers += [ResidualStack(c, cfg.res_channels, cfg.n_res_blocks, cfg.norm), nn.ReLU()]
        for i in range(n_down):
            last = i == n_down - 1                               # doubles H and W each time
            layers.append(nn.ConvTranspose2d(c, cfg.in_channels if last else c, 4, 2, padding=1))
            if not last:
                layers += [make_norm(cfg.norm, c), nn.ReLU()]
        if cfg.out_activation == "tanh":
            layers.append(nn.Tanh())
        elif cfg.out_activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif cfg.out_activation != "none":
            raise ValueError(f"Unknown out_activation {cfg.out_activation!r}; "
                             "choose 'tanh', 'sigmoid' or 'none'.")
        super().__init__(*layers)


@dataclass
class VQVAEOutput:
    recon: torch.Tensor       # (B, 1, H, W) in [0, 1]
    codes: torch.Tensor       # (B, h, w) long in [0, codebook_size) (residual VQ: joint codes)
    loss: torch.Tensor        # scalar: recon + codebook + beta * commitment
    losses: dict = field(default_factory=dict)  # "recon", "codebook", "commitment" (unweighted)
    stats: dict = field(default_factory=dict)   # "perplexity", "used_fraction", "dead_codes"


class VQVAE(nn.Module):
    """Encoder + vector quantizer + decoder, configured by a :class:`~vqvae_lib.config.Config`."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.data_range not in ("01", "pm1"):
            raise ValueError(f"data_range must be '01' or 'pm1', got {cfg.data_range!r}")
        if cfg.image_size % cfg.downsample:
            raise ValueError(f"image_size {cfg.image_size} is not divisible by "
                             f"downsample {cfg.downsample}")
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = build_quantizer(cfg)      # VQ (loss | ema), FSQ or residual VQ
        self.decoder = Decoder(cfg)

    # ---- data range: callers always speak [0, 1] ------------------------------------------
    def to_model_range(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1 if self.cfg.data_range == "pm1" else x

    def from_model_range(self, y: torch.Tensor) -> torch.Tensor:
        y = (y + 1) / 2 if self.cfg.data_range == "pm1" else y
        return y.clamp(0, 1)

    # ---- the three stages --------------------------------------------------------------------
    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, H, W) in [0, 1] -> encoder outputs z_e (B, D, h, w), before quantizing."""
        return self.encoder(self.to_model_range(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, H, W) in [0, 1] -> codes (B, h, w) long in [0, codebook_size) (residual
        VQ: its joint codes; ``quantizer.split_codes`` gives the stages). Never updates the codebook."""
        was_training = self.quantizer.training
        self.quantizer.eval()
        codes = self.quantizer.joint_codes(self.quantizer(self.encode_continuous(x)).codes)
        self.quantizer.train(was_training)
        return codes

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, D, h, w) -> images (B, 1, H, W) in [0, 1]."""
        return self.from_model_range(self.decoder(z_q))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) long -> images (B, 1, H, W) in [0, 1]."""
        return self.decode(self.quantizer.lookup(codes))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        target = self.to_model_range(x)                          # (B, 1, H, W)
        z_e = self.encoder(target)                               # (B, D, h, w)
        q = self.quantizer(z_e)                                  # z_q (B, D, h, w), codes (B, h, w)
        y = self.decoder(q.quantized)                            # (B, 1, H, W) model range
        recon = self.from_model_range(y)                         # (B, 1, H, W) in [0, 1]
        # The losses in fp32 even under bf16 autocast: SSIM's local variances E[x^2] - E[x]^2
        # cancel catastrophically in bf16 (3 significant digits) and its gradient turns to noise.
        with torch.autocast(device_type=x.device.type, enabled=False):
            recon_loss = F.mse_loss(y.float(), target.float())
            losses = {"recon": recon_loss, **q.losses}
            loss = recon_loss + q.loss
            if self.cfg.ssim_weight > 0:
                # MSE alone blurs fine structure; a (1 - SSIM) term (Zhao et al. 2017, "Loss
                # Functions for Image Restoration with Neural Networks") rewards local contrast
                # and structure, which is what SSIM measures at evaluation time.
                losses["ssim"] = 1.0 - ssim(recon.float(), x.float(), data_range=1.0)
                loss = loss + self.cfg.ssim_weight * losses["ssim"]
        return VQVAEOutput(recon=recon, codes=self.quantizer.joint_codes(q.codes), loss=loss,
                           losses=losses, stats=q.stats)

    # ---- bookkeeping -------------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def parameter_table(self) -> dict[str, int]:
        """Trainable parameters per part, e.g. {"encoder": ..., "quantizer": ..., "decoder": ...}."""
        return {name: sum(p.numel() for p in part.parameters() if p.requires_grad)
                for name, part in (("encoder", self.encoder), ("quantizer", self.quantizer),
                                   ("decoder", self.decoder))}


def build_model(cfg: Config, device: torch.device | str | None = None) -> VQVAE:
    """``VQVAE(cfg)``, moved to ``device`` if given."""
    model = VQVAE(cfg)
    return model.to(device) if device is not None else model


def receptive_field(model: VQVAE) -> tuple[int, int, int]:
    """Receptive field of one latent cell: ``(size, stride, offset)`` in input pixels.

    Walks the encoder's convolutions in order (a residual branch widens the field like any
    conv on the path; 1x1 convs add nothing): ``size += (k - 1) * jump``, ``offset += p * jump``,
    ``jump *= stride``. Latent cell ``i`` then sees input pixels
    ``[i * stride - offset, i * stride - offset + size - 1]`` (clipped to the image).
    """
    size, jump, offset = 1, 1, 0
    for m in model.encoder.modules():
        if isinstance(m, nn.Conv2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            size += (k - 1) * jump
            offset += p * jump
            jump *= s
    return size, jump, offset
