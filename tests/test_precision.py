"""Mixed precision: bf16 autocast where the CPU (or GPU) computes it natively, fp32 elsewhere, a
switch that forces either, a clear message when bf16 is asked for and missing, and every
reported number computed in fp32."""

import pytest
import torch

from vqvae_lib import runtime
from vqvae_lib.config import Config, get_config
from vqvae_lib.errors import ConfigError
from vqvae_lib.prior.pixelcnn import GatedPixelCNN
from vqvae_lib.runtime import autocast, autocast_dtype, cpu_has_bf16

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bf16_is_detected_from_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_bf16(info)
    info.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")   # bf16 would be emulated
    assert not cpu_has_bf16(info)
    assert not cpu_has_bf16(tmp_path / "no-such-file")               # macOS, Windows: fp32


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_takes_bf16_only_where_native_and_fp32_is_always_fp32(monkeypatch, has_bf16):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda *a: has_bf16)
    assert autocast_dtype("auto", "cpu") == (torch.bfloat16 if has_bf16 else None)
    assert autocast_dtype("fp32", "cpu") is None


def test_forced_bf16_where_unsupported_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda *a: False)
    with pytest.raises(ConfigError, match="no native bf16.*precision='auto' or 'fp32'"):
        autocast_dtype("bf16", "cpu")
    with pytest.raises(ConfigError, match="fp16' needs a CUDA GPU"):
        autocast_dtype("fp16", "cpu")


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_forced_bf16_runs_the_forward_pass_in_bf16_where_supported():
    conv = torch.nn.Conv2d(1, 4, 3)
    with autocast("cpu", autocast_dtype("bf16", "cpu")):
        assert conv(torch.rand(1, 1, 8, 8)).dtype == torch.bfloat16


def test_precision_is_a_config_switch_and_old_configs_load():
    assert get_config("cpu").precision == "auto" and get_config("reference").precision == "fp32"
    assert get_config("smoke", precision="fp32").precision == "fp32"
    old = {**get_config("smoke").to_dict(), "amp": False}   # a checkpoint of an older version
    del old["precision"]
    assert Config.from_dict(old).precision == "fp32"


def test_trainer_uses_the_precision_it_was_given(tmp_path):
    from data_fixtures import make_oasis

    from vqvae_lib.train import fit, make_trainer

    data = make_oasis(tmp_path / "data", slices=2, size=32)
    cfg = get_config("smoke", image_size=32, epochs=1, batch_size=4, precision="fp32", device="cpu")
    trainer = make_trainer(cfg, data_dir=data, run_dir=tmp_path / "run", verbose=False)
    assert trainer.amp_dtype is None
    assert fit(trainer).history[-1]["precision"] == "fp32"


def test_likelihoods_are_fp32_even_under_bf16_autocast():
    torch.manual_seed(0)
    prior = GatedPixelCNN(16, 8, 2, grid_size=(6, 6))
    codes = torch.randint(0, 16, (3, 6, 6))
    reference = prior.nll_bits(codes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bits = prior.nll_bits(codes)
    assert bits.dtype == torch.float32 and reference.dtype == torch.float32
    assert torch.allclose(bits, reference, atol=0.05)     # bf16 matmuls, fp32 cross-entropy


def test_validation_metrics_ignore_an_enclosing_autocast(tmp_path):
    """Validation (and every reported score) runs in fp32: the same numbers under autocast."""
    from vqvae_lib.model.vqvae import build_model
    from vqvae_lib.train.validate import validate

    torch.manual_seed(0)
    cfg = get_config("smoke", image_size=32)
    model = build_model(cfg).eval()
    images = (torch.rand(8, 1, 32, 32) * 255).to(torch.uint8)
    plain = validate(model, images, "cpu", cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = validate(model, images, "cpu", cfg)
    assert under == pytest.approx(plain, rel=1e-6)


def test_ssim_is_computed_in_fp32_inside_a_bf16_autocast_region():
    """SSIM's blur is a matrix product: under autocast it would run in bf16, and its variances
    E[x^2] - E[x]^2 would cancel to noise (the bf16 VQ-VAE trained to a far lower SSIM)."""
    from vqvae_lib.metrics import ssim

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 32, 32, generator=g)
    y = (x + 0.05 * torch.randn(4, 1, 32, 32, generator=g)).clamp(0, 1)
    exact = ssim(x, y, reduction="none")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = ssim(x, y, reduction="none")
    assert under.dtype == torch.float32 and torch.allclose(under, exact, atol=1e-6)


def test_the_vqvae_loss_terms_are_fp32_under_autocast():
    from vqvae_lib.model.vqvae import build_model

    torch.manual_seed(0)
    model = build_model(get_config("smoke", image_size=32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(4, 1, 32, 32))
    assert out.loss.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in out.losses.values())
