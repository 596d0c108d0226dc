"""Shared fixtures. ``shared_dir`` is ../shared beside the repository (skips when absent)."""

from pathlib import Path

import pytest

from vqvae_lib.paths import repo_root


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = repo_root().parent / "shared"
    if not path.is_dir():
        pytest.skip("../shared is absent (optional: holds a real OASIS sample)")
    return path
