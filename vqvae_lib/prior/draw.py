"""What every prior over code grids shares: the contract (:class:`CodePrior`), the raster-order
sampling loop, drawing a code from logits (temperature per sample, greedy rows at temperature 0,
reproducible with a ``torch.Generator``), and the likelihood in bits per cell, always in fp32."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..common import progress as progress_bar

__all__ = ["CodePrior", "sampling_temperatures", "draw_codes"]


def sampling_temperatures(temperature, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """One temperature per sample -> ``(temps (n, 1) clamped > 0, greedy (n,) bool)``.

    Args:
        temperature: one number or ``n`` numbers, each finite and >= 0 (0: the most likely code).
        n: the number of samples.
        device: where the tensors live.
    """
    temps = torch.as_tensor(temperature, dtype=torch.float32, device=device).reshape(-1)
    temps = temps.expand(n) if temps.numel() == 1 else temps
    if temps.numel() != n:
        raise ValueError(f"temperature has {temps.numel()} values for {n} samples")
    if not bool(torch.isfinite(temps).all()) or bool((temps < 0).any()):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = most likely code), "
                         f"got {temps.tolist()}")
    return temps.clamp_min(1e-6)[:, None], temps <= 0


def draw_codes(logits: torch.Tensor, temps: torch.Tensor, greedy: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw a code per row of ``logits`` (n, K) from ``softmax(logits / T)``, arg-max if greedy.

    Args:
        logits: (n, K) unnormalised log-probabilities.
        temps: (n, 1) temperatures.
        greedy: (n,) rows that take the most likely code.
        generator: a torch.Generator for reproducible draws.
    """
    probs = F.softmax(logits.float() / temps, dim=-1)                        # (n, K), in fp32
    pick = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return torch.where(greedy, logits.argmax(-1), pick)


class CodePrior(nn.Module):
    """What every prior over code grids shares: a subclass has ``forward(codes, y) -> logits
    (B, K, h, w)``, ``output_layer()`` and ``_sample_row``; the rest follows from them."""

    def nll_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Bits per latent cell of each grid: the cross-entropy in nats (fp32) / ln 2. (B,)

        Args:
            codes: (B, h, w) the grids being scored.
            y: (B,) slice-position classes, or None.
        """
        nats = F.cross_entropy(self(codes, y).float(), codes, reduction="none")  # (B, h, w)
        return nats.flatten(1).mean(1) / math.log(2)

    @torch.no_grad()
    def prepare(self, train_codes: torch.Tensor) -> None:
        """Start at the unigram (zero output weights, log-frequency biases), not several bits
        above it: training spends its steps on what only context can explain.

        Args:
            train_codes: (N, h, w) training grids.
        """
        counts = torch.bincount(train_codes.reshape(-1), minlength=self.num_codes).float() + 1.0
        last = self.output_layer()
        last.weight.zero_()
        last.bias.copy_((counts / counts.sum()).log())

    def check_shape(self, shape) -> None:
        """Refuse a grid ``shape`` (h, w) other than ``grid_size`` (the position embedding has
        one entry per cell); a prior without one takes any shape."""
        if self.grid_size is not None and tuple(shape) != self.grid_size:
            raise ValueError(f"this prior was built for {self.grid_size} code grids, "
                             f"got {tuple(shape)}")

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int], temperature: float | Sequence[float] = 1.0,
               y: torch.Tensor | None = None, generator: torch.Generator | None = None,
               progress: bool = False) -> torch.Tensor:
        """Draw ``n`` code grids of ``shape`` (h, w) in raster order, all samples in one batch:
        row by row, each row filled left to right by the prior's ``_sample_row``. Logits are
        divided by the temperature: T < 1 is more conservative, T > 1 more varied.

        Args:
            n: number of grids.
            shape: (h, w); must equal ``grid_size``.
            temperature: one number or one per sample (0 = most likely code).
            y: slice-position class (one, or one per sample) for a conditioned prior.
            generator: a torch.Generator for reproducible samples.
            progress: show a progress bar over rows.
        """
        self.check_shape(shape)
        device = self.embed.weight.device
        temps, greedy = sampling_temperatures(temperature, n, device)  # (n, 1), (n,)
        draw = partial(draw_codes, temps=temps, greedy=greedy, generator=generator)
        y = None if y is None else torch.as_tensor(y, device=device).reshape(-1).expand(n)
        codes = torch.zeros(n, *shape, dtype=torch.long, device=device)
        cache: list = []                        # what a prior keeps from row to row
        was_training, threads = self.training, torch.get_num_threads()
        self.eval()
        if device.type == "cpu":  # tiny steps: thread hand-offs cost more than they save
            torch.set_num_threads(1)
        try:
            for i in progress_bar(range(shape[0]), desc="sampling rows", leave=False,
                                  disable=not progress):
                self._sample_row(codes, i, y, draw, cache)
        finally:
            self.train(was_training)
            torch.set_num_threads(threads)
        return codes  # (n, h, w)
