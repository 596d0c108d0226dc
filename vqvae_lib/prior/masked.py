"""A masked-code prior (``prior_kind="masked"``): predict hidden codes from the visible ones and
draw a grid in a dozen parallel steps, most confident codes first -- MaskGIT (Chang et al. 2022,
"MaskGIT: Masked Generative Image Transformer"), here with a convolutional network.

Why not raster order? An autoregressive prior draws 1024 codes one by one, each seeing only the
cells before it; an early mistake in the texture is never undone, and on a CPU it learns texture
before layout. A masked model is trained like a denoiser: hide a random share of the cells
(anywhere from a few to all of them), predict every hidden code from the visible ones and the
cell's position. Sampling starts from an all-hidden grid and, in ``steps`` rounds, draws a code
for every hidden cell and **keeps only the most confident ones** (the share kept follows a cosine
schedule); later rounds see the kept codes. Background and the head's outline are sure first,
then the tissue layout, and the uncertain texture is drawn last, consistent with all of it.

The network: code embeddings (plus a "hidden" token), a learned position embedding and the
optional slice-position class, then residual blocks of 3x3 convolutions with dilations
1, 2, 4, 8, 16: after one cycle every cell sees the whole 32x32 grid.

Likelihood. The model gives no exact ``p(grid)``, but decoding in a *fixed* order of ``steps``
chunks is a real code: send chunk 1 given nothing, chunk 2 given chunk 1, ... with the codes
inside a chunk coded independently given the earlier chunks. :meth:`MaskedCodePrior.nll_bits`
reports that code length per cell (an upper bound on the model's true NLL), comparable with the
autoregressive priors' NLL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import progress as progress_bar
from .draw import CodePrior, sampling_temperatures

__all__ = ["MaskedCodePrior", "ResidualBlock", "unmasked_counts"]

DILATIONS = (1, 2, 4, 8, 16)


def unmasked_counts(cells: int, steps: int) -> list[int]:
    """How many cells are visible after each of ``steps`` rounds (cosine schedule), ending at all.

    Args:
        cells: cells in the grid.
        steps: rounds of parallel decoding.
    """
    hidden = [math.floor(cells * math.cos(math.pi / 2 * t / steps)) for t in range(1, steps + 1)]
    counts, prev = [], 0
    for h in hidden:
        prev = max(prev + 1, cells - h)  # at least one new cell per round
        counts.append(min(prev, cells))
    counts[-1] = cells
    return counts


class ResidualBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), the first 3x3 convolution dilated."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(8, channels), nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation),
            nn.GroupNorm(8, channels), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class MaskedCodePrior(CodePrior):
    """Masked prediction of codes with a dilated convolutional network; see the module docstring.

    Args:
        num_codes: K, codes of the VQ-VAE.
        channels: width of the network.
        n_layers: residual blocks (dilations cycle through 1, 2, 4, 8, 16).
        n_classes: slice-position classes (0 = unconditional).
        grid_size: (h, w) of the code grid.
        steps: rounds of parallel decoding (sampling and the likelihood's chunks).
        seed: seed of the fixed order used by :meth:`nll_bits`.
    """

    def __init__(self, num_codes: int, channels: int = 64, n_layers: int = 8, n_classes: int = 0,
                 grid_size: Sequence[int] = (32, 32), steps: int = 12, seed: int = 0):
        super().__init__()
        h, w = grid_size
        self.hparams = dict(num_codes=num_codes, channels=channels, n_layers=n_layers,
                            n_classes=n_classes, grid_size=[h, w], steps=steps, seed=seed)
        self.num_codes, self.n_classes, self.steps = num_codes, n_classes, steps
        self.grid_size, self.mask_id = (h, w), num_codes
        self.embed = nn.Embedding(num_codes + 1, channels)        # the last row: "hidden"
        self.position = nn.Parameter(torch.zeros(channels, h, w))
        self.cond = nn.Embedding(n_classes, channels) if n_classes > 0 else None
        self.blocks = nn.Sequential(*(ResidualBlock(channels, DILATIONS[i % len(DILATIONS)])
                                      for i in range(n_layers)))
        self.head = nn.Sequential(nn.GroupNorm(8, channels), nn.GELU(),
                                  nn.Conv2d(channels, num_codes, 1))
        order = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("order", order, persistent=False)    # the likelihood's fixed order

    def output_layer(self) -> nn.Module:
        """The last layer (its bias is set to the code histogram before training)."""
        return self.head[-1]

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, h, w) for every cell of ``codes`` (B, h, w), where hidden cells hold
        ``mask_id`` (= K). Visible cells are predicted too (only hidden ones are trained)."""
        x = self.embed(codes).permute(0, 3, 1, 2) + self.position  # (B, C, h, w)
        if self.cond is not None and y is not None:
            x = x + self.cond(y)[:, :, None, None]
        return self.head(self.blocks(x))

    # -- training and likelihood --------------------------------------------------------------
    def training_loss(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Hide a cosine-distributed share of each grid's cells; bits per hidden cell."""
        B = len(codes)
        share = torch.cos(math.pi / 2 * torch.rand(B, 1, 1, device=codes.device))  # (B, 1, 1)
        hidden = torch.rand(codes.shape, device=codes.device) < share
        hidden[:, 0, 0] |= ~hidden.flatten(1).any(1)                 # at least one hidden cell
        logits = self(torch.where(hidden, self.mask_id, codes), y)
        nats = F.cross_entropy(logits, codes, reduction="none")      # (B, h, w)
        return nats[hidden].mean() / math.log(2)

    def nll_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code length in bits per cell of decoding in the fixed order, ``steps`` chunks. (B,)"""
        B, h, w = codes.shape
        flat = codes.reshape(B, -1)
        visible = torch.zeros(h * w, dtype=torch.bool, device=codes.device)
        bits = torch.zeros(B, device=codes.device)
        start = 0
        for count in unmasked_counts(h * w, self.steps):
            chunk = self.order[start:count]
            x = torch.where(visible, flat, self.mask_id).view(B, h, w)
            logp = F.log_softmax(self(x, y).float().flatten(2), dim=1)  # (B, K, hw)
            bits -= logp[:, :, chunk].gather(1, flat[:, None, chunk])[:, 0].sum(1) / math.log(2)
            visible[chunk] = True
            start = count
        return bits / (h * w)

    # -- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int] | None = None,
               temperature: float | Sequence[float] = 1.0, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Draw ``n`` grids in ``steps`` rounds: each round draws every hidden cell at the given
        temperature and keeps the most confident draws (confidence = log-probability of the
        drawn code plus Gumbel noise that fades over the rounds, as in MaskGIT)."""
        self.check_shape(shape)
        h, w = self.grid_size
        device = self.embed.weight.device
        temps, greedy = sampling_temperatures(temperature, n, device)  # (n, 1), (n,)
        y = None if y is None else torch.as_tensor(y, device=device).reshape(-1).expand(n)
        codes = torch.full((n, h * w), self.mask_id, dtype=torch.long, device=device)
        was_training = self.training
        self.eval()
        rounds = list(enumerate(unmasked_counts(h * w, self.steps)))
        for t, count in progress_bar(rounds, desc="sampling rounds", leave=False, disable=not progress):
            logits = self(codes.view(n, h, w), y).float().flatten(2).transpose(1, 2)  # (n, hw, K)
            logp = F.log_softmax(logits / temps[:, :, None], dim=-1)
            u = torch.rand(logp.shape, generator=generator, device=device).clamp_(1e-9, 1 - 1e-9)
            drawn = (logp - (-u.log()).log()).argmax(-1)           # Gumbel-max = a categorical draw
            drawn = torch.where(greedy[:, None], logits.argmax(-1), drawn)   # (n, hw)
            conf = logp.gather(-1, drawn[..., None])[..., 0]
            u = torch.rand(conf.shape, generator=generator, device=device).clamp_(1e-9, 1 - 1e-9)
            fade = 1.0 - (t + 1) / self.steps
            conf = conf + fade * temps * (-(-u.log()).log())
            hidden = codes == self.mask_id
            conf = conf.masked_fill(~hidden, float("inf"))           # visible cells stay
            keep = conf.topk(count, dim=1).indices                  # (n, count)
            new = torch.where(hidden, drawn, codes)
            codes = torch.full_like(codes, self.mask_id).scatter(1, keep, new.gather(1, keep))
        self.train(was_training)
        return codes.view(n, h, w)
