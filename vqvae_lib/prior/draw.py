"""What every prior over code grids shares: the contract (:class:`CodePrior`), drawing a code
from logits (temperature per sample, greedy rows at temperature 0, reproducible with a
``torch.Generator``), and the likelihood in bits per cell, always computed in fp32."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CodePrior", "sampling_temperatures", "sampling_mode", "draw_codes", "nll_bits",
           "start_at_unigram"]


def sampling_temperatures(temperature, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """One temperature per sample -> ``(temps (n, 1) clamped > 0, greedy (n,) bool)``.

    Args:
        temperature: one number or ``n`` numbers, each finite and >= 0; 0 means "take the most
            likely code".
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


@contextlib.contextmanager
def sampling_mode(prior):
    """Around a sampling loop: the prior in eval mode and, on a CPU, one thread (thousands of tiny
    steps: thread hand-offs cost more than they save, and are ruinous when other jobs share the
    cores); both restored afterwards.

    Args:
        prior: the prior about to sample.
    """
    was_training, threads = prior.training, torch.get_num_threads()
    prior.eval()
    if next(prior.parameters()).device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        prior.train(was_training)
        torch.set_num_threads(threads)


def draw_codes(logits: torch.Tensor, temps: torch.Tensor, greedy: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one code per row of ``logits`` (n, K) from ``softmax(logits / T)``; greedy rows take
    the arg-max. Shared by every prior's sampling loop.

    Args:
        logits: (n, K) unnormalised log-probabilities.
        temps: (n, 1) temperatures.
        greedy: (n,) rows that take the most likely code.
        generator: a torch.Generator for reproducible draws.
    """
    probs = F.softmax(logits.float() / temps, dim=-1)                        # (n, K), in fp32
    pick = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return torch.where(greedy, logits.argmax(-1), pick)


def nll_bits(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of each grid in bits per latent cell, shared by every prior.

    Args:
        logits: (B, K, h, w) from a prior's forward pass.
        codes: (B, h, w) the grids being scored.

    Returns:
        (B,) bits per cell: the cross-entropy in nats divided by ln 2.
    """
    nats = F.cross_entropy(logits.float(), codes, reduction="none")          # (B, h, w), fp32
    return nats.flatten(1).mean(1) / math.log(2)


@torch.no_grad()
def start_at_unigram(prior, train_codes: torch.Tensor) -> None:
    """Initialise the output layer so the untrained prior predicts the training code histogram.

    Zero weights and log-frequency biases: training starts at the unigram baseline (instead of
    several bits above it) and spends its steps on what only context can explain.

    Args:
        prior: a prior with ``output_layer()`` and ``num_codes``.
        train_codes: (N, h, w) training grids.
    """
    counts = torch.bincount(train_codes.reshape(-1), minlength=prior.num_codes).float() + 1.0
    last = prior.output_layer()
    last.weight.zero_()
    last.bias.copy_((counts / counts.sum()).log())


class CodePrior(nn.Module):
    """What every prior over code grids shares: ``forward(codes, y) -> logits (B, K, h, w)`` is
    the subclass's; the likelihood in bits per cell follows from it."""

    def nll_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood of each grid in bits per latent cell. (B,)"""
        return nll_bits(self(codes, y), codes)

    def training_loss(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """What the optimiser minimises: the mean NLL in bits per cell (a scalar)."""
        return self.nll_bits(codes, y).mean()

    def prepare(self, train_codes: torch.Tensor) -> None:
        """Set up from the training grids before the first step: start at the unigram."""
        start_at_unigram(self, train_codes)

    def check_shape(self, shape) -> None:
        """Refuse a grid ``shape`` (h, w) this prior was not built for (its position embedding
        has one entry per cell); None means its own. Priors without a fixed grid
        (``grid_size`` None) take any shape."""
        grid = getattr(self, "grid_size", None)
        if shape is not None and grid is not None and tuple(shape) != tuple(grid):
            raise ValueError(f"this prior was built for {tuple(grid)} code grids, "
                             f"got {tuple(shape)}")
