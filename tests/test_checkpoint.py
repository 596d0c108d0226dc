"""Checkpoints: atomic, weights_only-loadable, and clear errors for wrong files."""

import pytest
import torch

from vqvae_lib.checkpoint import load_checkpoint, load_model, save_checkpoint
from vqvae_lib.config import get_config
from vqvae_lib.errors import CheckpointError
from vqvae_lib.model.vqvae import build_model


@pytest.fixture
def saved(tmp_path):
    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(4, 1, cfg.image_size, cfg.image_size)).loss.backward()   # optimizer state
    opt.step()
    history = [{"epoch": 1, "val_ssim": 0.5, "train_loss": 0.1}]
    path = save_checkpoint(tmp_path / "ckpt" / "best.pt", model=model, cfg=cfg, optimizer=opt,
                           history=history, epoch=1, step=3, best_metric=0.5,
                           extra={"trainer": {"rng": torch.get_rng_state()}})
    return path, model, cfg, opt


def test_roundtrip_with_weights_only(saved):
    path, model, cfg, opt = saved
    raw = torch.load(path, weights_only=True)                  # the safe loader accepts it
    assert raw["config"]["preset"] == "smoke"
    assert raw["history"][0]["val_ssim"] == 0.5 and raw["epoch"] == 1 and raw["step"] == 3
    assert set(raw["optimizer"]) == {"state", "param_groups"}
    loaded, cfg2, ckpt = load_model(path)
    assert cfg2 == cfg and not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.rand(2, 1, cfg.image_size, cfg.image_size)
    model.eval()
    assert torch.allclose(model(x).recon, loaded(x).recon)


def test_atomic_write_leaves_no_temp_files(saved):
    path, model, cfg, _ = saved
    save_checkpoint(path, model=model, cfg=cfg)                # overwrite in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_damaged_file_names_the_file(saved):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])                   # truncated download / full disk
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)         # a bare state dict
    with pytest.raises(CheckpointError, match="not a vqvae_lib checkpoint"):
        load_checkpoint(path)


def test_mismatched_expected_config(saved):
    path = saved[0]
    with pytest.raises(CheckpointError, match="hidden_channels"):
        load_model(path, expected_cfg=get_config("smoke", hidden_channels=32))


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    path = saved[0]
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["codebook_size"] = 64                       # config edited, weights not
    bad = tmp_path / "edited.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(bad)
