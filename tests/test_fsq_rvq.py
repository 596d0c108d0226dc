"""FSQ and residual VQ: the grid and its indices, residual stages, config and checkpoints."""

import io
import math

import pytest
import torch

from vqvae_lib.checkpoint import load_model, save_checkpoint
from vqvae_lib.config import get_config
from vqvae_lib.model import build_model
from vqvae_lib.model.factory import build_quantizer, fsq_levels
from vqvae_lib.model.fsq import FSQ, PAPER_LEVELS, fsq_levels_for
from vqvae_lib.model.rvq import ResidualVQ, stage_size


# ---- FSQ ------------------------------------------------------------------------------------
def test_paper_levels_and_power_of_two_splits():
    assert PAPER_LEVELS[2 ** 10] == (8, 5, 5, 5)
    assert PAPER_LEVELS[2 ** 16] == (8, 8, 8, 5, 5, 5)
    assert fsq_levels_for(1000) == (8, 5, 5, 5)                  # the paper's set, by product
    for k in (32, 256, 512, 1024, 4096):
        levels = fsq_levels_for(k)
        assert math.prod(levels) == k and max(levels) <= 8
    assert fsq_levels_for(512) == (8, 8, 8)
    with pytest.raises(ValueError, match="fsq_levels"):
        fsq_levels_for(100)


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (8, 6, 5), (3, 4), (2, 2, 2)])
def test_fsq_code_index_round_trip(levels):
    fsq = FSQ(levels, code_dim=6)
    k = math.prod(levels)
    idx = torch.arange(k)
    grid = fsq.indices_to_codes(idx)                              # (K, d)
    assert grid.shape == (k, len(levels))
    assert torch.equal(fsq.codes_to_indices(grid), idx)           # index -> code -> index
    assert len(torch.unique(grid, dim=0)) == k                    # K distinct grid points
    assert grid.abs().max() <= 1.0
    # and code -> index -> code for quantized real values
    z = 3 * torch.randn(500, len(levels))
    zhat = fsq.quantize(z)
    assert torch.allclose(fsq.indices_to_codes(fsq.codes_to_indices(zhat)), zhat, atol=1e-6)


@pytest.mark.parametrize("levels", [(8, 5), (6, 3), (4, 7)])
def test_fsq_rounds_each_dimension_to_exactly_its_levels(levels):
    fsq = FSQ(levels, code_dim=2)
    z = torch.linspace(-10, 10, 4001)[:, None].expand(-1, len(levels))
    zhat = fsq.quantize(z)
    for i, L in enumerate(levels):
        assert len(torch.unique(zhat[:, i])) == L                 # every level reached, no more


def test_fsq_straight_through_and_no_auxiliary_loss():
    fsq = FSQ((5, 5, 4), code_dim=4).train()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = fsq(z)
    assert out.codes.shape == (2, 3, 3) and out.codes.max() < 100
    assert float(out.loss) == 0.0                                 # no codebook, no commitment
    out.quantized.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0          # rounding passed the gradient
    # the forward value is exactly the projected grid point of the code
    assert torch.allclose(out.quantized, fsq.lookup(out.codes), atol=1e-5)
    # the (K, D) codebook lists what lookup gives for each code
    book = fsq.codebook
    assert book.shape == (100, 4)
    assert torch.allclose(book[out.codes[0, 1, 2]], fsq.lookup(out.codes)[0, :, 1, 2], atol=1e-5)


# ---- residual VQ ------------------------------------------------------------------------------
def test_stage_size_and_clear_error():
    assert stage_size(512, 3) == 8 and stage_size(512, 9) == 2 and stage_size(64, 2) == 8
    with pytest.raises(ValueError, match="rvq_stages in"):
        stage_size(512, 2)


def test_rvq_codes_have_one_row_per_stage_and_fold_into_joint_codes():
    rvq = ResidualVQ(64, 3, code_dim=5, kmeans_init=True).train()
    out = rvq(torch.randn(2, 5, 4, 4))
    assert out.codes.shape == (2, 3, 4, 4) and out.codes.max() < 4
    joint = rvq.joint_codes(out.codes)
    assert joint.shape == (2, 4, 4) and joint.max() < 64
    assert torch.equal(rvq.split_codes(joint), out.codes)
    assert torch.equal(rvq.joint_codes(rvq.split_codes(torch.arange(64)[:, None, None])).flatten(),
                       torch.arange(64))
    # joint and stage codes look up the same vectors, which are the joint codebook's rows
    assert torch.allclose(rvq.lookup(joint), rvq.lookup(out.codes))
    assert torch.allclose(rvq.codebook[joint[1, 2, 3]], rvq.lookup(joint)[1, :, 2, 3], atol=1e-6)


