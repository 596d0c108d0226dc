"""metrics.py agrees with scikit-image and with the definitions."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vqvae_lib.metrics import (
    bits_per_pixel,
    code_entropy,
    cross_entropy_bits,
    entropy_bits,
    mse,
    perplexity,
    psnr,
    ssim,
    ssim_map,
)


def _pairs(n=4, size=48, seed=0):
    """Smooth-ish images and distorted copies, like a reconstruction would be."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)                  # some structure
    y = (x + 0.08 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
    y[1] = y[1] * 0.7 + 0.1                                         # contrast/brightness change
    y[2] = x[2]                                                     # identical pair
    return x.double(), y.double()


@pytest.mark.parametrize("size", [48, 37])
def test_gaussian_ssim_matches_skimage(size):
    x, y = _pairs(size=size)
    ours = ssim(x, y, window="gaussian", reduction="none")
    for i in range(len(x)):
        ref = structural_similarity(x[i, 0].numpy(), y[i, 0].numpy(), gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, data_range=1)
        assert abs(ours[i].item() - ref) < 1e-4
    assert ours[2].item() == pytest.approx(1.0, abs=1e-6)


def test_uniform_ssim_matches_skimage():
    x, y = _pairs(seed=1)
    ours = ssim(x, y, window="uniform", reduction="none")
    refs = [structural_similarity(x[i, 0].numpy(), y[i, 0].numpy(), data_range=1) for i in range(len(x))]
    assert torch.allclose(ours, torch.tensor(refs, dtype=ours.dtype), atol=1e-4)


def test_float32_inputs_agree_within_tolerance():
    x, y = _pairs(seed=2)
    ref = structural_similarity(x[0, 0].numpy(), y[0, 0].numpy(), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=1)
    assert abs(ssim(x[:1].float(), y[:1].float()).item() - ref) < 1e-4


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_map_matches_skimage_full_map(window):
    x, y = _pairs(n=3, seed=3)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if window == "gaussian" else {}
    _, ref = structural_similarity(x[0, 0].numpy(), y[0, 0].numpy(), data_range=1, full=True, **kw)
    ours = ssim_map(x, y, window=window)
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours[0, 0].numpy(), ref, atol=1e-4)


def test_ssim_reductions_and_shape_errors():
    x, y = _pairs()
    per = ssim(x, y, reduction="none")
    assert per.shape == (4,)
    assert ssim(x, y).item() == pytest.approx(per.mean().item())
    assert ssim(x[:, 0], y[:, 0], reduction="none").shape == (4,)      # (B, H, W) accepted
    with pytest.raises(ValueError):
        ssim(x, y[:, :, :-1])
    with pytest.raises(ValueError):
        ssim(x, y, window="box")
    with pytest.raises(ValueError):
        ssim(x[..., :5, :5], y[..., :5, :5])


def test_psnr_and_mse_match_definitions():
    x, y = _pairs(seed=4)
    per_mse = mse(x, y, reduction="none")
    assert torch.allclose(per_mse, ((x - y) ** 2).mean(dim=(1, 2, 3)))
    per_psnr = psnr(x, y, reduction="none")
    for i in (0, 1, 3):
        ref = peak_signal_noise_ratio(x[i, 0].numpy(), y[i, 0].numpy(), data_range=1)
        assert per_psnr[i].item() == pytest.approx(ref, rel=1e-6)
    assert math.isfinite(per_psnr[2].item())                          # identical pair: floored


def test_bits_per_pixel():
    assert bits_per_pixel(32, 32, 512, 128, 128) == pytest.approx(1024 * 9 / 16384)
    assert bits_per_pixel(64, 64, 2, 256, 256) == pytest.approx(1 / 16)


def test_code_entropy_and_perplexity():
    uniform = torch.arange(16).repeat(10).view(10, 4, 4)
    assert code_entropy(uniform, 16) == pytest.approx(4.0)
    assert perplexity(uniform, 16) == pytest.approx(16.0)
    collapsed = torch.full((3, 4, 4), 7)
    assert code_entropy(collapsed, 16) == pytest.approx(0.0)
    half = torch.tensor([0, 0, 1, 1])                                 # p = 1/2, 1/2 -> 1 bit
    assert code_entropy(half, 4) == pytest.approx(1.0)


def test_entropy_of_counts_and_cross_entropy_under_a_training_histogram():
    assert entropy_bits([5, 0, 0]) == pytest.approx(0.0)
    assert entropy_bits([1, 1, 1, 1]) == pytest.approx(2.0)
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert entropy_bits(np.array([3, 1])) == pytest.approx(h)
    train = torch.tensor([0] * 6 + [1] * 2)                          # q = (7, 3, 1, 1) / 12 smoothed
    test = torch.tensor([0, 1])
    expected = -(math.log2(7 / 12) + math.log2(3 / 12)) / 2
    assert cross_entropy_bits(train, test, 4) == pytest.approx(expected)
    # coding with the wrong table costs at least the codes' own entropy (Gibbs' inequality)
    assert cross_entropy_bits(train, test, 4) >= code_entropy(test, 4)
    # a code never seen in training still costs a finite number of bits
    assert math.isfinite(cross_entropy_bits(train, torch.tensor([3]), 4))
    assert cross_entropy_bits(train, torch.tensor([3]), 4, smoothing=1.0) == pytest.approx(math.log2(12))
