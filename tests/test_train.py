"""The trainer: determinism, exact resume after Ctrl-C, NaN stop, files it writes, DDP on CPU."""

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae_lib.checkpoint import load_checkpoint, load_model
from vqvae_lib.config import get_config
from vqvae_lib.errors import CheckpointError, TrainingError
from vqvae_lib.paths import repo_root
from vqvae_lib.train.loop import _parse_cli, lr_factor, train

TIMING_KEYS = {"seconds", "epoch_seconds", "train_seconds", "images_per_s"}
HISTORY_KEYS = {"epoch", "step", "seconds", "lr", "train_loss", "train_recon", "train_codebook",
                "train_commitment", "val_ssim", "val_psnr", "perplexity", "used_codes",
                "dead_codes", "images_per_s"}


def _slice(rng, size, k):
    """A toy axial slice: bright ellipse with a darker core whose size varies with the slice."""
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    r = 0.6 + 0.25 * math.sin(math.pi * (k + 1) / 9) + rng.uniform(-0.05, 0.05)
    d = np.sqrt((xx / 0.8) ** 2 + yy ** 2) / r
    img = np.select([d < 0.4, d < 0.75, d < 1.0], [0.85, 0.55, 0.25], 0.0)
    img = img + rng.normal(0, 0.03, img.shape) * (d < 1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """keras_png_slices layout: train 6 subjects x 8 slices, validate/test 2 x 8, 64x64."""
    root = tmp_path_factory.mktemp("train_data")
    base = root / "keras_png_slices_data"
    rng = np.random.default_rng(0)
    for s, (split, n_subj) in enumerate((("train", 6), ("validate", 2), ("test", 2))):
        img_dir, seg_dir = base / f"keras_png_slices_{split}", base / f"keras_png_slices_seg_{split}"
        img_dir.mkdir(parents=True)
        seg_dir.mkdir(parents=True)
        for j in range(n_subj):
            sid = f"{10 * s + j + 1:03d}"
            for k in range(8):
                img = _slice(rng, 64, k)
                Image.fromarray(img).save(img_dir / f"case_{sid}_slice_{k}.nii.png")
                Image.fromarray((img > 0).astype(np.uint8) * 85).save(seg_dir / f"seg_{sid}_slice_{k}.nii.png")
    return root


def _cfg(**kw):
    # 48 train images / batch 8 = 6 steps per epoch; one thread so CPU kernels are reproducible
    base = dict(batch_size=8, epochs=3, warmup_steps=3, num_threads=1, dead_code_steps=4, device="cpu")
    return get_config("smoke", **{**base, **kw})


def _strip(history):
    return [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in history]


def test_resume_after_sigint_equals_uninterrupted_run(data_dir, tmp_path):
    full = train(_cfg(), data_dir=data_dir, run_dir=tmp_path / "a", verbose=False)
    assert full.stopped == "completed" and len(full.history) == 3

    def interrupt(trainer):                      # Ctrl-C in the middle of epoch 2
        if trainer.step == 9:
            os.kill(os.getpid(), signal.SIGINT)

    cut = train(_cfg(), data_dir=data_dir, run_dir=tmp_path / "b", verbose=False, on_step=interrupt)
    assert cut.stopped == "interrupted" and len(cut.history) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler    # handler restored
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 9 and ckpt["epoch"] == 1                # finished the step, then saved
    resumed = train(_cfg(), data_dir=data_dir, run_dir=tmp_path / "b", resume=True, verbose=False)
    assert _strip(resumed.history) == _strip(full.history)         # same seed -> same numbers
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_files_written_and_history_contents(data_dir, tmp_path):
    res = train(_cfg(epochs=2), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    rows = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2] and HISTORY_KEYS <= set(rows[0])
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert HISTORY_KEYS <= set(header)
    assert rows[1]["step"] == 12 and rows[0]["lr"] > rows[1]["lr"] > 0     # cosine decays
    assert 0 < rows[-1]["used_codes"] <= 32 and rows[-1]["dead_codes"] == 32 - rows[-1]["used_codes"]
    best = max(rows, key=lambda r: r["val_ssim"])
    raw = torch.load(res.best_path, weights_only=True)
    assert raw["epoch"] == best["epoch"] and raw["best_metric"] == pytest.approx(best["val_ssim"])
    model, cfg, _ = load_model(res.best_path)
    assert cfg.batch_size == 8 and not model.training
    figs = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"recon_epoch001.png", "recon_best.png", "losses.png", "validation.png",
            "codebook_usage.png"} <= figs


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    def poison(trainer):                         # a weight turns NaN during epoch 2
        if trainer.step == 8:
            with torch.no_grad():
                next(trainer.model.decoder.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match="Non-finite loss"):
        train(_cfg(), data_dir=data_dir, run_dir=tmp_path, verbose=False, on_step=poison)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_resume_refuses_a_different_config(data_dir, tmp_path):
    with pytest.raises(CheckpointError, match="no .*last.pt"):
        train(_cfg(), data_dir=data_dir, run_dir=tmp_path, resume=True, verbose=False)
    train(_cfg(epochs=1), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    with pytest.raises(CheckpointError, match="hidden_channels"):
        train(_cfg(hidden_channels=24), data_dir=data_dir, run_dir=tmp_path, resume=True, verbose=False)


def test_lr_schedules():
    cfg = get_config("smoke", lr=1.0, warmup_steps=10, scheduler="cosine")
    f = [lr_factor(cfg, s, 0, 110) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)          # linear warm-up
    assert all(a >= b for a, b in zip(f[9:], f[10:], strict=False))            # then monotone decay
    assert f[-1] < 0.02
    step = get_config("reference", lr=1.0)
    assert lr_factor(step, 0, 9, 100) == 1.0 and lr_factor(step, 0, 10, 100) == pytest.approx(0.9)


def test_cli_overrides():
    args, over = _parse_cli(["--preset", "smoke", "--epochs", "3", "--batch-size=4", "--resume"])
    assert args.preset == "smoke" and args.resume and over == {"epochs": "3", "batch_size": "4"}
    assert get_config("smoke", **over).batch_size == 4


@pytest.mark.slow
def test_two_process_ddp_with_gloo(data_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VQVAE_QUIET": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "vqvae_lib.train", "--preset", "smoke", "--data-dir", str(data_dir),
           "--run-dir", str(tmp_path), "--device", "cpu", "--epochs", "2", "--batch-size", "4"]
    proc = subprocess.run(cmd, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "history.json").read_text())
    # 48 images split over 2 ranks -> 24 each -> 6 steps of 4 per epoch; rank 0 logs each epoch once
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["step"] == 12
    assert proc.stdout.count("epoch   2 |") == 1
    model, _, _ = load_model(tmp_path / "checkpoints" / "best.pt")
    assert model.quantizer.initialized.item() == 1
