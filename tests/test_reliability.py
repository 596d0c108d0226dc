"""Issue 11: one writer per run folder, one error boundary per CLI and notebook, config values
checked, paths resolved against the caller's cwd, checkpoints that never hold NaN.

(The training-loop faults -- rerun over a good model, NaN at a chosen step, disk full during a
save, two trainings at once -- are in test_train.py; unreadable data files in test_bad_input.py.)
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import vqvae_lib.course.runner as R
from vqvae_lib import checkpoint as C
from vqvae_lib.config import get_config
from vqvae_lib.errors import (
    CheckpointError,
    ConfigError,
    RunFolderBusy,
    cli,
    install_notebook_handler,
)
from vqvae_lib.model.vqvae import build_model
from vqvae_lib.paths import repo_root
from vqvae_lib.runlock import LOCK_NAME, run_lock
from vqvae_lib.train.cli import main as train_main

LOCKER = textwrap.dedent("""
    import sys, time
    from vqvae_lib.runlock import run_lock
    with run_lock(sys.argv[1], "training"):
        print("locked", flush=True)
        if sys.argv[2:] == ["child"]:          # a process started by the holder gets in
            import subprocess
            code = "from vqvae_lib.runlock import run_lock; import sys\\n" \\
                   "with run_lock(sys.argv[1], 'kernel'): print('child in')"
            print(subprocess.run([sys.executable, "-c", code, sys.argv[1]], capture_output=True,
                                 text=True).stdout.strip(), flush=True)
        time.sleep(60)
