"""The gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"), the default prior over VQ-VAE code grids (van den Oord et al. 2017, "Neural Discrete
Representation Learning", section 3.2): an autoregressive model in raster order (row by row, left
to right), ``p(c) = prod_i p(c_i | c_<i)``, sampled one cell at a time. Three ideas:

1. **Masked convolutions.** A convolution may only look at cells that come *before* the cell it
   predicts. The first layer must not see the current cell either (mask type **A**); later
   layers may see "their own" position, which by then only carries information from earlier
   cells (type **B**). Instead of multiplying a square kernel by a 0/1 mask (wasting half the
   multiplications) we use the equivalent, cheaper trick: a kernel that only *has* the allowed
   rows/columns, plus a one-cell shift of the input for type A.
2. **Two stacks, no blind spot.** Stacking masked 3x3 convolutions leaves a triangle of earlier
   cells, up and to the right, that no layer ever sees. A *vertical* stack sees all rows above
   (full width); a *horizontal* stack sees the current row to the left and receives the
   vertical stack's features. Together they cover every earlier cell
   (see ``figures.receptive_fields``).
3. **Gates.** Each layer computes ``tanh(W_f * x) * sigmoid(W_g * x)`` (like an LSTM gate),
   optionally with a class-dependent bias (here: the position of the slice in the brain).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .draw import CodePrior

__all__ = ["GatedPixelCNN", "GatedLayer", "VerticalConv", "HorizontalConv", "down_shift",
           "right_shift", "gate", "MaskedConv2d", "plain_pixelcnn"]


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row one down (row 0 becomes zeros): row i now holds row i-1. (B, C, h, w)"""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every column one right (column 0 becomes zeros). (B, C, h, w)"""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class VerticalConv(nn.Module):
    """A ``(k//2 + 1) x k`` convolution whose output at row i sees input rows ``i-k//2 .. i``: a
    k x k kernel with its bottom ``k//2`` rows masked out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (self.pad + 1, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, self.pad, self.pad, 0)))  # left, right, top


class HorizontalConv(nn.Module):
    """A ``1 x (k//2 + 1)`` convolution whose output at column j sees columns ``j-k//2 .. j``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (1, self.pad + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, 0, 0, 0)))  # pad left only


def gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the channel halves. (B, 2C, ...) -> (B, C, ...)"""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated PixelCNN layer (van den Oord et al. 2016, figure 2).

    vertical:   v' = gate(Vconv(v) + c)
    horizontal: h' = h + W_1x1 gate(Hconv(h) + W_1x1 Vconv(v) + c)
    where c is an optional per-class bias. The vertical features enter the horizontal stack at the
    *same* position; that is allowed because the vertical stack only ever sees rows above.

    Args:
        channels: C, the width of both stacks.
        kernel_size: k of the vertical (k//2+1 x k) and horizontal (1 x k//2+1) convolutions.
        n_classes: conditioning classes (0: unconditional).
    """

    def __init__(self, channels: int, kernel_size: int, n_classes: int = 0):
        super().__init__()
        C = channels
        self.v_conv = VerticalConv(C, 2 * C, kernel_size)
        self.h_conv = HorizontalConv(C, 2 * C, kernel_size)
        self.v_to_h = nn.Conv2d(2 * C, 2 * C, 1)
        self.h_out = nn.Conv2d(C, C, 1)
        self.cond = nn.Embedding(n_classes, 2 * C) if n_classes > 0 else None

    def vertical(self, v: torch.Tensor, bias) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.v_conv(v)                        # (B, 2C, h, w)
        return gate(v_pre + bias), self.v_to_h(v_pre)  # next v (B, C, h, w), v->h (B, 2C, h, w)

    def horizontal(self, h: torch.Tensor, v_to_h: torch.Tensor, bias) -> torch.Tensor:
        return h + self.h_out(gate(self.h_conv(h) + v_to_h + bias))  # (B, C, h, w)


class GatedPixelCNN(CodePrior):
    """Autoregressive model of ``(B, h, w)`` code grids with ``num_codes`` classes per cell: the
    logits at (i, j) depend only on cells before (i, j) in raster order (and on the class ``y``).
    The first layer uses a larger kernel (``first_kernel``) to grow the receptive field quickly.

    ``grid_size=(h, w)`` adds a learned **position embedding** to every cell's input. Convolutions
    are translation-equivariant and see only ``reach`` cells back, so without it the network
    cannot tell the middle of the head from its edge -- and samples become brain texture that
    fills the whole grid. Positions are fixed, not data, so causality is unaffected.

    Args:
        num_codes: K, the codebook size (classes per cell).
        channels: C, the width of the network.
        n_layers: gated layers.
        kernel_size: k of every layer but the first.
        first_kernel: k of the first layer.
        n_classes: slice-position classes (0: unconditional).
        grid_size: (h, w) of the code grids, for the position embedding (None: no embedding).
    """

    def __init__(self, num_codes: int, channels: int = 64, n_layers: int = 8,
                 kernel_size: int = 3, first_kernel: int = 5, n_classes: int = 0,
                 grid_size: tuple[int, int] | None = None):
        super().__init__()
        self.hparams = dict(num_codes=num_codes, channels=channels, n_layers=n_layers,
                            kernel_size=kernel_size, first_kernel=first_kernel, n_classes=n_classes,
                            grid_size=None if grid_size is None else list(grid_size))
        self.num_codes, self.n_classes = num_codes, n_classes
        self.grid_size = None if grid_size is None else tuple(grid_size)
        self.embed = nn.Embedding(num_codes, channels)
        self.position = (nn.Parameter(torch.zeros(channels, *grid_size)) if grid_size is not None
                         else None)  # (C, h, w)
        kernels = [first_kernel] + [kernel_size] * (n_layers - 1)
        self.layers = nn.ModuleList(GatedLayer(channels, k, n_classes) for k in kernels)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, num_codes, 1))
        # How far back (in rows / columns) the output can look; sampling crops to this window.
        self.reach = sum(k // 2 for k in kernels) + 1

    def output_layer(self) -> nn.Module:
        """The last layer (its bias is set to the code histogram before training)."""
        return self.head[-1]

    # -- the two stacks ----------------------------------------------------------------
    def embed_codes(self, codes: torch.Tensor, row: int = 0, col: int = 0) -> torch.Tensor:
        """(B, h, w) codes -> (B, C, h, w), plus the position embedding of the window whose
        top-left cell is (``row``, ``col``) in the full grid."""
        e = self.embed(codes).permute(0, 3, 1, 2)  # (B, C, h, w)
        if self.position is None:
            return e
        return e + self.position[:, row:row + codes.shape[1], col:col + codes.shape[2]]

    def _biases(self, y) -> list:
        """Each layer's conditioning bias: one vector per class (B, 2C, 1, 1), or 0."""
        if y is None or not self.n_classes:
            return [0.0] * len(self.layers)
        return [layer.cond(y)[:, :, None, None] for layer in self.layers]

    def vertical_stack(self, e: torch.Tensor, biases) -> list[torch.Tensor]:
        """Vertical-to-horizontal inputs for every layer; ``e`` is already down-shifted (mask A)."""
        v, v_to_h = e, []
        for layer, bias in zip(self.layers, biases, strict=True):
            v, vh = layer.vertical(v, bias)
            v_to_h.append(vh)  # (B, 2C, h, w)
        return v_to_h

    def horizontal_stack(self, e: torch.Tensor, v_to_h, biases) -> torch.Tensor:
        """Logits from the right-shifted embedding ``e`` (mask A) and the vertical features."""
        h = e
        for layer, vh, bias in zip(self.layers, v_to_h, biases, strict=True):
            h = layer.horizontal(h, vh, bias)
        return self.head(h)  # (B, K, h, w)

    def forward_embedded(self, e: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from an embedded grid ``e`` (B, C, h, w); used to measure receptive fields.
        The shifts are mask A: the vertical stack sees the rows above, the horizontal stack the
        cells to the left, never the cell itself."""
        biases = self._biases(y)
        return self.horizontal_stack(right_shift(e), self.vertical_stack(down_shift(e), biases),
                                     biases)

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, h, w) for ``codes`` (B, h, w); ``y`` (B,) slice-position classes."""
        self.check_shape(codes.shape[1:])
        return self.forward_embedded(self.embed_codes(codes), y)  # (B, K, h, w)

    def _sample_row(self, codes, i, y, draw, cache) -> None:
        """Fill row ``i`` of ``codes`` (n, h, w) in place, left to right, each code drawn by
        ``draw`` (logits (n, K) -> codes (n,)); ``cache`` is the transformer's, unused here.
        Each step only runs what it needs: the vertical stack once per row on the ``reach`` rows
        above it, the horizontal stack on the ``reach`` cells to the left, so 32x32 = 1024 steps
        take seconds."""
        biases = self._biases(y)
        r0 = max(0, i - self.reach)  # rows above that can still influence row i
        e_v = down_shift(self.embed_codes(codes[:, r0:i + 1], r0, 0))  # (n, C, rows, w)
        v_to_h = [vh[:, :, -1:] for vh in self.vertical_stack(e_v, biases)]  # (n, 2C, 1, w)
        for j in range(codes.shape[2]):
            c0 = max(0, j - self.reach)
            e_h = right_shift(self.embed_codes(codes[:, i:i + 1, c0:j + 1], i, c0))  # (n, C, 1, j')
            logits = self.horizontal_stack(e_h, [vh[..., c0:j + 1] for vh in v_to_h],
                                           biases)[:, :, 0, -1]  # (n, K)
            codes[:, i, j] = draw(logits)


# ---- the first PixelCNN's masked convolution, kept to show its blind spot (notebook 06) ------
class MaskedConv2d(nn.Conv2d):
    """The *original* PixelCNN masked convolution (van den Oord et al. 2016, "Pixel Recurrent
    Neural Networks"): a square kernel multiplied by a raster-order mask. Type A zeroes the
    centre and everything after it; type B keeps the centre. Stacking these leaves a blind spot
    (cells up and to the right that no layer sees), which :class:`GatedPixelCNN` removes with
    two stacks.

    Args:
        mask_type: ``"A"`` (first layer: not the centre) or ``"B"`` (later layers).
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: k of the square k x k kernel.
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
    """A stack of square masked convolutions (A, then B, B, ...): the blind-spot demonstration.

    Args:
        channels: width.
        n_layers: masked convolutions.
        kernel_size: k of each.
    """
    layers: list[nn.Module] = [MaskedConv2d("A", channels, channels, kernel_size)]
    for _ in range(n_layers - 1):
        layers += [nn.ReLU(), MaskedConv2d("B", channels, channels, kernel_size)]
    return nn.Sequential(*layers)
