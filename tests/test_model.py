"""VQ-VAE model: shapes and parameter counts for every preset, the reference layer by layer."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vqvae_lib.config import PRESETS, get_config
from vqvae_lib.model.quantizers import VectorQuantizer, VectorQuantizerEMA
from vqvae_lib.model.vqvae import VQVAE, ResidualBlock, build_model, receptive_field


# ---- parameter count from the config alone ---------------------------------------------------
def _conv(cin, cout, k):
    return cin * cout * k * k + cout                        # weight + bias (ConvTranspose too)


def expected_parameters(cfg) -> int:
    c, r, d, cin = cfg.hidden_channels, cfg.res_channels, cfg.code_dim, cfg.in_channels
    norm = (lambda ch: 2 * ch) if cfg.norm in ("batch", "group") else (lambda ch: 0)
    n = int(math.log2(cfg.downsample))
    res = _conv(c, r, 3) + norm(r) + _conv(r, c, 1) + norm(c)
    proj = _conv(c, d, 1) if d != c else 0
    encoder = _conv(cin, c, 4) + (n - 1) * (_conv(c, c, 4) + norm(c)) + cfg.n_res_blocks * res + proj
    decoder = proj and _conv(d, c, 1)
    decoder += cfg.n_res_blocks * res + (n - 1) * (_conv(c, c, 4) + norm(c)) + _conv(c, cin, 4)
    codebook = cfg.codebook_size * cfg.code_dim if cfg.quantizer == "loss" else 0
    return encoder + decoder + codebook


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameter_count_matches_formula(preset):
    cfg = get_config(preset)
    assert build_model(cfg).num_parameters() == expected_parameters(cfg)


@pytest.mark.parametrize("overrides", [dict(downsample=8), dict(norm="group"), dict(norm="none"),
                                       dict(quantizer="loss", code_dim=16)])
def test_parameter_count_matches_formula_for_variants(overrides):
    cfg = get_config("smoke", **overrides)
    assert build_model(cfg).num_parameters() == expected_parameters(cfg)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_shapes_for_every_preset(preset):
    cfg = get_config(preset)
    model = build_model(cfg).eval()
    x = torch.rand(1, 1, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        out = model(x)
    h = cfg.image_size // cfg.downsample
    assert out.recon.shape == x.shape
    assert out.codes.shape == (1, h, h) and out.codes.dtype == torch.long
    assert 0 <= float(out.recon.min()) and float(out.recon.max()) <= 1
    assert set(out.losses) == {"recon", "codebook", "commitment"} | ({"ssim"} if cfg.ssim_weight else set())
    assert {"perplexity", "used_fraction"} <= set(out.stats)
    assert model.quantizer.codebook.shape == (cfg.codebook_size, cfg.code_dim)
    assert model.quantizer.lookup(out.codes).shape == (1, cfg.code_dim, h, h)


@pytest.mark.parametrize("overrides", [dict(), dict(downsample=8), dict(quantizer="loss"),
                                       dict(norm="group", cosine=True),
                                       dict(data_range="pm1", out_activation="tanh")])
def test_train_step_and_encode_decode_round_trip(overrides):
    torch.manual_seed(0)
    cfg = get_config("smoke", **overrides)
    model = build_model(cfg).train()
    x = torch.rand(4, 1, cfg.image_size, cfg.image_size)
    out = model(x)
    out.loss.backward()
    first_conv = model.encoder[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    expected = out.losses["recon"] + out.losses["codebook"] + cfg.beta * out.losses["commitment"]
    expected = expected + cfg.ssim_weight * out.losses.get("ssim", 0.0)
    assert torch.allclose(out.loss, expected)
    model.eval()
    with torch.no_grad():
        codes = model.encode(x)
        assert codes.shape == (4, cfg.latent_size, cfg.latent_size)
        assert torch.allclose(model.decode_codes(codes), model(x).recon, atol=1e-6)


def test_pm1_model_rescales_inside_and_measures_mse_in_its_own_range():
    cfg = get_config("smoke", data_range="pm1", out_activation="tanh")
    model = build_model(cfg).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
        y = model.decoder(model.quantizer(model.encoder(x * 2 - 1)).quantized)  # in [-1, 1]
    assert torch.allclose(out.recon, (y + 1) / 2, atol=1e-6)
    assert torch.isclose(out.losses["recon"], F.mse_loss(y, x * 2 - 1), atol=1e-6)


def test_encode_does_not_touch_the_codebook_in_training_mode():
    model = build_model(get_config("smoke")).train()
    book = model.quantizer.codebook.clone()
    model.encode(torch.rand(2, 1, 64, 64))
    assert torch.equal(model.quantizer.codebook, book)
    assert model.quantizer.training


# ---- the reference, layer by layer -----------------------------------------------------------
def _leaves(module):
    return [m for m in module.modules() if len(list(m.children())) == 0]


def _describe(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return (type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0],
                m.padding[0], m.bias is not None)
    if isinstance(m, nn.BatchNorm2d):
        return ("BatchNorm2d", m.num_features)
    return (type(m).__name__,)


def test_reference_matches_the_described_architecture_layer_by_layer():
    cfg = get_config("reference")
    model = VQVAE(cfg)
    conv = lambda i, o, k, s, p: ("Conv2d", i, o, k, s, p, True)           # noqa: E731
    convt = lambda i, o: ("ConvTranspose2d", i, o, 4, 2, 1, True)           # noqa: E731
    bn, relu = ("BatchNorm2d", 256), ("ReLU",)
    res = [relu, conv(256, 256, 3, 1, 1), bn, relu, conv(256, 256, 1, 1, 0), bn]
    encoder = [conv(1, 256, 4, 2, 1), bn, relu, conv(256, 256, 4, 2, 1), *res, *res]
    decoder = [*res, *res, relu, convt(256, 256), bn, relu, convt(256, 1), ("Tanh",)]
    assert [_describe(m) for m in _leaves(model.encoder)] == encoder
    assert [_describe(m) for m in _leaves(model.decoder)] == decoder
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 4
    # codebook: K=512 x D=256, learned by the loss, commitment weight 1, uniform(-1/K, 1/K) init
    q = model.quantizer
    assert type(q) is VectorQuantizer and isinstance(q.embedding, nn.Parameter)
    assert q.embedding.shape == (512, 256) and q.beta == 1.0
    assert q.embedding.abs().max() <= 1 / 512
    assert not q.kmeans_init and q.dead_code_steps == 0 and not q.cosine
    # data on [-1, 1]; optimisation as published
    assert cfg.image_size == 256 and cfg.data_range == "pm1"
    assert (cfg.lr, cfg.amsgrad, cfg.scheduler, cfg.step_size, cfg.gamma, cfg.batch_size) == \
        (1e-3, True, "step", 10, 0.9, 32)


def test_residual_block_adds_its_input():
    block = ResidualBlock(8, 4)
    nn.init.zeros_(block.block[-1].weight)                   # last BatchNorm outputs 0 ...
    nn.init.zeros_(block.block[-1].bias)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), x)                          # ... so the block is the identity


def test_ema_preset_has_no_codebook_parameters():
    model = build_model(get_config("smoke", quantizer="ema"))
    assert isinstance(model.quantizer, VectorQuantizerEMA)
    assert not any(p is model.quantizer.codebook for p in model.parameters())


def test_receptive_field_matches_gradient_support():
    cfg = get_config("smoke", norm="none", kmeans_init=False)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    size, stride, offset = receptive_field(model)
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    i = j = 8                                                # a latent cell far from the border
    model.encode_continuous(x)[0, :, i, j].abs().sum().backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = x.grad[0, 0].abs().sum(0).nonzero().flatten()
    lo = i * stride - offset
    assert rows.min() == lo and rows.max() == lo + size - 1
    assert cols.min() == lo and cols.max() == lo + size - 1


def test_bad_config_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="downsample"):
        VQVAE(get_config("smoke", downsample=3))
    with pytest.raises(ValueError, match="norm"):
        VQVAE(get_config("smoke", norm="layer"))


# ---- notebook-02 helpers -----------------------------------------------------------------------
def test_layer_table_traces_real_shapes_and_all_parameters():
    import matplotlib
    matplotlib.use("Agg")
    from vqvae_lib.model.figures import layer_table

    cfg = get_config("smoke", downsample=8)
    model = build_model(cfg).train()
    rows = layer_table(model, torch.rand(2, 1, 64, 64))
    assert model.training                                    # mode restored
    assert rows[-1]["shape"] == (2, 1, 64, 64)
    assert (2, 8, 8) in [r["shape"] for r in rows]           # the code grid
    assert sum(r["params"] for r in rows) == model.num_parameters()


def test_straight_through_demo_copies_the_gradient():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vqvae_lib.model.toy import straight_through_demo, toy_points

    pts = toy_points(200)
    fig, grads = straight_through_demo(pts, pts[:5] + 0.3)
    plt.close(fig)
    assert torch.equal(grads["dL/dz_q"], grads["dL/dz_e (decoder)"])
    assert grads["dL/dz_e (commitment)"].abs().sum() > 0


def test_bit_budget_counts_grid_cells_times_log2_k():
    from vqvae_lib.model.figures import bit_budget

    cfg = get_config("cpu", image_size=128, downsample=8, codebook_size=256)
    b = bit_budget(cfg)
    assert b["bits_per_image"] == 16 * 16 * 8
    assert b["bits_per_pixel"] == pytest.approx(16 * 16 * 8 / 128 ** 2)
    assert b["compression"] == pytest.approx(8 / b["bits_per_pixel"])


def test_ssim_term_is_added_to_the_loss_with_its_weight():
    from vqvae_lib.metrics import ssim

    torch.manual_seed(0)
    x = torch.rand(2, 1, 64, 64)
    plain = build_model(get_config("smoke", ssim_weight=0.0))
    weighted = build_model(get_config("smoke", ssim_weight=0.7))
    weighted.load_state_dict(plain.state_dict())
    plain.eval(), weighted.eval()
    a, b = plain(x), weighted(x)
    assert "ssim" not in a.losses
    expected_ssim_term = 1.0 - ssim(b.recon, x)
    assert torch.allclose(b.losses["ssim"], expected_ssim_term, atol=1e-6)
    assert torch.allclose(b.loss, a.loss + 0.7 * expected_ssim_term, atol=1e-6)


def test_fsq_toy_grid_uses_its_codes_and_figures_are_figures():
    from matplotlib.figure import Figure

    from vqvae_lib.model import figures as MF
    from vqvae_lib.model.toy import fsq_cells, plot_fsq_vs_vq, toy_points

    points = toy_points(300)
    fig, stats = plot_fsq_vs_vq(points, (4, 3))
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    assert 1 <= stats["fsq"]["used"] <= 12 and 1 <= stats["vq"]["used"] <= 12
    assert stats["vq"]["mse"] > 0 and stats["fsq"]["mse"] > 0
    _, encode = fsq_cells(points, (4, 3))
    codes = encode(points)
    assert codes.min() >= 0 and codes.max() < 12
    # FSQ cells are axis-aligned: moving along x never changes the y digit (index // 4)
    line = torch.stack([torch.linspace(-5, 8, 200), torch.full((200,), 0.3)], 1)
    assert len((encode(line) // 4).unique()) == 1 and len((encode(line) % 4).unique()) == 4
    rows = MF.bit_budget_table(presets=("smoke",))
    assert isinstance(MF.plot_bit_budget(rows), Figure)