""")


def _start_locker(run_dir, *extra):
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    env.pop("VQVAE_RUN_LOCK", None)
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(run_dir), *extra], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ---- one writer per run folder ---------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder_and_kill_9_releases_it(tmp_path):
    proc = _start_locker(tmp_path)
    try:
        with pytest.raises(RunFolderBusy, match=rf"training \(pid {proc.pid} .*another run folder"):
            with run_lock(tmp_path, "prior training"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)          # no clean-up code runs ...
        proc.wait()
    with run_lock(tmp_path, "training") as lock:   # ... and the OS released the lock anyway
        assert lock == tmp_path.resolve() / LOCK_NAME


def test_a_child_of_the_holder_gets_in(tmp_path):
    proc = _start_locker(tmp_path, "child")
    try:
        assert proc.stdout.readline().strip() == "child in"       # what papermill's kernels do
    finally:
        proc.kill()
        proc.wait()


def test_run_all_refuses_a_busy_run_folder(tmp_path, capsys):
    with run_lock(tmp_path, "training"):
        assert R.main(["--preset", "smoke", "--run-dir", str(tmp_path), "--only", "01"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is being written by training (pid {os.getpid()}" in err


# ---- paths from make are resolved against the caller's cwd -----------------------------------
def test_run_all_resolves_a_relative_data_dir_before_papermill_changes_directory(
        tmp_path, monkeypatch, oasis):
    import papermill

    calls = []

    def execute(src, out, parameters, cwd, **kw):
        calls.append((parameters, cwd))
        Path(out).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.chdir(oasis.parent)               # make runs from the repository root
    assert R.main(["--preset", "smoke", "--data-dir", oasis.name, "--run-dir", "runs/x",
                   "--only", "01"]) == 0
    (params, cwd), = calls
    assert cwd.endswith("notebooks")
    for key in ("data_dir", "run_dir"):
        assert Path(params[key]).is_absolute(), params
        assert (Path(cwd) / params[key]).resolve() == (oasis.parent / Path(params[key])).resolve()
    assert Path(params["data_dir"]) == oasis
    assert Path(params["run_dir"]) == tmp_path / "runs" / "x"


def test_prior_minutes_reaches_only_the_notebook_that_declares_it(tmp_path, monkeypatch, oasis):
    import papermill

    calls = {}

    def execute(src, out, parameters, cwd, **kw):
        calls[Path(src).name[:2]] = parameters
        Path(out).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert R.main(["--preset", "smoke", "--data-dir", str(oasis), "--run-dir", str(tmp_path / "r"),
                   "--only", "03", "06", "--prior-minutes", "16"]) == 0
    assert calls["06"]["prior_minutes"] == 16 and "prior_minutes" not in calls["03"]
    with pytest.raises(SystemExit):
        R.main(["--preset", "smoke", "--prior-minutes", "0"])


def test_run_all_names_a_missing_relative_data_dir_and_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert R.main(["--preset", "smoke", "--data-dir", "data/demoo", "--run-dir", "r"]) == 2
    assert f"data/demoo does not exist (resolved to {tmp_path}/data/demoo" in capsys.readouterr().err


# ---- the CLI error boundary --------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--epochs", "abc"], "epochs expects a whole number, got 'abc'"),
    (["--epochs", "1.7"], "epochs expects a whole number, got '1.7'"),
    (["--batch-size", "0"], "batch_size must be > 0, got 0"),
    (["--epochs", "-2"], "epochs must be > 0"),
    (["--lr", "fast"], "lr expects a number, got 'fast'"),
    (["--learning-rate", "1"], "Unknown config field 'learning_rate'"),
    pytest.param(["--device", "cuda"], "no CUDA GPU is visible", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a GPU is visible here")),
])
def test_train_cli_mistakes_are_one_line_naming_the_field(argv, message, capsys):
    assert train_main(["--preset", "smoke", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("error: ")


def test_train_cli_os_errors_name_the_path_and_the_fix(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert train_main(["--preset", "smoke", "--run-dir", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert f"Not a directory: {blocker / 'run'}" in err and "is a file, not a folder" in err

    real_open = os.open

    def read_only(path, *a, **k):                  # a read-only mount (tests may run as root)
        if str(path).endswith(LOCK_NAME):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    assert train_main(["--preset", "smoke", "--run-dir", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "choose a writable folder" in err
    assert "Traceback" not in err and not (tmp_path / "ro" / "checkpoints").exists()


def test_debug_shows_the_traceback(monkeypatch):
    assert train_main(["--preset", "smoke", "--epochs", "x"]) == 2
    with pytest.raises(ConfigError, match="epochs"):
        train_main(["--preset", "smoke", "--epochs", "x", "--debug"])
    monkeypatch.setenv("VQVAE_DEBUG", "1")
    with pytest.raises(ConfigError):
        train_main(["--preset", "smoke", "--epochs", "x"])


@pytest.mark.parametrize("module, function, argv", [
    ("vqvae_lib.evaluate.score", "evaluate_checkpoint", ["--checkpoint", "x.pt"]),
    ("vqvae_lib.evaluate.predict", "predict", ["--checkpoint", "x.pt"]),
    ("vqvae_lib.data.demo", "build_demo", []),
    ("vqvae_lib.course.runner", "run_all", ["--preset", "smoke"]),
])
def test_every_cli_turns_an_os_error_into_one_line(module, function, argv, monkeypatch, capsys):
    import importlib

    mod = importlib.import_module(module)

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/runs/cpu/metrics.json")

    monkeypatch.setattr(mod, function, denied)
    assert mod.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Permission denied: /srv/runs/cpu/metrics.json: no permission")
    assert "Traceback" not in err


def test_cli_boundary_returns_130_on_ctrl_c(capsys):
    @cli
    def main(argv):
        raise KeyboardInterrupt

    assert main([]) == 130 and "interrupted" in capsys.readouterr().err


def test_notebook_handler_shows_one_line_and_the_cell_still_fails(tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shown = []
    monkeypatch.setattr(shell, "_showtraceback", lambda etype, value, stb: shown.append(stb))
    assert install_notebook_handler(shell)
    monkeypatch.delenv("VQVAE_DEBUG", raising=False)
    result = shell.run_cell(f"raise OSError(28, 'No space left on device', {str(tmp_path)!r})")
    assert not result.success and isinstance(result.error_in_exec, OSError)
    assert shown[-1][0] == f"OSError: No space left on device: {tmp_path}: the disk is full: free " \
                           f"some space or choose another folder (files written before are intact)."
    shell.set_custom_exc((), None)


# ---- config values: type and range -------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    ({"epochs": 1.7}, "epochs expects a whole number"),
    ({"epochs": True}, "epochs expects a finite whole number"),
    ({"batch_size": -1}, "batch_size must be > 0"),
    ({"lr": float("nan")}, "lr expects a finite number"),
    ({"max_minutes": -1}, "max_minutes must be >= 0"),
    ({"ema_decay": 1.0}, "ema_decay must be < 1"),
    ({"quantizer": "vq"}, "quantizer expects one of ['loss', 'ema', 'fsq', 'rvq']"),
    ({"augment": "maybe"}, "augment expects true or false"),
    ({"amp": True}, "amp was renamed precision"),
    ({"precision": "half"}, "precision expects one of ['auto', 'fp32', 'bf16', 'fp16']"),
    ({"image_size": 66}, "image_size 66 must be a multiple of downsample 4"),
])
def test_config_values_are_checked_by_type_and_range(overrides, message):
    with pytest.raises(ConfigError) as e:
        get_config("smoke", **overrides)
    assert message in str(e.value)


def test_whole_numbers_given_as_floats_or_strings_are_accepted():
    cfg = get_config("smoke", epochs="4", batch_size=8.0, max_minutes="0.5")
    assert (cfg.epochs, cfg.batch_size, cfg.max_minutes) == (4, 8, 0.5)
    assert isinstance(cfg.batch_size, int)


# ---- checkpoint files ----------------------------------------------------------------------------
def test_a_non_finite_model_is_refused_at_save_time_and_the_old_file_stays(tmp_path):
    cfg = get_config("smoke")
    model = build_model(cfg)
    path = C.save_checkpoint(tmp_path / "best.pt", model=model, cfg=cfg)
    good = path.read_bytes()
    with torch.no_grad():
        next(model.decoder.parameters())[0].fill_(float("inf"))
    with pytest.raises(CheckpointError, match=r"Refusing to write .*best\.pt: 1 tensor\(s\) hold NaN or inf \(e\.g\. model\.decoder"):
        C.save_checkpoint(path, model=model, cfg=cfg)
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_checkpoint_mode_0644_and_a_killed_writes_temporary_is_cleaned(tmp_path):
    cfg = get_config("smoke")
    stale = tmp_path / ".best.pt.abc123.tmp"                # left by a save killed mid-write
    stale.write_bytes(b"half")
    path = C.save_checkpoint(tmp_path / "best.pt", model=build_model(cfg), cfg=cfg)
    assert not stale.exists() and (path.stat().st_mode & 0o777) == 0o644


def test_an_unsafe_checkpoint_is_refused_without_advising_an_unsafe_load(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "model": Evil()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError) as e:
        C.load_checkpoint(path)
    assert "weights_only=False" not in str(e.value) and "do not load it unsafely" in str(e.value)
