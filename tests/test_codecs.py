"""Real codecs through Pillow, the three VQ-VAE rates, and reading curves at equal rate."""

import json
import math
import os
import time

import numpy as np
import pytest
import torch
from skimage.data import camera
from skimage.transform import resize

from vqvae_lib.checkpoint import file_hash, save_checkpoint
from vqvae_lib.config import get_config
from vqvae_lib.evaluate import codecs as C
from vqvae_lib.evaluate import rate_quality as RQ
from vqvae_lib.evaluate import rates as R


@pytest.fixture(scope="module")
def slices():
    a = resize(camera(), (64, 64), anti_aliasing=True)
    b = resize(camera()[::-1], (64, 64), anti_aliasing=True)
    return (np.stack([a, b]) * 255).round().astype(np.uint8)          # (2, 64, 64) uint8


def test_every_codec_is_available_here():
    # JPEG 2000, WebP and AVIF come with the Pillow wheels this project installs
    assert set(C.available_codecs()) == {"JPEG", "WebP", "JPEG 2000", "AVIF"}


@pytest.mark.parametrize("name", list(C.CODECS))
def test_codec_round_trip_rate_and_quality_grow_together(slices, name):
    codec = C.available_codecs().get(name) or pytest.skip(f"{name} not in this Pillow")
    lo, hi = codec.settings[0], codec.settings[-1]
    dec, nbytes = C.roundtrip(slices[0], codec, hi)
    assert dec.shape == (64, 64) and dec.dtype == np.uint8 and nbytes > 0
    low = C.codec_at_setting(slices, codec, lo)
    high = C.codec_at_setting(slices, codec, hi)
    assert low["bpp"].shape == (2,) and np.all(high["bpp"] > low["bpp"])
    assert np.all(high["ssim"] > low["ssim"]) and np.all(high["psnr"] > low["psnr"])
    # the rate is the whole file: at least the codec's fixed per-file overhead
    assert np.all(low["bpp"] * 64 * 64 / 8 >= 0.5 * C.header_bytes(codec, 64))
    assert high["ssim"].max() > 0.8


def test_sweep_is_sorted_by_rate_and_names_its_settings(slices):
    jpeg = {"JPEG": C.CODECS["JPEG"]}
    curve = C.codec_sweep(slices, jpeg, workers=1)["JPEG"]
    assert np.all(np.diff(curve["bpp"]) > 0) and len(curve["bpp"]) == len(C.CODECS["JPEG"].settings)
    assert curve["setting_name"] == "quality" and curve["header_bytes"] > 100


def test_reading_curves_at_equal_rate_and_equal_quality():
    curve = {"bpp": np.array([0.1, 0.4, 1.6]), "ssim": np.array([0.5, 0.7, 0.9]),
             "psnr": np.array([20.0, 25.0, 30.0])}
    assert RQ.quality_at(curve, 0.2) == pytest.approx(0.6)           # halfway in log(bpp)
    assert RQ.quality_at(curve, 0.4, "psnr") == pytest.approx(25.0)
    assert RQ.quality_at(curve, 2.0) is None and RQ.quality_at(curve, 0.05) is None
    assert RQ.rate_for(curve, 0.6) == pytest.approx(0.2)
    assert RQ.rate_for(curve, 0.95) is None
    rates = R.vqvae_rates(512, 32 * 32, 128 * 128, None, torch.zeros(1, 32, 32, dtype=torch.long))
    rows = RQ.comparison_rows(rates, {"ssim": 0.8, "psnr": 22.0}, {"JPEG": curve})
    assert rows[0]["codecs"]["JPEG"]["ssim"] == pytest.approx(0.7 + 0.2 * math.log(0.5625 / 0.4) / math.log(4))
    assert "beats JPEG" in RQ.verdict(rows)[0]                        # 0.80 > 0.75
    assert "loses to JPEG" in RQ.verdict(rows, "psnr")[0]             # 22 dB < 25.6 dB
    assert "VQ-VAE" in RQ.format_comparison(rows)


