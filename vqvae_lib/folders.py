"""Replace a folder of files a command made, and nothing else: the one implementation behind
``slices``, ``demo`` and ``report`` (and any command that rewrites a whole output folder).

    replace_folder(out, build, "demo_manifest.json", inputs=[src], force=True)

1. :func:`check_replaceable` refuses, **before any work**, an ``out`` that is, contains or lies
   inside one of the command's inputs, a run folder (one holding ``checkpoints/``), the
   repository root, the home folder, a filesystem root (or a folder holding one of them), a file,
   or a non-empty folder this command did not make. A folder "was made by this command" when it
   holds the command's manifest file; :func:`replace_folder` also records every file it made in
   ``.files_made.txt`` beside the manifest, and a folder holding any other file is refused,
   naming it (a folder made before that list existed is recognised by its manifest alone).
2. ``build(tmp)`` fills a new folder beside ``out``; the manifest and the file list are written
   last, so a folder without a manifest is never a finished one.
3. The swap: the old ``out`` is renamed aside, the new folder renamed in, then the old one is
   deleted. On any error before the swap, ``out`` is untouched and the new folder removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .common import atomic_write_text
from .errors import OutputFolderError
from .paths import repo_root

__all__ = ["FILES_MADE", "check_replaceable", "replace_folder", "files_made"]

FILES_MADE = ".files_made.txt"
"""The list of files (relative paths, one a line) a command wrote into its output folder."""


def _resolved(path) -> Path:
    return Path(path).expanduser().resolve()


def _within(inner: Path, outer: Path) -> bool:
    """True when ``inner`` is ``outer`` or lies inside it."""
    return inner == outer or outer in inner.parents


def files_made(folder: str | os.PathLike, manifest_name: str) -> set[str] | None:
    """The relative paths ``folder``'s file list names (plus the manifest and the list), or
    None when the folder has no list (made before lists were kept).

    Args:
        folder: an output folder made by :func:`replace_folder`.
        manifest_name: the command's manifest file name.
    """
    listing = Path(folder) / FILES_MADE
    try:
        names = set(listing.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return None
    return names | {manifest_name, FILES_MADE}


def _foreign_files(out: Path, manifest_name: str) -> list[str]:
    made = files_made(out, manifest_name)
    if made is None:
        return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if not p.is_dir() and str(p.relative_to(out)) not in made)


def check_replaceable(out: str | os.PathLike, manifest_name: str, *, inputs=(),
                      force: bool = False, command: str = "this command",
                      option: str = "OUT", what: str = "") -> Path:
    """Refuse an output folder whose replacement could delete what the command did not make.

    Returns ``out`` resolved; raises :class:`~vqvae_lib.errors.OutputFolderError` (one line naming
    the folder, why, and the fix) otherwise. See the module docstring for the rules.

    Args:
        out: the output folder the command will (re)write.
        manifest_name: the file that marks a folder as made by this command.
        inputs: files or folders the command reads (``out`` must not be, hold or lie in one).
        force: replace a folder this command made (without it such a folder is refused too).
        command: the command's name, for the message (e.g. ``"vqvae_lib.demo"``).
        option: the option that named ``out`` (e.g. ``"--out"``).
        what: what such a folder is, for the message (default "an output of <command>").
    """
    target = _resolved(out)
    what = what or f"an output of {command}"

    def refuse(why: str, fix: str = "choose a new or empty folder") -> OutputFolderError:
        return OutputFolderError(f"{option} {out}: {why}; {command} would delete it when "
                                 f"replacing the folder: {fix}.")

    for src in inputs:
        src = _resolved(src)
        if _within(target, src) or _within(src, target):
            raise refuse(f"it is, holds or lies inside the input {src}",
                         "write the output somewhere else")
    protected = {Path(target.anchor): "a filesystem root", _resolved(Path.home()): "the home folder",
                 repo_root().resolve(): "the repository root"}
    for place, name in protected.items():
        if _within(place, target):
            raise refuse(f"it is or holds {name} ({place})")
    if (target / "checkpoints").is_dir():
        raise refuse("it is a run folder (it holds checkpoints/)")
    if target.exists() and not target.is_dir():
        raise refuse("it is a file, not a folder", "choose a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return target
    if not (target / manifest_name).is_file():
        first = min(p.name for p in target.iterdir())
        raise refuse(f"it is not empty (it holds {first}) and is not {what} (no {manifest_name})")
    foreign = _foreign_files(target, manifest_name)
    if foreign:
        raise refuse(f"it holds {len(foreign)} file(s) {command} did not make, e.g. "
                     f"{foreign[0]}", "move them out first, or choose another folder")
    if not force:
        raise refuse(f"it holds {what} already",
                     "pass --force to replace it, or choose another folder")
    return target


def replace_folder(out: str | os.PathLike, build: Callable[[Path], dict], manifest_name: str, *,
                   inputs=(), force: bool = False, command: str = "this command",
                   option: str = "OUT", what: str = "") -> Path:
    """Build a folder beside ``out`` and swap it in when complete; returns ``out`` (resolved).

    Nothing the command did not make is ever deleted: ``out`` is checked first
    (:func:`check_replaceable`, before ``build`` runs); ``build`` writes into a new empty folder
    and returns the manifest (a JSON-able dict) written into it last, with the list of files
    made; then the old folder is renamed aside, the new one renamed in, and the old one deleted.
    If ``build`` fails (or is interrupted), ``out`` is untouched and the new folder removed.

    Args:
        out: the output folder.
        build: ``build(tmp) -> manifest``: fills the empty folder ``tmp``.
        manifest_name: the manifest's file name (marks the folder as this command's).
        inputs: what the command reads (see :func:`check_replaceable`).
        force: replace an earlier output of this command.
        command: the command's name, for messages.
        option: the option that named ``out``, for messages.
        what: what such a folder is, for messages.
    """
    target = check_replaceable(out, manifest_name, inputs=inputs, force=force, command=command,
                               option=option, what=what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    aside = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = build(tmp)
        made = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if not p.is_dir())
        atomic_write_text(tmp / FILES_MADE, "".join(f"{name}\n" for name in made))
        atomic_write_text(tmp / manifest_name, json.dumps(manifest, indent=1))
        if target.exists():
            os.rename(target, aside)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(aside, target)
                raise
        else:
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(OSError):
        shutil.rmtree(aside)
    return target
