"""The trainer: determinism, exact resume after Ctrl-C, NaN stop, files it writes, DDP on CPU."""

import errno
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

from vqvae_lib.checkpoint import load_checkpoint, load_model, nonfinite_tensors
from vqvae_lib.config import get_config
from vqvae_lib.errors import CheckpointError, RunFolderBusy, TrainingError
from vqvae_lib.paths import repo_root
from vqvae_lib.train import History, lr_factor, train
from vqvae_lib.train.budget import MIN_LR_RATIO, plan_epochs
from vqvae_lib.train.cli import parse_cli as _parse_cli

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



def test_the_epoch_estimate_follows_the_typical_epoch():
    """With 49 s left and epochs of about 24 s, about three more (the last one cut short): one
    slow epoch (26.6 s) must not skew the estimate; it never exceeds ``epochs``."""
    cfg = get_config("cpu", max_minutes=4.5, epochs=30)
    assert plan_epochs(cfg, 9, 30, 270 - 49, [26.6, 23.7, 23.4]) == 12
    assert plan_epochs(cfg, 9, 10, 270 - 49, [24.0, 24.0, 24.0]) == 12        # may grow again
    assert plan_epochs(get_config("cpu", max_minutes=4.5, epochs=10), 9, 30, 0, [24.0]) == 10
    assert plan_epochs(cfg, 9, 30, 270 + 5, [24.0]) == 9                      # never below done
    assert plan_epochs(get_config("cpu", max_minutes=0, epochs=30), 3, 30, 9e9, [24.0]) == 30


def test_a_budgeted_cosine_follows_the_clock():
    cfg = get_config("smoke", lr=1.0, warmup_steps=10, scheduler="cosine", max_minutes=1)
    assert lr_factor(cfg, 500, 3, 100, time_share=0.5) == pytest.approx(0.505)   # half-way
    assert lr_factor(cfg, 500, 3, 100, time_share=1.2) == pytest.approx(MIN_LR_RATIO)
    assert lr_factor(cfg, 4, 0, 100, time_share=0.0) == pytest.approx(0.5)       # warming up


def test_a_budgeted_run_trains_until_time_is_up(data_dir, tmp_path):
    """The budget is spent, not planned away: the run stops on the clock (its last epoch cut
    short), not at the last epoch boundary an estimate said would fit (the first, slow epoch
    made that estimate pessimistic, and it was never raised again)."""
    budget = 0.05
    result = train(_cfg(epochs=10_000, max_minutes=budget), data_dir=data_dir, run_dir=tmp_path,
                   verbose=False)
    assert result.stopped == "time budget"
    assert result.history[-1]["seconds"] >= budget * 60
    assert result.history[-1]["lr"] < 0.05 * _cfg().lr            # annealed when time ran out


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


# ---- issue 11: a rerun never destroys a good model, NaN never reaches a checkpoint ----------
def _checkpoints(run_dir):
    return sorted((run_dir / "checkpoints").rglob("*.pt"))


def _all_finite(path):
    ckpt = load_checkpoint(path)
    return not nonfinite_tensors(ckpt)


