"""Errors about user input, and the one error boundary every CLI and notebook goes through.

Messages name the file involved and say what to do. :func:`cli` wraps a CLI ``main`` so that a
user mistake or an operating-system error (permission, read-only file system, disk full, a
symbolic link loop, a file that vanished) ends as one line naming the path and the fix, with exit
code 2; :func:`install_notebook_handler` does the same for a notebook cell. A full traceback is
shown only with ``--debug`` or ``VQVAE_DEBUG=1``.
"""

from __future__ import annotations

import errno
import functools
import os
import sys

__all__ = [
    "DataError", "CheckpointError", "TrainingError", "ConfigError", "RunFolderBusy",
    "OutputFolderError", "USER_ERRORS", "describe_os_error", "user_message", "debug_enabled", "cli",
    "install_notebook_handler",
]


class DataError(ValueError):
    """A data folder or image cannot be used (missing, corrupt, wrong format)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or does not match the requested model."""


class TrainingError(RuntimeError):
    """Training cannot continue (e.g. a non-finite loss)."""


class ConfigError(ValueError):
    """A config value has the wrong type or is out of range (the message names the field)."""


class RunFolderBusy(RuntimeError):
    """Another process is writing to the same run folder (see :mod:`vqvae_lib.runlock`)."""


class OutputFolderError(DataError):
    """An output folder may not be replaced: replacing it could delete what the command did not
    make (see :mod:`vqvae_lib.folders`)."""


USER_ERRORS = (DataError, CheckpointError, TrainingError, ConfigError, RunFolderBusy, OSError)
"""What the error boundary turns into one line: user input, run-time state, and OS errors."""

_OS_FIXES = {
    errno.EACCES: "no permission: fix the permissions (ls -l, chmod, chown) or use another folder",
    errno.EPERM: "the operation is not permitted (immutable or protected file?): use another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder (--run-dir / RUN_DIR=)",
    errno.ENOSPC: "the disk is full: free some space or choose another folder (files written "
                  "before are intact)",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another folder",
    errno.ELOOP: "a symbolic link loop: fix the link or remove it",
    errno.ENOENT: "it does not exist (or vanished while running): check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file was expected: check the path",
    errno.ENAMETOOLONG: "the path is too long: use a shorter one",
}


def describe_os_error(err: OSError) -> str:
    """One line for an ``OSError``: what failed, on which path, and the fix.

    Args:
        err: the error (its ``filename`` and ``errno`` are used when present).
    """
    path = err.filename if err.filename is not None else "(unknown path)"
    if err.filename2 is not None:
        path = f"{path} -> {err.filename2}"
    what = err.strerror or str(err) or type(err).__name__
    fix = _OS_FIXES.get(err.errno, "check the path and the disk")
    return f"{what}: {path}: {fix}."


def user_message(err: BaseException) -> str:
    """The one-line message the boundary prints for ``err``.

    Args:
        err: an exception from :data:`USER_ERRORS` (anything else: its ``str``).
    """
    if isinstance(err, OSError) and not isinstance(err, USER_ERRORS[:-1]):
        return describe_os_error(err)
    return " ".join(str(err).split()) or type(err).__name__


def debug_enabled() -> bool:
    """True when ``VQVAE_DEBUG=1``: tracebacks are shown in full."""
    return os.environ.get("VQVAE_DEBUG", "") not in ("", "0")


def cli(main):
    """Decorate a CLI ``main(argv) -> int`` with the error boundary.

    The wrapped function takes ``argv`` (default ``sys.argv[1:]``), understands ``--debug``
    anywhere in it, and returns 0 (or ``main``'s own code), 2 after a user or OS error (one line
    on stderr), or 130 after Ctrl-C.

    Args:
        main: the function to wrap; it receives ``argv`` without ``--debug``.
    """

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        debug_flag = "--debug" in argv
        argv = [a for a in argv if a != "--debug"]
        before = os.environ.get("VQVAE_DEBUG")
        if debug_flag:
            os.environ["VQVAE_DEBUG"] = "1"      # also for what this command starts
        try:
            code = main(argv)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            print("interrupted", file=sys.stderr)
            return 130
        except USER_ERRORS as err:
            if debug_enabled():
                raise
            print(f"error: {user_message(err)} [--debug shows the traceback]", file=sys.stderr)
            return 2
        finally:
            if debug_flag and before is None:
                os.environ.pop("VQVAE_DEBUG", None)
            elif debug_flag:
                os.environ["VQVAE_DEBUG"] = before
        return 0 if code is None else int(code)

    return run


def install_notebook_handler(shell=None) -> bool:
    """Show :data:`USER_ERRORS` in a notebook as one line instead of a traceback.

    The cell still fails (papermill and ``make run-all`` stop there and name it); with
    ``VQVAE_DEBUG=1`` the full traceback is shown. Returns False outside IPython.

    Args:
        shell: the IPython shell (default: the running one).
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False

    def handler(self, etype, value, tb, tb_offset=None):
        if debug_enabled():
            return self.showtraceback((etype, value, tb), tb_offset=tb_offset)
        lines = [f"{etype.__name__}: {user_message(value)}",
                 "(set VQVAE_DEBUG=1 and run the cell again for the full traceback)"]
        self._showtraceback(etype, value, lines)
        return None

    shell.set_custom_exc(USER_ERRORS, handler)
    return True
