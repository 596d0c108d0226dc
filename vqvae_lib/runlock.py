"""One writer per run folder: an advisory lock that the OS releases even after ``kill -9``.

Training, prior training, ``make run-all`` and the ``evaluate``, ``predict`` and ``report``
commands each hold ``<run_dir>/.vqvae.lock`` while they write there (at the entry layer: the
library functions a notebook calls take no lock, the notebook runs under ``run-all``'s)::

    with run_lock(run_dir, "training"):
        ...                              # a second writer fails at once, naming this process

The lock is ``fcntl.flock`` on an open file: the kernel drops it when the process ends, however
it ends, so a crash never leaves a stale lock behind (the file itself stays; it only records who
holds the lock). A process started by the holder (the notebook kernels of ``make run-all``) is let
in: the holder puts ``<pid>:<run_dir>`` in ``$VQVAE_RUN_LOCK`` and a child whose folder matches it
proceeds. On Windows (no ``fcntl``) the lock is skipped. :func:`run_folder_lock` is the same lock
for a command that writes into a checkpoint's run folder (``evaluate``, ``predict``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import RunFolderBusy
from .paths import run_dir_of_checkpoint

try:
    import fcntl
except ImportError:          # Windows
    fcntl = None

__all__ = ["run_lock", "run_folder_lock", "LOCK_NAME", "HELD_ENV", "lock_holder"]

LOCK_NAME = ".vqvae.lock"
HELD_ENV = "VQVAE_RUN_LOCK"


def lock_holder(run_dir) -> dict:
    """What the lock file of ``run_dir`` says about its (last) holder; ``{}`` if nothing.

    Args:
        run_dir: the run folder.
    """
    try:
        return json.loads((Path(run_dir) / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return (f"{holder.get('what', 'a process')} (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, started {holder.get('started', '?')}: "
            f"{holder.get('command', '')})")


def _held_by_an_ancestor(run_dir: Path) -> bool:
    """True when a parent process holds this folder's lock and passed it down to us."""
    pid, _, folder = os.environ.get(HELD_ENV, "").partition(":")
    if not pid.isdigit() or int(pid) == os.getpid() or Path(folder) != run_dir:
        return False
    return str(lock_holder(run_dir).get("pid")) == pid


@contextlib.contextmanager
def run_lock(run_dir, what: str):
    """Hold the run folder's lock for the ``with`` block, or raise :class:`RunFolderBusy`.

    Args:
        run_dir: the run folder (created if missing; resolved to an absolute path).
        what: what this process does there, e.g. ``"training"``; shown to a refused second writer.

    Yields:
        The lock file's path (or None where no lock is taken).
    """
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None or _held_by_an_ancestor(run_dir):
        yield None
        return
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(
                f"{run_dir} is being written by {_describe(lock_holder(run_dir))}. Two writers "
                f"would overwrite each other's checkpoints. Wait for it to finish (or stop it), "
                f"or use another run folder (--run-dir / RUN_DIR=).") from None
        info = {"pid": os.getpid(), "what": what, "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])[:200]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        before = os.environ.get(HELD_ENV)
        os.environ[HELD_ENV] = f"{os.getpid()}:{run_dir}"
        try:
            yield path
        finally:
            if before is None:
                os.environ.pop(HELD_ENV, None)
            else:
                os.environ[HELD_ENV] = before
    finally:
        os.close(fd)            # closing the descriptor releases the lock


def run_folder_lock(checkpoint: str | os.PathLike, what: str,
                    folder: str | os.PathLike | None = None):
    """The lock of the folder a CLI writes into (default the checkpoint's run folder), so that
    ``evaluate``/``predict`` never write while a training (or another writer) does.

    No lock when the checkpoint is absent: loading it then fails with a clear message before
    anything is written. Library functions take no lock (a notebook runs under ``make
    run-all``'s); the CLIs do.

    Args:
        checkpoint: the checkpoint the CLI reads.
        what: what the CLI does, shown to a refused second writer (e.g. ``"evaluation"``).
        folder: the folder written (default the checkpoint's run folder).
    """
    if not Path(checkpoint).is_file():
        return contextlib.nullcontext()
    return run_lock(folder or run_dir_of_checkpoint(checkpoint), what)
