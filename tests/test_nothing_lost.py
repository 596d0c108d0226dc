"""Issue 27: nothing lost, everywhere. No command deletes what it did not make, every option is
checked before work starts (one line, exit 2), one writer per run folder for every command that
writes there, a rerun moves the history with ``last.pt``, and scoring needs only the scored split.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import make_oasis
from PIL import Image

from vqvae_lib.course import report as R
from vqvae_lib.data import dataset as D
from vqvae_lib.data import demo as DM
from vqvae_lib.data.convert import main as slices_main
from vqvae_lib.errors import OutputFolderError
from vqvae_lib.evaluate import predict as P
from vqvae_lib.evaluate import score as E
from vqvae_lib.folders import FILES_MADE, replace_folder
from vqvae_lib.paths import repo_root
from vqvae_lib.train.cli import main as train_main
from vqvae_lib.train.runfiles import keep_previous


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def volumes(tmp_path) -> Path:
    src = tmp_path / "mri"
    src.mkdir()
    (src / "sub01_T1.nii.gz").write_bytes(b"the user's only copy")
    (src / "notes.txt").write_text("scanner settings")
    return src


# ---- 1. no command deletes what it did not make -------------------------------------------------
def test_slices_into_its_own_source_or_a_parent_deletes_nothing(volumes, capsys):
    before = snapshot(volumes.parent)
    assert slices_main([str(volumes), str(volumes), "--force"]) == 2
    one_line_error(capsys, "is, holds or lies inside the input")
    assert slices_main([str(volumes), str(volumes.parent), "--force"]) == 2
    one_line_error(capsys, "input")
    assert slices_main([str(volumes), str(volumes / "out"), "--force"]) == 2
    one_line_error(capsys, "input")
    assert snapshot(volumes.parent) == before


def test_slices_force_over_a_users_folder_deletes_nothing(volumes, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("three years of work")
    assert slices_main([str(volumes), str(mine), "--force"]) == 2
    one_line_error(capsys, "not a slice folder made by vqvae_lib.slices", "slices_manifest.json")
    assert (mine / "thesis.tex").read_text() == "three years of work"


def test_demo_force_over_a_users_folder_deletes_nothing(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my files")
    assert DM.main(["--out", str(mine), "--force", "--subjects", "3", "--slices", "1"]) == 2
    one_line_error(capsys, "--out", "not a demo data set")
    assert (mine / "notes.txt").read_text() == "my files"


@pytest.mark.parametrize("place", ["home", "repo", "root", "run"])
def test_protected_folders_are_refused_even_with_force(place, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    run = tmp_path / "runs" / "cpu"
    (run / "checkpoints").mkdir(parents=True)
    out = {"home": home, "repo": repo_root(), "root": Path("/"), "run": run}[place]
    with pytest.raises(OutputFolderError, match="--out"):
        DM.build_demo(out, subjects=3, slices=1, force=True, verbose=False)
    assert (home / "Documents").is_dir() and (run / "checkpoints").is_dir()


def test_replace_folder_swaps_only_its_own_files_and_keeps_the_old_on_failure(tmp_path):
    out = tmp_path / "out"

    def build(text):
        def fill(tmp):
            (tmp / "a.txt").write_text(text)
            return {"text": text}
        return fill

    replace_folder(out, build("one"), "m.json")
    assert (out / "a.txt").read_text() == "one" and (out / FILES_MADE).read_text() == "a.txt\n"
    with pytest.raises(OutputFolderError, match="pass --force"):
        replace_folder(out, build("two"), "m.json")

    def broken(tmp):
        (tmp / "a.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_folder(out, broken, "m.json", force=True)
    assert (out / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]           # no temporaries left
    (out / "mine.txt").write_text("a user's file dropped in")
    with pytest.raises(OutputFolderError, match=r"1 file\(s\).*mine\.txt"):
        replace_folder(out, build("two"), "m.json", force=True)
    (out / "mine.txt").unlink()
    replace_folder(out, build("two"), "m.json", force=True)
    assert (out / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.fixture
def run_with_numbers(tmp_path) -> Path:
    run = tmp_path / "runs" / "smoke"
    (run / "figures").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.pt").write_bytes(b"a good model")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(run / "figures" / "losses.png")
    (run / "metrics.json").write_text(json.dumps({"n_images": 4, "ssim_gaussian": {"mean": 0.8}}))
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 6, "val_ssim": 0.7}]))
    return run


def test_report_into_the_run_folder_or_a_users_folder_deletes_nothing(run_with_numbers, tmp_path,
                                                                      monkeypatch, capsys):
    run = run_with_numbers
    before = snapshot(run)
    assert R.main(["--run-dir", str(run), "--out", str(run)]) == 2
    one_line_error(capsys, "--out", "input")
    home = tmp_path / "home"
    (home / "anything").mkdir(parents=True)
    (home / "anything" / "photo.jpg").write_bytes(b"jpeg")
    monkeypatch.setenv("HOME", str(home))
    for out in (home, home / "anything"):
        assert R.main(["--run-dir", str(run), "--out", str(out)]) == 2
        one_line_error(capsys, "--out")
    assert (home / "anything" / "photo.jpg").read_bytes() == b"jpeg"
    assert {k: v for k, v in snapshot(run).items() if k != ".vqvae.lock"} == before


def test_a_report_with_wrong_types_keeps_the_previous_report(run_with_numbers, capsys):
    run = run_with_numbers
    assert R.main(["--run-dir", str(run)]) == 0
    capsys.readouterr()
    report = snapshot(run / "report")
    assert R.MANIFEST in report and "index.html" in report
    (run / "metrics.json").write_text(json.dumps({"ssim_gaussian": {"mean": "high"}}))
    assert R.main(["--run-dir", str(run)]) == 2
    one_line_error(capsys, "wrong type", "previous report is unchanged")
    assert snapshot(run / "report") == report
    (run / "metrics.json").write_text(json.dumps({"n_images": 4}))
    (run / "history.json").write_text(json.dumps(["epoch 1", "epoch 2"]))
    assert R.main(["--run-dir", str(run)]) == 2
    one_line_error(capsys, "history.json")
    assert snapshot(run / "report") == report
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".report")) == []


def test_a_report_made_before_manifests_is_replaced(run_with_numbers):
    run = run_with_numbers
    R.main(["--run-dir", str(run)])
    (run / "report" / R.MANIFEST).unlink()
    (run / "report" / FILES_MADE).unlink()
    assert R.main(["--run-dir", str(run)]) == 0 and (run / "report" / R.MANIFEST).is_file()


# ---- 2. every option checked before work starts: one line naming option, value, range -----------
@pytest.mark.parametrize("main, argv, words", [
    (train_main, ["--preset", "smoke", "--image-size", "8192", "--max-train-images", "16"],
     ["image_size must be <= 1024", "8192"]),
    (train_main, ["--preset", "smoke", "--quantizer", "fsq", "--fsq-levels", "8,8,8"],
     ["fsq_levels 8,8,8 give 512 codes but codebook_size is 32"]),
    (train_main, ["--preset", "smoke", "--quantizer", "rvq", "--codebook-size", "100"],
     ["codebook_size=100 is not a 3-th power"]),
    (train_main, ["--preset", "smoke", "--device", "gpu0"],
     ["device must be auto, cpu, cuda, cuda:N or mps, got 'gpu0'"]),
    (E.main, ["--checkpoint", "x.pt", "--device", "gpu0"],
     ["--device must be auto, cpu, cuda, cuda:N or mps, got 'gpu0'"]),
    (E.main, ["--checkpoint", "x.pt", "--batch-size", "0"], ["--batch-size", "got 0"]),
    (P.main, ["--checkpoint", "x.pt", "--n", "0"], ["--n must be a whole number in 1..64, got 0"]),
    (P.main, ["--checkpoint", "x.pt", "--device", "gpu0"], ["--device must be"]),
    (DM.main, ["--subjects", "0"], ["--subjects must be a whole number in 3..", "got 0"]),
    (DM.main, ["--slices", "0"], ["--slices", "got 0"]),
    (slices_main, ["a", "b", "--size", "8192"], ["--size must be a whole number in 8..1024"]),
    (slices_main, ["a", "b", "--workers", "0"], ["--workers", "got 0"]),
])
def test_bad_options_are_one_line_before_any_work(main, argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    one_line_error(capsys, *words)
    assert list(tmp_path.iterdir()) == []                                  # nothing written


def test_the_cap_is_applied_before_decoding(oasis, cache, monkeypatch):
    import vqvae_lib.data.cache as C

    decoded = []
    real = C.decode_all

    def counting(paths, *a, **k):
        decoded.append(len(paths))
        return real(paths, *a, **k)

    monkeypatch.setattr(C, "decode_all", counting)
    full = D.load_split("train", oasis, cache_dir=cache, verbose=False, use_cache=False)
    capped = D.load_split("train", oasis, cache_dir=cache, verbose=False, limit=5)
    assert decoded == [12, 12, 5, 5]                                       # images + masks
    assert len(capped) == 5 and capped.n_in_split == len(full) == full.n_in_split == 12
    keep = np.unique(np.linspace(0, 11, 5).round().astype(int))
    np.testing.assert_array_equal(capped.images, full.images[keep])
    assert capped.paths == [full.paths[i] for i in keep]


# ---- 3. one writer per run folder -------------------------------------------------------------------
LOCKER = textwrap.dedent("""
    import sys, time
    from vqvae_lib.runlock import run_lock
    with run_lock(sys.argv[1], "training"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_evaluate_predict_and_report_are_refused_while_a_training_writes(run_with_numbers, capsys):
    run = run_with_numbers
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    env.pop("VQVAE_RUN_LOCK", None)
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(run)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        before = snapshot(run)
        ckpt = str(run / "checkpoints" / "best.pt")
        for main, argv in ((E.main, ["--checkpoint", ckpt]), (P.main, ["--checkpoint", ckpt]),
                           (R.main, ["--run-dir", str(run)])):
            assert main(argv) == 2
            one_line_error(capsys, "is being written by training", f"pid {proc.pid}")
        assert snapshot(run) == before and not (run / "report").exists()
    finally:
        proc.kill()
        proc.wait()


# ---- 4. a rerun moves history.json / history.csv with last.pt -------------------------------------
def test_the_history_moves_to_previous_with_last_pt(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name, text in (("best.pt", "best"), ("last.pt", "last")):
        (ck / name).write_text(text)
    (tmp_path / "history.json").write_text("[1]")
    (tmp_path / "history.csv").write_text("epoch\n1\n")
    prev = keep_previous(ck)
    assert not (tmp_path / "history.json").exists() and not (tmp_path / "history.csv").exists()
    assert not (ck / "last.pt").exists() and (ck / "best.pt").read_text() == "best"
    assert {p.name: p.read_text() for p in prev.iterdir()} == {
        "best.pt": "best", "last.pt": "last", "history.json": "[1]", "history.csv": "epoch\n1\n"}


# ---- 5. scoring new data needs only the scored split -------------------------------------------------
def test_evaluate_a_folder_holding_only_the_test_split(tmp_path, capsys):
    from vqvae_lib.checkpoint import save_checkpoint
    from vqvae_lib.config import get_config
    from vqvae_lib.model.vqvae import build_model

    data = make_oasis(tmp_path / "new", {"test": [1, 2, 3]})
    base = data / "keras_png_slices_data"
    for split in ("train", "validate"):
        shutil.rmtree(base / f"keras_png_slices_{split}")
        shutil.rmtree(base / f"keras_png_slices_seg_{split}")
    torch.manual_seed(0)
    cfg = get_config("smoke", device="cpu")
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", model=build_model(cfg),
                           cfg=cfg, epoch=1, step=1)
    assert E.main(["--checkpoint", str(ckpt), "--split", "test", "--data-dir", str(data),
                   "--device", "cpu"]) == 0
    assert "no training codes: achievable rate not computed" in capsys.readouterr().out
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["n_images"] == 9 and m["achievable_bits_per_pixel"] is None
