"""The head check: solidity of a head's outline, its threshold from real heads, and redrawing the
samples that fail it (vqvae_lib/prior/head_check.py, used by prior.sample.generate)."""

import numpy as np
import pytest
import torch

from vqvae_lib.prior.head_check import (
    fit_head_check,
    head_solidity,
    passes_head_check,
    redraw_failures,
)
from vqvae_lib.prior.sample import generate

SIZE = 48


def disk(radius: float = 14.0, cut: bool = False, hole: bool = False) -> torch.Tensor:
    """A bright disk on black (1, SIZE, SIZE); ``cut`` removes a wedge (a broken outline),
    ``hole`` punches a black square inside."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    dy, dx = yy - SIZE / 2, xx - SIZE / 2
    img = ((dy ** 2 + dx ** 2) <= radius ** 2).float() * 0.6
    if cut:
        img[(dx > 0) & (dy.abs() < dx * 0.8)] = 0
    if hole:
        img[SIZE // 2 - 5:SIZE // 2 + 5, SIZE // 2 - 5:SIZE // 2 + 5] = 0
    return img[None]


def test_solidity_is_high_for_a_convex_head_and_low_for_a_broken_one():
    s = head_solidity(torch.stack([disk(), disk(cut=True), disk(hole=True), torch.zeros(1, SIZE, SIZE)]))
    assert s[0] > 0.95
    assert s[1] < 0.85 and s[2] < 0.9
    assert s[3] == 0                                             # no head at all


def test_solidity_ignores_specks_of_noise_outside_the_head():
    img = disk()
    img[0, 2, 2] = img[0, 45, 40] = 1.0                          # single bright pixels
    assert head_solidity(img[None])[0] == pytest.approx(head_solidity(disk()[None])[0])


def test_a_check_fitted_on_real_heads_passes_them_and_fails_broken_ones():
    real = torch.stack([disk(r) for r in (10, 12, 14, 16, 18)])
    check = fit_head_check(real, quantile=0.0)
    assert set(check) == {"min_solidity", "quantile", "level", "n"} and check["n"] == 5
    assert passes_head_check(real, check).all()
    broken = torch.stack([disk(14, cut=True), disk(16, hole=True)])
    assert not passes_head_check(broken, check).any()
    with pytest.raises(ValueError, match="quantile"):
        fit_head_check(real, quantile=1.0)


def test_redraw_replaces_only_the_failures_and_reports_them():
    calls = []

    def draw(index):
        calls.append(index.clone())
        first = len(calls) == 1
        imgs = torch.stack([disk(cut=first and int(i) % 2 == 0) for i in index])
        return {"images": imgs, "codes": torch.full((len(index),), len(calls))}

    check = fit_head_check(disk()[None], quantile=0.0)
    out, report = redraw_failures(draw, 6, lambda im: passes_head_check(im, check), rounds=3)
    assert passes_head_check(out["images"], check).all()
    assert report == {"first_failed": 0.5, "redrawn": 3, "still_failing": 0}
    assert torch.equal(calls[1], torch.tensor([0, 2, 4]))       # only the failures are redrawn
    assert out["codes"].tolist() == [2, 1, 2, 1, 2, 1]           # the passing first draws kept


def test_redraw_gives_up_after_its_rounds_and_keeps_the_last_draw():
    def draw(index):
        return {"images": torch.stack([disk(cut=True) for _ in index]), "codes": index.clone()}

    check = fit_head_check(disk()[None], quantile=0.0)
    out, report = redraw_failures(draw, 4, lambda im: passes_head_check(im, check), rounds=2)
    assert report == {"first_failed": 1.0, "redrawn": 8, "still_failing": 4}
    assert len(out["images"]) == 4


class _CoinPrior(torch.nn.Module):
    """Draws 1x1 'grids': code 0 (a whole head) or 1 (a broken one), at random."""
    grid_size, n_classes = (1, 1), 0

    def sample(self, n, shape, temperature=1.0, y=None, generator=None, progress=False):
        return torch.randint(0, 2, (n, 1, 1), generator=generator)


class _DiskDecoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def decode_codes(self, codes):
        return torch.stack([disk(cut=bool(c)) for c in codes.reshape(-1)])


def test_generate_redraws_broken_heads_only_when_the_prior_has_a_check():
    prior, vq = _CoinPrior(), _DiskDecoder()
    plain = generate(prior, vq, 16, seed=0)                      # no check stored: as drawn
    assert plain["head_check"] is None and plain["codes"].sum() > 0
    prior.head_check = fit_head_check(disk()[None], quantile=0.0)
    out = generate(prior, vq, 16, seed=0, rounds=20)             # a coin: 20 redraws suffice
    assert out["codes"].sum() == 0 and passes_head_check(out["images"], prior.head_check).all()
    assert out["head_check"]["first_failed"] == pytest.approx(float(plain["codes"].float().mean()))
    again = generate(prior, vq, 16, seed=0, rounds=20)       # same seed, same slices
    assert torch.equal(again["images"], out["images"])
    off = generate(prior, vq, 16, seed=0, head_check=False)
    assert torch.equal(off["codes"], plain["codes"]) and off["head_check"] is None
    with pytest.raises(ValueError, match="3 values for 16 samples"):
        generate(prior, vq, 16, temperature=[1.0, 0.5, 0.7])
    assert np.isfinite(out["seconds"])
