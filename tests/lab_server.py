"""A private JupyterLab server and the headless Chromium that drives it (browser tests).

* :func:`browser_unavailable` says why no browser test can run here (or None);
* :func:`launch_chromium` starts Debian's Chromium (``/usr/lib/chromium/chromium``) or
  ``$VQVAE_CHROMIUM`` through Playwright, which never downloads a browser here;
* :class:`JupyterLab` starts JupyterLab on 127.0.0.1 (free port, random token, its own
  runtime/settings/workspace folders) and always stops it and its kernels.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["CHROMIUM_PATHS", "find_chromium", "browser_unavailable", "launch_chromium",
           "JupyterLab", "artifacts_dir"]

CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")
INSTALL_HINT = ("install it with `apt-get install -y chromium` (as root) and "
                "`.venv/bin/python -m pip install playwright`, or set VQVAE_CHROMIUM=/path/to/chrome")


def find_chromium() -> str | None:
    """The Chromium binary to drive: ``$VQVAE_CHROMIUM``, else Debian's, else None."""
    for path in (os.environ.get("VQVAE_CHROMIUM"), *CHROMIUM_PATHS):
        if path and os.access(path, os.X_OK):
            return path
    return None


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, in one line; None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"Playwright for Python is not installed; {INSTALL_HINT}"
    if find_chromium() is None:
        return f"no Chromium at {' or '.join(CHROMIUM_PATHS)}; {INSTALL_HINT}"
    return None


def launch_chromium(playwright, **kwargs):
    """A headless Chromium from :func:`find_chromium` (never a downloaded one)."""
    return playwright.chromium.launch(executable_path=find_chromium(), headless=True,
                                      args=["--no-sandbox", "--disable-gpu",
                                            "--disable-dev-shm-usage"], **kwargs)


def artifacts_dir(name: str) -> Path:
    """``runs/browser/<name>/``: screenshots and logs of a browser test, for debugging it."""
    from vqvae_lib.paths import repo_root

    path = repo_root() / "runs" / "browser" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A private JupyterLab server on 127.0.0.1; a context manager that always stops it.

    Args:
        root_dir: the folder the server shows (the notebooks to open).
        log_path: where the server's stdout/stderr go.
        pythonpath: prepended to the kernels' ``PYTHONPATH`` (so they import this checkout).
    """

    def __init__(self, root_dir: Path, log_path: Path, pythonpath: str | None = None):
        self.root_dir, self.log_path = Path(root_dir), Path(log_path)
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.pythonpath = pythonpath
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> JupyterLab:
        state = self.log_path.parent / f"jupyter-state-{self.port}"
        for sub in ("runtime", "settings", "workspaces", "config"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        notify = state / "settings" / "@jupyterlab" / "apputils-extension"
        notify.mkdir(parents=True, exist_ok=True)          # no "Jupyter news?" pop-up on top
        (notify / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        tracker = state / "settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)         # render every cell, also off screen
        (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(state / "runtime"),
                   JUPYTER_CONFIG_DIR=str(state / "config"), OMP_NUM_THREADS="1",
                   PYDEVD_DISABLE_FILE_VALIDATION="1")
        env.pop("PAPERMILL_EXECUTION", None)       # a student's kernel: progress bars, not lines
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self.pythonpath,
                                                            env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root_dir}", "--ServerApp.open_browser=False",
               f"--LabApp.user_settings_dir={state / 'settings'}",
               f"--LabApp.workspaces_dir={state / 'workspaces'}",
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.root_dir, start_new_session=True)
        try:
            self._wait_ready(timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}; "
                                   f"see its log {self.log_path}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s; log: "
                           f"{self.log_path}")

    def lab_url(self, notebook: str) -> str:
        """The URL that opens ``notebook`` (relative to ``root_dir``) in JupyterLab."""
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def log(self) -> str:
        """The server's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_errors(self) -> list[str]:
        """Server log lines that report an error ('[E ...' lines and tracebacks)."""
        return [ln for ln in self.log().splitlines()
                if ln.startswith("[E ") or ln.startswith("Traceback")]

    def stop(self) -> None:
        """Shut the server down (API, then SIGTERM, then SIGKILL), and any kernel it left."""
        if self.proc is None:
            return
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if self.proc.poll() is None:
            try:
                req = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}",
                                             method="POST")
                urllib.request.urlopen(req, timeout=5).close()
                self.proc.wait(timeout=15)
            except Exception:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for child in children:                     # kernels run in their own sessions
            try:
                child.kill()
            except psutil.Error:
                pass
        self._log.close()
        self.proc = None