def test_sigterm_in_epoch_1_of_a_rerun_keeps_the_good_model(data_dir, tmp_path):
    train(_cfg(epochs=1), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    good = (tmp_path / "checkpoints" / "best.pt").read_bytes()

    def term(trainer):                           # SIGTERM in epoch 1 of the rerun
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    cut = train(_cfg(epochs=1, seed=1), data_dir=data_dir, run_dir=tmp_path, verbose=False, on_step=term)
    assert cut.stopped == "interrupted" and cut.history == []
    assert (tmp_path / "checkpoints" / "best.pt").read_bytes() == good     # still the good model
    load_model(tmp_path / "checkpoints" / "best.pt")
    assert (tmp_path / "checkpoints" / "previous" / "best.pt").read_bytes() == good
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 2   # resumable


def test_a_rerun_that_fails_in_epoch_1_leaves_the_good_model(data_dir, tmp_path):
    train(_cfg(epochs=1), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    before = {p.name: p.read_bytes() for p in _checkpoints(tmp_path)}
    with pytest.raises(TrainingError, match=r"epoch 1, step \d+\. .*saved no checkpoint yet.*lower the learning rate"):
        train(_cfg(lr=1e4), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    assert {p.name: p.read_bytes() for p in _checkpoints(tmp_path)} == before


def test_a_completed_rerun_keeps_the_previous_model_in_previous(data_dir, tmp_path):
    first = train(_cfg(epochs=1), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    good = first.best_path.read_bytes()
    last = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    train(_cfg(epochs=1, seed=3), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    prev = tmp_path / "checkpoints" / "previous"
    assert (prev / "best.pt").read_bytes() == good and (prev / "last.pt").read_bytes() == last
    assert first.best_path.read_bytes() != good                           # the new model is best.pt


def test_nan_in_validation_never_reaches_a_checkpoint(data_dir, tmp_path):
    def poison(trainer):                         # BatchNorm statistics turn NaN at the end of epoch 2:
        if trainer.step == 12:                   # the training loss stays finite, validation does not
            bn = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var.fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"Non-finite validation.*epoch 2.*last\.pt = epoch 1 \(step 6\)"):
        train(_cfg(), data_dir=data_dir, run_dir=tmp_path, verbose=False, on_step=poison)
    assert _checkpoints(tmp_path) and all(_all_finite(p) for p in _checkpoints(tmp_path))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in json.loads((tmp_path / "history.json").read_text())] == [1]


def test_nan_encoder_output_stops_before_the_ema_codebook_update(data_dir, tmp_path):
    seen = {}

    def poison(trainer):
        if trainer.step == 8:
            seen["trainer"] = trainer
            seen["codebook"] = trainer.model.quantizer.codebook.detach().clone()
            with torch.no_grad():
                next(trainer.model.encoder.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"Non-finite encoder output.*epoch 2, step 9"):
        train(_cfg(), data_dir=data_dir, run_dir=tmp_path, verbose=False, on_step=poison)
    assert torch.equal(seen["trainer"].model.quantizer.codebook, seen["codebook"])   # untouched
    assert all(_all_finite(p) for p in _checkpoints(tmp_path))


def test_a_huge_learning_rate_is_refused_before_any_nan_is_saved(data_dir, tmp_path):
    with pytest.raises(TrainingError, match=r"lower the learning rate \(now lr=10000"):
        train(_cfg(lr=1e4), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    assert all(_all_finite(p) for p in _checkpoints(tmp_path))


def test_disk_full_during_a_checkpoint_write_keeps_the_previous_file(data_dir, tmp_path, monkeypatch):
    train(_cfg(epochs=1), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    good = (tmp_path / "checkpoints" / "best.pt").read_bytes()

    def full(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(getattr(f, "name", "?")))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        train(_cfg(epochs=1, seed=2), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    assert (tmp_path / "checkpoints" / "best.pt").read_bytes() == good
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_second_training_into_the_same_folder_is_refused(data_dir, tmp_path):
    refused = []

    def second(trainer):
        if trainer.step == 2:
            with pytest.raises(RunFolderBusy, match=rf"training \(pid {os.getpid()}\b") as e:
                train(_cfg(), data_dir=data_dir, run_dir=tmp_path, verbose=False)
            refused.append(str(e.value))

    first = train(_cfg(), data_dir=data_dir, run_dir=tmp_path, verbose=False, on_step=second)
    assert refused and first.stopped == "completed" and len(first.history) == 3
    assert load_checkpoint(first.last_path)["epoch"] == 3 and _all_finite(first.best_path)


def test_determinism_is_switched_on_and_the_cuda_rng_is_in_the_resume_state(data_dir, tmp_path):
    torch.use_deterministic_algorithms(False)
    res = train(_cfg(epochs=1), data_dir=data_dir, run_dir=tmp_path, verbose=False)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
    assert "cuda_rng" in load_checkpoint(res.last_path)["extra"]["trainer"]


def test_the_cuda_generator_is_saved_and_restored(monkeypatch):
    from vqvae_lib.train.state import TrainState, load_state, state_dict

    fake, restored = torch.arange(16, dtype=torch.uint8), {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: fake.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device=None: restored.update(s=s))
    gen, scaler, dev = torch.Generator(), torch.amp.GradScaler("cuda", enabled=False), torch.device("cuda", 0)
    d = state_dict(TrainState(planned_epochs=3), gen, torch.Generator(), scaler, dev)
    assert torch.equal(d["cuda_rng"], fake)
    load_state({"epoch": 0, "step": 0, "extra": {"trainer": d}}, _cfg(), gen, torch.Generator(), scaler, dev)
    assert torch.equal(restored["s"], fake)


def test_history_files_are_written_atomically(tmp_path):
    History([{"epoch": 1, "val_ssim": 0.5}]).write(tmp_path)
    csv_before, json_before = (tmp_path / "history.csv").read_text(), (tmp_path / "history.json").read_text()

    class DiskFull(float):
        def __str__(self):
            raise OSError(errno.ENOSPC, "No space left on device", "history.csv")
        __repr__ = __str__

    (tmp_path / "history.json.tmp").mkdir()      # the old fixed temporary name, taken
    rows = [{"epoch": 1, "val_ssim": 0.5}, {"epoch": 2, "val_ssim": DiskFull(0.6)}]
    with pytest.raises(OSError, match="No space"):
        History(rows).write(tmp_path)
    assert (tmp_path / "history.csv").read_text() == csv_before           # not truncated
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 2
    assert json_before != (tmp_path / "history.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".history")]


def test_a_subject_in_train_and_validate_is_reported_by_train(tmp_path):
    from data_fixtures import make_oasis

    from vqvae_lib.data import DataWarning
    from vqvae_lib.train import load_train_data

    root = make_oasis(tmp_path / "o", {"train": [1, 2, 3], "validate": [3, 5], "test": [6]})
    with pytest.warns(DataWarning, match=r"1 subject\(s\) are in both train and validate \(e\.g\. 003\)"):
        load_train_data(get_config("smoke", image_size=32), root, verbose=False)
