"""Shared fixtures. ``shared_dir`` is ../shared beside the repository (or $VQVAE_SHARED_DIR;
skips when absent). Browser tests (marker ``browser``) are left out with ONE summary line where
Chromium or Playwright is missing, except in CI (``$CI`` set), where they run and fail loudly."""

import os
from pathlib import Path

import pytest
from data_fixtures import make_oasis
from lab_server import browser_unavailable

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


def pytest_collection_modifyitems(config, items):
    browser = [item for item in items if item.get_closest_marker("browser")]
    reason = browser_unavailable() if browser else None
    if reason is None or os.environ.get("CI"):
        return
    items[:] = [item for item in items if not item.get_closest_marker("browser")]
    config.hook.pytest_deselected(items=browser)
    config._browser_skip_line = f"SKIPPED {len(browser)} browser tests: {reason}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = getattr(config, "_browser_skip_line", None)
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread than with hand-offs between cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
