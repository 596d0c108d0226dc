"""Drawing codes from logits, shared by every prior's sampler: temperature per sample, greedy
rows (temperature 0), reproducible with a ``torch.Generator``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sampling_temperatures", "draw_codes"]


def sampling_temperatures(temperature, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """One temperature per sample -> ``(temps (n, 1) clamped > 0, greedy (n,) bool)``.

    Args:
        temperature: one number or ``n`` numbers; 0 means "take the most likely code".
        n: the number of samples.
        device: where the tensors live.
    """
    temps = torch.as_tensor(temperature, dtype=torch.float32, device=device).reshape(-1)
    temps = temps.expand(n) if temps.numel() == 1 else temps
    if temps.numel() != n:
        raise ValueError(f"temperature has {temps.numel()} values for {n} samples")
    return temps.clamp_min(1e-6)[:, None], temps <= 0


def draw_codes(logits: torch.Tensor, temps: torch.Tensor, greedy: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one code per row of ``logits`` (n, K) at temperature ``temps`` (n, 1); greedy rows
    take the arg-max. Shared by every prior's sampler.

    Args:
        logits: (n, K) unnormalised log-probabilities.
        temps: (n, 1) temperatures.
        greedy: (n,) rows that take the most likely code.
        generator: a torch.Generator for reproducible draws.
    """
    pick = torch.multinomial(F.softmax(logits.float() / temps, dim=-1), 1, generator=generator)
    return torch.where(greedy, logits.argmax(-1), pick[:, 0])