def test_rvq_reconstruction_improves_stage_by_stage():
    torch.manual_seed(0)
    z = torch.randn(8, 4, 8, 8) * torch.tensor([3.0, 2.0, 1.0, 0.5])[None, :, None, None]
    rvq = ResidualVQ(16 ** 3, 3, code_dim=4, kmeans_init=True, kmeans_iters=20).train()
    rvq(z)                                                         # k-means starts every stage
    errors = rvq.stage_errors(z)
    baseline = float(z.pow(2).mean())                              # "quantise to 0"
    assert len(errors) == 3
    assert baseline > errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5 * errors[0]


def test_rvq_straight_through_and_quantizer_dropout():
    rvq = ResidualVQ(27, 3, code_dim=3, dropout=1.0).train()
    z = torch.randn(2, 3, 3, 3, requires_grad=True)
    out = rvq(z)
    up = torch.randn_like(out.quantized)
    (out.quantized * up).sum().backward()
    assert torch.equal(z.grad, up)                                 # one straight-through step
    torch.manual_seed(0)
    used = {int(rvq(torch.randn(2, 3, 3, 3)).stats["stages_used"]) for _ in range(30)}
    assert used == {1, 2, 3}                                       # random prefixes in training
    rvq.eval()
    assert int(rvq(torch.randn(2, 3, 3, 3)).stats["stages_used"]) == 3


def test_rvq_state_dict_round_trips_with_weights_only():
    rvq = ResidualVQ(64, 2, code_dim=3, kmeans_init=True, dead_code_steps=2).train()
    for _ in range(3):
        rvq(torch.randn(2, 3, 4, 4))
    buf = io.BytesIO()
    torch.save(rvq.state_dict(), buf)
    buf.seek(0)
    fresh = ResidualVQ(64, 2, code_dim=3, kmeans_init=True, dead_code_steps=2)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh.codebook, rvq.codebook)


# ---- config, model, checkpoint -------------------------------------------------------------------
def test_config_selects_the_quantizer_and_checks_sizes():
    assert isinstance(build_quantizer(get_config("smoke", quantizer="fsq")), FSQ)
    assert fsq_levels(get_config("smoke", quantizer="fsq")) == (8, 4)         # K = 32
    cfg = get_config("smoke", quantizer="fsq", codebook_size=1000, fsq_levels="8,5,5,5")
    assert cfg.fsq_levels == (8, 5, 5, 5)
    with pytest.raises(ValueError, match="codebook_size=240"):
        build_quantizer(get_config("smoke", quantizer="fsq", fsq_levels=(8, 6, 5)))
    rvq = build_quantizer(get_config("smoke", quantizer="rvq", codebook_size=512, rvq_stages=3))
    assert isinstance(rvq, ResidualVQ) and rvq.stage_codes == 8
    with pytest.raises(ValueError, match="quantizer"):
        build_quantizer(get_config("smoke", quantizer="pq"))


@pytest.mark.parametrize("overrides", [dict(quantizer="fsq"),
                                       dict(quantizer="rvq", codebook_size=64, rvq_stages=3)])
def test_model_trains_and_is_rebuilt_from_its_checkpoint_alone(overrides, tmp_path):
    cfg = get_config("smoke", **overrides)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = torch.rand(4, 1, cfg.image_size, cfg.image_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        out = model(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.codes.shape == (4, cfg.latent_size, cfg.latent_size)
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < cfg.codebook_size
    path = save_checkpoint(tmp_path / "best.pt", model=model, cfg=cfg)
    loaded, lcfg, _ = load_model(path)
    assert lcfg == cfg
    model.eval()
    codes = model.encode(x)
    assert torch.equal(loaded.encode(x), codes)
    assert torch.allclose(loaded.decode_codes(codes), model.decode_codes(codes), atol=1e-6)
