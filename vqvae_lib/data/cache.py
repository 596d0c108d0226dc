"""The uint8 cache: each split is decoded from PNG once and kept as an ``.npy`` array.

PNG decoding is slow next to a small CPU model, so the first load of a split writes it under
``data/cache/`` and later loads read the array back. The file name carries a hash of the file
list (names, sizes, modification times) and the requested size: change, add or delete a PNG
and the name changes, so a stale cache is never read. Writes are atomic (``common.atomic_write``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ..common import atomic_write
from .files import DataWarning, decode_all

__all__ = ["CACHE_VERSION", "cache_file", "cache_load", "cache_save", "load_array"]

CACHE_VERSION = 1


def cache_file(cache_dir: Path, kind: str, split: str, root: Path, paths, size) -> Path:
    """``<kind>-<split>-<size>-<root hash>-<files hash>.npy``: any file change -> new name."""
    h = hashlib.sha1(f"v{CACHE_VERSION}|{kind}|{size}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    root_key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
    tag = f"{size[0]}x{size[1]}" if size else "native"
    return cache_dir / f"{kind}-{split}-{tag}-{root_key}-{h.hexdigest()[:16]}.npy"


def cache_load(path: Path, n: int) -> np.ndarray | None:
    """The cached array, memory-mapped copy-on-write: a load costs no read and no RAM until
    pages are touched, and processes (DDP ranks) share the pages. At OASIS scale this made
    the cached 256x256 training split load in well under a second instead of ~2 s and saved one
    in-memory copy of the split (``benchmarks/README.md``, data at OASIS scale)."""
    try:
        a = np.load(path, mmap_mode="c")
    except (OSError, ValueError, EOFError):
        return None                                             # absent or damaged: rebuild
    return a if a.dtype == np.uint8 and a.ndim == 3 and len(a) == n else None


def cache_save(path: Path, array: np.ndarray) -> None:
    """Atomic: write a temporary file, then rename; drop older entries of the same split."""
    try:
        atomic_write(path, lambda f: np.save(f, array))
        stem = path.name.rsplit("-", 1)[0]
        for old in path.parent.glob(f"{stem}-*.npy"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as e:
        warnings.warn(f"data: could not write the cache {path} ({e}); continuing without it.",
                      DataWarning, stacklevel=3)


def load_array(kind, split, root, paths, size, cache_dir, use_cache, verbose):
    """(array, cache hit?, native shapes or None) for images or masks of one split."""
    file = cache_file(cache_dir, kind, split, root, paths, size) if use_cache else None
    if file is not None:
        cached = cache_load(file, len(paths))
        if cached is not None:
            return cached, True, None
    array, shapes, notes = decode_all(paths, size, kind.rstrip("s"), f"decoding {split} {kind}",
                                       verbose)
    converted = [(p, n) for p, n in zip(paths, notes, strict=True) if n]
    if converted:
        warnings.warn(f"data: converted {len(converted)} image(s) ({converted[0][1]}), e.g. "
                      f"{converted[0][0]}.", DataWarning, stacklevel=3)
    if file is not None:
        cache_save(file, array)
    return array, False, shapes
