"""The full-resolution presets (``gpu``, ``reference``) at 256x256 on CPU: train a step or two,
save, reload and evaluate -- with the presets' real architecture, on a handful of images.

On a CPU, ``precision="auto"`` and ``channels_last=True`` (the ``gpu`` preset) must take their CPU
paths: bf16 autocast only where the CPU has native bf16 (fp32 weights either way), no gradient
scaler, default memory format; the ``reference`` preset asks for fp32. The two-process DDP test with
the Gloo backend lives in ``test_train.py``.
"""

import json

import numpy as np
import pytest
import torch

from vqvae_lib.checkpoint import load_model
from vqvae_lib.config import get_config
from vqvae_lib.evaluate.score import evaluate_checkpoint
from vqvae_lib.runtime import cpu_has_bf16, precision_name
from vqvae_lib.train import describe, fit, make_trainer

SIZE = 256


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """256x256 slices in the course layout: train 2 subjects x 2, validate 1 x 2, test 1 x 2."""
    from data_fixtures import make_oasis

    root = tmp_path_factory.mktemp("fullres")
    return make_oasis(root, subjects={"train": [1, 2], "validate": [3], "test": [4]},
                      slices=2, size=SIZE)


def _run(preset, data_dir, run_dir):
    cfg = get_config(preset, batch_size=2, epochs=1, warmup_steps=1, num_threads=1, device="cpu",
                     max_minutes=0.0)
    assert cfg.image_size == SIZE                      # the preset's own resolution, not lowered
    trainer = make_trainer(cfg, data_dir=data_dir, run_dir=run_dir, verbose=False)
    return trainer, fit(trainer)


@pytest.mark.parametrize("preset", ["gpu", "reference"])
def test_preset_trains_saves_reloads_and_evaluates_at_256(preset, data_dir, tmp_path):
    trainer, res = _run(preset, data_dir, tmp_path / "run")
    cfg = res.cfg
    # two optimizer steps of the real architecture, finite numbers
    assert res.stopped == "completed" and res.history[-1]["step"] == 2
    assert all(np.isfinite(res.history[-1][k]) for k in ("train_loss", "val_ssim", "val_psnr"))
    # auto precision and channels_last asked for (gpu) or not (reference): on CPU, bf16 autocast
    # only where the CPU has native bf16, never a gradient scaler, weights always fp32
    expected = torch.bfloat16 if preset == "gpu" and cpu_has_bf16() else None
    assert trainer.amp_dtype == expected and not trainer.scaler.is_enabled()
    assert all(p.dtype == torch.float32 for p in res.model.parameters())
    conv = next(m for m in res.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()                     # not channels_last on CPU
    assert (f"precision: {precision_name(expected)} ({cfg.precision}) | channels_last: False"
            in describe(cfg, "cpu"))
    assert res.history[-1]["precision"] == precision_name(expected)
    if preset == "reference":
        assert cfg.decode_every_epoch and cfg.data_range == "pm1"    # its PNG-per-epoch path ran
    # checkpoint round trip: the reloaded model computes what the trained one computes
    model, loaded_cfg, _ = load_model(res.best_path)
    assert loaded_cfg.image_size == SIZE and loaded_cfg.hidden_channels == cfg.hidden_channels
    x = trainer.data.val_u8[:2].float().div(255)
    res.model.eval()
    with torch.no_grad():
        a, b = res.model(x), model(x)
    assert a.recon.shape == (2, 1, SIZE, SIZE) and a.codes.shape == (2, SIZE // 4, SIZE // 4)
    assert torch.equal(a.codes, b.codes) and torch.allclose(a.recon, b.recon, atol=1e-6)
    # evaluation of the test split at the model's resolution, written next to the checkpoint
    ev = evaluate_checkpoint(res.best_path, "test", data_dir, device="cpu", verbose=False,
                             cache_dir=tmp_path / "cache")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["image_size"] == SIZE and m["latent_size"] == SIZE // 4 and m["n_images"] == 2
    assert ev.recons.shape == (2, 1, SIZE, SIZE)
    assert -1 <= m["ssim_gaussian"]["mean"] <= 1 and np.isfinite(m["psnr_db"]["mean"])
