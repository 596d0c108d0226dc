"""Shared fixtures. ``shared_dir`` is ../shared beside the repository, or $VQVAE_SHARED_DIR
(skips when absent)."""

import os
from pathlib import Path

import pytest
from data_fixtures import make_oasis

from vqvae_lib.paths import repo_root


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("VQVAE_SHARED_DIR") or repo_root().parent / "shared")
    if not path.is_dir():
        pytest.skip("../shared is absent (optional: holds a real OASIS sample)")
    return path


@pytest.fixture
def oasis(tmp_path) -> Path:
    """A tiny data set in the OASIS course layout (see data_fixtures.make_oasis)."""
    return make_oasis(tmp_path / "oasis")


@pytest.fixture
def cache(tmp_path) -> Path:
    """A private cache folder, so tests never touch data/cache."""
    return tmp_path / "cache"
