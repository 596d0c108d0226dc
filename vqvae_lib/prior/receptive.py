"""Receptive fields of autoregressive priors, and the square masked convolutions of the original
PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"), kept to *show* the blind
spot that the gated PixelCNN's two stacks remove (notebook 06, section 2).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["receptive_field", "MaskedConv2d", "plain_pixelcnn"]


def receptive_field(model: nn.Module, shape: tuple[int, int], cell: tuple[int, int],
                    channels: int | None = None, n_probes: int = 8) -> torch.Tensor:
    """Which input cells influence the output at ``cell``, measured with gradients. (h, w) float

    Feeds ``n_probes`` random embedded grids, back-propagates the sum of the logits at ``cell`` and
    returns the gradient magnitude at every input position, summed over probes and channels: 0
    exactly where the output is blind to the input (several probes, so that one unlucky input
    with all ReLUs off cannot hide a connection). Works for ``GatedPixelCNN`` and any module
    mapping (B, C, h, w) -> (B, K, h, w).
    """
    h, w = shape
    if channels is None:
        channels = model.embed.embedding_dim
    x = torch.randn(n_probes, channels, h, w, requires_grad=True)
    fwd = model.forward_embedded if hasattr(model, "forward_embedded") else model
    out = fwd(x)  # (n_probes, K, h, w)
    out[:, :, cell[0], cell[1]].sum().backward()
    return x.grad.abs().sum((0, 1))  # (h, w)


class MaskedConv2d(nn.Conv2d):
    """The *original* PixelCNN masked convolution (van den Oord et al. 2016, "Pixel Recurrent
    Neural Networks"): a square kernel multiplied by a raster-order mask.

    Type A zeroes the centre and everything after it; type B keeps the centre. Stacking these
    leaves a blind spot; we keep it only to *show* the blind spot (``plain_pixelcnn``).
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        k = kernel_size
        mask = torch.ones(k, k)
        mask[k // 2, k // 2 + (mask_type == "B"):] = 0  # current row: centre (A) and right of it
        mask[k // 2 + 1:] = 0                            # all rows below
        self.register_buffer("mask", mask[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def plain_pixelcnn(channels: int = 8, n_layers: int = 4, kernel_size: int = 3) -> nn.Sequential:
    """A stack of square masked convolutions (A then B, B, ...): the blind-spot demonstration."""
    layers: list[nn.Module] = [MaskedConv2d("A", channels, channels, kernel_size)]
    for _ in range(n_layers - 1):
        layers += [nn.ReLU(), MaskedConv2d("B", channels, channels, kernel_size)]
    return nn.Sequential(*layers)