def test_three_rates_in_bits_per_cell_and_per_pixel():
    train = torch.arange(8).repeat(4)                                 # uniform over 8 of K = 16
    test = torch.tensor([0, 1, 2, 3])
    r = R.vqvae_rates(16, 4, 64, train, test, prior_bits=1.5)
    assert list(r) == ["log2 K", "training histogram", "prior NLL"]
    assert r["log2 K"]["bits_per_cell"] == 4 and r["log2 K"]["bpp"] == pytest.approx(4 * 4 / 64)
    assert r["training histogram"]["bits_per_cell"] == pytest.approx(math.log2(48 / 5))
    assert r["prior NLL"]["bpp"] == pytest.approx(1.5 * 4 / 64)
    # never worse than fixed length: a coder falls back to log2 K
    assert R.histogram_bits(torch.zeros(100, dtype=torch.long), torch.tensor([5]), 16) == 4.0


def test_prior_rate_only_from_a_prior_fitted_to_this_checkpoint(tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"stand-in")
    bits, why = R.prior_test_bits(run, ckpt)
    assert bits is None and "notebook 06" in why
    prior = run / "prior" / "best.pt"
    (run / "prior").mkdir()
    (run / "prior" / "metrics.json").write_text(json.dumps({"test_bits": 3.25}))
    save_checkpoint(prior, model=torch.nn.Linear(1, 1), cfg=get_config("smoke"),
                    extra={"kind": "pixelcnn_prior", "vqvae_checkpoint": str(ckpt),
                           "vqvae_sha1": "0123456789abcdef"})
    assert R.prior_test_bits(run, ckpt)[0] is None                     # another VQ-VAE's prior
    save_checkpoint(prior, model=torch.nn.Linear(1, 1), cfg=get_config("smoke"),
                    extra={"kind": "pixelcnn_prior", "vqvae_checkpoint": str(ckpt),
                           "vqvae_sha1": file_hash(ckpt)})
    assert R.prior_test_bits(run, ckpt)[0] == pytest.approx(3.25)
    future = time.time() + 60                                          # touched, same bytes
    os.utime(ckpt, (future, future))
    assert R.prior_test_bits(run, ckpt)[0] == pytest.approx(3.25)
    ckpt.write_bytes(b"retrained at the same path")                    # VQ-VAE retrained since
    assert R.prior_test_bits(run, ckpt)[0] is None


def test_rate_quality_figure_shows_every_codec_and_every_rate():
    from vqvae_lib.evaluate.rate_figures import plot_rate_quality

    curve = {"bpp": np.array([0.1, 0.4, 1.6]), "ssim": np.array([0.5, 0.7, 0.9]),
             "psnr": np.array([20.0, 25.0, 30.0])}
    curves = {n: curve for n in ("JPEG", "WebP", "JPEG 2000", "AVIF", "downsample + bicubic")}
    train = torch.arange(512)
    rates = R.vqvae_rates(512, 1024, 16384, train, torch.arange(512), prior_bits=3.3)
    fig = plot_rate_quality(curves, rates, {"ssim": 0.95, "psnr": 33.0})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert all(any(lab.startswith(n) for lab in labels) for n in curves)
    assert sum("VQ-VAE" in lab for lab in labels) == 3


def test_rate_quality_round_trips_for_notebook_06(tmp_path):
    """Notebook 05 saves its codec curves and rates; notebook 06 reads them back unchanged."""
    from vqvae_lib.evaluate import rate_quality as RQ

    curves = {"JPEG": {"bpp": np.array([0.2, 0.5]), "ssim": np.array([0.8, 0.95]),
                       "psnr": np.array([30.0, 36.0]), "setting_name": "quality",
                       "header_bytes": 224}}
    rates = R.vqvae_rates(16, 4, 64, None, torch.tensor([0, 1]))
    path = RQ.save_rate_quality(tmp_path / "rq.json", curves, rates, {"ssim": 0.9, "psnr": 33.0},
                                4, 64)
    back = RQ.load_rate_quality(path)
    assert np.array_equal(back["curves"]["JPEG"]["bpp"], curves["JPEG"]["bpp"])
    assert back["rates"] == rates and back["cells"] == 4 and back["pixels"] == 64
    rows = RQ.comparison_rows(back["rates"], back["model"], back["curves"])
    assert rows[0]["codecs"]["JPEG"]["ssim"] == pytest.approx(
        RQ.comparison_rows(rates, {"ssim": 0.9, "psnr": 33.0}, curves)[0]["codecs"]["JPEG"]["ssim"])
